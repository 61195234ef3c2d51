"""Accounts: e-mail addresses and passwords (entry codes: tests/unit/test_entry_codes.py)."""

from __future__ import annotations

import pytest

from store_server.domain.accounts import AccountError, check_password_strength, normalise_email


def test_emails_and_passwords_are_checked():
    assert normalise_email("  Ada@Example.COM ") == "ada@example.com"
    for bad in ("ada", "ada@", "@x.com", "a b@x.com"):
        with pytest.raises(AccountError):
            normalise_email(bad)
    for weak in ("short", "aaaaaaaaaaaa", " padded password "):
        with pytest.raises(AccountError):
            check_password_strength(weak)
    check_password_strength("correct horse battery")
