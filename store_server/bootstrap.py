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
from store_server.adapters.db import make_engine, make_session_factory, migrate
from store_server.adapters.ledger import Accounts, LedgerGateway
from store_server.adapters.mail import FileMailer, SmtpMailer, render_receipt_text
from store_server.adapters.mqtt_consumer import MqttConsumer
from store_server.adapters.unit_of_work import SqlAlchemyUnitOfWork
from store_server.adapters.users import UserStore
from store_server.backend.embedded import EmbeddedBackend
from store_server.domain.layout import StoreLayout, load_layout
from store_server.service.accounts import AccountService, load_or_create_secret
from store_server.service.ingest import DecisionDelays
from store_server.service.live import LiveHub
from store_server.service.live_feed import LiveFeed
from store_server.service.ports import Clock, Mailer, PaymentGateway, UnitOfWork
from store_server.service.processor import StoreProcessor
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
    processor = StoreProcessor(
        layout=layout,
        uow_factory=lambda: SqlAlchemyUnitOfWork(session_factory),
        payments=payments or LedgerGateway(session_factory),
        mailer=build_mailer(settings, accounts),
        backend=backend,
        clock=clock or SystemClock(),
        delays=DecisionDelays(settings.assign_window_s, settings.exit_grace_s),
        reach_m=settings.reach_m,
        prefix=settings.topic_prefix,
        render_receipt=render_receipt_text,
    )
    web = _web_services(settings, layout, session_factory, processor, backend, accounts)
    processor.recover()
    web.reviews.settle()  # money of corrections a crash left pending
    return StoreServer(settings, layout, engine, session_factory, processor, backend, accounts, web=web)


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
    ctx.entry_code_ttl_s, ctx.review_below = settings.entry_code_ttl_s, settings.review_below_confidence
    people = AccountService(
        UserStore(session_factory),
        accounts,
        secret,
        session_ttl_s=settings.web_session_ttl_s,
        code_ttl_s=settings.entry_code_ttl_s,
        credit_limit_cents=settings.shopper_credit_limit_cents,
    )
    reviews = ReviewService(
        layout,
        processor.uow_factory,
        accounts,
        processor.payments,
        backend,
        lock=processor.lock,
        auto_refund_max_cents=settings.auto_refund_max_cents,
    )
    hub = LiveHub()
    feed = LiveFeed(hub, layout, processor.uow_factory, backend, processor)
    processor.live_listeners.append(feed.on_processor)
    reviews.listeners.append(feed.on_review_changed)
    return WebServices(people, reviews, hub, feed)
