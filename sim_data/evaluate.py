"""Accuracy of receipts against ground truth (the ``walkout run --json`` schema).

An item is a true positive when sku, quantity and shopper all match the ground truth; a wrong
quantity counts as one false positive and one false negative. A receipt is exact when the shopper's
items equal the truth exactly (an empty visit with no receipt is exact too).

Beyond the totals (keys never renamed, only added):

- ``per_scenario``: the same figures per scenario (a session's own ``scenario``, else the dataset's).
- ``per_event_type``: for each kind of shelf event (pick, putback, misplaced_return), how many events
  ended up correctly reflected in the receipt. An event touches one receipt line, (its shopper's
  session, its sku); the event is *correct* when that line's charged quantity equals the truth. Every
  event that touched a wrong line counts as wrong, whatever its kind: the line is where the error shows.
- ``latencies_ms``: every receipt latency, when latencies were measured.
- each entry of ``mismatches`` also lists its ``problems`` (missing item, extra item, wrong quantity)
  and its ``scenario``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from store_server.domain.session import session_id_for

EVENT_KINDS = ("pick", "putback", "misplaced_return")


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def item_scores(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def problems_of(truth: dict[str, int], charged: dict[str, int]) -> list[dict[str, Any]]:
    """What went wrong with one receipt, per sku: a missing item, an extra item or a wrong quantity."""
    out = []
    for sku in sorted(truth.keys() | charged.keys()):
        t, g = truth.get(sku, 0), charged.get(sku, 0)
        if t == g:
            continue
        what = "missing item" if not g else "extra item" if not t else "wrong quantity"
        out.append({"sku": sku, "problem": what, "truth": t, "charged": g})
    return out


def session_of_event(event: dict[str, Any], sessions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The truth session whose shopper made ``event``: one of its tracks, in the store at that time."""
    track = event.get("track_id")
    if track is None:
        return None
    # A session lists every track of its shoppers in track_ids (a group, a track switch), else track_id.
    candidates = [s for s in sessions if track in (s.get("track_ids") or [s.get("track_id")])]
    if len(candidates) > 1:
        t = float(event.get("t_start", 0.0))
        candidates = [
            s for s in candidates if s.get("entered_at", t) <= t <= s.get("exited_at", t)
        ] or candidates
    return candidates[0] if candidates else None


def evaluate(
    dataset: str,
    truth_sessions: list[dict[str, Any]],
    predicted: dict[str, dict[str, int]],
    latencies_s: list[float],
    events: list[dict[str, Any]] | None = None,
    scenario: str | None = None,
) -> dict[str, Any]:
    """``predicted`` maps a ground-truth session key (its entry message id) to the items charged.

    ``events`` (the ground truth's shelf events) fill ``per_event_type``; ``scenario`` names the
    dataset's scenario for ``per_scenario`` (a session's own ``scenario`` key wins).
    """
    tp = fp = fn = exact = 0
    worst: list[dict[str, Any]] = []
    by_scenario: dict[str, Counter[str]] = {}
    line_ok: dict[tuple[str, str], bool] = {}
    for session in truth_sessions:
        key = session["entry_msg_id"]
        name = str(session.get("scenario") or scenario or dataset)
        counts = by_scenario.setdefault(name, Counter())
        truth = {sku: q for sku, q in session["items"].items() if q}
        got = {sku: q for sku, q in predicted.get(key, {}).items() if q}
        for sku in truth.keys() | got.keys():
            t, g = truth.get(sku, 0), got.get(sku, 0)
            line_ok[(key, sku)] = t == g
            if t == g:
                tp += 1
                counts["tp"] += 1
            else:
                fp += 1 if g else 0
                fn += 1 if t else 0
                counts["fp"] += 1 if g else 0
                counts["fn"] += 1 if t else 0
        counts["sessions"] += 1
        if truth == got:
            exact += 1
            counts["exact"] += 1
        else:
            worst.append(
                {
                    "session": key,
                    "truth": truth,
                    "charged": got,
                    "problems": problems_of(truth, got),
                    "scenario": name,
                }
            )
    per_scenario = {
        name: {
            "sessions": c["sessions"],
            "exact": c["exact"],
            "exact_receipts": _ratio(c["exact"], c["sessions"]),
            "items": item_scores(c["tp"], c["fp"], c["fn"]),
        }
        for name, c in sorted(by_scenario.items())
    }
    metrics: dict[str, Any] = {
        "dataset": dataset,
        "sessions": len(truth_sessions),
        "exact_receipts": _ratio(exact, len(truth_sessions)),
        "items": item_scores(tp, fp, fn),
        "receipt_latency_ms": {
            "p50": round(percentile(latencies_s, 0.5) * 1000, 1),
            "p99": round(percentile(latencies_s, 0.99) * 1000, 1),
        },
        "mismatches": worst,
        "per_scenario": per_scenario,
        "per_event_type": per_event_type(truth_sessions, events or [], line_ok),
    }
    if latencies_s:
        metrics["latencies_ms"] = [round(s * 1000, 1) for s in latencies_s]
    return metrics


def per_event_type(
    truth_sessions: list[dict[str, Any]],
    events: list[dict[str, Any]],
    line_ok: dict[tuple[str, str], bool],
) -> dict[str, dict[str, Any]]:
    """Per event kind: events, how many touched a correctly charged line, and which were unattributed.

    A line never seen by the scoring (no truth, nothing charged: e.g. a pick put back again and not
    charged) is correct.
    """
    kinds = list(EVENT_KINDS) + sorted({str(e.get("kind")) for e in events} - set(EVENT_KINDS))
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        mine = [e for e in events if e.get("kind") == kind]
        correct = unattributed = 0
        for event in mine:
            session = session_of_event(event, truth_sessions)
            if session is None:
                unattributed += 1
                continue
            if line_ok.get((session["entry_msg_id"], str(event.get("sku"))), True):
                correct += 1
        out[kind] = {
            "events": len(mine),
            "correct": correct,
            "wrong": len(mine) - correct - unattributed,
            "unattributed": unattributed,
            "accuracy": round(correct / len(mine), 4) if mine else None,
        }
    return out


def scenario_of(manifest: dict[str, Any], ground_truth: dict[str, Any]) -> str | None:
    """ground_truth["scenario"] when present, else the manifest's."""
    name = ground_truth.get("scenario") or manifest.get("scenario")
    return str(name) if name else None


class ReceiptsError(ValueError):
    """A receipts file that is not what ``GET /api/receipts`` serves; the message says what is wrong."""


def charged_from_receipts(
    receipts: Any, truth_sessions: list[dict[str, Any]]
) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Map receipts (``GET /api/receipts`` JSON) to truth sessions by session id.

    Returns (items charged per entry message id, ids of receipts that match no truth session). Two
    receipts for one session add up, so a double charge shows as a wrong quantity.
    """
    if not isinstance(receipts, list):
        raise ReceiptsError("must hold a JSON list of receipts (what GET /api/receipts returns)")
    key_of = {session_id_for(s["entry_msg_id"]): s["entry_msg_id"] for s in truth_sessions}
    charged: dict[str, dict[str, int]] = {}
    unmatched: list[str] = []
    for i, receipt in enumerate(receipts):
        if not isinstance(receipt, dict) or "session_id" not in receipt or "lines" not in receipt:
            raise ReceiptsError(f"receipt [{i}] is not a receipt object with 'session_id' and 'lines'")
        key = key_of.get(str(receipt["session_id"]))
        if key is None:
            unmatched.append(str(receipt.get("id", receipt["session_id"])))
            continue
        items = charged.setdefault(key, {})
        for j, line in enumerate(receipt["lines"]):
            try:
                sku, qty = str(line["sku"]), int(line["quantity"])
            except (KeyError, TypeError, ValueError):
                raise ReceiptsError(
                    f"receipt [{i}] line [{j}] needs 'sku' and an integer 'quantity'"
                ) from None
            items[sku] = items.get(sku, 0) + qty
    return charged, unmatched


def evaluate_receipts(
    name: str,
    manifest: dict[str, Any],
    ground_truth: dict[str, Any],
    receipts: Any,
    latencies_s: list[float] | None = None,
) -> dict[str, Any]:
    """Score a receipts list against a dataset's ground truth (``walkout evaluate``)."""
    sessions: list[dict[str, Any]] = ground_truth.get("sessions", [])
    charged, unmatched = charged_from_receipts(receipts, sessions)
    metrics = evaluate(
        name,
        sessions,
        charged,
        latencies_s or [],
        events=ground_truth.get("events", []),
        scenario=scenario_of(manifest, ground_truth),
    )
    metrics["unmatched_receipts"] = unmatched
    return metrics
