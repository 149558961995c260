"""The shared path of every flow (trades, payments, escrow payouts) once validated: route it
to a lane (engine/routing.py; the monitor's L2 halt), charge fees, run the liquidity check and
batch assignment (engine/kernel.py), close the batches that closed (clearing.py) and park the
rest in their pools' open batches, send L1 flows to an L1 group (l1.py), and write every row's
record and reject into the step.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.engine import clearing, collateral, kernel, l1, limits
from clearlane.core.engine.flows import FLOW_PAYMENT, Flows
from clearlane.core.engine.routing import LaneHints, route
from clearlane.core.engine.state import I64, EngineState
from clearlane.core.engine.step import StepBuilder
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.events import TradeRecords
from clearlane.core.model.states import TradeState

_REASONS = {
    RejectCode.UNKNOWN_PARTICIPANT: "not a configured participant",
    RejectCode.UNKNOWN_SYMBOL: "not BASE/QUOTE of two configured assets",
    RejectCode.SELF_TRADE: "buyer and seller (payer and payee) are the same participant",
    RejectCode.PRECISION_EXCEEDED: "more decimals than the asset's scale",
    RejectCode.NON_POSITIVE: "quantity x price rounds to zero quote units",
    RejectCode.AMOUNT_OVERFLOW: "quantity x price does not fit 64-bit minor units",
    RejectCode.LIQUIDITY_EXCEEDED: "projected L2 net debit above collateral + credit limit",
}


_LANES = pa.array(["L1", "L2"], type=pa.string())


def clear_flows(
    engine: EngineState,
    flows: Flows,
    reject: npt.NDArray[np.int16],
    reject_field: npt.NDArray[np.int8],
    dup: npt.NDArray[np.bool_],
    hints: LaneHints | npt.NDArray[np.object_],
    out: StepBuilder,
    *,
    field_names: tuple[str, ...],
    reasons: dict[int, str] | None = None,
) -> None:
    """Route, check liquidity, batch, record: the shared path of trades and payments
    (``reasons``: per-row reject reasons that differ from the code's usual one)."""
    cfg = engine.config
    live = (reject == 0) & ~dup
    mark_minor = collateral.mark_per_minor(engine)
    notional_usd = flows.quote_amt * mark_minor[flows.quote]
    notional_usd = np.where(flows.kind == FLOW_PAYMENT, flows.qty * mark_minor[flows.base], notional_usd)
    pool, rule = route(
        cfg,
        buyer=flows.buyer,
        seller=flows.seller,
        kind=flows.kind,
        notional_usd=notional_usd,
        lane_hint=hints,
        kinds_by_participant=engine.kinds,
        opt_out=engine.opt_out,
    )
    if cfg.l2_halted:  # the monitor's policy (a logged config change): gross on L1
        halted = np.array([a.code in cfg.l2_halted for a in cfg.assets], dtype=np.bool_)
        stopped = (pool >= 0) & (halted[flows.base] | halted[flows.quote])
        pool = np.where(stopped, -1, pool).astype(np.int32)
        rule = np.where(stopped, len(cfg.routing) + 1, rule).astype(np.int16)
    pool = np.where(live, pool, -1).astype(np.int32)
    flows = with_fees(engine, flows.with_(pool=pool))
    out_seq, out_breach, closed = assign(engine, flows, mark_minor)
    if out_breach.any():
        engine.stats.liquidity_diverted += int(out_breach.sum())
        if cfg.liquidity_breach == "reject":
            reject[out_breach] = RejectCode.LIQUIDITY_EXCEEDED
            live &= ~out_breach
        pool = np.where(out_breach, -1, pool).astype(np.int32)
        flows = with_fees(engine, flows.with_(pool=pool))
    flows = flows.with_(batch_seq=out_seq)
    close_and_park(engine, flows, live & (pool >= 0), closed, out)

    l1_rows = np.flatnonzero(live & (pool < 0))
    l1_group = l1.submit(engine, flows.take(l1_rows), "routed", out) if len(l1_rows) else None
    rule_code = np.where(rule >= 0, rule, 0).astype(np.int32)
    if out_breach.any() and cfg.liquidity_breach != "reject":
        rule_code[out_breach] = len(cfg.routing)
    records = record_table(engine, flows, reject, dup, live, rule_code, notional_usd, l1_group, l1_rows)
    out.records.append(TradeRecords(records))
    for lane_name, m in (("L2", live & (pool >= 0)), ("L1", live & (pool < 0))):
        engine.stats.bump(engine.stats.flows_by_lane, lane_name, int(m.sum()))
    engine.stats.duplicates += int(dup.sum())
    out.duplicates += int(dup.sum())
    for i in np.flatnonzero(reject != 0).tolist():
        code = RejectCode(int(reject[i]))
        engine.stats.bump(engine.stats.rejects_by_code, code.slug)
        field_name = field_names[int(reject_field[i])]
        reason = (reasons or {}).get(i) or _REASONS.get(code, code.slug)
        out.reject(Reject(code, field_name, reason, None, flows.ids[i].as_py()))


def assign(
    engine: EngineState, flows: Flows, mark_minor: npt.NDArray[np.float64]
) -> tuple[I64, npt.NDArray[np.bool_], list[tuple[int, int, int]]]:
    """Run the batching kernel over the live L2 rows (``flows.pool >= 0``): per row its batch
    seq and whether it breached its liquidity limit, and the batches it closed in order
    as ``(pool, seq, close time)``."""
    n = len(flows)
    kernel_pool = flows.pool
    out_seq = np.full(n, -1, dtype=np.int64)
    out_breach = np.zeros(n, dtype=np.bool_)
    cap = n + len(engine.config.pools) + 1
    close_pool = np.zeros(cap, dtype=np.int64)
    close_seq = np.zeros(cap, dtype=np.int64)
    close_at = np.zeros(cap, dtype=np.int64)
    close_reason = np.zeros(cap, dtype=np.int64)
    closes = kernel.assign_batches(
        flows.time_ms,
        kernel_pool,
        *flows.obligations(),
        engine.house,
        mark_minor,
        collateral.limits_usd(engine, mark_minor),
        True,
        engine.pos,
        engine.debit,
        engine.debit_total,
        engine.touched,
        engine.touched_n,
        engine.open_at,
        engine.count,
        engine.seq,
        engine.window_ms,
        engine.size_max,
        out_seq,
        out_breach,
        close_pool,
        close_seq,
        close_at,
        close_reason,
    )
    # The pools written: a flag per pool, not np.unique over every row (a sort of the chunk).
    written = np.zeros(len(engine.config.pools), dtype=np.bool_)
    written[kernel_pool[kernel_pool >= 0]] = True
    written[close_pool[:closes]] = True
    engine.pos_digest.touch(np.flatnonzero(written))
    closed = [(int(close_pool[c]), int(close_seq[c]), int(close_at[c])) for c in range(closes)]
    return out_seq, out_breach, closed


def close_and_park(
    engine: EngineState,
    flows: Flows,
    in_l2: npt.NDArray[np.bool_],
    closed: list[tuple[int, int, int]],
    out: StepBuilder,
) -> None:
    """Close the batches the kernel closed, in order, then park the rest of the L2 rows as
    parts of their pools' open batches."""
    parts_of = _batch_parts(flows, in_l2)
    closing: list[tuple[int, int, int, Flows]] = []
    for k, s, close_ms in closed:
        parts = take_open_parts(engine, k, s)
        new = parts_of.pop((k, s), None)
        if new is not None:
            parts.append(new)
        closing.append((k, s, close_ms, Flows.concat([p for p in parts if len(p)])))
    clearing.close_batches(engine, closing, out)
    for k in range(len(engine.config.pools)):
        if engine.open_at[k] >= 0:
            new = parts_of.get((k, int(engine.seq[k])))
            if new is not None:
                engine.open_parts[k].append(new)


def take_open_parts(engine: EngineState, pool: int, seq: int) -> list[Flows]:
    """Remove and return the parts parked for batch ``seq`` of ``pool`` (it is closing)."""
    parked = engine.open_parts[pool]
    engine.open_parts[pool] = [part for part in parked if part.batch_seq[0] != seq]
    return [part for part in parked if part.batch_seq[0] == seq]


def _batch_parts(flows: Flows, in_l2: npt.NDArray[np.bool_]) -> dict[tuple[int, int], Flows]:
    """The chunk's L2 rows of each (pool, batch seq), in chunk order: the rows grouped by pool
    and batch with one take for the chunk, then a zero-copy slice per batch (a mask and a take
    per batch cost O(rows × batches) when sub-second windows close hundreds of batches a chunk).
    A pool's rows come in arrival order, in which its batch seqs never decrease (the kernel
    only moves a pool to its next batch), so one pass per pool groups them (a two-key sort of
    the chunk cost ~2 ms of 62,500 rows); the sort stays as the fallback should they not."""
    rows = np.flatnonzero(in_l2)
    if not len(rows):
        return {}
    pool, batch_seq = flows.pool[rows], flows.batch_seq[rows]
    order = np.concatenate([np.flatnonzero(pool == k) for k in np.flatnonzero(np.bincount(pool))])
    if ((np.diff(batch_seq[order]) < 0) & (np.diff(pool[order]) == 0)).any():
        order = np.lexsort((batch_seq, pool))  # stable: each batch's rows stay in chunk order
    taken = flows.take(rows[order])
    pool, batch_seq = pool[order], batch_seq[order]
    starts = np.flatnonzero(np.r_[True, (pool[1:] != pool[:-1]) | (batch_seq[1:] != batch_seq[:-1])])
    ends = np.r_[starts[1:], len(order)]
    return {
        (int(pool[lo]), int(batch_seq[lo])): taken.slice(int(lo), int(hi))
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True)
    }


def record_table(
    engine: EngineState,
    flows: Flows,
    reject: npt.NDArray[np.int16],
    dup: npt.NDArray[np.bool_],
    live: npt.NDArray[np.bool_],
    rule_code: npt.NDArray[np.int32],
    notional_usd: npt.NDArray[np.float64],
    l1_group: str | None,
    l1_rows: I64,
) -> pa.Table:
    """Records of every row, rejected ones included (duplicates left out), for status
    look-ups and the audit."""
    n, cfg, pool = len(flows), engine.config, flows.pool
    state = np.full(n, TradeState.BATCHED, dtype=np.int8)
    state[pool < 0] = TradeState.SUBMITTED
    state[reject != 0] = TradeState.REJECTED
    state[dup] = -1
    pool_names = pa.array([p.id for p in cfg.pools], type=pa.string())
    rule_names = pa.array(
        [r.name for r in cfg.routing]
        + ["liquidity: projected net debit above collateral + credit"]
        + (["monitor: the asset's marks diverge, L2 halted"] if cfg.l2_halted else []),
        type=pa.string(),
    )
    group_valid = np.zeros(n, dtype=np.bool_)
    group_valid[l1_rows] = True
    group = pa.array([l1_group or ""], type=pa.string())
    lane_code = np.where(pool >= 0, 1, 0).astype(np.int32)
    table = pa.table(
        {
            "flow_id": flows.ids,
            "kind": pa.array(flows.kind),
            "buyer": _dict(flows.buyer, engine.participant_ids),
            "seller": _dict(flows.seller, engine.participant_ids),
            "base": _dict(flows.base, engine.asset_codes),
            "quote": _dict(flows.quote, engine.asset_codes),
            "qty_minor": flows.qty,
            "quote_minor": flows.quote_amt,
            "fee_buyer_minor": flows.fee_buyer,
            "fee_seller_minor": flows.fee_seller,
            "notional_usd": np.round(notional_usd, 2),
            "lane": _dict(lane_code, _LANES, valid=live),
            "pool": _dict(np.maximum(pool, 0), pool_names, valid=live & (pool >= 0)),
            "batch_seq": flows.batch_seq,
            "route_rule": _dict(rule_code, rule_names, valid=live),
            "l1_group": _dict(np.zeros(n, dtype=np.int32), group, valid=group_valid),
            "executed_ms": flows.executed_ms,
            "received_ms": flows.time_ms,
            "state": state,
            "reject_code": reject,
            "exch_batch_id": flows.exch_batch,
        }
    )
    return table.filter(pa.array(~dup))


def with_fees(engine: EngineState, flows: Flows) -> Flows:
    """Fees per side: quote amount x tier rate x (1 - pool discount), rounded half to even."""
    discount = np.where(flows.pool >= 0, engine.discount_bp[np.maximum(flows.pool, 0)], 0)
    is_payment = flows.kind == FLOW_PAYMENT
    amount = np.where(is_payment, flows.qty, flows.quote_amt)
    fee_b = limits.fee(amount, engine.fee_cbps[flows.buyer], discount)
    fee_s = limits.fee(amount, engine.fee_cbps[flows.seller], discount)
    # A payment has one fee, the payer's: the payer is the "seller" column (leg A's payer),
    # so it is booked on FEE2 and the payee pays none.
    return flows.with_(fee_buyer=np.where(is_payment, 0, fee_b), fee_seller=fee_s)


def _dict(
    codes: npt.NDArray[np.integer], names: pa.Array, valid: npt.NDArray[np.bool_] | None = None
) -> pa.Array:
    """A dictionary-encoded string column (indices into ``names``; null where not ``valid``)."""
    mask = None if valid is None else ~valid
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=mask), names)
