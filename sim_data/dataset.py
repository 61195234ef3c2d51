"""The Walkout dataset format: one directory holding a recorded or simulated run of a store.

A dataset is what the replayer feeds to a store server and what the evaluator scores against, so it
keeps exactly what went over MQTT (topic + payload, in publish order) next to the store layout it
was made in and the ground truth. Layout (see docs/DATASETS.md)::

    manifest.json        what, where, when: format, version, source, scenario, seed, store, counts
    store.yaml           the store layout text, verbatim (a dataset must not depend on a repo file)
    messages.jsonl.gz    one MQTT message per line: {"t", "topic", "payload"}, ordered by t
    ground_truth.json    accounts, sessions with final carts, and every shelf event's truth

Writes are atomic (temp directory beside the target, then rename) so a crash never leaves a
half-written dataset that a later replay would trust.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from store_server.domain.layout import LayoutError, StoreLayout, load_layout

logger = logging.getLogger(__name__)

FORMAT_NAME = "walkout-dataset"
FORMAT_VERSION = "1.0"
READS_MAJOR = 1

MANIFEST = "manifest.json"
STORE = "store.yaml"
MESSAGES = "messages.jsonl.gz"
GROUND_TRUTH = "ground_truth.json"
REQUIRED_FILES = (MANIFEST, STORE, MESSAGES, GROUND_TRUTH)


class DatasetError(ValueError):
    """A dataset that cannot be written or read; the message says what to do about it."""


@dataclass(frozen=True)
class SimMessage:
    """One MQTT message as published: ``t`` is the publish (event) time, equal to ``payload['ts']``."""

    t: float
    topic: str
    payload: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps({"t": self.t, "topic": self.topic, "payload": self.payload}, separators=(",", ":"))


def _major(version: Any) -> int:
    try:
        return int(str(version).split(".", 1)[0])
    except ValueError:
        raise DatasetError(f"format_version {version!r} is not of the form MAJOR.MINOR") from None


def write_dataset(
    out_dir: str | Path,
    manifest: dict[str, Any],
    layout_text: str,
    messages: Iterable[SimMessage],
    ground_truth: dict[str, Any],
) -> Path:
    """Write a dataset directory atomically and return its path.

    ``format``, ``format_version`` and ``created_utc`` are filled in when missing; ``message_count``
    is always the number actually written. An existing *dataset* at ``out_dir`` is replaced; any other
    existing non-empty directory is refused rather than clobbered.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; choose a directory path for the dataset (--out)")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise DatasetError(
            f"{out} exists and is not a Walkout dataset; choose an empty or new directory (--out)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a dataset is meant to be shared
        count = 0
        # mtime=0 keeps the archive byte-identical for identical content (reproducible datasets).
        with (
            open(tmp / MESSAGES, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        ):
            last_t = float("-inf")
            for msg in messages:
                if msg.t < last_t:
                    raise DatasetError(f"message {count} has t={msg.t} before the previous t={last_t}")
                last_t = msg.t
                gz.write(msg.to_json().encode() + b"\n")
                count += 1
        meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **manifest}
        meta["message_count"] = count
        meta.setdefault("created_utc", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        (tmp / MANIFEST).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / STORE).write_text(layout_text)
        (tmp / GROUND_TRUTH).write_text(json.dumps(ground_truth, indent=1) + "\n")
        install_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote dataset %s (%d messages)", out, count)
    return out


class Dataset:
    """A dataset directory opened for reading; messages are streamed, never loaded whole."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path) -> Dataset:
        path = Path(path)
        if not path.exists():
            raise DatasetError(
                f"{path}: no such dataset directory; check the path, or make one with "
                f"`walkout sim --out {path}`"
            )
        if not path.is_dir():
            raise DatasetError(f"{path} is a file; a dataset is a directory holding {MANIFEST}")
        if not (path / MANIFEST).is_file():
            raise DatasetError(
                f"{path} is not a Walkout dataset (no {MANIFEST}); point at the directory `walkout sim` wrote"
            )
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path / MANIFEST}: not valid JSON ({exc}); re-create the dataset") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise DatasetError(f"{path / MANIFEST}: 'format' is not {FORMAT_NAME!r}; not a Walkout dataset")
        major = _major(manifest.get("format_version", ""))
        if major > READS_MAJOR:
            raise DatasetError(
                f"dataset format {major}.x is newer than this Walkout reads ({READS_MAJOR}.x): "
                "upgrade walkout"
            )
        if major < 1:
            raise DatasetError(f"dataset format {manifest.get('format_version')!r} is unknown")
        for name in REQUIRED_FILES:
            if not (path / name).is_file():
                raise DatasetError(f"{path}: {name} is missing; the dataset is incomplete, re-create it")
        return cls(path, manifest)

    @property
    def layout_path(self) -> Path:
        return self.path / STORE

    @cached_property
    def layout(self) -> StoreLayout:
        try:
            return load_layout(self.layout_path)
        except LayoutError as exc:
            raise DatasetError(str(exc)) from None

    @property
    def layout_text(self) -> str:
        return self.layout_path.read_text()

    @cached_property
    def ground_truth(self) -> dict[str, Any]:
        try:
            data = json.loads((self.path / GROUND_TRUTH).read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{self.path / GROUND_TRUTH}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DatasetError(f"{self.path / GROUND_TRUTH}: must hold a JSON object")
        return data

    def messages(self) -> Iterator[SimMessage]:
        """Stream the messages in file (publish) order."""
        where = self.path / MESSAGES
        try:
            with gzip.open(where, "rt", encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        yield SimMessage(float(row["t"]), str(row["topic"]), dict(row["payload"]))
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                        raise DatasetError(f"{where}, line {lineno}: bad message ({exc})") from None
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{where}: cannot read ({exc}); the file is damaged, re-create it") from None

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, scenario={self.manifest.get('scenario')!r})"


def install_directory(src: Path, out: Path) -> None:
    """Move a finished dataset directory to ``out``, replacing an older dataset there.

    Two renames, so a reader sees the old dataset or the new one, never half of either.
    """
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        src.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        src.rename(out)
