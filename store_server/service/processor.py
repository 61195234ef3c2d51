"""The store processor: ingest a batch, decide what is due by event time, deliver the outbox.

One worker thread calls :meth:`StoreProcessor.handle_batch`. Every batch is stored in the inbox and
committed before the MQTT acknowledgement, so a crash loses nothing; decisions run in the order
(due, ts, msg_id) once the watermark passes ``due``, so the same messages give the same carts and
receipts at any replay speed and after any restart.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.contracts import GatePass, WeightEvent, decode_any
from store_server import metrics
from store_server.backend.api import OrderBackend, OrderIn
from store_server.domain.fusion import TrackHistory
from store_server.domain.layout import StoreLayout
from store_server.domain.sightings import Sightings
from store_server.domain.watermark import Watermark
from store_server.service import exit_wait, handlers
from store_server.service.grants import NodeGrants
from store_server.service.ingest import (
    ClockBounds,
    DecisionDelays,
    RawMessage,
    Sorted,
    dead_letter,
    sort_messages,
)
from store_server.service.ports import Clock, DeadLetter, InboxRow, Mailer, PaymentGateway, UnitOfWork
from store_server.service.sensor_health import SensorHealth
from store_server.service.visit_timeout import VisitTimeouts

logger = logging.getLogger(__name__)

TRACK_HORIZON_S = 120.0
# Every decision looks at every track of the horizon, so their number is bounded: a camera that invents
# thousands of track ids (a hostile or broken node) must not slow every later decision down.
MAX_LIVE_TRACKS = 2000
OUTBOX_RETRY_S = 30.0
LATENCIES_KEPT = 10_000  # receipt latencies of the most recent visits (KPIs, benchmarks)
POISON_PAYLOAD_KEPT = 4096
# Errors of the outside world (database, network, payment provider): the batch is retried, never
# dead-lettered. Recognised by type (OSError: ConnectionError, TimeoutError, ...) or by the library
# that raised them, since the service layer does not import the adapters' libraries.
OUTAGE_LIBRARIES = frozenset({"sqlalchemy", "psycopg", "psycopg2", "sqlite3", "httpx", "httpcore", "paho"})


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    return any(cls.__module__.partition(".")[0] in OUTAGE_LIBRARIES for cls in type(exc).__mro__)


def expected_nodes(layout: StoreLayout) -> frozenset[str]:
    nodes = [g.node_id for g in layout.gondolas] + [g.node_id for g in layout.gates]
    nodes += [c.node_id for c in layout.cameras]
    return frozenset(n for n in nodes if n)


@dataclass
class StoreProcessor:
    layout: StoreLayout
    uow_factory: Callable[[], UnitOfWork]
    payments: PaymentGateway
    mailer: Mailer
    backend: OrderBackend
    clock: Clock
    delays: DecisionDelays = field(default_factory=DecisionDelays)
    reach_m: float = 1.5
    prefix: str = "walkout"
    stale_after_s: float = 10.0
    render_receipt: Callable[..., str] | None = None
    latencies_s: dict[str, float] = field(default_factory=dict)  # session id -> receipt latency
    # The reference clock event times are checked against: the system clock in production; None = a
    # replay, where the nodes' consensus (Watermark.consensus) is the clock, ``replay_start`` until
    # more than half of the nodes have been heard.
    reference_clock: Clock | None = None
    replay_start: float | None = None
    max_clock_skew_s: float = 300.0  # how far ahead of the reference an event time may be
    max_event_age_s: float = 86_400.0  # how far behind (an edge node flushing a day's spool is fine)
    visit_timeout_s: float = 1800.0  # event time a shopper may go unseen before the visit closes
    # Called by the worker after every batch (retention, see service/housekeeping.py).
    housekeeping: Callable[[], object] | None = None

    def __post_init__(self) -> None:
        self.tracks = TrackHistory(horizon_s=TRACK_HORIZON_S)
        # Camera item detections, kept like the tracks: fusion weighs them for the events it decides.
        self.sightings = Sightings(horizon_s=TRACK_HORIZON_S)
        self.sensor_health = SensorHealth(self.layout)  # the shelf nodes' word on their load cells
        self.grants = NodeGrants(self.layout)
        self.watermark = Watermark(
            expected_nodes(self.layout),
            self.stale_after_s,
            max_ahead_s=self.max_clock_skew_s,
            clock=self.reference_clock.now if self.reference_clock else None,
            start=self.replay_start,
        )
        self.ctx = handlers.Context(
            self.layout, self.tracks, self.payments, self.delays.assign_window_s, self.reach_m
        )
        self.ctx.sightings = self.sightings
        self.ctx.sensor_health = self.sensor_health
        self._lock = threading.Lock()
        self.receipt_listeners: list[Callable[[str], None]] = []
        # Issue 6, live push: called after each commit with ("tracks", rows), ("status", statuses) or
        # ("decided", [(msg_id, outcome)]). Listeners must be quick and must not raise.
        self.live_listeners: list[Callable[[str, object], None]] = []
        self._outbox_retry_at: dict[int, float] = {}
        self._live_tracks: set[str] = set()  # the track ids in self.tracks (kept in step with it)
        self._refused_tracks = 0
        self.visits = VisitTimeouts(self.tracks, self.layout, self.visit_timeout_s)

    # -- start-up -------------------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild the in-memory state (watermarks, recent tracks) from the inbox after a restart."""
        with self.uow_factory() as uow:
            for node, ts in uow.inbox.node_watermarks().items():
                self.watermark.observe(node, ts)
            since = self.watermark.value() - TRACK_HORIZON_S
            rows = uow.inbox.of_kind_since("tracks", since) if self.watermark.latest else []
            seen = uow.inbox.of_kind_since("detections", since) if self.watermark.latest else []
            if self.watermark.latest:
                self.visits.recover(uow, self.watermark.value())
        for row in rows:
            self._remember_tracks(row)
        for row in seen:
            self._remember_detections(row)
        if self.watermark.latest:
            logger.info(
                "recovered: watermark %.3f, %d track and %d detections messages",
                self.watermark.value(),
                len(rows),
                len(seen),
            )
        self.process_due()
        self.relay_outbox()

    # -- the worker's entry point ---------------------------------------------------------------
    def handle_batch(self, raw: list[RawMessage]) -> None:
        with self._lock:
            self._ingest(raw)
            self.process_due()
            self.relay_outbox()
            if self.housekeeping is not None:
                self.housekeeping()

    def _ingest(self, raw: list[RawMessage]) -> None:
        """Store a batch; when it cannot be stored, split it until the message that cannot is found.

        That message is dead-lettered and the rest stored. A database that is down fails the dead
        letter too: that is an outage, and the error goes up so that the batch is retried, unacknowledged.
        """
        try:
            self._store(raw)
        except Exception as exc:
            if len(raw) == 1:
                self._store_or_dead_letter(raw[0], exc)
                return
            if not self._takes_writes():
                raise  # an outage: splitting would only repeat the failure (and its timeouts)
            middle = len(raw) // 2
            self._ingest(raw[:middle])
            self._ingest(raw[middle:])

    def _takes_writes(self) -> bool:
        """Does the database take a write at all? (A dead letter, rolled back at once.)"""
        try:
            with self.uow_factory() as uow:
                uow.dead_letters.add(DeadLetter("walkout/probe", b"", "probe", "", 0.0))
        except Exception:
            return False
        return True

    def _store_or_dead_letter(self, item: RawMessage, first: Exception) -> None:
        try:
            self._store([item])  # once more: a passing hiccup is not a poison message
            return
        except Exception as exc:
            error = exc
        letter = dead_letter(item, f"the message could not be stored: {error!r}", "payload")
        # The second letter keeps only the start of the payload, in case its size was the trouble.
        short = dataclasses.replace(letter, payload=item.payload[:POISON_PAYLOAD_KEPT])
        for attempt in (letter, short):
            try:
                with self.uow_factory() as uow:
                    uow.dead_letters.add(attempt)
                    uow.commit()
                break
            except Exception:
                continue
        else:
            logger.warning("cannot store a message nor its dead letter: the database is unreachable")
            raise first from None
        metrics.DEAD_LETTERS.labels(field="payload").inc()
        logger.error("dead-lettered a message on %.255s: %s", item.topic, letter.reason)

    def clock_bounds(self) -> ClockBounds:
        return ClockBounds(self.watermark.reference(), self.max_clock_skew_s, self.max_event_age_s)

    def _store(self, raw: list[RawMessage]) -> None:
        sorted_: Sorted = sort_messages(
            raw, self.prefix, self.layout.store_id, self.delays, self.grants, self.clock_bounds()
        )
        with self.uow_factory() as uow:
            new = uow.inbox.add_many(sorted_.rows) if sorted_.rows else []
            for letter in sorted_.dead:
                uow.dead_letters.add(letter)
            uow.commit()
        sorted_.count()
        metrics.DUPLICATES.inc(len(sorted_.rows) - len(new))
        wm = self.watermark.value()
        for row in new:
            if row.ts < wm:
                metrics.LATE.inc()
            if row.kind == "tracks":
                self._remember_tracks(row)
            elif row.kind == "detections":
                self._remember_detections(row)
            self.watermark.observe(row.node_id, row.ts)
        for node_id, ts in sorted_.samples:
            self.watermark.observe(node_id, ts)
        for status in sorted_.statuses:
            self.sensor_health.update(status)
            if status.state == "offline":
                self.watermark.went_offline(status.node_id)
        metrics.WATERMARK.set(max(self.watermark.value(), 0.0))
        self._emit("tracks", [r for r in new if r.kind == "tracks"])  # issue 6: live map
        if sorted_.statuses:
            self._emit("status", sorted_.statuses)  # issue 6: node health

    @property
    def lock(self) -> threading.Lock:
        """Held while a batch is ingested and decided; commands that change carts (staff review
        resolutions) take it too, so they run between batches (issue 6)."""
        return self._lock

    def _emit(self, kind: str, data: object) -> None:
        for listener in self.live_listeners:
            try:
                listener(kind, data)
            except Exception:  # a screen must never stop the store
                logger.exception("live listener failed on %s", kind)

    def _remember_tracks(self, row: InboxRow) -> None:
        live = self._live_tracks
        for point in row.payload.get("tracks", []):
            track_id = point["track_id"]
            if track_id not in live:
                if len(live) >= MAX_LIVE_TRACKS:
                    self._refused_tracks += 1
                    continue
                live.add(track_id)
            self.tracks.add(track_id, row.ts, point["x_m"], point["y_m"])

    def _remember_detections(self, row: InboxRow) -> None:
        self.sightings.add_message(row.msg_id, row.ts, row.payload, self.layout.products)

    # -- decisions --------------------------------------------------------------------------------
    def process_due(self, batch: int = 200) -> int:
        """Decide every stored message whose due time the watermark has passed; return how many."""
        done = 0
        while True:
            watermark = self.watermark.value()
            receipts: list[tuple[str, float]] = []
            decided: list[tuple[str, handlers.Outcome]] = []  # issue 6: for the live push
            postponed = False
            with self.uow_factory() as uow:
                rows = uow.inbox.due(watermark, batch)
                taken: list[str] = []
                for row in rows:
                    # Visits whose timeout ran out before this message are closed first (event time).
                    decided += self.visits.expire(uow, row.due)
                    try:
                        outcome = self._decide(uow, row)
                    except Exception as exc:
                        # A message this code cannot decide on is data, not a reason to stop the store.
                        # Outages (database, gateway) go up and the batch is retried.
                        if is_outage(exc):
                            raise
                        logger.exception("could not decide on %s; dead-lettered", row.msg_id)
                        outcome = handlers.reject(
                            uow,
                            row.msg_id,
                            row.topic,
                            row.payload,
                            f"decision failed: {exc!r}",
                            "payload",
                            row.received_at,
                        )
                    if outcome.kind == "postponed":
                        # An exit waiting for a shelf: decided again a little later, and what comes
                        # after it in (due, ts, id) order waits with it.
                        uow.inbox.postpone(row.msg_id, row.due + exit_wait.RECHECK_S)
                        postponed = True
                        break
                    taken.append(row.msg_id)
                    if outcome.kind == "receipt" and outcome.session_id:
                        receipts.append((outcome.session_id, row.received_at))
                    if outcome.kind != "evidence":
                        decided.append((row.msg_id, outcome))
                if len(rows) < batch and not postponed:
                    decided += self.visits.expire(uow, watermark)
                uow.inbox.mark_processed(taken)
                open_now = len(uow.sessions.open_sessions())
                uow.commit()
            now = self.clock.now()
            for session_id, received_at in receipts:
                latency = max(0.0, now - received_at)
                self.latencies_s[session_id] = latency
                if len(self.latencies_s) > LATENCIES_KEPT:  # insertion order: the oldest goes
                    del self.latencies_s[next(iter(self.latencies_s))]
                metrics.RECEIPT_LATENCY.observe(latency)
                for listener in self.receipt_listeners:
                    listener(session_id)
            metrics.OPEN_SESSIONS.set(open_now)
            if decided:
                self._emit("decided", decided)  # issue 6: after the commit, so screens show what is stored
            done += len(taken)
            if len(rows) < batch and not postponed:  # a postponed exit may be due again already
                break
        self.visits.remember(self.watermark.value())
        self.tracks.forget_before(self.watermark.value())
        self.sightings.forget_before(self.watermark.value())
        self._live_tracks = set(self.tracks.track_ids())
        if self.sightings.refused:
            logger.warning(
                "%d item sightings refused: more than %d within %.0f s (a camera flooding detections?)",
                self.sightings.refused,
                self.sightings.max_kept,
                TRACK_HORIZON_S,
            )
            self.sightings.refused = 0
        if self._refused_tracks:
            logger.warning(
                "%d track points refused: more than %d tracks within %.0f s (a camera inventing ids?)",
                self._refused_tracks,
                MAX_LIVE_TRACKS,
                TRACK_HORIZON_S,
            )
            self._refused_tracks = 0
        return done

    def _decide(self, uow: UnitOfWork, row: InboxRow) -> handlers.Outcome:
        message = decode_any(row.payload)
        if isinstance(message, WeightEvent | GatePass):
            handlers.follow_tracks(self.ctx, uow, row.due)
        if isinstance(message, WeightEvent):
            return handlers.change_cart(self.ctx, uow, message, row.topic, row.received_at)
        if isinstance(message, GatePass):
            if message.direction == "entry":
                return handlers.open_session(self.ctx, uow, message, row.topic, row.received_at)
            return handlers.close_session(self.ctx, uow, message, row.topic, row.received_at, row.due)
        return handlers.Outcome("evidence")

    # -- the transactional outbox -----------------------------------------------------------------
    def relay_outbox(self) -> int:
        """Deliver committed orders to the backend and receipts to the mailer; retried until sent.

        An item that fails waits ``OUTBOX_RETRY_S`` before its next try and does not hold up the others.
        """
        sent = 0
        now = self.clock.now()
        with self.uow_factory() as uow:
            items = uow.outbox.pending(500)
        pending = {item.id for item in items}  # retry times of items sent or gone are dropped
        self._outbox_retry_at = {k: t for k, t in self._outbox_retry_at.items() if k in pending}
        for item in items:
            if self._outbox_retry_at.get(item.id, 0.0) > now:
                continue
            try:
                if item.kind == "order":
                    self.backend.place_order(OrderIn.model_validate(item.payload))
                elif item.kind == "receipt_mail":
                    self._mail(item.payload["receipt_id"])
            except LookupError as exc:  # nobody to deliver to (no e-mail address): nothing to retry
                logger.warning(
                    "outbox item %s (%s %s) has no recipient: %s", item.id, item.kind, item.key, exc
                )
            except Exception:
                logger.exception(
                    "outbox item %s (%s %s) not delivered; will retry", item.id, item.kind, item.key
                )
                self._outbox_retry_at[item.id] = now + OUTBOX_RETRY_S
                continue
            with self.uow_factory() as uow:
                uow.outbox.mark_sent(item.id)
                uow.commit()
            self._outbox_retry_at.pop(item.id, None)
            sent += 1
        return sent

    def _mail(self, receipt_id: str) -> None:
        with self.uow_factory() as uow:
            receipt = uow.receipts.get(receipt_id)
        if receipt is None:
            raise RuntimeError(f"receipt {receipt_id} is not stored")
        text = self.render_receipt(receipt, self.layout.name) if self.render_receipt else str(receipt)
        self.mailer.send_receipt(receipt, text)
