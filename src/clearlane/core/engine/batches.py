"""A cleared batch's life after clearing: anchored → final once its anchor has the pool's
confirmations and the challenge window has passed (the hold is posted, creditors released);
its anchor re-submitted when not included by ``anchor_resubmit_ms`` of observed chain time;
unwound to L1 gross settlement when it misses its anchor deadline (``unwind_to_l1``).
"""

from __future__ import annotations

from clearlane.core.engine import clearing, collateral, kernel, l1, outcomes
from clearlane.core.engine.state import BatchState, EngineError, EngineState
from clearlane.core.engine.step import StepBuilder
from clearlane.core.engine.wakes import NEVER, quiet
from clearlane.core.ledger import PostResult, handed_over
from clearlane.core.model import ids as model_ids
from clearlane.core.model import states
from clearlane.core.model.events import BatchFinal, BatchResubmitted, BatchUnwound


def advance(engine: EngineState, state: BatchState, out: StepBuilder) -> None:
    """Finalize, unwind or re-submit the batch as time and the chain say (skipped while nothing
    it depends on changed since its last no-op walk). A no-op walk records what the batch waits
    for (:func:`walk_order`): engine time (a confirmed batch's challenge window), the tip (an
    anchored batch's confirmation height) or observed chain time (an unanchored batch's
    re-submit time or anchor deadline)."""
    now = engine.now_ms
    epoch = engine.chain_epoch
    if engine.options.quiet_skip and state.quiet_epoch == epoch and now < state.quiet_until:
        return
    chain_now = engine.chain_seen_ms
    pool = engine.config.pools[state.pool]
    if state.anchor_height >= 0:
        confirm_height = state.anchor_height + pool.confirmations - 1
        confirm_ms = engine.block_ms.get(confirm_height)
        if confirm_ms is None or confirm_height > engine.tip_height:
            quiet(state, epoch, NEVER, confirm_height, NEVER)
            return
        final_ms = max(confirm_ms, state.anchored_at_ms + pool.challenge_window_ms)
        if now >= final_ms:
            finalize(engine, state, final_ms, out)
        else:
            quiet(state, epoch, final_ms, NEVER, NEVER)
        return
    deadline = (
        state.cleared_at_ms + pool.anchor_deadline_ms if pool.on_anchor_deadline == "unwind_to_l1" else NEVER
    )
    if chain_now >= deadline:
        unwind(engine, state, max(now, chain_now), out)
        return
    resubmit_at = state.last_submit_ms + pool.anchor_resubmit_ms
    if chain_now < resubmit_at:
        quiet(state, epoch, NEVER, NEVER, min(resubmit_at, deadline))
    else:
        state.attempts += 1
        state.last_submit_ms = chain_now
        clearing.submit_anchor(engine, state, chain_now, out)
        out.emit(BatchResubmitted(state.batch_id, chain_now, state.attempts))


def walk_order(engine: EngineState) -> list[str]:
    """The pending batches :func:`advance` must be called for now, in batch-id order: new ones,
    ones whose last walk left them awake, ones a block anchored (``on_block`` wakes them), and
    quiet ones whose wake has come — engine time at ``quiet_until``, the tip at
    ``wake_height``, observed chain time at ``wake_chain_ms``. A quiet batch stays quiet
    across chain entries: only those, its anchor's inclusion, a reorg (block times and anchors
    move: every batch is walked) or a configuration change (the same) can make its walk do
    anything, so skipping the others changes nothing (a property test compares every step with
    a full walk). A serve poll walked every pending batch at every chain entry: 1,853 a poll at
    2,000 trades/s, each doing nothing but finding it still waits (issue 18)."""
    if not engine.options.quiet_skip:
        return sorted(engine.pending)
    return engine.batch_wakes.order(engine, engine.pending)


def walked(engine: EngineState, batch_id: str) -> None:
    """After :func:`advance`: a batch still pending is remembered by what wakes it (quiet) or
    walked again at the next step (awake)."""
    state = engine.pending.get(batch_id)
    if state is not None and engine.options.quiet_skip:
        engine.batch_wakes.walked(engine, batch_id, state)


def finalize(engine: EngineState, state: BatchState, final_ms: int, out: StepBuilder) -> None:
    """Post the batch's hold and release its creditors' in-flight funds: the batch is final."""
    result = (
        engine.ledger.post_pending(state.hold_entry_id, final_ms) if len(state.net_minor) else PostResult.OK
    )
    if result not in (PostResult.OK, PostResult.ALREADY_POSTED):
        raise EngineError(f"could not post hold {state.hold_entry_id}: {result.name}")
    accounts, amounts = kernel.release_legs(
        state.net_participant, state.net_asset, state.net_minor, engine.acct_inflight, engine.acct_available
    )
    if len(accounts):
        release = handed_over(
            model_ids.l2_release_entry_id(state.batch_id),
            "l2_release",
            final_ms,
            accounts,
            amounts,
            False,
            None,
            state.batch_id,
        )
        refused = outcomes.try_post(engine, release)
        if refused is not None:
            # The batch is final; its creditors' funds stay in their in-flight accounts.
            outcomes.refused(engine, out, f"release of final batch {state.batch_id}", refused, final_ms)
    state.state = states.BatchState.FINAL.label
    del engine.pending[state.batch_id]
    forget_anchors(engine, state)
    collateral.hold_exposure(engine, state, -1)
    engine.final_batch_txs[state.anchor_tx] = state.batch_id
    out.emit(BatchFinal(state.batch_id, final_ms))
    engine.stats.batches_final += 1
    if engine.options.keep_latencies:
        engine.stats.latency_l2_final_ms.append(final_ms - state.flows.time_ms)


def unwind(engine: EngineState, state: BatchState, at_ms: int, out: StepBuilder) -> None:
    """Void the hold of a batch that missed its anchor deadline; its flows settle gross on L1."""
    result = engine.ledger.void_pending(state.hold_entry_id, at_ms) if len(state.net_minor) else PostResult.OK
    if result not in (PostResult.OK, PostResult.ALREADY_VOIDED, PostResult.EXPIRED):
        raise EngineError(f"could not void hold {state.hold_entry_id}: {result.name}")
    state.state = states.BatchState.UNWOUND.label
    del engine.pending[state.batch_id]
    forget_anchors(engine, state)
    collateral.hold_exposure(engine, state, -1)
    out.emit(BatchUnwound(state.batch_id, at_ms, "anchor deadline missed: settling gross on L1"))
    engine.stats.batches_unwound += 1
    l1.submit(engine, state.flows, model_ids.unwound_origin(state.batch_id), out, submitted_ms=at_ms)


def forget_anchors(engine: EngineState, state: BatchState) -> None:
    """A batch that left ``pending`` is never found by its anchor txs again (``on_block`` and
    ``on_reorg`` look for a pending batch; a final batch's reorged anchor is found through
    ``final_batch_txs``), so its attempts leave ``anchor_txs``: it held every anchor ever
    submitted, ~230 B a batch for the life of the process (issue 18, serve7)."""
    for attempt in range(1, state.attempts + 1):
        engine.anchor_txs.pop(model_ids.anchor_tx_id(state.batch_id, attempt), None)
