"""The pages work under the Content-Security-Policy in a real Chromium, /docs renders from the
vendored Swagger UI with the network limited to this machine, and a locked sign-in says so."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.harness import STAFF, LiveStore, watch_csp

pytestmark = pytest.mark.browser

SHOPPER = {"name": "Grace Hopper", "email": "grace@browser.walkout", "password": "compiler-a-0-1952"}
LOCAL = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def local_only(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    """A browser context that may reach this machine only; what it tried elsewhere is listed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def gate(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOCAL:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", gate)
    yield context, outside
    context.close()


def test_the_csp_watch_sees_a_violation(store: LiveStore, local_only: Any):
    context, _ = local_only
    page = context.new_page()
    refused = watch_csp(page)
    page.goto(f"{store.url}/login")
    page.evaluate("document.body.setAttribute('style', 'color: red')")  # an inline style: refused
    page.wait_for_function("() => true")
    page.wait_for_timeout(200)  # the console message is delivered asynchronously
    assert refused and "Content Security Policy" in refused[0]


def test_login_app_and_staff_pages_run_under_the_csp(store: LiveStore, local_only: Any, artifacts: Any):
    context, outside = local_only
    page = context.new_page()
    refused = watch_csp(page)
    page.goto(f"{store.url}/signup")
    for field in ("name", "email", "password"):
        page.fill(f"input[name={field}]", SHOPPER[field])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/app$"))
    page.goto(f"{store.url}/app/enter")
    page.wait_for_selector("#entry-code svg")
    page.wait_for_function(  # app.js runs: the countdown ticks
        "() => /^\\d+ s$/.test(document.querySelector('[data-countdown]').textContent)"
    )
    page.goto(f"{store.url}/app/receipts")
    page.click("button:has-text('Sign out')")
    page.wait_for_url(re.compile(r".*/login$"))
    page.fill("input[name=email]", STAFF["email"])
    page.fill("input[name=password]", STAFF["password"])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff$"))
    page.wait_for_selector("#map .gondola")  # dashboard scripts ran and the live stream connected
    page.wait_for_selector("[data-kpi=shoppers_in_store]:not(:has-text('–'))")
    page.screenshot(path=str(artifacts / "csp-dashboard.png"))
    assert refused == [], refused
    assert outside == [], outside


def test_docs_render_the_operations_with_the_network_limited_to_this_machine(
    store: LiveStore, local_only: Any, artifacts: Any
):
    context, outside = local_only
    page = context.new_page()
    refused = watch_csp(page)
    page.goto(f"{store.url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() >= 20
    assert page.locator(".opblock-summary-path[data-path='/health']").count() == 1
    # Try one: Swagger UI calls the API from the page (connect-src 'self').
    page.click(".opblock-get:has(.opblock-summary-path[data-path='/health']) .opblock-summary")
    page.click("button.try-out__btn")
    page.click("button.execute")
    page.wait_for_selector(".live-responses-table .response-col_status:has-text('200')", timeout=30_000)
    page.screenshot(path=str(artifacts / "docs.png"))
    assert refused == [], refused
    assert outside == [], outside


def test_a_locked_sign_in_says_when_to_try_again(store: LiveStore, local_only: Any, artifacts: Any):
    context, _ = local_only
    page = context.new_page()
    refused = watch_csp(page)
    page.goto(f"{store.url}/login")
    for i in range(6):
        page.fill("input[name=email]", "nobody@browser.walkout")
        page.fill("input[name=password]", f"guess-{i}")
        with page.expect_response(re.compile(r".*/login$")) as answer:
            page.click("button[type=submit]")
        status = answer.value.status
        assert status == (401 if i < 5 else 429), (i, status)
    assert 0 < int(answer.value.headers["retry-after"]) <= 900
    assert re.fullmatch(
        r"Too many failed sign-ins for this account\. Try again in \d+ minutes\.", page.inner_text(".error")
    )
    page.screenshot(path=str(artifacts / "login-locked.png"))
    assert refused == [], refused
