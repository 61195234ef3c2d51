"""People and their access: users with a role, and the entry code a shopper shows at the gate.

Pure logic (stdlib only). An entry code is signed with the store's secret key (HMAC-SHA256), carries
the ledger account, the group size, when it was issued and a nonce, and is checked against the event
time of the gate pass that carries it, so a replay decides the same way (ARCHITECTURE principle 1).
Single use is enforced by the caller, who records each nonce once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

CODE_PREFIX = "WK1."
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
    account_token: str
    group_size: int
    issued_at: float
    nonce: str

    def expires_at(self, ttl_s: float = CODE_TTL_S) -> float:
        return self.issued_at + ttl_s


def looks_like_entry_code(token: str) -> bool:
    return token.startswith(CODE_PREFIX)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, (CODE_PREFIX + body).encode(), hashlib.sha256).digest()[:18])


def issue_entry_code(secret: bytes, account_token: str, group_size: int, issued_at: float) -> str:
    """A signed, short-lived, single-use code (fits the 256 characters of GatePass.account_token)."""
    if not 1 <= group_size <= MAX_GROUP:
        raise AccountError(f"a group is 1 to {MAX_GROUP} people")
    payload = {"a": account_token, "g": group_size, "t": round(issued_at, 3), "n": secrets.token_hex(8)}
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{CODE_PREFIX}{body}.{_mac(secret, body)}"


class EntryRejected(ValueError):
    """An entry code that does not open the gate; ``reason`` goes to the dead-letter table."""


def verify_entry_code(secret: bytes, code: str, at: float, ttl_s: float = CODE_TTL_S) -> EntryCode:
    """The code's content if the signature holds and ``at`` (the gate's event time) is within its life."""
    if not looks_like_entry_code(code):
        raise EntryRejected("not an entry code")
    body, _, mac = code[len(CODE_PREFIX) :].partition(".")
    if not body or not mac or not hmac.compare_digest(mac, _mac(secret, body)):
        raise EntryRejected("entry code signature is not valid")
    try:
        data = json.loads(_unb64(body))
        code_data = EntryCode(str(data["a"]), int(data["g"]), float(data["t"]), str(data["n"]))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise EntryRejected(f"entry code is malformed ({exc.__class__.__name__})") from None
    if at > code_data.issued_at + ttl_s:
        raise EntryRejected(
            f"entry code expired {at - code_data.issued_at - ttl_s:.0f} s before the gate pass"
        )
    if at < code_data.issued_at - CLOCK_SKEW_S:
        raise EntryRejected("entry code was issued after the gate pass")
    return code_data
