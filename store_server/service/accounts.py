"""Use cases of people: sign up, sign in (argon2), web sessions, wallet and top-ups, entry codes, and
the gate's side of an entry code (:func:`admit`, called inside the decision transaction)."""

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

from store_server.adapters.entry_codes import IssuedEntryCodes
from store_server.adapters.ledger import Account, Accounts, LedgerTopUps
from store_server.adapters.users import UserStore
from store_server.domain.accounts import (
    AccountError,
    EntryRejected,
    Role,
    User,
    account_token_for,
    check_alive,
    check_password_strength,
    is_retired_code,
    issue_entry_code,
    looks_like_entry_code,
    new_user_id,
    normalise_email,
    reference_of,
)
from store_server.service.ports import TopUpPort, TopUpStarted, UnitOfWork

__all__ = ["AccountService", "Admission", "EntryRejected", "admit", "load_or_create_secret"]

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


@dataclass(frozen=True)
class Admission:
    """Whom a gate pass admits: the ledger account charged at exit, and how many people it covers."""

    account_token: str
    group_size: int


def admit(
    uow: UnitOfWork,
    scanned: str,
    at: float,
    session_id: str,
    secret: bytes | None,
    accept_raw: bool,
    claimed_group: int = 1,
) -> Admission:
    """What a gate pass admits. An entry code must be signed by this store, issued by it (its reference
    is looked up in the caller's transaction), alive at the pass's event time ``at`` and unused (its
    use is recorded here); the group size is the code's, whatever the message claims. A bare account
    token is accepted only when ``accept_raw`` (the operator trusts the gate's word: the simulator,
    importers), and then the message's ``claimed_group`` is taken. Raises :class:`EntryRejected`."""
    if not looks_like_entry_code(scanned):
        if is_retired_code(scanned):
            raise EntryRejected("entry code of a retired format; show a fresh code from the app")
        if not accept_raw:
            raise EntryRejected("bare account tokens are not accepted at this store (entry codes only)")
        return Admission(scanned, claimed_group)
    if secret is None:
        raise EntryRejected("this store server has no secret key to check entry codes")
    reference = reference_of(secret, scanned)
    code = uow.entry_codes.issued(reference)
    if code is None:
        raise EntryRejected("entry code was not issued by this store")
    check_alive(code, at)
    first = uow.entry_codes.use(reference, code.account_token, session_id, at)
    if first != session_id:
        raise EntryRejected(f"entry code was already used (session {first})")
    if claimed_group != code.group_size:
        logger.info(
            "session %s: the gate said %d people, the code admits %d",
            session_id,
            claimed_group,
            code.group_size,
        )
    return Admission(code.account_token, code.group_size)


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
        codes: IssuedEntryCodes | None = None,
        top_ups: TopUpPort | None = None,
        currency: str = "EUR",
    ) -> None:
        self.users = users
        self.ledger = ledger
        self.codes = codes
        # No payment step wired = the built-in ledger, which takes no top-up from a shopper.
        self.top_ups: TopUpPort = top_ups or LedgerTopUps(ledger, free=False)
        self.currency = currency
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

    @property
    def takes_top_ups(self) -> bool:
        """False when a shopper's top-up can only be refused (the built-in ledger, no demo setting)."""
        return not (isinstance(self.top_ups, LedgerTopUps) and not self.top_ups.free)

    def start_top_up(self, user: User, amount_cents: int, request_id: str, return_url: str) -> TopUpStarted:
        """A shopper's top-up goes through the payment step (:class:`TopUpPort`); the request id makes
        a double-submitted form start it once."""
        check_top_up_amount(amount_cents)
        key = f"app-topup:{user.id}:{request_id}"
        return self.top_ups.start_top_up(_token_of(user), amount_cents, self.currency, key, return_url)

    def staff_top_up(self, staff: User, account_token: str, amount_cents: int, request_id: str) -> int:
        """Staff credit a wallet (cash at the till, a goodwill credit); returns the balance."""
        if not staff.is_staff:
            raise AccountError("only staff credit a wallet")
        check_top_up_amount(amount_cents)
        if self.ledger.get(account_token) is None:
            raise AccountError(f"account_token: no account {account_token!r}")
        balance = self.ledger.top_up(account_token, amount_cents, f"staff-topup:{staff.id}:{request_id}")
        logger.info("%s credited %s with %d cents (%s)", staff.email, account_token, amount_cents, request_id)
        return balance

    def issue_entry_code(self, user: User, group_size: int = 1) -> IssuedCode:
        return self.issue_code_for_account(_token_of(user), group_size, self._now())

    def issue_code_for_account(
        self, account_token: str, group_size: int, at: float, *, require_account: bool = True
    ) -> IssuedCode:
        """A code for a ledger account issued at ``at``: the app passes the time now, the simulator's
        signer the event time of the gate pass it signs (and no ``require_account``: a simulated
        unknown account is declined at the exit, as its bare token was). The store keeps the record;
        the code only names it."""
        if self.codes is None:
            raise AccountError("this store server keeps no entry codes (wire IssuedEntryCodes)")
        if require_account and self.ledger.get(account_token) is None:
            raise AccountError(f"account_token: no account {account_token!r}")
        code, record = issue_entry_code(self._secret, account_token, group_size, at, self.code_ttl_s)
        self.codes.add(record)
        return IssuedCode(code, group_size, record.issued_at, record.expires_at)


def check_top_up_amount(amount_cents: int) -> None:
    if not 100 <= amount_cents <= MAX_TOP_UP_CENTS:
        raise AccountError(f"amount_cents: top up between 1.00 and {MAX_TOP_UP_CENTS / 100:.2f}")


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
            if role is Role.SHOPPER and user.account_token:
                # Seeded by the operator, like a staff credit: no payment step.
                people.ledger.top_up(user.account_token, top_up_cents, f"demo-welcome:{user.id}")
        else:
            people.set_password(user, password)
        out.append((email, password, role))
    return out
