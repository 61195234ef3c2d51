"""`walkout demo` as a new user runs it: embedded broker, SQLite, simulated shoppers, receipts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    staff = httpx.Client(base_url=base, timeout=2)  # /api/ is for staff: sign in as the demo manager
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not receipts:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if "walkout_session" not in staff.cookies:
                    _sign_in(staff, tmp_path / "var" / "demo-credentials.txt")
                answer = staff.get("/api/receipts")
                if answer.status_code == 200:
                    receipts = answer.json()
            time.sleep(1)
        assert receipts, "no shopper left the demo store within two minutes"
        health = httpx.get(f"{base}/health", timeout=2).json()
        assert health["status"] == "ok" and health["mqtt_connected"] is True
        assert httpx.get(f"{base}/docs", timeout=2).status_code == 200
        assert staff.get("/staff").status_code == 200
    finally:
        staff.close()
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
    out = (tmp_path / "demo.log").read_text()
    assert f"http://127.0.0.1:{port}/docs" in out and f"http://127.0.0.1:{port}/staff" in out
    assert f"receipt {receipts[0]['id']}:" in out
    assert (tmp_path / "var" / "demo.db").exists()
    assert list((tmp_path / "var" / "receipts").glob("*.txt"))
    assert "Traceback" not in out


def _sign_in(client: httpx.Client, credentials: Path) -> None:
    """The demo prints its manager's random password once and keeps it in var/demo-credentials.txt."""
    if not credentials.exists():
        return
    for line in credentials.read_text().splitlines():
        role, email, _, password = line.split()
        if role == "admin":
            client.post("/login", data={"email": email, "password": password})
