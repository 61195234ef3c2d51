"""Browser tests: Playwright driving Debian's Chromium against a live store (real Mosquitto).

They FAIL, never skip, when Chromium or Mosquitto is missing: a green run means pages really worked.
Screenshots go to test-artifacts/ (gitignored); look at them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.harness import LiveStore

CHROMIUM = os.environ.get("WALKOUT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is required for the browser tests: {CHROMIUM} is missing "
            "(apt-get install chromium, or set WALKOUT_CHROMIUM)",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the browser tests need the playwright package (pip install playwright; "
            "never 'playwright install': Debian's Chromium is used)",
            pytrace=False,
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def store(mosquitto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStore]:
    live = LiveStore(mosquitto_url, tmp_path_factory.mktemp("browser-store"))
    try:
        yield live
    finally:
        live.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; registered here so --strict-markers accepts it either way.
    config.addinivalue_line(
        "markers", "browser: drives Debian Chromium through Playwright against a live store"
    )
