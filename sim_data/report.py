"""An evaluation report: accuracy per scenario, receipt latency, weight events, the worst sessions.

``write_report(metrics, out)`` writes one self-contained HTML file (plots embedded as base64 PNG, no
external URL) when ``out`` ends in ``.html``, or Markdown with the PNG files beside it for ``.md``.
Plots are drawn with matplotlib's Agg renderer on Figure objects (no pyplot state, no display, no
network: the bundled DejaVu fonts only). ``metrics`` are dicts from :func:`sim_data.evaluate.evaluate`.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sim_data.dataset import Dataset
from sim_data.decisions import RunDecisions
from sim_data.evaluate import EVENT_KINDS, item_scores

logger = logging.getLogger(__name__)

MAX_WORST = 15  # rows in the worst-sessions table
MAX_TRACE_DATASETS = 3  # weight plots drawn (one figure per dataset)


@dataclass
class _Plot:
    name: str  # file name part
    title: str
    caption: str
    png: bytes


@dataclass
class _Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # lazy: only reports need matplotlib

    return Figure(figsize=(width, height), layout="constrained")


# --- figures ---------------------------------------------------------------------------------------


def scenario_totals(metrics_list: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-scenario figures summed over every metrics dict (a dict without ``per_scenario`` counts as
    one scenario named after its dataset)."""
    sums: dict[str, Counter[str]] = {}
    for m in metrics_list:
        per = m.get("per_scenario") or {
            m.get("dataset", "?"): {
                "sessions": m.get("sessions", 0),
                "exact": round(m.get("exact_receipts", 0) * m.get("sessions", 0)),
                "items": m.get("items", {}),
            }
        }
        for name, s in per.items():
            c = sums.setdefault(name, Counter())
            c["sessions"] += s.get("sessions", 0)
            c["exact"] += s.get("exact", 0)
            for k in ("tp", "fp", "fn"):
                c[k] += s.get("items", {}).get(k, 0)
    return {
        name: {
            "sessions": c["sessions"],
            "exact_receipts": round(c["exact"] / c["sessions"], 4) if c["sessions"] else 1.0,
            "items": item_scores(c["tp"], c["fp"], c["fn"]),
        }
        for name, c in sorted(sums.items())
    }


def _accuracy_plot(totals: dict[str, dict[str, Any]]) -> _Plot:
    names = list(totals)
    fig = _figure(max(5.0, 1.6 * len(names) + 2), 3.6)
    ax = fig.add_subplot()
    series = [
        ("exact receipts", [totals[n]["exact_receipts"] for n in names], "#2b6cb0"),
        ("item precision", [totals[n]["items"]["precision"] for n in names], "#38a169"),
        ("item recall", [totals[n]["items"]["recall"] for n in names], "#dd6b20"),
    ]
    width = 0.26
    for i, (label, values, colour) in enumerate(series):
        xs = [j + (i - 1) * width for j in range(len(names))]
        bars = ax.bar(xs, values, width, label=label, color=colour)
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], fontsize=8, padding=2)
    ax.set_xticks(range(len(names)), [f"{n}\n({totals[n]['sessions']} sessions)" for n in names])
    ax.set_ylim(0, 1.3)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_ylabel("share")
    ax.set_title("Accuracy per scenario")
    ax.legend(loc="upper center", ncol=3, fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _Plot(
        "accuracy",
        "Accuracy per scenario",
        "Exact receipts: share of shoppers whose receipt equals the truth. Precision and recall of "
        "receipt lines (sku + quantity + shopper).",
        _png(fig),
    )


def _latency_plot(latencies_ms: list[float]) -> _Plot:
    from sim_data.evaluate import percentile

    fig = _figure(6.0, 3.2)
    ax = fig.add_subplot()
    ax.hist(latencies_ms, bins=min(30, max(5, len(latencies_ms) // 2)), color="#4a5568", alpha=0.85)
    for q, colour in ((0.5, "#2b6cb0"), (0.99, "#c53030")):
        v = percentile(latencies_ms, q)
        ax.axvline(v, color=colour, linestyle="--", linewidth=1.2, label=f"p{round(q * 100)} {v:.0f} ms")
    ax.set_xlabel("receipt latency (ms)")
    ax.set_ylabel("receipts")
    ax.set_title(f"Receipt latency ({len(latencies_ms)} receipts)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _Plot(
        "latency",
        "Receipt latency",
        "Wall time from the exit gate message reaching the store server to its receipt being stored.",
        _png(fig),
    )


def _detected(
    dataset: Dataset, metrics: dict[str, Any], decisions: RunDecisions
) -> dict[str, list[tuple[float, bool]]]:
    """The run's detected weight events per gondola: (t_end since t0, wrong?). Wrong: behind a wrong
    receipt line (listed in an explanation) or decided nothing."""
    t0 = float(dataset.manifest.get("t0") or 0.0)
    blamed = {d["event_id"] for x in metrics.get("explanations", []) for d in x.get("detected_events", [])}
    out: dict[str, list[tuple[float, bool]]] = {}
    for e in decisions.events:
        out.setdefault(e.gondola_id, []).append((e.t_end - t0, e.msg_id in blamed or not e.decided))
    return out


def _weight_plot(
    dataset: Dataset, index: int, detected: dict[str, list[tuple[float, bool]]] | None = None
) -> _Plot | None:
    """Weight events over time per gondola: what the dataset carries (or the run detected) vs the truth."""
    layout = dataset.layout
    t0 = float(dataset.manifest.get("t0") or 0.0)
    seen: dict[str, list[tuple[float, float]]] = {}
    samples: dict[str, dict[float, float]] = {}  # gondola -> time -> summed grams of its plates
    for m in dataset.messages():
        p = m.payload
        if m.topic.endswith("/weight") and "delta_g" in p:
            gondola = str(p.get("gondola_id") or "?")
            seen.setdefault(gondola, []).append((float(p.get("t_end", m.t)) - t0, float(p["delta_g"])))
        elif m.topic.endswith("/samples") and p.get("grams") and p.get("rate_hz"):
            trace = samples.setdefault(str(p.get("gondola_id") or "?"), {})
            for j, column in enumerate(zip(*p["grams"], strict=False)):
                t = round(float(p["t0"]) + j / float(p["rate_hz"]) - t0, 3)
                trace[t] = trace.get(t, 0.0) + sum(column)
    truth: dict[str, list[tuple[float, float, str]]] = {}
    for e in dataset.ground_truth.get("events", []):
        plates = e.get("plate_ids") or []
        info = layout.plates.get(plates[0]) if plates else None
        product = layout.products.get(str(e.get("sku")))
        if info is None or product is None:
            continue
        sign = -1.0 if e.get("kind") == "pick" else 1.0
        delta = sign * float(e.get("quantity", 1)) * product.unit_weight_g
        truth.setdefault(info.gondola_id, []).append((float(e["t_end"]) - t0, delta, str(e.get("kind"))))
    if samples:
        return _trace_plot(dataset, index, samples, seen, detected or {})
    gondolas = sorted(seen.keys() | truth.keys())
    if not gondolas:
        return None
    fig = _figure(8.0, 1.0 + 1.5 * len(gondolas))
    axes = fig.subplots(len(gondolas), 1, sharex=True, squeeze=False)[:, 0]
    for ax, g in zip(axes, gondolas, strict=True):
        ax.axhline(0, color="#a0aec0", linewidth=0.8)
        pts = seen.get(g, [])
        if pts:
            ax.vlines([p[0] for p in pts], 0, [p[1] for p in pts], color="#2b6cb0", linewidth=1.0, alpha=0.6)
            ax.scatter(
                [p[0] for p in pts],
                [p[1] for p in pts],
                s=36,
                facecolors="none",
                edgecolors="#2b6cb0",
                label="weight event in dataset",
                zorder=3,
            )
        for kind, marker, colour in (
            ("pick", "x", "#c05621"),
            ("putback", "+", "#2f855a"),
            ("misplaced_return", "^", "#805ad5"),
        ):
            tp = [p for p in truth.get(g, []) if p[2] == kind]
            if tp:
                ax.scatter(
                    [p[0] for p in tp],
                    [p[1] for p in tp],
                    marker=marker,
                    s=44,
                    color=colour,
                    label=f"true {kind}",
                    zorder=4,
                )
        ax.set_ylabel(f"{g}\nΔ g", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25)
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center", ncol=4, fontsize=8)
    axes[-1].set_xlabel("time since start of the run (s)")
    name = dataset.path.name
    fig.suptitle(f"Shelf weight changes per gondola: {name}", fontsize=10)
    why = (
        f'This dataset (fidelity "{dataset.manifest.get("fidelity", "event")}") holds no raw load-cell '
        "samples, so instead of weight traces the plot shows each weight event the edge published."
    )
    return _Plot(
        f"weight-{index}",
        f"Weight events: {name}",
        f"{why} Circles: weight events in the dataset (Δ grams at t_end). Markers: the true events of "
        "the ground truth (∓ quantity × unit weight). A circle without a true marker is a phantom event, "
        "a marker without a circle a missed one.",
        _png(fig),
    )


_KIND_COLOURS = {"pick": "#c05621", "putback": "#2f855a", "misplaced_return": "#805ad5"}


def _trace_plot(
    dataset: Dataset,
    index: int,
    samples: dict[str, dict[float, float]],
    seen: dict[str, list[tuple[float, float]]],
    detected: dict[str, list[tuple[float, bool]]],
) -> _Plot:
    """Raw load-cell traces (signal fidelity): each gondola's total weight, true events shaded."""
    t0 = float(dataset.manifest.get("t0") or 0.0)
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for e in dataset.ground_truth.get("events", []):
        info = dataset.layout.plates.get((e.get("plate_ids") or [""])[0])
        if info is not None:
            spans.setdefault(info.gondola_id, []).append(
                (float(e["t_start"]) - t0, float(e["t_end"]) - t0, str(e.get("kind")))
            )
    gondolas = sorted(samples)
    fig = _figure(8.0, 1.0 + 1.6 * len(gondolas))
    axes = fig.subplots(len(gondolas), 1, sharex=True, squeeze=False)[:, 0]
    for ax, g in zip(axes, gondolas, strict=True):
        times = sorted(samples[g])
        base = samples[g][times[0]]
        ax.plot(
            times,
            [samples[g][t] - base for t in times],
            color="#2d3748",
            linewidth=0.8,
            label="load cells (sum of the gondola's plates)",
        )
        for a, b, kind in spans.get(g, []):
            ax.axvspan(
                a, max(b, a + 0.2), color=_KIND_COLOURS.get(kind, "#718096"), alpha=0.3, label=f"true {kind}"
            )
        for t, _delta in seen.get(g, []):
            ax.axvline(t, color="#2b6cb0", linestyle="--", linewidth=1.0, label="weight event in dataset")
        for t, wrong in detected.get(g, []):
            ax.axvline(
                t,
                color="#c53030" if wrong else "#2b6cb0",
                linestyle="-" if wrong else "--",
                linewidth=1.2 if wrong else 0.8,
                label="detected event behind a wrong line, or undecided" if wrong else "detected event",
            )
        ax.set_ylabel(f"{g}\nΔ g", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25)
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center", ncol=3, fontsize=8)
    axes[-1].set_xlabel("time since start of the run (s)")
    name = dataset.path.name
    fig.suptitle(f"Load-cell weight per gondola: {name}", fontsize=10)
    return _Plot(
        f"weight-{index}",
        f"Weight traces: {name}",
        'Raw load-cell samples of the dataset (fidelity "signal"), summed per gondola and drawn '
        "relative to the first reading. Shaded: the true events of the ground truth; dashed blue lines: "
        "weight events the edge detector published in this run (at their t_end); solid red: those behind a "
        "wrong receipt line, or that decided nothing.",
        _png(fig),
    )


# --- tables ----------------------------------------------------------------------------------------


def _fmt_items(items: dict[str, int]) -> str:
    return ", ".join(f"{q}× {sku}" for sku, q in sorted(items.items())) or "nothing"


def _summary_table(metrics_list: list[dict[str, Any]]) -> _Table:
    rows = []
    for m in metrics_list:
        it, lat = m.get("items", {}), m.get("receipt_latency_ms", {})
        has_latency = bool(m.get("latencies_ms"))
        rows.append(
            [
                str(m.get("dataset", "?")),
                str(m.get("sessions", 0)),
                f"{m.get('exact_receipts', 0):.1%}",
                f"{it.get('precision', 0):.3f}",
                f"{it.get('recall', 0):.3f}",
                f"{it.get('f1', 0):.3f}",
                f"{lat.get('p50', 0):.0f} / {lat.get('p99', 0):.0f}" if has_latency else "not measured",
            ]
        )
    return _Table(
        "Summary",
        ["dataset", "shoppers", "exact receipts", "precision", "recall", "f1", "latency p50 / p99 (ms)"],
        rows,
    )


def _event_table(metrics_list: list[dict[str, Any]]) -> _Table:
    sums: dict[str, Counter[str]] = {}
    for m in metrics_list:
        for kind, s in (m.get("per_event_type") or {}).items():
            c = sums.setdefault(kind, Counter())
            for k in ("events", "correct", "wrong", "unattributed"):
                c[k] += s.get(k, 0)
    order = [k for k in EVENT_KINDS if k in sums] + sorted(set(sums) - set(EVENT_KINDS))
    rows = [
        [
            k,
            str(sums[k]["events"]),
            str(sums[k]["correct"]),
            str(sums[k]["wrong"]),
            str(sums[k]["unattributed"]),
            f"{sums[k]['correct'] / sums[k]['events']:.1%}" if sums[k]["events"] else "–",
        ]
        for k in order
    ]
    return _Table(
        "Per event type",
        ["event", "events", "correct", "wrong", "unattributed", "accuracy"],
        rows,
        "An event is correct when the receipt line it touched (its shopper, its sku) was charged exactly "
        "as the truth says.",
    )


def _severity(miss: dict[str, Any]) -> tuple[int, int]:
    problems = miss.get("problems") or []
    return sum(abs(p["truth"] - p["charged"]) for p in problems), len(problems)


def _worst_table(metrics_list: list[dict[str, Any]]) -> _Table:
    from sim_data.evaluate import problems_of

    misses = []
    for m in metrics_list:
        for miss in m.get("mismatches", []):
            miss = dict(miss)
            miss.setdefault("problems", problems_of(miss.get("truth", {}), miss.get("charged", {})))
            misses.append((str(m.get("dataset", "?")), miss))
    misses.sort(key=lambda dm: _severity(dm[1]), reverse=True)
    rows = []
    for name, miss in misses[:MAX_WORST]:
        what = "; ".join(
            f"{p['problem']} {p['sku']} (truth {p['truth']}, charged {p['charged']})"
            for p in miss["problems"]
        )
        rows.append(
            [
                name,
                str(miss.get("session")),
                str(miss.get("scenario", "")),
                _fmt_items(miss.get("truth", {})),
                _fmt_items(miss.get("charged", {})),
                what,
            ]
        )
    note = (
        (
            f"{len(misses)} sessions with a wrong receipt"
            + (f"; the {MAX_WORST} worst shown" if len(misses) > MAX_WORST else "")
        )
        if misses
        else "Every receipt matched the truth."
    )
    return _Table(
        "Worst sessions",
        ["dataset", "session", "scenario", "truth", "charged", "what went wrong"],
        rows,
        note,
    )


def _why_table(metrics_list: list[dict[str, Any]]) -> _Table:
    """Every wrong or missing line with the events behind it and why the decision went as it did."""
    rows = []
    for m in metrics_list:
        for x in m.get("explanations", []):
            events = []
            for d in x.get("detected_events", []):
                plates = ", ".join(f"{p} {g:+.0f}" for p, g in d["plates"].items())
                decided = "; ".join(
                    f"{c['session']} {c['quantity']:+d}×{c['sku']} ({c['evidence']}, {c['confidence']:.2f})"
                    for c in d["cart_changes"]
                ) or "; ".join(f"review {r['kind']}" for r in d["review_items"]) or "nothing"
                cands = ", ".join(
                    f"{c.get('sku')}×{c.get('quantity', 1)} {c.get('score', c.get('likelihood', ''))}"
                    for c in d.get("candidates", [])[:3]
                )
                events.append(
                    f"{d['t_start']:.1f}-{d['t_end']:.1f} s {d['delta_g']:+.0f} g [{plates}] → {decided}"
                    + (f" (candidates: {cands})" if cands else "")
                )
            truth = "; ".join(
                f"{e['kind']} {e['quantity']}×{e['sku']} {e['t_start']:.1f}-{e['t_end']:.1f} s "
                f"{','.join(e.get('plates') or [])}" + ("" if e.get("observable", True) else " (dead plate)")
                for e in x.get("true_events", [])
            )
            line = f"{x['problem']} {x['sku']} (truth {x['truth']}, charged {x['charged']})"
            detail = " | ".join(events) or "–"
            rows.append([str(m.get("dataset", "?")), x["session"], line, truth or "–", detail, x["why"]])
    return _Table(
        "Why each wrong line went wrong",
        ["dataset", "session", "line", "true events", "detected events → decision", "why"],
        rows,
        f"{len(rows)} wrong or missing lines explained." if rows else "No wrong or missing line.",
    )


# --- output ----------------------------------------------------------------------------------------


def _collect(
    metrics_list: list[dict[str, Any]],
    datasets: list[Dataset] | None,
    decisions: list[RunDecisions] | None = None,
) -> tuple[list[_Plot], list[_Table], list[str]]:
    plots: list[_Plot] = []
    notes: list[str] = []
    totals = scenario_totals(metrics_list)
    if totals:
        plots.append(_accuracy_plot(totals))
    latencies = [float(v) for m in metrics_list for v in m.get("latencies_ms") or []]
    if latencies:
        plots.append(_latency_plot(latencies))
    else:
        notes.append(
            "Receipt latency: not measured for these metrics (a receipts file carries no "
            "latency; `walkout run --report` measures it)."
        )
    for i, ds in enumerate((datasets or [])[:MAX_TRACE_DATASETS]):
        runs = decisions or []
        has_run = i < len(runs) and i < len(metrics_list)
        detected = _detected(ds, metrics_list[i], runs[i]) if has_run else None
        plot = _weight_plot(ds, i, detected)
        if plot:
            plots.append(plot)
        else:
            notes.append(f"{ds.path.name}: no weight events to plot.")
    tables = [
        _summary_table(metrics_list),
        _event_table(metrics_list),
        _worst_table(metrics_list),
        _why_table(metrics_list),
    ]
    return plots, tables, notes


def write_report(
    metrics_list: list[dict[str, Any]],
    out: Path,
    datasets: list[Dataset] | None = None,
    decisions: list[RunDecisions] | None = None,
) -> Path:
    """Write the report to ``out``: ``.html`` one self-contained file, ``.md`` Markdown + PNGs beside it."""
    out = Path(out)
    kind = out.suffix.lower()
    if kind not in (".html", ".htm", ".md"):
        raise ValueError(f"report {out}: the file name must end in .html or .md")
    if not metrics_list:
        raise ValueError("nothing to report: no metrics")
    plots, tables, notes = _collect(metrics_list, datasets, decisions)
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(str(m.get("dataset", "?")) for m in metrics_list)
    if kind == ".md":
        out.write_text(_markdown(out, names, stamp, plots, tables, notes), encoding="utf-8")
    else:
        out.write_text(_html(names, stamp, plots, tables, notes), encoding="utf-8")
    logger.info("wrote report %s (%d plots)", out, len(plots))
    return out


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(
    out: Path, names: str, stamp: str, plots: list[_Plot], tables: list[_Table], notes: list[str]
) -> str:
    lines = ["# Walkout evaluation report", "", f"Datasets: {names} · generated {stamp}", ""]
    summary, *rest = tables
    lines += _md_table(summary)
    for plot in plots:
        png = out.with_name(f"{out.stem}-{plot.name}.png")
        png.write_bytes(plot.png)
        lines += [f"## {plot.title}", "", f"![{plot.title}]({png.name})", "", plot.caption, ""]
    for note in notes:
        lines += [f"> {note}", ""]
    for table in rest:
        lines += _md_table(table)
    return "\n".join(lines)


def _md_table(table: _Table) -> list[str]:
    lines = [f"## {table.title}", ""]
    if table.rows:
        lines.append("| " + " | ".join(table.header) + " |")
        lines.append("|" + "---|" * len(table.header))
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
        lines.append("")
    if table.note:
        lines += [table.note, ""]
    return lines


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;
color:#1a202c;padding:0 1rem}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #e2e8f0;padding-bottom:.3rem}table{border-collapse:collapse;font-size:.9rem;
width:100%}th,td{border:1px solid #e2e8f0;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f7fafc}figure{margin:1rem 0}img{max-width:100%;height:auto}figcaption,.note{
color:#4a5568;font-size:.9rem}.meta{color:#718096}
"""


def _html(names: str, stamp: str, plots: list[_Plot], tables: list[_Table], notes: list[str]) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Walkout evaluation report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Walkout evaluation report</h1>",
        f'<p class="meta">Datasets: {e(names)} · generated {e(stamp)}</p>',
    ]
    summary, *rest = tables
    parts.append(_html_table(summary))
    for plot in plots:
        data = base64.b64encode(plot.png).decode()
        parts.append(
            f'<h2>{e(plot.title)}</h2><figure><img alt="{e(plot.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{e(plot.caption)}</figcaption></figure>'
        )
    parts += [f'<p class="note">{e(n)}</p>' for n in notes]
    parts += [_html_table(t) for t in rest]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_table(table: _Table) -> str:
    e = html.escape
    out = [f"<h2>{e(table.title)}</h2>"]
    if table.rows:
        out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in table.header) + "</tr></thead>")
        out.append(
            "<tbody>"
            + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table.rows)
            + "</tbody></table>"
        )
    if table.note:
        out.append(f'<p class="note">{e(table.note)}</p>')
    return "\n".join(out)
