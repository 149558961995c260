"""Chain events and time: a logged block marks anchors and L1 transactions included, a reorg
takes them out again (an anchor's re-submission clock re-armed; a final batch's anchor reorged
out is an alert); :func:`on_time`, after every entry, does what time passing does — closes
batches whose window ended, advances the pending batches and L1 groups that are due, expires holds on
observed chain time, fires escrow deadlines.
"""

from __future__ import annotations

import numpy as np

from clearlane.core.engine import batches, clearing, kernel, l1, lanes
from clearlane.core.engine.flows import Flows
from clearlane.core.engine.state import EngineState, LogEntry, payload_of
from clearlane.core.engine.step import StepBuilder
from clearlane.core.model import states
from clearlane.core.model.chain import BlockProduced, ChainReorg
from clearlane.core.model.events import Alert, BatchAnchored, BatchReorged, HoldExpired
from clearlane.core.model.inputs import ChainEvents


def apply_chain(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    """A logged batch of chain observations: the chain epoch moves, chain time advances."""
    engine.chain_epoch += 1
    engine.chain_seen_ms = max(engine.chain_seen_ms, entry.at_ms)
    for event in payload_of(entry, ChainEvents).decoded():
        if isinstance(event, BlockProduced):
            on_block(engine, event, out)
        elif isinstance(event, ChainReorg):
            on_reorg(engine, event, out)


def on_block(engine: EngineState, block: BlockProduced, out: StepBuilder) -> None:
    """A block: the anchors and L1 transactions it includes are marked included."""
    engine.block_ms[block.height] = block.at_ms
    engine.tip_height = max(engine.tip_height, block.height)
    engine.now_ms = max(engine.now_ms, block.at_ms)
    if not block.tx_ids:
        return  # an empty block (~40 % of a simulated day's 43,000) only moves the tip and time
    touched: set[str] = set()
    for tx_id in block.tx_ids:
        batch_id = engine.anchor_txs.get(tx_id)
        if batch_id is not None:
            state = engine.pending.get(batch_id)
            if state is not None and state.anchor_height < 0:
                state.anchor_tx, state.anchor_height, state.anchored_at_ms = (
                    tx_id,
                    block.height,
                    block.at_ms,
                )
                state.state = states.BatchState.ANCHORED.label
                engine.batch_wakes.awake.add(batch_id)  # now waits for confirmations (batches.walk_order)
                out.emit(BatchAnchored(batch_id, block.at_ms, tx_id, block.height, block.block_hash))
            continue
        where = engine.l1_txs.get(tx_id)
        if where is not None:
            group = engine.l1_groups[where[0]]
            if group.included_height[where[1]] < 0:
                group.included_height[where[1]] = block.height
                group.included_ms[where[1]] = block.at_ms
                touched.add(where[0])
    for group_id in sorted(touched):
        out.l1_group(group_id, engine.l1_groups[group_id])


def on_reorg(engine: EngineState, reorg: ChainReorg, out: StepBuilder) -> None:
    """A reorg: what the orphaned blocks included is waiting again (a final batch: an alert)."""
    engine.reorgs += 1
    for height in reorg.orphaned_heights:
        engine.block_ms.pop(height, None)
    engine.tip_height = reorg.fork_height
    touched: set[str] = set()
    for tx_id in reorg.orphaned_tx_ids:
        batch_id = engine.anchor_txs.get(tx_id) or ""
        state = engine.pending.get(batch_id)
        if state is not None and state.anchor_tx == tx_id:
            state.anchor_tx, state.anchor_height, state.anchored_at_ms = "", -1, -1
            state.state = states.BatchState.CLEARED.label
            # Re-arm the resubmission clock: the reorged tx may or may not come back.
            state.last_submit_ms = reorg.at_ms
            engine.stats.reorged_anchors += 1
            out.emit(BatchReorged(batch_id, reorg.at_ms, tx_id, reorg.fork_height))
            continue
        if tx_id in engine.final_batch_txs:
            alert = f"final batch {engine.final_batch_txs[tx_id]} anchor {tx_id} reorged out"
            engine.stats.alerts.append(alert)
            out.emit(Alert(alert, reorg.at_ms))
            continue
        where = engine.l1_txs.get(tx_id)
        if where is not None:
            group = engine.l1_groups.get(where[0])
            if group is not None and group.final_ms[where[1]] < 0:
                group.included_height[where[1]] = -1
                group.included_ms[where[1]] = -1
                group.submitted_ms[where[1]] = reorg.at_ms
                touched.add(where[0])
    for group_id in sorted(touched):
        out.l1_group(group_id, engine.l1_groups[group_id])


def on_time(engine: EngineState, out: StepBuilder) -> None:
    """Everything that happens because time passed: closes, finality, retries, unwinds."""
    now = engine.now_ms
    cfg = engine.config
    k = len(cfg.pools)
    close_pool = np.zeros(k, dtype=np.int64)
    close_seq = np.zeros(k, dtype=np.int64)
    close_at = np.zeros(k, dtype=np.int64)
    close_reason = np.zeros(k, dtype=np.int64)
    closes = kernel.close_due(
        now,
        engine.pos,
        engine.debit,
        engine.debit_total,
        engine.touched,
        engine.touched_n,
        engine.open_at,
        engine.count,
        engine.seq,
        engine.window_ms,
        close_pool,
        close_seq,
        close_at,
        close_reason,
    )
    if closes:
        engine.pos_digest.touch(close_pool[:closes])
    closing: list[tuple[int, int, int, Flows]] = []
    for c in range(closes):
        p, s = int(close_pool[c]), int(close_seq[c])
        parts = lanes.take_open_parts(engine, p, s)
        closing.append((p, s, int(close_at[c]), Flows.concat(parts) if parts else Flows.empty()))
    clearing.close_batches(engine, closing, out)
    finals = batches.Finals()
    for batch_id in batches.walk_order(engine):
        if not batches.advance(engine, engine.pending[batch_id], out, finals):
            batches.walked(engine, batch_id)
    finals.flush(engine, out)
    for group_id in l1.walk_order(engine, out):
        l1.advance(engine, engine.l1_groups[group_id], out)
        l1.walked(engine, group_id)
    # Holds guard the anchor deadline, so they expire on observed chain time too.
    for entry_id in engine.ledger.expire(engine.chain_seen_ms):
        out.emit(HoldExpired(entry_id, engine.chain_seen_ms))
    engine.escrows.advance(now, out)
