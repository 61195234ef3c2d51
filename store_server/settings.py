"""Service settings from ``WALKOUT_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
    # -- people, access and review (issue 6; see docs/WEB.md) -----------------------------------
    secret_key: SecretStr | None = Field(
        None,
        description="signs entry codes and session cookies; unset = generated once into secret_key_file",
    )
    secret_key_file: Path = Field(Path("var/secret.key"), description="where a generated key is kept")
    accept_raw_account_tokens: bool = Field(
        True,
        description="a gate pass may carry a bare ledger token (simulator, importers); OFF in production",
    )
    entry_code_ttl_s: float = Field(120.0, description="life of an entry code, seconds of event time")
    review_below_confidence: float = Field(
        0.6, description="a cart change less confident than this also opens a review item"
    )
    auto_refund_max_cents: int = Field(
        500, description="a disputed line up to this amount is refunded at once; above: staff review"
    )
    web_session_ttl_s: float = Field(12 * 3600.0, description="how long a sign-in lasts")
    cookie_secure: bool = Field(False, description="send the session cookie over HTTPS only (production)")
    shopper_credit_limit_cents: int = Field(
        2000, description="credit a new shopper account may go below zero"
    )
