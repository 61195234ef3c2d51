"""The edge node process: read the shelf's load cells, detect weight events, publish them safely.

One loop, one thread: read a batch of every plate (the source paces it), calibrate, track zero and
drift, run the vectorized detector over all plates of the node, judge sensor health, write events
to the on-disk spool, let the link publish the spool in order, and send a heartbeat when nothing
else went out. The link's status topic is retained with an ``offline`` last will, and carries the
health of every plate.

No reading and no message stops the loop: impossible readings (infinite, beyond any load cell) are
missing ones for everything but the health monitor (which reports them), and a message that cannot
be built within the contract is dropped with its field and reason (logged, counted in
``refused``), the node's status then shows a ``messages: degraded`` entry for ``REFUSED_DEGRADED_S``.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import ValidationError

from edge import contracts as c
from edge.mqtt import make_client
from edge.node_config import (
    CsvSource,
    DatasetSource,
    HX711Source,
    NodeConfig,
    NodeConfigError,
    SimulatedSource,
)
from edge.refusals import Refusals
from edge.signal_pipeline import open_since, publish_ts, unpublishable, weight_payload
from edge.spool import Spool, SpooledLink
from edge.weight_detector import DetectedWeightChange, ShelfDetector, chain_neighbours
from sensors.calibration import DriftTracker, ZeroTracker, apply_calibration
from sensors.health import HealthMonitor
from sensors.loadcell import PlateSource, SampleBatch, hold_missing, impossible_as_missing

logger = logging.getLogger(__name__)

REFUSED_DEGRADED_S = 60.0  # the status shows refused messages this long after the last one
REFUSED_SENSOR = "messages"  # its key in the status' sensors map (present only while degraded)


def open_source(cfg: NodeConfig) -> tuple[PlateSource, float, tuple[float, float] | None]:
    """The configured sample source, the conversion rate health expects, and the ADC's limits."""
    src, plates = cfg.source, cfg.plate_ids
    if isinstance(src, SimulatedSource):
        from sensors.simulated import Change
        from sensors.simulated_source import SimulatedShelfSource

        unknown = sorted({p for ch in src.script for p in ch.plates} - set(plates))
        if unknown:
            raise NodeConfigError(
                f"source.script names plate(s) {', '.join(unknown)} that are not under shelves"
            )
        script = [Change(ch.t, {k: v for k, v in ch.plates.items()}, ch.duration_s) for ch in src.script]
        return (
            SimulatedShelfSource(
                plates,
                cfg.rate_hz,
                seed=src.seed,
                noise_g=src.noise_g,
                drift_g_per_min=src.drift_g_per_min,
                picks_per_minute=src.picks_per_minute,
                putback_share=src.putback_share,
                spread_share=src.spread_share,
                touches_per_minute=src.touches_per_minute,
                item_g=src.item_g,
                script=script,
                neighbours=chain_neighbours(cfg.shelf_of_plate),
                speed=src.speed,
                duration_s=src.duration_s,
            ),
            cfg.rate_hz,
            None,
        )
    if isinstance(src, CsvSource):
        from sensors import replay_source

        csv_src = replay_source.CsvSource(src.path, plates, speed=src.speed, loop=src.loop)
        return csv_src, csv_src.rate_hz, None
    if isinstance(src, DatasetSource):
        from sensors import replay_source

        ds = replay_source.DatasetSource(src.path, plates, speed=src.speed)
        return ds, ds.rate_hz, None
    assert isinstance(src, HX711Source)
    from sensors.gpio import open_backend
    from sensors.hx711 import HX711, MAX_COUNTS, MIN_COUNTS
    from sensors.hx711_source import HX711ArraySource

    gpio = open_backend(src.gpio, src.chip)
    if src.rate_pin is not None:
        gpio.setup_output(src.rate_pin, 1 if src.adc_rate_hz == 80 else 0)
    cells = [
        HX711(gpio, p.hx711.dout_pin, p.hx711.sck_pin, p.hx711.gain, src.adc_rate_hz, name=p.id)
        for p in cfg.plates
        if p.hx711 is not None
    ]
    source = HX711ArraySource(plates, cells, cfg.rate_hz, src.read_timeout_s)
    return source, min(float(src.adc_rate_hz), cfg.rate_hz), (MIN_COUNTS, MAX_COUNTS)


def make_link(cfg: NodeConfig, spool: Spool, status: Any) -> SpooledLink:
    address = cfg.broker.address()
    # The broker drops the older of two connections with one client id, so the id names the node
    # exactly (prefix, store, node): nodes of two stores or runs on one broker never take turns
    # throwing each other off, while a restarted node still replaces its own stale connection.
    client_id = f"{cfg.broker.topic_prefix}-edge-{cfg.store_id}-{cfg.node_id}"
    client = make_client(replace(address, tls=False), client_id, persistent=False)
    tls = cfg.broker.tls
    if address.tls:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls and tls.ca_file else None,
            certfile=str(tls.cert_file) if tls and tls.cert_file else None,
            keyfile=str(tls.key_file) if tls and tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        if tls is not None and tls.insecure:
            client.tls_insecure_set(True)
    client.reconnect_delay_set(
        min_delay=max(1, int(cfg.broker.reconnect_min_s)), max_delay=max(1, int(cfg.broker.reconnect_max_s))
    )
    topic = c.topic(cfg.store_id, cfg.node_id, "status", cfg.broker.topic_prefix)
    return SpooledLink(client, address, spool, topic, status, keepalive_s=cfg.broker.keepalive_s)


class EdgeNode:
    def __init__(
        self,
        cfg: NodeConfig,
        source: PlateSource | None = None,
        expected_rate_hz: float | None = None,
        adc_limits: tuple[float, float] | None = None,
    ) -> None:
        self.cfg = cfg
        if source is None:
            source, expected_rate_hz, adc_limits = open_source(cfg)
        self.source = source
        plates = cfg.plates
        self.plate_ids = cfg.plate_ids
        self._where = {p.id: (s.gondola_id, s.shelf_id) for s in cfg.shelves for p in s.plates}
        self._cal = [p.calibration.calibration() for p in plates]
        self._zero_on = np.array([p.zero_tracking for p in plates])
        self.detector = ShelfDetector(
            self.plate_ids, cfg.rate_hz, cfg.detector_params(), chain_neighbours(cfg.shelf_of_plate)
        )
        self.health = HealthMonitor(
            self.plate_ids,
            expected_rate_hz or cfg.rate_hz,
            [p.capacity_g for p in plates],
            cfg.health.params(),
            adc_limits,
        )
        self.zero = ZeroTracker(len(plates))
        self.drift = DriftTracker(len(plates))
        self.refused = Refusals(f"edge node {cfg.node_id}")
        self._refusing = False  # the status currently says REFUSED_SENSOR: degraded
        assert cfg.spool.path is not None
        self.spool = Spool(cfg.spool.path, cfg.spool.max_messages)
        self.link = make_link(cfg, self.spool, self._status)
        self._last_sent = -1e18
        self._said_open: float | None = None  # what the last heartbeat said of open interactions
        self._last_values = np.full(len(plates), np.nan)
        self.events: list[dict[str, Any]] = []  # payloads of every event spooled (for tests and logs)

    def topic(self, feature: str) -> str:
        return c.topic(self.cfg.store_id, self.cfg.node_id, feature, self.cfg.broker.topic_prefix)

    def _status(self, state: str) -> bytes:
        sensors = self.health.states() if state == "online" else {}
        if state == "online" and self._refusing:
            sensors[REFUSED_SENSOR] = "degraded"
        ts = time.time() if state == "online" else None
        return c.encode(
            c.NodeStatus(
                node_id=self.cfg.node_id,
                state=state,  # type: ignore[arg-type]
                ts=ts,
                role=self.cfg.role,
                sensors=sensors,
            )
        )  # type: ignore[arg-type]

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        logger.info(
            "edge node %s: %d plate(s) on %d shelf(s), broker %s, spool %s",
            self.cfg.node_id,
            len(self.plate_ids),
            len(self.cfg.shelves),
            self.link.address,
            self.spool.path,
        )
        self.link.start()
        try:
            while not stop.is_set():
                batch = self.source.read_batch(self.cfg.batch_samples)
                if batch is None:
                    logger.info("the source has ended")
                    break
                self.step(batch)
        finally:
            self.close()

    def step(self, batch: SampleBatch) -> list[DetectedWeightChange]:
        calibrated = apply_calibration(batch.values, self._cal)
        # The health monitor sees what the cells said (and reports an impossible reading as out of
        # range); zero, drift, detector and samples treat it as missing, so it cannot poison them.
        grams = impossible_as_missing(calibrated, c.MAX_RAW_GRAMS)
        health = calibrated - self.zero.zero[:, None]
        idle = self.detector.idle_mask()
        grams = self.zero.correct(grams, idle & self._zero_on, batch.n / batch.rate_hz)
        changes = self.detector.push(batch.t0, grams)
        drift = self.drift.update(grams, idle & self.detector.idle_mask())  # stable all through the batch
        for ch in changes:
            for plate, delta in zip(ch.plate_ids, ch.plate_deltas, strict=True):
                self.drift.on_event(self.plate_ids.index(plate), delta)
        for hc in self.health.update(batch.values, health, batch.rate_hz, batch.fresh, drift):
            log = logger.info if hc.new == "ok" else logger.warning
            log("plate %s: %s -> %s: %s", hc.plate, hc.old, hc.new, hc.reason)
            self.link.publish_status()
        for ch in changes:
            self._event(ch, batch.t_last)
        self.link.pump()
        if self.cfg.publish_samples:
            self._samples(batch, grams)
        else:
            # A heartbeat when quiet, and at once when the shelf's open interactions change: the store
            # server holds a shopper's exit while a shelf they stood at is still deciding.
            opened = open_since([self.detector], batch.t_last)
            due = batch.t_last - self._last_sent >= 0.75 * self.cfg.heartbeat_s or opened != self._said_open
            if due and self.link.can_send_direct():
                beat = self._build(
                    "heartbeat",
                    c.Heartbeat,
                    seq=self.spool.next_seq(),
                    ts=publish_ts(batch.t_last),  # as an event decided with this batch: never before it
                    open_since=opened,
                )
                if beat is not None and self.link.send_direct(self.topic("heartbeat"), c.encode(beat)):
                    self._last_sent, self._said_open = batch.t_last, opened
        self._report_refusals()
        return changes

    def _event(self, ch: DetectedWeightChange, t_last: float) -> None:
        gondola, shelf = self._where[ch.plate_ids[0]]
        why = unpublishable(ch)
        if why is not None:
            self.refused.add(f"weight event on {shelf}", *why)
            return
        try:
            payload = weight_payload(ch, self.cfg.node_id, self.spool.next_seq(), gondola, shelf)
        except ValidationError as exc:  # the last line of defence: skip this one, keep the node
            self.refused.refuse(f"weight event on {shelf}", exc)
            return
        self.spool.append(self.topic("weight"), c.encode(c.WeightEvent.model_validate(payload)))
        self.events.append(payload)
        self._last_sent = t_last
        parts = ", ".join(f"{p} {d:+.1f}" for p, d in zip(ch.plate_ids, ch.plate_deltas, strict=False))
        logger.info("weight %s %+.1f g (%s)", shelf, ch.delta_g, parts or ",".join(ch.plate_ids))

    def _build(self, kind: str, model: type[c.Message], **fields: Any) -> Any:
        """``model(node_id=..., **fields)``, or None (logged, counted) when the contract refuses it."""
        try:
            return model(node_id=self.cfg.node_id, **fields)
        except ValidationError as exc:
            self.refused.refuse(f"{kind} message", exc)
            return None

    def _report_refusals(self) -> None:
        refusing = self.refused.recent(REFUSED_DEGRADED_S)
        if refusing != self._refusing:
            self._refusing = refusing
            if refusing:
                logger.warning(
                    "%s: messages refused; status says %s: degraded", self.cfg.node_id, REFUSED_SENSOR
                )
            else:
                logger.info("%s: no message refused for %.0f s", self.cfg.node_id, REFUSED_DEGRADED_S)
            self.link.publish_status()

    def _samples(self, batch: SampleBatch, grams: np.ndarray) -> None:
        filled = hold_missing(grams, self._last_values)
        self._last_values = filled[:, -1].copy()
        direct = self.link.can_send_direct()
        if not direct and not self.cfg.spool.spool_samples:
            return  # raw samples are optional: not kept while the broker is away unless asked
        start = 0
        for shelf in self.cfg.shelves:
            rows = filled[start : start + len(shelf.plates)]
            start += len(shelf.plates)
            msg = self._build(
                "samples",
                c.WeightSamples,
                seq=self.spool.next_seq(),
                ts=batch.t_last,
                gondola_id=shelf.gondola_id,
                shelf_id=shelf.shelf_id,
                plate_ids=[p.id for p in shelf.plates],
                rate_hz=batch.rate_hz,
                t0=batch.t0,
                grams=np.round(rows, 2).tolist(),
            )
            if msg is None:
                continue
            if not (direct and self.link.send_direct(self.topic("samples"), c.encode(msg))):
                self.spool.append(self.topic("samples"), c.encode(msg))
        self._last_sent = batch.t_last

    def close(self) -> None:
        try:
            self.link.close()
        finally:
            self.source.close()
            self.spool.close()
