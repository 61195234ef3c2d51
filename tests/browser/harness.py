"""A whole store for browser tests: the real store server (SQLite) consuming from real Mosquitto under
a topic prefix of its own, its web app served by uvicorn on a free port, and a publisher that replays
a simulated day into it (its shoppers' entry passes signed by the server), and a fake card provider
for top-ups."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn

from edge.mqtt import parse_broker_url
from edge.publisher import Publisher
from sim_data.entry_signing import EntrySigner
from sim_data.pipeline import provision_accounts
from sim_data.replay import replay
from sim_data.simulator import SimResult, simulate
from store_server.api.app import create_app
from store_server.bootstrap import StoreServer, bootstrap
from store_server.domain.layout import load_layout
from store_server.settings import DEFAULT_STORE, Settings
from tests.e2e.helpers import free_port
from tests.fake_card_provider import FakeCardProvider

STAFF = {"email": "manager@browser.walkout", "password": "browser-test-manager-pw"}


class LiveStore:
    def __init__(self, broker_url: str, work: Path) -> None:
        run = uuid.uuid4().hex[:8]
        self._closing = threading.Event()
        self._replays: list[threading.Thread] = []
        self.prefix = f"walkout-browser-{run}"
        self.provider = FakeCardProvider().start()
        self.settings = Settings(
            database_url=f"sqlite:///{work / 'store.db'}",
            store_config=DEFAULT_STORE,
            receipts_dir=work / "receipts",
            topic_prefix=self.prefix,
            mqtt_client_id=f"walkout-browser-{run}",
            secret_key_file=work / "secret.key",
            event_clock="replay",  # days replayed faster than real time run ahead of the wall clock
            # Top-ups through a (fake) hosted-checkout card provider, as a real store would take them.
            card_provider_url=self.provider.url,
            card_provider_api_key=self.provider.api_key,
            card_webhook_secret=self.provider.webhook_secret.decode(),
        )
        self.layout = load_layout(DEFAULT_STORE)
        self.server: StoreServer = bootstrap(self.settings, layout=self.layout)
        assert self.server.web is not None
        self.server.web.people.create_staff(STAFF["email"], "Store Manager", STAFF["password"])
        self.server.start_consumer(broker_url).wait_connected()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.provider.webhook_url = f"{self.url}/payments/webhook"
        # The simulated shoppers enter on codes this server issues, like the signed-up one.
        self.signer = EntrySigner(self.server.web.people)
        config = uvicorn.Config(
            create_app(self.server), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.http = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.http.run, name="browser-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.http.started and time.monotonic() < deadline:
            time.sleep(0.05)
        self.publisher = Publisher(
            parse_broker_url(broker_url), self.layout.store_id, f"walkout-bt-{run}"
        ).connect()

    def simulate(self, t0: float, seed: int = 7) -> SimResult:
        result = simulate(self.layout, "basic", seed=seed, t0=t0)
        provision_accounts(self.server, result.ground_truth)
        return result

    def publish(self, messages: list[Any], speed: float | None) -> threading.Thread:
        """Replay in the background (at ``speed`` x real time) and return the thread."""

        def until_closed(_: int) -> None:
            if self._closing.is_set():
                raise _Closed

        def run() -> None:
            with contextlib.suppress(_Closed):
                signed = self.signer.messages(messages)
                replay(signed, self.publisher, speed=speed, prefix=self.prefix, on_message=until_closed)

        thread = threading.Thread(target=run, name="browser-replay", daemon=True)
        self._replays.append(thread)
        thread.start()
        return thread

    def close(self) -> None:
        self._closing.set()  # stop replays first: the publisher goes away below
        for thread in self._replays:
            thread.join(timeout=10)
        self.publisher.close(offline=False)
        self.http.should_exit = True
        self._thread.join(timeout=10)
        self.server.stop()
        self.provider.stop()


class _Closed(Exception):
    pass


def watch_csp(page: Any) -> list[str]:
    """Collect what the page's Content-Security-Policy refused (Chromium reports it on the console:
    "Refused to ..." or "... violates the following Content Security Policy directive ...") and
    uncaught script errors; a page that works under the CSP leaves the list empty."""
    seen: list[str] = []

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text or message.text.startswith("Refused to"):
            seen.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.append(f"{page.url}: uncaught {error}"))
    return seen
