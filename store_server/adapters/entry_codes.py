"""Entry codes in SQL: the codes the store issued (``entry_codes``) and their single use
(``entry_code_uses``).

Issuing is a web request in its own short transaction (:class:`IssuedEntryCodes`); the gate's lookup
and the use run inside the decision's unit of work (:class:`SqlAlchemyEntryCodeRepository`), so a
refused or admitted entry commits together with the session it opens, or not at all.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Row, delete, select
from sqlalchemy.orm import Session, sessionmaker

from store_server.adapters import orm
from store_server.adapters.reviews import SqlAlchemyEntryCodeRepository as _EntryCodeUses
from store_server.domain.accounts import EntryCode

logger = logging.getLogger(__name__)

# Issued codes are kept this long after they expire (in the issuer's time), so a backlog of gate passes
# processed late, or a replay of the inbox, still finds them; older ones are swept at the next issue.
KEEP_EXPIRED_S = 30 * 86400.0


def _code(r: Row[Any]) -> EntryCode:
    return EntryCode(r.reference, r.account_token, r.group_size, r.issued_at, r.expires_at)


class IssuedEntryCodes:
    """The issuing side, used by the shopper app and the simulator's signer."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def add(self, code: EntryCode) -> None:
        t = orm.entry_codes
        with self._sessions() as s:
            # Swept relative to the new code's issue time, not the wall clock: a simulated day issues
            # codes at its own (old) event times and must not sweep the ones it is about to use.
            s.execute(delete(t).where(t.c.expires_at < code.issued_at - KEEP_EXPIRED_S))
            s.execute(
                t.insert().values(
                    reference=code.reference,
                    account_token=code.account_token,
                    group_size=code.group_size,
                    issued_at=code.issued_at,
                    expires_at=code.expires_at,
                )
            )
            s.commit()

    def get(self, reference: str) -> EntryCode | None:
        with self._sessions() as s:
            r = s.execute(select(orm.entry_codes).where(orm.entry_codes.c.reference == reference)).first()
        return _code(r) if r else None


class SqlAlchemyEntryCodeRepository(_EntryCodeUses):
    """The gate's side, in the decision's transaction: look a reference up, then use it once."""

    def issued(self, reference: str) -> EntryCode | None:
        t = orm.entry_codes
        r = self._s.execute(select(t).where(t.c.reference == reference)).first()
        return _code(r) if r else None
