// hybridnb live spend widget (anywidget ESM; no external JS).

const KEYS = [
  "title", "total_usd", "saved_usd", "calls", "cache_hits", "errors",
  "input_tokens", "output_tokens", "budget_usd", "budget_spent_usd", "budget", "strings", "routes",
  "models", "local", "recent", "series", "lanes", "advice", "updated", "live",
];

// Every amount arrives as text from Python (hybridnb.spend.render.money): no money formatting here.

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

function num(x) {
  return (x ?? 0).toLocaleString("en-US");
}

function pct(x) {
  return x === null || x === undefined ? "–" : Math.round(x * 100) + "%";
}

function secs(x) {
  if (x === null || x === undefined) return "–";
  return x < 1 ? Math.round(x * 1000) + " ms" : x.toFixed(2) + " s";
}

function sparkline(series, total, w = 220, h = 44) {
  if (!series || series.length === 0) {
    return `<svg class="hnb-spark" width="${w}" height="${h}" data-hnb="spark"></svg>`;
  }
  const pts = series.length === 1 ? [[series[0][0] - 1, 0], series[0]] : series;
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  const ymax = Math.max(...pts.map((p) => p[1]), 1e-12);
  const x = (t) => (t1 > t0 ? ((t - t0) / (t1 - t0)) * (w - 4) + 2 : w / 2);
  const y = (v) => h - 2 - (v / ymax) * (h - 4);
  const line = pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  const area = `2,${h - 2} ${line} ${x(t1).toFixed(1)},${h - 2}`;
  return `<svg class="hnb-spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" data-hnb="spark">
    <polygon points="${area}" class="hnb-spark-area"/>
    <polyline points="${line}" class="hnb-spark-line"/>
    <title>cumulative spend ${esc(total)}</title></svg>`;
}

function budgetBar(b) {
  // the budget with its basis ("session budget: $x of $y spent (n%), $z left"), as every view shows it
  if (!b || b.limit_usd === null || b.limit_usd === undefined) {
    return `<div class="hnb-budget-text" data-hnb="budget">${esc(b?.line || "no budget set")}</div>`;
  }
  const f = Math.min(1, b.fraction ?? 0);
  const cls = b.state === "over" ? "hnb-crit" : b.state === "warn" ? "hnb-warn" : "";
  return `<div class="hnb-bar" title="${esc(b.label)}">
      <div class="hnb-bar-fill ${cls}" style="width:${(f * 100).toFixed(1)}%"></div></div>
    <div class="hnb-budget-text" data-hnb="budget" data-state="${esc(b.state)}">${esc(b.line)}</div>`;
}

function saturation(l) {
  // the server's own view (vLLM /metrics) when present, else our queue's
  const bm = l.backend_metrics || {};
  let kv = bm.kv_cache_usage ?? bm.kv_cache_usage_perc;
  const waiting = bm.requests_waiting ?? bm.num_requests_waiting;
  if (kv === undefined || kv === null) return pct(l.saturation);
  if (kv > 1) kv = kv / 100;
  return `KV ${pct(kv)} · ${num(waiting)} waiting`;
}

function table(head, rows, attr = "") {
  if (!rows.length) return "";
  return `<table class="hnb-table" ${attr}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>
    <tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
}

function view(m) {
  const g = (k) => m.get(k);
  const d = g("strings") || {};
  const tiles = [
    ["spend · " + esc(d.scope || ""), esc(d.cost), "total"],
    ["calls", num(g("calls")), "calls"],
    ["tokens in / out", `${num(g("input_tokens"))} / ${num(g("output_tokens"))}`, "tokens"],
    ["cache hits · saved", `${num(g("cache_hits"))} · ${esc(d.saved)}`, "cache"],
    ["errors", num(g("errors")), "errors"],
  ].map(([label, value, key]) =>
    `<div class="hnb-tile"><div class="hnb-label">${label}</div><div class="hnb-value" data-hnb="${key}">${value}</div></div>`
  ).join("");

  const routes = table(["route", "calls", "cost", "tokens"], g("routes").map((r) => [
    esc(r.route), num(r.calls), esc(r.cost), num(r.input_tokens + r.output_tokens),
  ]), 'data-hnb="routes"');
  const models = table(d.header || [], (d.rows || []).concat(d.total_row ? [d.total_row] : [])
    .map((r) => r.map(esc)), 'data-hnb="models"');
  const local = table(["local", "held", "busy", "utilisation", "idle cost"],
    g("local").map((r) => [
      esc(`${r.backend} ${r.model}`), secs(r.held_s), secs(r.busy_s),
      `<span class="${r.utilisation !== null && r.utilisation < 0.3 ? "hnb-warn-text" : ""}">${pct(r.utilisation)}</span>`,
      esc(r.idle),
    ]), 'data-hnb="local"');
  const lanes = table(["lane", "queue", "in flight", "wait p50", "lat p50 / p95", "req/s", "saturation"],
    g("lanes").map((l) => [
      esc(`${l.route}/${l.backend}`), num(l.queue_depth),
      `${num(l.in_flight)}${l.max_concurrency ? " / " + l.max_concurrency : ""}`,
      secs(l.wait_p50_s), `${secs(l.latency_p50_s)} / ${secs(l.latency_p95_s)}`,
      (l.throughput_rps ?? 0).toFixed(1),
      saturation(l),
    ]), 'data-hnb="lanes"');
  const recent = table(["time", "route", "model", "status", "tokens", "cost", "latency"],
    g("recent").map((r) => [
      new Date(r.ts * 1000).toLocaleTimeString(), esc(r.route), esc(r.model),
      `<span class="hnb-status-${esc(r.status)}">${esc(r.status)}</span>`,
      num((r.input_tokens ?? 0) + (r.output_tokens ?? 0)), esc(r.cost), secs(r.latency_s),
    ]), 'data-hnb="recent"');
  const advice = g("advice").map((a) =>
    `<li class="hnb-adv hnb-adv-${esc(a.severity)}" data-kind="${esc(a.kind)}"><b>${esc(a.title)}</b> — ${esc(a.message)}</li>`
  ).join("");

  return `<div class="hnb-head"><span class="hnb-title">${esc(g("title"))}</span>
      <span class="hnb-live ${g("live") ? "on" : ""}" title="live feed">${g("live") ? "● live" : "○"}</span></div>
    <div class="hnb-tiles">${tiles}</div>
    <div class="hnb-row"><div class="hnb-col">${budgetBar(g("budget"))}</div>
      <div class="hnb-col hnb-spark-box">${sparkline(g("series"), d.cost)}</div></div>
    ${advice ? `<ul class="hnb-advice" data-hnb="advice">${advice}</ul>` : ""}
    <div class="hnb-grid">${routes}${models}${local}${lanes}</div>
    <details class="hnb-details"><summary>last calls</summary>${recent}</details>`;
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "hnb-widget";
  el.appendChild(root);
  let pending = false;
  const draw = () => {
    pending = false;
    const open = root.querySelector("details")?.open;
    root.innerHTML = view(model);
    if (open) root.querySelector("details").open = true;
  };
  const schedule = () => {
    if (!pending) {
      pending = true;
      requestAnimationFrame(draw);
    }
  };
  for (const k of KEYS) model.on(`change:${k}`, schedule);
  draw();
  return () => { for (const k of KEYS) model.off(`change:${k}`, schedule); };
}

export default { render };
