"""Sign-in throttling: per account and per address, a sliding window on an injected clock, bounded."""

from __future__ import annotations

import threading

import pytest

from store_server.service.rate_limit import Attempt, FailureWindow, LoginThrottle, Refusal, address_key


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_an_account_is_locked_after_five_failures_until_the_window_passes():
    clock = Clock()
    throttle = LoginThrottle(per_account=5, per_address=20, window_s=900, now=clock)
    for i in range(5):
        assert isinstance(throttle.begin("Ada@Example.org", "10.0.0.1"), Attempt), i  # then fails
        clock.t += 1
    refused = throttle.check(" ada@example.org ", "10.0.0.2")  # same account, typed differently
    assert refused is not None and refused.reason == "account"
    assert refused.retry_after_s == pytest.approx(900 - 5)
    assert throttle.check("grace@example.org", "10.0.0.1") is None  # other accounts are not locked
    clock.t = 1000.0 + 900  # the first failure leaves the window: one more try
    assert isinstance(throttle.begin("ada@example.org", "10.0.0.1"), Attempt)  # fails again:
    assert throttle.check("ada@example.org", "10.0.0.1") is not None  # locked again at once


def test_a_success_clears_the_account_but_not_the_address():
    clock = Clock()
    throttle = LoginThrottle(per_account=5, per_address=8, window_s=900, now=clock)
    for _ in range(4):
        throttle.begin("ada@example.org", "10.0.0.1")
    right = throttle.begin("ada@example.org", "10.0.0.1")
    assert isinstance(right, Attempt)
    throttle.succeeded(right)  # the account starts afresh; the success is no failure of the address
    for _ in range(4):
        assert isinstance(throttle.begin("ada@example.org", "10.0.0.1"), Attempt)
    refused = throttle.check("someone@example.org", "10.0.0.1")  # 8 failures from this address
    assert refused is not None and refused.reason == "address"
    assert throttle.check("someone@example.org", "10.0.0.9") is None


def test_one_address_cycling_e_mails_is_stopped_by_the_address_limit():
    clock = Clock()
    throttle = LoginThrottle(per_account=5, per_address=20, window_s=900, now=clock)
    tried = 0
    for i in range(60):
        if isinstance(throttle.begin(f"user{i}@example.org", "203.0.113.7"), Refusal):
            break
        tried += 1
    assert tried == 20


def test_memory_stays_bounded_when_keys_are_cycled():
    clock = Clock()
    window = FailureWindow(limit=5, window_s=900, max_keys=100, now=clock)
    for i in range(10_000):
        window.fail(f"attacker{i}@example.org")
        clock.t += 0.01
    assert len(window) == 100 and window.evicted == 10_000 - 100
    window.fail("victim@example.org")  # a fresh key still gets a place (the least recent one goes)
    for _ in range(4):
        window.fail("victim@example.org")
    assert window.retry_after("victim@example.org") > 0
    for _ in range(5):  # per key, only the last ``limit`` failures are kept
        window.fail("victim@example.org")
    assert len(window._keys["victim@example.org"]) == 5


def test_expired_keys_are_dropped_first():
    clock = Clock()
    window = FailureWindow(limit=3, window_s=60, max_keys=3, now=clock)
    for _ in range(3):
        window.fail("locked")
    window.fail("old-1")
    clock.t += 30
    window.fail("fresh")
    clock.t += 40  # old-1 and locked are out of the window now, fresh is not
    window.fail("new")
    assert set(window._keys) == {"fresh", "new"}


def test_addresses_are_keyed_per_ipv4_and_per_ipv6_64():
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("testclient") == "testclient"


def test_parallel_guesses_cannot_all_pass_the_check_before_the_first_fails():
    # Every attempt is counted when it is let through, not when its (slow) password check fails.
    throttle = LoginThrottle(per_account=5, per_address=1000, window_s=900, now=Clock())
    barrier = threading.Barrier(50)
    results: list[object] = []

    def guess(i: int) -> None:
        barrier.wait(timeout=30)
        results.append(throttle.begin("ada@example.org", f"198.51.100.{i}"))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sum(isinstance(r, Attempt) for r in results) == 5
    assert sum(isinstance(r, Refusal) for r in results) == 45
