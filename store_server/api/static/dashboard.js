// Walkout staff dashboard: one EventSource (/live/staff) feeds every panel. The stream starts with a
// snapshot and then pushes what changed; nothing here polls.
(function () {
  "use strict";
  const currency = document.body.dataset.currency || "EUR";
  const state = { sessions: new Map(), reviews: new Map(), stock: [], kpis: {}, nodes: [], feed: [], alerts: [] };
  let map = null;
  let catalog = [];

  // -- helpers -----------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      // Through the CSSOM, not a style attribute: the Content-Security-Policy refuses inline styles.
      else if (k === "style") node.style.cssText = v;
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    return node;
  }
  const money = (c) => c === null || c === undefined ? "–" :
    new Intl.NumberFormat(undefined, { style: "currency", currency }).format(c / 100);
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const short = (id) => id ? "#" + id.split("-").pop() : "–";
  const productName = (sku) => (catalog.find((p) => p.sku === sku) || { name: sku }).name;

  function confidence(value) {
    const cls = value < 0.3 ? "conf bad" : value < 0.6 ? "conf low" : "conf";
    return h("span", { class: cls, title: "confidence" }, h("i", {}, h("b", { style: `width:${Math.round(value * 100)}%` })),
      value.toFixed(2));
  }

  // -- panels ------------------------------------------------------------------------------------
  function renderSessions() {
    const all = [...state.sessions.values()];
    const open = all.filter((s) => s.state === "open").sort((a, b) => a.entered_at - b.entered_at);
    const closed = all.filter((s) => s.state !== "open").sort((a, b) => (b.exited_at || 0) - (a.exited_at || 0)).slice(0, 8);
    const box = document.getElementById("sessions");
    box.replaceChildren(...[...open, ...closed].map(sessionCard));
    if (!open.length && !closed.length) box.append(h("p", { class: "empty" }, "Nobody in the store."));
    document.getElementById("sessions-count").textContent = `${open.length} in store`;
    if (map) map.setSessions(open);
  }

  function sessionCard(s) {
    const badge = s.state === "open" ? h("span", { class: "badge info" }, "in store") :
      h("span", { class: "badge " + (s.state === "paid" ? "ok" : s.state === "declined" ? "bad" : "") }, s.state);
    const lines = s.cart.map((ln) => h("li", { class: "cart-line", "data-sku": ln.sku },
      h("span", { class: "q" }, ln.quantity + "×"), h("span", {}, ln.name), confidence(ln.confidence)));
    return h("div", { class: "session" + (s.state === "open" ? "" : " closed"), "data-session": s.id },
      h("div", { class: "top" },
        h("span", { class: "id" }, h("span", { class: "chip", style: `background:${WalkoutMap.colourFor(s.id)}` }),
          short(s.id), h("small", {}, s.account_token.length > 24 ? s.account_token.slice(0, 22) + "…" : s.account_token)),
        h("span", {}, s.group_size > 1 ? h("span", { class: "badge" }, `group of ${s.group_size}`) : null, " ", badge)),
      lines.length ? h("ul", { class: "cart" }, lines) : h("p", { class: "muted" }, "empty cart"),
      h("div", { class: "top" }, h("small", {}, "since " + clock(s.entered_at)), h("b", {}, money(s.cart_cents))));
  }

  const KIND = { low_confidence: ["low confidence", "warn"], unattributed: ["whose?", "bad"],
    unexplained: ["what?", "bad"], dispute: ["dispute", "info"] };

  function renderReviews() {
    const items = [...state.reviews.values()].sort((a, b) =>
      (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1) || b.created_at - a.created_at);
    const open = items.filter((r) => r.status === "open").length;
    const box = document.getElementById("reviews");
    box.replaceChildren(...items.slice(0, 60).map((r) => {
      const [label, tone] = KIND[r.kind] || [r.kind, ""];
      return h("div", { class: "review" + (r.status === "open" ? "" : " done"), "data-review": r.id, onclick: () => openReview(r.id) },
        h("div", { class: "top" },
          h("span", { class: "badge " + tone }, label),
          h("small", {}, r.status === "open" ? clock(r.created_at) : `${r.status} by ${r.resolved_by || "?"}`)),
        h("p", { class: "sum" }, r.summary));
    }));
    if (!items.length) box.append(h("p", { class: "empty" }, "Nothing to review. Every decision was confident."));
    document.getElementById("reviews-count").textContent = `${open} open`;
    setKpi("open_reviews", String(open));
  }

  function renderFeed() {
    document.getElementById("feed").replaceChildren(...state.feed.slice(0, 80).map((f) =>
      h("li", {}, h("time", {}, clock(f.at)), h("span", {}, f.text))));
  }

  function renderAlerts() {
    const low = state.stock.filter((s) => s.low).map((s) => ({ kind: "low_stock", at: null,
      text: `Low stock: ${s.name} (${s.quantity} of ${s.capacity} on ${s.shelf_id})` }));
    const all = [...state.alerts, ...low];
    const tone = (k) => ["node_offline", "payment_declined", "entry_refused", "review_unattributed", "review_unexplained"].includes(k) ? "bad" : "warn";
    document.getElementById("alerts").replaceChildren(...all.slice(0, 60).map((a) =>
      h("li", { class: tone(a.kind), "data-kind": a.kind }, h("time", {}, a.at ? clock(a.at) : "now"), h("span", {}, a.text))));
    document.getElementById("alerts-count").textContent = String(all.length);
  }

  function renderNodes() {
    const rows = state.nodes.map((n) => h("tr", { "data-node": n.node_id },
      h("td", {}, h("span", { class: "health " + n.health }), n.node_id),
      h("td", { class: "muted" }, n.role || ""),
      h("td", {}, n.health),
      h("td", { class: "muted" }, n.lag_s === null ? "–" : `${n.lag_s.toFixed(1)} s`),
      h("td", { class: "muted" }, Object.entries(n.sensors || {}).filter(([, v]) => v !== "ok").map(([k, v]) => `${k} ${v}`).join(", "))));
    document.getElementById("nodes").replaceChildren(h("table", {}, h("tbody", {}, rows)));
  }

  function setKpi(name, text) {
    const node = document.querySelector(`[data-kpi="${name}"]`);
    if (node) node.textContent = text;
  }

  function renderKpis() {
    const k = state.kpis;
    setKpi("shoppers_in_store", k.shoppers_in_store ?? "–");
    setKpi("sales_today_cents", money(k.sales_today_cents));
    setKpi("receipts_today", `${k.receipts_today ?? 0}${k.declined_today ? ` (${k.declined_today} declined)` : ""}`);
    setKpi("latency", k.latency_p50_ms == null ? "–" : `${k.latency_p50_ms} / ${k.latency_p99_ms} ms`);
  }

  // -- the stream --------------------------------------------------------------------------------
  const handlers = {
    snapshot(e) {
      state.sessions = new Map(e.sessions.map((s) => [s.id, s]));
      state.reviews = new Map(e.reviews.map((r) => [r.id, r]));
      Object.assign(state, { stock: e.stock, kpis: e.kpis, nodes: e.nodes, feed: e.feed, alerts: e.alerts });
      if (map) map.setStock(state.stock);
      renderSessions(); renderReviews(); renderFeed(); renderAlerts(); renderNodes(); renderKpis();
    },
    session(e) { state.sessions.set(e.session.id, e.session); renderSessions(); },
    review(e) {
      state.reviews.set(e.review.id, e.review); renderReviews();
      const ev = e.review.evidence || {};
      if (map && ev.plate_xy && e.review.status === "open") map.flash(ev.plate_xy[0], ev.plate_xy[1]);
    },
    tracks(e) { if (map) map.movePoints(e.points); },
    nodes(e) { state.nodes = e.nodes; renderNodes(); },
    state(e) { state.stock = e.stock; state.kpis = e.kpis; if (map) map.setStock(e.stock); renderKpis(); renderAlerts(); },
    feed(e) { state.feed.unshift(e); state.feed.length = Math.min(state.feed.length, 120); renderFeed(); },
    alert(e) { state.alerts.unshift(e); state.alerts.length = Math.min(state.alerts.length, 60); renderAlerts(); },
    receipt() {},
  };

  function connect() {
    const source = new EventSource("/live/staff");
    const conn = document.getElementById("conn");
    source.onopen = () => conn.classList.add("on");
    source.onerror = () => conn.classList.remove("on");
    for (const [type, fn] of Object.entries(handlers)) {
      source.addEventListener(type, (msg) => fn(JSON.parse(msg.data)));
    }
  }

  async function start() {
    const layout = await (await fetch("/api/store", { credentials: "same-origin" })).json();
    catalog = layout.catalog;
    map = new WalkoutMap.StoreMap(document.getElementById("map"), layout);
    window.walkoutDashboard = { state, map };
    connect();
  }

  // -- review detail and resolution ------------------------------------------------------------
  function openReview(id) { WalkoutReview.open(state.reviews.get(id), { state, catalog, h, money, clock, short, productName }); }

  start();
})();
