"""Trades, payments and escrow payouts into flows: resolve participants and symbols, parse
amounts into minor units, mark each row's first failure (reject code and field), refuse what
would not fit one ledger entry (engine/limits.py), deduplicate ids (outcomes.py); then hand the
flows to the lanes (lanes.py). Columnar: no Python loop per row.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.engine import lanes, limits, outcomes
from clearlane.core.engine.dedup import content_digest, payment_digest, trade_digests
from clearlane.core.engine.escrows import Payout
from clearlane.core.engine.flows import FLOW_PAYMENT, FLOW_TRADE, Flows
from clearlane.core.engine.routing import LaneHints
from clearlane.core.engine.state import I64, EngineState, LogEntry, payload_of
from clearlane.core.engine.step import StepBuilder
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import Alert
from clearlane.core.model.inputs import Payment
from clearlane.core.money import DecimalError, parse_decimal

_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)
_INT64_MAX = np.iinfo(np.int64).max
_TRADE_FIELDS = ("-", "buyer", "seller", "symbol", "quantity", "price")
_PAYMENT_FIELDS = ("-", "payer", "payee", "asset", "amount", "amount")
_OVER_LIMIT_REASON = (
    "quantity + quote amount + fees exceed the ledger's per-flow limit "
    f"({limits.FLOW_GROSS_MAX_MINOR} minor units, docs/LIMITS.md)"
)


def apply_trades(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    """A chunk of trades (Arrow): validated per row, deduplicated, cleared through the lanes."""
    table = payload_of(entry, pa.Table)
    n = table.num_rows
    if n == 0:
        return
    reject = np.zeros(n, dtype=np.int16)
    reject_field = np.zeros(n, dtype=np.int8)

    buyer = participants(engine, table.column("buyer"))
    seller = participants(engine, table.column("seller"))
    base, quote = symbols(engine, table.column("symbol"))
    _mark(reject, reject_field, buyer < 0, RejectCode.UNKNOWN_PARTICIPANT, 1)
    _mark(reject, reject_field, seller < 0, RejectCode.UNKNOWN_PARTICIPANT, 2)
    _mark(reject, reject_field, base < 0, RejectCode.UNKNOWN_SYMBOL, 3)
    _mark(reject, reject_field, (buyer == seller) & (buyer >= 0), RejectCode.SELF_TRADE, 2)
    ok_idx = (buyer >= 0) & (seller >= 0) & (base >= 0)
    safe_base = np.where(ok_idx, base, 0)
    safe_quote = np.where(ok_idx, quote, 0)
    qty, quote_amt = _amounts(
        table, reject, reject_field, engine.scales[safe_base], engine.scales[safe_quote]
    )
    over_limit = mark_over_limit(engine, reject, reject_field, qty, quote_amt, buyer, seller)
    received = np.maximum.accumulate(np.maximum(_col(table, "received_at_ms"), engine.now_ms))

    ids = table.column("trade_id").combine_chunks()
    dup = outcomes.dedup_flows(engine, ids, reject == 0, "t:", trade_digests(table), out)
    flows = Flows(
        ids=ids,
        kind=np.full(n, FLOW_TRADE, dtype=np.int8),
        buyer=np.where(ok_idx, buyer, 0).astype(np.int32),
        seller=np.where(ok_idx, seller, 0).astype(np.int32),
        base=safe_base.astype(np.int32),
        quote=safe_quote.astype(np.int32),
        qty=np.where(reject == 0, qty, 0),
        quote_amt=np.where(reject == 0, quote_amt, 0),
        fee_buyer=np.zeros(n, dtype=np.int64),
        fee_seller=np.zeros(n, dtype=np.int64),
        time_ms=received,
        executed_ms=_col(table, "executed_at_ms"),
        pool=np.full(n, -1, dtype=np.int32),
        batch_seq=np.full(n, -1, dtype=np.int64),
        exch_batch=table.column("exch_batch_id").combine_chunks(),
    )
    lanes.clear_flows(
        engine,
        flows,
        reject,
        reject_field,
        dup,
        _lane_hints(table),
        out,
        field_names=_TRADE_FIELDS,
        reasons=dict.fromkeys(np.flatnonzero(over_limit).tolist(), _OVER_LIMIT_REASON),
    )
    engine.now_ms = max(engine.now_ms, int(received[-1]))


def _amounts(
    table: pa.Table,
    reject: npt.NDArray[np.int16],
    reject_field: npt.NDArray[np.int8],
    base_scale: I64,
    quote_scale: I64,
) -> tuple[I64, I64]:
    """Quantity and quote amount in minor units (zero on rows already failed), marking rows whose
    decimals exceed the scale, that are not positive or that do not fit int64."""
    qty_m = _col(table, "qty_mantissa")
    qty_e = _col(table, "qty_exp").astype(np.int64)
    price_m = _col(table, "price_mantissa")
    price_e = _col(table, "price_exp").astype(np.int64)
    _mark(reject, reject_field, (qty_e > base_scale) | (qty_m <= 0), RejectCode.PRECISION_EXCEEDED, 4)
    _mark(reject, reject_field, price_m <= 0, RejectCode.NON_POSITIVE, 5)
    shift = np.clip(base_scale - qty_e, 0, 18)
    # The edge refuses a quantity whose minor units do not fit int64; a logged one must not
    # wrap around here either.
    _mark(reject, reject_field, qty_m > _INT64_MAX // _POW10[shift], RejectCode.AMOUNT_OVERFLOW, 4)
    qty = np.where(reject == 0, qty_m, 0) * _POW10[shift]
    quote_amt, too_big = limits.quote_amount(qty, price_m, quote_scale - base_scale - price_e)
    _mark(reject, reject_field, too_big, RejectCode.AMOUNT_OVERFLOW, 5)
    _mark(reject, reject_field, quote_amt <= 0, RejectCode.NON_POSITIVE, 5)
    return qty, quote_amt


def _lane_hints(table: pa.Table) -> LaneHints:
    """Each row's lane hint as a code into the column's dictionary (-1 where absent)."""
    hints = table.column("lane_hint").combine_chunks()
    if not pa.types.is_dictionary(hints.type):
        hints = hints.dictionary_encode()
    codes = hints.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return LaneHints(codes, hints.dictionary.to_pylist())


def mark_over_limit(
    engine: EngineState,
    reject: npt.NDArray[np.int16],
    reject_field: npt.NDArray[np.int8],
    qty: I64,
    quote_amt: I64,
    buyer: npt.NDArray[np.int32],
    seller: npt.NDArray[np.int32],
) -> npt.NDArray[np.bool_]:
    """AMOUNT_OVERFLOW for trades whose own settlement would not fit one ledger entry
    (:mod:`clearlane.core.engine.limits`, the rule the edge checks too): on ``quantity`` when
    the quantity alone is too big, else on ``price`` (quantity x price is)."""
    fresh: npt.NDArray[np.bool_] = reject == 0
    if not fresh.any():
        return fresh
    cbps = engine.fee_cbps
    over = limits.trade_over_limit(
        np.where(fresh, qty, 0),
        np.where(fresh, quote_amt, 0),
        cbps[np.maximum(buyer, 0)],
        cbps[np.maximum(seller, 0)],
    )
    qty_alone = qty > limits.FLOW_GROSS_MAX_MINOR
    over &= fresh
    _mark(reject, reject_field, over & qty_alone, RejectCode.AMOUNT_OVERFLOW, 4)
    _mark(reject, reject_field, over, RejectCode.AMOUNT_OVERFLOW, 5)
    return over


def participants(engine: EngineState, column: pa.ChunkedArray) -> npt.NDArray[np.int32]:
    arr = column.combine_chunks()
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    lookup = np.array(
        [engine.participant_lookup.get(v, -1) for v in arr.dictionary.to_pylist()] + [-1], dtype=np.int32
    )
    codes = arr.indices.to_numpy(zero_copy_only=False)
    result: npt.NDArray[np.int32] = lookup[codes]
    return result


def symbols(
    engine: EngineState, column: pa.ChunkedArray
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    arr = column.combine_chunks()
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    base_of, quote_of = [], []
    for symbol in arr.dictionary.to_pylist():
        b, _, q = str(symbol).partition("/")
        bi, qi = engine.asset_lookup.get(b, -1), engine.asset_lookup.get(q, -1)
        ok = bi >= 0 and qi >= 0 and bi != qi
        base_of.append(bi if ok else -1)
        quote_of.append(qi if ok else -1)
    codes = arr.indices.to_numpy(zero_copy_only=False)
    return (
        np.array([*base_of, -1], dtype=np.int32)[codes],
        np.array([*quote_of, -1], dtype=np.int32)[codes],
    )


def apply_payment(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    payload = payload_of(entry, Payment)
    payment_id = str(payload.payment_id)
    payer = engine.participant_lookup.get(str(payload.payer), -1)
    payee = engine.participant_lookup.get(str(payload.payee), -1)
    a = engine.asset_lookup.get(str(payload.asset), -1)
    reject = np.zeros(1, dtype=np.int16)
    reject_field = np.zeros(1, dtype=np.int8)
    amount = 0
    if payer < 0:
        reject[0], reject_field[0] = RejectCode.UNKNOWN_PARTICIPANT, 1
    elif payee < 0:
        reject[0], reject_field[0] = RejectCode.UNKNOWN_PARTICIPANT, 2
    elif payer == payee:
        reject[0], reject_field[0] = RejectCode.SELF_TRADE, 2
    elif a < 0:
        reject[0], reject_field[0] = RejectCode.UNKNOWN_ASSET, 3
    else:
        try:
            amount = parse_decimal(str(payload.amount), int(engine.scales[a]))
        except DecimalError as exc:
            reject[0] = RejectCode.PRECISION_EXCEEDED if exc.reason == "precision" else RejectCode.BAD_DECIMAL
            reject_field[0] = 4
    reasons = None
    if (
        reject[0] == 0
        and limits.payment_over_limit(np.array([amount], dtype=np.int64), engine.fee_cbps[[payer]]).any()
    ):
        reject[0], reject_field[0] = RejectCode.AMOUNT_OVERFLOW, 4
        reasons = {0: _OVER_LIMIT_REASON}
    ids = pa.array([payment_id], type=pa.string())
    digest = np.array([payment_digest(payload)], dtype=np.uint64)
    dup = outcomes.dedup_flows(engine, ids, reject == 0, "p:", digest, out)
    now = np.array([engine.now_ms], dtype=np.int64)
    flows = Flows(
        ids=ids,
        kind=np.array([FLOW_PAYMENT], dtype=np.int8),
        buyer=np.array([max(payee, 0)], dtype=np.int32),
        seller=np.array([max(payer, 0)], dtype=np.int32),
        base=np.array([max(a, 0)], dtype=np.int32),
        quote=np.array([max(a, 0)], dtype=np.int32),
        qty=np.array([amount], dtype=np.int64),
        quote_amt=np.zeros(1, dtype=np.int64),
        fee_buyer=np.zeros(1, dtype=np.int64),
        fee_seller=np.zeros(1, dtype=np.int64),
        time_ms=now,
        executed_ms=now.copy(),
        pool=np.full(1, -1, dtype=np.int32),
        batch_seq=np.full(1, -1, dtype=np.int64),
        exch_batch=pa.array([None], type=pa.string()),
    )
    hint = np.array([payload.lane_hint], dtype=object)
    lanes.clear_flows(
        engine, flows, reject, reject_field, dup, hint, out, field_names=_PAYMENT_FIELDS, reasons=reasons
    )


def clear_payouts(engine: EngineState, payouts: list[Payout], out: StepBuilder) -> None:
    """Escrow payouts as payments from the house, cleared like any payment (routed, netted
    in an L2 pool or settled gross on L1); engine/escrows.py follows them to finality."""
    n = len(payouts)
    ids = pa.array([p.flow_id for p in payouts], type=pa.string())
    asset = np.array([p.asset for p in payouts], dtype=np.int32)
    reject = np.zeros(n, dtype=np.int16)
    # A payout's content is its payee, asset and amount (its id says which escrow and action).
    digests = np.array(
        [content_digest(str(p.payee), str(p.asset), str(p.amount)) for p in payouts], dtype=np.uint64
    )
    dup = outcomes.dedup_flows(engine, ids, reject == 0, model_ids.PAYMENT_NAMESPACE, digests, out)
    if dup.any():
        out.emit(
            Alert(f"escrow payout ids already used by payments: {ids.filter(pa.array(dup))}", engine.now_ms)
        )
    now = np.full(n, engine.now_ms, dtype=np.int64)
    flows = Flows(
        ids=ids,
        kind=np.full(n, FLOW_PAYMENT, dtype=np.int8),
        buyer=np.array([p.payee for p in payouts], dtype=np.int32),
        seller=np.full(n, engine.house, dtype=np.int32),
        base=asset,
        quote=asset.copy(),
        qty=np.array([p.amount for p in payouts], dtype=np.int64),
        quote_amt=np.zeros(n, dtype=np.int64),
        fee_buyer=np.zeros(n, dtype=np.int64),
        fee_seller=np.zeros(n, dtype=np.int64),
        time_ms=now,
        executed_ms=now.copy(),
        pool=np.full(n, -1, dtype=np.int32),
        batch_seq=np.full(n, -1, dtype=np.int64),
        exch_batch=pa.array([None] * n, type=pa.string()),
    )
    hints = np.full(n, None, dtype=object)
    fields = np.zeros(n, dtype=np.int8)
    lanes.clear_flows(engine, flows, reject, fields, dup, hints, out, field_names=_PAYMENT_FIELDS)


def _col(table: pa.Table, name: str) -> I64:
    values: I64 = table.column(name).to_numpy().astype(np.int64, copy=False)
    return values


def _mark(
    reject: npt.NDArray[np.int16],
    where: npt.NDArray[np.int8],
    mask: npt.NDArray[np.bool_],
    code: RejectCode,
    field_index: int,
) -> None:
    """Record ``code`` on rows that have no earlier failure (first failure wins)."""
    fresh = mask & (reject == 0)
    reject[fresh] = code
    where[fresh] = field_index
