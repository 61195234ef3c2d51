"""People and their access: users with a role, and the entry code a shopper shows at the gate.

Pure logic (stdlib only). An entry code is an opaque, random reference signed with the store's secret
key (HMAC-SHA256): ``WK2.<reference>.<mac>``. It carries no account token, so a photographed QR code
tells nothing about its owner; the store keeps what the reference stands for (account, group size,
issue and expiry time) and the gate looks it up. It is checked against the event time of the gate
pass that carries it, so a replay decides the same way (ARCHITECTURE principle 1). Single use is
enforced by the caller, who records each reference once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

CODE_PREFIX = "WK2."
RETIRED_PREFIXES = ("WK1.",)  # carried the account token in clear
REFERENCE_BYTES = 16  # 128 random bits: not guessable, and the MAC stops forged ones before any lookup
REFERENCE_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
CODE_TTL_S = 120.0
CLOCK_SKEW_S = 10.0  # a gate clock slightly behind the server that issued the code
MAX_GROUP = 20
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,185}\.[A-Za-z]{2,}$")
MIN_PASSWORD = 10


class Role(StrEnum):
    SHOPPER = "shopper"
    STAFF = "staff"
    ADMIN = "admin"


# Who may do what: an admin is also staff; nobody but a shopper has a wallet.
ROLE_RANKS = {Role.SHOPPER: 0, Role.STAFF: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    role: Role
    password_hash: str
    account_token: str | None  # the shopper's ledger account; None for staff
    created_at: float

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.STAFF, Role.ADMIN)


class AccountError(ValueError):
    """A request about accounts that cannot be honoured; the message is safe to show to the user."""


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise AccountError("enter a valid e-mail address")
    return email


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    if password.strip() != password or len(set(password)) < 4:
        raise AccountError("choose a less predictable password")


def new_user_id() -> str:
    return "u-" + secrets.token_hex(8)


def account_token_for(user_id: str) -> str:
    """The ledger account of a shopper who signed up in the app."""
    return "acct-" + user_id


# -- entry codes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryCode:
    """What the store keeps about an issued code (the code itself only names ``reference``)."""

    reference: str
    account_token: str
    group_size: int
    issued_at: float
    expires_at: float


class EntryRejected(ValueError):
    """An entry code that does not open the gate; ``reason`` goes to the dead-letter table."""


class TopUpRefused(AccountError):
    """A top-up this store cannot take (no payment provider, or the provider refused it)."""


def looks_like_entry_code(token: str) -> bool:
    return token.startswith(CODE_PREFIX)


def is_retired_code(token: str) -> bool:
    """A code of an earlier format: it carried the account in clear and is never accepted."""
    return token.startswith(RETIRED_PREFIXES)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mac(secret: bytes, reference: str) -> str:
    return _b64(hmac.new(secret, (CODE_PREFIX + reference).encode(), hashlib.sha256).digest()[:18])


def issue_entry_code(
    secret: bytes, account_token: str, group_size: int, issued_at: float, ttl_s: float = CODE_TTL_S
) -> tuple[str, EntryCode]:
    """A new code and the record the store keeps for it. The code fits GatePass.account_token."""
    if not 1 <= group_size <= MAX_GROUP:
        raise AccountError(f"group_size: a group is 1 to {MAX_GROUP} people")
    reference = _b64(secrets.token_bytes(REFERENCE_BYTES))
    record = EntryCode(reference, account_token, group_size, round(issued_at, 3), round(issued_at + ttl_s, 3))
    return f"{CODE_PREFIX}{reference}.{_mac(secret, reference)}", record


def reference_of(secret: bytes, code: str) -> str:
    """The reference of a genuine code (signed by this store); raises :class:`EntryRejected`."""
    if not looks_like_entry_code(code):
        raise EntryRejected("not an entry code")
    reference, _, mac = code[len(CODE_PREFIX) :].partition(".")
    if not REFERENCE_RE.match(reference) or not mac:
        raise EntryRejected("entry code is malformed")
    if not hmac.compare_digest(mac, _mac(secret, reference)):
        raise EntryRejected("entry code signature is not valid")
    return reference


def check_alive(code: EntryCode, at: float) -> None:
    """``at`` (the gate pass's event time) lies within the code's life; raises :class:`EntryRejected`."""
    if at > code.expires_at:
        raise EntryRejected(f"entry code expired {at - code.expires_at:.0f} s before the gate pass")
    if at < code.issued_at - CLOCK_SKEW_S:
        raise EntryRejected("entry code was issued after the gate pass")
