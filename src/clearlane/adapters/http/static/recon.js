"use strict";
// The reconciliation pages (docs/RECONCILIATION.md): runs and the latest run's breaks, the
// exception queue with its ageing buckets and SLA (overdue rows highlighted), and one case with
// its hash-chained trail and the operator's actions. Loaded after app.js (its helpers, `pages`).
const BUCKETS = ["0-1d", "1-3d", "3-7d", "7-30d", ">30d"];
const CASE_STATES = ["active", "open", "assigned", "in_review", "snoozed", "resolved", "accepted", "closed"];
const SEVERITY_SYM = { critical: "✖", high: "▲", medium: "◆", low: "•" };
// Which actions each case state allows (core/cases/workflow.py's table): the form offers only these.
const ACTIONS = {
  open: ["assign", "acknowledge", "snooze", "note", "resolve", "accept"],
  assigned: ["assign", "acknowledge", "snooze", "note", "resolve", "accept"],
  in_review: ["assign", "snooze", "note", "resolve", "accept"],
  snoozed: ["assign", "unsnooze", "note", "resolve", "accept"],
  resolved: ["note", "reopen"],
  accepted: ["note", "reopen"],
};
const NOTE_REQUIRED = new Set(["note", "resolve", "accept", "reopen"]);
const RESOLUTIONS = ["fixed_by_booking", "duplicate", "false_positive", "written_off"];

const severity = (s) => `<span class="sev-${esc(s)}" title="severity ${esc(s)}"><span aria-hidden="true">${SEVERITY_SYM[s] || "•"}</span> ${esc(s)}</span>`;
const money = (amt, asset) => (amt === null || amt === undefined ? '<span class="muted">—</span>' : `<span class="num">${esc(amt)} ${esc(asset || "")}</span>`);
function dueText(c) {
  if (c.due_in_ms === null || c.due_in_ms === undefined) return '<span class="muted">closed</span>';
  const hours = Math.round(Math.abs(c.due_in_ms) / 3_600_000);
  return c.overdue ? `<strong class="overdue-text">overdue by ${hours} h</strong>` : `due in ${hours} h`;
}
async function reconPost(path, body) {
  const res = await fetch(path, { method: "POST", headers: authHeaders({ "Content-Type": "application/json", Accept: "application/json" }), body: JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) { const err = new Error(data.detail || res.statusText); err.status = res.status; throw err; }
  return data;
}
// A run's breaks, or nothing before the first run (404).
async function breaksOf(run) {
  try { return await get(run ? `/v1/recon/runs/${encodeURIComponent(run)}/breaks?limit=1000` : "/v1/recon/breaks?limit=1000"); } catch (e) { if (e.status === 404) return null; throw e; }
}

pages.recon = {
  title: "Reconciliation",
  async load(p) {
    const [runs, breaks, queue, statements] = await Promise.all([get("/v1/recon/runs?limit=50"), breaksOf(p.run), get("/v1/cases?state=active&limit=1"), get("/v1/recon/statements?limit=20")]);
    return { runs, breaks, queue, statements };
  },
  live() { return true; },
  minInterval: 3000,
  render({ runs, breaks, queue, statements }) {
    const s = queue.summary;
    const runRows = runs.items.map((r) => `<tr><th scope="row"><a class="mono" href="#/recon${qs({ run: r.run_id })}">${esc(r.run_id)}</a></th><td>${esc(r.period)}</td>
      <td>${chip(r.status === "completed" ? "final" : "pending", r.status)} ${esc(r.status)}</td><td>${t(r.at_ms, true)}</td><td class="num">${num(r.counts.matched || 0)}</td>
      <td class="num">${num(r.breaks)}</td><td>${esc(r.rules_version)}</td></tr>`).join("");
    const breakRows = breaks ? breaks.items.map((b) => `<tr><td>${esc(b.side)}</td><td class="mono">${esc(b.record_id)}</td><td>${esc(b.outcome)}</td>
      <td><code>${esc(b.reason_code)}</code> ${esc(b.reason)}</td><td>${money(b.amount, b.asset)}</td><td class="mono">${esc(b.reference || "—")}</td><td>${b.at_ms !== undefined ? t(b.at_ms, true) : "—"}</td></tr>`).join("") : "";
    const stmtRows = statements.items.map((i) => `<tr><td class="mono">${esc(i.identity_key || i.file_name)}</td><td>${esc(i.format)}</td><td>${esc(i.period)}</td>
      <td class="num">${num(i.records)}</td><td>${i.balanced ? "✔ balances" : `<span class="overdue-text">✖ gap ${esc(i.balance_gap_minor)}</span>`}</td></tr>`).join("");
    return `<h1>Reconciliation</h1>
      <div class="kpis">${kpi("Open exceptions", num(s.active), `<a href="#/exceptions">the queue</a>`, "kpi-exceptions")}
        ${kpi("Overdue", num(s.overdue), "past their SLA", "kpi-overdue")}${kpi("Runs", num(runs.total), runs.items[0] ? `latest ${esc(runs.items[0].status)}` : "none yet", "kpi-runs")}</div>
      <h2>Runs</h2><div class="table-wrap"><table id="runs"><thead><tr><th scope="col">Run</th><th scope="col">Period</th><th scope="col">Status</th><th scope="col">At</th>
        <th scope="col" class="num">Matched</th><th scope="col" class="num">Breaks</th><th scope="col">Rules</th></tr></thead>
        <tbody>${runRows || '<tr><td colspan="7" class="muted">No run yet: clearlane recon run, or POST /v1/recon/runs.</td></tr>'}</tbody></table></div>
      <h2>Breaks${breaks ? ` of <span class="mono">${esc(breaks.run.run_id)}</span> (${num(breaks.total)})` : ""}</h2>
      <div class="table-wrap"><table id="breaks"><thead><tr><th scope="col">Side</th><th scope="col">Record</th><th scope="col">Outcome</th><th scope="col">Reason</th>
        <th scope="col">Amount</th><th scope="col">Reference</th><th scope="col">At</th></tr></thead>
        <tbody>${breakRows || '<tr><td colspan="7" class="muted">✔ No breaks.</td></tr>'}</tbody></table></div>
      <h2>Imported statements</h2><div class="table-wrap"><table><thead><tr><th scope="col">Statement</th><th scope="col">Format</th><th scope="col">Period</th>
        <th scope="col" class="num">Lines</th><th scope="col">Balances</th></tr></thead><tbody>${stmtRows || '<tr><td colspan="5" class="muted">None.</td></tr>'}</tbody></table></div>`;
  },
};

pages.exceptions = {
  title: "Exceptions",
  async load(p) { return get("/v1/cases" + qs({ kind: p.kind || "exception", state: p.state || "active", ageing: p.ageing, severity: p.severity, overdue: p.overdue, limit: 1000 })); },
  live() { return true; },
  minInterval: 3000,
  render(d, p) {
    const base = { kind: p.kind, state: p.state, severity: p.severity };
    const max = Math.max(1, ...BUCKETS.map((b) => d.summary.ageing[b]));
    const buckets = BUCKETS.map((b) => `<a class="bucket${p.ageing === b ? " active" : ""}" href="#/exceptions${qs({ ...base, ageing: p.ageing === b ? "" : b })}" data-bucket="${esc(b)}">
      <span class="bucket-bar" style="height:${(100 * d.summary.ageing[b] / max).toFixed(0)}%"></span><span class="bucket-n">${num(d.summary.ageing[b])}</span><span class="bucket-l">${esc(b)}</span></a>`).join("");
    const tabs = CASE_STATES.map((x) => `<a class="${(p.state || "active") === x ? "button" : ""}" href="#/exceptions${qs({ ...base, state: x })}">${x}</a>`).join(" ");
    const rows = d.items.map((c) => `<tr class="${c.overdue ? "overdue" : ""}" data-case="${esc(c.case_id)}"><th scope="row"><a class="mono" href="#/case/${encodeURIComponent(c.case_id)}">${esc(c.case_id)}</a></th>
      <td>${chip(c.state)}</td><td>${severity(c.severity)}</td><td><code>${esc(c.reason_code)}</code> ${esc(c.reason)}</td><td class="mono">${esc(c.subject)}</td>
      <td>${money(c.amount, c.asset)}</td><td>${esc(c.owner || "—")}</td><td>${esc(c.ageing)}</td><td>${dueText(c)}</td><td class="num">${num(c.occurrences)}</td></tr>`).join("");
    return `<h1>Exceptions</h1>
      <div class="panel"><div class="buckets" role="group" aria-label="Active cases by age">${buckets}</div>
        <p class="hint">${num(d.summary.active)} active · <a href="#/exceptions${qs({ ...base, overdue: p.overdue ? "" : "true" })}">${num(d.summary.overdue)} overdue</a> (past the SLA: critical 24 h, high 72 h, medium 120 h, low 168 h)</p></div>
      <div class="pager">${tabs}<span class="hint">${num(d.total)} cases</span></div>
      <div class="table-wrap"><table id="queue"><thead><tr><th scope="col">Case</th><th scope="col">State</th><th scope="col">Severity</th><th scope="col">Reason</th><th scope="col">Subject</th>
        <th scope="col">Amount</th><th scope="col">Owner</th><th scope="col">Age</th><th scope="col">SLA</th><th scope="col" class="num">Seen</th></tr></thead>
        <tbody>${rows || '<tr><td colspan="10" class="muted">✔ No cases.</td></tr>'}</tbody></table></div>`;
  },
};

pages.case = {
  title: "Case",
  async load(p) { return get("/v1/cases/" + encodeURIComponent(p.id)); },
  live() { return !state.editing; },
  minInterval: 3000,
  render(d) {
    const c = d.case;
    const trail = d.events.map((e) => `<tr><td class="num">${e.version}</td><td>${esc(e.action)}</td><td>${esc(e.prev_state || "—")} → ${esc(e.new_state)}</td>
      <td>${esc(e.actor)}</td><td>${t(e.at_ms, true)}</td><td>${esc(e.note || "")}</td><td>${esc(e.detail || "")}</td><td>${short(e.hash)}</td></tr>`).join("");
    const options = (ACTIONS[c.state] || []).map((a) => `<option value="${a}">${a}</option>`).join("");
    return `<h1>Case <span class="mono">${esc(c.case_id)}</span> ${chip(c.state)}</h1>
      <div class="panel${c.overdue ? " overdue" : ""}"><dl class="facts"><dt>Kind / rule</dt><dd>${esc(c.kind)} · ${esc(c.rule)}</dd><dt>Reason</dt><dd><code>${esc(c.reason_code)}</code> ${esc(c.reason)}</dd>
        <dt>Subject</dt><dd class="mono">${esc(c.subject)}</dd><dt>Amount</dt><dd>${money(c.amount, c.asset)}</dd><dt>Severity</dt><dd>${severity(c.severity)}</dd>
        <dt>Owner</dt><dd>${esc(c.owner || "—")}</dd><dt>Period</dt><dd>${esc(c.period)}</dd><dt>Opened</dt><dd>${t(c.opened_at_ms, true)} (${esc(c.ageing)})</dd>
        <dt>SLA</dt><dd>${t(c.due_at_ms, true)} — ${dueText(c)}</dd><dt>Seen</dt><dd>${num(c.occurrences)} time(s)</dd>
        <dt>Resolution</dt><dd>${esc(c.resolution || "—")}</dd><dt>Version</dt><dd>${c.version}</dd></dl></div>
      <h2>Act</h2><div class="panel"><form class="filters" id="case-action">
        <label>Action<select name="action">${options}</select></label><label>Owner<input name="owner" size="14" placeholder="for assign"></label>
        <label>Note<input name="note" size="32" placeholder="required to resolve, accept, reopen"></label>
        <label>Until<input name="until" type="datetime-local" title="for snooze"></label>
        <label>Resolution<select name="resolution"><option value="">default</option>${RESOLUTIONS.map((r) => `<option>${r}</option>`).join("")}</select></label>
        <button type="submit">Apply</button></form><p id="case-result" class="hint" role="status">Needs an operator key; a changed case is refused (version ${c.version}).</p></div>
      <h2>Trail ${d.chain_ok ? '<span class="state s-final">✔ hash chain verifies</span>' : '<span class="state s-rejected">✖ hash chain broken</span>'}</h2>
      <div class="table-wrap"><table id="trail"><thead><tr><th scope="col" class="num">v</th><th scope="col">Action</th><th scope="col">State</th><th scope="col">Actor</th>
        <th scope="col">At</th><th scope="col">Note</th><th scope="col">Detail</th><th scope="col">Hash</th></tr></thead><tbody>${trail}</tbody></table></div>`;
  },
  after(d) {
    const form = document.getElementById("case-action");
    if (!form) return;
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = new FormData(form);
      const action = f.get("action");
      const body = { action, expected_version: d.case.version };
      for (const k of ["owner", "note", "resolution"]) if (f.get(k)) body[k] = f.get(k);
      if (f.get("until")) body.until = new Date(f.get("until")).toISOString();
      const out = document.getElementById("case-result");
      if (NOTE_REQUIRED.has(action) && !body.note) { out.innerHTML = '<span class="error" role="alert">✖ note: required</span>'; return; }
      try {
        await reconPost(`/v1/cases/${encodeURIComponent(d.case.case_id)}/actions`, body);
        state.editing = false;
        show(true);
      } catch (err) {
        out.innerHTML = `<span class="error" role="alert">✖ ${esc(err.message)}${err.status ? ` (HTTP ${err.status})` : ""}</span>`;
      }
    });
  },
};
