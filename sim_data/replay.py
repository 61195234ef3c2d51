"""Replaying a dataset's messages onto a broker, at the original pace scaled by ``speed`` or flat out.

:func:`replay` publishes any stream of messages (the run pipeline and the live demo use it).
:func:`replay_dataset` adds what ``walkout replay`` needs on top: looping (each pass shifted in time
and renumbered so message ids stay unique), resuming after the first N messages, and a clean stop.
A broker restart does not stop a replay (the publisher reconnects and sends again what the broker may
have lost); a broker that stays away ends it with :class:`ReplayInterrupted`, which names the message
to resume from.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from edge.contracts import RecordedMessage
from sim_data.dataset import Dataset, SimMessage

TIME_FIELDS = ("ts", "t_start", "t_end")  # payload fields holding event times (plus the line's ``t``)
LOOP_GAP_S = 1.0  # between the end of one pass and the start of the next


class _Sink(Protocol):
    """Where messages go: :class:`edge.publisher.Publisher`, or a fake. A sink that also has the
    publisher's ``published`` and ``settled`` counters gives a resume point on failure."""

    def publish_raw(self, topic_name: str, payload: dict[str, Any] | bytes, retain: bool = False) -> None: ...

    def flush(self, timeout_s: float | None = None) -> None: ...


class ReplayInterrupted(ConnectionError):
    """The broker went away for good during a replay. Resume at ``next_message``: the broker kept
    every message before it; some after it may have arrived already (the store server keeps one)."""

    def __init__(self, reason: str, next_message: int) -> None:
        super().__init__(f"{reason}; resume with --from-message {next_message}")
        self.reason = reason
        self.next_message = next_message


def retarget(topic_name: str, prefix: str | None) -> str:
    """Move a topic under another prefix (so runs on a shared broker never see each other)."""
    if prefix is None:
        return topic_name
    return prefix + topic_name[topic_name.index("/") :]


def replay(
    messages: Iterable[RecordedMessage],
    sink: _Sink,
    speed: float | None = None,
    prefix: str | None = None,
    on_message: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
) -> int:
    """Publish every message in order; ``speed`` None means as fast as the broker takes them.

    With ``stop``, setting it ends the replay before the next message (also while waiting for one);
    the return value is always the number of messages handed to the sink.
    """
    start_wall: float | None = None
    start_t = 0.0
    count = 0
    for message in messages:
        if stop is not None and stop.is_set():
            break
        if speed:
            if start_wall is None:
                start_wall, start_t = clock(), message.t
            wait = start_wall + (message.t - start_t) / speed - clock()
            if wait > 0:
                if stop is not None:
                    if stop.wait(wait):
                        break
                else:
                    sleep(wait)
        sink.publish_raw(retarget(message.topic, prefix), message.payload)
        count += 1
        if on_message:
            on_message(count)
    sink.flush()
    return count


def shift_message(message: RecordedMessage, dt: float, seq_offsets: dict[str, int]) -> SimMessage:
    """A copy of ``message`` ``dt`` seconds later, its ``seq`` raised by its node's offset."""
    payload = dict(message.payload)
    for key in TIME_FIELDS:
        value = payload.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            payload[key] = round(value + dt, 6)
    seq = payload.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool):
        payload["seq"] = seq + seq_offsets.get(str(payload.get("node_id")), 0)
    return SimMessage(round(message.t + dt, 6), message.topic, payload)


def looped(
    source: Callable[[], Iterable[RecordedMessage]], loops: int | None, duration_s: float = 0.0
) -> Iterator[RecordedMessage]:
    """The messages of ``source()`` repeated ``loops`` times (None: forever).

    Pass k is shifted k × (duration + 1 s) later, so times keep increasing; every node's ``seq`` is
    raised by k × (its highest seq + 1), so ``node_id:seq`` ids never repeat. The span is taken from the
    data when it is longer than ``duration_s`` (a manifest can understate it).
    """
    first_t: float | None = None
    last_t = 0.0
    max_seq: dict[str, int] = {}
    for message in source():
        first_t = message.t if first_t is None else first_t
        last_t = max(last_t, message.t)
        seq, node = message.payload.get("seq"), message.payload.get("node_id")
        if isinstance(seq, int) and node is not None:
            max_seq[str(node)] = max(max_seq.get(str(node), -1), seq)
        yield message
    if first_t is None:
        return
    period = max(duration_s, last_t - first_t) + LOOP_GAP_S
    passes = itertools.count(1) if loops is None else range(1, loops)
    for k in passes:
        offsets = {node: k * (seq + 1) for node, seq in max_seq.items()}
        for message in source():
            yield shift_message(message, k * period, offsets)


@dataclass(frozen=True)
class ReplayResult:
    published: int  # messages handed to the broker (and acknowledged) in this call
    next_message: int  # resume with --from-message next_message
    stopped: bool  # ended by the stop event (Ctrl-C) rather than by running out


def replay_dataset(
    dataset: Dataset,
    sink: _Sink,
    speed: float | None = None,
    loops: int | None = 1,
    from_message: int = 0,
    prefix: str | None = None,
    stop: threading.Event | None = None,
    on_message: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay a dataset ``loops`` times (None: until stopped), skipping its first ``from_message``.

    Message numbers count across loops, so ``from_message`` resumes a looping replay where it stopped.
    ``on_message`` gets the absolute number of messages done so far (skipped ones included).
    """
    if from_message < 0:
        raise ValueError("from_message must be 0 or more")
    if loops is not None and loops < 1:
        raise ValueError("loops must be 1 or more (or None to loop until stopped)")
    stop = stop or threading.Event()
    duration = float(dataset.manifest.get("duration_s") or 0.0)
    stream = itertools.islice(looped(dataset.messages, loops, duration), from_message, None)
    tick = None if on_message is None else (lambda n: on_message(from_message + n))
    before = getattr(sink, "published", None)
    try:
        sent = replay(stream, sink, speed=speed, prefix=prefix, on_message=tick, stop=stop)
    except ConnectionError as exc:
        settled = getattr(sink, "settled", None)
        safe = settled - before if isinstance(before, int) and isinstance(settled, int) else 0
        raise ReplayInterrupted(str(exc), from_message + max(0, safe)) from exc
    return ReplayResult(sent, from_message + sent, stop.is_set())
