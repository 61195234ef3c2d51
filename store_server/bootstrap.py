"""Wiring: the one place where ports meet their adapters. Nothing connects before ``bootstrap()``."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from edge.contracts import subscription
from edge.mqtt import parse_broker_url
from store_server.adapters.card_provider import CardCheckoutTopUps
from store_server.adapters.checkouts import TopUpCheckouts
from store_server.adapters.db import make_engine, make_session_factory, migrate
from store_server.adapters.entry_codes import IssuedEntryCodes
from store_server.adapters.ledger import Accounts, LedgerGateway, LedgerTopUps
from store_server.adapters.mail import FileMailer, SmtpMailer, render_receipt_text
from store_server.adapters.mqtt_consumer import MqttConsumer
from store_server.adapters.refund_caps import SqlAlchemyAutoRefunds
from store_server.adapters.unit_of_work import SqlAlchemyUnitOfWork
from store_server.adapters.users import UserStore
from store_server.backend.embedded import EmbeddedBackend
from store_server.domain.layout import StoreLayout, load_layout
from store_server.domain.review import RefundCaps
from store_server.service.accounts import AccountService, load_or_create_secret
from store_server.service.housekeeping import Housekeeper, RetentionPolicy
from store_server.service.ingest import DecisionDelays
from store_server.service.live import LiveHub
from store_server.service.live_feed import LiveFeed
from store_server.service.ports import Clock, Mailer, PaymentGateway, UnitOfWork
from store_server.service.processor import TRACK_HORIZON_S, StoreProcessor
from store_server.service.review import ReviewService
from store_server.settings import Settings

logger = logging.getLogger(__name__)


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass
class WebServices:
    """What the people-facing web needs (issue 6): accounts, the review queue, the live push."""

    people: AccountService
    reviews: ReviewService
    hub: LiveHub
    feed: LiveFeed
    card: CardCheckoutTopUps | None = None  # card top-ups, when a provider is configured


@dataclass
class StoreServer:
    settings: Settings
    layout: StoreLayout
    engine: Engine
    session_factory: sessionmaker[Session]
    processor: StoreProcessor
    backend: EmbeddedBackend
    accounts: Accounts
    consumer: MqttConsumer | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    web: WebServices | None = None

    def uow_factory(self) -> UnitOfWork:
        return SqlAlchemyUnitOfWork(self.session_factory)

    def start_consumer(
        self, broker_url: str, client_id: str | None = None, prefix: str | None = None, protocol: int = 5
    ) -> MqttConsumer:
        prefix = prefix or self.settings.topic_prefix
        self.processor.prefix = prefix
        self.consumer = MqttConsumer(
            parse_broker_url(broker_url),
            client_id or self.settings.mqtt_client_id,
            subscription(self.layout.store_id, prefix),
            self.processor.handle_batch,
            protocol=protocol,
        ).start()
        return self.consumer

    def stop(self) -> None:
        if self.consumer:
            self.consumer.stop()
            self.consumer = None
        if self.web:
            self.web.feed.close()
            if self.web.card:
                self.web.card.close()
        self.engine.dispose()


def build_mailer(settings: Settings, accounts: Accounts) -> Mailer:
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url, settings.mail_from, accounts.email_of)
    return FileMailer(settings.receipts_dir)


def bootstrap(
    settings: Settings | None = None,
    *,
    layout: StoreLayout | None = None,
    clock: Clock | None = None,
    payments: PaymentGateway | None = None,
) -> StoreServer:
    settings = settings or Settings()
    layout = layout or load_layout(settings.store_config)
    engine = make_engine(settings.database_url)
    migrate(engine)
    session_factory = make_session_factory(engine)
    accounts = Accounts(session_factory)
    backend = EmbeddedBackend(session_factory)
    stock: dict[str, int] = {}
    for entry in layout.planogram:
        stock[entry.sku] = stock.get(entry.sku, 0) + entry.stock
    backend.ensure_stock(layout.store_id, stock)
    dead_letter_bytes = settings.dead_letter_payload_max_bytes
    wall = clock or SystemClock()
    processor = StoreProcessor(
        layout=layout,
        uow_factory=lambda: SqlAlchemyUnitOfWork(session_factory, dead_letter_max_bytes=dead_letter_bytes),
        payments=payments or LedgerGateway(session_factory),
        mailer=build_mailer(settings, accounts),
        backend=backend,
        clock=wall,
        # Event times are checked against the wall clock, or in a replay against the nodes' own.
        reference_clock=wall if settings.event_clock == "system" else None,
        replay_start=settings.replay_start_ts,
        max_clock_skew_s=settings.max_clock_skew_s,
        max_event_age_s=settings.max_event_age_s,
        delays=DecisionDelays(settings.assign_window_s, settings.exit_grace_s),
        reach_m=settings.reach_m,
        prefix=settings.topic_prefix,
        render_receipt=render_receipt_text,
        visit_timeout_s=settings.visit_timeout_s,
    )
    processor.housekeeping = Housekeeper(
        processor.uow_factory, processor.clock, retention_policy(settings), settings.housekeeping_interval_s
    ).tick
    web = _web_services(settings, layout, session_factory, processor, backend, accounts)
    processor.recover()
    web.reviews.settle()  # money of corrections a crash left pending
    return StoreServer(settings, layout, engine, session_factory, processor, backend, accounts, web=web)


def retention_policy(settings: Settings) -> RetentionPolicy:
    """What retention may delete: see service/housekeeping.py for what it always keeps.

    The inbox is also the dedup table: a row is only deleted once a copy of its message would be
    refused as too old (``max_event_age_s`` behind the wall clock, or behind the newest event time in
    a replay, plus the skew a node may be ahead), so no message can be stored and decided twice."""
    dedup_s = settings.max_event_age_s + settings.max_clock_skew_s + 60.0
    return RetentionPolicy(
        inbox_retention_s=max(settings.inbox_retention_s, dedup_s),
        dead_letter_retention_s=settings.dead_letter_retention_s,
        # recovery reads back the visit-timeout sightings and the track history; 10 minutes to spare
        keep_event_s=max(settings.visit_timeout_s + TRACK_HORIZON_S + 600.0, dedup_s),
        batch_rows=settings.housekeeping_batch_rows,
    )


def _web_services(
    settings: Settings,
    layout: StoreLayout,
    session_factory: sessionmaker[Session],
    processor: StoreProcessor,
    backend: EmbeddedBackend,
    accounts: Accounts,
) -> WebServices:
    """Issue 6: entry codes and review items in the decisions, accounts, review commands, live push."""
    configured = settings.secret_key.get_secret_value() if settings.secret_key else None
    secret = load_or_create_secret(configured, settings.secret_key_file)
    ctx = processor.ctx
    ctx.secret_key, ctx.accept_raw_tokens = secret, settings.accept_raw_account_tokens
    ctx.review_below = settings.review_below_confidence
    card = _card_provider(settings, session_factory)
    people = AccountService(
        UserStore(session_factory),
        accounts,
        secret,
        session_ttl_s=settings.web_session_ttl_s,
        code_ttl_s=settings.entry_code_ttl_s,
        credit_limit_cents=settings.shopper_credit_limit_cents,
        codes=IssuedEntryCodes(session_factory),
        top_ups=card or LedgerTopUps(accounts, free=settings.demo_free_top_ups),
        currency=layout.currency,
    )
    reviews = ReviewService(
        layout,
        processor.uow_factory,
        accounts,
        processor.payments,
        backend,
        lock=processor.lock,
        caps=RefundCaps(
            per_line_cents=settings.auto_refund_max_cents,
            per_receipt_cents=settings.auto_refund_max_per_receipt_cents,
            receipt_share=settings.auto_refund_max_receipt_share,
            per_shopper_cents=settings.auto_refund_max_per_shopper_cents,
            period_s=settings.auto_refund_period_s,
        ),
        tally=SqlAlchemyAutoRefunds(),
    )
    hub = LiveHub()
    feed = LiveFeed(hub, layout, processor.uow_factory, backend, processor)
    processor.live_listeners.append(feed.on_processor)
    reviews.listeners.append(feed.on_review_changed)
    return WebServices(people, reviews, hub, feed, card)


def _card_provider(settings: Settings, session_factory: sessionmaker[Session]) -> CardCheckoutTopUps | None:
    """The hosted-checkout card provider of WALKOUT_CARD_PROVIDER_URL; its key and secret are required."""
    if not settings.card_provider_url:
        return None
    missing = [
        name
        for name, value in (
            ("WALKOUT_CARD_PROVIDER_API_KEY", settings.card_provider_api_key),
            ("WALKOUT_CARD_WEBHOOK_SECRET", settings.card_webhook_secret),
        )
        if value is None or not value.get_secret_value()
    ]
    if missing:
        raise ValueError(f"WALKOUT_CARD_PROVIDER_URL is set: set {' and '.join(missing)} too")
    assert settings.card_provider_api_key is not None and settings.card_webhook_secret is not None
    if settings.demo_free_top_ups:
        logger.warning("WALKOUT_DEMO_FREE_TOP_UPS is ignored: top-ups go through the card provider")
    return CardCheckoutTopUps(
        settings.card_provider_url,
        settings.card_provider_api_key.get_secret_value(),
        settings.card_webhook_secret.get_secret_value().encode(),
        TopUpCheckouts(session_factory),
        tolerance_s=settings.card_webhook_tolerance_s,
    )
