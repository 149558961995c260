"use strict";
// The participant portal and the finality explainer (docs/FINALITY.md): loaded after app.js,
// whose helpers and page registry they use. A participant key opens #/portal (its own account:
// every figure comes from routes scoped to that key's participant); an operator or auditor opens
// #/portal/ID to see exactly what that client sees. #/finality is linked from every badge.

// A latency in ms as words ("0.8 s", "12.6 min"); null stays a dash.
const lat = (ms) => secs(secsMs(ms));

function savingsPanel(s, legacy) {
  if (legacy) {
    return `<p>You settle on Layer-1 only (legacy opt-out): each of your ${num(s.l1_trades)} trades is its own gross base-layer transaction, final after the Layer-1 confirmations — nothing to compare. <a href="#/finality">What Layer-2 would change →</a></p>`;
  }
  if (!s.l2_trades_cleared) {
    return `<p class="muted">No Layer-2 trade of yours has cleared yet${s.l1_trades ? ` (${num(s.l1_trades)} settled gross on Layer-1)` : ""}.</p>`;
  }
  const basis = s.l1_final_basis === "measured" ? "measured live on this service" : "expected from the configured confirmations (no gross trade final yet)";
  return `<p id="savings-sentence">Your <b>${num(s.l2_trades_cleared)}</b> Layer-2 trades cleared (soft-final) a median <b>${lat(s.own_cleared_p50_ms)}</b> after receipt
    and were final on the base layer a median <b>${lat(s.own_final_p50_ms)}</b> after receipt.
    Settled gross on Layer-1 they would have waited a median <b>${lat(s.l1_final_p50_ms)}</b> for finality (${basis}):
    <b>${lat(s.saved_per_trade_p50_ms)}</b> sooner per trade, <b>${secs(s.saved_total_s)}</b> of waiting avoided in all.</p>
    <p class="hint">Over your newest ${num(s.scanned_records)} records or fewer. <a href="#/finality">What soft-final and final promise →</a></p>`;
}

function statementRows(items) {
  return items.map((i) => `<tr><td>${link.batch(i.batch_id)}</td><td>${chip(i.batch_state)}</td><td>${esc(i.asset)}</td>
    <td>${i.direction === "pay" ? '<span class="state s-pending"><span class="sym" aria-hidden="true">↑</span>pays</span>'
      : '<span class="state s-final"><span class="sym" aria-hidden="true">↓</span>receives</span>'}</td>
    <td class="num">${amount(dec(i.net, i.asset))}</td></tr>`).join("");
}

function escrowRows(items, pid) {
  return items.map((e) => {
    const role = Object.entries(e.parties).filter(([, who]) => who === pid).map(([r]) => r).join(", ");
    return `<tr><td><a href="#/escrow/${encodeURIComponent(e.escrow_id)}" class="mono">${esc(e.escrow_id)}</a></td><td>${chip(e.state)}</td>
      <td>${esc(role)}</td><td class="num">${amount(fmtMinor(e.amount_minor, e.asset))}</td></tr>`;
  }).join("");
}

// A table's figures as a CSV file, from the data the page already holds (amounts as the
// server's decimal strings: never re-computed).
function csvDownload(name, header, rows) {
  const cell = (v) => { const t = String(v ?? ""); return /[",\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t; };
  const text = [header, ...rows].map((r) => r.map(cell).join(",")).join("\n") + "\n";
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const a = document.createElement("a");
  a.href = url; a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const portalSlow = { pid: null, at: 0, data: null };
pages.portal = {
  title: "My account",
  async load(p) {
    const pid = (state.me && state.me.participant) || p.id;
    if (!pid) return { pick: true };
    const who = { participant: pid };
    // Statements and escrows (a scan of recent batches' instructions, the escrow list) change
    // slowly: a live refresh reuses them for 10 s instead of reading them every 2 s.
    const kept = portalSlow.pid === pid && performance.now() - portalSlow.at < 10_000 ? portalSlow.data : null;
    const [acct, trades, statements, escrows] = await Promise.all([
      get(API + "/portal" + qs(who)),
      get(API + "/trades" + qs({ ...who, limit: 10 })),
      kept ? kept[0] : get("/v1/net-instructions" + qs({ ...who, limit: 20 })),
      kept ? kept[1] : get("/v1/escrows" + qs({ limit: 1000 })),
    ]);
    if (!kept) Object.assign(portalSlow, { pid, at: performance.now(), data: [statements, escrows] });
    // A reader's escrow list holds everybody's: keep the ones this participant is party to.
    const mine = escrows.items.filter((e) => Object.values(e.parties).includes(pid));
    return { acct, trades: trades.items, statements: statements.items, escrows: mine, pid };
  },
  render(d) {
    if (d.pick) {
      return `<h1>Participant portal</h1><div class="panel"><p>Open a participant's portal — what that client sees with its own key:</p>
        <form class="filters" id="portal-pick"><label>Participant id<input name="id" required autocomplete="off" placeholder="e.g. MM-0001"></label><button type="submit">Open</button></form></div>`;
    }
    const a = d.acct;
    const rows = a.positions.map((x) => positionRow(x, x.lane.startsWith("L2:") ? "L2 " + x.lane.slice(3) : x.lane,
      fmtMinor(BigInt(x.open_minor) + BigInt(x.pending_minor), x.asset))).join("");
    const finalUsd = a.positions.reduce((s, x) => s + (x.final_usd || 0), 0);
    const pendingUsd = a.positions.reduce((s, x) => s + (x.pending_usd || 0), 0);
    const balances = a.balances.map((b) => `<tr><td>${esc(b.asset)}</td><td class="num">${amount(dec(b.available, b.asset))}</td>
      <td class="num">${amount(dec(b.collateral, b.asset))}</td><td class="num opt">${amount(dec(b.in_flight, b.asset))}</td><td class="num opt">${amount(dec(b.held, b.asset))}</td></tr>`).join("");
    const rej = a.recent_rejects.map((r) => `<tr><td class="mono">${esc(r.id || "—")}</td><td>${chip("rejected", r.reason)} <code>${esc(r.error)}</code></td><td>${esc(r.field || "—")}</td><td>${t(r.at_ms)}</td></tr>`).join("");
    const s = a.savings;
    const reader = !(state.me && state.me.participant);
    return `<h1>${reader ? `Portal of ${esc(a.id)} <span class="muted">as the client sees it</span>` : `My account <span class="muted">${esc(a.id)}</span>`}</h1>
      <p class="muted">${esc(a.kind)}${a.legacy_opt_out ? " · legacy opt-out: every trade settles gross on Layer-1 (<a href=\"#/finality\">the manual path</a>)" : ""} · figures as of ${tz(a.as_of_ms)}</p>
      <div class="kpis">${kpi("Buffer required", usd(a.buffer_required_usd, 2), "projected Layer-2 net debit of open batches", "kpi-required")}
        ${kpi("Buffer available", usd(a.buffer_available_usd), `collateral ${usd(a.collateral_usd)} + credit ${usd(a.credit_limit_usd)}`, "kpi-available")}
        ${kpi("Credit used", pct(a.credit_usage), usd(a.credit_used_usd, 2) + " of " + usd(a.credit_limit_usd), "kpi-credit")}
        ${kpi("Time to soft-final", lat(s.own_cleared_p50_ms), "your L2 trades, median", "kpi-soft")}
        ${kpi("Saved per trade", lat(s.saved_per_trade_p50_ms), `vs gross Layer-1 final (${lat(s.l1_final_p50_ms)})`, "kpi-saved")}
        ${kpi("Positions", usd(finalUsd), `settled · ${usd(pendingUsd)} pending, at marks`, "kpi-positions")}</div>
      <div class="panel">${bufferBar(a.utilisation)}</div>
      <h2>Realized settlement-latency savings</h2><div class="panel" id="portal-savings">${savingsPanel(s, a.legacy_opt_out)}</div>
      <h2>Positions per lane <span class="hint">(in the asset and ≈ USD at current marks)</span></h2>${positionTable(rows)}
      <h2>Balances</h2><div class="table-wrap"><table id="portal-balances"><thead><tr><th>Asset</th><th class="num">Available</th><th class="num">Collateral</th><th class="num opt">In flight</th><th class="num opt">Held for pending batches</th></tr></thead>
        <tbody>${balances || '<tr><td colspan="5" class="muted">None.</td></tr>'}</tbody></table></div>
      <h2>Recent trades <span class="hint"><a href="#/trades${reader ? qs({ participant: a.id }) : ""}">all →</a></span></h2>
      <div class="table-wrap"><table id="portal-trades"><thead>${tradeHead(true)}</thead><tbody>${d.trades.map((r) => tradeRow(r, true)).join("") || '<tr><td colspan="12" class="muted">No trades yet.</td></tr>'}</tbody></table></div>
      <h2>Settlement statements <span class="hint">(net per batch and asset: what you pay into or receive from each Layer-2 batch)</span>
        <button type="button" class="button" id="statements-csv">⬇ CSV</button></h2>
      <div class="table-wrap"><table id="portal-statements"><thead><tr><th>Batch</th><th>Batch state</th><th>Asset</th><th>Direction</th><th class="num">Net amount</th></tr></thead>
        <tbody>${statementRows(d.statements) || '<tr><td colspan="5" class="muted">No cleared batch holds your trades yet.</td></tr>'}</tbody></table></div>
      <h2>Escrows you are party to</h2><div class="table-wrap"><table id="portal-escrows"><thead><tr><th>Escrow</th><th>State</th><th>Your role</th><th class="num">Amount</th></tr></thead>
        <tbody>${escrowRows(d.escrows, d.pid) || '<tr><td colspan="4" class="muted">None.</td></tr>'}</tbody></table></div>
      <h2>Recent rejects</h2><div class="table-wrap"><table><tbody>${rej || '<tr><td class="muted">✔ None.</td></tr>'}</tbody></table></div>`;
  },
  after(d) {
    const form = document.getElementById("portal-pick");
    if (form) form.addEventListener("submit", (e) => { e.preventDefault(); go("#/portal/" + encodeURIComponent(new FormData(form).get("id").trim())); });
    const csv = document.getElementById("statements-csv");
    if (csv) {
      csv.addEventListener("click", () => csvDownload(`statements-${d.pid}.csv`, ["batch_id", "pool", "batch_state", "participant", "asset", "direction", "net"],
        d.statements.map((i) => [i.batch_id, i.pool, i.batch_state, i.participant, i.asset, i.direction, i.net])));
    }
  },
  live(p, d) { return d && !d.pick; },
  minInterval: 2000,
};

pages.finality = {
  title: "Finality",
  async load() { return get(API + "/finality"); },
  render(f) {
    const m = state.meta || {};
    const rows = f.lanes.map((l) => `<tr data-lane="${esc(l.pool || "L1")}"><th scope="row">${l.lane === "L1" ? "Layer-1 (gross)" : "Layer-2 pool " + esc(l.pool)}<div class="hint">${esc(l.description || "")}</div></th>
      <td class="num">${l.cleared ? lat(l.cleared.p50_ms) : '<span class="muted">n/a</span>'}</td><td class="num opt">${l.cleared ? lat(l.cleared.p99_ms) : '<span class="muted">n/a</span>'}</td>
      <td class="num">${lat(l.final.p50_ms)}</td><td class="num opt">${lat(l.final.p99_ms)}</td>
      <td class="opt">${l.lane === "L1" ? `${num(l.confirmations)} confirmations` : `window ${lat(l.window_ms)} · ${num(l.confirmations)} confirmations${l.challenge_window_ms ? ` · challenge ${lat(l.challenge_window_ms)}` : ""}`}</td>
      ${"n" in l.final ? `<td class="num opt">${num(l.final.n)}</td>` : ""}</tr>`).join("");
    const counts = f.lanes.length && "n" in f.lanes[0].final;
    return `<h1>Finality: what "cleared" and "final" promise</h1>
      <div class="grid2"><div class="panel"><h2 style="margin-top:0">${chip("cleared")} Soft-final — cleared on Layer-2</h2>
        <p>Your trade was netted with the rest of its batch and the batch was committed by the clearing engine: the engine will not change or reorder it, and it holds your net obligation against your buffer.
        It is <b>not yet final on the base layer</b>: if the batch's anchor never reaches the base layer by its deadline, the batch is <b>unwound</b> and each of its trades settles gross on Layer-1 instead (the badge then says so, and the cleared time is shown voided).</p></div>
      <div class="panel"><h2 style="margin-top:0">${chip("final")} Final — on the base layer</h2>
        <p>For a Layer-2 trade: the batch's Merkle root is anchored in a base-layer block with the pool's confirmations (and its challenge window, if any, has passed); its inclusion proof verifies offline.
        For a Layer-1 trade: its own gross transaction has the configured confirmations. Final does not change.</p></div></div>
      <h2>Latency per lane, measured live <span class="hint">(from receipt, engine time, as of ${tz(f.as_of_ms)})</span></h2>
      <div class="table-wrap"><table id="finality-lanes"><thead><tr><th>Lane</th><th class="num">Soft-final p50</th><th class="num opt">p99</th><th class="num">Final p50</th><th class="num opt">p99</th><th class="opt">Rules</th>${counts ? '<th class="num opt">trades final</th>' : ""}</tr></thead>
        <tbody>${rows}</tbody></table></div>
      <p class="hint">Base-layer blocks every ${lat(f.block_time_ms)}${f.chain_preset ? ` (preset <code>${esc(f.chain_preset)}</code>)` : ""}; Layer-1 trades need ${num(m.l1_confirmations)} confirmations. "—" means no trade has reached that point yet.</p>
      <h2>Reading a badge</h2><div class="panel"><ul>
        <li><b>Cleared on Layer-2 — soft-final at … ; base-layer final pending</b>: soft-final, as above; the second time comes when the anchor is final.</li>
        <li><b>Settled on Layer-2 — soft-final at … ; base-layer final at …</b>: both; T+ counts from the trade's execution.</li>
        <li><b>Settled on Layer-1 — final at …</b>: gross, on its own base-layer transaction (a Layer-1 trade has no Layer-2 clearing and no batch anchor).</li>
        <li><b>Unwound from Layer-2 …</b>: the batch's clearing was voided; the trade settles (or settled) gross on Layer-1.</li>
        <li><b>Settled manually, off-system …</b>: an operator recorded, with evidence, that this Layer-1 obligation was settled outside the system (the manual path below).</li></ul>
        <p class="hint">Every time is shown with its date and your time zone; hover it for the UTC instant.</p></div>
      <h2>Opting out: the Layer-1 and manual paths</h2><div class="panel">
        <p>A participant configured with <code>legacy_opt_out</code> never uses Layer-2: each of its trades settles gross on Layer-1, one base-layer transaction each, final after the Layer-1 confirmations above.
        For customers who settle outside the system altogether, an operator records the off-system settlement of a Layer-1 obligation, with its evidence, through the ledger and the audit log (the manual settlement path; see docs/FINALITY.md).</p></div>`;
  },
  live() { return true; },
  minInterval: 5000,
};
