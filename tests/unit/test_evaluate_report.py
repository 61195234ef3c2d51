"""Evaluation per scenario and per event type, the report writer, and the evaluate command's errors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sim_data.dataset import Dataset, write_dataset
from sim_data.evaluate import evaluate, evaluate_receipts
from sim_data.replay import looped
from sim_data.report import write_report
from sim_data.tools_cli import evaluate_command
from store_server.settings import DEFAULT_STORE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _session(n: int, items: dict[str, int], scenario: str | None = None) -> dict[str, Any]:
    s = {
        "account_token": f"a{n}",
        "track_id": f"t{n}",
        "entry_msg_id": f"gate-in:{n}",
        "entered_at": 100.0 * n,
        "exited_at": 100.0 * n + 50,
        "items": items,
    }
    if scenario:
        s["scenario"] = scenario
    return s


def _event(n: int, kind: str, sku: str, track: str | None, qty: int = 1) -> dict[str, Any]:
    t = 100.0 * int(track[1:]) + n if track else float(n)
    return {
        "msg_id": f"shelf-g1:{n}",
        "t_start": t,
        "t_end": t + 1,
        "kind": kind,
        "sku": sku,
        "quantity": qty,
        "plate_ids": ["g1-s1-p1"],
        "track_id": track,
    }


# Shopper 1 picks A twice and puts one back (truth A=1), picks B (truth B=1).
# Shopper 2 picks C, and returns a D it never took to the wrong plate (truth C=1).
# Shopper 3 picks E (truth E=1). An event of nobody we know (track None).
TRUTH = [_session(1, {"A": 1, "B": 1}), _session(2, {"C": 1}), _session(3, {"E": 1}, scenario="crowded")]
EVENTS = [
    _event(1, "pick", "A", "t1", 2),
    _event(2, "putback", "A", "t1"),
    _event(3, "pick", "B", "t1"),
    _event(4, "pick", "C", "t2"),
    _event(5, "misplaced_return", "D", "t2"),
    _event(6, "pick", "E", "t3"),
    _event(7, "pick", "F", None),
]


def test_evaluate_keeps_its_keys_and_adds_per_scenario_and_per_event_type() -> None:
    # Shopper 1 is charged 2 A (the put-back was missed), shopper 2 exactly, shopper 3 nothing.
    charged = {"gate-in:1": {"A": 2, "B": 1}, "gate-in:2": {"C": 1}}
    m = evaluate("hand", TRUTH, charged, [0.1, 0.2], events=EVENTS, scenario="basic")

    assert {"dataset", "sessions", "exact_receipts", "items", "receipt_latency_ms", "mismatches"} <= set(m)
    assert m["items"] == {"tp": 2, "fp": 1, "fn": 2, "precision": 0.6667, "recall": 0.5, "f1": 0.5714}
    assert m["exact_receipts"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["latencies_ms"] == [100.0, 200.0]

    assert m["per_scenario"] == {
        "basic": {
            "sessions": 2,
            "exact": 1,
            "exact_receipts": 0.5,
            "items": {"tp": 2, "fp": 1, "fn": 1, "precision": 0.6667, "recall": 0.6667, "f1": 0.6667},
        },
        "crowded": {
            "sessions": 1,
            "exact": 0,
            "exact_receipts": 0.0,
            "items": {"tp": 0, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.0, "f1": 0.0},
        },
    }
    per = m["per_event_type"]
    # picks: A (line wrong), B ok, C ok, E (line wrong), F unattributed
    assert per["pick"] == {"events": 5, "correct": 2, "wrong": 2, "unattributed": 1, "accuracy": 0.4}
    assert per["putback"] == {"events": 1, "correct": 0, "wrong": 1, "unattributed": 0, "accuracy": 0.0}
    # D was never charged and is not in the truth: the misplaced return was handled right.
    assert per["misplaced_return"] == {
        "events": 1,
        "correct": 1,
        "wrong": 0,
        "unattributed": 0,
        "accuracy": 1.0,
    }

    problems = {miss["session"]: miss["problems"] for miss in m["mismatches"]}
    assert problems == {
        "gate-in:1": [{"sku": "A", "problem": "wrong quantity", "truth": 1, "charged": 2}],
        "gate-in:3": [{"sku": "E", "problem": "missing item", "truth": 1, "charged": 0}],
    }


def test_evaluate_without_events_or_latencies_is_the_issue_2_schema_plus_new_keys() -> None:
    m = evaluate("d", TRUTH[:1], {"gate-in:1": {"A": 1, "B": 1, "Z": 1}}, [])
    assert "latencies_ms" not in m and m["receipt_latency_ms"] == {"p50": 0.0, "p99": 0.0}
    assert m["mismatches"][0]["problems"] == [{"sku": "Z", "problem": "extra item", "truth": 0, "charged": 1}]
    assert m["per_scenario"]["d"]["sessions"] == 1
    assert all(v["events"] == 0 and v["accuracy"] is None for v in m["per_event_type"].values())


def test_events_of_any_track_of_a_group_count_for_its_session() -> None:
    group = {**_session(4, {"G": 2}), "track_ids": ["t4", "t9"], "group_size": 2}
    events = [_event(1, "pick", "G", "t4"), {**_event(2, "pick", "G", "t4"), "track_id": "t9"}]
    m = evaluate("g", [group], {"gate-in:4": {"G": 2}}, [], events=events)
    assert m["per_event_type"]["pick"] == {
        "events": 2,
        "correct": 2,
        "wrong": 0,
        "unattributed": 0,
        "accuracy": 1.0,
    }


def test_receipts_map_to_sessions_by_session_id() -> None:
    receipts = [
        {
            "id": "r1",
            "session_id": "s-gate-in-1",
            "lines": [{"sku": "A", "quantity": 1, "name": "a"}, {"sku": "B", "quantity": 1}],
        },
        {"id": "r2", "session_id": "s-gate-in-2", "lines": [{"sku": "C", "quantity": 1}]},
        {"id": "r2b", "session_id": "s-gate-in-2", "lines": [{"sku": "C", "quantity": 1}]},  # charged twice
        {"id": "ghost", "session_id": "s-gate-in-99", "lines": [{"sku": "A", "quantity": 1}]},
    ]
    truth = {"sessions": TRUTH, "events": EVENTS, "scenario": "from-truth"}
    m = evaluate_receipts("x", {"scenario": "from-manifest"}, truth, receipts)
    assert m["unmatched_receipts"] == ["ghost"]
    assert [miss["session"] for miss in m["mismatches"]] == ["gate-in:2", "gate-in:3"]
    assert m["mismatches"][0]["problems"][0]["problem"] == "wrong quantity"
    assert set(m["per_scenario"]) == {"from-truth", "crowded"}
    assert set(evaluate_receipts("x", {"scenario": "m"}, {"sessions": TRUTH[:1]}, [])["per_scenario"]) == {
        "m"
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    from sim_data.simulator import simulate
    from store_server.domain.layout import load_layout

    result = simulate(load_layout(DEFAULT_STORE), "basic", seed=3, shoppers=2)
    path = write_dataset(
        tmp_path_factory.mktemp("ds") / "basic-3",
        result.manifest(),
        DEFAULT_STORE.read_text(),
        result.messages,
        result.ground_truth,
    )
    return Dataset.open(path)


def _metrics(dataset: Dataset) -> list[dict[str, Any]]:
    truth = dataset.ground_truth
    exact = {s["entry_msg_id"]: s["items"] for s in truth["sessions"]}
    wrong = {k: {**v, "SKU-001": 3} for k, v in exact.items()}
    return [
        evaluate(
            "good", truth["sessions"], exact, [0.05, 0.08, 0.12], events=truth["events"], scenario="basic"
        ),
        evaluate("bad", truth["sessions"], wrong, [], events=truth["events"], scenario="crowded-shelf"),
    ]


def test_html_report_is_self_contained_with_embedded_plots(dataset: Dataset, tmp_path: Path) -> None:
    out = write_report(_metrics(dataset), tmp_path / "report.html", [dataset])
    page = out.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3  # accuracy, latency, weight events
    assert all(base64.b64decode(img).startswith(PNG_MAGIC) for img in images)
    assert "http://" not in page and "https://" not in page and 'src="//' not in page  # no external URL
    assert "Worst sessions" in page and "extra item SKU-001" in page
    assert "no raw load-cell samples" in page  # the weight plot says what it shows
    assert list(tmp_path.iterdir()) == [out]


def test_markdown_report_writes_pngs_beside_it(dataset: Dataset, tmp_path: Path) -> None:
    out = write_report(_metrics(dataset), tmp_path / "sub" / "eval.md", [dataset])
    text = out.read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert linked == ["eval-accuracy.png", "eval-latency.png", "eval-weight-0.png"]
    for name in linked:
        assert (out.parent / name).read_bytes().startswith(PNG_MAGIC)
    assert "| dataset | session | scenario | truth | charged | what went wrong |" in text


def test_report_without_latencies_or_datasets_says_so(tmp_path: Path) -> None:
    m = evaluate("d", TRUTH, {}, [], events=EVENTS)
    text = write_report([m], tmp_path / "r.md").read_text()
    assert "Receipt latency: not measured" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r-accuracy.png", "r.md"]
    with pytest.raises(ValueError, match=r"\.html or \.md"):
        write_report([m], tmp_path / "r.pdf")


def test_looping_shifts_times_and_renumbers() -> None:
    from sim_data.dataset import SimMessage

    base = [
        SimMessage(10.0, "w/s/n/heartbeat", {"node_id": "n", "seq": 0, "ts": 10.0}),
        SimMessage(
            12.0, "w/s/n/weight", {"node_id": "n", "seq": 1, "ts": 12.0, "t_start": 11.0, "t_end": 11.5}
        ),
        SimMessage(12.0, "w/s/m/status", {"node_id": "m", "ts": None}),
    ]
    out = list(looped(lambda: base, 3, duration_s=5.0))
    assert [m.t for m in out] == [10.0, 12.0, 12.0, 16.0, 18.0, 18.0, 22.0, 24.0, 24.0]
    assert [m.payload.get("seq") for m in out] == [0, 1, None, 2, 3, None, 4, 5, None]
    assert out[4].payload == {"node_id": "n", "seq": 3, "ts": 18.0, "t_start": 17.0, "t_end": 17.5}
    assert out[5].payload == {"node_id": "m", "ts": None}
    assert base[1].payload["seq"] == 1  # the source is not modified


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("other")(lambda: None)
    return app


def test_evaluate_command_refuses_a_receipts_file_that_is_not_json(dataset: Dataset, tmp_path: Path) -> None:
    bad = tmp_path / "receipts.json"
    bad.write_text("<html>not json</html>")
    result = CliRunner().invoke(_app(), ["evaluate", str(dataset.path), "--receipts", str(bad)])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"the receipts file {bad} is not JSON (line 1, column 1" in message
    assert "/api/receipts" in message


def test_evaluate_command_prints_metrics_and_writes_a_report(dataset: Dataset, tmp_path: Path) -> None:
    receipts = tmp_path / "receipts.json"
    receipts.write_text(json.dumps({"not": "a list"}))
    result = CliRunner().invoke(_app(), ["evaluate", str(dataset.path), "--receipts", str(receipts)])
    assert result.exit_code == 2 and "must hold a JSON list of receipts" in " ".join(result.output.split())

    receipts.write_text("[]")
    report = tmp_path / "r.html"
    result = CliRunner().invoke(
        _app(), ["evaluate", str(dataset.path), "--receipts", str(receipts), "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["dataset"] == "basic-3" and metrics["unmatched_receipts"] == []
    assert metrics["per_event_type"]["pick"]["events"] > 0
    assert report.read_text().count("data:image/png;base64,") == 2  # accuracy + weight events


def _signal_dataset(path: Path) -> Dataset:
    """Two shelves of g1 sampled at 60 Hz for 6 s; a 350 g pick on g1-s1-p1 from 2.0 s to 2.5 s."""
    from sim_data.dataset import SimMessage

    t0, rate = 1000.0, 60.0
    messages = []
    for k in range(30):  # 30 batches of 12 samples
        start = t0 + k * 12 / rate
        times = [start + j / rate for j in range(12)]
        pick = [
            5000.0 - (350.0 if t >= t0 + 2.5 else 700.0 * (t - t0 - 2.0) if t >= t0 + 2.0 else 0.0)
            for t in times
        ]
        for shelf, grams in (("g1-s1", [pick, [800.0] * 12]), ("g1-s2", [[1200.0] * 12])):
            plates = [f"{shelf}-p{i + 1}" for i in range(len(grams))]
            payload = {
                "v": 1,
                "node_id": "shelf-g1",
                "seq": 2 * k + (shelf == "g1-s2"),
                "ts": times[-1],
                "kind": "samples",
                "gondola_id": "g1",
                "shelf_id": shelf,
                "plate_ids": plates,
                "rate_hz": rate,
                "t0": start,
                "grams": grams,
            }
            messages.append(SimMessage(times[-1], "walkout/demo/shelf-g1/samples", payload))
    truth = {
        "store_id": "demo",
        "t0": t0,
        "accounts": [],
        "sessions": [],
        "events": [
            {
                "msg_id": None,
                "t_start": t0 + 2.0,
                "t_end": t0 + 2.5,
                "kind": "pick",
                "sku": "SKU-001",
                "quantity": 1,
                "plate_ids": ["g1-s1-p1"],
                "track_id": "t1",
            }
        ],
    }
    manifest = {
        "source": "test",
        "scenario": "signal",
        "store_id": "demo",
        "t0": t0,
        "duration_s": 6.0,
        "fidelity": "signal",
    }
    return Dataset.open(write_dataset(path, manifest, DEFAULT_STORE.read_text(), messages, truth))


def test_report_draws_raw_weight_traces_of_a_signal_dataset(tmp_path: Path) -> None:
    data = _signal_dataset(tmp_path / "signal")
    m = evaluate("signal", [], {}, [], events=data.ground_truth["events"], scenario="signal")
    text = write_report([m], tmp_path / "out" / "r.md", [data]).read_text()
    assert "## Weight traces: signal" in text and "Raw load-cell samples" in text
    assert (tmp_path / "out" / "r-weight-0.png").read_bytes().startswith(PNG_MAGIC)
