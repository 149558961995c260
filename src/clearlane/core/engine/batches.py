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
from clearlane.core.ledger import JournalEntry, PostResult, handed_over
from clearlane.core.model import ids as model_ids
from clearlane.core.model import states
from clearlane.core.model.events import BatchFinal, BatchResubmitted, BatchUnwound


def advance(engine: EngineState, state: BatchState, out: StepBuilder, finals: Finals) -> bool:
    """Finalize, unwind or re-submit the batch as time and the chain say (skipped while nothing
    it depends on changed since its last no-op walk). A no-op walk records what the batch waits
    for (:func:`walk_order`): engine time (a confirmed batch's challenge window), the tip (an
    anchored batch's confirmation height) or observed chain time (an unanchored batch's
    re-submit time or anchor deadline).

    A batch that is final now joins ``finals`` (True is returned: it is no longer walked), and
    is finalized with the others when the walk ends or before the walk does anything else
    (:class:`Finals`)."""
    now = engine.now_ms
    epoch = engine.chain_epoch
    if engine.options.quiet_skip and state.quiet_epoch == epoch and now < state.quiet_until:
        return False
    chain_now = engine.chain_seen_ms
    pool = engine.config.pools[state.pool]
    if state.anchor_height >= 0:
        confirm_height = state.anchor_height + pool.confirmations - 1
        confirm_ms = engine.block_ms.get(confirm_height)
        if confirm_ms is None or confirm_height > engine.tip_height:
            quiet(state, epoch, NEVER, confirm_height, NEVER)
            return False
        final_ms = max(confirm_ms, state.anchored_at_ms + pool.challenge_window_ms)
        if now >= final_ms:
            finals.add(state, final_ms)
            return True
        quiet(state, epoch, final_ms, NEVER, NEVER)
        return False
    deadline = (
        state.cleared_at_ms + pool.anchor_deadline_ms if pool.on_anchor_deadline == "unwind_to_l1" else NEVER
    )
    if chain_now >= deadline:
        finals.flush(engine, out)
        unwind(engine, state, max(now, chain_now), out)
        return False
    resubmit_at = state.last_submit_ms + pool.anchor_resubmit_ms
    if chain_now < resubmit_at:
        quiet(state, epoch, NEVER, NEVER, min(resubmit_at, deadline))
    else:
        finals.flush(engine, out)
        state.attempts += 1
        state.last_submit_ms = chain_now
        clearing.submit_anchor(engine, state, chain_now, out)
        out.emit(BatchResubmitted(state.batch_id, chain_now, state.attempts))
    return False


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


class Finals:
    """The batches a walk found final, finalized together (issue 18): their holds posted with
    one ledger call (``Ledger.post_pending_many``), their creditors' releases with another
    (``Ledger.post_many``), then each batch's events and state in walk order — a serve poll or
    a bulk clear's chain step finalizes hundreds of sub-second batches at once.

    The same ledger, events and state as finalizing each batch as the walk meets it: posting a
    hold moves pending amounts to posted without changing any account's lowest or highest
    possible balance, so no release's checks can tell whether the holds after it were posted
    first; the ledger records releases and status changes in the same order; and the walk
    flushes before it does anything else (an unwind, a re-submission), so the step's events
    come in the same order."""

    __slots__ = ("due",)

    def __init__(self) -> None:
        self.due: list[tuple[BatchState, int]] = []

    def add(self, state: BatchState, final_ms: int) -> None:
        self.due.append((state, final_ms))

    def flush(self, engine: EngineState, out: StepBuilder) -> None:
        """Finalize the batches added since the last flush, in the order they were added."""
        if not self.due:
            return
        due, self.due = self.due, []
        holds = [(state.hold_entry_id, final_ms) for state, final_ms in due if len(state.net_minor)]
        for (hold_id, _), result in zip(holds, engine.ledger.post_pending_many(holds), strict=True):
            if result not in (PostResult.OK, PostResult.ALREADY_POSTED):
                raise EngineError(f"could not post hold {hold_id}: {result.name}")
        releases: list[JournalEntry] = []
        at: list[int] = []  # each batch's index in releases, -1: none
        for state, final_ms in due:
            release = release_entry(engine, state, final_ms)
            at.append(-1 if release is None else len(releases))
            if release is not None:
                releases.append(release)
        refused = outcomes.try_post_many(engine, releases)
        for (state, final_ms), i in zip(due, at, strict=True):
            finalized(engine, state, final_ms, None if i < 0 else refused[i], out)


def release_entry(engine: EngineState, state: BatchState, final_ms: int) -> JournalEntry | None:
    """The release of a final batch's creditors: in-flight → available (None: no creditor)."""
    accounts, amounts = kernel.release_legs(
        state.net_participant, state.net_asset, state.net_minor, engine.acct_inflight, engine.acct_available
    )
    if not len(accounts):
        return None
    release_id = model_ids.l2_release_entry_id(state.batch_id)
    return handed_over(release_id, "l2_release", final_ms, accounts, amounts, False, None, state.batch_id)


def finalized(
    engine: EngineState, state: BatchState, final_ms: int, refused: PostResult | None, out: StepBuilder
) -> None:
    """A batch whose hold is posted (and release placed, or ``refused``) is final."""
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
