"""`walkout demo` as a new user runs it: embedded broker, SQLite, simulated shoppers, receipts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.e2e.helpers import free_port

pytestmark = pytest.mark.e2e


def test_demo_serves_the_api_and_issues_receipts_as_shoppers_leave(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALKOUT_")}
    log = (tmp_path / "demo.log").open("w")
    demo = subprocess.Popen(
        [sys.executable, "-m", "store_server.cli", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    receipts: list[dict] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not receipts:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                receipts = httpx.get(f"{base}/api/receipts", timeout=2).json()
            time.sleep(1)
        assert receipts, "no shopper left the demo store within two minutes"
        health = httpx.get(f"{base}/health", timeout=2).json()
        assert health["status"] == "ok" and health["mqtt_connected"] is True
        assert httpx.get(f"{base}/docs", timeout=2).status_code == 200
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
    out = (tmp_path / "demo.log").read_text()
    assert f"http://127.0.0.1:{port}/docs" in out
    assert f"receipt {receipts[0]['id']}:" in out
    assert (tmp_path / "var" / "demo.db").exists()
    assert list((tmp_path / "var" / "receipts").glob("*.txt"))
    assert "Traceback" not in out
