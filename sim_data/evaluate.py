"""Accuracy of receipts against ground truth (the ``walkout run --json`` schema).

An item is a true positive when sku, quantity and shopper all match the ground truth; a wrong
quantity counts as one false positive and one false negative. A receipt is exact when the shopper's
items equal the truth exactly (an empty visit with no receipt is exact too).
"""

from __future__ import annotations

from typing import Any


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


def evaluate(
    dataset: str,
    truth_sessions: list[dict[str, Any]],
    predicted: dict[str, dict[str, int]],
    latencies_s: list[float],
) -> dict[str, Any]:
    """``predicted`` maps a ground-truth session key (its entry message id) to the items charged."""
    tp = fp = fn = exact = 0
    worst: list[dict[str, Any]] = []
    for session in truth_sessions:
        key = session["entry_msg_id"]
        truth = {sku: q for sku, q in session["items"].items() if q}
        got = {sku: q for sku, q in predicted.get(key, {}).items() if q}
        for sku in truth.keys() | got.keys():
            t, g = truth.get(sku, 0), got.get(sku, 0)
            if t == g:
                tp += 1
            else:
                fp += 1 if g else 0
                fn += 1 if t else 0
        if truth == got:
            exact += 1
        else:
            worst.append({"session": key, "truth": truth, "charged": got})
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
    return {
        "dataset": dataset,
        "sessions": len(truth_sessions),
        "exact_receipts": _ratio(exact, len(truth_sessions)),
        "items": {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1},
        "receipt_latency_ms": {
            "p50": round(percentile(latencies_s, 0.5) * 1000, 1),
            "p99": round(percentile(latencies_s, 0.99) * 1000, 1),
        },
        "mismatches": worst,
    }
