"""Secure by default on the web: security headers on every response (pages, JSON, static, errors),
no-store where personal data or entry codes are shown, no inline script or style anywhere the CSP
would refuse it, /docs from vendored assets, and sign-in throttled per account and per address."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from store_server.api.app import create_app
from store_server.api.templating import HERE, STATIC_DIR
from store_server.bootstrap import bootstrap
from store_server.service.rate_limit import LoginThrottle
from store_server.settings import Settings

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
STAFF = "staff@test.walkout"


class Clock:
    def __init__(self) -> None:
        self.t = 5000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("security")
    srv = bootstrap(
        Settings(
            database_url=f"sqlite:///{tmp / 'web.db'}",
            receipts_dir=tmp / "receipts",
            secret_key_file=tmp / "secret.key",
        )
    )
    srv.web.people.create_staff(STAFF, "Staff", PASSWORD)
    yield srv
    srv.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(server, clock):
    app = create_app(server)
    app.state.login_throttle = LoginThrottle(per_account=5, per_address=20, window_s=900, now=clock)

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("a bug")

    return TestClient(app, raise_server_exceptions=False)


def assert_secure(response) -> None:
    h = response.headers
    csp = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in h["content-security-policy"].split(";"))}
    assert csp["default-src"] == ["'self'"] and csp["script-src"] == ["'self'"], csp
    assert csp["style-src"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"]
    assert (
        csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'self'"] and csp["form-action"] == ["'self'"]
    )
    assert (
        "unsafe-inline" not in h["content-security-policy"]
        and "unsafe-eval" not in h["content-security-policy"]
    )
    assert h["x-frame-options"] == "DENY"
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] in ("no-referrer", "strict-origin-when-cross-origin")


def test_every_kind_of_response_carries_the_security_headers(client):
    responses = {
        "page": client.get("/login"),
        "json": client.get("/health"),
        "refused json": client.get("/api/sessions"),
        "static": client.get("/static/app.css"),
        "docs": client.get("/docs"),
        "openapi": client.get("/openapi.json"),
        "not found": client.get("/no-such-page"),
        "redirect": client.get("/app", headers={"Accept": "text/html"}, follow_redirects=False),
        "cross-origin write": client.post("/logout", headers={"Origin": "https://evil.example"}),
        "server error": client.get("/boom"),
    }
    expected = {"refused json": 401, "not found": 404, "redirect": 303, "cross-origin write": 403}
    for kind, response in responses.items():
        assert response.status_code == expected.get(kind, 500 if kind == "server error" else 200), kind
        assert_secure(response)
    assert "cache-control" not in responses["static"].headers  # assets may be cached


def test_pages_and_json_with_personal_data_or_entry_codes_are_never_stored(client):
    signed_up = client.post(
        "/signup", data={"name": "Ada", "email": "ada-cache@test.walkout", "password": PASSWORD}
    )
    assert signed_up.status_code == 200
    for path in ("/app", "/app/enter", "/app/receipts", "/api/me", "/api/me/receipts"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-store", path
        assert_secure(response)
    entry = client.post("/api/me/entry-code", json={"group_size": 1})
    assert entry.status_code == 200 and entry.headers["cache-control"] == "no-store"


def test_no_template_has_inline_script_event_handlers_or_style_attributes():
    for template in sorted((HERE / "templates").glob("*.html")) + [STATIC_DIR / "docs" / "index.html"]:
        text = template.read_text()
        for script in re.findall(r"<script\b[^>]*>", text, flags=re.I):
            assert re.search(r"\bsrc=", script), f"{template.name}: inline {script}"
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", text, flags=re.I), f"{template.name}: script body"
        assert not re.search(r"\son[a-z]+\s*=", text, flags=re.I), f"{template.name}: on*= handler"
        assert not re.search(r"\sstyle\s*=", text, flags=re.I), f"{template.name}: style attribute"
        assert "<style" not in text.lower(), f"{template.name}: <style> element"
    for script in STATIC_DIR.glob("*.js"):
        text = script.read_text()
        assert 'setAttribute("style"' not in text and "innerHTML = `" not in text, script.name


def test_docs_are_served_from_vendored_assets_without_inline_script(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/static/docs/") for u in urls), urls
    assert "cdn" not in page.text.lower() and "http" not in page.text.lower()
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 0, url
        assert_secure(asset)
    bundle = client.get("/static/docs/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert len(bundle.content) > 500_000  # the real bundle, not a stub
    assert client.get("/redoc").status_code == 404  # ReDoc (a CDN page) is gone
    assert "/api/sessions" in client.get("/openapi.json").json()["paths"]


def _login(client, email: str, password: str):
    return client.post("/login", data={"email": email, "password": password}, follow_redirects=False)


def test_sixty_wrong_passwords_lock_the_account_until_the_window_passes(client, clock):
    statuses = [_login(client, STAFF, f"guess-{i}").status_code for i in range(60)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    locked = _login(client, STAFF, PASSWORD)  # the right password is refused too while locked
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) == 900
    assert "Too many failed sign-ins for this account. Try again in 15 minutes." in locked.text
    assert_secure(locked)
    assert "walkout_session" not in locked.cookies
    clock.t += 899
    assert _login(client, STAFF, PASSWORD).status_code == 429
    clock.t += 2  # the window has passed
    ok = _login(client, STAFF, PASSWORD)
    assert ok.status_code == 303 and ok.headers["location"] == "/staff"


def test_a_success_resets_the_account_counter(client):
    for _ in range(4):
        assert _login(client, STAFF, "wrong").status_code == 401
    assert _login(client, STAFF, PASSWORD).status_code == 303
    for _ in range(4):
        assert _login(client, STAFF, "wrong").status_code == 401
    assert _login(client, STAFF, PASSWORD).status_code == 303


def test_one_address_trying_many_accounts_is_limited_too(client, clock):
    statuses = [_login(client, f"user{i}@test.walkout", "guess").status_code for i in range(25)]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    refused = _login(client, STAFF, PASSWORD)
    assert refused.status_code == 429 and "from this network" in refused.text
    clock.t += 901
    assert _login(client, STAFF, PASSWORD).status_code == 303


def test_the_limits_come_from_the_settings(server, tmp_path: Path):
    settings = Settings(
        login_max_failures_per_account=3, login_max_failures_per_address=7, login_failure_window_s=60
    )
    server.settings, original = settings, server.settings
    try:
        throttle = create_app(server).state.login_throttle
    finally:
        server.settings = original
    assert (throttle.accounts.limit, throttle.addresses.limit, throttle.accounts.window_s) == (3, 7, 60)
