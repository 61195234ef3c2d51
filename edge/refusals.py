"""What an edge process could not publish: counted by what and why, logged without flooding the log.

No single value may stop an edge node: a NaN floor position, a dead load cell, 300 people in view.
Values that cannot be sent are dropped where they arise (a track point, a detection, an event, a
frame), each with a reason; a message that still fails the contract when it is built is refused as
the last line of defence. Both go through :class:`Refusals`: the first of each kind is logged at
once, repeats at most once per ``every_s`` with how many there were since, so a broken camera that
refuses 10 points a frame writes one line every half minute, not 50 a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from pydantic import ValidationError

logger = logging.getLogger(__name__)

LOG_EVERY_S = 30.0


def describe(exc: ValidationError) -> tuple[str, str]:
    """The first error's field (list positions left out: ``tracks.x_m``) and reason."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int))
    if not loc:  # a cross-field check names its field in ctx (edge.contracts._field_error)
        loc = str((err.get("ctx") or {}).get("field", ""))
    return loc or "message", str(err.get("msg", "invalid")).removeprefix("Value error, ")


class Refusals:
    """Thread-safe counts of refused values by ``what:field``; ``last_at`` is the monotonic time of the
    latest one (the node reports itself degraded for a while after it)."""

    def __init__(
        self, source: str, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self.every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self.last_at: float | None = None

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def add(self, what: str, field: str, reason: str, n: int = 1) -> None:
        """``n`` values of kind ``what`` were not published because ``field`` is wrong: ``reason``."""
        if n <= 0:
            return
        key = f"{what}:{field}"
        with self._lock:
            now = self._clock()
            self.last_at = now
            self.counts[key] += n
            self._unlogged[key] += n
            last = self._logged_at.get(key)
            if last is not None and now - last < self.every_s:
                return
            self._logged_at[key] = now
            count = self._unlogged.pop(key)
            total = self.counts[key]
        logger.warning(
            "%s: dropped %d %s (field %r: %s); %d so far, repeats logged at most every %.0f s",
            self.source,
            count,
            what,
            field,
            reason,
            total,
            self.every_s,
        )

    def refuse(self, what: str, exc: ValidationError, n: int = 1) -> None:
        field, reason = describe(exc)
        self.add(what, field, reason, n)

    def recent(self, within_s: float) -> bool:
        """True when something was refused in the last ``within_s`` seconds."""
        with self._lock:
            return self.last_at is not None and self._clock() - self.last_at < within_s
