// txnpipe dashboard: polls api/state and redraws SVG charts in place (no page reload, no library).
// Amounts arrive as exact decimal strings ("123.45"); they are shown as given and parsed to a
// number only to scale a bar. Every bar carries data-label / data-value with the exact strings.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const POLL_MS = 2000;
const HISTORY_MS = 15 * 60 * 1000;
const COLORS = { poller: "#4e79a7", stream: "#f28e2b", sink: "#59a14f" };
const FALLBACK = ["#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function html(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// "1234567.80" -> "1,234,567.80" (string work: the exact value is never rounded)
function money(text) {
  const neg = text.startsWith("-");
  const [whole, frac] = (neg ? text.slice(1) : text).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (neg ? "-" : "") + grouped + (frac !== undefined ? "." + frac : "");
}

function compact(value) {
  const a = Math.abs(value);
  if (a >= 1e9) return (value / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (value / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (value / 1e3).toFixed(0) + "k";
  if (a >= 1e3) return (value / 1e3).toFixed(1) + "k";
  if (a >= 10 || Number.isInteger(value)) return String(Math.round(value));
  return value.toFixed(1);
}

// the smallest 1, 2 or 5 times a power of ten that is >= value (and >= 2): even axis ticks
function niceMax(value) {
  if (value <= 2) return 2;
  const p = Math.pow(10, Math.floor(Math.log10(value)));
  for (const m of [1, 2, 5, 10]) if (m * p >= value) return m * p;
  return 10 * p;
}

// draw at the container's own width so text keeps its CSS size
function width(container) {
  return Math.max(container.clientWidth || 0, 320);
}

function replace(container, node) {
  container.replaceChildren(node);
}

function empty(container, text) {
  replace(container, html("div", { class: "empty" }, text));
}

// Vertical bars: [{label, value (exact string), title}]
function columns(container, items) {
  if (!items.length) return empty(container, "no data yet");
  const W = width(container), H = 230, top = 22, bottom = 34, left = 8;
  const max = Math.max(...items.map((i) => parseFloat(i.value)), 1);
  const slot = (W - left * 2) / items.length;
  const bw = Math.max(Math.min(slot * 0.7, 60), 2);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  root.appendChild(svg("line", { class: "axis", x1: 0, x2: W, y1: H - bottom, y2: H - bottom }));
  items.forEach((item, i) => {
    const v = parseFloat(item.value);
    const h = Math.max(((H - top - bottom) * Math.max(v, 0)) / max, 1);
    const x = left + i * slot + (slot - bw) / 2;
    const g = svg("g", { "data-label": item.label, "data-value": item.value });
    g.appendChild(svg("title", {}, `${item.label}: ${money(item.value)}`));
    g.appendChild(svg("rect", { class: "bar", x, y: H - bottom - h, width: bw, height: h }));
    g.appendChild(svg("text", { x: x + bw / 2, y: H - bottom - h - 5, "text-anchor": "middle" },
      compact(v)));
    g.appendChild(svg("text", { class: "label", x: x + bw / 2, y: H - bottom + 15,
      "text-anchor": "middle" }, item.label));
    root.appendChild(g);
  });
  replace(container, root);
}

// Horizontal bars: [{label, value (exact string), note}]
function rows(container, items, cls, narrowValues) {
  if (!items.length) return empty(container, "no data yet");
  const W = width(container), rowH = 22;
  const valueW = narrowValues ? 50 : Math.min(170, W * 0.34);
  const labelW = Math.min(narrowValues ? 200 : 170, W * (narrowValues ? 0.5 : 0.36));
  const H = items.length * rowH + 4;
  const max = Math.max(...items.map((i) => parseFloat(i.value)), 1);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  items.forEach((item, i) => {
    const v = parseFloat(item.value);
    const y = i * rowH + 2;
    const w = Math.max(((W - labelW - valueW) * Math.max(v, 0)) / max, 1);
    const g = svg("g", { "data-label": item.label, "data-value": item.value });
    if (item.count !== undefined) g.setAttribute("data-count", item.count);
    g.appendChild(svg("title", {}, `${item.label}: ${item.shown}${item.note ? " · " + item.note : ""}`));
    const fit = Math.floor(labelW / 6.2);
    const label = item.label.length > fit ? item.label.slice(0, fit - 1) + "…" : item.label;
    g.appendChild(svg("text", { x: labelW - 6, y: y + 15, "text-anchor": "end" }, label));
    g.appendChild(svg("rect", { class: "bar " + (cls || ""), x: labelW, y: y + 3, width: w,
      height: rowH - 6 }));
    const note = item.count !== undefined ? ` (${item.count})` : "";
    g.appendChild(svg("text", { x: labelW + w + 6, y: y + 15 }, item.shown + note));
    root.appendChild(g);
  });
  replace(container, root);
}

function colorOf(name, i) {
  return COLORS[name] || FALLBACK[i % FALLBACK.length];
}

// Lines over the ring buffer: history = [{t, stages: {name: {lag, per_minute}}}]
function lines(container, history, field, nowMs) {
  const names = [];
  for (const point of history)
    for (const name of Object.keys(point.stages)) if (!names.includes(name)) names.push(name);
  if (!history.length || !names.length) return empty(container, "waiting for samples");
  const W = width(container), H = 210, left = 48, right = 14, top = 24, bottom = 22;
  // the last 15 minutes, or less while the buffer is younger (at least 2 minutes)
  const span = Math.min(Math.max(nowMs - history[0].t, 2 * 60000), HISTORY_MS);
  const t0 = nowMs - span;
  let peak = 0;
  for (const p of history)
    for (const n of names) {
      const v = p.stages[n] && p.stages[n][field];
      if (typeof v === "number" && v > peak) peak = v;
    }
  const max = niceMax(peak);
  const x = (t) => left + ((W - left - right) * Math.max(t - t0, 0)) / span;
  const y = (v) => H - bottom - ((H - top - bottom) * v) / max;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    root.appendChild(svg("line", { class: "axis", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    root.appendChild(svg("text", { class: "label", x: left - 4, y: y(v) + 4, "text-anchor": "end" },
      compact(v)));
  }
  for (const frac of [1, 0.5, 0]) {
    const ago = (span * frac) / 60000;
    const text = frac ? `-${ago < 3 ? ago.toFixed(1).replace(".0", "") : Math.round(ago)} min` : "now";
    root.appendChild(svg("text", { class: "label", x: x(nowMs - span * frac), y: H - 6,
      "text-anchor": frac === 1 ? "start" : frac ? "middle" : "end" }, text));
  }
  names.forEach((name, i) => {
    const pts = history
      .filter((p) => p.stages[name] && typeof p.stages[name][field] === "number")
      .map((p) => [x(p.t), y(p.stages[name][field])]);
    const last = history[history.length - 1].stages[name];
    const lastValue = last && typeof last[field] === "number" ? last[field] : null;
    const g = svg("g", { "data-label": name, "data-value": lastValue === null ? "" : lastValue });
    const color = colorOf(name, i);
    if (pts.length > 1)
      g.appendChild(svg("polyline", { fill: "none", stroke: color, "stroke-width": 2,
        points: pts.map((p) => p.join(",")).join(" ") }));
    if (pts.length)
      g.appendChild(svg("circle", { cx: pts[pts.length - 1][0], cy: pts[pts.length - 1][1], r: 3,
        fill: color }));
    const lx = 8 + i * Math.min(150, (W - 16) / names.length);
    g.appendChild(svg("rect", { x: lx, y: 6, width: 10, height: 10, fill: color }));
    g.appendChild(svg("text", { x: lx + 14, y: 15 }, `${name} ${lastValue === null ? "–" : lastValue}`));
    root.appendChild(g);
  });
  replace(container, root);
}

function ageText(seconds) {
  if (seconds === null || seconds === undefined) return "no data";
  if (seconds < 120) return `${Math.round(seconds)} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function freshness(container, f) {
  const tiles = html("div", { class: "tiles" });
  for (const store of ["redis", "mysql"]) {
    const age = f[`${store}_age_seconds`];
    const level = age === null ? "" : age < 30 ? "ok" : age < 120 ? "warn" : "bad";
    const tile = html("div", { class: `tile ${level}`, "data-label": store,
      "data-value": f[`${store}_as_of`] || "" });
    tile.appendChild(html("div", {}, store === "redis" ? "Redis (live)" : "MySQL (sink)"));
    tile.appendChild(html("div", { class: "age" }, ageText(age)));
    const asOf = f[`${store}_as_of`];
    tile.appendChild(html("div", { class: "muted" },
      asOf ? "as of " + asOf.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, " UTC") : "-"));
    tiles.appendChild(tile);
  }
  replace(container, tiles);
}

function stageTable(table, stages) {
  const head = html("tr");
  for (const [text, cls] of [["stage", ""], ["lag", "num"], ["per minute", "num"], ["", ""]])
    head.appendChild(html("th", { class: cls }, text));
  const body = [head];
  for (const s of stages) {
    const tr = html("tr", { "data-label": s.name });
    tr.appendChild(html("td", {}, s.name));
    tr.appendChild(html("td", { class: "num" }, s.lag === null ? "–" : String(s.lag)));
    tr.appendChild(html("td", { class: "num" }, s.per_minute === null ? "–" : String(s.per_minute)));
    tr.appendChild(html("td", { class: "muted" }, s.error || ""));
    body.push(tr);
  }
  table.replaceChildren(...body);
}

function draw(state) {
  const a = state.answers;
  columns(document.getElementById("monthly"),
    a.monthly.map((r) => ({ label: r.month, value: r.total_amount })));
  rows(document.getElementById("categories"), a.categories.map((r) => ({
    label: r.product_category, value: r.total_amount, shown: money(r.total_amount),
    note: `${r.total_transactions} txns`, count: r.total_transactions })));
  rows(document.getElementById("top-customers"), a["top-customers"].map((r) => ({
    label: r.customer_id, value: r.total_amount, shown: money(r.total_amount) })));
  const nowMs = Date.parse(state.taken_at) || Date.now();
  lines(document.getElementById("throughput"), state.history, "per_minute", nowMs);
  lines(document.getElementById("lag"), state.history, "lag", nowMs);
  const dl = state.dead_letters;
  document.getElementById("dlq-total").textContent =
    dl.total === null ? "" : `(${dl.total} on the topic)`;
  rows(document.getElementById("dead-letters"), dl.reasons.map((r) => ({
    label: r.reason, value: String(r.count), shown: String(r.count) })), "dlq", true);
  freshness(document.getElementById("freshness"), state.freshness);
  stageTable(document.getElementById("stages"), state.stages);
  const problems = document.getElementById("problems");
  problems.replaceChildren(...state.problems.map((p) => html("li", {}, p)));
}

function setHealth(text, cls) {
  const badge = document.getElementById("health");
  badge.textContent = text;
  badge.className = "badge " + cls;
}

let lastTaken = null;
let lastState = null;
let lastWidth = 0;

// charts are drawn at their containers' pixel width: redraw when the layout changes
new ResizeObserver(() => requestAnimationFrame(() => {
  const w = document.querySelector("main").clientWidth;
  if (lastState && w !== lastWidth) draw(lastState);
  lastWidth = w;
})).observe(document.querySelector("main"));

async function poll() {
  try {
    const response = await fetch("api/state", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const state = await response.json();
    document.getElementById("namespace").textContent = `namespace ${state.namespace}`;
    if (state.ready) {
      if (state.taken_at !== lastTaken) {
        draw(state);
        lastState = state;
        lastTaken = state.taken_at;
        document.body.dataset.takenAt = state.taken_at;
      }
      setHealth(state.healthy ? "healthy" : "UNHEALTHY", state.healthy ? "ok" : "bad");
      document.getElementById("updated").textContent = `sampled ${state.taken_at}`;
    }
  } catch (err) {
    setHealth("dashboard server not answering", "off");
  }
  setTimeout(poll, POLL_MS);
}

poll();
