"use strict";
// The stress page (docs/STRESS.md): loaded after app.js, whose helpers and page registry it uses.
// #/stress lists the scenario library and the reports kept; #/stress/<report id> shows one report,
// baseline and scenario side by side. Amounts come in cents; figures are USD.
const STRESS = "/v1/stress";
const cents = (c) => (c === null || c === undefined ? "—" : usd(c / 100));
const deltaCents = (b, s) => {
  const d = s - b;
  if (!d) return '<span class="muted">±0</span>';
  return `<span class="${d > 0 ? "worse" : "better"}">${d > 0 ? "▲ +" : "▼ −"}${usd(Math.abs(d) / 100)}</span>`;
};
const STRESS_STATUS = { done: ["final", "✔"], failed: ["rejected", "✖"], running: ["batched", "◔"] };
// L1 fallback fees are in minor units of the chain's fee asset: shown in its decimals.
const feeText = (minor) => (state.meta ? amount(fmtMinor(BigInt(minor), state.meta.fee_asset)) : num(minor));
const stressStatus = (r) => { const [cls, sym] = STRESS_STATUS[r.status] || ["neutral", "•"];
  return `<span class="state s-${cls}"><span class="sym" aria-hidden="true">${sym}</span>${esc(r.status)}</span>`; };
function coverRow(name, c) {
  return `<tr><th scope="row">${esc(name)}</th><td>${c.defaulters.map((p) => link.participant(p)).join(", ") || '<span class="muted">none</span>'}</td>
    <td class="num">${cents(c.obligation_cents)}</td><td class="num">${cents(c.prefunded_cents)}</td>
    <td class="num">${c.shortfall_cents ? `<b>${cents(c.shortfall_cents)}</b>` : cents(0)}</td></tr>`;
}
function breachText(list) {
  if (!list.length) return '<span class="muted">none</span>';
  const shown = list.slice(0, 3).map((b) => `${t(b.start_ms)}–${t(b.end_ms)} (+${cents(b.peak_excess_cents)})`).join("<br>");
  return shown + (list.length > 3 ? `<br><span class="hint">+${list.length - 3} more</span>` : "");
}
function participantRows(rows) {
  return rows.map((r) => {
    const b = r.baseline, s = r.scenario;
    const pair = (k) => `<td class="num">${cents(b[k])}</td><td class="num">${cents(s[k])}<br>${deltaCents(b[k], s[k])}</td>`;
    return `<tr><th scope="row">${link.participant(r.participant)}</th>${pair("peak_intraday_liquidity_need_cents")}${pair("largest_net_debit_cents")}
      <td>${breachText(b.buffer_breaches)}</td><td>${breachText(s.buffer_breaches)}</td>${pair("margin_var_cents")}
      <td class="num">${feeText(b.l1_fallback_fees_minor)} → ${feeText(s.l1_fallback_fees_minor)}</td>
      <td class="num">${secs(b.finality_latency_max_ms / 1000)} → ${secs(s.finality_latency_max_ms / 1000)}</td></tr>`;
  }).join("");
}
function stressList(d) {
  const options = d.scenarios.items.map((s) => `<option value="${esc(s.id)}">${esc(s.id)} — ${esc(s.faults.join(", ") || "no faults")}</option>`).join("");
  const rows = d.reports.items.map((r) => `<tr><th scope="row">${r.status === "done" ? `<a class="mono" href="#/stress/${encodeURIComponent(r.report_id)}">${esc(r.report_id)}</a>` : `<span class="mono">${esc(r.report_id)}</span>`}</th>
    <td>${stressStatus(r)}${r.error ? ` <span class="error">${esc(r.error)}</span>` : r.status === "running" ? ` <span class="hint">${esc(r.phase)} · ${num(r.applied)}</span>` : ""}</td>
    <td>${esc(r.scenario)}</td><td class="num">${r.seed}</td><td class="num">${num(r.trades)}</td><td>${t(r.started_ms)}</td>
    <td>${r.summary ? `${r.summary.liveness_ok ? "✔ live" : "✖ liveness failed"} · ${num(r.summary.unwound_batches)} unwound · Cover-2 shortfall ${cents(r.summary.cover2_shortfall_cents)}` : ""}</td></tr>`).join("");
  const library = d.scenarios.items.map((s) => `<tr><th scope="row">${esc(s.id)}</th><td>${esc(s.description)}</td><td class="num">${s.seed}</td></tr>`).join("");
  return `<h1>Stress</h1>
    <div class="panel"><form class="filters" id="stress-run"><label>Scenario<select name="scenario">${options}</select></label>
      <label>Seed<input name="seed" type="number" min="0" step="1" placeholder="the scenario's"></label>
      <button type="submit">Run against the recorded day</button><span class="hint" id="stress-msg" role="status"></span></form>
      <p class="hint">Replays the service's input log as recorded now, baseline and under the scenario, on two in-memory nodes (one run at a time).</p></div>
    <h2>Reports</h2><div class="table-wrap"><table id="stress-reports"><thead><tr><th scope="col">Report</th><th scope="col">Status</th><th scope="col">Scenario</th>
      <th scope="col" class="num">Seed</th><th scope="col" class="num">Trades</th><th scope="col">Started</th><th scope="col">Outcome</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="7" class="muted">No stress run yet.</td></tr>'}</tbody></table></div>
    <h2>Scenario library</h2><table><thead><tr><th scope="col">Scenario</th><th scope="col">What</th><th scope="col" class="num">Seed</th></tr></thead><tbody>${library}</tbody></table>`;
}
function stressReport(d) {
  const r = d.report, sys = r.system;
  const faults = Object.entries(r.faults).map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td class="num">${v.configured}</td><td class="num">${v.fired ? num(v.fired) : "<b>0</b>"}</td></tr>`).join("");
  const defaults = r.defaults.map((x) => `<tr><td>${t(x.at_ms)}</td><td>${x.defaulters.map((p) => link.participant(p)).join(", ")}</td><td class="num">${cents(x.unpaid_cents)}</td>
    <td class="num">${cents(x.from_collateral_cents)}</td><td class="num">${cents(x.from_default_fund_cents)}</td><td class="num">${cents(x.from_house_cents)}</td><td class="num">${cents(x.left_short_cents)}</td></tr>`).join("");
  const live = r.liveness;
  const rows = [...r.participants].sort((a, b) => b.scenario.peak_intraday_liquidity_need_cents - a.scenario.peak_intraday_liquidity_need_cents || (a.participant < b.participant ? -1 : 1));
  return `<h1>Stress report <span class="mono">${esc(d.report_id)}</span></h1>
    <p class="hint">${esc(r.scenario.description)} — seed ${r.scenario.seed}, ${esc(r.scenario.day)}.
      Download: ${["json", "csv", "auth063", "auth063.xml"].map((k) => `<button type="button" class="link" data-export="${k}">${k}</button>`).join(" ")}</p>
    <div class="kpis">${kpi("Safety", r.safety.violations ? "✖ violated" : "✔ held", `${num(r.safety.checked_steps)} steps checked`, "kpi-safety")}
      ${kpi("Liveness", live.ok ? "✔ held" : "✖ failed", `worst ${secs(live.worst_after_faults_ms / 1000)} after faults (bound ${secs(live.bound_s)})`, "kpi-live")}
      ${kpi("Unwound batches", num(sys.unwound_batches), `${num(sys.batches.scenario)} batches`, "kpi-unwound")}
      ${kpi("Cover-2 shortfall", cents(sys.scenario.cover2.shortfall_cents), `baseline ${cents(sys.baseline.cover2.shortfall_cents)}`, "kpi-cover2")}</div>
    <h2>System liquidity need over the day <span class="hint">(sum over participants)</span></h2><div class="panel"><div id="stress-need" class="chart"></div></div>
    <h2>Cover-1 / Cover-2</h2><table id="stress-cover"><thead><tr><th scope="col"></th><th scope="col">Defaulters</th><th scope="col" class="num">Stressed obligation</th>
      <th scope="col" class="num">Prefunded</th><th scope="col" class="num">Shortfall</th></tr></thead><tbody>
      ${coverRow("Cover-1 baseline", sys.baseline.cover1)}${coverRow("Cover-1 scenario", sys.scenario.cover1)}
      ${coverRow("Cover-2 baseline", sys.baseline.cover2)}${coverRow("Cover-2 scenario", sys.scenario.cover2)}</tbody></table>
    <h2>Faults</h2><table><thead><tr><th scope="col">Fault</th><th scope="col" class="num">Configured</th><th scope="col" class="num">Fired</th></tr></thead><tbody>${faults || '<tr><td colspan="3" class="muted">None.</td></tr>'}</tbody></table>
    ${defaults ? `<h2>Defaults and the waterfall</h2><table><thead><tr><th scope="col">At</th><th scope="col">Defaulters</th><th scope="col" class="num">Unpaid</th><th scope="col" class="num">Collateral</th>
      <th scope="col" class="num">Default fund</th><th scope="col" class="num">House</th><th scope="col" class="num">Left short</th></tr></thead><tbody>${defaults}</tbody></table>` : ""}
    <h2>Peak liquidity need and margin per participant <span class="hint">(top 15 by scenario need)</span></h2><div class="panel"><div id="stress-peaks" class="chart"></div></div>
    <h2>Per participant, baseline → scenario</h2><div class="table-wrap"><table id="stress-participants"><thead><tr><th scope="col">Participant</th>
      <th scope="col" class="num">Peak need (base)</th><th scope="col" class="num">Peak need (stress)</th><th scope="col" class="num">Largest net debit (base)</th><th scope="col" class="num">(stress)</th>
      <th scope="col">Buffer breaches (base)</th><th scope="col">(stress)</th><th scope="col" class="num">Margin (base)</th><th scope="col" class="num">(stress)</th>
      <th scope="col" class="num">L1 fallback fees</th><th scope="col" class="num">Finality latency max</th></tr></thead><tbody>${participantRows(rows)}</tbody></table></div>`;
}
async function stressExport(id, kind) {
  const res = await fetch(`${STRESS}/reports/${encodeURIComponent(id)}/export/${kind}`, { headers: authHeaders() });
  if (!res.ok) throw new Error("HTTP " + res.status);
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await res.blob());
  a.download = (res.headers.get("Content-Disposition") || "").split('filename="')[1]?.replace(/"$/, "") || `${id}.${kind}`;
  document.body.appendChild(a); a.click(); a.remove();
}
pages.stress = {
  title: "Stress",
  async load(p) {
    if (p.id) return { one: await get(`${STRESS}/reports/${encodeURIComponent(p.id)}`) };
    const [scenarios, reports] = await Promise.all([get(`${STRESS}/scenarios`), get(`${STRESS}/reports`)]);
    return { scenarios, reports };
  },
  render(d) {
    if (!d.one) return stressList(d);
    if (d.one.status !== "done") return `<h1>Stress report <span class="mono">${esc(d.one.report_id)}</span></h1><p>${stressStatus(d.one)} ${esc(d.one.error || d.one.phase)}</p>`;
    return stressReport(d.one);
  },
  after(d) {
    if (!d.one) return stressForm();
    if (!d.one.report) return;
    document.querySelectorAll("[data-export]").forEach((b) => b.addEventListener("click", () => stressExport(d.one.report_id, b.dataset.export)));
    const s = d.one.series;
    plot(document.getElementById("stress-need"), ["baseline", "scenario"].map((name, i) => ({ type: "scatter", mode: "lines", name,
      x: localTimes(s[name].t_ms), y: s[name].need_cents.map((c) => c / 100), line: { color: OKABE[i], dash: DASH[i], width: 2, shape: "hv" } })),
    { yaxis: { title: { text: "USD not yet final" }, rangemode: "tozero" }, xaxis: timeAxis() });
    const top = [...d.one.report.participants].sort((a, b) => b.scenario.peak_intraday_liquidity_need_cents - a.scenario.peak_intraday_liquidity_need_cents).slice(0, 15);
    const x = top.map((r) => r.participant);
    const bar = (name, run, key, i, pattern) => ({ type: "bar", name, x, y: top.map((r) => r[run][key] / 100), marker: { color: OKABE[i], pattern: { shape: pattern } } });
    plot(document.getElementById("stress-peaks"), [bar("need, baseline", "baseline", "peak_intraday_liquidity_need_cents", 0, ""),
      bar("need, scenario", "scenario", "peak_intraday_liquidity_need_cents", 1, "/"), bar("margin, baseline", "baseline", "margin_var_cents", 2, "."),
      bar("margin, scenario", "scenario", "margin_var_cents", 3, "x")], { barmode: "group", yaxis: { title: { text: "USD" }, rangemode: "tozero" } });
  },
  live(p, d) { return !d || (d.one ? d.one.status === "running" : d.reports.items.some((r) => r.status === "running")); },
  minInterval: 2000,
};
function stressForm() {
  const form = document.getElementById("stress-run");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = { scenario: data.get("scenario") };
    if (data.get("seed") !== "") body.seed = Number(data.get("seed"));
    const msg = document.getElementById("stress-msg");
    msg.textContent = "starting…";
    const res = await fetch(`${STRESS}/runs`, { method: "POST", headers: authHeaders({ "Content-Type": "application/json", Accept: "application/json" }), body: JSON.stringify(body) });
    const out = await res.json().catch(() => ({}));
    msg.textContent = res.ok ? `started ${out.report_id}` : `✖ ${out.detail || res.statusText}`;
    state.editing = false;
    show(true);
  });
}
