"""Entry codes (signed, short-lived by event time, single use) and the gate's side of them."""

from __future__ import annotations

import pytest

from store_server.domain.accounts import (
    AccountError,
    EntryRejected,
    check_password_strength,
    issue_entry_code,
    normalise_email,
    verify_entry_code,
)
from store_server.service.accounts import account_for_entry
from tests.fakes import FakeUnitOfWork

SECRET = b"unit-test-secret-key-0123456789"
T0 = 1_700_000_000.0


def test_a_code_carries_account_and_group_and_fits_a_gate_pass():
    code = issue_entry_code(SECRET, "acct-u-1", 3, T0)
    assert len(code) <= 256
    parsed = verify_entry_code(SECRET, code, T0 + 5)
    assert (parsed.account_token, parsed.group_size, parsed.issued_at) == ("acct-u-1", 3, T0)


@pytest.mark.parametrize(
    ("at", "secret", "reason"),
    [
        (T0 + 121, SECRET, "expired"),
        (T0 - 60, SECRET, "issued after"),
        (T0 + 1, b"another-store-key", "signature"),
    ],
)
def test_expired_early_or_forged_codes_are_rejected(at, secret, reason):
    code = issue_entry_code(SECRET, "acct-u-1", 1, T0)
    with pytest.raises(EntryRejected, match=reason):
        verify_entry_code(secret, code, at)


def test_a_tampered_code_is_rejected():
    code = issue_entry_code(SECRET, "acct-u-1", 1, T0)
    body, mac = code.removeprefix("WK1.").split(".")
    other = issue_entry_code(SECRET, "acct-u-2", 1, T0).removeprefix("WK1.").split(".")[0]
    with pytest.raises(EntryRejected, match="signature"):
        verify_entry_code(SECRET, f"WK1.{other}.{mac}", T0)


def test_the_gate_admits_a_code_once_and_maps_it_to_the_ledger_account():
    uow = FakeUnitOfWork()
    code = issue_entry_code(SECRET, "acct-u-1", 1, T0)
    assert account_for_entry(uow, code, T0 + 3, "s-gate-1", SECRET, True, 120) == "acct-u-1"
    assert (
        account_for_entry(uow, code, T0 + 3, "s-gate-1", SECRET, True, 120) == "acct-u-1"
    )  # same pass again
    with pytest.raises(EntryRejected, match="already used"):
        account_for_entry(uow, code, T0 + 9, "s-gate-2", SECRET, True, 120)


def test_raw_tokens_only_where_allowed():
    uow = FakeUnitOfWork()
    assert account_for_entry(uow, "acct-7-1", T0, "s-1", SECRET, True, 120) == "acct-7-1"
    with pytest.raises(EntryRejected, match="not accepted"):
        account_for_entry(uow, "acct-7-1", T0, "s-1", SECRET, False, 120)


def test_emails_and_passwords_are_checked():
    assert normalise_email("  Ada@Example.COM ") == "ada@example.com"
    for bad in ("ada", "ada@", "@x.com", "a b@x.com"):
        with pytest.raises(AccountError):
            normalise_email(bad)
    for weak in ("short", "aaaaaaaaaaaa", " padded password "):
        with pytest.raises(AccountError):
            check_password_strength(weak)
    check_password_strength("correct horse battery")
