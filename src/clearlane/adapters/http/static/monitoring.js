"use strict";
// The monitoring page (docs/MONITORING.md): canaries per path, divergence between
// sources, trust per source. Loaded after app.js, whose helpers and page registry it uses.
// Verdicts keep their word and symbol beside the colour (✔ passed, ◐ degraded, ✘ failed).
const VERDICT = { passed: ["final", "✔"], degraded: ["anchored", "◐"], failed: ["rejected", "✘"], pending: ["pending", "…"] };
function verdict(v, title) {
  const [cls, sym] = VERDICT[v] || VERDICT.pending;
  return `<span class="state s-${cls}" title="${esc(title || v)}"><span class="sym" aria-hidden="true">${sym}</span>${esc(v)}</span>`;
}
const score = (s) => (s === undefined ? '<span class="muted">—</span>' : `<span class="num" title="availability ${pct(s.availability)} · freshness ${pct(s.freshness)} · agreement ${pct(s.agreement)} · completeness ${pct(s.completeness)}">${s.score.toFixed(3)}</span>`);
function hops(h) {
  const entries = Object.entries(h || {}).sort((a, b) => a[1] - b[1]);
  return entries.length ? entries.map(([k, ms]) => `${esc(k)} ${t(ms)}`).join(" → ") : '<span class="muted">—</span>';
}
pages.monitoring = {
  title: "Monitoring",
  async load() { return get("/v1/monitoring"); },
  live() { return true; },
  minInterval: 2000,
  render(d) {
    const c = d.canaries;
    const paths = c.paths.map((p) => {
      const last = p.last[0];
      const history = p.last.slice(0, 10).map((r) => verdict(r.verdict, `${r.flow_id}: ${r.reason || r.verdict}`)).join(" ");
      return `<tr><th scope="row">${esc(p.path)}</th><td>${verdict(p.status, last ? last.reason : "no verdict yet")}</td>
        <td>${last && last.hop ? `<strong>${esc(last.hop)}</strong>: ${esc(last.reason)}` : '<span class="muted">—</span>'}</td>
        <td class="opt">${last ? hops(last.hops) : '<span class="muted">—</span>'}</td>
        <td class="num">${num(p.sent)}</td><td>${history || '<span class="muted">—</span>'}</td></tr>`;
    }).join("");
    const unreachable = c.unreachable.length ? `<p class="hint">No synthetic pair reaches: ${c.unreachable.map(esc).join(", ")} — add synthetic participants the routing rules send there.</p>` : "";
    const v = d.divergence;
    const findings = v.findings.map((f) => `<tr><td>${verdict(f.kind === "stale" ? "degraded" : "failed", f.kind)} ${esc(f.kind)}</td>
      <th scope="row">${esc(f.subject)}</th><td>${f.sources.map(esc).join(" vs ")}</td><td>${esc(f.detail)}</td></tr>`).join("");
    const marks = v.marks.map((m) => `<tr><th scope="row">${esc(m.asset)}</th><td>${esc(m.source)}</td><td class="num">${usd(m.mark_usd, 2)}</td><td>${t(m.at_ms)}</td></tr>`).join("");
    const counts = Object.entries(v.counts).map(([k, by]) => `<tr><th scope="row" class="mono">${esc(k)}</th>${["venue", "batch_report", "clearlane"].map((s) => `<td class="num">${by[s] === undefined || by[s] === null ? '<span class="muted">no data</span>' : num(by[s])}</td>`).join("")}</tr>`).join("");
    const trust = Object.entries(d.trust).map(([s, w]) => `<tr><th scope="row">${esc(s)}</th><td>${score(w["1h"])}</td><td>${score(w["24h"])}</td></tr>`).join("");
    return `<h1>Monitoring</h1>
      <p class="hint">Canaries every ${secs(c.interval_ms / 1000)} of engine time; alerts they and the divergence checks raise are on the <a href="#/alerts">Alerts</a> page.
      ${v.l2_halted.length ? `<strong>L2 routing halted for ${v.l2_halted.map(esc).join(", ")}</strong> (marks diverge).` : ""}</p>
      <h2>Canaries per path</h2>${unreachable}
      <table id="canaries"><thead><tr><th scope="col">Path</th><th scope="col">Last verdict</th><th scope="col">Failing hop</th><th scope="col" class="opt">Hops of the last canary</th><th scope="col" class="num">Sent</th><th scope="col">Recent (newest first)</th></tr></thead>
      <tbody>${paths || '<tr><td colspan="6" class="muted">No canary set configured (participants with synthetic = true).</td></tr>'}</tbody></table>
      <h2>Divergence</h2>
      <table id="findings"><thead><tr><th scope="col">Finding</th><th scope="col">Subject</th><th scope="col">Sources</th><th scope="col">Detail</th></tr></thead>
      <tbody>${findings || '<tr><td colspan="4" class="muted">Every source within its band and heartbeat.</td></tr>'}</tbody></table>
      <h3>Marks per source</h3><table><thead><tr><th scope="col">Asset</th><th scope="col">Source</th><th scope="col" class="num">Mark (USD)</th><th scope="col">At</th></tr></thead>
      <tbody>${marks || '<tr><td colspan="4" class="muted">No marks yet.</td></tr>'}</tbody></table>
      <h3>Trades per exchange batch</h3><table><thead><tr><th scope="col">Exchange batch</th><th scope="col" class="num">Venue feed</th><th scope="col" class="num">Batch report</th><th scope="col" class="num">clearlane</th></tr></thead>
      <tbody>${counts || '<tr><td colspan="4" class="muted">No exchange batch reported by the venue or a batch report yet.</td></tr>'}</tbody></table>
      <p class="hint">Base layer: tip ${num(v.base_layer.tip_height)} since ${v.base_layer.tip_since_ms ? t(v.base_layer.tip_since_ms) : "—"} (stale after ${secs(v.base_layer.heartbeat_ms / 1000)} while work waits).</p>
      <h2>Trust per source</h2><p class="hint">availability × freshness × agreement × completeness; hover a score for its parts.</p>
      <table id="trust"><thead><tr><th scope="col">Source</th><th scope="col">1 h</th><th scope="col">24 h</th></tr></thead>
      <tbody>${trust || '<tr><td colspan="3" class="muted">No source sampled yet.</td></tr>'}</tbody></table>`;
  },
};
