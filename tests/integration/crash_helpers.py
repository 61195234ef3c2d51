"""A Mosquitto process of a test's own, configured like the shipped one, that the test may kill -9;
and what a store server holds afterwards.

The shared broker on 1883 serves every test (and other runs on the machine): never kill that one.
This one runs on a free port with its config and persistence directory in ``tmp_path``. Its settings
are the lines of deploy/mosquitto/mosquitto.conf (or ``WALKOUT_TEST_MOSQUITTO_CONF``, to try another
config) with only what is machine-specific rewritten: listener, authentication, paths and logging.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from store_server.adapters import orm
from store_server.bootstrap import StoreServer

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
# Keys the test sets itself: where to listen, who may connect, where files go, where logs go.
REWRITTEN = frozenset(
    {
        "listener",
        "port",
        "bind_address",
        "protocol",
        "allow_anonymous",
        "password_file",
        "acl_file",
        "persistence_location",
        "persistence_file",
        "log_dest",
        "log_type",
        "connection_messages",
        "user",
        "pid_file",
    }
)


def conf_under_test() -> Path:
    return Path(os.environ.get("WALKOUT_TEST_MOSQUITTO_CONF", SHIPPED_CONF))


def conf_lines(path: Path) -> list[str]:
    """The setting lines of a Mosquitto config, comments and blank lines left out."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def kept_lines(path: Path) -> list[str]:
    """The lines of ``path`` the test broker runs with, verbatim: everything but ``REWRITTEN``."""
    return [line for line in conf_lines(path) if line.split()[0] not in REWRITTEN]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        pytest.fail(
            "these tests start their own Mosquitto: install it (apt-get install mosquitto)", pytrace=False
        )
    return found


class MosquittoProcess:
    """``start()``, ``kill9()`` (no chance to save), ``start()`` again on the same port and files."""

    def __init__(self, tmp: Path, lines: list[str]) -> None:
        self.dir = tmp / "mosquitto"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.lines = lines
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    f"persistence_location {self.dir}/",
                    # As root, Mosquitto would switch to its own user, who cannot write to tmp_path.
                    f"user {getpass.getuser()}",
                    "log_dest stdout",
                    *lines,
                    "",
                ]
            )
        )
        self.log = self.dir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self, timeout_s: float = 30.0) -> MosquittoProcess:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                pytest.fail(
                    f"mosquitto exited with {self._proc.returncode}:\n{self.log_tail()}", pytrace=False
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"mosquitto did not listen on {self.port} within {timeout_s:.0f} s:\n{self.log_tail()}")

    def kill9(self) -> None:
        assert self._proc is not None and self._proc.poll() is None, "the broker is not running"
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(30)
        self.kills += 1

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def stored_ids(server: StoreServer) -> set[str]:
    """Ids in the inbox, plus those of dead letters (a message the server refused is still not lost)."""
    with server.engine.connect() as conn:
        ids = set(conn.execute(select(orm.inbox_messages.c.msg_id)).scalars())
        for raw in conn.execute(select(orm.dead_letters.c.payload)).scalars():
            try:
                payload = json.loads(raw)
                ids.add(f"{payload['node_id']}:{payload['seq']}")
            except (ValueError, KeyError, TypeError):
                continue
    return ids


def wait_for_store(server: StoreServer, wanted: set[str], quiet_s: float = 20.0) -> set[str]:
    """Wait until the store holds ``wanted``, or nothing new arrived for ``quiet_s``; what it holds."""
    last_change, last = time.monotonic(), -1
    while True:
        ids = stored_ids(server)
        if wanted <= ids:
            return ids
        if len(ids) != last:
            last_change, last = time.monotonic(), len(ids)
        elif time.monotonic() - last_change > quiet_s:
            return ids
        time.sleep(0.2)
