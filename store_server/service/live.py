"""The live hub: JSON events fanned out to the browsers that listen (Server-Sent Events).

``publish`` may be called from any thread (the decision worker, the feed thread): it hands the event
to the event loop with ``call_soon_threadsafe``. Each subscriber has a bounded queue; one that cannot
keep up is dropped and its browser reconnects to a fresh snapshot (EventSource does that by itself),
so a slow screen never slows the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Event = dict[str, Any]
Filter = Callable[[Event], bool]


@dataclass(eq=False)
class Subscription:
    accepts: Filter
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(maxsize=2000))
    dropped: bool = False

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None after ``timeout`` seconds (time for a keep-alive)."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class LiveHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self.published = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called once the web server's loop runs (app startup)."""
        self._loop = loop

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, accepts: Filter) -> Subscription:
        sub = Subscription(accepts)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def publish(self, event: Event) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not self._subs:
            return
        self.published += 1
        with contextlib.suppress(RuntimeError):  # the loop closed since the check (shutdown)
            loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if sub.dropped:
                continue
            try:
                if sub.accepts(event):
                    sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("a live subscriber fell behind; it reconnects to a new snapshot")
                sub.dropped = True
                self.unsubscribe(sub)
                sub.queue._queue.clear()  # type: ignore[attr-defined]  # make room for the end marker
                sub.queue.put_nowait(None)
            except Exception:
                logger.exception("live filter failed")
