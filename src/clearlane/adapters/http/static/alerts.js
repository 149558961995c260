"use strict";
// The alerts page (docs/MONITORING.md "Alerts"): loaded after app.js, whose helpers and page
// registry it uses. Open, acknowledged, snoozed and silenced alerts with their age; acknowledge
// (note + TTL), snooze, resolve and silence forms, which need an operator key (an auditor key
// reads only: the API answers 403 and the form says so); the silences with an expire button.
const ALERT_STATUSES = ["open", "acknowledged", "snoozed", "silenced"];
const TTLS = [["1h", 3600000], ["4h", 14400000], ["24h", 86400000], ["7d", 604800000]];
const ALERT_SEV = { critical: "unwound", high: "rejected", medium: "pending", low: "neutral" };

function age(ms) {
  const m = Math.floor(ms / 60000);
  if (m < 60) return `${m} min`;
  if (m < 1440) return `${Math.floor(m / 60)} h ${m % 60} min`;
  return `${Math.floor(m / 1440)} d ${Math.floor((m % 1440) / 60)} h`;
}
async function alertSend(method, path, body) {
  const res = await fetch(path, { method, headers: authHeaders({ "Content-Type": "application/json", Accept: "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const why = res.status === 403 ? "this needs an operator key" : (data.detail || data.title || res.statusText);
    throw new Error(`${why} (HTTP ${res.status})`);
  }
  return data;
}
const ttlSelect = (name) => `<select name="${name}">${TTLS.map(([l, ms], i) => `<option value="${ms}"${i === 1 ? " selected" : ""}>${l}</option>`).join("")}</select>`;
const labelText = (labels) => Object.entries(labels).filter(([k]) => k !== "alertname" && k !== "severity")
  .map(([k, v]) => `<code>${esc(k)}=${esc(v)}</code>`).join(" ");
const alertStatus = (s) => `<span class="state s-${s === "open" ? "open" : "neutral"} alert-${esc(s)}">${esc(s)}</span>`;

function alertRow(a) {
  const until = a.status === "acknowledged" ? `until ${t(a.ack_until_ms)}` : a.status === "snoozed" ? `until ${t(a.snoozed_until_ms)}` : "";
  return `<tr data-alert="${esc(a.alert_id)}"><th scope="row"><a href="#/alerts/${encodeURIComponent(a.alert_id)}">${esc(a.rule)}</a></th>
    <td>${alertStatus(a.status)} <span class="muted">${until}</span></td><td><span class="state s-${ALERT_SEV[a.severity] || "neutral"}">${esc(a.severity)}</span></td>
    <td class="num">${age(a.age_ms)}</td><td>${labelText(a.labels)}</td><td>${esc(a.summary)}</td><td class="num">${num(a.occurrences)}</td></tr>`;
}
function silenceForm() {
  return `<form class="filters" id="silence-form"><label>Matchers<input name="matchers" size="40" required placeholder='alertname=EngineAlert, pool=~fast.*'></label>
    <label>For ${ttlSelect("ttl")}</label><label>Comment<input name="comment" size="28" required></label>
    <button type="submit">Silence</button><span class="hint" id="silence-msg" role="status"></span></form>`;
}
function silenceRows(items) {
  return items.map((s) => `<tr data-silence="${esc(s.id)}"><th scope="row" class="mono">${esc(s.id)}</th><td>${esc(s.status.state)}</td>
    <td>${s.matchers.map((m) => `<code>${esc(m.name)}${m.isRegex ? (m.isEqual ? "=~" : "!~") : (m.isEqual ? "=" : "!=")}${esc(m.value)}</code>`).join(" ")}</td>
    <td>${t(s.starts_at_ms)} – ${t(s.ends_at_ms)}</td><td>${esc(s.createdBy)}</td><td>${esc(s.comment)}</td>
    <td>${s.status.state === "expired" ? "" : `<button type="button" class="expire" data-id="${esc(s.id)}">Expire</button>`}</td></tr>`).join("");
}
// "name=value, name!=value, name=~regex, name!~regex" -> Alertmanager matchers
function parseMatchers(text) {
  return text.split(",").map((x) => x.trim()).filter(Boolean).map((x) => {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)(.*)$/.exec(x);
    if (!m) throw new Error(`matcher ${x}: name=value, name!=value, name=~regex or name!~regex`);
    return { name: m[1], value: m[3].trim(), isRegex: m[2].includes("~"), isEqual: m[2][0] === "=" };
  });
}
function renderAlertList(d) {
  const counts = ALERT_STATUSES.map((s) => kpi(s, num(d.alerts.counts[s]), s === "open" ? "need someone" : s === "acknowledged" ? "someone is on it" : s === "snoozed" ? "back later" : "muted by a silence", "alerts-" + s)).join("");
  const rows = d.alerts.items.map(alertRow).join("");
  return `<h1>Alerts</h1><div class="kpis">${counts}</div>
    <table id="alerts-table"><thead><tr><th scope="col">Alert</th><th scope="col">Status</th><th scope="col">Severity</th><th scope="col" class="num">Age</th>
    <th scope="col">Labels</th><th scope="col">Summary</th><th scope="col" class="num">Seen</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="7" class="muted">No active alerts.</td></tr>'}</tbody></table>
    <h2>Silences</h2><div class="panel">${silenceForm()}</div>
    <table id="silences-table"><thead><tr><th scope="col">Silence</th><th scope="col">State</th><th scope="col">Matchers</th><th scope="col">Window</th>
    <th scope="col">By</th><th scope="col">Comment</th><th scope="col"></th></tr></thead>
    <tbody>${silenceRows(d.silences.items) || '<tr><td colspan="7" class="muted">No silences.</td></tr>'}</tbody></table>`;
}
function renderAlert(a) {
  const trail = a.events.map((e) => `<tr><td>${t(e.at_ms, true)}</td><td>${esc(e.action)}</td><td>${esc(e.actor)}</td><td>${esc(e.note || "")}</td>
    <td class="mono">${esc(e.detail || "")}</td><td>${short(e.hash)}</td></tr>`).join("");
  const active = a.status !== "resolved";
  const forms = active ? `<div class="panel" id="alert-actions">
    <form class="filters" data-action="acknowledge"><label>Note<input name="note" size="30" required></label><label>Ack for ${ttlSelect("ttl_ms")}</label><button type="submit">Acknowledge</button></form>
    <form class="filters" data-action="snooze"><label>Snooze for ${ttlSelect("ttl_ms")}</label><button type="submit">Snooze</button></form>
    <form class="filters" data-action="resolve"><label>Note<input name="note" size="30" required></label><button type="submit">Resolve</button></form>
    <p class="hint" id="alert-msg" role="status"></p></div>` : "";
  return `<h1>Alert <span class="mono">${esc(a.rule)}</span> ${alertStatus(a.status)}</h1>
    <div class="panel"><dl class="facts"><dt>Summary</dt><dd>${esc(a.summary)}</dd><dt>Labels</dt><dd>${labelText(a.labels)}</dd>
    <dt>Severity</dt><dd>${esc(a.severity)}</dd><dt>Age</dt><dd id="alert-age">${age(a.age_ms)}</dd><dt>Opened</dt><dd>${t(a.opened_at_ms, true)}</dd>
    ${a.ack_until_ms ? `<dt>Ack lapses</dt><dd>${t(a.ack_until_ms, true)}</dd>` : ""}${a.snoozed_until_ms ? `<dt>Snoozed until</dt><dd>${t(a.snoozed_until_ms, true)}</dd>` : ""}
    ${a.silenced_by.length ? `<dt>Silenced by</dt><dd class="mono">${a.silenced_by.map(esc).join(", ")}</dd>` : ""}<dt>Seen</dt><dd>${num(a.occurrences)} times</dd></dl></div>
    ${forms}<h2>Trail</h2><table id="alert-trail"><thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">Who</th><th scope="col">Note</th>
    <th scope="col">Detail</th><th scope="col">Hash</th></tr></thead><tbody>${trail}</tbody></table>
    <p><a href="#/alerts">← all alerts</a></p>`;
}
function onAlertForms(p) {
  const refresh = () => { state.editing = false; show(true); };
  const view = document.getElementById("view");
  view.querySelectorAll("#alert-actions form").forEach((f) => f.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { action: f.dataset.action, ...Object.fromEntries(new FormData(f)) };
    if (body.ttl_ms) body.ttl_ms = Number(body.ttl_ms);
    try { await alertSend("POST", `/v1/alerts/${encodeURIComponent(p.id)}/actions`, body); refresh(); }
    catch (err) { document.getElementById("alert-msg").textContent = "✖ " + err.message; }
  }));
  const sf = document.getElementById("silence-form");
  if (sf) sf.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fd = new FormData(sf);
    try {
      await alertSend("POST", "/v1/alerts/silences", { matchers: parseMatchers(fd.get("matchers")), ttl_ms: Number(fd.get("ttl")), comment: fd.get("comment") });
      refresh();
    } catch (err) { document.getElementById("silence-msg").textContent = "✖ " + err.message; }
  });
  view.querySelectorAll("button.expire").forEach((b) => b.addEventListener("click", async () => {
    try { await alertSend("DELETE", `/v1/alerts/silences/${encodeURIComponent(b.dataset.id)}`); refresh(); }
    catch (err) { document.getElementById("silence-msg").textContent = "✖ " + err.message; }
  }));
}
pages.alerts = {
  title: "Alerts",
  async load(p) {
    if (p.id) return { alert: await get("/v1/alerts/" + encodeURIComponent(p.id)) };
    const [alerts, silences] = await Promise.all([get("/v1/alerts"), get("/v1/alerts/silences")]);
    return { alerts, silences };
  },
  live() { return true; },
  minInterval: 3000,
  render(d) { return d.alert ? renderAlert(d.alert) : renderAlertList(d); },
  after(d, p) { onAlertForms(p); },
};
