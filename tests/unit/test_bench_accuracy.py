"""The accuracy section of `make bench`: figures summed over seeds, the goal judged per scenario."""

from __future__ import annotations

from sim_data.bench_accuracy import _row, accuracy_section


def _run(exact: float, sessions: int, tp: int, fp: int, fn: int, reviews: int) -> dict:
    return {"sessions": sessions, "exact_receipts": exact, "items": {"tp": tp, "fp": fp, "fn": fn},
            "review_items": reviews, "unexplained_events": 0, "vanished_events": 0, "weight_events": 10}


def test_seeds_are_summed_and_review_load_is_per_shopper_visit() -> None:
    runs = [_run(1.0, 8, 10, 0, 0, 0), _run(0.875, 8, 9, 1, 1, 1)]
    row = _row("busy", "realistic", "walkout", [7, 11], runs, 16)
    assert row["sessions"] == 16 and row["exact_receipts"] == 0.9375
    assert row["precision"] == 0.95 and row["recall"] == 0.95 and row["review_items_per_visit"] == 0.062
    # The AutoCheckout path makes one receipt of a run's eight shoppers: review load is still per visit.
    ac = _row("busy", "realistic", "autocheckout", [7], [_run(1.0, 1, 10, 0, 0, 2)], 8)
    assert ac["sessions"] == 1 and ac["visits"] == 8 and ac["review_items_per_visit"] == 0.25


def test_the_goal_needs_exact_receipts_f1_and_a_light_review_load() -> None:
    rows = [
        _row("groups", "realistic", "walkout", [7], [_run(1.0, 8, 10, 0, 0, 0)], 8),
        _row("putbacks", "realistic", "walkout", [7], [_run(1.0, 8, 10, 0, 0, 1)], 8),
        _row("basic", "realistic", "walkout", [7], [_run(0.875, 8, 9, 1, 1, 0)], 8),
        _row("basic", "realistic", "autocheckout", [7], [_run(0.0, 1, 9, 1, 1, 0)], 8),
    ]
    verdict = accuracy_section(rows, [7])[-2]
    assert verdict.startswith("Goal met at the realistic profile (walkout path) by: groups;")
    assert verdict.endswith("not the review load: putbacks.")
