// The store floor as SVG (1 unit = 1 metre; y flipped so north is up): gondolas with a stock cell per
// plate, gates, and shoppers as dots that glide to each pushed position.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const STALE_S = 4; // a track not seen for this long (event time) leaves the map

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function colourFor(key) {
    let h = 0;
    for (const c of key) h = (h * 31 + c.charCodeAt(0)) % 360;
    return `hsl(${h}, 80%, 62%)`;
  }

  function stockColour(ratio) {
    if (ratio <= 0) return "#ef4444";
    if (ratio <= 0.25) return "#f59e0b";
    return ratio < 0.6 ? "#84cc16" : "#22c55e";
  }

  class StoreMap {
    constructor(svg, layout) {
      this.svg = svg;
      this.layout = layout;
      this.depth = layout.floor.depth_m;
      this.cells = {}; // sku -> [rect]
      this.dots = {}; // track id -> {g, ts, moves}
      this.trackSession = {}; // track id -> session id
      this.newest = 0;
      this.moves = 0;
      this.draw();
    }

    y(v) { return this.depth - v; }

    draw() {
      const { floor, gondolas, gates, planogram } = this.layout;
      const pad = 0.4;
      this.svg.setAttribute("viewBox", `${-pad} ${-pad} ${floor.width_m + 2 * pad} ${floor.depth_m + 2 * pad}`);
      this.svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
      el("rect", { class: "floor", x: 0, y: 0, width: floor.width_m, height: floor.depth_m, rx: 0.15 }, this.svg);
      const grid = el("g", {}, this.svg);
      for (let x = 1; x < floor.width_m; x++) el("line", { class: "grid", x1: x, x2: x, y1: 0, y2: floor.depth_m }, grid);
      for (let y = 1; y < floor.depth_m; y++) el("line", { class: "grid", y1: y, y2: y, x1: 0, x2: floor.width_m }, grid);
      const skuOf = {};
      for (const e of planogram) for (const p of e.plates) skuOf[p] = e.sku;
      for (const g of gondolas) this.drawGondola(g, skuOf);
      for (const gate of gates) {
        const z = gate.zone;
        el("rect", { class: "gate", x: z.x_min, y: this.y(z.y_max), width: z.x_max - z.x_min, height: z.y_max - z.y_min }, this.svg);
        const t = el("text", { class: "gate-label", x: (z.x_min + z.x_max) / 2, y: this.y(z.y_min) - 0.12, "text-anchor": "middle" }, this.svg);
        t.textContent = gate.direction === "entry" ? "▲ ENTRY" : "▼ EXIT";
      }
      this.layer = el("g", {}, this.svg);
    }

    drawGondola(g, skuOf) {
      const alongX = g.axis === "x";
      const w = alongX ? g.length_m : g.depth_m;
      const h = alongX ? g.depth_m : g.length_m;
      const x0 = g.x_m, y0 = this.y(g.y_m + h);
      el("rect", { class: "gondola", x: x0, y: y0, width: w, height: h, rx: 0.05 }, this.svg);
      const shelves = [...g.shelves].sort((a, b) => a.level - b.level);
      const inset = 0.05, n = shelves.length;
      shelves.forEach((shelf, i) => {
        const plates = shelf.plates;
        plates.forEach((plate, j) => {
          let x, y, cw, ch;
          if (alongX) {
            cw = (w - 2 * inset) / plates.length; ch = (h - 2 * inset) / n;
            x = x0 + inset + j * cw; y = y0 + inset + (n - 1 - i) * ch;
          } else {
            cw = (w - 2 * inset) / n; ch = (h - 2 * inset) / plates.length;
            x = x0 + inset + i * cw; y = y0 + h - inset - (j + 1) * ch;
          }
          const sku = skuOf[plate];
          const cell = el("rect", { class: "cell", x, y, width: cw, height: ch, fill: "#334155" }, this.svg);
          const title = el("title", {}, cell);
          title.textContent = `${shelf.id} · ${sku || "empty plate"}`;
          if (sku) (this.cells[sku] = this.cells[sku] || []).push(cell);
        });
      });
      const label = el("text", { class: "glabel", x: x0 + w / 2, "text-anchor": "middle",
        y: g.facing === "south" || g.facing === "west" ? y0 - 0.1 : y0 + h + 0.36 }, this.svg);
      label.textContent = g.id.toUpperCase();
    }

    setStock(stock) {
      for (const s of stock) {
        const ratio = s.capacity ? s.quantity / s.capacity : 0;
        for (const cell of this.cells[s.sku] || []) {
          cell.setAttribute("fill", stockColour(ratio));
          cell.setAttribute("fill-opacity", String(0.35 + 0.65 * Math.min(1, ratio)));
          cell.firstChild.textContent = `${s.name}: ${s.quantity} of ${s.capacity} on the shelf`;
        }
      }
    }

    setSessions(sessions) {
      this.trackSession = {};
      for (const s of sessions) if (s.state === "open") for (const t of s.track_ids) this.trackSession[t] = s.id;
      for (const [track, dot] of Object.entries(this.dots)) this.styleDot(track, dot);
    }

    styleDot(track, dot) {
      const session = this.trackSession[track];
      dot.g.classList.toggle("free", !session);
      dot.g.dataset.session = session || "";
      dot.body.setAttribute("fill", session ? colourFor(session) : "#64748b");
      dot.halo.setAttribute("stroke", session ? colourFor(session) : "#64748b");
      dot.label.textContent = session ? "#" + session.split("-").pop() : track;
    }

    movePoints(points) {
      for (const p of points) {
        let dot = this.dots[p.track_id];
        if (!dot) {
          const g = el("g", { class: "shopper", "data-track": p.track_id }, this.layer);
          dot = { g, ts: 0, moves: 0,
            halo: el("circle", { class: "halo", r: 0.45 }, g),
            body: el("circle", { class: "body", r: 0.22 }, g),
            label: el("text", { x: 0.3, y: -0.28 }, g) };
          this.dots[p.track_id] = dot;
          this.styleDot(p.track_id, dot);
        }
        if (p.ts < dot.ts) continue;
        dot.ts = p.ts;
        dot.moves += 1;
        this.moves += 1;
        dot.g.dataset.moves = String(dot.moves);
        dot.g.setAttribute("transform", `translate(${p.x} ${this.y(p.y)})`);
        this.newest = Math.max(this.newest, p.ts);
      }
      for (const [track, dot] of Object.entries(this.dots)) {
        if (this.newest - dot.ts > STALE_S) { dot.g.remove(); delete this.dots[track]; }
      }
    }

    flash(x, y) {
      const c = el("circle", { class: "flash", cx: x, cy: this.y(y), r: 0.2 }, this.svg);
      setTimeout(() => c.remove(), 1700);
    }
  }

  window.WalkoutMap = { StoreMap, colourFor };
})();
