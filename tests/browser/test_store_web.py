"""The people-facing web in a real browser while a simulated day replays over Mosquitto.

One story, in order: a shopper signs up on a phone-sized screen and gets an entry code; the day is
replayed with one simulated visit entering on that code (and one of its picks doubtful); the dashboard
shows that shopper moving and a cart line appearing; the shopper sees the receipt after leaving; staff
resolve the review item and the shopper's receipt changes, with the refund shown; staff correct and
charge the cart of a visit that timed out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sim_data.simulator import simulate
from store_server.domain.review import ReviewKind, review_id_for
from store_server.domain.session import SessionState, ShopperSession, session_id_for
from store_server.service import review_open
from tests.browser.harness import STAFF, LiveStore, watch_csp

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}
SCREEN = {"width": 1920, "height": 1080}
SHOPPER = {"name": "Ada Lovelace", "email": "ada@browser.walkout", "password": "analytical-engine-1843"}


@pytest.fixture(scope="module")
def staff_page(browser: Any, store: LiveStore) -> Iterator[Any]:
    context = browser.new_context(viewport=SCREEN)
    page = context.new_page()
    page.csp_refused = watch_csp(page)  # checked by the last test of the story
    page.goto(f"{store.url}/staff")  # not signed in: the sign-in page, then back
    page.fill("input[name=email]", STAFF["email"])
    page.fill("input[name=password]", STAFF["password"])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff$"))
    page.wait_for_selector("#map .gondola")
    yield page
    context.close()


@pytest.fixture(scope="module")
def shopper_page(browser: Any, store: LiveStore) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.csp_refused = watch_csp(page)
    yield page
    context.close()


@pytest.fixture(scope="module")
def visit(store: LiveStore, staff_page: Any, shopper_page: Any, artifacts: Any) -> dict[str, Any]:
    """Sign up in the browser, take the entry code, and replay a day with one visit entering on it."""
    page = shopper_page
    page.goto(f"{store.url}/signup")
    for field in ("name", "email", "password"):
        page.fill(f"input[name={field}]", SHOPPER[field])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/app$"))
    page.click("form.topup button >> nth=1")  # + 20.00: on to the card provider's page
    page.wait_for_url(re.compile(re.escape(store.provider.url) + r"/pay/"))
    assert "20.00" in page.inner_text("#amount")
    page.click("#pay")  # the provider calls the store's webhook, then sends the shopper back
    page.wait_for_url(re.compile(r".*/app\?top_up=done$"))
    page.wait_for_selector("[data-testid=balance]:has-text('20.00')")
    page.screenshot(path=str(artifacts / "shopper-wallet.png"))
    page.goto(f"{store.url}/app/enter")
    code = page.get_attribute("#entry-code", "data-code")
    assert code and code.startswith("WK2.")
    assert page.locator("#entry-code svg").count() == 1
    page.screenshot(path=str(artifacts / "shopper-entry-code.png"))

    # The visit: a simulated shopper with several items enters on this code, a few seconds from now.
    probe = simulate(store.layout, "basic", seed=7, t0=0.0)
    chosen = next(i for i, s in enumerate(probe.ground_truth["sessions"]) if sum(s["items"].values()) >= 2)
    offset = probe.ground_truth["sessions"][chosen]["entered_at"]
    result = store.simulate(t0=time.time() - offset + 3.0)
    truth = result.ground_truth["sessions"][chosen]
    pick = next(
        e
        for e in result.ground_truth["events"]
        if e.get("track_id") in truth["track_ids"] and e.get("kind") == "pick"
    )
    for m in result.messages:
        msg_id = f"{m.payload.get('node_id')}:{m.payload.get('seq')}"
        if msg_id == truth["entry_msg_id"]:
            m.payload["account_token"] = code
        elif msg_id == pick["msg_id"]:
            m.payload["confidence"] = 0.4  # the shelf was unsure: the pick goes to review
    page.goto(f"{store.url}/app/receipts")
    store.publish(result.messages, speed=6.0)
    session_id = session_id_for(truth["entry_msg_id"])
    return {
        "session_id": session_id,
        "receipt_id": "r-" + session_id.removeprefix("s-"),
        "review_id": review_id_for(ReviewKind.LOW_CONFIDENCE, pick["msg_id"]),
        "items": truth["items"],
    }


def test_dashboard_shows_a_shopper_moving_and_a_cart_line_appearing(
    staff_page: Any, visit: dict, artifacts: Any
):
    page = staff_page
    dot = f"#map .shopper[data-session='{visit['session_id']}']"
    page.wait_for_selector(dot, timeout=60_000)
    first = page.get_attribute(dot, "transform")
    page.wait_for_function(
        "([sel, before]) => { const d = document.querySelector(sel);"
        " return d && Number(d.dataset.moves) >= 3 && d.getAttribute('transform') !== before; }",
        arg=[dot, first],
        timeout=30_000,
    )
    page.wait_for_selector(f"[data-session='{visit['session_id']}'] .cart-line", timeout=60_000)
    page.wait_for_selector(f"[data-review='{visit['review_id']}']", timeout=60_000)
    assert page.locator("#feed li").count() > 0
    assert page.locator("#nodes tr").count() >= 3
    page.screenshot(path=str(artifacts / "dashboard-live.png"))


def test_shopper_sees_the_receipt_after_the_visit(shopper_page: Any, visit: dict, artifacts: Any):
    page = shopper_page
    link = page.wait_for_selector(f"a[data-receipt='{visit['receipt_id']}']", timeout=90_000)  # pushed
    page.screenshot(path=str(artifacts / "shopper-receipts.png"))
    link.click()
    page.wait_for_selector(".receipt .line")
    assert page.locator(".receipt .line").count() == len(visit["items"])
    assert "paid" in page.inner_text(".receipt .pill")
    page.screenshot(path=str(artifacts / "shopper-receipt.png"), full_page=True)


def test_staff_resolve_a_review_and_the_shoppers_receipt_changes(
    staff_page: Any, shopper_page: Any, visit: dict, artifacts: Any
):
    staff = staff_page
    staff.click(f"[data-review='{visit['review_id']}']")
    staff.wait_for_selector("[data-testid=weight-plot]")
    staff.screenshot(path=str(artifacts / "dashboard-review.png"))
    staff.click("[data-action=remove]")
    staff.wait_for_selector("#modal", state="hidden")
    staff.wait_for_selector(f"[data-review='{visit['review_id']}'].done", timeout=15_000)

    shopper = shopper_page  # still on the receipt: the correction is pushed to it
    shopper.wait_for_selector("[data-correction]", timeout=15_000)
    text = shopper.inner_text("[data-correction]")
    assert "Refunded to your wallet" in text
    shopper.screenshot(path=str(artifacts / "shopper-receipt-corrected.png"), full_page=True)
    staff.screenshot(path=str(artifacts / "dashboard-after-review.png"))


def test_staff_correct_and_charge_a_timed_out_visit(staff_page: Any, store: LiveStore, artifacts: Any):
    server, layout = store.server, store.layout
    sku = sorted(layout.products)[0]
    server.accounts.open_account("acct-gone", "Gone Shopper", None, balance_cents=100_000)
    gone = ShopperSession("s-browser-gone", layout.store_id, "acct-gone", time.time() - 3600.0)
    gone.take("browser:pick", sku, 3, gone.entered_at + 20.0, 1.0)
    gone.time_out(gone.entered_at + 30.0)
    with server.processor.lock, server.uow_factory() as uow:  # between the replay's batches
        uow.sessions.add(gone)
        review_open.open_visit_timeout(layout, uow, gone, gone.exited_at, gone.exited_at + 1800.0, 1800.0)
        uow.commit()
    review_id = review_id_for(ReviewKind.VISIT_TIMEOUT, gone.id)
    assert server.web is not None
    server.web.feed.on_review_changed([review_id], [gone.id])  # pushed to the open dashboard

    staff = staff_page
    staff.click(f"[data-review='{review_id}']", timeout=30_000)
    staff.wait_for_selector("[data-testid=timed-out-cart]")
    staff.fill(f"[data-testid=charge-quantities] input[data-sku='{sku}']", "2")  # staff saw two
    staff.screenshot(path=str(artifacts / "dashboard-visit-timeout.png"))
    staff.click("[data-action=charge]")
    staff.wait_for_selector("#modal", state="hidden")
    staff.wait_for_selector(f"[data-review='{review_id}'].done", timeout=15_000)

    with server.uow_factory() as uow:
        receipt = uow.receipts.for_session(gone.id)
        session = uow.sessions.get(gone.id)
    assert receipt is not None and receipt.payment_status == "approved"
    assert [(ln.sku, ln.quantity) for ln in receipt.bill.lines] == [(sku, 2)]
    assert session is not None and session.state is SessionState.PAID
    staff.click(f"[data-review='{review_id}']")  # the closed item says what was charged
    assert "approved" in staff.inner_text("[data-testid=resolution]")
    staff.click("#sheet [aria-label=close]")


def test_nothing_in_the_story_was_refused_by_the_content_security_policy(staff_page: Any, shopper_page: Any):
    # Sign-in, sign-up, wallet, entry code, receipts, the live dashboard and the review sheet, all
    # under the CSP (no inline script or style): a blocked script or style would be reported here.
    assert staff_page.csp_refused == [] and shopper_page.csp_refused == []
