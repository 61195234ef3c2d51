"""Users and their web sessions in SQL. Each call is its own short transaction (like the ledger's
``Accounts``): these are requests from the web, not decisions of the store."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store_server.adapters import orm
from store_server.domain.accounts import AccountError, Role, User

Now = Callable[[], float]


def _user(r: Row[Any]) -> User:
    return User(r.id, r.email, r.name, Role(r.role), r.password_hash, r.account_token, r.created_at)


class UserStore:
    def __init__(self, session_factory: sessionmaker[Session], now: Now = time.time) -> None:
        self._sessions = session_factory
        self._now = now

    def add(self, user: User) -> User:
        with self._sessions() as s:
            try:
                s.execute(
                    orm.users.insert().values(
                        id=user.id,
                        email=user.email,
                        name=user.name,
                        role=user.role.value,
                        password_hash=user.password_hash,
                        account_token=user.account_token,
                        created_at=user.created_at,
                    )
                )
                s.commit()
            except IntegrityError:
                raise AccountError("an account with this e-mail address exists already") from None
        return user

    def by_email(self, email: str) -> User | None:
        return self._one(orm.users.c.email == email)

    def by_id(self, user_id: str) -> User | None:
        return self._one(orm.users.c.id == user_id)

    def by_account(self, account_token: str) -> User | None:
        return self._one(orm.users.c.account_token == account_token)

    def list(self, role: Role | None = None) -> list[User]:
        t = orm.users
        stmt = select(t).order_by(t.c.created_at, t.c.id)
        if role is not None:
            stmt = stmt.where(t.c.role == role.value)
        with self._sessions() as s:
            return [_user(r) for r in s.execute(stmt)]

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        with self._sessions() as s:
            s.execute(update(orm.users).where(orm.users.c.id == user_id).values(password_hash=password_hash))
            s.commit()

    def count(self) -> int:
        with self._sessions() as s:
            return s.execute(select(func.count()).select_from(orm.users)).scalar_one()

    def _one(self, where: Any) -> User | None:
        with self._sessions() as s:
            row = s.execute(select(orm.users).where(where)).first()
        return _user(row) if row else None

    # -- web sessions ---------------------------------------------------------------------------
    def open_session(self, token_hash: str, user_id: str, ttl_s: float) -> float:
        now = self._now()
        with self._sessions() as s:
            # Expired sessions are swept here rather than by a timer: sign-ins are rare enough.
            s.execute(delete(orm.web_sessions).where(orm.web_sessions.c.expires_at < now))
            s.execute(
                orm.web_sessions.insert().values(
                    token_hash=token_hash, user_id=user_id, created_at=now, expires_at=now + ttl_s
                )
            )
            s.commit()
        return now + ttl_s

    def session_user(self, token_hash: str) -> User | None:
        """The user of a live session (None when unknown or expired)."""
        w, u = orm.web_sessions, orm.users
        stmt = (
            select(u)
            .join(w, w.c.user_id == u.c.id)
            .where(w.c.token_hash == token_hash, w.c.expires_at > self._now())
        )
        with self._sessions() as s:
            row = s.execute(stmt).first()
        return _user(row) if row else None

    def close_session(self, token_hash: str) -> None:
        with self._sessions() as s:
            s.execute(delete(orm.web_sessions).where(orm.web_sessions.c.token_hash == token_hash))
            s.commit()


class ShopperReads:
    """What one shopper may see: the ids of their receipts and visits (newest first)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def receipt_ids(self, account_token: str, limit: int = 50) -> list[str]:
        t = orm.receipts
        stmt = (
            select(t.c.id)
            .where(t.c.account_token == account_token)
            .order_by(t.c.exited_at.desc(), t.c.id.desc())
            .limit(limit)
        )
        with self._sessions() as s:
            return [str(r) for r in s.execute(stmt).scalars()]

    def open_session_ids(self, account_token: str) -> list[str]:
        t = orm.sessions
        stmt = select(t.c.id).where(t.c.account_token == account_token, t.c.state == "open")
        with self._sessions() as s:
            return [str(r) for r in s.execute(stmt).scalars()]
