"""Accounts and access: every route declares who may call it; staff pages refuse shoppers; a shopper
never reaches another shopper's data; passwords are argon2 hashes; sessions expire and end."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from sim_data.dataset import Dataset
from sim_data.entry_signing import EntrySigner, is_entry_pass
from sim_data.pipeline import provision_accounts
from store_server.adapters import orm
from store_server.api.access import ACCESS_LEVELS
from store_server.api.app import create_app
from store_server.bootstrap import bootstrap
from store_server.domain.accounts import Role
from store_server.service.ingest import RawMessage
from store_server.settings import Settings

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server(basic_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    dataset = Dataset.open(basic_dataset)
    srv = bootstrap(
        Settings(
            database_url=f"sqlite:///{tmp / 'auth.db'}",
            store_config=dataset.layout_path,
            receipts_dir=tmp / "receipts",
            secret_key_file=tmp / "secret.key",
            event_clock="replay",  # a recorded day: its event times are months old
        )
    )
    people = srv.web.people
    people.create_staff("staff@test.walkout", "Staff", PASSWORD)
    people.create_staff("admin@test.walkout", "Admin", PASSWORD, Role.ADMIN)
    people.sign_up("alice@test.walkout", "Alice", PASSWORD)
    bob = people.sign_up("bob@test.walkout", "Bob", PASSWORD)
    people.staff_top_up(people.users.by_email("staff@test.walkout"), bob.account_token, 50_000, "t")
    # Bob's visit: the first simulated shopper with items enters on Bob's ledger account.
    provision_accounts(srv, dataset.ground_truth)
    truth = next(s for s in dataset.ground_truth["sessions"] if s["items"])
    raw, signer = [], EntrySigner(people)
    for m in dataset.messages():
        payload = dict(m.payload)
        if f"{payload.get('node_id')}:{payload.get('seq')}" == truth["entry_msg_id"]:
            payload["account_token"] = bob.account_token
        if is_entry_pass(m.topic, payload):
            payload = signer.payload(payload)  # on a code the store issued, as the app would show
        raw.append(RawMessage(m.topic, json.dumps(payload).encode(), 0.0))
    for i in range(0, len(raw), 500):
        srv.processor.handle_batch(raw[i : i + 500])
    srv.bob_receipt = "r-" + truth["entry_msg_id"].replace(":", "-")  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def client_as(server, email: str | None) -> TestClient:
    client = TestClient(create_app(server))
    if email:
        response = client.post("/login", data={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
    return client


def test_every_route_declares_who_may_call_it(server):
    app = create_app(server)
    levels = set(ACCESS_LEVELS)
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue  # /docs, /openapi.json and /static: FastAPI's and Starlette's own
        declared = [d.call for d in route.dependant.dependencies if d.call in levels]
        assert len(declared) == 1, f"{route.path} {route.methods}: declares {declared}"


def test_anonymous_sees_only_public_routes(server):
    anon = client_as(server, None)
    assert anon.get("/health").status_code == 200 and anon.get("/metrics").status_code == 200
    assert anon.get("/login").status_code == 200 and anon.get("/signup").status_code == 200
    for path in ("/api/sessions", "/api/receipts", "/api/reviews", "/api/me", "/live/staff", "/api/users"):
        assert anon.get(path).status_code == 401, path
    page = anon.get("/staff", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/staff"


def test_staff_pages_refuse_shoppers(server):
    alice = client_as(server, "alice@test.walkout")
    for path in ("/staff", "/api/sessions", "/api/receipts", "/api/reviews", "/api/dashboard", "/live/staff"):
        assert alice.get(path).status_code == 403, path
    assert alice.post("/api/reviews/rv-x/resolve", json={"action": "keep"}).status_code == 403
    assert alice.get("/staff", headers={"Accept": "text/html"}).status_code == 403


def test_admin_routes_refuse_staff(server):
    staff = client_as(server, "staff@test.walkout")
    assert staff.get("/api/receipts").status_code == 200
    assert staff.get("/api/users").status_code == 403
    new = {"email": "new@test.walkout", "password": PASSWORD, "role": "staff"}
    assert staff.post("/api/staff-users", json=new).status_code == 403
    admin = client_as(server, "admin@test.walkout")
    assert admin.post("/api/staff-users", json=new).status_code == 201
    assert "new@test.walkout" in {u["email"] for u in admin.get("/api/users").json()}
    assert staff.get("/app").status_code == 403  # staff have no wallet


def test_a_shopper_never_reaches_another_shoppers_receipt(server):
    receipt = server.bob_receipt
    bob, alice = client_as(server, "bob@test.walkout"), client_as(server, "alice@test.walkout")
    assert [r["id"] for r in bob.get("/api/me/receipts").json()] == [receipt]
    assert bob.get(f"/app/receipts/{receipt}").status_code == 200
    assert alice.get("/api/me/receipts").json() == []
    assert alice.get(f"/api/me/receipts/{receipt}").status_code == 404
    assert alice.get(f"/app/receipts/{receipt}").status_code == 404
    line = bob.get(f"/api/me/receipts/{receipt}").json()["lines"][0]
    assert alice.post(f"/api/me/receipts/{receipt}/disputes", json={"sku": line["sku"]}).status_code == 404
    assert (
        alice.get("/api/me").json()["wallet"]["account_token"]
        != bob.get("/api/me").json()["wallet"]["account_token"]
    )


def test_passwords_are_argon2_hashes_and_wrong_ones_fail(server):
    with server.session_factory() as s:
        hashes = list(s.execute(select(orm.users.c.password_hash)).scalars())
    assert hashes and all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    anon = client_as(server, None)
    assert (
        anon.post("/login", data={"email": "bob@test.walkout", "password": "wrong password"}).status_code
        == 401
    )
    assert anon.post("/login", data={"email": "nobody@test.walkout", "password": PASSWORD}).status_code == 401


def test_session_cookie_is_httponly_lax_and_ends_at_logout(server):
    anon = client_as(server, None)
    response = anon.post(
        "/login", data={"email": "bob@test.walkout", "password": PASSWORD}, follow_redirects=False
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=" in cookie
    assert anon.get("/api/me").status_code == 200
    value = anon.cookies["walkout_session"]
    anon.post("/logout")
    anon.cookies.set("walkout_session", value)  # a stolen copy of the cookie is dead too
    assert anon.get("/api/me").status_code == 401


def test_sessions_expire(server):
    people = server.web.people
    user = people.users.by_email("alice@test.walkout")
    ttl, people.session_ttl_s = people.session_ttl_s, 1.0
    try:
        cookie = people.start_session(user)
        assert people.user_for_cookie(cookie) == user
        time.sleep(2.1)
        assert people.user_for_cookie(cookie) is None
        assert people.user_for_cookie(cookie[:-2] + "xx") is None  # forged signature
    finally:
        people.session_ttl_s = ttl


def test_cross_origin_writes_are_refused(server):
    bob = client_as(server, "bob@test.walkout")
    hostile = bob.post(
        "/app/top-up",
        data={"amount_cents": 1000, "request_id": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert hostile.status_code == 403
    # An opaque origin (a sandboxed frame on the attacker's page) sends "null": refused too.
    opaque = bob.post(
        "/app/top-up", data={"amount_cents": 1000, "request_id": "z"}, headers={"Origin": "null"}
    )
    assert opaque.status_code == 403
    same = bob.post(
        "/app/top-up",
        data={"amount_cents": 1000, "request_id": "y"},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert same.status_code == 303
