"""The SQLAlchemy unit of work: one database transaction, the repositories that share it."""

from __future__ import annotations

import time
from contextvars import Token

from sqlalchemy.orm import Session, sessionmaker

from store_server.adapters.db import reset_ambient_session, set_ambient_session
from store_server.adapters.entry_codes import SqlAlchemyEntryCodeRepository
from store_server.adapters.repositories import (
    DEAD_LETTER_PAYLOAD_MAX_BYTES,
    SqlAlchemyDeadLetterRepository,
    SqlAlchemyInboxRepository,
    SqlAlchemyOutboxRepository,
    SqlAlchemyReceiptRepository,
    SqlAlchemySessionRepository,
)
from store_server.adapters.reviews import SqlAlchemyReviewRepository
from store_server.service.ports import (
    Clock,
    DeadLetterRepository,
    EntryCodeRepository,
    InboxRepository,
    OutboxRepository,
    ReceiptRepository,
    ReviewRepository,
    SessionRepository,
)


class _WallClock:
    def now(self) -> float:
        return time.time()


class SqlAlchemyUnitOfWork:
    """``with uow: ...; uow.commit()`` — leaving the block rolls back whatever was not committed.

    The clock only stamps wall-clock audit columns (receipt issued_at, outbox created/sent);
    no decision reads them.
    """

    # Declared as the ports (not the concrete classes) so this class satisfies the UnitOfWork protocol,
    # whose attributes are invariant.
    inbox: InboxRepository
    sessions: SessionRepository
    receipts: ReceiptRepository
    outbox: OutboxRepository
    dead_letters: DeadLetterRepository
    reviews: ReviewRepository
    entry_codes: EntryCodeRepository

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Clock | None = None,
        dead_letter_max_bytes: int = DEAD_LETTER_PAYLOAD_MAX_BYTES,
    ) -> None:
        self._session_factory = session_factory
        self._dead_letter_max_bytes = dead_letter_max_bytes
        self._clock = clock or _WallClock()
        self._session: Session | None = None
        self._token: Token[Session | None] | None = None

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        if self._session is not None:
            raise RuntimeError("this unit of work is already open; use a new one or leave the block first")
        self._session = session = self._session_factory()
        now = self._clock.now
        self.inbox = SqlAlchemyInboxRepository(session)
        self.sessions = SqlAlchemySessionRepository(session)
        self.receipts = SqlAlchemyReceiptRepository(session, now)
        self.outbox = SqlAlchemyOutboxRepository(session, now)
        self.dead_letters = SqlAlchemyDeadLetterRepository(session, self._dead_letter_max_bytes)
        self.reviews = SqlAlchemyReviewRepository(session, now)  # issue 6: review queue
        self.entry_codes = SqlAlchemyEntryCodeRepository(session)  # issued codes, used once
        self._token = set_ambient_session(session)
        return self

    def __exit__(self, *exc: object) -> None:
        session, self._session = self._session, None
        if self._token is not None:
            try:
                reset_ambient_session(self._token)
            except ValueError:  # left from another thread/context: just clear it there
                set_ambient_session(None)
            self._token = None
        if session is not None:
            try:
                session.rollback()
            finally:
                session.close()

    @property
    def session(self) -> Session:
        """The open SQLAlchemy session, for adapters that must join this transaction."""
        if self._session is None:
            raise RuntimeError("the unit of work is not open (use it in a with block)")
        return self._session

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
