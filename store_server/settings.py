"""Service settings from ``WALKOUT_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORE = PACKAGE_ROOT / "sim_data" / "stores" / "demo.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WALKOUT_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///var/walkout.db", description="SQLAlchemy URL; SQLite by default, PostgreSQL in production"
    )
    mqtt_url: str | None = Field(
        None, description="mqtt://user:pass@host:port of the broker; unset = start an embedded broker"
    )
    mqtt_protocol: Literal[4, 5] = Field(
        5, description="MQTT 5 (default) or 4 = 3.1.1, for brokers without MQTT 5; embedded: 3.1.1"
    )
    mqtt_client_id: str = Field("walkout-store-server", description="persistent-session client id")
    topic_prefix: str = "walkout"
    store_config: Path = Field(DEFAULT_STORE, description="the store layout YAML")
    http_host: str = Field("127.0.0.1", description="address the API listens on")
    http_port: int = 8000
    smtp_url: str | None = Field(
        None, description="smtp://user:pass@host:port; unset = write receipts to files"
    )
    mail_from: str = "receipts@walkout.local"
    receipts_dir: Path = Path("var/receipts")
    # How long to wait, in event time, for late evidence before deciding.
    assign_window_s: float = Field(0.5, description="track evidence kept around a weight event")
    exit_grace_s: float = Field(0.8, description="wait after an exit gate pass for the last shelf events")
    reach_m: float = Field(1.5, description="furthest a shopper can stand from a plate they take from")
    # -- hostile input: event times near the server's clock, ingest health (docs/PROTOCOL.md) -----
    event_clock: Literal["system", "replay"] = Field(
        "system",
        description="what event times are checked against: the system clock (production) or, for "
        "replays of recorded datasets, the median of the store's nodes' own clocks",
    )
    replay_start_ts: float | None = Field(
        None, description="replay clock until more than half of the nodes have spoken (event_clock=replay)"
    )
    max_clock_skew_s: float = Field(
        300.0, gt=0, description="an event time further ahead of the reference clock is refused"
    )
    max_event_age_s: float = Field(
        86_400.0, gt=0, description="an event time further behind it is refused (a day of edge spool)"
    )
    health_stuck_after_s: float = Field(
        30.0, gt=0, description="/health: degraded when a batch has failed to store for this long"
    )
    health_max_lag_s: float = Field(
        60.0, gt=0, description="/health: degraded when the oldest unstored message is older than this"
    )
    health_max_queued: int = Field(
        20_000, gt=0, description="/health: degraded when more messages than this wait to be stored"
    )
    # -- people, access and review (issue 6; see docs/WEB.md) -----------------------------------
    secret_key: SecretStr | None = Field(
        None,
        description="signs entry codes and session cookies; unset = generated once into secret_key_file",
    )
    secret_key_file: Path = Field(Path("var/secret.key"), description="where a generated key is kept")
    accept_raw_account_tokens: bool = Field(
        False,
        description="a gate pass may carry a bare ledger token and its own group size (a trusted gate: "
        "replays of simulated or imported datasets into `walkout serve`); off = signed entry codes only",
    )
    entry_code_ttl_s: float = Field(120.0, description="life of an entry code, seconds of event time")
    review_below_confidence: float = Field(
        0.6, description="a cart change less confident than this also opens a review item"
    )
    auto_refund_max_cents: int = Field(
        500, description="a disputed line up to this amount is refunded at once; above: staff review"
    )
    # Automatic refunds are capped per receipt and per shopper too; over a cap a dispute waits for staff.
    auto_refund_max_per_receipt_cents: int = Field(
        1000, ge=0, description="automatic refunds on one receipt, in total (0 = no cap)"
    )
    auto_refund_max_receipt_share: float = Field(
        0.5, ge=0, le=1, description="automatic refunds on one receipt, as a share of its total (0 = no cap)"
    )
    auto_refund_max_per_shopper_cents: int = Field(
        2000, ge=0, description="automatic refunds to one shopper within auto_refund_period_s (0 = no cap)"
    )
    auto_refund_period_s: float = Field(30 * 86400.0, gt=0, description="the period of the shopper cap")
    web_session_ttl_s: float = Field(12 * 3600.0, description="how long a sign-in lasts")
    login_max_failures_per_account: int = Field(
        5, ge=1, description="failed sign-ins of one e-mail within login_failure_window_s before a pause"
    )
    login_max_failures_per_address: int = Field(
        20, ge=1, description="failed sign-ins from one address (IPv6: /64) within the window"
    )
    login_failure_window_s: float = Field(900.0, gt=0, description="the sliding window of sign-in failures")
    cookie_secure: bool = Field(False, description="send the session cookie over HTTPS only (production)")
    # -- top-ups: the payment step (docs/WEB.md) -------------------------------------------------
    demo_free_top_ups: bool = Field(
        False, description="a shopper's top-up is credited with no payment (`walkout demo` only)"
    )
    card_provider_url: str | None = Field(
        None, description="base URL of the hosted-checkout card provider; unset = no card top-ups"
    )
    card_provider_api_key: SecretStr | None = Field(None, description="our key at the card provider")
    card_webhook_secret: SecretStr | None = Field(
        None, description="shared secret the provider signs its webhooks with (HMAC-SHA256)"
    )
    card_webhook_tolerance_s: float = Field(
        300.0, gt=0, description="a webhook signed longer ago than this (or as far ahead) is refused"
    )
    shopper_credit_limit_cents: int = Field(
        2000, description="credit a new shopper account may go below zero"
    )
    # -- bounded growth: retention and the visit timeout (README "Bounded growth") ---------------
    inbox_retention_s: float = Field(
        86400.0,
        ge=3600,
        description="processed inbox rows older than this (arrival and event time) are deleted; never "
        "less than the oldest message age ingest accepts, so a late duplicate cannot be decided twice",
    )
    dead_letter_retention_s: float = Field(7 * 86400.0, ge=0, description="dead letters kept this long")
    dead_letter_payload_max_bytes: int = Field(
        4096, ge=256, description="a dead letter keeps this much of its raw payload (the size is noted)"
    )
    housekeeping_interval_s: float = Field(
        300.0, gt=0, description="wall-clock seconds between two retention runs of the store server"
    )
    housekeeping_batch_rows: int = Field(
        2000, ge=100, le=50000, description="rows deleted per transaction by a retention run"
    )
    visit_timeout_s: float = Field(
        1800.0,
        description="a visit whose shopper was not seen for this long (event time) and never left closes "
        "without a charge and goes to staff review; 0 = never",
    )

    @field_validator("visit_timeout_s")
    @classmethod
    def _visit_timeout(cls, value: float) -> float:
        if value != 0 and value < 60:
            raise ValueError("visit_timeout_s must be 0 (off) or at least 60 seconds")
        return value
