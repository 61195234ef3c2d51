"""The store processor: ingest a batch, decide what is due by event time, deliver the outbox.

One worker thread calls :meth:`StoreProcessor.handle_batch`. Every batch is stored in the inbox and
committed before the MQTT acknowledgement, so a crash loses nothing; decisions run in the order
(due, ts, msg_id) once the watermark passes ``due``, so the same messages give the same carts and
receipts at any replay speed and after any restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.contracts import GatePass, WeightEvent, decode_any
from store_server import metrics
from store_server.backend.api import OrderBackend, OrderIn
from store_server.domain.fusion import TrackHistory
from store_server.domain.layout import StoreLayout
from store_server.domain.watermark import Watermark
from store_server.service import handlers
from store_server.service.ingest import DecisionDelays, RawMessage, sort_messages
from store_server.service.ports import Clock, InboxRow, Mailer, PaymentGateway, UnitOfWork

logger = logging.getLogger(__name__)

TRACK_HORIZON_S = 120.0
OUTBOX_RETRY_S = 30.0
DATA_ERRORS = (KeyError, ValueError, TypeError, ArithmeticError, IndexError)


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

    def __post_init__(self) -> None:
        self.tracks = TrackHistory(horizon_s=TRACK_HORIZON_S)
        self.watermark = Watermark(expected_nodes(self.layout), self.stale_after_s)
        self.ctx = handlers.Context(
            self.layout, self.tracks, self.payments, self.delays.assign_window_s, self.reach_m
        )
        self._lock = threading.Lock()
        self.receipt_listeners: list[Callable[[str], None]] = []
        # Issue 6, live push: called after each commit with ("tracks", rows), ("status", statuses) or
        # ("decided", [(msg_id, outcome)]). Listeners must be quick and must not raise.
        self.live_listeners: list[Callable[[str, object], None]] = []
        self._outbox_retry_at: dict[int, float] = {}

    # -- start-up -------------------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild the in-memory state (watermarks, recent tracks) from the inbox after a restart."""
        with self.uow_factory() as uow:
            for node, ts in uow.inbox.node_watermarks().items():
                self.watermark.observe(node, ts)
            since = self.watermark.value() - TRACK_HORIZON_S
            rows = uow.inbox.of_kind_since("tracks", since) if self.watermark.latest else []
        for row in rows:
            self._remember_tracks(row)
        if self.watermark.latest:
            logger.info("recovered: watermark %.3f, %d track messages", self.watermark.value(), len(rows))
        self.process_due()
        self.relay_outbox()

    # -- the worker's entry point ---------------------------------------------------------------
    def handle_batch(self, raw: list[RawMessage]) -> None:
        with self._lock:
            self._ingest(raw)
            self.process_due()
            self.relay_outbox()

    def _ingest(self, raw: list[RawMessage]) -> None:
        sorted_ = sort_messages(raw, self.prefix, self.layout.store_id, self.delays)
        with self.uow_factory() as uow:
            new = uow.inbox.add_many(sorted_.rows) if sorted_.rows else []
            for letter in sorted_.dead:
                uow.dead_letters.add(letter)
            uow.commit()
        metrics.DUPLICATES.inc(len(sorted_.rows) - len(new))
        wm = self.watermark.value()
        for row in new:
            if row.ts < wm:
                metrics.LATE.inc()
            if row.kind == "tracks":
                self._remember_tracks(row)
            self.watermark.observe(row.node_id, row.ts)
        for node_id, ts in sorted_.samples:
            self.watermark.observe(node_id, ts)
        for status in sorted_.statuses:
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
        for point in row.payload.get("tracks", []):
            self.tracks.add(point["track_id"], row.ts, point["x_m"], point["y_m"])

    # -- decisions --------------------------------------------------------------------------------
    def process_due(self, batch: int = 200) -> int:
        """Decide every stored message whose due time the watermark has passed; return how many."""
        done = 0
        while True:
            watermark = self.watermark.value()
            receipts: list[tuple[str, float]] = []
            decided: list[tuple[str, handlers.Outcome]] = []  # issue 6: for the live push
            with self.uow_factory() as uow:
                rows = uow.inbox.due(watermark, batch)
                for row in rows:
                    try:
                        outcome = self._decide(uow, row)
                    except DATA_ERRORS as exc:
                        # A message this code cannot decide on is data, not a reason to stop the store.
                        # (Outages — database, gateway — raise other errors and the batch is retried.)
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
                    if outcome.kind == "receipt" and outcome.session_id:
                        receipts.append((outcome.session_id, row.received_at))
                    if outcome.kind != "evidence":
                        decided.append((row.msg_id, outcome))
                uow.inbox.mark_processed([r.msg_id for r in rows])
                open_now = len(uow.sessions.open_sessions())
                uow.commit()
            now = self.clock.now()
            for session_id, received_at in receipts:
                latency = max(0.0, now - received_at)
                self.latencies_s[session_id] = latency
                metrics.RECEIPT_LATENCY.observe(latency)
                for listener in self.receipt_listeners:
                    listener(session_id)
            metrics.OPEN_SESSIONS.set(open_now)
            if decided:
                self._emit("decided", decided)  # issue 6: after the commit, so screens show what is stored
            done += len(rows)
            if len(rows) < batch:
                break
        self.tracks.forget_before(self.watermark.value())
        return done

    def _decide(self, uow: UnitOfWork, row: InboxRow) -> handlers.Outcome:
        message = decode_any(row.payload)
        if isinstance(message, WeightEvent | GatePass):
            handlers.follow_tracks(self.ctx, uow, row.due)
        if isinstance(message, WeightEvent):
            return handlers.change_cart(self.ctx, uow, message, row.topic, row.received_at)
        if isinstance(message, GatePass):
            decide = handlers.open_session if message.direction == "entry" else handlers.close_session
            return decide(self.ctx, uow, message, row.topic, row.received_at)
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
