"""Simulated shoppers enter the way real ones do: on an entry code the store server issued.

Datasets (simulated or imported) carry each shopper's bare ledger token on the entry gate pass. A store
server accepts those only when told to (``WALKOUT_ACCEPT_RAW_ACCOUNT_TOKENS``), so whatever runs the
store server in the same process (``walkout run``, ``walkout demo``, the browser tests) signs instead:
each entry pass's token is replaced with a code issued by that server for that account at the pass's
event time, for the pass's group size, so the store decides exactly as it would for the raw pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from sim_data.dataset import SimMessage
from store_server.domain.accounts import looks_like_entry_code
from store_server.service.accounts import AccountService

logger = logging.getLogger(__name__)


def is_entry_pass(topic: str, payload: Any) -> bool:
    return (
        topic.endswith("/gate")
        and isinstance(payload, dict)
        and payload.get("direction") == "entry"
        and isinstance(payload.get("account_token"), str)
    )


class EntrySigner:
    """Replaces bare tokens on entry gate passes with codes issued by ``people`` (the server's)."""

    def __init__(self, people: AccountService) -> None:
        self._people = people
        # By message id: a duplicated delivery of one pass carries the same code, as a real one would.
        self._codes: dict[str, str] = {}

    def payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        token = payload["account_token"]
        if looks_like_entry_code(token):
            return payload  # signed already (a browser test's own code)
        msg_id = f"{payload.get('node_id')}:{payload.get('seq')}"
        code = self._codes.get(msg_id)
        if code is None:
            at = float(payload["ts"])
            group = int(payload.get("group_size", 1))
            code = self._people.issue_code_for_account(token, group, at, require_account=False).code
            self._codes[msg_id] = code
        return {**payload, "account_token": code}

    def messages(self, messages: Iterable[Any]) -> Iterator[Any]:
        """The same messages, entry passes signed (anything with ``t``, ``topic`` and ``payload``)."""
        for m in messages:
            if is_entry_pass(m.topic, m.payload):
                yield SimMessage(m.t, m.topic, self.payload(m.payload))
            else:
                yield m
