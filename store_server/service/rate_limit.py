"""Failed sign-ins, counted per account and per address in a sliding window, to stop password guessing.

After ``limit`` failures within ``window_s`` a key is locked until the oldest of them leaves the window;
a refused attempt is not counted (it checked no password), and a successful sign-in clears the
account's failures. An attempt counts as a failure from before its password is checked until it
succeeds, so parallel guesses cannot all pass the check before the first one fails.

State is in process memory, so each server process counts on its own and a restart forgets; it is
bounded: each table keeps at most ``max_keys`` keys (the least recently failing go first,
after the expired ones) and at most ``limit`` timestamps per key, so cycling addresses or e-mails
cannot grow it. The clock is injected (monotonic seconds) so tests move time instead of sleeping.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MAX_KEY_CHARS = 320  # an e-mail address at most; longer input is cut, not stored whole


class FailureWindow:
    """Failures per key within the last ``window_s`` seconds; thread-safe, bounded in keys."""

    def __init__(self, limit: int, window_s: float, max_keys: int, now: Callable[[], float]) -> None:
        if limit < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys must be at least 1 and window_s positive")
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._now = now
        # Least recently failing first; per key its last ``limit`` failure times, oldest first (a short
        # list: a deque costs ten times the memory at this size).
        self._keys: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0  # keys forgotten to make room while they still counted

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        with self._lock:
            times = self._keys.get(key)
            if times is None or len(times) < self.limit:
                return 0.0
            return max(0.0, times[0] + self.window_s - self._now())

    def fail(self, key: str) -> float:
        """Record a failure now; return its time (for :meth:`take_back`)."""
        now = self._now()
        with self._lock:
            times = self._keys.get(key)
            if times is None:
                self._make_room(now)
                times = self._keys[key] = []
            else:
                self._keys.move_to_end(key)
            times.append(now)
            if len(times) > self.limit:
                del times[0]
        return now

    def take_back(self, key: str, at: float) -> None:
        """Remove the failure recorded at ``at`` (it turned out to be a success)."""
        with self._lock:
            times = self._keys.get(key)
            if times is not None and at in times:
                times.remove(at)

    def clear(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)

    def _make_room(self, now: float) -> None:
        # Keys are in the order of their last failure: the expired ones are at the front.
        while self._keys:
            oldest = next(iter(self._keys.values()))
            if oldest[-1] + self.window_s > now:
                break
            self._keys.popitem(last=False)
        while len(self._keys) >= self.max_keys:
            self._keys.popitem(last=False)
            self.evicted += 1
            if self.evicted == 1 or self.evicted % 10_000 == 0:  # a flood must not flood the log too
                logger.warning(
                    "sign-in failure table full (%d keys): %d keys forgotten so far, the least "
                    "recently failing first (many addresses or e-mails are failing)",
                    self.max_keys,
                    self.evicted,
                )


@dataclass(frozen=True)
class Refusal:
    retry_after_s: float
    reason: str  # "account" | "address"


@dataclass(frozen=True)
class Attempt:
    """A sign-in let through, counted as a failure until :meth:`LoginThrottle.succeeded`."""

    account: str
    address: str
    address_at: float


class LoginThrottle:
    """Per account (the e-mail as typed, normalised) and per client address (IPv6 by /64)."""

    def __init__(
        self,
        per_account: int = 5,
        per_address: int = 20,
        window_s: float = 900.0,
        max_keys: int = 10_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = FailureWindow(per_account, window_s, max_keys, now)
        self.addresses = FailureWindow(per_address, window_s, max_keys, now)
        self._lock = threading.Lock()  # check and count as one step

    def check(self, email: str, address: str) -> Refusal | None:
        """None when a sign-in may be tried now; otherwise how long to wait and which limit hit."""
        return self._refusal(account_key(email), address_key(address))

    def begin(self, email: str, address: str) -> Attempt | Refusal:
        """Let a sign-in through (counted as a failure already) or refuse it (counted as nothing)."""
        account, addr = account_key(email), address_key(address)
        with self._lock:
            refused = self._refusal(account, addr)
            if refused is not None:
                return refused
            self.accounts.fail(account)
            return Attempt(account, addr, self.addresses.fail(addr))

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the account starts afresh, the address gets this attempt back."""
        self.accounts.clear(attempt.account)
        self.addresses.take_back(attempt.address, attempt.address_at)

    def _refusal(self, account: str, address: str) -> Refusal | None:
        by_account = self.accounts.retry_after(account)
        by_address = self.addresses.retry_after(address)
        if by_account <= 0 and by_address <= 0:
            return None
        if by_account >= by_address:
            return Refusal(by_account, "account")
        return Refusal(by_address, "address")


def account_key(email: str) -> str:
    return email.strip().lower()[:MAX_KEY_CHARS]


def address_key(address: str) -> str:
    """One key per IPv4 address and per IPv6 /64 (what one subscriber gets)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
