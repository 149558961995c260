"""Layer-1 gross settlement: flows routed to L1 (or of an unwound batch) are submitted as an
L1 group, one base-layer transaction per flow; :func:`advance` follows them to finality
(``l1_confirmations``), re-submits a transaction not included by ``l1_resubmit_ms`` of observed
chain time, and posts each final row gross through the house's L1 account — in runs that fit
one ledger entry, a row the ledger still refuses becoming a failed settlement (docs/LIMITS.md).
"""

from __future__ import annotations

import numpy as np

from clearlane.core.engine import limits, outcomes
from clearlane.core.engine.flows import Flows
from clearlane.core.engine.state import I64, EngineState, L1Group
from clearlane.core.engine.step import StepBuilder
from clearlane.core.engine.wakes import NEVER, quiet
from clearlane.core.ledger import JournalEntry, PostResult
from clearlane.core.model import ids as model_ids
from clearlane.core.model.chain import TxSubmission, same_kind_submissions
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.events import L1GroupOpened

_ZERO_HASH = bytes(32)  # an L1 settlement carries no batch root


def submit(
    engine: EngineState, flows: Flows, origin: str, out: StepBuilder, submitted_ms: int | None = None
) -> str:
    """Open an L1 group of ``flows`` (``origin``: routed, or the batch they were unwound from)
    and submit one transaction per flow; its id."""
    engine.l1_group_count += 1
    group_id = model_ids.l1_group_id(engine.l1_group_count)
    n = len(flows)
    group = L1Group(
        group_id=group_id,
        origin=origin,
        flows=flows.with_(pool=np.full(n, -1, dtype=np.int32), batch_seq=np.full(n, -1, dtype=np.int64)),
        attempt=np.ones(n, dtype=np.int64),
        submitted_ms=flows.time_ms.copy()
        if submitted_ms is None
        else np.full(n, submitted_ms, dtype=np.int64),
        included_height=np.full(n, -1, dtype=np.int64),
        included_ms=np.full(n, -1, dtype=np.int64),
        final_ms=np.full(n, -1, dtype=np.int64),
    )
    engine.l1_groups[group_id] = group
    engine.l1_wakes.awake.add(group_id)  # new: walked at this step's end (walk_order)
    ids = flows.ids.to_pylist()
    tx_ids = [model_ids.l1_tx_id(flow_id, 1) for flow_id in ids]
    engine.l1_txs.update(zip(tx_ids, [(group_id, row) for row in range(n)], strict=True))
    out.submissions.extend(
        same_kind_submissions(tx_ids, "l1_settle", ids, _ZERO_HASH, group.submitted_ms.tolist())
    )
    engine.stats.l1_submitted += n
    opened = L1GroupOpened(group_id, origin, int(group.submitted_ms.min()), n)
    out.l1_group(group_id, group, opened)
    return group_id


def advance(engine: EngineState, group: L1Group, out: StepBuilder) -> None:
    """Settle the group's rows that became final, re-submit the stale ones, drop the group once
    every row is final (skipped while nothing changed since its last no-op walk, until the
    chain epoch changes or engine time reaches the next row's confirmation time)."""
    epoch = engine.chain_epoch
    if engine.options.quiet_skip and group.quiet_epoch == epoch and engine.now_ms < group.quiet_until:
        return
    now = engine.now_ms
    open_rows = group.final_ms < 0
    if not open_rows.any():
        return
    need = engine.config.l1_confirmations
    included = open_rows & (group.included_height >= 0)
    changed = False
    wakes_at = NEVER  # the earliest confirmation time still to come
    if included.any():
        confirm_height = group.included_height + need - 1
        reached = included & (confirm_height <= engine.tip_height)
        rows = np.flatnonzero(reached)
        block_ms = engine.block_ms.get  # Python ints: no numpy scalar a row (~500,000 rows a 10M day)
        confirm_ms = np.array([block_ms(h, -1) for h in confirm_height[rows].tolist()], dtype=np.int64)
        later = confirm_ms[confirm_ms > now]
        if len(later):
            wakes_at = int(later.min())
        rows = rows[(confirm_ms >= 0) & (confirm_ms <= now)]
        confirm_ms = confirm_ms[(confirm_ms >= 0) & (confirm_ms <= now)]
        if len(rows):
            group.final_ms[rows] = confirm_ms
            settle(engine, group, rows, out)
            changed = True
    chain_now = engine.chain_seen_ms
    stale = np.flatnonzero(
        open_rows
        & (group.included_height < 0)
        & (chain_now >= group.submitted_ms + engine.config.l1_resubmit_ms)
    )
    for row in stale.tolist():
        engine.l1_txs.pop(group.tx_id(row), None)
        group.attempt[row] += 1
        group.submitted_ms[row] = chain_now
        tx_id = group.tx_id(row)
        engine.l1_txs[tx_id] = (group.group_id, row)
        out.submissions.append(
            TxSubmission(tx_id, "l1_settle", group.flows.ids[row].as_py(), _ZERO_HASH, chain_now)
        )
        engine.stats.l1_resubmitted += 1
        changed = True
    if changed:
        out.l1_group(group.group_id, group)
    else:
        # Nothing to do until something it waits for comes (walk_order): engine time reaching
        # a confirmation block's time, the tip reaching a row's confirmation height, observed
        # chain time reaching a row's re-submit time — or a block including a row (the step
        # that does changes the group), a reorg, a configuration change.
        unconfirmed = included & (group.included_height + need - 1 > engine.tip_height)
        waiting = open_rows & (group.included_height < 0)
        quiet(
            group,
            epoch,
            wakes_at,
            _first(group.included_height[unconfirmed] + need - 1),
            _first(group.submitted_ms[waiting] + engine.config.l1_resubmit_ms),
        )
    if group.open_rows() == 0:
        l1_txs, settle_tx_id = engine.l1_txs, model_ids.l1_tx_id
        for flow_id, attempt in zip(group.flows.ids.to_pylist(), group.attempt.tolist(), strict=True):
            l1_txs.pop(settle_tx_id(flow_id, attempt), None)
        del engine.l1_groups[group.group_id]


def walk_order(engine: EngineState, out: StepBuilder) -> list[str]:
    """The L1 groups :func:`advance` must be called for now, in group-id order: new ones, ones
    whose last walk left them awake, ones this step changed (``out``: a block included their
    rows, an operator settled one), and quiet ones whose wake has come — engine time at
    ``quiet_until``, the tip at ``wake_height``, observed chain time at ``wake_chain_ms``. A
    quiet group stays quiet across chain entries: only those three, a change to the group, a
    reorg (block times move: every group is walked) or a configuration change (the same) can
    make its walk do anything, so skipping the others changes nothing (a property test compares
    every step with a full walk). Serve walked all ~110 groups at every step, and at every
    poll all of them fully (issue 18, serve7)."""
    if not engine.options.quiet_skip:
        return sorted(engine.l1_groups)
    return engine.l1_wakes.order(engine, engine.l1_groups, out.l1_at)


def _first(values: I64) -> int:
    return int(values.min()) if len(values) else NEVER


def walked(engine: EngineState, group_id: str) -> None:
    """After :func:`advance`: a group still open is remembered by what wakes it (quiet) or
    walked again at the next step (awake)."""
    group = engine.l1_groups.get(group_id)
    if group is not None and engine.options.quiet_skip:
        engine.l1_wakes.walked(engine, group_id, group)


def settle(engine: EngineState, group: L1Group, rows: I64, out: StepBuilder) -> None:
    """Posted entries for the rows that became final: every obligation gross, via house L1.

    One entry normally; rows whose sum would not fit one entry are split into runs that do
    (docs/LIMITS.md), and a run the ledger still refuses (a balance out of range) is posted
    row by row, a refused row becoming a failed settlement (:func:`settlement_failed`)."""
    flows = group.flows.take(rows)
    per_flow = flows.qty + flows.quote_amt + flows.fee_buyer + flows.fee_seller
    final_ms = int(group.final_ms[rows].max())
    for start, stop in limits.runs_that_fit(per_flow):
        refused = post_settle(engine, group, rows[start:stop], final_ms)
        if refused is None:
            continue
        if stop - start == 1:
            settlement_failed(engine, group, int(rows[start]), refused, final_ms, out)
            continue
        for row in rows[start:stop].tolist():
            refused = post_settle(engine, group, np.array([row], dtype=np.int64), final_ms)
            if refused is not None:
                settlement_failed(engine, group, row, refused, final_ms, out)
    engine.stats.l1_final += len(rows)
    if engine.options.keep_latencies:
        engine.stats.latency_l1_final_ms.append(group.final_ms[rows] - flows.time_ms)


def settle_legs(engine: EngineState, flows: Flows) -> tuple[I64, I64]:
    """The gross settlement of L1 flows, as (accounts, amounts): each payer's available →
    house L1 → each payee's available. One rule for a base-layer settlement and a manual one."""
    payer, payee, asset, amount, _ = flows.legs(engine.house)
    accounts = np.concatenate(
        [
            engine.acct_available[payer, asset],
            engine.acct_l1[asset],
            engine.acct_l1[asset],
            engine.acct_available[payee, asset],
        ]
    )
    return accounts, np.concatenate([-amount, amount, -amount, amount])


def post_settle(engine: EngineState, group: L1Group, rows: I64, final_ms: int) -> PostResult | None:
    """One posted entry settling ``rows`` gross; the ledger's refusal, or None."""
    accounts, amounts = settle_legs(engine, group.flows.take(rows))
    entry_id = model_ids.l1_settle_entry_id(group.group_id, int(rows[0]), len(rows), final_ms)
    return outcomes.try_post(
        engine,
        JournalEntry(entry_id, "l1_settle", final_ms, accounts, amounts, False, None, group.group_id),
    )


def settlement_failed(
    engine: EngineState, group: L1Group, row: int, refused: PostResult, final_ms: int, out: StepBuilder
) -> None:
    """A flow final on the base layer whose ledger settlement was refused: a failed record
    (a ``ledger_refused`` reject under its id) and an alert; nothing is posted for it."""
    flow_id = group.flows.ids[row].as_py()
    engine.stats.settlements_failed += 1
    engine.stats.bump(engine.stats.rejects_by_code, RejectCode.LEDGER_REFUSED.slug)
    reason = f"L1 settlement refused by the ledger ({refused.name}): final on the base layer, not posted"
    out.reject(Reject(RejectCode.LEDGER_REFUSED, "amount", reason, None, flow_id))
    outcomes.refused(engine, out, f"L1 settlement of {flow_id} in {group.group_id}", refused, final_ms)
