"""The edge node's YAML config (``walkout edge --config node.yaml``), validated strictly.

Every key is documented in docs/EDGE.md. Like the store layout, a misspelt key is an error, and
:func:`load_node_config` turns every problem into a line naming the file, the key and the fix.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.contracts import Identifier
from edge.mqtt import BrokerAddress, parse_broker_url
from edge.weight_detector import DetectorParams
from sensors.calibration import PlateCalibration
from sensors.health import HealthParams
from store_server.domain.layout import explain_errors

Pin = Annotated[int, Field(ge=0, le=53)]
Positive = Annotated[float, Field(gt=0)]


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Cfg):
    ca_file: Path | None = None  # None: the system's trusted CAs
    cert_file: Path | None = None  # client certificate (with key_file) for brokers that require one
    key_file: Path | None = None
    insecure: bool = False  # skip the host name check (test brokers only)


class BrokerConfig(_Cfg):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    topic_prefix: Identifier = "walkout"
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    reconnect_min_s: Positive = 1.0
    reconnect_max_s: Positive = 30.0

    def address(self) -> BrokerAddress:
        """Host, port and credentials (URL userinfo, then the explicit keys)."""
        try:
            base = parse_broker_url(self.url)
        except ValueError as exc:
            raise NodeConfigError(f"broker.url: {exc}") from None
        password = base.password
        if self.password is not None:
            password = self.password
        if self.password_env:
            password = os.environ.get(self.password_env)
            if password is None:
                raise NodeConfigError(
                    f"broker.password_env: the variable {self.password_env} is not set -> "
                    "fix: export it, or use broker.password_file"
                )
        if self.password_file is not None:
            try:
                password = self.password_file.read_text().strip()
            except OSError as exc:
                raise NodeConfigError(
                    f"broker.password_file: cannot read {self.password_file} ({exc})"
                ) from None
        return BrokerAddress(
            base.host,
            base.port,
            self.username or base.username,
            password,
            tls=base.tls or self.tls is not None,
        )


class SpoolConfig(_Cfg):
    path: Path | None = None  # default var/spool/<node_id>.sqlite next to the config
    max_messages: Annotated[int, Field(ge=100)] = 1_000_000
    spool_samples: bool = False  # also keep raw sample batches while the broker is away


class HealthConfig(_Cfg):
    dead_after_s: Positive = HealthParams.dead_after_s
    stuck_after_s: Positive = HealthParams.stuck_after_s
    min_rate_fraction: Annotated[float, Field(gt=0, le=1)] = HealthParams.min_rate_fraction
    rate_window_s: Positive = HealthParams.rate_window_s
    min_g: float = HealthParams.min_g
    max_drift_g: Positive = HealthParams.max_drift_g

    def params(self) -> HealthParams:
        return HealthParams(**self.model_dump())


class CalibrationConfig(_Cfg):
    offset_counts: float = 0.0
    grams_per_count: float = 1.0

    @model_validator(mode="after")
    def _nonzero(self) -> CalibrationConfig:
        if self.grams_per_count == 0:
            raise ValueError("grams_per_count must not be 0; run `walkout sensors calibrate`")
        return self

    def calibration(self) -> PlateCalibration:
        return PlateCalibration(self.offset_counts, self.grams_per_count)


class HX711Pins(_Cfg):
    dout_pin: Pin
    sck_pin: Pin
    gain: Literal[128, 64, 32] = 128


class PlateConfig(_Cfg):
    id: Identifier
    calibration: CalibrationConfig = CalibrationConfig()
    capacity_g: Positive = 30_000.0
    zero_tracking: bool = True
    hx711: HX711Pins | None = None


class ShelfConfig(_Cfg):
    gondola_id: Identifier
    shelf_id: Identifier
    plates: Annotated[list[PlateConfig], Field(min_length=1, max_length=64)]


class ScriptedChange(_Cfg):
    t: Annotated[float, Field(ge=0)]  # seconds after the node starts
    plates: Annotated[dict[Identifier, float], Field(min_length=1)]  # plate id -> grams (negative: pick)
    duration_s: Annotated[float, Field(ge=0.2, le=10)] = 1.0


class SimulatedSource(_Cfg):
    type: Literal["simulated"]
    seed: int = 0
    noise_g: Annotated[float, Field(ge=0)] = 0.5
    drift_g_per_min: Annotated[float, Field(ge=0)] = 0.5
    picks_per_minute: Annotated[float, Field(ge=0)] = 6.0
    putback_share: Annotated[float, Field(ge=0, le=1)] = 0.2
    spread_share: Annotated[float, Field(ge=0, le=1)] = 0.1
    touches_per_minute: Annotated[float, Field(ge=0)] = 1.0
    item_g: tuple[Positive, Positive] = (45.0, 1000.0)
    script: list[ScriptedChange] = Field(default_factory=list)
    speed: Annotated[float, Field(gt=0, le=100)] = 1.0
    duration_s: Positive | None = None  # None: run until stopped


class CsvSource(_Cfg):
    type: Literal["csv"]
    path: Path
    speed: Annotated[float, Field(gt=0, le=1000)] = 1.0
    loop: bool = False


class DatasetSource(_Cfg):
    type: Literal["dataset"]
    path: Path
    speed: Annotated[float, Field(gt=0, le=1000)] = 1.0


class HX711Source(_Cfg):
    type: Literal["hx711"]
    gpio: Literal["lgpio"] = "lgpio"
    chip: Annotated[int, Field(ge=0)] = 0
    adc_rate_hz: Literal[10, 80] = 80
    rate_pin: Pin | None = None
    read_timeout_s: Positive = 0.5


Source = Annotated[SimulatedSource | CsvSource | DatasetSource | HX711Source, Field(discriminator="type")]


class NodeConfig(_Cfg):
    node_id: Identifier
    store_id: Identifier
    role: Annotated[str, Field(max_length=32)] = "shelf"
    rate_hz: Annotated[float, Field(gt=0, le=1000)] = 60.0
    batch_samples: Annotated[int, Field(ge=1, le=600)] = 12
    heartbeat_s: Annotated[float, Field(gt=0, le=10)] = 0.25
    publish_samples: bool = False
    broker: BrokerConfig = BrokerConfig()
    spool: SpoolConfig = SpoolConfig()
    detector: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)  # DetectorParams
    health: HealthConfig = HealthConfig()
    source: Source
    shelves: Annotated[list[ShelfConfig], Field(min_length=1)]

    @field_validator("detector")
    @classmethod
    def _known_detector_keys(cls, value: dict[str, float]) -> dict[str, float]:
        known = [f.name for f in fields(DetectorParams)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown detector parameter(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return value

    def detector_params(self) -> DetectorParams:
        return DetectorParams(**self.detector)

    @model_validator(mode="after")
    def _consistent(self) -> NodeConfig:
        ids = [p.id for s in self.shelves for p in s.plates]
        dupes = sorted({p for p in ids if ids.count(p) > 1})
        if dupes:
            raise ValueError(f"plate ids must be unique on a node; repeated: {', '.join(dupes)}")
        shelves = [s.shelf_id for s in self.shelves]
        if len(set(shelves)) != len(shelves):
            raise ValueError("shelf_id must be unique on a node")
        if isinstance(self.source, HX711Source):
            missing = [p.id for s in self.shelves for p in s.plates if p.hx711 is None]
            if missing:
                raise ValueError(
                    f"source type hx711 needs hx711 pins on every plate; missing on {', '.join(missing)}"
                )
            sck = {p.hx711.sck_pin for p in self.plates if p.hx711}
            douts = [p.hx711.dout_pin for p in self.plates if p.hx711]
            if len(set(douts)) != len(douts) or set(douts) & sck:
                raise ValueError(
                    "every HX711 needs its own dout_pin, different from every sck_pin "
                    f"(dout pins {douts}, sck pins {sorted(sck)})"
                )
        return self

    @property
    def plate_ids(self) -> list[str]:
        return [p.id for s in self.shelves for p in s.plates]

    @property
    def plates(self) -> list[PlateConfig]:
        return [p for s in self.shelves for p in s.plates]

    @property
    def shelf_of_plate(self) -> list[str]:
        return [s.shelf_id for s in self.shelves for _ in s.plates]

    def spool_path(self, base: Path) -> Path:
        return (
            self.spool.path
            if self.spool.path is not None
            else base / "var" / "spool" / f"{self.node_id}.sqlite"
        )


class NodeConfigError(ValueError):
    """A node config that cannot be used; the message names the file, the key and the fix."""


_FIXES = {
    "union_tag_invalid": "set source.type to simulated, csv, dataset or hx711",
    "union_tag_not_found": "add source.type: simulated, csv, dataset or hx711",
}


def parse_node_config(data: Any, source: str = "<node config>") -> NodeConfig:
    if not isinstance(data, dict):
        raise NodeConfigError(
            f"{source}: the file must hold a mapping (node_id, store_id, source, shelves, ...)"
        )
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise NodeConfigError(
            explain_errors(source, "edge node config", exc, "docs/EDGE.md", _FIXES)
        ) from None


def _resolve(cfg: NodeConfig, base: Path) -> NodeConfig:
    """Relative paths in the file are relative to the file's directory."""
    src = cfg.source
    if isinstance(src, CsvSource | DatasetSource) and not src.path.is_absolute():
        cfg = cfg.model_copy(update={"source": src.model_copy(update={"path": base / src.path})})
    spool = cfg.spool_path(base)
    if not spool.is_absolute():
        spool = base / spool
    return cfg.model_copy(update={"spool": cfg.spool.model_copy(update={"path": spool})})


def load_node_config(path: str | Path) -> NodeConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NodeConfigError(
            f"{path}: no such file; pass the path of an edge node YAML (docs/EDGE.md)"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise NodeConfigError(f"{path}: not valid YAML{where}: fix the syntax ({exc})") from None
    return _resolve(parse_node_config(data, str(path)), path.parent.resolve())


def write_calibration(path: str | Path, plate_id: str, cal: PlateCalibration) -> None:
    """Store one plate's calibration in the config file (other keys kept; comments are not)."""
    path = Path(path)
    data = yaml.safe_load(path.read_text())
    for shelf in data.get("shelves", []):
        for plate in shelf.get("plates", []):
            if plate.get("id") == plate_id:
                plate["calibration"] = {
                    "offset_counts": round(cal.offset_counts, 3),
                    "grams_per_count": float(f"{cal.grams_per_count:.9g}"),
                }
                parse_node_config(data, str(path))
                tmp = path.with_suffix(path.suffix + ".tmp")
                tmp.write_text(yaml.safe_dump(data, sort_keys=False))
                tmp.replace(path)
                return
    raise NodeConfigError(f"{path}: no plate {plate_id!r} under shelves[].plates; check the plate id")
