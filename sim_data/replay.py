"""Replaying a dataset's messages onto a broker, at the original pace scaled by ``speed`` or flat out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol


class _Message(Protocol):
    @property
    def t(self) -> float: ...

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...


class _Sink(Protocol):
    def publish_raw(self, topic_name: str, payload: dict[str, Any] | bytes, retain: bool = False) -> None: ...

    def flush(self, timeout_s: float = 30.0) -> None: ...


def retarget(topic_name: str, prefix: str | None) -> str:
    """Move a topic under another prefix (so runs on a shared broker never see each other)."""
    if prefix is None:
        return topic_name
    return prefix + topic_name[topic_name.index("/") :]


def replay(
    messages: Iterable[_Message],
    sink: _Sink,
    speed: float | None = None,
    prefix: str | None = None,
    on_message: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Publish every message in order; ``speed`` None means as fast as the broker takes them."""
    start_wall: float | None = None
    start_t = 0.0
    count = 0
    for message in messages:
        if speed:
            if start_wall is None:
                start_wall, start_t = clock(), message.t
            wait = start_wall + (message.t - start_t) / speed - clock()
            if wait > 0:
                sleep(wait)
        sink.publish_raw(retarget(message.topic, prefix), message.payload)
        count += 1
        if on_message:
            on_message(count)
    sink.flush()
    return count
