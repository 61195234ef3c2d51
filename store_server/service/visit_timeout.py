"""The visit timeout: a shopper gone for good (never seen at the exit) does not keep a visit open forever.

A visit whose shopper no track, cart change or entry has shown for ``timeout_s`` of event time is
closed by the policy (state ``timed_out``): nothing is charged, and a cart with goods in it becomes a
review item for staff. It is a decision like any other, taken in the decision transaction and ordered
by event time: before a message due at ``t`` is decided, every visit whose timeout ran out at or
before ``t`` is closed, so the same messages give the same visits at any replay speed and after a
restart.

"Seen" needs sightings older than the track history keeps (two minutes): the latest sighting of every
track the history forgets is kept here (pruned after ``timeout_s``) and rebuilt from the inbox on
recovery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from store_server import metrics
from store_server.domain.fusion import TrackHistory
from store_server.domain.layout import StoreLayout
from store_server.domain.session import ShopperSession
from store_server.service import review_open
from store_server.service.handlers import Outcome
from store_server.service.ports import UnitOfWork

logger = logging.getLogger(__name__)

RECOVER_MARGIN_S = 60.0  # sightings read back on recovery beyond the timeout


@dataclass
class VisitTimeouts:
    tracks: TrackHistory
    layout: StoreLayout
    timeout_s: float = 1800.0  # 0 turns the policy off
    # track id -> latest sighting (event time) the track history has forgotten
    seen: dict[str, float] = field(default_factory=dict)
    # No open visit can run out before this event time; a lower bound that spares a query per
    # decision. New visits run out ``timeout_s`` after their entry, so a check is never needed
    # sooner than half the timeout after the last one.
    _next_check: float = float("-inf")
    _pruned_at: float = float("-inf")

    @property
    def enabled(self) -> bool:
        return self.timeout_s > 0

    def last_seen(self, session: ShopperSession, until: float) -> float:
        """The latest event time at or before ``until`` the shopper of ``session`` was seen."""
        best = session.last_evidence()
        for track_id in session.track_ids():
            point = self.tracks.last_seen(track_id, until)
            if point is not None:
                best = max(best, point[0])
            best = max(best, self.seen.get(track_id, best))
        return best

    def expire(self, uow: UnitOfWork, until: float) -> list[tuple[str, Outcome]]:
        """Close every open visit whose timeout ran out at or before ``until``; (session id, outcome)."""
        if not self.enabled or until < self._next_check:
            return []
        out: list[tuple[str, Outcome]] = []
        next_check = until + self.timeout_s / 2
        for session in uow.sessions.open_sessions():
            last = self.last_seen(session, until)
            deadline = last + self.timeout_s
            if deadline <= until:
                out.append((session.id, self._close(uow, session, last, deadline)))
            else:
                next_check = min(next_check, deadline)
        self._next_check = next_check
        return out

    def _close(self, uow: UnitOfWork, session: ShopperSession, last: float, deadline: float) -> Outcome:
        had_goods = bool(session.cart())
        session.time_out(last)
        uow.sessions.save(session)
        if had_goods:
            review_open.open_visit_timeout(self.layout, uow, session, last, deadline, self.timeout_s)
        metrics.DECISIONS.labels(outcome="visit_timed_out").inc()
        logger.warning(
            "session %s timed out: not seen since %.3f (%.0f s); %s",
            session.id,
            last,
            self.timeout_s,
            "cart sent to review, not charged" if had_goods else "empty cart",
        )
        return Outcome("timed_out", session.id)

    def remember(self, watermark: float) -> None:
        """Keep the latest sighting of each track before the history forgets it (call just before
        ``TrackHistory.forget_before(watermark)``)."""
        if not self.enabled:
            return
        cutoff = watermark - self.tracks.horizon_s
        for track_id in self.tracks.track_ids():
            point = self.tracks.last_seen(track_id, cutoff)
            if point is not None and point[0] > self.seen.get(track_id, float("-inf")):
                self.seen[track_id] = point[0]
        # Every visit last seen before the floor was closed by the expire() at this watermark, so
        # older sightings can no longer change a decision.
        if watermark - self._pruned_at >= 60.0:
            floor = watermark - self.timeout_s
            self.seen = {t: ts for t, ts in self.seen.items() if ts >= floor}
            self._pruned_at = watermark

    def recover(self, uow: UnitOfWork, watermark: float) -> None:
        """Rebuild the forgotten sightings from the inbox after a restart."""
        if not self.enabled:
            return
        until = watermark - self.tracks.horizon_s
        since = until - self.timeout_s - RECOVER_MARGIN_S
        self.seen = uow.inbox.track_sightings(since, until)
        self._next_check = float("-inf")
