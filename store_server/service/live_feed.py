"""What the store pushes to the dashboard and the shopper app, built after each committed batch.

The decision worker only hands over what it decided (message ids and outcomes), track points and node
statuses; reading the changed sessions, receipts and review items happens on this feed's own thread,
so live screens never slow the decisions. Track points are thinned to ``TRACK_HZ`` per shopper (event
time). Node health combines the retained ``status`` messages with each node's event-time watermark.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from edge.contracts import NodeStatus
from store_server.backend.api import OrderBackend
from store_server.domain.layout import StoreLayout
from store_server.domain.review import ReviewKind, ReviewStatus, review_id_for
from store_server.service import views
from store_server.service.live import Event, LiveHub
from store_server.service.ports import InboxRow, UnitOfWork

logger = logging.getLogger(__name__)

TRACK_HZ = 2.0
NODES_EVERY_S = 1.0
WORK_QUEUED_MAX = 10_000
# Review items a decision may open, looked up by the decided message id (a timed-out visit: its session id).
REVIEW_KINDS = (
    ReviewKind.LOW_CONFIDENCE,
    ReviewKind.UNATTRIBUTED,
    ReviewKind.UNEXPLAINED,
    ReviewKind.VISIT_TIMEOUT,
)


class LiveFeed:
    def __init__(
        self,
        hub: LiveHub,
        layout: StoreLayout,
        uow_factory: Callable[[], UnitOfWork],
        backend: OrderBackend,
        processor: Any,  # StoreProcessor: watermark, latencies_s
    ) -> None:
        self.hub, self.layout, self.uow_factory, self.backend = hub, layout, uow_factory, backend
        self.processor = processor
        self.nodes: dict[str, dict[str, Any]] = {}
        self.feed: deque[Event] = deque(maxlen=80)
        self.alerts: deque[Event] = deque(maxlen=50)
        self._track_sent: dict[str, float] = {}
        self._nodes_at = 0.0
        self._lock = threading.Lock()
        # Bounded: when the screens' database reads fall behind the decisions, updates are dropped
        # (a reconnecting screen gets a fresh snapshot) instead of piling up in memory.
        self._work: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=WORK_QUEUED_MAX)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)
        self._thread.start()

    def close(self) -> None:
        try:
            self._work.put(None, timeout=1.0)
        except queue.Full:  # a daemon thread: it ends with the process
            logger.warning("live feed closed with %d updates unpublished", self._work.qsize())

    # -- called by the decision worker (cheap, no database) ---------------------------------------
    def on_processor(self, kind: str, data: Any) -> None:
        if kind == "tracks":
            self._tracks(data)
        elif kind == "status":
            self._statuses(data)
        elif kind == "decided" and data:
            self._enqueue(("decided", list(data)))

    def on_review_changed(self, review_ids: list[str], session_ids: list[str]) -> None:
        self._enqueue(("changed", (review_ids, session_ids)))

    def _enqueue(self, item: tuple[str, Any]) -> None:
        try:
            self._work.put_nowait(item)  # never blocks the decision worker
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("live feed is behind: %d updates dropped", self.dropped)

    def _tracks(self, rows: list[InboxRow]) -> None:
        points = []
        for row in rows:
            for p in row.payload.get("tracks", []):
                last = self._track_sent.get(p["track_id"], float("-inf"))
                if row.ts - last >= 1.0 / TRACK_HZ or row.ts < last:
                    self._track_sent[p["track_id"]] = row.ts
                    points.append(
                        {
                            "track_id": p["track_id"],
                            "x": round(p["x_m"], 2),
                            "y": round(p["y_m"], 2),
                            "ts": row.ts,
                        }
                    )
        if len(self._track_sent) > 5000:  # forget tracks of long ago
            self._track_sent = dict(list(self._track_sent.items())[-1000:])
        if points:
            self.hub.publish({"type": "tracks", "points": points})
        if time.monotonic() - self._nodes_at > NODES_EVERY_S:
            self._nodes_at = time.monotonic()
            self.hub.publish({"type": "nodes", "nodes": self.node_health()})

    def _statuses(self, statuses: list[NodeStatus]) -> None:
        for st in statuses:
            with self._lock:
                before = self.nodes.get(st.node_id, {})
                self.nodes[st.node_id] = {"state": st.state, "role": st.role, "sensors": dict(st.sensors)}
            bad = sorted(k for k, v in st.sensors.items() if v != "ok")
            if st.state == "offline" and before.get("state") != "offline":
                self._alert("node_offline", f"edge node {st.node_id} is offline", node=st.node_id)
            elif bad and before.get("sensors") != st.sensors:
                states = ", ".join(f"{k} {st.sensors[k]}" for k in bad)
                self._alert("sensor", f"{st.node_id}: {states}", node=st.node_id)
        self.hub.publish({"type": "nodes", "nodes": self.node_health()})

    def node_health(self) -> list[dict[str, Any]]:
        wm = self.processor.watermark
        latest: dict[str, float] = dict(wm.latest)
        newest = max(latest.values(), default=0.0)
        with self._lock:
            names = sorted(set(wm.expected_nodes) | set(latest) | set(self.nodes))
            out = []
            for node in names:
                st = self.nodes.get(node, {})
                lag = round(newest - latest[node], 1) if node in latest else None
                if st.get("state") == "offline" or node in wm.offline:
                    health = "offline"
                elif lag is None or lag > wm.stale_after_s:
                    health = "silent"
                elif any(v != "ok" for v in st.get("sensors", {}).values()):
                    health = "degraded"
                else:
                    health = "ok"
                out.append(
                    {
                        "node_id": node,
                        "health": health,
                        "role": st.get("role", ""),
                        "sensors": st.get("sensors", {}),
                        "lag_s": lag,
                    }
                )
        return out

    def _alert(self, kind: str, text: str, **extra: Any) -> None:
        alert = {"type": "alert", "kind": kind, "text": text, "at": time.time(), **extra}
        self.alerts.appendleft(alert)
        self.hub.publish(alert)

    def _say(self, text: str, account: str | None = None, **extra: Any) -> None:
        line = {"type": "feed", "text": text, "at": time.time(), "account": account, **extra}
        self.feed.appendleft(line)
        self.hub.publish(line)

    # -- the feed's own thread: read what changed, publish it -------------------------------------
    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            try:
                if item[0] == "decided":
                    self._decided(item[1])
                else:
                    self._changed(*item[1])
            except Exception:
                logger.exception("live feed could not publish a change")

    def _decided(self, decided: list[tuple[str, Any]]) -> None:
        session_ids = sorted({o.session_id for _, o in decided if o.session_id})
        with self.uow_factory() as uow:
            sessions = {sid: s for sid in session_ids if (s := uow.sessions.get(sid))}
            receipts = [
                rc for _, o in decided if o.kind == "receipt" and (rc := uow.receipts.get(o.receipt_id or ""))
            ]
            reviews = [
                rv
                for msg_id, _ in decided
                for kind in REVIEW_KINDS
                if (rv := uow.reviews.get(review_id_for(kind, msg_id)))
            ]
        for msg_id, outcome in decided:
            s = sessions.get(outcome.session_id or "")
            acct = s.account_token if s else None
            self._describe(msg_id, outcome.kind, s, acct)
        for s in sessions.values():
            self.hub.publish(
                {"type": "session", "account": s.account_token, "session": views.session_view(s, self.layout)}
            )
        for r in receipts:
            self.hub.publish({"type": "receipt", "account": r.account_token, "receipt_id": r.id})
            if r.payment_status != "approved":
                self._alert(
                    "payment_declined",
                    f"payment declined for {r.session_id}: {r.decline_reason}",
                    session_id=r.session_id,
                )
        for item in reviews:
            self._publish_review(item, sessions.get(item.session_id or ""))
            if item.status is ReviewStatus.OPEN:
                self._alert(f"review_{item.kind.value}", item.summary, review_id=item.id)
        self.publish_state()

    def _describe(self, msg_id: str, kind: str, s: Any, acct: str | None) -> None:
        sid = s.id if s else "?"
        if kind == "opened" and s:
            self._say(
                f"{sid} entered" + (f" (group of {s.group_size})" if s.group_size > 1 else ""),
                acct,
                session_id=sid,
            )
        elif kind == "cart_changed" and s:
            for c in (c for c in s.changes if c.event_id == msg_id):
                name = self.layout.products[c.sku].name if c.sku in self.layout.products else c.sku
                verb = "took" if c.quantity > 0 else "put back"
                self._say(
                    f"{sid} {verb} {abs(c.quantity)}x {name} ({c.confidence:.2f})", acct, session_id=sid
                )
                if c.note == "misplaced":
                    self._alert("misplaced", f"{name} put back on the wrong shelf by {sid}", session_id=sid)
        elif kind == "receipt":
            self._say(f"{sid} left and paid", acct, session_id=sid)
        elif kind == "left_empty":
            self._say(f"{sid} left with nothing", acct, session_id=sid)
        elif kind == "timed_out":
            self._say(f"{sid} timed out: not seen for too long, not charged", acct, session_id=sid)
        elif kind == "entry_refused":
            self._say(f"entry refused at the gate ({msg_id})")
            self._alert("entry_refused", f"an entry code was refused at the gate ({msg_id})")
        elif kind in ("unattributed", "unexplained"):
            self._say(f"weight event {msg_id}: {kind}", acct)

    def _changed(self, review_ids: list[str], session_ids: list[str]) -> None:
        with self.uow_factory() as uow:
            items = [rv for rid in review_ids if (rv := uow.reviews.get(rid))]
            sessions = {sid: s for sid in session_ids if (s := uow.sessions.get(sid))}
            receipts = [rc for sid in sessions if (rc := uow.receipts.for_session(sid))]
        for item in items:
            self._publish_review(item, sessions.get(item.session_id or ""))
            self._say(f"review {item.id}: {item.status.value} by {item.resolved_by or 'staff'}")
        for s in sessions.values():
            self.hub.publish(
                {"type": "session", "account": s.account_token, "session": views.session_view(s, self.layout)}
            )
        for r in receipts:
            self.hub.publish({"type": "receipt", "account": r.account_token, "receipt_id": r.id})
        self.publish_state()

    def _publish_review(self, item: Any, session: Any) -> None:
        self.hub.publish(
            {
                "type": "review",
                "account": session.account_token if session else None,
                "review": views.review_view(item),
            }
        )

    def publish_state(self) -> None:
        """Stock on the shelves and the KPIs (both move with every cart change and receipt)."""
        with self.uow_factory() as uow:
            state = self._state(uow)
        self.hub.publish({"type": "state", **state})

    def _state(self, uow: UnitOfWork) -> dict[str, Any]:
        levels = {s.sku: s.quantity for s in self.backend.stock_levels(self.layout.store_id)}
        stock = views.stock_view(self.layout, levels, uow.sessions.open_sessions())
        latencies = list(self.processor.latencies_s.values())[-1000:]
        return {"stock": stock, "kpis": views.kpis(uow, latencies)}

    def snapshot(self) -> Event:
        """Everything a dashboard needs when it (re)connects."""
        with self.uow_factory() as uow:
            open_ = uow.sessions.open_sessions()
            closed = [s for s in uow.sessions.list(limit=len(open_) + views.RECENT_CLOSED) if not s.is_open]
            reviews = uow.reviews.list(ReviewStatus.OPEN, 100) + uow.reviews.list(limit=20)
            state = self._state(uow)
        unique = {r.id: r for r in reversed(reviews)}  # open ones first, each once
        review_views = [views.review_view(r) for r in reversed(unique.values())]
        return {
            "type": "snapshot",
            "sessions": [views.session_view(s, self.layout) for s in open_ + closed[: views.RECENT_CLOSED]],
            "reviews": review_views,
            "nodes": self.node_health(),
            "feed": list(self.feed)[:40],
            "alerts": list(self.alerts)[:30],
            **state,
        }
