/* clearlane settlement dashboard — plain JavaScript, no build step.
 *
 * A hash router renders one page at a time from the service's JSON API (/v1/stats/*, /v1/trades,
 * /v1/batches, /v1/net-instructions, /v1/participants/{id}/positions) and the dashboard's few
 * extra views (/v1/dashboard/*). The service's live stream (/v1/stream?types=stats) sends
 * coalesced `stats` events (a few a second at most, however fast trades arrive); each one
 * refreshes the visible page, one request in flight at a time. Plotly (served from the installed
 * plotly wheel) is loaded only by the pages that draw charts. Every state is a word and a symbol
 * as well as a colour; times are shown in the reader's zone with the UTC instant on hover;
 * amounts come as decimal strings in the asset's own scale (or integer minor units, formatted
 * here with BigInt), never through floating point.
 */
"use strict";

const API = "/v1/dashboard";
const SYMBOL = { received: "•", batched: "◔", submitted: "↗", cleared: "◑", anchored: "⚓", final: "✔",
  rejected: "✖", unwound: "↺", included: "▣", open: "○", reorged: "↯", resubmitted: "↻", routed: "→", pending: "◔" };
const STATE_HELP = {
  received: "received, not applied yet", batched: "in an open Layer-2 batch", submitted: "sent to Layer-1, not in a block yet",
  cleared: "netted and committed on Layer-2 (soft-final)", anchored: "batch root / transaction in a base-layer block",
  final: "final: confirmations reached (and challenge window passed)", rejected: "refused, nothing applied",
  unwound: "batch missed its anchor deadline; settled gross on Layer-1",
  included: "gross Layer-1 transaction in a base-layer block, awaiting confirmations",
};
const STATES = ["received", "batched", "submitted", "cleared", "anchored", "final", "rejected", "unwound"];
const state = { meta: null, page: null, params: {}, inflight: false, dirty: false, lastRefresh: 0, plotly: null,
  version: -1, rendered: false, navStart: 0 };

// ---------------------------------------------------------------- formatting
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
function iso(ms) { return new Date(ms).toISOString(); }
const zoneFmt = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" });
function zoneName(d) { const part = zoneFmt.formatToParts(d).find((p) => p.type === "timeZoneName"); return part ? part.value : ""; }
function t(ms, long) {
  if (ms === null || ms === undefined || ms < 0) return '<span class="muted">—</span>';
  const d = new Date(ms);
  const frac = "." + String(d.getMilliseconds()).padStart(3, "0");
  // A long time (a trade's finality, a batch's steps) names its zone too.
  const text = long ? `${dateTimeFmt.format(d)}${frac} ${zoneName(d)}` : timeFmt.format(d);
  return `<time datetime="${iso(ms)}" title="UTC ${iso(ms).replace("T", " ").replace("Z", "")}">${esc(text)}</time>`;
}
// A full instant for badges: date, time and the zone's name, labelled (UTC on hover).
const zonedFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short" });
function tz(ms) {
  if (ms === null || ms === undefined || ms < 0) return '<span class="muted">—</span>';
  return `<time datetime="${iso(ms)}" title="UTC ${iso(ms).replace("T", " ").replace("Z", "")}">${esc(zonedFmt.format(new Date(ms)))}</time>`;
}
function group(intText) { return intText.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
function amount(a) {
  if (!a) return "—";
  const neg = a.value.startsWith("-");
  const [w, f] = (neg ? a.value.slice(1) : a.value).split(".");
  return `<span class="amt">${neg ? "−" : ""}${group(w)}${f !== undefined ? "." + f : ""}</span> <span class="muted">${esc(a.asset)}</span>`;
}
function usd(v, digits = 0) {
  if (v === null || v === undefined) return "—";
  const n = Number(v);
  return (n < 0 ? "−$" : "$") + Math.abs(n).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function num(v) { return v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US"); }
function pct(v, digits = 1) { return v === null || v === undefined ? "—" : (v * 100).toFixed(digits) + " %"; }
function secs(v) {
  if (v === null || v === undefined) return "—";
  if (v < 1) return (v * 1000).toFixed(0) + " ms";
  if (v < 120) return v.toFixed(v < 10 ? 2 : 1) + " s";
  return (v / 60).toFixed(1) + " min";
}
// `word` names the state where the lane calls it otherwise (a Layer-1 "anchored" is "included").
function chip(s, title, word) {
  const cls = STATE_HELP[s] || s === "open" || s === "pending" ? s : "neutral";
  const help = word && STATE_HELP[word] ? STATE_HELP[word] : STATE_HELP[s];
  return `<span class="state s-${esc(cls)}" title="${esc(title || help || s)}"><span class="sym" aria-hidden="true">${SYMBOL[word] || SYMBOL[s] || "•"}</span>${esc(word || s)}</span>`;
}
const link = {
  trade: (id) => `<a href="#/trade/${encodeURIComponent(id)}" class="mono">${esc(id)}</a>`,
  batch: (id) => id ? `<a href="#/batch/${encodeURIComponent(id)}" class="mono">${esc(id)}</a>` : '<span class="muted">—</span>',
  // A participant key sees counterparties' ids, never their pages; its own id opens its portal.
  participant: (id) => !id ? '<span class="muted">—</span>' : state.me && state.me.participant
    ? (id === state.me.participant ? `<a href="#/portal">${esc(id)}</a>` : esc(id)) : `<a href="#/participant/${encodeURIComponent(id)}">${esc(id)}</a>`,
};
function short(hash) { return hash ? `<span class="hash" title="${esc(hash)}">${esc(hash.slice(0, 16))}…</span>` : '<span class="muted">—</span>'; }
function conf(c) { return c ? `${c.have}/${c.need}` : '<span class="muted">—</span>'; }

// ---------------------------------------------------------------- data
// Behind `clearlane serve` the data needs an API key (operator or auditor); it is kept for this
// tab only (sessionStorage) and sent as X-API-Key.
const KEY = "clearlane.apiKey";
function authHeaders(extra) {
  const h = Object.assign({}, extra || {});
  const key = sessionStorage.getItem(KEY);
  if (key) h["X-API-Key"] = key;
  return h;
}
async function get(path) {
  const res = await fetch(path, { headers: authHeaders({ Accept: "application/json" }) });
  if (res.status === 401 || res.status === 403) { const err = new Error("key"); err.status = res.status; err.auth = true; throw err; }
  if (!res.ok) {
    let detail = res.statusText;
    try { const p = await res.json(); detail = p.detail || p.title || JSON.stringify(p); } catch (e) { /* not JSON */ }
    const err = new Error(detail); err.status = res.status; throw err;
  }
  return res.json();
}
function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
}
function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!state.plotly) {
    state.plotly = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "/ui/vendor/plotly.min.js"; s.async = true;
      s.onload = () => resolve(window.Plotly); s.onerror = () => reject(new Error("could not load the chart library"));
      document.head.appendChild(s);
    });
  }
  return state.plotly;
}
const plotLayout = (extra) => Object.assign({ margin: { l: 60, r: 20, t: 30, b: 40 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
  font: { family: "system-ui, sans-serif", size: phone() ? 10 : 12 }, legend: { orientation: "h", y: phone() ? -0.35 : -0.2 } }, extra || {});
const OKABE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
const DASH = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
async function plot(el, traces, layout) {
  const Plotly = await loadPlotly();
  if (!document.body.contains(el)) return;
  await Plotly.react(el, traces, plotLayout(layout), { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] });
  el.dataset.plotted = "1";
}
// Plotly draws Date objects in the browser's zone; the axis says so.
const localTimes = (ms) => ms.map((m) => new Date(m));
const phone = () => window.matchMedia("(max-width: 720px)").matches;
const timeAxis = () => ({ type: "date", tickformat: "%H:%M", nticks: phone() ? 4 : 10, title: { text: phone() ? "" : "your time" } });

// ---------------------------------------------------------------- pages
// ---------------------------------------------------------------- service data helpers
// Amounts the service gives as integers in minor units are formatted here with the asset's
// scale from /v1/dashboard/meta, in BigInt: never through floating point.
function scaleOf(asset) {
  const a = state.meta && state.meta.assets.find((x) => x.code === asset);
  return a ? a.scale : 0;
}
function fmtMinor(minor, asset) {
  if (minor === null || minor === undefined) return null;
  const scale = scaleOf(asset);
  let v = BigInt(minor);
  const neg = v < 0n;
  if (neg) v = -v;
  const digits = v.toString().padStart(scale + 1, "0");
  const text = scale ? digits.slice(0, digits.length - scale) + "." + digits.slice(digits.length - scale) : digits;
  return { value: (neg ? "-" : "") + text, asset };
}
const dec = (value, asset) => (value === null || value === undefined ? null : { value: String(value), asset });
const when = (isoText) => (isoText ? Date.parse(isoText) : null);
const secsMs = (ms) => (ms === null || ms === undefined ? null : ms / 1000);
const isPool = (lane) => state.meta && state.meta.pools.some((p) => p.id === lane);
const laneQuery = (lane) => (isPool(lane) ? { pool: lane } : { lane });
function confirmations(height, need, tip) {
  if (height === null || height === undefined || tip === null || tip === undefined) return null;
  return { have: Math.max(0, Math.min(need, tip - height + 1)), need };
}
function poolConf(pool) {
  const p = state.meta && state.meta.pools.find((x) => x.id === pool);
  return p ? p.confirmations : 1;
}
function tplus(ms, executed) { return `T+${((ms - executed) / 1000).toFixed(1)}s`; }
// The badge in words, every instant with its date and zone (the server's UTC sentence on hover).
// Layer-2 clearing is soft finality and says so; base-layer finality is named apart, pending
// until it comes — a cleared time is never called final (docs/FINALITY.md).
function badgeOf(d) {
  const executed = when(d.executed_at);
  const cleared = when(d.l2_cleared_at);
  const final = when(d.l1_final_at);
  const at = (label, ms) => ({ label, ms, plus: tplus(ms, executed) });
  if (d.state === "rejected") return { tone: "rejected", title: "Rejected", parts: [], note: d.reject ? `${d.reject.error} (${d.reject.code})` : "" };
  if (d.state === "failed") return { tone: "rejected", title: "Settlement failed", parts: [], note: d.badge };
  // An L1 obligation an operator recorded as settled off-system, with evidence (the manual path).
  const manual = d.transitions.find((s) => s.state !== "routed" && (/manual/i.test(s.state) || /manual/i.test(s.detail)));
  if (manual) return { tone: "final", title: "Settled manually, off-system", parts: [at("recorded at", manual.at_ms)], note: "by the operator, with evidence" };
  if (d.state === "unwound") {
    const undone = (d.transitions.find((s) => s.state === "unwound") || {}).at_ms;
    const parts = undone ? [at("Layer-2 clearing voided at", undone)] : [];
    return final ? { tone: "unwound", title: "Unwound from Layer-2, settled gross on Layer-1", parts: [...parts, at("final on Layer-1 at", final)], note: "" }
      : { tone: "unwound", title: "Unwound from Layer-2 — settling gross on Layer-1", parts, note: "Layer-1 final pending" };
  }
  if (d.lane === "L2" && cleared) {
    const soft = at("soft-final at", cleared);
    if (d.state === "final" && final) return { tone: "final", title: "Settled on Layer-2", parts: [soft, at("base-layer final at", final)], note: "" };
    return { tone: "cleared", title: "Cleared on Layer-2", parts: [soft], note: "base-layer final pending" };
  }
  if (d.lane === "L1" && d.state === "final" && final) return { tone: "final", title: "Settled on Layer-1", parts: [at("final at", final)], note: "" };
  if (d.lane === "L1") return { tone: "pending", title: "Submitted to Layer-1", parts: [], note: "awaiting confirmations" };
  return { tone: "pending", title: "Batched on Layer-2", parts: [], note: "awaiting batch close" };
}
function badgeHtml(d) {
  const b = badgeOf(d);
  const tone = { final: "final", cleared: "cleared", pending: "batched", rejected: "rejected", unwound: "unwound" }[b.tone] || "neutral";
  const parts = b.parts.map((p) => `${esc(p.label)} ${tz(p.ms)} (${esc(p.plus)})`);
  if (b.note) parts.push(esc(b.note));
  return `<div class="badge s-${tone}" id="badge" data-tone="${esc(b.tone)}" title="${esc(d.badge)} (UTC)"><span class="sym" aria-hidden="true">${SYMBOL[tone] || "•"}</span>
    <span class="text">${esc(b.title)}${parts.length ? " — " + parts.join("; ") : ""}</span>
    <a class="explain" href="#/finality" title="What cleared, soft-final and final mean, and how long each takes on every lane">What does this mean?</a></div>`;
}

// ---------------------------------------------------------------- pages
const pages = {};
// What a participant key may open (its portal.js pages, its trades, escrows and the explainer).
const PORTAL_PAGES = ["portal", "trades", "trade", "batch", "escrows", "escrow", "finality"];
function portalNav() {
  const me = state.me.participant;
  document.querySelector("header.top nav").innerHTML = `<a href="#/portal" data-page="portal">My account</a>
    <a href="#/trades" data-page="trades">My trades</a><a href="#/escrows" data-page="escrows">Escrows</a>
    <a href="#/finality" data-page="finality">Finality</a>`;
  document.querySelector(".brand").setAttribute("href", "#/portal");
  document.querySelector(".brand").innerHTML = `<span class="logo" aria-hidden="true">◧</span> clearlane <span class="muted">· ${esc(me)}</span>`;
}

pages.overview = {
  title: "Overview",
  async load() {
    const [o, r] = await Promise.all([get("/v1/stats/overview"), get(API + "/rejects")]);
    return { o, r };
  },
  live() { return true; },
  render({ o, r }) {
    const l1 = o.lanes.find((l) => l.lane === "L1");
    const pools = o.lanes.filter((l) => l.lane === "L2");
    const rejectedTotal = Object.values(r.by_code).reduce((a, b) => a + b, 0);
    const lanes = [l1, ...pools].filter(Boolean).map((l) => ({ key: l.lane === "L1" ? "L1" : l.pool, name: l.lane === "L1" ? "L1" : "L2 " + l.pool, ...l }));
    const shown = STATES.filter((s) => s !== "received");
    const rows = lanes.map((l) => {
      const st = l.trades;
      const total = Math.max(1, shown.reduce((a, s) => a + (st[s] || 0), 0));
      const bars = shown.filter((s) => st[s]).map((s) => `<span class="b-${s}" style="width:${(100 * st[s] / total).toFixed(2)}%" title="${s}: ${num(st[s])}"></span>`).join("");
      const words = shown.filter((s) => st[s]).map((s) => `<span class="sym" aria-hidden="true">${SYMBOL[s]}</span> ${num(st[s])} ${s}`).join(" · ");
      const fin = l.finality_latency_ms;
      const clr = l.cleared_latency_ms;
      return `<tr data-lane="${esc(l.key)}"><th scope="row"><a href="#/trades${qs({ lane: l.key })}">${esc(l.name)}</a></th>
        ${STATES.map((s) => `<td class="num opt">${st[s] ? (s === "received" ? num(st[s]) : `<a href="#/trades${qs({ lane: l.key, state: s })}">${num(st[s])}</a>`) : '<span class="muted">0</span>'}</td>`).join("")}
        <td><div class="stack" role="img" aria-label="${esc(l.name)} by state">${bars}</div><div class="phone-only stack-words">${words || "no trades"}</div></td>
        <td class="num">${fin ? secs(secsMs(fin.p50)) : "—"}</td><td class="num opt">${fin ? secs(secsMs(fin.p99)) : "—"}</td>
        <td class="num opt">${clr ? secs(secsMs(clr.p50)) : "—"}</td>
        <td class="num">${l.lane === "L2" ? pct(l.netting_efficiency) : "—"}</td>
        <td class="num opt">${l.lane === "L2" ? usd(l.liquidity_saved_usd) : "—"}</td></tr>`;
    });
    if (rejectedTotal) {
      rows.push(`<tr data-lane="none"><th scope="row"><a href="#/trades${qs({ state: "rejected" })}">no lane</a></th>
        ${STATES.map((s) => `<td class="num opt">${s === "rejected" ? num(rejectedTotal) : '<span class="muted">0</span>'}</td>`).join("")}
        <td><div class="stack"><span class="b-rejected" style="width:100%"></span></div><div class="phone-only stack-words">${SYMBOL.rejected} ${num(rejectedTotal)} rejected</div></td>
        <td class="num">—</td><td class="num opt">—</td><td class="num opt">—</td><td class="num">—</td><td class="num opt">—</td></tr>`);
    }
    const batches = pools.reduce((a, l) => a + l.batches.cleared + l.batches.anchored + l.batches.final + l.batches.unwound, 0);
    const awaiting = pools.reduce((a, l) => a + l.batches.anchored, 0);
    const trades = o.totals.trades.received + rejectedTotal;
    const alerts = o.open_alerts.slice(-20).reverse();
    const alertList = alerts.length ? `<ul class="alerts">${alerts.map((a) => `<li class="${esc(a.severity)}"><span class="sev">${a.severity === "critical" ? "✖ Critical" : "▲ Warning"}</span>${t(a.at_ms)} — ${esc(a.message)}</li>`).join("")}</ul>`
      : '<p class="muted">✔ No open alerts.</p>';
    const codes = Object.entries(r.by_code);
    const tot = o.totals;
    return `<h1>Overview</h1>
      <div class="kpis">
        ${kpi("Trades", num(trades), `${num(batches)} batches`, "kpi-trades")}
        ${kpi("Block height", num(o.block_height), `engine at ${t(o.as_of_ms)}`, "kpi-height")}
        ${kpi("Anchor backlog", num(o.anchor_backlog), `batches cleared, not anchored · ${num(awaiting)} awaiting finality`, "kpi-backlog")}
        ${kpi("Netting efficiency", pct(tot.netting_efficiency), `${usd(tot.gross_usd)} gross → ${usd(tot.net_usd)} net`, "kpi-netting")}
        ${kpi("Liquidity saved", usd(tot.liquidity_saved_usd), "gross minus net on Layer-2", "kpi-saved")}
        ${kpi("L1 in flight", num(l1 ? l1.trades.submitted + l1.trades.anchored : 0), "Layer-1 transactions awaiting finality", "kpi-l1")}
      </div>
      <h2>Trades by lane and settlement state</h2>
      <div class="legend">${STATES.filter((s) => s !== "received").map((s) => chip(s)).join("")}</div>
      <div class="table-wrap"><table id="lanes"><thead><tr><th>Lane / pool</th>${STATES.map((s) => `<th class="num opt"${s === "received" ? ' title="every trade received on this lane"' : ""}>${s === "received" ? "received (all)" : esc(s)}</th>`).join("")}
        <th>share by state</th><th class="num" title="received → final, median">final p50</th><th class="num opt" title="received → final, 99th percentile">final p99</th>
        <th class="num opt" title="received → cleared (L2 soft-final), median">cleared p50</th><th class="num">netting</th><th class="num opt">liquidity saved</th></tr></thead>
        <tbody>${rows.join("")}</tbody></table></div>
      <div class="grid2"><div><h2>Open alerts</h2><div class="panel">${alertList}</div></div>
        <div><h2>Rejects by code</h2><div class="panel">${codes.length ? `<table><tbody>${codes.map(([c, n]) => `<tr><td>${chip("rejected", c)} <code>${esc(c)}</code></td><td class="num">${num(n)}</td></tr>`).join("")}</tbody></table>` : '<p class="muted">✔ None.</p>'}</div></div></div>`;
  },
};
// Navigate (re-showing the page when the hash does not change, e.g. the same search again).
function go(hash) {
  if (location.hash === hash) { state.navStart = performance.now(); show(false); } else location.hash = hash;
}
function kpi(label, value, sub, id) {
  return `<div class="kpi" id="${id}"><div class="label">${esc(label)}</div><div class="value">${value}</div><div class="sub">${sub}</div></div>`;
}

// A calendar day in the reader's zone as [since, until) epoch ms (DST-safe: from the calendar).
function dayRange(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
  if (!m) return {};
  const [y, mo, d] = [Number(m[1]), Number(m[2]) - 1, Number(m[3])];
  return { since_ms: new Date(y, mo, d).getTime(), until_ms: new Date(y, mo, d + 1).getTime() };
}
pages.trades = {
  title: "Trades",
  async load(p) {
    if (p.q && !p.cursor) {
      // An exact id opens the trade; anything else is the start of ids (a prefix search).
      try { return { exact: await get("/v1/trades/" + encodeURIComponent(p.q)), items: [] }; } catch (e) {
        if (e.status !== 404) throw e;
      }
    }
    return get(API + "/trades" + qs({ limit: 50, cursor: p.cursor, q: p.q, participant: p.participant, state: p.state, lane: p.lane, ...dayRange(p.date) }));
  },
  render(d, p) {
    const lanes = ["", "L1", "L2", ...(state.meta ? state.meta.pools.map((x) => x.id) : [])];
    const rows = d.items.map((r) => tradeRow(r, true)).join("");
    const next = d.next_cursor ? `<a class="button" href="#/trades${qs({ ...p, cursor: d.next_cursor })}">Older →</a>` : "";
    const first = p.cursor ? `<a class="button" href="#/trades${qs({ ...p, cursor: "" })}">← Newest</a>` : "";
    const empty = p.q ? `No trade or payment whose id is or starts with <code>${esc(p.q)}</code>${d.next_cursor ? " in the newest part of the day — continue with Older →" : ""}.`
      : (d.next_cursor ? "None in the newest part of the day — continue with Older →." : "No trades match.");
    const mine = state.me && state.me.participant;
    return `<h1>${mine ? "My trades" : "Trades"}</h1>
      <form class="filters" id="trade-search" role="search">
        <label>Trade id or prefix<input name="q" value="${esc(p.q || "")}" placeholder="e.g. XCL-00000012" autocomplete="off"></label>
        ${mine ? "" : `<label>Participant<input name="participant" value="${esc(p.participant || "")}" placeholder="e.g. MM-0001" autocomplete="off"></label>`}
        <label>Received on <span class="hint">(your zone)</span><input name="date" type="date" value="${esc(p.date || "")}"></label>
        <label>State<select name="state"><option value="">any</option>${STATES.filter((s) => s !== "received").map((s) => `<option ${p.state === s ? "selected" : ""}>${s}</option>`).join("")}</select></label>
        <label>Lane<select name="lane">${lanes.map((l) => `<option value="${esc(l)}" ${p.lane === l ? "selected" : ""}>${l || "any"}</option>`).join("")}</select></label>
        <button type="submit">Search</button>
      </form>
      <div class="table-wrap"><table id="trades"><thead>${tradeHead(true)}</thead><tbody>${rows || `<tr><td colspan="12" class="muted">${empty}</td></tr>`}</tbody></table></div>
      <div class="pager">${first}${next}<span class="hint">Newest first; the first page refreshes live. <a href="#/finality">Soft-final vs final</a>.</span></div>`;
  },
  after(d, p) {
    if (d.exact) { location.replace("#/trade/" + encodeURIComponent(d.exact.id)); return; }
    const form = document.getElementById("trade-search");
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const f = new FormData(form);
      go("#/trades" + qs({ q: f.get("q").trim(), participant: (f.get("participant") || "").trim(), date: f.get("date"), state: f.get("state"), lane: f.get("lane") }));
    });
  },
  live(p) { return !p.cursor && !(document.activeElement && document.activeElement.form); },
};
// Both finality columns (the dashboard's trade list): L2 soft-final, and base-layer final; an
// unwound batch's clearing is shown voided, never as a time that still holds.
function tradeHead(finality) {
  return `<tr><th>Trade</th><th>State</th><th class="opt">Received</th><th>Buyer</th><th>Seller</th><th class="opt">Symbol</th><th class="num">Quantity</th><th class="num opt">Amount</th><th>Lane</th><th class="opt">Batch</th>${finality
    ? '<th title="Layer-2 cleared: soft-final (netted and committed)">L2 soft-final</th><th title="base-layer final: the batch anchor\'s, or the gross Layer-1 transaction\'s, confirmations">Final</th>' : ""}</tr>`;
}
function tradeRow(r, finality) {
  const why = r.reject_code ? `rejected, code ${r.reject_code}` : undefined;
  const soft = r.l2_voided_at_ms ? `<span class="muted" title="the batch was unwound: this clearing no longer holds">voided ${t(r.l2_voided_at_ms)}</span>` : (r.lane === "L2" ? t(r.l2_cleared_at_ms) : '<span class="muted" title="gross on Layer-1: no Layer-2 clearing">n/a</span>');
  return `<tr><td>${link.trade(r.id)}</td><td>${chip(r.state, why, r.lane === "L1" && r.state === "anchored" ? "included" : undefined)}</td><td class="opt">${t(r.received_at_ms)}</td>
    <td>${link.participant(r.buyer)}</td><td>${link.participant(r.seller)}</td><td class="opt">${esc(r.kind === "payment" ? r.base : r.base + "/" + r.quote)}</td>
    <td class="num">${amount(dec(r.quantity, r.base))}</td><td class="num opt">${r.kind === "payment" ? "—" : amount(dec(r.quote_amount, r.quote))}</td>
    <td>${r.lane ? esc(r.lane === "L2" ? "L2 " + r.pool : "L1") : '<span class="muted">—</span>'}</td><td class="opt">${link.batch(r.batch_id)}</td>${finality
    ? `<td class="l2-soft">${r.state === "rejected" ? '<span class="muted">—</span>' : soft}</td><td class="l1-final">${t(r.l1_final_at_ms)}</td>` : ""}</tr>`;
}

pages.trade = {
  title: "Trade",
  async load(p) {
    const [life, chain] = await Promise.all([get("/v1/trades/" + encodeURIComponent(p.id)), get(API + "/chain")]);
    return { ...life, chain };
  },
  render(d) {
    // A Layer-1 step the lifecycle calls "anchored" is the gross transaction's inclusion.
    const unwoundAt = (d.transitions.find((s) => s.state === "unwound") || {}).at_ms;
    const onL1 = (s) => d.lane === "L1" || (unwoundAt !== undefined && s.at_ms >= unwoundAt && s.state !== "unwound");
    const steps = d.transitions.map((s) => `<li><span>${chip(s.state, undefined, s.state === "anchored" && onL1(s) ? "included" : undefined)}</span><span>${t(s.at_ms)}</span><span class="detail">${esc(s.detail)}</span></li>`).join("");
    // The gross Layer-1 transaction (an L1 trade, or an unwound batch's trade): "tx@height".
    const inc = d.transitions.filter((s) => s.state === "anchored" && onL1(s)).pop();
    const sub = d.transitions.filter((s) => s.state === "submitted").pop();
    const l1tx = inc ? inc.detail.split(" ")[0].split("@")[0] : (sub && sub.detail.includes(", ") ? sub.detail.split(", ").pop() : null);
    const l1height = inc && inc.detail.includes("@") ? Number(inc.detail.split("@").pop()) : null;
    const l1c = confirmations(l1height, state.meta ? state.meta.l1_confirmations : 1, d.chain.block_height);
    const l2c = d.anchor ? confirmations(d.anchor.height, poolConf(d.pool), d.chain.block_height) : null;
    const proofOk = state.meta && state.meta.proofs && d.lane === "L2" && ["cleared", "anchored", "final"].includes(d.state);
    const proof = proofOk ? `<a class="button" id="proof-download" href="/v1/trades/${encodeURIComponent(d.id)}/proof" download>⬇ Download inclusion proof (JSON)</a>`
      : `<a class="button disabled" id="proof-download" aria-disabled="true" title="Inclusion proofs are not available on this server${d.lane === "L2" ? "" : " (Layer-2 trades only)"}">⬇ Inclusion proof not available</a>`;
    const fees = d.fees_minor || [0, 0];
    const l1Rows = `<dt>L1 transaction</dt><dd class="mono" id="l1-tx">${esc(l1tx || "—")}</dd>
          <dt>Block / confirmations</dt><dd id="confirmations">${l1height !== null ? `${num(l1height)} · ${conf(l1c)}` : "—"}</dd>`;
    const finality = d.lane === "L1" ? `
          <dt>L1 final (base layer)</dt><dd id="l1-final">${t(when(d.l1_final_at), true)}</dd>${l1Rows}` : d.state === "unwound" ? `
          <dt>L2 cleared (soft-final)</dt><dd id="l2-cleared"><s class="muted">${t(when(d.l2_cleared_at), true)}</s> <span class="state s-unwound">voided: unwound ${t(unwoundAt)}</span></dd>
          <dt>L1 final (gross, after unwind)</dt><dd id="l1-final">${t(when(d.l1_final_at), true)}</dd>${l1Rows}
          <dt>Batch (unwound)</dt><dd>${link.batch(d.batch_id)}</dd>` : `
          <dt>L2 cleared (soft-final)</dt><dd id="l2-cleared">${t(when(d.l2_cleared_at), true)}</dd>
          <dt>Base-layer final</dt><dd id="l1-final">${t(when(d.l1_final_at), true)}</dd>
          <dt>Batch</dt><dd>${link.batch(d.batch_id)}</dd>
          <dt>Batch root</dt><dd>${short(d.root)}</dd>
          <dt>Anchor tx</dt><dd class="mono">${esc((d.anchor && d.anchor.tx) || "—")}</dd>
          <dt>Block / confirmations</dt><dd id="confirmations">${d.anchor && d.anchor.height !== null && d.anchor.height !== undefined ? `${num(d.anchor.height)} · ${conf(l2c)}` : "—"}</dd>`;
    return `<h1>Trade <span class="mono">${esc(d.id)}</span></h1>
      ${badgeHtml(d)}
      <div class="grid2">
        <div class="panel"><dl class="facts">
          <dt>State</dt><dd>${chip(d.state)}</dd>
          <dt>Buyer</dt><dd>${link.participant(d.buyer)}</dd><dt>Seller</dt><dd>${link.participant(d.seller)}</dd>
          <dt>Symbol</dt><dd>${esc(d.kind === "payment" ? d.base : d.base + "/" + d.quote)}</dd><dt>Quantity</dt><dd>${amount(dec(d.quantity, d.base))}</dd>
          <dt>Amount</dt><dd>${d.kind === "payment" ? "—" : amount(dec(d.quote_amount, d.quote))}</dd>
          <dt>Fees</dt><dd>buyer ${amount(fmtMinor(fees[0], d.quote))} · seller ${amount(fmtMinor(fees[1], d.quote))}</dd>
          <dt>Executed</dt><dd>${t(when(d.executed_at), true)}</dd>
          <dt>Lane</dt><dd>${d.lane ? esc(d.lane === "L2" ? "Layer-2, pool " + d.pool : "Layer-1 (gross)") : "—"} <span class="muted">${esc(d.route_rule || "")}</span></dd>
          <dt>Exchange batch</dt><dd class="mono">${esc(d.exch_batch_id || "—")}</dd>
        </dl></div>
        <div class="panel"><dl class="facts">${finality}
          <dt>Inclusion proof</dt><dd>${proof}</dd>
        </dl></div>
      </div>
      <h2>Lifecycle</h2><div class="panel"><ol class="timeline" id="timeline">${steps}</ol></div>`;
  },
  after(d) {
    const button = document.getElementById("proof-download");
    if (!button || button.classList.contains("disabled")) return;
    // Fetched with the API key (a plain link could not send it), then saved from a blob.
    button.addEventListener("click", async (e) => {
      e.preventDefault();
      const res = await fetch(button.getAttribute("href"), { headers: authHeaders() });
      if (!res.ok) {
        let why = res.statusText;
        try { why = (await res.json()).detail; } catch (err) { /* not JSON */ }
        button.outerHTML = `<span class="error" role="alert">✖ ${esc(why)}</span>`;
        return;
      }
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement("a");
      a.href = url; a.download = `proof-${d.id}.json`;
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    });
  },
  live(p, d) { return d && !d.final; },
};

pages.batches = {
  title: "Batches",
  async load(p) { return get(API + "/batches" + qs({ pool: p.pool, cursor: p.cursor, limit: 50 })); },
  render(d, p) {
    const pools = state.meta ? state.meta.pools.map((x) => x.id) : [];
    const tabs = ["", ...pools].map((x) => `<a class="${(p.pool || "") === x ? "button" : ""}" href="#/batches${qs({ pool: x })}">${x || "all pools"}</a>`).join(" ");
    const rows = d.items.map((b) => `<tr><td>${b.state === "open" ? `<span class="mono">${esc(b.batch_id)}</span>` : link.batch(b.batch_id)}</td><td class="opt">${esc(b.pool)}</td><td>${chip(b.state)}</td><td class="num">${num(b.flows)}</td>
      <td class="num opt">${usd(b.gross_usd)}</td><td class="num">${usd(b.net_usd)}</td><td class="num opt">${pct(b.netting_efficiency)}</td>
      <td class="opt">${short(b.root)}</td><td class="opt mono">${esc(b.anchor_tx || "—")}</td><td class="num">${conf(b.confirmations)}</td><td class="opt">${t(b.cleared_at_ms)}</td></tr>`).join("");
    const next = d.next_cursor ? `<a class="button" href="#/batches${qs({ ...p, cursor: d.next_cursor })}">Older →</a>` : "";
    return `<h1>Batches</h1><div class="pager">${tabs}</div>
      <div class="table-wrap"><table id="batches"><thead><tr><th>Batch</th><th class="opt">Pool</th><th>State</th><th class="num">Trades</th><th class="num opt">Gross</th><th class="num">Net</th>
      <th class="num opt">Netting</th><th class="opt">Merkle root</th><th class="opt">Anchor tx</th><th class="num">Conf.</th><th class="opt">Cleared</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="11" class="muted">No batch yet.</td></tr>'}</tbody></table></div><div class="pager">${next}</div>`;
  },
  live(p) { return !p.cursor; },
};

pages.batch = {
  title: "Batch",
  async load(p) {
    const id = encodeURIComponent(p.id);
    const [b, ins, chain] = await Promise.all([get("/v1/batches/" + id), get("/v1/net-instructions" + qs({ batch_id: p.id, limit: 1000 })),
      get(API + "/chain")]);
    return { ...b, instructions: ins.items, chain };
  },
  render(b) {
    const c = confirmations(b.anchor_height, poolConf(b.pool), b.chain.block_height);
    const ins = b.instructions.map((i) => `<tr><td>${link.participant(i.participant)}</td><td>${esc(i.asset)}</td>
      <td>${i.direction === "pay" ? '<span class="state s-pending" title="pays into the pool"><span class="sym" aria-hidden="true">↑</span>pays</span>'
        : '<span class="state s-final" title="receives from the pool"><span class="sym" aria-hidden="true">↓</span>receives</span>'}</td>
      <td class="num">${amount(dec(i.net, i.asset))}</td></tr>`).join("");
    const events = (b.events || []).map((s) => `<li><span>${chip(s.event)}</span><span>${t(s.at_ms)}</span><span class="detail hash">${esc(s.detail)}</span></li>`).join("");
    return `<h1>Batch <span class="mono">${esc(b.batch_id)}</span> ${chip(b.state)}</h1>
      <div class="kpis">${state.me && state.me.participant ? "" /* a client sees its own part, not the batch's volume */ : `${kpi("Trades", num(b.flows), b.state === "open" ? "so far (open)" : "in the batch", "kpi-flows")}
        ${kpi("Gross", usd(b.gross_usd), "sum of obligations", "kpi-gross")}${kpi("Net", usd(b.net_usd), "what actually moves", "kpi-net")}
        ${kpi("Netting efficiency", pct(b.netting_efficiency), "1 − net / gross", "kpi-eff")}`}
        ${kpi("Confirmations", conf(c), b.anchor_height ? "block " + num(b.anchor_height) : "not anchored yet", "kpi-conf")}</div>
      <div class="grid2"><div class="panel"><dl class="facts">
        <dt>Pool</dt><dd><a href="#/batches${qs({ pool: b.pool })}">${esc(b.pool)}</a></dd><dt>Opened</dt><dd>${t(b.opened_at_ms, true)}</dd>
        <dt>Cleared</dt><dd>${t(b.cleared_at_ms, true)}</dd><dt>Anchored</dt><dd>${t(b.anchored_at_ms, true)}</dd><dt>Final</dt><dd>${t(b.final_at_ms, true)}</dd>
        ${b.unwound_at_ms ? `<dt>Unwound</dt><dd>${t(b.unwound_at_ms, true)}</dd>` : ""}
        <dt>Merkle root</dt><dd class="hash">${esc(b.root || "—")}</dd><dt>Anchor tx</dt><dd class="mono">${esc(b.anchor_tx || "—")} ${b.attempts > 1 ? `(attempt ${b.attempts})` : ""}</dd>
      </dl></div><div class="panel"><h2 style="margin-top:0">Events</h2><ol class="timeline">${events || '<li class="muted">none yet</li>'}</ol></div></div>
      <h2>Net settlement instructions</h2><div class="table-wrap"><table id="instructions"><thead><tr><th>Participant</th><th>Asset</th><th>Direction</th><th class="num">Net amount</th></tr></thead>
        <tbody>${ins || '<tr><td colspan="4" class="muted">None until the batch is cleared.</td></tr>'}</tbody></table></div>
      <h2>Trades in this batch <span class="hint" id="batch-trades-note">(loading…)</span></h2><div class="table-wrap"><table id="batch-trades"><thead>${tradeHead()}</thead><tbody>${state.batchTrades && state.batchTrades.id === b.batch_id ? state.batchTrades.html : ""}</tbody></table></div>`;
  },
  // The batch's trades come after the first render (a scan of the trade records of its span).
  async after(b) {
    try {
      const trades = await get("/v1/trades" + qs({ batch_id: b.batch_id, limit: 100 }));
      const html = trades.items.map((r) => tradeRow(r)).join("");
      state.batchTrades = { id: b.batch_id, html };
      const body = document.querySelector("#batch-trades tbody");
      const note = document.getElementById("batch-trades-note");
      if (body && note) { body.innerHTML = html; note.textContent = `(newest ${trades.items.length})`; }
    } catch (e) { /* the rest of the page stands */ }
  },
  live(p, d) { return d && !["final", "unwound"].includes(d.state); },
};

pages.participants = {
  title: "Participants",
  async load(p) { return get(API + "/participants" + qs({ q: p.q, sort: p.sort || "usage", offset: p.offset, limit: 100 })); },
  render(d, p) {
    const lanes = ["L1", ...(state.meta ? state.meta.pools.map((x) => x.id) : [])];
    const rows = d.items.map((r) => `<tr><td>${link.participant(r.id)}</td><td class="opt">${esc(r.kind)}${r.legacy_opt_out ? " · L1 only" : ""}</td>
        <td class="num">${usd(r.buffer_required_usd)}</td><td class="num">${usd(r.buffer_available_usd)}</td>
        <td>${bufferBar(r.utilisation)}</td><td class="num opt">${pct(r.credit_usage)}</td>
        ${lanes.map((x) => `<td class="num opt">${usd(r.pending_owed_usd[x])}</td>`).join("")}<td class="num">${num(r.rejects)}</td></tr>`).join("");
    const off = Number(p.offset || 0);
    const pager = `${off > 0 ? `<a class="button" href="#/participants${qs({ ...p, offset: Math.max(0, off - 100) })}">← Previous</a>` : ""}
      ${off + 100 < d.total ? `<a class="button" href="#/participants${qs({ ...p, offset: off + 100 })}">Next →</a>` : ""}<span class="hint">${num(d.total)} participants</span>`;
    const sorts = [["usage", "credit usage"], ["required", "buffer required"], ["rejects", "rejects"], ["id", "id"]];
    return `<h1>Participants</h1>
      <form class="filters" id="participant-search"><label>Participant id<input name="q" value="${esc(p.q || "")}" placeholder="e.g. MM-" autocomplete="off"></label>
        <label>Sort by<select name="sort">${sorts.map(([k, v]) => `<option value="${k}" ${(p.sort || "usage") === k ? "selected" : ""}>${v}</option>`).join("")}</select></label><button type="submit">Show</button></form>
      <div class="table-wrap"><table id="participants"><thead><tr><th>Participant</th><th class="opt">Kind</th><th class="num" title="Projected Layer-2 net debit of its open batches">Buffer required</th>
        <th class="num" title="Collateral at marks + credit limit">Available</th><th>Required vs available</th><th class="num opt">Credit used</th>
        ${lanes.map((x) => `<th class="num opt" title="What it still owes on trades not final on ${esc(x)} (USD at marks)">Pending ${esc(x)}</th>`).join("")}<th class="num">Rejects</th></tr></thead>
        <tbody>${rows}</tbody></table></div><div class="pager">${pager}</div>`;
  },
  after() {
    const form = document.getElementById("participant-search");
    form.addEventListener("submit", (e) => { e.preventDefault(); const f = new FormData(form); go("#/participants" + qs({ q: f.get("q").trim(), sort: f.get("sort") })); });
  },
  live() { return !(document.activeElement && document.activeElement.form); },
};
// Positions in the asset's units and in USD at current marks (the server values them).
function positionRow(x, lane, pending) {
  return `<tr><td>${esc(lane)}</td><td>${esc(x.asset)}</td><td class="num">${amount(dec(x.final, x.asset))}</td><td class="num">${usd(x.final_usd, 2)}</td>
    <td class="num">${amount(pending)}</td><td class="num">${usd(x.pending_usd, 2)}</td><td class="num opt">${amount(dec(x.open, x.asset))}</td><td class="num opt">${amount(dec(x.pending, x.asset))}</td></tr>`;
}
function positionTable(rows) {
  return `<div class="table-wrap"><table id="positions"><thead><tr><th>Lane</th><th>Asset</th><th class="num">Settled (final)</th><th class="num" title="at current marks">≈ USD</th><th class="num">Pending</th><th class="num" title="at current marks">≈ USD</th>
    <th class="num opt">of which open batch</th><th class="num opt">of which cleared, not final</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="8" class="muted">No positions yet.</td></tr>'}</tbody></table></div>`;
}
function bufferBar(use) {
  const cls = use > 1 ? "over" : use > 0.8 ? "warn" : "";
  const word = use > 1 ? "over limit" : use > 0.8 ? "high" : "ok";
  return `<div style="display:flex;gap:.4rem;align-items:center"><div class="bar ${cls}" role="img" aria-label="${(use * 100).toFixed(0)} % used, ${word}"><span style="width:${Math.min(100, use * 100).toFixed(1)}%"></span></div><span class="hint">${(use * 100).toFixed(0)} % ${word}</span></div>`;
}

pages.participant = {
  title: "Participant",
  async load(p) {
    const id = encodeURIComponent(p.id);
    const [row, pos, trades] = await Promise.all([get(API + "/participants/" + id), get("/v1/participants/" + id + "/positions"),
      get(API + "/trades" + qs({ participant: p.id, limit: 20 }))]);
    return { ...row, positions: pos.positions, balances: pos.balances, trades: trades.items };
  },
  render(d) {
    const rows = d.positions.map((x) => {
      const pending = fmtMinor(BigInt(x.open_minor) + BigInt(x.pending_minor), x.asset);
      const lane = x.lane.startsWith("L2:") ? "L2 " + x.lane.slice(3) : x.lane;
      return positionRow(x, lane, pending);
    }).join("");
    const collateral = d.balances.filter((b) => b.collateral_minor).map((b) => amount(dec(b.collateral, b.asset))).join(" · ");
    const rej = d.recent_rejects.map((r) => `<tr><td class="mono">${esc(r.id || "—")}</td><td>${chip("rejected", r.reason)} <code>${esc(r.error)}</code></td><td>${esc(r.field || "—")}</td><td>${t(r.at_ms)}</td></tr>`).join("");
    return `<h1>Participant ${esc(d.id)} <span class="muted">${esc(d.kind)}${d.legacy_opt_out ? " · legacy opt-out (Layer-1 only)" : ""}</span></h1>
      <div class="kpis">${kpi("Buffer required", usd(d.buffer_required_usd, 2), "projected L2 net debit, open batches", "kpi-required")}
        ${kpi("Buffer available", usd(d.buffer_available_usd), `collateral ${usd(d.collateral_usd)} + credit ${usd(d.credit_limit_usd)}`, "kpi-available")}
        ${kpi("Credit used", pct(d.credit_usage), usd(d.credit_used_usd, 2) + " of " + usd(d.credit_limit_usd), "kpi-credit")}
        ${kpi("Rejects", num(d.rejects), "trades refused", "kpi-rejects")}</div>
      <div class="panel">${bufferBar(d.utilisation)}</div>
      <h2>Positions per lane</h2>${positionTable(rows)}
      <h2>Collateral</h2><p>${collateral || '<span class="muted">none posted</span>'}</p>
      <h2>Recent trades</h2><div class="table-wrap"><table id="participant-trades"><thead>${tradeHead(true)}</thead><tbody>${d.trades.map((r) => tradeRow(r, true)).join("")}</tbody></table></div>
      <p><a href="#/trades${qs({ participant: d.id })}">All trades of ${esc(d.id)} →</a> · <a href="#/portal/${encodeURIComponent(d.id)}">Its portal, as the client sees it →</a></p>
      <h2>Recent rejects</h2><div class="table-wrap"><table><tbody>${rej || '<tr><td class="muted">✔ None.</td></tr>'}</tbody></table></div>`;
  },
  live() { return !(document.activeElement && document.activeElement.form); },
};

const QUEUE_NAMES = { intake_rows: "ingest queue (trades)", anchor_backlog: "awaiting anchor (batches)", l1_pending: "L1 awaiting finality (trades)",
  stream_queue_max: "stream queue (events)", webhook_pending: "webhooks pending" };
const queueName = (n) => QUEUE_NAMES[n] || (n.startsWith("open_batch:") ? `open batch ${n.slice(11)} (trades)` : n);

pages.latency = {
  title: "Latency",
  async load(p) { return get(API + "/latency" + qs({ minutes: p.minutes || 180 })); },
  render(d, p) {
    const rows = d.overall.map((o) => `<tr><td>${esc(o.lane)}</td><td>${esc(o.hop)}</td><td class="num">${secs(o.p50)}</td><td class="num">${secs(o.p99)}</td><td class="num">${num(o.n)}</td></tr>`).join("");
    const spans = [[60, "1 h"], [180, "3 h"], [720, "12 h"], [1440, "day"]];
    return `<h1>Latency per hop</h1>
      <div class="pager">${spans.map(([m, l]) => `<a class="${Number(p.minutes || 180) === m ? "button" : ""}" href="#/latency${qs({ minutes: m })}">${l}</a>`).join(" ")}
        <span class="hint">Median latency per hop and minute (engine time); brighter = slower. Hover a cell for p50, p99 and count.</span></div>
      <div class="panel"><div id="heatmap" class="chart" style="min-height:${Math.max(320, d.rows.length * 26 + 120)}px"></div></div>
      <h2>Queue lengths <span class="hint">(largest per minute)</span></h2><div class="panel"><div id="queues" class="chart"></div></div>
      <h2>Per hop, since the start</h2><div class="table-wrap"><table id="hops"><thead><tr><th>Lane</th><th>Hop</th><th class="num">p50</th><th class="num">p99</th><th class="num">count</th></tr></thead><tbody>${rows}</tbody></table></div>`;
  },
  after(d) {
    const x = localTimes(d.buckets);
    const y = d.rows.map((h) => `${h.lane}: ${h.hop}`);
    const text = d.p50_s.map((row, i) => row.map((v, j) => v === null ? "no trades" : `p50 ${secs(v)} · p99 ${secs(d.p99_s[i][j])} · n=${d.n[i][j]}`));
    const z = d.p50_s.map((row) => row.map((v) => (v === null ? null : Math.log10(Math.max(v, 0.001)))));
    const ticks = [0.01, 0.1, 1, 10, 60, 600, 3600];
    plot(document.getElementById("heatmap"), [{ type: "heatmap", x, y, z, text, hoverinfo: "x+y+text", colorscale: "Cividis",
      hoverongaps: false, colorbar: Object.assign({ title: { text: "p50" }, tickvals: ticks.map(Math.log10), ticktext: ticks.map(secs) },
        phone() ? { orientation: "h", y: -0.25, thickness: 10, len: 1 } : {}), zmin: -2, zmax: Math.log10(3600) }],
      { margin: { l: phone() ? 40 : 230, r: 10, t: 20, b: phone() ? 90 : 40 }, yaxis: { autorange: "reversed", automargin: true, tickfont: { size: phone() ? 9 : 12 } }, xaxis: timeAxis() });
    const traces = Object.entries(d.queues.series).map(([name, values], i) => ({ type: "scatter", mode: "lines", name: queueName(name), x: localTimes(d.queues.t), y: values,
      line: { color: OKABE[i % OKABE.length], dash: DASH[i % DASH.length], width: 2, shape: "hv" } }));
    plot(document.getElementById("queues"), traces, { yaxis: { title: { text: "count" }, rangemode: "tozero" }, xaxis: timeAxis() });
  },
  live() { return true; },
  minInterval: 2000,
};

pages.savings = {
  title: "Savings",
  async load() {
    const [s, o] = await Promise.all([get("/v1/stats/savings" + qs({ bucket_s: 300 })), get("/v1/stats/overview")]);
    return { s, o };
  },
  render({ s, o }) {
    const tt = s.totals;
    const pools = o.lanes.filter((l) => l.lane === "L2");
    // One anchor per batch instead of one base-layer transaction per trade (unwound batches saved nothing).
    const l2Trades = pools.reduce((a, l) => a + l.trades.cleared + l.trades.anchored + l.trades.final, 0);
    const l2Batches = pools.reduce((a, l) => a + l.batches.cleared + l.batches.anchored + l.batches.final, 0);
    const avoided = Math.max(0, l2Trades - l2Batches);
    const m = state.meta;
    const fees = m ? fmtMinor(BigInt(avoided) * BigInt(m.fee_per_tx_minor), m.fee_asset) : null;
    const cleared = secsMs(tt.l2_cleared_p50_ms);
    const l1 = secsMs(tt.l1_final_p50_ms);
    const diff = cleared !== null && l1 !== null ? l1 - cleared : null;
    return `<h1>Savings of Layer-2 versus gross Layer-1</h1>
      <div class="kpis">${kpi("Liquidity saved", usd(tt.liquidity_saved_usd), `${usd(tt.gross_usd)} gross settled as ${usd(tt.net_usd)} net`, "kpi-liq")}
        ${kpi("Netting efficiency", pct(tt.netting_efficiency), "1 − net / gross", "kpi-net")}
        ${kpi("Base-layer txs avoided", num(avoided), fees ? `${amount(fees)} in fees` : "", "kpi-txs")}
        ${kpi("Time to cleared on L2", secs(cleared), "median, soft-final", "kpi-l2c")}
        ${kpi("Time to final on L2", secs(secsMs(tt.l2_final_p50_ms)), "median", "kpi-l2f")}
        ${kpi("Time to final on L1", secs(l1), diff === null ? "median" : `median · ${diff >= 0 ? secs(diff) + " later than L2 cleared" : secs(-diff) + " sooner than L2 cleared"}`, "kpi-l1f")}</div>
      <h2>Liquidity over the day <span class="hint">(per 5 minutes)</span></h2><div class="panel"><div id="liquidity" class="chart"></div></div>
      <h2>Settlement latency over the day <span class="hint">(median per 5 minutes)</span></h2><div class="panel"><div id="latency-day" class="chart"></div></div>
      <p class="hint">Gross is what settling every obligation one by one would move; net is what the Layer-2 batches actually move.
      A base-layer transaction is avoided for every Layer-2 trade beyond its batch's single anchor.</p>`;
  },
  after({ s }) {
    const b = s.buckets;
    const x = localTimes(b.map((v) => v.start_ms));
    plot(document.getElementById("liquidity"), [
      { type: "bar", name: "gross", x, y: b.map((v) => v.gross_usd), marker: { color: "#E69F00" } },
      { type: "bar", name: "net", x, y: b.map((v) => v.net_usd), marker: { color: "#0072B2", pattern: { shape: "/" } } },
      { type: "scatter", mode: "lines", name: "liquidity saved, cumulative", x, y: b.map((v) => v.cumulative_liquidity_saved_usd), yaxis: "y2", line: { color: "#009E73", width: 3 } },
    ], { barmode: "overlay", yaxis: { title: { text: "USD per 5 min" }, rangemode: "tozero" },
      yaxis2: { title: { text: "USD saved (cumulative)" }, overlaying: "y", side: "right", rangemode: "tozero" }, xaxis: timeAxis(), margin: { l: 70, r: 80, t: 20, b: 40 } });
    const series = [["L2 cleared", "l2_cleared_p50_ms"], ["L2 final", "l2_final_p50_ms"], ["L1 final", "l1_final_p50_ms"]];
    plot(document.getElementById("latency-day"), series.map(([name, key], i) => ({ type: "scatter", mode: "lines+markers", name, x,
      y: b.map((v) => secsMs(v[key])), connectgaps: false, line: { color: OKABE[i], dash: DASH[i], width: 2 }, marker: { symbol: ["circle", "square", "diamond"][i], size: 5 } })),
    { yaxis: { title: { text: "seconds (log)" }, type: "log" }, xaxis: timeAxis() });
  },
  live() { return true; },
  minInterval: 2000,
};

// ---------------------------------------------------------------- router
function parseHash() {
  const h = location.hash.replace(/^#\/?/, "");
  const [path, query] = h.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  const home = state.me && state.me.participant ? "portal" : "overview";
  let page = parts[0] || home;
  if (parts[1]) params.id = parts.slice(1).join("/");
  // A participant key reads its own account: the service-wide pages are not for it (and its
  // own participant page is its portal).
  if (state.me && state.me.participant && (!PORTAL_PAGES.includes(page) || (page === "participant" && params.id !== state.me.participant))) page = "portal";
  if (page === "participant" && state.me && state.me.participant) page = "portal";
  return { page: pages[page] ? page : home, params };
}

async function show(refresh) {
  const { page, params } = refresh ? { page: state.page, params: state.params } : parseHash();
  const def = pages[page];
  if (!refresh) {
    state.page = page; state.params = params; state.data = null; state.rendered = false; state.editing = false;
    state.navStart = state.navStart || performance.now();
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page || a.dataset.page + "s" === page || (page === "trade" && a.dataset.page === "trades") || (page === "batch" && a.dataset.page === "batches") || (page === "participant" && a.dataset.page === "participants") || (page === "escrow" && a.dataset.page === "escrows")));
  }
  if (state.inflight) { state.dirty = true; return; }
  state.inflight = true;
  const view = document.getElementById("view");
  try {
    const [data] = await Promise.all([def.load(params), state.meta ? null : state.metaP]);
    if (state.page !== page || state.params !== params) return;
    // A live refresh already loading when the user began editing a filter is dropped too: its
    // render would replace the form being typed into (and a search would submit it empty).
    if (refresh && state.editing) return;
    const scrollY = window.scrollY;
    const focusName = document.activeElement && document.activeElement.name;
    view.innerHTML = def.render(data, params);
    state.data = data;
    document.title = `${def.title}${params.id ? " " + params.id : ""} — clearlane`;
    if (def.after) def.after(data, params);
    // A filter being edited is never overwritten by a live refresh.
    view.querySelectorAll("form").forEach((f) => ["input", "change"].forEach((ev) => f.addEventListener(ev, () => { state.editing = true; })));
    if (refresh) { window.scrollTo(0, scrollY); if (focusName) { const el = view.querySelector(`[name="${focusName}"]`); if (el) el.focus(); } }
    if (!state.rendered) {
      state.rendered = true;
      const ms = performance.now() - state.navStart;
      performance.mark("clearlane:rendered:" + page);
      window.__clearlaneRender = { page, ms };
      document.body.dataset.rendered = page;
      state.navStart = 0;
    }
    document.body.dataset.version = String(state.version);
    state.lastRefresh = performance.now();
  } catch (e) {
    if (e.auth) {
      showKeyForm(e.status);
      document.body.dataset.rendered = page;
    } else if (state.page === page) {
      view.innerHTML = `<h1>${esc(def.title)}</h1><p class="error" role="alert">✖ ${esc(e.message)}${e.status ? ` (HTTP ${e.status})` : ""}</p>`;
      document.body.dataset.rendered = page;
    }
  } finally {
    state.inflight = false;
    if (state.dirty) { state.dirty = false; setTimeout(() => show(true), 50); }
  }
}

function showKeyForm(status) {
  const view = document.getElementById("view");
  const why = status === 403 ? "This key's role may not read this page."
    : "This server needs an API key to show settlement data: an operator or auditor key opens the dashboard, a participant key opens that participant's own portal.";
  view.innerHTML = `<h1>API key needed</h1><div class="panel"><p>${esc(why)}</p>
    <form class="filters" id="key-form"><label>API key<input name="key" type="password" autocomplete="off" placeholder="cl_…" size="48" required></label>
    <button type="submit">Use this key</button></form>
    <p class="hint">Create one with <code>clearlane apikey create --role auditor --db …</code> (or <code>--role participant --participant ID</code>). It is kept for this browser tab only.</p></div>`;
  document.getElementById("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, new FormData(e.target).get("key").trim());
    location.reload();
  });
}

function onStats(s) {
  if (window.__clearlaneStatsHook) window.__clearlaneStatsHook(s);
  state.version = s.applied_seq;
  header(s);
  refreshLive();
}
// A participant key's stream has no stats (no service-wide figures): each of its events (its
// batches' transitions) refreshes the page instead.
function onActivity() {
  state.version += 1;
  refreshLive();
}
function header(s) {
  const clockEl = document.getElementById("engine-clock");
  clockEl.innerHTML = "engine " + t(s.as_of_ms);
  // An accelerated clock paced to the engine says when a busy machine held it back (issue 11).
  const c = s.clock || {};
  if (c.held_episodes) {
    clockEl.innerHTML += c.behind ? " · <b>clock held: engine behind</b>" : " · paced";
    clockEl.title = `Engine time. The ${c.speed}x clock waited for the engine ${c.held_episodes} time(s), ` +
      `skipping ${(c.slipped_ms / 1000).toFixed(1)} s of engine time, instead of compressing deadlines.`;
  }
  document.getElementById("block-height").textContent = "block " + num(s.block_height);
  // The Overview's height card follows the same live figure as the header (never older).
  const card = document.querySelector("#kpi-height .value");
  if (card) {
    card.textContent = num(s.block_height);
    const sub = document.querySelector("#kpi-height .sub");
    if (sub) sub.innerHTML = "engine at " + t(s.as_of_ms);
  }
}
function refreshLive() {
  const def = pages[state.page];
  if (!def || !def.live || !state.rendered || state.editing || !def.live(state.params, state.data)) return;
  const since = performance.now() - state.lastRefresh;
  const min = def.minInterval || 1000;
  if (since < min) { if (!state.timer) state.timer = setTimeout(() => { state.timer = null; show(true); }, min - since); return; }
  show(true);
}

// The live stream: Server-Sent Events read with fetch (so the API key can go in a header),
// reconnecting after 2 s when the connection drops.
async function connect() {
  const live = document.getElementById("live");
  const text = document.getElementById("live-text");
  const setLive = (on, words) => { live.className = on ? "live on" : "live off"; text.textContent = words; };
  for (;;) {
    try {
      const path = state.me && state.me.participant ? "/v1/stream" : "/v1/stream?types=stats";
      const res = await fetch(path, { headers: authHeaders({ Accept: "text/event-stream" }), cache: "no-store" });
      if (!res.ok || !res.body) throw new Error("HTTP " + res.status);
      setLive(true, "Live");
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (event === "stats" && data.length) { setLive(true, "Live"); onStats(JSON.parse(data.join("\n")).data); }
          else if (data.length && event !== "overflow") { setLive(true, "Live"); onActivity(); }
        }
      }
    } catch (e) { /* reconnect below */ }
    setLive(false, "Reconnecting…");
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function boot() {
  state.navStart = 0.0001;  // first render is measured from navigation start
  document.getElementById("tz").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
  window.addEventListener("hashchange", () => { state.navStart = performance.now(); show(false); });
  // Meta first: it says who the key is (a participant key gets its portal, not the dashboard).
  state.metaP = get(API + "/meta").then((m) => { state.meta = m; state.me = m.me || null; });
  try { await state.metaP; } catch (e) {
    if (e.auth) { showKeyForm(e.status); document.body.dataset.rendered = "key"; return; }
    state.metaP = Promise.resolve();
  }
  if (state.me && state.me.participant) portalNav();
  await show(false);
  connect();
}
// Every page script (one per capability, after this one in index.html) has run by then.
document.addEventListener("DOMContentLoaded", boot);
