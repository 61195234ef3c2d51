"""Entry codes: an opaque reference signed by the store, looked up, alive by event time, used once; the
group size comes from the code only; bare account tokens are refused unless switched on."""

from __future__ import annotations

import base64
import binascii
import contextlib

import pytest

from edge.contracts import GatePass
from store_server.domain.accounts import EntryRejected, issue_entry_code
from store_server.domain.fusion import TrackHistory
from store_server.service import handlers
from store_server.service.accounts import admit
from store_server.settings import Settings
from tests.fakes import FakePaymentGateway, FakeUnitOfWork

SECRET = b"unit-test-secret-key-0123456789"
T0 = 1_700_000_000.0
ACCOUNT = "acct-u-1f2e3d4c5b6a7988"


def _issued(uow: FakeUnitOfWork, account: str = ACCOUNT, group: int = 1, secret: bytes = SECRET) -> str:
    code, record = issue_entry_code(secret, account, group, T0, ttl_s=120.0)
    uow.entry_codes.codes[record.reference] = record  # what the store keeps when it issues
    return code


def _decodings(text: str) -> list[bytes]:
    out = [text.encode()]
    for part in text.replace(".", " ").split():
        for pad in ("", "=", "=="):
            with contextlib.suppress(binascii.Error, ValueError):
                out.append(base64.urlsafe_b64decode(part + pad))
    return out


def test_a_code_fits_a_gate_pass_and_reveals_no_account_token():
    uow = FakeUnitOfWork()
    code = _issued(uow)
    assert code.startswith("WK2.") and len(code) <= 256
    for decoded in _decodings(code):  # neither in clear nor in any base64 reading of its parts
        assert ACCOUNT.encode() not in decoded and b"acct" not in decoded
    assert admit(uow, code, T0 + 5, "s-1", SECRET, accept_raw=False).account_token == ACCOUNT


@pytest.mark.parametrize(
    ("at", "secret", "reason"),
    [
        (T0 + 121, SECRET, "expired"),
        (T0 - 60, SECRET, "issued after"),
        (T0 + 1, b"another-store-key", "signature"),
    ],
)
def test_expired_early_or_foreign_codes_are_refused(at, secret, reason):
    uow = FakeUnitOfWork()
    code = _issued(uow)
    with pytest.raises(EntryRejected, match=reason):
        admit(uow, code, at, "s-1", secret, accept_raw=False)
    assert uow.entry_codes.used == {}  # a refused code is not used up


def test_a_tampered_or_unknown_code_is_refused():
    uow = FakeUnitOfWork()
    code = _issued(uow)
    other = _issued(uow, "acct-u-2")
    reference, mac = code.removeprefix("WK2.").split(".")
    other_reference = other.removeprefix("WK2.").split(".")[0]
    with pytest.raises(EntryRejected, match="signature"):
        admit(uow, f"WK2.{other_reference}.{mac}", T0, "s-1", SECRET, accept_raw=False)
    genuine_but_forgotten = _issued(FakeUnitOfWork())  # signed with our key, never recorded here
    with pytest.raises(EntryRejected, match="not issued by this store"):
        admit(uow, genuine_but_forgotten, T0, "s-1", SECRET, accept_raw=False)
    with pytest.raises(EntryRejected, match="malformed"):
        admit(uow, "WK2.short.x", T0, "s-1", SECRET, accept_raw=False)


def test_a_code_admits_once_and_the_same_pass_again():
    uow = FakeUnitOfWork()
    code = _issued(uow)
    assert admit(uow, code, T0 + 3, "s-gate-1", SECRET, accept_raw=False).account_token == ACCOUNT
    assert admit(uow, code, T0 + 3, "s-gate-1", SECRET, accept_raw=False).account_token == ACCOUNT
    with pytest.raises(EntryRejected, match="already used"):
        admit(uow, code, T0 + 9, "s-gate-2", SECRET, accept_raw=False)


def test_bare_tokens_are_refused_by_default_and_the_old_clear_format_always():
    uow = FakeUnitOfWork()
    assert Settings(_env_file=None).accept_raw_account_tokens is False
    assert handlers.Context.accept_raw_tokens is False
    with pytest.raises(EntryRejected, match="bare account tokens are not accepted"):
        admit(uow, "acct-7-1", T0, "s-1", SECRET, accept_raw=False)
    with pytest.raises(EntryRejected, match="retired format"):
        admit(uow, "WK1.eyJhIjoiYWNjdC03LTEifQ.mac", T0, "s-1", SECRET, accept_raw=True)
    # Switched on, the operator trusts the gate: its token and its group size.
    admitted = admit(uow, "acct-7-1", T0, "s-1", SECRET, accept_raw=True, claimed_group=3)
    assert (admitted.account_token, admitted.group_size) == ("acct-7-1", 3)


def _gate_with_shoppers(layout, n: int) -> handlers.Context:
    tracks = TrackHistory()
    for i in range(n):  # n people standing in the entry gate's zone
        for t in (T0 - 0.2, T0, T0 + 0.2):
            tracks.add(f"t{i}", t, 0.2 + 0.15 * i, 0.5)
    ctx = handlers.Context(layout, tracks, FakePaymentGateway({}))
    ctx.secret_key = SECRET
    return ctx


def _entry(token: str, group_size: int, seq: int = 1) -> GatePass:
    return GatePass(
        node_id="gate-in", seq=seq, ts=T0, gate_id="in", direction="entry", account_token=token,
        group_size=group_size,
    )


def test_a_gate_pass_claiming_four_on_a_code_for_one_opens_a_session_of_one(layout):
    ctx, uow = _gate_with_shoppers(layout, 4), FakeUnitOfWork()
    outcome = handlers.open_session(ctx, uow, _entry(_issued(uow, group=1), 4), "topic", 0.0)
    assert outcome.kind == "opened"
    session = uow.sessions.get(outcome.session_id)
    assert session.account_token == ACCOUNT and session.group_size == 1
    assert len(session.track_ids()) == 1  # one shopper bound; the other three are nobody's


def test_a_code_for_three_admits_three_whatever_the_gate_says(layout):
    ctx, uow = _gate_with_shoppers(layout, 4), FakeUnitOfWork()
    outcome = handlers.open_session(ctx, uow, _entry(_issued(uow, group=3), 1), "topic", 0.0)
    session = uow.sessions.get(outcome.session_id)
    assert session.group_size == 3 and len(session.track_ids()) == 3


def test_a_refused_entry_opens_no_session_and_is_dead_lettered(layout):
    ctx, uow = _gate_with_shoppers(layout, 1), FakeUnitOfWork()
    outcome = handlers.open_session(ctx, uow, _entry(ACCOUNT, 1), "topic", 0.0)
    assert outcome.kind == "entry_refused" and uow.sessions.open_sessions() == []
    (letter,) = uow.dead_letters.list()
    assert letter.field == "account_token" and "bare account tokens" in letter.reason
