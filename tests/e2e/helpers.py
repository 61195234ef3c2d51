"""What the end-to-end tests compare: receipts and charges as stored, independent of wall time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from store_server.adapters.db import make_engine, make_session_factory
from store_server.adapters.ledger import Accounts
from store_server.adapters.unit_of_work import SqlAlchemyUnitOfWork

Receipts = dict[str, tuple[Any, ...]]


def stored_receipts(database_url: str) -> Receipts:
    """Every receipt by session id: lines, totals and payment status (no wall-clock fields)."""
    engine = make_engine(database_url)
    try:
        with SqlAlchemyUnitOfWork(make_session_factory(engine)) as uow:
            return {
                r.session_id: (
                    tuple((ln.sku, ln.quantity, ln.amount_cents) for ln in r.bill.lines),
                    r.bill.subtotal_cents,
                    r.bill.tax_cents,
                    r.bill.total_cents,
                    r.payment_status,
                    r.exited_at,
                )
                for r in uow.receipts.list(limit=10_000)
            }
    finally:
        engine.dispose()


def charges_per_account(database_url: str, tokens: list[str]) -> dict[str, int]:
    engine = make_engine(database_url)
    try:
        accounts = Accounts(make_session_factory(engine))
        return {t: sum(1 for e in accounts.entries(t) if e.kind == "charge") for t in tokens}
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``walkout serve`` as a separate process, the way production runs it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = {**os.environ, **env}
        self.port = int(env["WALKOUT_HTTP_PORT"])
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "store_server.cli", "serve", "-v"], env=self.env, stdout=out, stderr=out
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"walkout serve exited: {self.log.read_text()[-2000:]}")
            try:
                health = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).json()
                if health.get("mqtt_connected"):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"walkout serve did not come up: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no clean-up, no last acknowledgements
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
