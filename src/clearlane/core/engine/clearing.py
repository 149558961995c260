"""Clearing a closed batch: one compiled pass commits every batch a step closes (canonical
leaves, Merkle roots: engine/commitment.py) on a helper thread while this thread nets each one
(engine/netting.py) and places their two-phase holds in one ledger call; then each becomes a pending
:class:`BatchState` with its anchor submitted. A batch too big to net exactly, or whose hold the
ledger refuses, is unwound as it clears: its flows settle gross on L1 (docs/LIMITS.md).

The roots are awaited as late as the step allows: the batch's state, its ``BatchCleared``
event and its first anchor submission are made with :data:`UNHASHED` in the root's place, and
the root is written into all three when the step settles (``StepBuilder.settle``: before the
step is built, before a stage reads the events so far, or before the same step submits that
anchor again). Nothing reads a root in between, so the step is byte for byte what it was when
this thread waited for the roots before making them (the rest of the step — records, L1
submissions, time passing — runs meanwhile).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine import collateral, kernel, l1, limits, outcomes
from clearlane.core.engine.commitment import batch_roots_async
from clearlane.core.engine.flows import I64, Flows
from clearlane.core.engine.netting import NetResult, empty_result, net_flows_many, net_positions_many
from clearlane.core.engine.state import BatchState, EngineError, EngineState, Netted
from clearlane.core.engine.step import StepBuilder
from clearlane.core.ledger import MAX_AMOUNT_MINOR, JournalEntry, PostResult, handed_over
from clearlane.core.model import ids as model_ids
from clearlane.core.model import states
from clearlane.core.model.chain import TxSubmission
from clearlane.core.model.events import BatchCleared, BatchUnwound

HOLD_SAFETY_MARGIN_MS = 6 * 3_600_000
# A closing batch's root until its helper thread's hashing is awaited (close_batches): the state,
# its BatchCleared event and its first anchor submission are filled in when the step settles.
UNHASHED = bytes(32)
_INT64_MAX = np.iinfo(np.int64).max


def close_batches(engine: EngineState, closing: list[tuple[int, int, int, Flows]], out: StepBuilder) -> None:
    """Close batches ``(pool, seq, close time, flows)`` in order; one compiled pass commits
    all of them (canonical leaves, leaf hashes, Merkle roots: engine/commitment.py)."""
    if not closing:
        return
    batch_ids = [model_ids.batch_id(engine.config.pools[k].id, seq) for k, seq, _, _ in closing]
    for batch_id, (_, _, _, flows) in zip(batch_ids, closing, strict=True):
        if len(flows) == 0:
            raise EngineError(f"batch {batch_id} closed with no flows")
    all_flows = Flows.concat([flows for _, _, _, flows in closing])
    bounds = np.zeros(len(closing) + 1, dtype=np.int64)
    np.cumsum([len(flows) for _, _, _, flows in closing], out=bounds[1:])
    # The roots are hashed on a helper thread while this one nets the batches, places their
    # holds, makes them pending and goes on with the step; they are filled in when it settles.
    roots = batch_roots_async(
        all_flows,
        bounds,
        batch_ids,
        engine.pid_table,
        engine.code_table,
        engine.house,
        engine.participant_ids,
        engine.asset_codes,
    )
    results = _net_all(engine, all_flows, bounds)
    netted = net_batches(
        engine,
        [
            (k, batch_id, close_ms, result)
            for (k, _, close_ms, _), batch_id, result in zip(closing, batch_ids, results, strict=True)
        ],
    )
    cfg = engine.config
    nets = [
        n.result if n.result is not None else _unnetted(cfg, flows, engine.house)
        for (_, _, _, flows), n in zip(closing, netted, strict=True)
    ]
    figures = _figures(engine, nets, all_flows, bounds)
    closed = [
        close_batch(engine, k, seq, batch_id, UNHASHED, close_ms, flows, n, net, figure, out)
        for (k, seq, close_ms, flows), batch_id, n, net, figure in zip(
            closing, batch_ids, netted, nets, figures, strict=True
        )
    ]

    def fill() -> None:
        for (state, event_at, anchor_at), root in zip(closed, roots(), strict=True):
            state.root = root
            event = out.events[event_at]
            if not isinstance(event, BatchCleared) or event.batch_id != state.batch_id:
                raise EngineError(
                    f"step {out.seq}: event {event_at} is not batch {state.batch_id}'s clearing"
                )
            out.events[event_at] = event.with_root(root)
            if anchor_at >= 0:
                tx = out.submissions[anchor_at]
                if tx.kind != "anchor" or tx.ref != state.batch_id:
                    raise EngineError(
                        f"step {out.seq}: submission {anchor_at} is not batch {state.batch_id}'s anchor"
                    )
                out.submissions[anchor_at] = TxSubmission(tx.tx_id, tx.kind, tx.ref, root, tx.submitted_at_ms)

    out.defer(fill)


def _net_all(engine: EngineState, flows: Flows, bounds: I64) -> list[tuple[NetResult | None, int]]:
    """Each closing batch's net positions, netted together (netting.net_positions_many), with
    its number of obligations; None when they sum past the ledger's range (not netted: int64
    sums would not be exact)."""
    cfg = engine.config
    compiled = net_flows_many(
        flows, bounds, engine.house, cfg.participant_count, len(cfg.assets), MAX_AMOUNT_MINOR
    )
    if compiled is not None:
        return compiled
    payer, payee, asset, amount, flow = flows.legs(engine.house)
    leg_batch = np.searchsorted(bounds, flow, side="right") - 1
    leg_bounds = np.searchsorted(leg_batch, np.arange(len(bounds))).tolist()
    fits = [limits.legs_fit(amount[lo:hi], MAX_AMOUNT_MINOR) for lo, hi in itertools.pairwise(leg_bounds)]
    if not all(fits):
        keep = np.asarray(fits)[leg_batch]
        payer, payee, asset, amount, leg_batch = (a[keep] for a in (payer, payee, asset, amount, leg_batch))
    netted = net_positions_many(
        payer, payee, asset, amount, leg_batch, len(bounds) - 1, cfg.participant_count, len(cfg.assets)
    )
    return [
        (result if fit else None, hi - lo)
        for result, fit, (lo, hi) in zip(netted, fits, itertools.pairwise(leg_bounds), strict=True)
    ]


def net_batches(
    engine: EngineState, closing: list[tuple[int, str, int, tuple[NetResult | None, int]]]
) -> list[Netted]:
    """Place the pending holds of closing batches ``(pool, batch id, close time, netting)``, in
    order, with one ledger call (``Ledger.post_many``: the same as one post after the other).
    A batch whose obligations sum past the ledger's range (not netted: no result) and one
    whose hold the ledger refuses are not held: both are settled gross on L1 at once
    (:func:`close_batch`)."""
    holds: list[JournalEntry] = []
    at: list[int] = []  # each batch's index in holds, -1: none
    for k, batch_id, close_ms, (result, _) in closing:
        entry = None if result is None else hold_entry(engine, k, batch_id, close_ms, result)
        at.append(-1 if entry is None else len(holds))
        if entry is not None:
            holds.append(entry)
    refused = outcomes.try_post_many(engine, holds)
    netted = []
    for (_, _, _, (result, obligations)), i in zip(closing, at, strict=True):
        if result is None:
            netted.append(Netted(None, obligations, PostResult.AMOUNT_OUT_OF_RANGE))
        else:
            netted.append(Netted(result, obligations, None if i < 0 else refused[i]))
    return netted


def hold_entry(
    engine: EngineState, k: int, batch_id: str, close_ms: int, result: NetResult
) -> JournalEntry | None:
    """A closing batch's pending hold: debtors' available → pool settlement → creditors'
    in-flight (None: flows that cancel out exactly, fee-free payments back and forth — nothing
    to hold). Its timeout is a safety net behind the engine's own unwind at the anchor
    deadline; it must never fire before a late but legitimate finality, hence the margin. A
    keep_retrying pool never unwinds, so its hold has no timeout."""
    pool = engine.config.pools[k]
    participant, asset, net = result.instructions()
    accounts, amounts = kernel.hold_legs(
        participant, asset, net, engine.acct_available, engine.acct_l2[k], engine.acct_inflight
    )
    if len(amounts) == 0:
        return None
    timeout_at = (
        close_ms + pool.anchor_deadline_ms + HOLD_SAFETY_MARGIN_MS
        if pool.on_anchor_deadline == "unwind_to_l1"
        else None
    )
    hold_id = model_ids.l2_hold_entry_id(batch_id)
    return handed_over(hold_id, "l2_hold", close_ms, accounts, amounts, True, timeout_at, batch_id)


class Figures(NamedTuple):
    """What a closing batch's event and statistics take from its flows and netting."""

    opened_ms: int  # its earliest flow's time
    gross_usd: float  # its gross per asset at marks
    net_usd: float  # its net debits per asset at marks
    net_participant: pa.Array  # its net positions' participant ids
    net_asset: pa.Array  # and asset codes


def _figures(engine: EngineState, results: list[NetResult], flows: Flows, bounds: I64) -> list[Figures]:
    """:class:`Figures` of each closing batch (rows ``bounds[b]:bounds[b + 1]`` of ``flows``,
    none empty), computed for all of a step's batches at once: a few calls a step instead of
    seven a batch (102,000 batches on the demo day; issue 18). A row sum of the per-asset
    matrix is the sum of that batch's own vector (NumPy reduces each contiguous row as it
    reduces a vector: :func:`usd_at_marks`), so the figures are the ones a batch alone gives."""
    mark_minor = collateral.mark_per_minor(engine)  # marks move only between entries
    opened = np.minimum.reduceat(flows.time_ms, bounds[:-1]).tolist()
    gross = usd_at_marks([r.gross_per_asset for r in results], mark_minor)
    net = usd_at_marks([r.net_debit_per_asset for r in results], mark_minor)
    participants = texts_many(engine.pid_table, [r.participant for r in results])
    assets = texts_many(engine.code_table, [r.asset for r in results])
    return [Figures(*f) for f in zip(opened, gross, net, participants, assets, strict=True)]


def usd_at_marks(per_asset: list[I64], mark_minor: npt.NDArray[np.float64]) -> list[float]:
    """``float((v * mark_minor).sum())`` of each per-asset vector, as one matrix product's row
    sums: the same floats (each contiguous row is reduced as the vector alone is; test)."""
    return list((np.stack(per_asset) * mark_minor).sum(axis=1).tolist())


def close_batch(
    engine: EngineState,
    k: int,
    seq: int,
    batch_id: str,
    root: bytes,
    close_ms: int,
    flows: Flows,
    netted: Netted,
    result: NetResult,
    figures: Figures,
    out: StepBuilder,
) -> tuple[BatchState, int, int]:
    """A netted (or unnetted) batch becomes pending, its anchor submitted, or is unwound at
    once when its hold was refused. ``result`` is its netting (``netted.result``, or the
    unnetted figures), ``figures`` what :func:`_figures` gave it.

    Returns the batch's state, the index of its BatchCleared event in ``out.events`` and of its
    anchor in ``out.submissions`` (-1: none), where a root given as :data:`UNHASHED` is filled in."""
    pool = engine.config.pools[k]
    obligations = netted.obligations
    gross_usd, net_usd, opened = figures.gross_usd, figures.net_usd, figures.opened_ms
    hold_id = model_ids.l2_hold_entry_id(batch_id)
    participant, asset_i, net = result.instructions()
    state = BatchState(
        batch_id=batch_id,
        pool=k,
        seq=seq,
        opened_at_ms=opened,
        cleared_at_ms=close_ms,
        root=root,
        flows=flows,
        hold_entry_id=hold_id,
        last_submit_ms=close_ms,
        net_participant=participant,
        net_asset=asset_i,
        net_minor=net,
    )
    anchor_at = -1
    if netted.refused is None:
        engine.pending[batch_id] = state
        engine.batch_wakes.awake.add(batch_id)  # new: walked at this step's end (batches.walk_order)
        collateral.hold_exposure(engine, state, 1)
        anchor_at = _anchor(engine, state, root, close_ms, out)
    event_at = len(out.events)
    out.emit(
        BatchCleared(
            batch_id=batch_id,
            pool=pool.id,
            seq=seq,
            opened_at_ms=opened,
            cleared_at_ms=close_ms,
            flows=len(flows),
            obligations=obligations,
            gross_usd=round(gross_usd, 2),
            net_usd=round(net_usd, 2),
            root=root,
            flow_ids=flows.ids,
            received_ms=flows.time_ms,
            net_participant=figures.net_participant,
            net_asset=figures.net_asset,
            net_minor=net,
            gross_minor=result.gross_per_asset,
        )
    )
    stats = engine.stats
    stats.batches_cleared += 1
    stats.gross_usd += gross_usd
    stats.net_usd += net_usd
    if engine.options.keep_latencies:
        stats.latency_cleared_ms.append(close_ms - flows.time_ms)
    if netted.refused is not None:
        unwind_unheld(engine, state, netted.refused, out)
    return state, event_at, anchor_at


def texts_many(table: tuple[npt.NDArray[np.uint8], I64], indices: list[I64]) -> list[pa.Array]:
    """For each index array, the strings of ``table`` (engine.pid_table / code_table) at it as
    a string column, every column gathered by one compiled pass: the values and IPC bytes of
    an Arrow take (which adds an all-valid bitmap the IPC writer leaves out), without its
    ~15 µs a call, nor a Python string per position. Each column is built on exactly its own
    bytes (views of the pass's output, never a slice of a longer Arrow column: Arrow's IPC
    writer keeps bytes past a slice's end, and the stored net blob is written from these
    columns). Two a batch, 102,000 batches on the demo day (issue 18)."""
    bounds = np.zeros(len(indices) + 1, dtype=np.int64)
    np.cumsum([len(i) for i in indices], out=bounds[1:])
    index = np.concatenate(indices).astype(np.int64, copy=False) if indices else bounds[:0]
    offsets, data, data_bounds = kernel.gather_texts_many(table[0], table[1], index, bounds)
    cuts, ends = bounds.tolist(), data_bounds.tolist()
    return [
        pa.Array.from_buffers(
            _STRING, hi - lo, [None, pa.py_buffer(offsets[lo + b : hi + b + 1]), pa.py_buffer(data[d0:d1])]
        )
        for b, ((lo, hi), (d0, d1)) in enumerate(
            zip(itertools.pairwise(cuts), itertools.pairwise(ends), strict=True)
        )
    ]


_STRING = pa.string()


def unwind_unheld(engine: EngineState, state: BatchState, refused: PostResult, out: StepBuilder) -> None:
    """A batch the ledger cannot hold (docs/LIMITS.md) is unwound as it clears: no anchor,
    its flows settle gross on L1 (each of which fits the ledger on its own)."""
    at_ms = state.cleared_at_ms
    outcomes.refused(engine, out, f"hold of batch {state.batch_id}", refused, at_ms)
    state.state = states.BatchState.UNWOUND.label
    reason = f"ledger refused the batch's hold ({refused.name}): settling gross on L1"
    out.emit(BatchUnwound(state.batch_id, at_ms, reason))
    engine.stats.batches_unwound += 1
    l1.submit(engine, state.flows, model_ids.unwound_origin(state.batch_id), out, submitted_ms=at_ms)


def submit_anchor(engine: EngineState, state: BatchState, at_ms: int, out: StepBuilder) -> None:
    if state.root is UNHASHED:
        out.settle()  # submitted again in the step that closed it: its root first
    _anchor(engine, state, state.root, at_ms, out)


def _anchor(engine: EngineState, state: BatchState, root: bytes, at_ms: int, out: StepBuilder) -> int:
    """Submit ``state``'s anchor carrying ``root``; its index in ``out.submissions``."""
    tx_id = model_ids.anchor_tx_id(state.batch_id, state.attempts)
    engine.anchor_txs[tx_id] = state.batch_id
    out.submissions.append(TxSubmission(tx_id, "anchor", state.batch_id, root, at_ms))
    engine.stats.anchors_submitted += 1
    return len(out.submissions) - 1


def _unnetted(config: ClearingConfig, flows: Flows, house: int) -> NetResult:
    """The figures of a batch too big to net in int64 (it is settled gross on L1): no net
    positions, and the gross per asset summed exactly and capped at the int64 maximum."""
    _, _, asset, amount, _ = flows.legs(house)
    assets = len(config.assets)
    gross = np.array(
        [min(sum(amount[asset == a].tolist()), int(_INT64_MAX)) for a in range(assets)], dtype=np.int64
    )
    return empty_result(config.participant_count, gross)
