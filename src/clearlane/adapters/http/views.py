"""Read-side views for the API: JSON-ready dicts (shaped as :mod:`clearlane.adapters.http.schemas`)
built from the read model and the engine under the runtime lock — lifecycles, pages of trades,
batches, net instructions, positions, liquidity buffers, and the dashboard's aggregates.

Pages are cursor-paginated, newest first. A page stops after a bounded scan (so a selective
filter over millions of trades cannot pin the server): it may then hold fewer items than asked,
with a ``next_cursor`` to continue.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.adapters.http.auth import Principal
from clearlane.adapters.http.problems import bad_parameter
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.states import BATCH_STATE_LABELS, BatchState, TradeState
from clearlane.core.money import format_minor
from clearlane.core.proofs.codec import read_table
from clearlane.node.events import iso
from clearlane.node.projections.common import HOPS, LATENCY_EDGES_MS, STATE_KEYS, H, percentile
from clearlane.node.projections.readmodel import ReadModel
from clearlane.node.report import trade_lifecycle
from clearlane.node.runtime import AcceleratedClock, Runtime

SCAN_ROWS_MAX = 250_000
SCAN_BATCHES_MAX = 512
L2_HOPS = ("received_routed", "batched_cleared", "cleared_anchored", "anchored_final", "received_final")
L1_HOPS = ("received_routed", "submitted_anchored", "anchored_final", "received_final")
TRADE_STATES = tuple(s.label for s in TradeState)


# ---------------------------------------------------------------------- cursors
def encode_cursor(**values: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *keys: str) -> dict[str, int] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or set(data) != set(keys):
            raise ValueError("keys")
        out = {k: data[k] for k in keys}
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in out.values()):
            raise ValueError("values")
        return out
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        raise bad_parameter("cursor", "not a cursor this API returned") from None


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _eff(gross: float, net: float) -> float | None:
    return round(1.0 - net / gross, 6) if gross > 0 else None


# ---------------------------------------------------------------------- trades
class LifecycleSource:
    """What :func:`clearlane.node.report.trade_lifecycle` reads: records from the read model's
    index, batches and L1 groups from the store (indexed by primary key)."""

    def __init__(self, rm: ReadModel) -> None:
        self.rm = rm
        self.store = rm.records.store

    def find_trade(self, flow_id: str) -> dict[str, Any] | None:
        return self.rm.find_trade(flow_id)

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        return self.store.batch(batch_id)

    def l1_group(self, group_id: str) -> dict[str, Any] | None:
        return self.store.l1_group(group_id)

    def l1_group_for_batch(self, batch_id: str) -> dict[str, Any] | None:
        return self.store.l1_group_for_batch(batch_id)

    def reject_reason(self, input_id: str, code: int) -> dict[str, Any] | None:
        return self.store.reject_reason(input_id, code)


def lifecycle(
    rt: Runtime, flow_id: str, principal: Principal, kind: int | None = None
) -> dict[str, Any] | None:
    rm = rt.rm
    with rt.lock:
        hit = rm.find(flow_id, kind=kind)
        if hit is None:
            return None
        record = rm.chunk_table(hit[0]).slice(hit[1], 1).to_pylist()[0]
        if not principal.may_see(record["buyer"], record["seller"]):
            return None
        life = trade_lifecycle(LifecycleSource(rm), flow_id)
    if life is None:
        return None
    cfg = rt.config
    scales = {a.code: a.scale for a in cfg.assets}
    transitions = [
        {"state": t["state"], "at_ms": int(t["at_ms"]), "at": t.get("at"), "detail": str(t["detail"])}
        for t in life["transitions"]
    ]
    received = transitions[0]["at"] if transitions else None
    code = int(record.get("reject_code") or 0)
    reject = None
    if code:
        rc = RejectCode(code)
        why = rt.store.reject_reason(flow_id, code)
        reject = {
            "code": code,
            "error": rc.slug,
            "field": why["field"] if why else "-",
            "reason": why["reason"] if why else rc.slug,
        }
    anchor = life.get("anchor")
    return {
        "id": life["id"],
        "kind": life["kind"],
        "buyer": life["buyer"],
        "seller": life["seller"],
        "base": life["base"],
        "quote": life["quote"],
        "quantity": format_minor(int(life["qty_minor"]), scales.get(life["base"], 0)),
        "quote_amount": format_minor(int(life["quote_minor"]), scales.get(life["quote"], 0)),
        "qty_minor": int(life["qty_minor"]),
        "quote_minor": int(life["quote_minor"]),
        "fees_minor": [int(x) for x in life["fees_minor"]],
        "exch_batch_id": life["exch_batch_id"],
        "executed_at": life["executed_at"],
        "received_at": received,
        "lane": life["lane"],
        "pool": life["pool"],
        "route_rule": life["route_rule"],
        "batch_id": life["batch_id"],
        "state": str(life["state"]),
        "final": life["state"] in (TradeState.FINAL.label, TradeState.REJECTED.label)
        or (life["state"] == TradeState.UNWOUND.label and life["l1_final_at"] is not None),
        "l2_cleared_at": life["l2_cleared_at"],
        "l1_final_at": life["l1_final_at"],
        "settled_manually_at": life.get("settled_manually_at"),
        "badge": life["badge"],
        "transitions": transitions,
        "anchor": None
        if anchor is None
        else {"tx": anchor.get("tx"), "height": anchor.get("height"), "at": anchor.get("at")},
        "root": life.get("root"),
        "reject": reject,
    }


@dataclass(frozen=True)
class _TradeFilter:
    """The trade list's filters, checked: each ``None`` means "any"."""

    participant: str | None
    lane: str | None
    pool: str | None
    batch: tuple[str, int] | None
    kind: str | None
    state: str | None
    id_prefix: str | None = None
    since_ms: int | None = None  # received at or after (engine time, epoch ms)
    until_ms: int | None = None  # received before


def trade_page(
    rt: Runtime,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    participant: str | None,
    lane: str | None,
    pool: str | None,
    state: str | None,
    batch_id: str | None,
    kind: str | None,
    id_prefix: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    finality: bool = False,
) -> dict[str, Any]:
    """A page of trades, newest first. ``id_prefix`` matches the start of the id; ``since_ms``
    and ``until_ms`` bound the receive time; ``finality`` adds both finality times per row
    (:func:`finality_times`: what the dashboard's Trades list shows)."""
    if not principal.reads_all:
        if participant is not None and participant != principal.participant:
            return {"items": [], "next_cursor": None}
        participant = principal.participant
    if state is not None and state not in TRADE_STATES:
        raise bad_parameter("state", f"one of {', '.join(TRADE_STATES)}")
    if lane is not None and lane not in ("L1", "L2"):
        raise bad_parameter("lane", "L1 or L2")
    if kind is not None and kind not in ("trade", "payment"):
        raise bad_parameter("kind", "trade or payment")
    batch = None
    if batch_id is not None:
        batch = model_ids.parse_batch_id(batch_id)
        if batch is None or batch[0] not in rt.rm.pool_lookup:
            return {"items": [], "next_cursor": None}
    pos = decode_cursor(cursor, "c", "r")
    wanted = _TradeFilter(participant, lane, pool, batch, kind, state, id_prefix or None, since_ms, until_ms)
    with rt.lock:
        items, next_cursor = _scan_trades(rt, wanted, pos, limit)
        if finality:
            finality_times(rt, items)
    for item in items:
        item.pop("l1_group", None)  # internal: where finality_times finds a gross transaction
    return {"items": items, "next_cursor": next_cursor}


def _scan_trades(
    rt: Runtime, wanted: _TradeFilter, pos: dict[str, int] | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first from the cursor's chunk and row, up to ``limit`` matches or SCAN_ROWS_MAX
    rows scanned; returns the matches and the cursor of the next page (caller holds the lock)."""
    rm = rt.rm
    items: list[dict[str, Any]] = []
    chunk = rm.records.n_chunks - 1 if pos is None else pos["c"]
    end = None if pos is None else pos["r"]
    scanned = 0
    next_cursor = None
    while chunk >= 0 and chunk < rm.records.n_chunks:
        table = rm.chunk_table(chunk)
        stop = table.num_rows if end is None else min(end, table.num_rows)
        view = table.slice(0, stop)
        mask, states = _trade_mask(rt, view, stop, wanted)
        rows = np.flatnonzero(mask)[::-1]
        # Records are appended in log order, so receive times only grow: a chunk that ends
        # before the window's start means no older chunk can match either.
        before_window = wanted.since_ms is not None and (
            stop == 0 or int(view.column("received_ms")[stop - 1].as_py()) < wanted.since_ms
        )
        room = limit - len(items)
        take = rows[:room]
        if len(take) and states is not None:
            items.extend(_summaries(rt, view.take(pa.array(take)), states[take]))
        scanned += stop
        if len(rows) > room:
            next_cursor = encode_cursor(c=chunk, r=int(take[-1]))
            break
        if before_window:
            break
        chunk -= 1
        end = None
        if len(items) >= limit or scanned >= SCAN_ROWS_MAX:
            if chunk >= 0:
                next_cursor = encode_cursor(c=chunk, r=int(rm.records.chunk_rows[chunk]))
            break
    return items, next_cursor


def _equal(column: pa.ChunkedArray, value: str) -> np.ndarray[Any, Any]:
    """``column == value`` as a numpy mask (nulls never match)."""
    matches = pc.equal(column.cast(pa.string()), pa.scalar(value, pa.string()))
    return pc.fill_null(matches, False).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _trade_mask(
    rt: Runtime, view: pa.Table, stop: int, wanted: _TradeFilter
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    """The rows of ``view`` that pass the filters, and the rows' current states (``None`` when
    no row can match, so they were not needed)."""
    mask = np.ones(stop, dtype=np.bool_)
    if wanted.participant is not None:
        who = pa.scalar(wanted.participant, pa.string())
        m = pc.or_(
            pc.equal(view.column("buyer").cast(pa.string()), who),
            pc.equal(view.column("seller").cast(pa.string()), who),
        )
        mask &= pc.fill_null(m, False).to_numpy(zero_copy_only=False)
    if wanted.lane is not None:
        mask &= _equal(view.column("lane"), wanted.lane)
    if wanted.pool is not None:
        mask &= _equal(view.column("pool"), wanted.pool)
    if wanted.batch is not None:
        mask &= _equal(view.column("pool"), wanted.batch[0])
        mask &= view.column("batch_seq").to_numpy() == wanted.batch[1]
    if wanted.kind is not None:
        mask &= view.column("kind").to_numpy() == (0 if wanted.kind == "trade" else 1)
    if wanted.id_prefix is not None:
        ids = view.column("flow_id").cast(pa.string())
        mask &= pc.fill_null(pc.starts_with(ids, wanted.id_prefix), False).to_numpy(zero_copy_only=False)
    if wanted.since_ms is not None or wanted.until_ms is not None:
        received = view.column("received_ms").to_numpy()
        if wanted.since_ms is not None:
            mask &= received >= wanted.since_ms
        if wanted.until_ms is not None:
            mask &= received < wanted.until_ms
    states = None
    if wanted.state is not None or mask.any():
        states = rt.rm.current_states(view)
        if wanted.state is not None:
            mask &= states == int(TradeState[wanted.state.upper()])
    return mask, states


def _summaries(rt: Runtime, table: pa.Table, states: np.ndarray[Any, Any]) -> list[dict[str, Any]]:
    scales = {a.code: a.scale for a in rt.config.assets}
    out = []
    for row, st in zip(table.to_pylist(), states.tolist(), strict=True):
        pool, seq = row["pool"], int(row["batch_seq"])
        out.append(
            {
                "id": row["flow_id"],
                "kind": "payment" if int(row["kind"]) == 1 else "trade",
                "buyer": row["buyer"],
                "seller": row["seller"],
                "base": row["base"],
                "quote": row["quote"],
                "quantity": format_minor(int(row["qty_minor"]), scales.get(row["base"], 0)),
                "quote_amount": format_minor(int(row["quote_minor"]), scales.get(row["quote"], 0)),
                "lane": row["lane"],
                "pool": pool,
                "batch_id": model_ids.batch_id_or_none(pool, seq),
                "state": TradeState(int(st)).label,
                "received_at_ms": int(row["received_ms"]),
                "received_at": iso(int(row["received_ms"])),
                "executed_at": iso(int(row["executed_ms"])),
                "exch_batch_id": row["exch_batch_id"],
                "reject_code": int(row["reject_code"]) or None,
                "l1_group": row.get("l1_group"),
            }
        )
    return out


def finality_times(rt: Runtime, items: list[dict[str, Any]]) -> None:
    """Add both finality times to trade summaries, in place (caller holds the lock).

    ``l2_cleared_at_ms``: the batch's clearing (Layer-2 soft finality) — ``None`` for an unwound
    batch, whose clearing no longer holds (``l2_voided_at_ms`` says when it was unwound);
    ``l1_final_at_ms``: base-layer finality — the batch's anchor final for Layer-2, the gross
    transaction's confirmations for Layer-1 and for an unwound batch's trades. Gross times come
    from the stored L1 group (one read per group on the page, a page holds few)."""
    rm = rt.rm
    groups: dict[str, dict[str, int]] = {}

    def l1_final(group_id: str | None, batch_id: str | None, flow_id: str) -> int | None:
        key = group_id or f"batch:{batch_id}"
        if key not in groups:
            groups[key] = {}
            # A group still settling is in the read model; a finished one only in the store.
            view = rm.l1_groups.get(group_id) if group_id else None
            row = (
                None
                if view is not None
                else rt.store.l1_group(group_id)
                if group_id
                else rt.store.l1_group_for_batch(batch_id)
                if batch_id
                else None
            )
            table = (
                view.table if view is not None else None if row is None else read_table(bytes(row["blob"]))
            )
            if table is not None:
                ids = table.column("flow_id").to_pylist()
                finals = table.column("final_ms").to_pylist()
                groups[key] = {
                    i: int(f) for i, f in zip(ids, finals, strict=True) if f is not None and f >= 0
                }
        return groups[key].get(flow_id)

    for item in items:
        cleared = voided = final = None
        k = rm.pool_lookup.get(item["pool"]) if item["pool"] else None
        seq = None if item["batch_id"] is None else model_ids.parse_batch_id(item["batch_id"])
        if item["state"] != TradeState.REJECTED.label and k is not None and seq is not None:
            pb, s = rm.batches.pool[k], seq[1]
            if s < len(pb.state) and pb.cleared_ms[s] >= 0:
                if int(pb.state[s]) == BatchState.UNWOUND:
                    voided = int(pb.unwound_ms[s])
                    final = l1_final(None, item["batch_id"], item["id"])
                else:
                    cleared = int(pb.cleared_ms[s])
                    final = int(pb.final_ms[s]) if pb.final_ms[s] >= 0 else None
        elif item["lane"] == "L1" and item["state"] == TradeState.FINAL.label:
            final = l1_final(item.get("l1_group"), None, item["id"])
        item["l2_cleared_at_ms"] = cleared
        item["l2_voided_at_ms"] = voided
        item["l1_final_at_ms"] = final
        item["l2_cleared_at"] = iso(cleared)
        item["l1_final_at"] = iso(final)


# ---------------------------------------------------------------------- batches
def _batch_dict(rm: ReadModel, k: int, s: int) -> dict[str, Any]:
    v = rm.batch_view(k, s)
    for name in ("opened", "cleared", "anchored", "final", "unwound"):
        v[f"{name}_at"] = iso(v[f"{name}_at_ms"])
    v["netting_efficiency"] = _eff(v["gross_usd"], v["net_usd"])
    v["liquidity_saved_usd"] = round(v["gross_usd"] - v["net_usd"], 2)
    return v


def _open_batch(rt: Runtime, k: int) -> dict[str, Any] | None:
    opened_batches = rt.queries.open_batches()
    if not opened_batches.is_open(k):
        return None
    s = int(opened_batches.seq[k])
    pool = rt.config.pools[k].id
    opened = int(opened_batches.opened_at_ms[k])
    return {
        "batch_id": model_ids.batch_id(pool, s),
        "pool": pool,
        "seq": s,
        "state": BatchState.OPEN.label,
        "flows": int(opened_batches.flows[k]),
        "opened_at_ms": opened,
        "cleared_at_ms": None,
        "anchored_at_ms": None,
        "final_at_ms": None,
        "unwound_at_ms": None,
        "opened_at": iso(opened),
        "cleared_at": None,
        "anchored_at": None,
        "final_at": None,
        "unwound_at": None,
        **_open_figures(rt, k, s, int(opened_batches.flows[k])),
    }


def _open_figures(rt: Runtime, k: int, s: int, flows: int) -> dict[str, Any]:
    """Gross and net (USD at current marks) of pool ``k``'s open batch ``s`` so far, as the
    engine will compute them when it closes: gross = every obligation (quantity, quote amount
    and both fees), net = the sum of the projected net debits. The records of an open batch are
    the newest: the scan stops once it has met ``flows`` of them (caller holds the lock)."""
    rm = rt.rm
    marks = rt.queries.liquidity().mark_per_minor
    net = float((np.maximum(0, -rt.queries.open_positions()[k]) * marks[None, :]).sum())
    codes_set = pa.array(rm.layout.asset_codes, pa.string())
    gross = 0.0
    seen = scanned = 0
    chunk = rm.records.n_chunks - 1
    pool = rm.pools[k]
    while chunk >= 0 and seen < flows and scanned < SCAN_ROWS_MAX:
        table = rm.chunk_table(chunk)
        scanned += table.num_rows
        mask = _equal(table.column("pool"), pool) & (table.column("batch_seq").to_numpy() == s)
        rows = np.flatnonzero(mask & (table.column("state").to_numpy() != TradeState.REJECTED))
        if len(rows):
            gross += _gross_usd(table.take(pa.array(rows)), codes_set, marks)
            seen += len(rows)
        chunk -= 1
    return {
        "gross_usd": round(gross, 2),
        "net_usd": round(net, 2),
        "netting_efficiency": _eff(gross, net),
        "liquidity_saved_usd": round(gross - net, 2),
    }


def _gross_usd(part: pa.Table, codes: pa.Array, marks: np.ndarray[Any, Any]) -> float:
    """USD at ``marks`` of every obligation of the records ``part``: quantity in the base asset,
    quote amount and both fees in the quote asset (what the engine's gross counts)."""

    def mark_of(column: str) -> np.ndarray[Any, Any]:
        index = pc.fill_null(pc.index_in(part.column(column).cast(pa.string()), value_set=codes), 0)
        return marks[index.to_numpy(zero_copy_only=False)]  # type: ignore[no-any-return]

    def minor(column: str) -> np.ndarray[Any, Any]:
        return part.column(column).to_numpy().astype(np.float64)  # type: ignore[no-any-return]

    quote = minor("quote_minor") + minor("fee_buyer_minor") + minor("fee_seller_minor")
    return float((minor("qty_minor") * mark_of("base") + quote * mark_of("quote")).sum())


def batch_page(
    rt: Runtime, *, limit: int, cursor: str | None, pool: str | None, state: str | None
) -> dict[str, Any]:
    rm = rt.rm
    if pool is not None and pool not in rm.pool_lookup:
        return {"items": [], "next_cursor": None}
    if state is not None and state not in BATCH_STATE_LABELS:
        raise bad_parameter("state", f"one of {', '.join(BATCH_STATE_LABELS)}")
    open_label = BatchState.OPEN.label
    pos = decode_cursor(cursor, "i")
    items: list[dict[str, Any]] = []
    with rt.lock:
        if pos is None and state in (None, open_label):
            for k in range(rm.layout.n_pools):
                if pool is None or rm.pools[k] == pool:
                    ob = _open_batch(rt, k)
                    if ob is not None:
                        items.append(ob)
        if state == open_label:
            return {"items": items[:limit], "next_cursor": None}
        i = rm.batches.n_batches - 1 if pos is None else min(pos["i"], rm.batches.n_batches) - 1
        want_pool = None if pool is None else rm.pool_lookup[pool]
        want_state = None if state is None else BatchState.of_label(state)
        next_cursor = None
        scanned = 0
        while i >= 0:
            k, s = int(rm.batches.order_pool[i]), int(rm.batches.order_seq[i])
            if (want_pool is None or k == want_pool) and (
                want_state is None or int(rm.batches.pool[k].state[s]) == want_state
            ):
                if len(items) >= limit:
                    next_cursor = encode_cursor(i=i + 1)
                    break
                items.append(_batch_dict(rm, k, s))
            i -= 1
            scanned += 1
            if scanned >= SCAN_ROWS_MAX and i >= 0:
                next_cursor = encode_cursor(i=i + 1)
                break
    return {"items": items, "next_cursor": next_cursor}


def batch_detail(rt: Runtime, batch_id: str) -> dict[str, Any] | None:
    rm = rt.rm
    parsed = model_ids.parse_batch_id(batch_id)
    # Only the canonical spelling names a batch (P1-7 does not name P1-00000007).
    if parsed is None or parsed[0] not in rm.pool_lookup or model_ids.batch_id(*parsed) != batch_id:
        return None
    pool_id, s = parsed
    k = rm.pool_lookup[pool_id]
    with rt.lock:
        open_now = rt.queries.open_batches()
        if open_now.is_open(k) and int(open_now.seq[k]) == s:
            return _open_batch(rt, k)
        if s >= len(rm.batches.pool[k].state) or rm.batches.pool[k].cleared_ms[s] < 0:
            return None
        out = _batch_dict(rm, k, s)
    stored = rt.store.batch(batch_id)
    if stored is not None:
        out["root"] = bytes(stored["root"]).hex()
        out["anchor_tx"] = stored["anchor_tx"]
        out["anchor_height"] = None if stored["anchor_height"] is None else int(stored["anchor_height"])
        out["attempts"] = int(stored["attempts"])
        out["events"] = [
            {
                "event": e["event"],
                "at_ms": int(e["at_ms"]),
                "at": iso(int(e["at_ms"])),
                "detail": str(e["detail"]),
            }
            for e in stored["events"]
        ]
    return out


def _net_rows(
    rt: Runtime, batch_id: str, pool: str, state: str, participant: str | None
) -> list[dict[str, Any]]:
    blob = rt.store.batch_net(batch_id)
    if blob is None:
        return []
    table = read_table(blob)
    if participant is not None:
        table = table.filter(pc.equal(table.column("participant"), pa.scalar(participant, pa.string())))
    scales = {a.code: a.scale for a in rt.config.assets}
    out = []
    for row in table.to_pylist():
        v = int(row["net_minor"])
        out.append(
            {
                "batch_id": batch_id,
                "pool": pool,
                "batch_state": state,
                "participant": row["participant"],
                "asset": row["asset"],
                "net_minor": v,
                "net": format_minor(v, scales.get(row["asset"], 0)),
                "direction": "receive" if v > 0 else "pay",
            }
        )
    return out


def net_instruction_page(
    rt: Runtime,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    batch_id: str | None,
    participant: str | None,
    pool: str | None,
) -> dict[str, Any]:
    rm = rt.rm
    if not principal.reads_all:
        if participant is not None and participant != principal.participant:
            return {"items": [], "next_cursor": None}
        participant = principal.participant
    if batch_id is not None:
        pos = decode_cursor(cursor, "o")
        offset = 0 if pos is None else pos["o"]
        with rt.lock:
            parsed = model_ids.parse_batch_id(batch_id)
            k = None if parsed is None else rm.pool_lookup.get(parsed[0])
            if parsed is None or k is None:
                return {"items": [], "next_cursor": None}
            pool_id, s = parsed
            code = int(rm.batches.pool[k].state[s]) if s < len(rm.batches.pool[k].state) else BatchState.OPEN
            state = BatchState(code).label
        rows = _net_rows(rt, batch_id, pool_id, state, participant)
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        return {"items": page, "next_cursor": encode_cursor(o=offset + limit) if more else None}
    pos = decode_cursor(cursor, "i", "o")
    items: list[dict[str, Any]] = []
    with rt.lock:
        i = rm.batches.n_batches - 1 if pos is None else min(pos["i"], rm.batches.n_batches - 1)
        targets = []
        scanned = 0
        while i >= 0 and scanned < SCAN_BATCHES_MAX:
            k, s = int(rm.batches.order_pool[i]), int(rm.batches.order_seq[i])
            if pool is None or rm.pools[k] == pool:
                targets.append(
                    (
                        i,
                        model_ids.batch_id(rm.pools[k], s),
                        rm.pools[k],
                        BatchState(int(rm.batches.pool[k].state[s])).label,
                    )
                )
            i -= 1
            scanned += 1
    offset = 0 if pos is None else pos["o"]
    next_cursor = None
    for idx, (i_batch, bid, pool_id, state) in enumerate(targets):
        rows = _net_rows(rt, bid, pool_id, state, participant)[offset if idx == 0 else 0 :]
        room = limit - len(items)
        if len(rows) > room:
            start = (offset if idx == 0 else 0) + room
            items.extend(rows[:room])
            next_cursor = encode_cursor(i=i_batch, o=start)
            break
        items.extend(rows)
    else:
        if targets and targets[-1][0] > 0:
            next_cursor = encode_cursor(i=targets[-1][0] - 1, o=0)
    return {"items": items, "next_cursor": next_cursor}


# ---------------------------------------------------------------------- positions and liquidity
def _positions_for(
    rt: Runtime,
    p: int,
    lane: str | None,
    asset: str | None,
    open_positions: np.ndarray[Any, Any],
    marks: np.ndarray[Any, Any] | None = None,
) -> list[dict[str, Any]]:
    """Participant ``p``'s positions per lane and asset; with ``marks`` (USD per minor unit) each
    also carries its USD value at those marks: settled (final) and pending (open + cleared)."""
    rm = rt.rm
    cfg = rt.config
    pid = rm.layout.participant_ids[p]
    out = []
    lanes: list[tuple[str, int | None]] = [(pool.lane_name, k) for k, pool in enumerate(cfg.pools)] + [
        ("L1", None)
    ]
    for lane_name, k in lanes:
        if (
            lane is not None
            and lane not in (lane_name, lane_name.removeprefix("L2:"))
            and not (lane == "L2" and k is not None)
        ):
            continue
        for a, code in enumerate(rm.layout.asset_codes):
            if asset is not None and asset != code:
                continue
            if k is not None:
                o, pe, f = (
                    int(open_positions[k, p, a]),
                    int(rm.positions.cleared_net[k, p, a]),
                    int(rm.positions.final_net[k, p, a]),
                )
            else:
                o, pe, f = 0, int(rm.positions.l1_pending[p, a]), int(rm.positions.l1_final[p, a])
            if o == 0 and pe == 0 and f == 0:
                continue
            sc = rm.layout.scales[a]
            out.append(
                {
                    "participant": pid,
                    "lane": lane_name,
                    "asset": code,
                    "open_minor": o,
                    "pending_minor": pe,
                    "final_minor": f,
                    "open": format_minor(o, sc),
                    "pending": format_minor(pe, sc),
                    "final": format_minor(f, sc),
                    **(
                        {}
                        if marks is None
                        else {
                            "final_usd": round(f * float(marks[a]), 2),
                            "pending_usd": round((o + pe) * float(marks[a]), 2),
                        }
                    ),
                }
            )
    return out


def participant_positions(rt: Runtime, participant: str) -> dict[str, Any] | None:
    rm = rt.rm
    p = rm.layout.participant_lookup.get(participant)
    if p is None:
        return None
    with rt.lock:
        marks = rt.queries.liquidity().mark_per_minor
        positions = _positions_for(rt, p, None, None, rt.queries.open_positions(), marks)
        books = rt.queries.account_balances()
        balances = []
        for a, code in enumerate(rm.layout.asset_codes):
            av, co = int(books.available[p, a]), int(books.collateral[p, a])
            fl, held = int(books.in_flight[p, a]), int(books.held[p, a])
            if av == co == fl == held == 0:
                continue
            sc = rm.layout.scales[a]
            balances.append(
                {
                    "asset": code,
                    "available_minor": av,
                    "collateral_minor": co,
                    "in_flight_minor": fl,
                    "held_minor": held,
                    "available": format_minor(av, sc),
                    "collateral": format_minor(co, sc),
                    "in_flight": format_minor(fl, sc),
                    "held": format_minor(held, sc),
                }
            )
        now = max(rt.queries.engine_time_ms(), rm.now_ms)
    return {"participant": participant, "as_of_ms": now, "positions": positions, "balances": balances}


def _participant_range(
    rt: Runtime, principal: Principal, participant: str | None, cursor: str | None
) -> list[int]:
    """Participant indices a page may cover, from the cursor on (a participant key: itself)."""
    rm = rt.rm
    if not principal.reads_all:
        if participant is not None and participant != principal.participant:
            return []
        participant = principal.participant
    if participant is not None:
        p = rm.layout.participant_lookup.get(participant)
        return [] if p is None else [p]
    pos = decode_cursor(cursor, "p")
    return list(range(0 if pos is None else pos["p"], len(rt.config.participants)))


def position_page(
    rt: Runtime,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    participant: str | None,
    lane: str | None,
    asset: str | None,
) -> dict[str, Any]:
    ps = _participant_range(rt, principal, participant, cursor)
    items: list[dict[str, Any]] = []
    next_cursor = None
    with rt.lock:
        open_positions = rt.queries.open_positions()
        marks = rt.queries.liquidity().mark_per_minor
        for p in ps:
            rows = _positions_for(rt, p, lane, asset, open_positions, marks)
            if items and len(items) + len(rows) > limit:
                next_cursor = encode_cursor(p=p)
                break
            items.extend(rows)
        now = max(rt.queries.engine_time_ms(), rt.rm.now_ms)
    return {"as_of_ms": now, "items": items, "next_cursor": next_cursor}


def liquidity_page(
    rt: Runtime, principal: Principal, *, limit: int, cursor: str | None, participant: str | None
) -> dict[str, Any]:
    ps = _participant_range(rt, principal, participant, cursor)
    cfg = rt.config
    items = []
    next_cursor = None
    with rt.lock:
        liquidity = rt.queries.liquidity()
        collateral_usd, credit = liquidity.collateral_usd, liquidity.credit_usd
        for n, p in enumerate(ps):
            if n >= limit:
                next_cursor = encode_cursor(p=p)
                break
            part = cfg.participants[p]
            limit_usd = float(liquidity.available_usd[p])
            debit = float(liquidity.debit_usd[p])
            items.append(
                {
                    "participant": part.id,
                    "kind": str(part.kind.value),
                    "collateral_usd": round(float(collateral_usd[p]), 2),
                    "credit_limit_usd": round(float(credit[p]), 2),
                    "limit_usd": round(limit_usd, 2),
                    "projected_net_debit_usd": round(debit, 2),
                    "headroom_usd": round(limit_usd - debit, 2),
                    "utilisation": round(debit / limit_usd, 6) if limit_usd > 0 else None,
                    "by_pool_usd": {
                        pool.id: round(float(liquidity.debit_by_pool_usd[k, p]), 2)
                        for k, pool in enumerate(cfg.pools)
                    },
                }
            )
        now = max(rt.queries.engine_time_ms(), rt.rm.now_ms)
    return {"as_of_ms": now, "items": items, "next_cursor": next_cursor}


# ---------------------------------------------------------------------- dashboard aggregates
def _pct(counts: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {"p50": _r(percentile(counts, 0.5)), "p99": _r(percentile(counts, 0.99)), "n": int(counts.sum())}


def _state_counts(row: np.ndarray[Any, Any]) -> dict[str, int]:
    return {name: int(row[i]) for i, name in enumerate(STATE_KEYS)}


def overview(rt: Runtime) -> dict[str, Any]:
    rm = rt.rm
    open_batches = rt.queries.open_batches()
    lanes = []
    for k, pool in enumerate(rm.pools):
        g, n = float(rm.batches.gross_usd[k]), float(rm.batches.net_usd[k])
        bc = rm.batches.counts[k]
        lanes.append(
            {
                "lane": "L2",
                "pool": pool,
                "trades": _state_counts(rm.activity.counts[k]),
                "batches": {
                    # The open batch is the engine's (the read model counts closed ones only).
                    BatchState.OPEN.label: int(open_batches.is_open(k)),
                    **{b.label: int(bc[b]) for b in BatchState if b != BatchState.OPEN},
                },
                "cleared_latency_ms": _pct(rm.activity.latency[k, H["batched_cleared"]]),
                "finality_latency_ms": _pct(rm.activity.latency[k, H["received_final"]]),
                "netting_efficiency": _eff(g, n),
                "gross_usd": round(g, 2),
                "net_usd": round(n, 2),
                "liquidity_saved_usd": round(g - n, 2),
            }
        )
    lanes.append(
        {
            "lane": "L1",
            "pool": None,
            "trades": _state_counts(rm.activity.counts[rm.l1]),
            "batches": None,
            "cleared_latency_ms": None,
            "finality_latency_ms": _pct(rm.activity.latency[rm.l1, H["received_final"]]),
            "netting_efficiency": None,
            "gross_usd": 0.0,
            "net_usd": 0.0,
            "liquidity_saved_usd": 0.0,
        }
    )
    totals = rm.activity.counts.sum(axis=0)
    totals[STATE_KEYS.index("rejected")] += rm.activity.rejected_total
    g, n = float(rm.batches.gross_usd.sum()), float(rm.batches.net_usd.sum())
    now = rt.clock.now_ms()
    return {
        "as_of_ms": rm.now_ms,
        "as_of": iso(rm.now_ms),
        "applied_seq": rm.applied_seq,
        "clock": {
            "mode": rt.clock.mode,
            "speed": float(rt.clock.speed),
            "now_ms": now,
            "now": iso(now),
            # An accelerated clock paced to the engine says when it was held back (issue 11).
            **(rt.clock.status() if isinstance(rt.clock, AcceleratedClock) else {}),
        },
        "block_height": rt.queries.tip_height(),
        "anchor_backlog": int(rm.batches.counts[:, BatchState.CLEARED].sum()),
        "lanes": lanes,
        "totals": {
            "trades": _state_counts(totals),
            "duplicates": rm.activity.duplicates,
            "netting_efficiency": _eff(g, n),
            "gross_usd": round(g, 2),
            "net_usd": round(n, 2),
            "liquidity_saved_usd": round(g - n, 2),
        },
        "rejects_by_code": dict(sorted(rm.activity.rejects_by_code.items())),
        "open_alerts": [{**a, "at": iso(a["at_ms"])} for a in rm.activity.alerts[-50:]],
        "queues": rt.queue_lengths(),
    }


def _timeline(rm: ReadModel, since_ms: int, bucket_ms: int | None) -> tuple[int, list[tuple[int, Any]]]:
    """Pick the finest timeline covering ``since_ms`` and regroup its buckets to ``bucket_ms``."""
    chosen = rm.activity.timelines[-1]
    for t in rm.activity.timelines:
        oldest = (t.newest - t.retention + 1) * t.bucket_ms
        if since_ms >= oldest or t is rm.activity.timelines[-1]:
            chosen = t
            break
    width = (
        chosen.bucket_ms
        if bucket_ms is None
        else max(chosen.bucket_ms, (bucket_ms // chosen.bucket_ms) * chosen.bucket_ms)
    )
    groups: dict[int, list[Any]] = {}
    for start, bucket in chosen.window(since_ms, max(rm.now_ms, since_ms)):
        groups.setdefault(start // width * width, []).append(bucket)
    return width, sorted(groups.items())


def latency(
    rt: Runtime, *, since_ms: int | None, bucket_s: int | None, pool: str | None, hop: str | None
) -> dict[str, Any]:
    rm = rt.rm
    if hop is not None and hop not in HOPS:
        raise bad_parameter("hop", f"one of {', '.join(HOPS)}")
    if pool is not None and pool != "L1" and pool not in rm.pool_lookup:
        raise bad_parameter("pool", "a configured pool id or L1")
    since = rm.now_ms - 3_600_000 if since_ms is None else since_ms
    width, groups = _timeline(rm, since, None if bucket_s is None else bucket_s * 1000)
    series = []
    for lk, name in enumerate(rm.layout.lane_keys):
        is_l1 = lk == rm.l1
        if pool is not None and pool != name:
            continue
        for hp in L1_HOPS if is_l1 else L2_HOPS:
            if hop is not None and hop != hp:
                continue
            h = H[hp]
            buckets = []
            for start, members in groups:
                counts = sum(b.latency[lk, h] for b in members)
                if int(counts.sum()) == 0:
                    continue
                buckets.append(
                    {
                        "start_ms": start,
                        "start": iso(start),
                        "counts": [int(x) for x in counts],
                        "p50": _r(percentile(counts, 0.5)),
                        "p99": _r(percentile(counts, 0.99)),
                        "n": int(counts.sum()),
                    }
                )
            series.append(
                {
                    "lane": "L1" if is_l1 else "L2",
                    "pool": None if is_l1 else name,
                    "hop": hp,
                    "total": _pct(rm.activity.latency[lk, h]),
                    "buckets": buckets,
                }
            )
    queue_buckets = []
    for start, members in groups:
        merged: dict[str, int] = {}
        for b in members:
            for qn, qv in b.queues.items():
                merged[qn] = max(merged.get(qn, 0), qv)
        if merged:
            queue_buckets.append({"start_ms": start, "start": iso(start), "max": merged})
    return {
        "as_of_ms": rm.now_ms,
        "since_ms": since,
        "bucket_ms": width,
        "edges_ms": [float(x) for x in LATENCY_EDGES_MS],
        "hops": list(HOPS),
        "series": series,
        "queues": {"current": rt.queue_lengths(), "buckets": queue_buckets},
    }


def savings(rt: Runtime, *, since_ms: int | None, bucket_s: int | None) -> dict[str, Any]:
    rm = rt.rm
    day_start = rm.now_ms - rm.now_ms % 86_400_000
    since = day_start if since_ms is None else since_ms
    width, groups = _timeline(rm, since, (bucket_s or 900) * 1000)
    pools = list(range(rm.layout.n_pools))
    l2_clear, l2_fin, l1_fin = H["batched_cleared"], H["received_final"], H["received_final"]
    buckets = []
    cumulative = 0.0
    tot_clear = np.zeros_like(rm.activity.latency[0, 0])
    tot_l2_fin = np.zeros_like(tot_clear)
    tot_l1_fin = np.zeros_like(tot_clear)
    gross = net = 0.0
    for start, members in groups:
        g = float(sum(b.gross_usd.sum() for b in members))
        n = float(sum(b.net_usd.sum() for b in members))
        c = sum(b.latency[pools, l2_clear].sum(axis=0) for b in members)
        f2 = sum(b.latency[pools, l2_fin].sum(axis=0) for b in members)
        f1 = sum(b.latency[rm.l1, l1_fin] for b in members)
        tot_clear = tot_clear + c
        tot_l2_fin = tot_l2_fin + f2
        tot_l1_fin = tot_l1_fin + f1
        gross += g
        net += n
        cumulative += g - n
        trades = sum(b.trades for b in members)
        buckets.append(
            {
                "start_ms": start,
                "start": iso(start),
                "trades_l2": int(trades[: rm.layout.n_pools].sum()),
                "trades_l1": int(trades[rm.l1]),
                "gross_usd": round(g, 2),
                "net_usd": round(n, 2),
                "liquidity_saved_usd": round(g - n, 2),
                "cumulative_liquidity_saved_usd": round(cumulative, 2),
                "netting_efficiency": _eff(g, n),
                **_p50s(c, f2, f1),
            }
        )
    return {
        "as_of_ms": rm.now_ms,
        "since_ms": since,
        "bucket_ms": width,
        "totals": {
            "gross_usd": round(gross, 2),
            "net_usd": round(net, 2),
            "liquidity_saved_usd": round(gross - net, 2),
            "netting_efficiency": _eff(gross, net),
            **_p50s(tot_clear, tot_l2_fin, tot_l1_fin),
        },
        "pools": _pool_savings(rm, groups),
        "buckets": buckets,
    }


def _p50s(cleared: Any, l2_final: Any, l1_final: Any) -> dict[str, float | None]:
    """Median latencies from histograms: L2 cleared and final, L1 final, and what L2 saves."""
    cp, lp = percentile(cleared, 0.5), percentile(l1_final, 0.5)
    return {
        "l2_cleared_p50_ms": _r(cp),
        "l2_final_p50_ms": _r(percentile(l2_final, 0.5)),
        "l1_final_p50_ms": _r(lp),
        "latency_saved_ms": _r(lp - cp) if lp is not None and cp is not None else None,
    }


def _pool_savings(rm: ReadModel, groups: list[tuple[int, Any]]) -> list[dict[str, Any]]:
    pool_rows = []
    for k, pool in enumerate(rm.pools):
        pg = float(sum(b.gross_usd[k] for _, members in groups for b in members))
        pn = float(sum(b.net_usd[k] for _, members in groups for b in members))
        pool_rows.append(
            {
                "pool": pool,
                "gross_usd": round(pg, 2),
                "net_usd": round(pn, 2),
                "liquidity_saved_usd": round(pg - pn, 2),
                "netting_efficiency": _eff(pg, pn),
            }
        )
    return pool_rows


def stats_event(rt: Runtime) -> dict[str, Any]:
    """The coalesced ``stats`` stream event: the overview without the alert texts."""
    data = overview(rt)
    data["open_alerts"] = len(data["open_alerts"])
    data["trades_received"] = rt.rm.records.trades_received
    return data
