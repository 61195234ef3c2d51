"""Use cases of people: sign up, sign in (argon2), web sessions, wallet, entry codes, and the gate's
side of an entry code (:func:`account_for_entry`, called inside the decision transaction)."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, TimestampSigner

from store_server.adapters.ledger import Account, Accounts
from store_server.adapters.users import UserStore
from store_server.domain.accounts import (
    AccountError,
    EntryRejected,
    Role,
    User,
    account_token_for,
    check_password_strength,
    issue_entry_code,
    looks_like_entry_code,
    new_user_id,
    normalise_email,
    verify_entry_code,
)
from store_server.service.ports import UnitOfWork

__all__ = ["AccountService", "EntryRejected", "account_for_entry", "load_or_create_secret"]

logger = logging.getLogger(__name__)

MAX_TOP_UP_CENTS = 100_000


def load_or_create_secret(configured: str | None, path: Path) -> bytes:
    """WALKOUT_SECRET_KEY when set; otherwise a random key generated once and kept in ``path`` (0600)."""
    if configured:
        return configured.encode()
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    logger.warning("no WALKOUT_SECRET_KEY: generated one into %s (set it explicitly in production)", path)
    return key


def account_for_entry(
    uow: UnitOfWork,
    scanned: str,
    at: float,
    session_id: str,
    secret: bytes | None,
    accept_raw: bool,
    ttl_s: float,
) -> str:
    """The ledger account a gate pass admits. An entry code must be genuine, alive at the pass's event
    time ``at`` and unused (its nonce is recorded here, in the caller's transaction); a bare account
    token is accepted only when ``accept_raw``. Raises :class:`EntryRejected` with the reason."""
    if not looks_like_entry_code(scanned):
        if not accept_raw:
            raise EntryRejected("bare account tokens are not accepted at this store (entry codes only)")
        return scanned
    if secret is None:
        raise EntryRejected("this store server has no secret key to check entry codes")
    code = verify_entry_code(secret, scanned, at, ttl_s)
    first = uow.entry_codes.use(code.nonce, code.account_token, session_id, at)
    if first != session_id:
        raise EntryRejected(f"entry code was already used (session {first})")
    return code.account_token


@dataclass(frozen=True)
class IssuedCode:
    code: str
    group_size: int
    issued_at: float
    expires_at: float


class AccountService:
    def __init__(
        self,
        users: UserStore,
        ledger: Accounts,
        secret: bytes,
        *,
        session_ttl_s: float = 12 * 3600.0,
        code_ttl_s: float = 120.0,
        credit_limit_cents: int = 0,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.users = users
        self.ledger = ledger
        self._secret = secret
        self._signer = TimestampSigner(secret, salt="walkout-web-session")
        self._hasher = PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self.session_ttl_s = session_ttl_s
        self.code_ttl_s = code_ttl_s
        self.credit_limit_cents = credit_limit_cents
        self._now = now or time.time

    # -- accounts ---------------------------------------------------------------------------------
    def sign_up(self, email: str, name: str, password: str) -> User:
        """A shopper account and its ledger account (balance 0, the store's default credit limit)."""
        user = self._new_user(email, name, password, Role.SHOPPER)
        self.ledger.open_account(
            user.account_token or "", user.name, user.email, credit_limit_cents=self.credit_limit_cents
        )
        return user

    def create_staff(self, email: str, name: str, password: str, role: Role = Role.STAFF) -> User:
        if role not in (Role.STAFF, Role.ADMIN):
            raise AccountError("staff accounts are staff or admin")
        return self._new_user(email, name, password, role)

    def _new_user(self, email: str, name: str, password: str, role: Role) -> User:
        email = normalise_email(email)
        check_password_strength(password)
        name = name.strip()[:255] or email.split("@")[0]
        user_id = new_user_id()
        token = account_token_for(user_id) if role is Role.SHOPPER else None
        user = User(user_id, email, name, role, self._hasher.hash(password), token, self._now())
        return self.users.add(user)

    def set_password(self, user: User, password: str) -> None:
        check_password_strength(password)
        self.users.set_password_hash(user.id, self._hasher.hash(password))

    def authenticate(self, email: str, password: str) -> User | None:
        try:
            user = self.users.by_email(normalise_email(email))
        except AccountError:
            user = None
        try:
            # Hash against a dummy for an unknown address, so timing does not tell who has an account.
            self._hasher.verify(user.password_hash if user else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is not None and self._hasher.check_needs_rehash(user.password_hash):
            self.users.set_password_hash(user.id, self._hasher.hash(password))
        return user

    # -- web sessions -----------------------------------------------------------------------------
    def start_session(self, user: User) -> str:
        """A new session; the returned value goes into the cookie (signed random token)."""
        token = secrets.token_urlsafe(32)
        self.users.open_session(_digest(token), user.id, self.session_ttl_s)
        return self._signer.sign(token).decode()

    def user_for_cookie(self, cookie: str | None) -> User | None:
        if not cookie:
            return None
        try:
            token = self._signer.unsign(cookie, max_age=int(self.session_ttl_s)).decode()
        except BadSignature:  # includes SignatureExpired
            return None
        return self.users.session_user(_digest(token))

    def end_session(self, cookie: str | None) -> None:
        if not cookie:
            return
        try:
            token = self._signer.unsign(cookie).decode()
        except BadSignature:
            return
        self.users.close_session(_digest(token))

    # -- wallet and entry -------------------------------------------------------------------------
    def wallet(self, user: User) -> Account:
        account = self.ledger.get(_token_of(user))
        if account is None:
            raise AccountError("this account has no wallet")
        return account

    def top_up(self, user: User, amount_cents: int, request_id: str) -> int:
        if not 100 <= amount_cents <= MAX_TOP_UP_CENTS:
            raise AccountError(f"top up between 1.00 and {MAX_TOP_UP_CENTS / 100:.2f}")
        # The request id makes a double-submitted form credit once.
        return self.ledger.top_up(_token_of(user), amount_cents, f"app-topup:{user.id}:{request_id}")

    def issue_entry_code(self, user: User, group_size: int = 1) -> IssuedCode:
        now = self._now()
        code = issue_entry_code(self._secret, _token_of(user), group_size, now)
        return IssuedCode(code, group_size, now, now + self.code_ttl_s)


def _token_of(user: User) -> str:
    if user.role is not Role.SHOPPER or not user.account_token:
        raise AccountError("only shopper accounts have a wallet and entry codes")
    return user.account_token


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


DEMO_USERS = (
    ("manager@demo.walkout", "Demo Manager", Role.ADMIN),
    ("shopper@demo.walkout", "Demo Shopper", Role.SHOPPER),
)


def provision_demo_users(people: AccountService, top_up_cents: int = 5000) -> list[tuple[str, str, Role]]:
    """The demo's manager and shopper, each with a fresh random password (returned once, never stored
    in clear). Existing demo users keep their data and get the new password."""
    out = []
    for email, name, role in DEMO_USERS:
        password = secrets.token_urlsafe(12)
        user = people.users.by_email(email)
        if user is None:
            user = (
                people.sign_up(email, name, password)
                if role is Role.SHOPPER
                else people.create_staff(email, name, password, role)
            )
            if role is Role.SHOPPER:
                people.top_up(user, top_up_cents, "demo-welcome")
        else:
            people.set_password(user, password)
        out.append((email, password, role))
    return out
