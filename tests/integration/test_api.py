"""The HTTP API over a store that has seen the basic scenario (SQLite, no broker needed).

The /api/ routes are for staff: the client signs in as a staff member first (tests/integration/
test_auth.py covers who may call what)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from sim_data.dataset import Dataset
from sim_data.entry_signing import EntrySigner
from sim_data.pipeline import provision_accounts
from store_server.api.app import create_app
from store_server.bootstrap import bootstrap
from store_server.service.ingest import RawMessage
from store_server.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(basic_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    dataset = Dataset.open(basic_dataset)
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'api.db'}",
        store_config=dataset.layout_path,
        receipts_dir=tmp / "receipts",
        secret_key_file=tmp / "secret.key",
        event_clock="replay",  # a recorded day: its event times are months old
    )
    server = bootstrap(settings)
    provision_accounts(server, dataset.ground_truth)
    assert server.web is not None
    signed = EntrySigner(server.web.people).messages(dataset.messages())  # shoppers enter on codes
    raw = [RawMessage(m.topic, json.dumps(m.payload).encode(), 0.0) for m in signed]
    for i in range(0, len(raw), 500):
        server.processor.handle_batch(raw[i : i + 500])
    server.processor.handle_batch([RawMessage("walkout/demo/x/weight", b"junk", 0.0)])
    assert server.web is not None
    login = {"email": "staff@test.walkout", "password": "correct horse battery"}
    server.web.people.create_staff(login["email"], "Test Staff", login["password"])
    with TestClient(create_app(server)) as c:
        signed_in = c.post("/login", data=login)
        assert signed_in.status_code == 200 and signed_in.url.path == "/staff"
        c.receipts_dir = tmp / "receipts"  # type: ignore[attr-defined]
        yield c
    server.stop()


def test_health_reports_database_and_watermark(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["database"] == "ok"
    assert health["inbox_messages"] > 4000 and health["watermark"] > 1_780_000_000


def test_store_layout_is_served(client):
    store = client.get("/api/store").json()
    assert store["store_id"] == "demo" and len(store["catalog"]) >= 40


def test_sessions_carts_and_receipts(client):
    sessions = client.get("/api/sessions").json()
    assert len(sessions) == 8 and all(s["state"] in {"paid", "empty"} for s in sessions)
    paid = [s for s in sessions if s["state"] == "paid"]
    detail = client.get(f"/api/sessions/{paid[0]['id']}").json()
    assert detail["changes"] and detail["cart"][0]["name"]
    receipts = client.get("/api/receipts").json()
    assert len(receipts) == len(paid)
    one = client.get(f"/api/receipts/{receipts[0]['id']}").json()
    assert one["total_cents"] == one["subtotal_cents"] + one["tax_cents"]
    assert sum(line["amount_cents"] for line in one["lines"]) == one["subtotal_cents"]
    assert client.get("/api/receipts/r-nope").status_code == 404
    assert client.get("/api/sessions/s-nope").status_code == 404
    assert client.get("/api/sessions?state=paid").json() == paid


def test_receipts_were_mailed_to_the_outbox_folder(client):
    files = sorted(client.receipts_dir.glob("*.txt"))
    receipts = client.get("/api/receipts").json()
    assert {f.stem for f in files} == {r["id"] for r in receipts}
    assert "Total" in files[0].read_text() or "TOTAL" in files[0].read_text()


def test_orders_reached_the_backend_and_stock_went_down(client):
    orders = client.get("/api/orders").json()
    receipts = client.get("/api/receipts").json()
    assert {o["order_id"] for o in orders} == {r["session_id"] for r in receipts}
    stock = {s["sku"]: s["quantity"] for s in client.get("/api/inventory").json()}
    sold: dict[str, int] = {}
    for r in receipts:
        for line in r["lines"]:
            sold[line["sku"]] = sold.get(line["sku"], 0) + line["quantity"]
    dataset_stock = {e["sku"]: 0 for e in client.get("/api/store").json()["planogram"]}
    for e in client.get("/api/store").json()["planogram"]:
        dataset_stock[e["sku"]] += e["stock"]
    assert all(stock[sku] == dataset_stock[sku] - q for sku, q in sold.items())


def test_dead_letters_and_metrics(client):
    letters = client.get("/api/dead-letters").json()
    assert len(letters) == 1 and letters[0]["field"] == "payload" and letters[0]["payload_preview"] == "junk"
    metrics = client.get("/metrics").text
    assert "walkout_receipts_total" in metrics and "walkout_dead_letters_total" in metrics
    assert client.get("/docs").status_code == 200
