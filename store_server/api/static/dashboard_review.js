// The review sheet: the evidence of one doubtful decision (weight trace against what the candidate
// products would weigh, shoppers nearby, candidates) and the staff decision that resolves it.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, parent, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  // The settled weight change as the edge reported it: flat, a ramp from t_start to t_end, the settled
  // level with its noise band (±2σ), and dashed lines where each candidate product would have settled.
  function weightPlot(ev) {
    const W = 560, H = 240, L = 56, R = 120, T = 16, B = 30;
    const t0 = ev.t_start - 1, t1 = ev.t_end + 1;
    const levels = [0, ev.delta_g, ...(ev.candidates || []).map((c) => c.expected_g)];
    let lo = Math.min(...levels), hi = Math.max(...levels);
    const pad = Math.max(20, (hi - lo) * 0.15, 2 * (ev.noise_g || 0));
    lo -= pad; hi += pad;
    const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
    const y = (g) => T + (hi - g) / (hi - lo) * (H - T - B);
    const plot = svg("svg", { class: "plot", viewBox: `0 0 ${W} ${H}`, "data-testid": "weight-plot" });
    svg("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }, plot);
    svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }, plot);
    for (const g of [lo + pad, 0, ev.delta_g]) {
      svg("text", { class: "tick", x: L - 6, y: y(g) + 4, "text-anchor": "end" }, plot, `${Math.round(g)} g`);
    }
    svg("text", { class: "tick", x: x(ev.t_start), y: H - 10, "text-anchor": "middle" }, plot, "start");
    svg("text", { class: "tick", x: x(ev.t_end), y: H - 10, "text-anchor": "middle" }, plot, `+${(ev.t_end - ev.t_start).toFixed(1)} s`);
    const band = 2 * (ev.noise_g || 0.5);
    svg("rect", { class: "band", x: x(ev.t_end), width: x(t1) - x(ev.t_end), y: y(ev.delta_g + band), height: Math.max(2, y(ev.delta_g - band) - y(ev.delta_g + band)) }, plot);
    (ev.candidates || []).forEach((c, i) => {
      const colour = ["#f59e0b", "#a78bfa", "#f472b6", "#34d399"][i % 4];
      svg("line", { class: "cand", stroke: colour, x1: L, x2: W - R, y1: y(c.expected_g), y2: y(c.expected_g) }, plot);
      svg("text", { class: "cand-label", fill: colour, x: W - R + 6, y: y(c.expected_g) + 4 }, plot,
        `${c.quantity}× ${c.name.slice(0, 14)}`);
    });
    const d = `M ${x(t0)} ${y(0)} L ${x(ev.t_start)} ${y(0)} L ${x(ev.t_end)} ${y(ev.delta_g)} L ${x(t1)} ${y(ev.delta_g)}`;
    svg("path", { class: "trace", d }, plot);
    return plot;
  }

  // Where the weight left the shelf: one bar per moved plate (coupling shows on the neighbours), and
  // the centroid the explanation compared with where each candidate product stands.
  function platePlot(ev) {
    const entries = Object.entries(ev.plate_deltas_g || {});
    if (!entries.length) return null;
    const W = 560, H = 120, L = 56, T = 12, B = 26;
    const step = (W - L) / entries.length;
    const top = Math.max(1, ...entries.map(([, d]) => Math.abs(d)));
    const plot = svg("svg", { class: "plot plates", viewBox: `0 0 ${W} ${H}`, "data-testid": "plate-plot" });
    svg("line", { class: "axis", x1: L, x2: W, y1: H - B, y2: H - B }, plot);
    entries.forEach(([plate, d], i) => {
      const hgt = Math.max(1, Math.abs(d) / top * (H - T - B));
      svg("rect", { class: d < 0 ? "bar take" : "bar put", x: L + i * step + step * 0.2, width: step * 0.6, y: H - B - hgt, height: hgt }, plot);
      svg("text", { class: "tick", x: L + i * step + step / 2, y: H - B - hgt - 3, "text-anchor": "middle" }, plot, `${d > 0 ? "+" : ""}${d} g`);
      svg("text", { class: "tick", x: L + i * step + step / 2, y: H - 8, "text-anchor": "middle" }, plot, plate);
    });
    svg("text", { class: "tick", x: L - 6, y: T + 10, "text-anchor": "end" }, plot, `${Math.round(top)} g`);
    return plot;
  }

  const EVIDENCE = { weight: "weight fit", planogram: "planogram (plate position)", vision: "camera", staff: "staff" };

  // What the explanation decided, each line with the evidence that decided it.
  function decision(ev, h, productName) {
    const lines = ev.decision || [];
    if (!lines.length) return null;
    return h("div", { class: "gap-top", "data-testid": "decision" }, h("b", {}, "Decided: "),
      lines.map((d) => h("span", { class: "decided" }, `${d.quantity > 0 ? "took" : "put back"} ${Math.abs(d.quantity)}× ${d.name || productName(d.sku)} `,
        h("span", { class: `badge ${d.evidence === "weight" ? "ok" : "info"}`, "data-evidence": d.evidence }, `by ${EVIDENCE[d.evidence] || d.evidence}`),
        d.misplaced ? h("span", { class: "badge warn" }, "misplaced") : null)),
      ev.product_confidence !== undefined ? h("span", { class: "muted" }, ` · product confidence ${ev.product_confidence}`) : null);
  }

  function scores(c) {
    const s = c.scores;
    if (!s) return "";
    const parts = [`weight ${s.weight}`, `plates ${s.planogram}`];
    if (s.complexity) parts.push(`two products ${s.complexity}`);
    if (s.vision) parts.push(`camera ${s.vision}`);
    return parts.join(" · ");
  }

  function open(item, ctx) {
    const { h, money, clock, short, productName, state, catalog } = ctx;
    const modal = document.getElementById("modal");
    const sheet = document.getElementById("sheet");
    const ev = item.evidence || {};
    const close = () => { modal.hidden = true; sheet.replaceChildren(); };
    modal.onclick = (e) => { if (e.target === modal) close(); };

    const left = [];
    if (ev.delta_g !== undefined) {
      left.push(h("p", { class: "muted" }, `${ev.delta_g > 0 ? "+" : ""}${ev.delta_g} g on ${ev.shelf_id} (${(ev.plate_ids || []).join(", ")}), ` +
        `noise ${ev.noise_g} g, edge confidence ${ev.edge_confidence}`), weightPlot(ev));
      const plates = platePlot(ev);
      if (plates) {
        left.push(h("h2", { class: "gap-top" }, "Per plate"), plates,
          ev.centroid !== null && ev.centroid !== undefined ? h("p", { class: "muted" }, `The weight left from plate position ${ev.centroid} of the shelf (0 = first plate); changes under ${ev.noise_floor_g} g count as noise here.`) : null);
      }
      left.push(decision(ev, h, productName));
    }
    if (item.kind === "dispute") {
      left.push(h("p", {}, `Receipt ${ev.receipt_id}: ${ev.quantity}× ${ev.name}`),
        h("p", { class: "muted" }, `Shopper says: “${ev.reason || "no reason given"}”`),
        h("p", {}, `Refund if accepted: ${money(ev.refund_cents)}`),
        ev.held_for_staff ? h("p", { class: "muted", "data-testid": "held-for-staff" }, `Not refunded at once: ${ev.held_for_staff.replace(/^sent to staff: /, "")}`) : null);
    }
    if (item.kind === "visit_timeout") {
      // A visit closed by the timeout: the cart as it stood, never charged.
      left.push(h("p", {}, `Entered ${clock(ev.entered_at)}, last seen ${clock(ev.last_seen_at)}, never passed the exit: nothing was charged.`),
        h("table", { "data-testid": "timed-out-cart" }, h("tbody", {}, (ev.cart || []).map((c) =>
          h("tr", {}, h("td", {}, `${c.quantity}×`), h("td", {}, c.name), h("td", {}, money(c.amount_cents)))))),
        h("p", {}, `Cart total (tax included): ${money(ev.total_cents)}`));
    }
    const right = [];
    if (ev.candidates && ev.candidates.length) {
      // Each candidate is one hypothesis (one product, or two at once) with its cost terms: lower is better.
      const what = (c) => (c.lines || [{ name: c.name, quantity: c.quantity }]).map((l) => `${Math.abs(l.quantity)}× ${l.name}`).join(" + ");
      right.push(h("h2", {}, "Candidate products"), h("table", { "data-testid": "candidates" }, h("thead", {}, h("tr", {}, h("th", {}, "what"), h("th", {}, "would weigh"), h("th", {}, "share"), h("th", {}, "cost"))),
        h("tbody", {}, ev.candidates.map((c) => h("tr", {}, h("td", {}, what(c)), h("td", {}, `${c.expected_g} g`), h("td", {}, `${Math.round(c.likelihood * 100)}%`),
          h("td", { class: "muted", "data-testid": "candidate-scores" }, scores(c)))))));
    }
    if (ev.nearby) {
      right.push(h("h2", { class: "gap-top" }, "Shoppers nearby"), h("table", {}, h("tbody", {},
        ev.nearby.length ? ev.nearby.map((n) => h("tr", {}, h("td", {}, short(n.session_id)), h("td", { class: "muted" }, n.track_id || ""),
          h("td", {}, n.distance_m === null ? "not seen close" : `${n.distance_m} m`))) : h("tr", {}, h("td", { class: "muted" }, "nobody")))));
    }
    if (item.applied) {
      // One event may have put two products in the cart; "remove" undoes the first (item.applied).
      const lines = (ev.guess && ev.guess.lines) || [item.applied];
      right.push(h("p", { class: "gap-top" }, "In the cart now: ",
        h("b", {}, lines.map((l) => `${l.quantity > 0 ? "+" : ""}${l.quantity} ${productName(l.sku)}`).join(", ")), ` → ${short(item.applied.session_id)}`));
    }

    const form = resolveForm(item, ctx, close);
    sheet.replaceChildren(
      h("div", { class: "sheet-head" },
        h("div", {}, h("h3", {}, item.summary), h("small", {}, `${item.kind.replace("_", " ")} · ${clock(item.created_at)} · ${item.event_id}`)),
        h("button", { onclick: close, "aria-label": "close" }, "✕")),
      h("div", { class: "cols" }, h("div", {}, left), h("div", {}, right)),
      form);
    modal.hidden = false;
  }

  function resolveForm(item, ctx, close) {
    const { h, state, catalog, short, money } = ctx;
    if (item.status !== "open") {
      const res = item.resolution || {};
      const what = res.action === "charge"
        ? `charged ${money(res.total_cents)}: ${res.payment_status}${res.decline_reason ? ` (${res.decline_reason})` : ""}, receipt ${(res.receipts || []).join(", ")}`
        : JSON.stringify(res.corrections || []);
      return h("div", { class: "resolve" }, h("p", { "data-testid": "resolution" }, `${item.status} by ${item.resolved_by} — ${what}`));
    }
    const ev = item.evidence || {};
    const sessions = new Map();
    for (const n of ev.nearby || []) sessions.set(n.session_id, n.session_id);
    if (item.session_id) sessions.set(item.session_id, item.session_id);
    for (const s of state.sessions.values()) if (s.state === "open") sessions.set(s.id, s.id);
    const skus = new Map();
    for (const c of ev.candidates || []) skus.set(c.sku, c.name);
    if (ev.sku) skus.set(ev.sku, ev.name);
    for (const p of catalog) if (!skus.has(p.sku)) skus.set(p.sku, p.name);
    const best = (ev.candidates || [])[0];
    const sign = (ev.delta_g || -1) < 0 ? 1 : -1;
    const sessionSel = h("select", { name: "session_id" }, [...sessions.keys()].map((s) => h("option", { value: s }, `${short(s)} ${s}`)));
    const skuSel = h("select", { name: "sku" }, [...skus].map(([sku, name]) => h("option", { value: sku }, name)));
    if (best) skuSel.value = best.sku;
    const qty = h("input", { name: "quantity", type: "number", value: String(best ? sign * best.quantity : 1), min: "-20", max: "20", class: "qty" });
    const msg = h("p", { class: "msg" });

    const buttons = [];
    async function send(action, extra) {
      const body = { action, ...(extra || {}) };
      if (action === "assign") Object.assign(body, { session_id: sessionSel.value, sku: skuSel.value, quantity: Number(qty.value) });
      // One request at a time from this sheet; the server refuses a second resolution anyway.
      for (const b of buttons) b.disabled = true;
      const r = await fetch(`/api/reviews/${encodeURIComponent(item.id)}/resolve`, {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      for (const b of buttons) b.disabled = false;
      if (r.ok) close(); else msg.textContent = detail(await r.json()) || `error ${r.status}`;
    }
    const dispute = item.kind === "dispute";
    if (item.kind === "visit_timeout") {
      // The visit is over without a receipt: staff dismiss it, or charge the cart as the exit would
      // (once), with the quantities corrected first if they know better.
      const lines = (ev.cart || []).map((c) => ({ c, input: h("input", {
        name: `qty-${c.sku}`, "data-sku": c.sku, type: "number", value: String(c.quantity), min: "0", max: "100", class: "qty" }) }));
      const charge = () => {
        const quantities = {};
        for (const { c, input } of lines) if (Number(input.value) !== c.quantity) quantities[c.sku] = Number(input.value);
        return send("charge", Object.keys(quantities).length ? { quantities } : {});
      };
      buttons.push(
        h("button", { "data-action": "keep", onclick: () => send("keep") }, "Dismiss (not charged)"),
        h("button", { class: "primary", "data-action": "charge", onclick: charge }, "Charge the cart"));
      return h("div", { class: "resolve" },
        h("div", { class: "row", "data-testid": "charge-quantities" }, h("span", { class: "muted" }, "Quantities to charge:"),
          lines.map(({ c, input }) => h("label", {}, `${c.name} `, input))),
        h("div", { class: "row" }, buttons), msg);
    }
    return h("div", { class: "resolve" },
      h("div", { class: "row" },
        h("button", { "data-action": "keep", onclick: () => send("keep") }, dispute ? "Reject dispute" : item.applied ? "Confirm as decided" : "Dismiss"),
        item.applied ? h("button", { class: "danger", "data-action": "remove", onclick: () => send("remove") }, dispute ? "Accept & refund" : "Not taken: remove") : null),
      h("div", { class: "row" }, h("span", { class: "muted" }, "Or assign:"), sessionSel, skuSel, qty,
        h("button", { class: "primary", "data-action": "assign", onclick: () => send("assign") }, "Apply")),
      msg);
  }

  // FastAPI's errors: a string, or a list of {loc, msg} for a body that failed validation.
  function detail(body) {
    const d = body && body.detail;
    if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
    return d;
  }

  window.WalkoutReview = { open };
})();
