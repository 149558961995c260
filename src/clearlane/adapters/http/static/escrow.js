"use strict";
// The escrow pages (docs/ESCROW.md): loaded after app.js, whose helpers and page registry they use.
// Where an escrow's money is: buyer → escrow → clearing → final, as one bar and four figures.
const MONEY = [["buyer", "with the buyer", "received"], ["escrow", "held in escrow", "anchored"], ["clearing", "clearing", "cleared"], ["final", "final", "final"]];
// Amounts come in minor units; shown as decimals in the asset's scale (fmtMinor, BigInt).
const escrowText = (minor, asset) => `${fmtMinor(minor, asset).value} ${asset}`;
function moneyBar(w, asset) {
  const total = Math.max(1, MONEY.reduce((a, [k]) => a + (w[k] || 0), 0));
  const words = MONEY.filter(([k]) => w[k]).map(([k, l]) => `${l} ${escrowText(w[k], asset)}`).join(" · ");
  return `<div class="stack" role="img" aria-label="${esc(words)}">${MONEY.filter(([k]) => w[k])
    .map(([k, l, cls]) => `<span class="b-${cls}" style="width:${(100 * w[k] / total).toFixed(2)}%" title="${l}: ${escrowText(w[k], asset)}"></span>`).join("")}</div>
    <div class="stack-words">${esc(words) || "nothing"}</div>`;
}
function deadline(e) {
  const ms = e.inspection_deadline_ms ?? e.fund_deadline_ms;
  return ms === null || ms === undefined ? '<span class="muted">—</span>' : `${e.inspection_deadline_ms !== null ? "inspection" : "funding"} by ${t(ms)}`;
}
pages.escrows = {
  title: "Escrows",
  async load(p) { return get("/v1/escrows" + qs({ state: p.state || "", limit: 1000 })); },
  live() { return true; },
  minInterval: 2000,
  render(d, p) {
    const states = ["", "draft", "agreed", "funded", "inspection", "releasable", "disputed", "released", "refunded", "cancelled", "chargeback", "closed"];
    const tabs = states.map((x) => `<a class="${(p.state || "") === x ? "button" : ""}" href="#/escrows${qs({ state: x })}">${x || "all"}</a>`).join(" ");
    const rows = d.items.map((e) => `<tr><th scope="row"><a href="#/escrow/${encodeURIComponent(e.escrow_id)}" class="mono">${esc(e.escrow_id)}</a></th>
      <td>${chip(e.state)}</td><td class="num">${amount(fmtMinor(e.amount_minor, e.asset))}</td>
      <td>${link.participant(e.parties.buyer)}</td><td>${link.participant(e.parties.seller)}</td>
      <td style="min-width:10em">${moneyBar(e.where, e.asset)}</td><td>${deadline(e)}</td></tr>`).join("");
    return `<h1>Escrows</h1><div class="pager">${tabs}<span class="hint">${num(d.total)} escrows</span></div>
      <table><thead><tr><th scope="col">Escrow</th><th scope="col">State</th><th scope="col" class="num">Amount</th>
      <th scope="col">Buyer</th><th scope="col">Seller</th><th scope="col">Buyer → escrow → clearing → final</th><th scope="col">Deadline</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="7" class="muted">No escrows.</td></tr>'}</tbody></table>`;
  },
};
pages.escrow = {
  title: "Escrow",
  async load(p) { return get("/v1/escrows/" + encodeURIComponent(p.id)); },
  live() { return true; },
  minInterval: 2000,
  render(e) {
    const conds = e.conditions.map((c) => `<tr><th scope="row">${esc(c.condition_id)}</th><td>${esc(c.kind)}</td><td>${esc(c.role)}</td>
      <td>${c.met ? `✔ met by ${esc(c.satisfied_by)} at ${t(c.satisfied_at_ms)}` : '<span class="muted">◔ not yet</span>'}</td></tr>`).join("");
    const parties = Object.entries(e.parties).map(([r, who]) => `<dt>${esc(r)}</dt><dd>${link.participant(who)}</dd>`).join("");
    const money = MONEY.map(([k, l]) => `<dt>${esc(l)}</dt><dd class="num">${amount(fmtMinor(e.where[k], e.asset))}</dd>`).join("");
    return `<h1>Escrow <span class="mono">${esc(e.escrow_id)}</span> ${chip(e.state)}</h1>
      <div class="panel">${moneyBar(e.where, e.asset)}<dl class="facts">${money}<dt>charged back</dt><dd class="num">${amount(fmtMinor(e.where.charged_back, e.asset))}</dd></dl></div>
      <div class="panel"><dl class="facts">${parties}<dt>Amount</dt><dd>${amount(fmtMinor(e.amount_minor, e.asset))}</dd>
      <dt>Fee / reserve</dt><dd>${e.fee_bps} bps / ${e.reserve_bps} bps</dd><dt>Deadline</dt><dd>${deadline(e)}</dd>
      <dt>On inspection lapse</dt><dd>${esc(e.lapse_action)}</dd>${e.dispute_reason ? `<dt>Dispute</dt><dd>${esc(e.dispute_reason)}</dd>` : ""}</dl></div>
      <h2>Conditions</h2><table><thead><tr><th scope="col">Condition</th><th scope="col">Kind</th><th scope="col">Who may meet it</th><th scope="col">Met</th></tr></thead>
      <tbody>${conds || '<tr><td colspan="4" class="muted">None: released once funded.</td></tr>'}</tbody></table>`;
  },
};
