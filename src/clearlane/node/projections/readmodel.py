"""The service's read model: the projections of the committed history, fed by every committed
:class:`~clearlane.core.model.events.Step` (live, and for every step replayed when the node
opens, so it is rebuilt identically on restart), and the lifecycle events each step produces.

One projection per resource, each in its own module:

* :class:`~clearlane.node.projections.records.TradeRecords` — trade records by id (columnar,
  cached, re-read from the store; never one Python object per trade);
* :class:`~clearlane.node.projections.batches.Batches` — every L2 batch per pool, and
  :class:`~clearlane.node.projections.batches.BatchMembers` — who is on open and in-flight
  batches;
* :class:`~clearlane.node.projections.l1.L1Groups` — L1 gross settlement groups;
* :class:`~clearlane.node.projections.positions.Positions` — positions per participant, lane
  and asset (cleared-not-final, final; L1 pending and final);
* :class:`~clearlane.node.projections.activity.Activity` — trades by lane and state, rejects,
  latency per hop, the timelines, alerts.

:class:`ReadModel` routes each step's records and events to them, in lifecycle order, and
returns the step's lifecycle events as columnar :class:`~clearlane.node.events.EventGroup`
objects (the runtime publishes them after the commit). It is the one query surface drivers
read (``find``, ``find_trade``, ``current_states``, ``batch_view`` and the projections).

Thread safety: the runtime's loop thread is the only writer; readers take the runtime lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine.core import LogEntry
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import (
    Alert,
    BatchAnchored,
    BatchCleared,
    BatchFinal,
    BatchReorged,
    BatchUnwound,
    L1GroupUpdated,
    Step,
    batch_event_row,
)
from clearlane.core.model.states import TradeState
from clearlane.core.monitor import synthetic
from clearlane.node.events import (
    BATCH_ANCHORED,
    BATCH_CLEARED,
    BATCH_FINAL,
    BATCH_UNWOUND,
    TRADE_SETTLED_MANUALLY,
    AlertEvent,
    BatchEvent,
    EventGroup,
    TradeEvents,
)
from clearlane.node.ports import FlowIdArchive, Store
from clearlane.node.projections.activity import Activity
from clearlane.node.projections.batches import EMPTY_TRADES, Batches, BatchMembers
from clearlane.node.projections.common import (
    B_ANCHORED,
    B_CLEARED,
    B_FINAL,
    B_UNWOUND,
    I64,
    Layout,
    Mask,
    as_string,
    dict_codes,
    hist,
)
from clearlane.node.projections.l1 import L1Change, L1Groups, L1View
from clearlane.node.projections.positions import NO_LEGS, Positions
from clearlane.node.projections.records import CACHE_ROWS, TradeRecords

# Alerts that begin with this reject slug are ledger refusals the engine turned into data.
_LEDGER_REFUSED = RejectCode.LEDGER_REFUSED.slug


class ReadModel:
    """See the module docstring."""

    def __init__(
        self,
        config: ClearingConfig,
        store: Store,
        *,
        cache_rows: int = CACHE_ROWS,
        bucket_ms: int = 10_000,
        retention_buckets: int = 1_500,
        bounded: bool = False,
        hot_ids: int = 1 << 18,
    ) -> None:
        self.config = config
        self.layout = Layout.of(config)
        self.records = TradeRecords(store, cache_rows=cache_rows, bounded=bounded, hot_ids=hot_ids)
        self.batches = Batches(self.layout)
        self.members = BatchMembers(self.layout)
        self.l1_groups = L1Groups()
        self.positions = Positions(self.layout)
        self.activity = Activity(self.layout, bucket_ms, retention_buckets)
        self.applied_seq = 0
        self.now_ms = 0
        # Canaries (synthetic participants, node/monitor) never count in client figures or
        # savings: their trade counts and batch volume are left out of the timeline and totals.
        self.synthetic = config.synthetic_ids
        self.synthetic_gross: dict[tuple[int, int], tuple[int, float]] = {}  # (pool, seq) → (flows, USD)
        self.mark_minor = {
            a.code: m / 10**a.scale for a, m in zip(config.assets, config.marks_usd, strict=True)
        }

    # -- the query surface -----------------------------------------------------------------
    @property
    def archive(self) -> FlowIdArchive | None:
        return self.records.archive

    @archive.setter
    def archive(self, archive: FlowIdArchive | None) -> None:
        self.records.archive = archive

    @property
    def pools(self) -> list[str]:
        return self.layout.pools

    @property
    def pool_lookup(self) -> dict[str, int]:
        return self.layout.pool_lookup

    @property
    def l1(self) -> int:
        """The lane key of L1 (after the pools)."""
        return self.layout.l1

    @property
    def chunk_seq(self) -> I64:
        return self.records.chunk_seq

    def find(self, flow_id: str, kind: int | None = None) -> tuple[int, int] | None:
        """(chunk, row) of the record of ``flow_id`` (newest if trade and payment share it)."""
        return self.records.find(flow_id, kind)

    def find_trade(self, flow_id: str) -> dict[str, Any] | None:
        """The stored record dict of one flow, like :meth:`Store.find_trade`."""
        return self.records.find_trade(flow_id)

    def chunk_table(self, chunk: int) -> pa.Table:
        return self.records.chunk_table(chunk)

    def maybe_known(self, ids: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.bool_]:
        """Trade ids that may have a record (a hit still needs :meth:`find`; a miss is certain)."""
        return self.records.maybe_known(ids)

    def batch_view(self, k: int, s: int) -> dict[str, Any]:
        return self.batches.view(k, s)

    def current_states(self, table: pa.Table) -> npt.NDArray[np.int8]:
        """Each record's current lifecycle state (TradeState values), vectorised."""
        state = table.column("state").to_numpy().astype(np.int8).copy()
        pool = dict_codes(table.column("pool"), self.layout.pool_lookup)
        seq = table.column("batch_seq").to_numpy()
        self.batches.trade_states(state, pool, seq, state != TradeState.REJECTED)
        l1_rows = np.flatnonzero((pool < 0) & (state == TradeState.SUBMITTED))
        if len(l1_rows):
            self.l1_groups.trade_states(table, state, l1_rows)
        out: npt.NDArray[np.int8] = state
        return out

    # ================================================================== apply
    def apply(self, entry: LogEntry, step: Step) -> list[EventGroup]:
        """Fold one committed step in; return its lifecycle events (in lifecycle order).

        Records come first (a batch's trades are known before it clears), then clearings, then
        the other batch transitions, L1 groups and alerts, each in the engine's order."""
        events: list[EventGroup] = []
        self.applied_seq = entry.seq
        self.now_ms = max(self.now_ms, entry.at_ms)
        for part, table in enumerate(step.tables()):
            if table.num_rows:
                self._add_records(step, part, table, events)
        for b in step.cleared():
            self._batch_cleared(step.seq, b, events)
        self._batch_transitions(step, events)
        for update in step.l1_updates():
            self._l1_group(step, update, events)
        for index, event in enumerate(e for e in step.events if isinstance(e, Alert)):
            self.activity.alert("critical", event.message, event.at_ms)
            kind = event.message.split(" ", 1)[0] if event.message.startswith(_LEDGER_REFUSED) else "alert"
            by_kind = self.activity.alerts_by_kind
            by_kind[kind] = by_kind.get(kind, 0) + 1
            events.append(AlertEvent(step.seq, event.at_ms, index, kind, event.message))
        self.activity.duplicates += step.duplicates
        return events

    # -- trade records ---------------------------------------------------------------------
    def _add_records(self, step: Step, part: int, table: pa.Table, events: list[EventGroup]) -> None:
        self.records.register(step.seq, part, table)
        pool = dict_codes(table.column("pool"), self.layout.pool_lookup)
        rejected = table.column("state").to_numpy() == TradeState.REJECTED
        live = ~rejected
        l2 = live & (pool >= 0)
        canary = synthetic.synthetic_mask(table, self.synthetic) if self.synthetic else None
        self.activity.records(table, pool, live, l2, rejected, None if canary is None else ~canary)
        if canary is not None and canary.any():
            self._canary_volume(table, pool, canary & l2)
        if l2.any():
            self.members.add_open(table, pool, l2)
        self._record_events(step, table, pool, live, l2, rejected, events)

    def _record_events(
        self,
        step: Step,
        table: pa.Table,
        pool: npt.NDArray[Any],
        live: Mask,
        l2: Mask,
        rejected: Mask,
        events: list[EventGroup],
    ) -> None:
        """trade.received / routed / batched / rejected for the chunk, as columnar groups."""
        seq, n = step.seq, table.num_rows
        at = int(table.column("received_ms").to_numpy()[-1])
        pools = self.pools
        base: list[pa.Table] = []

        def columns() -> pa.Table:
            if not base:
                base.append(_trade_columns(table, _lane_names(table), pools, pool))
            return base[0]

        live_rows = np.flatnonzero(live)
        if len(live_rows):
            sel = columns if len(live_rows) == n else _lazy_take(columns, live_rows)
            for kind in ("trade.received", "trade.routed"):
                events.append(TradeEvents(kind, seq, at, sel, len(live_rows)))
            if l2.any():
                l2_rows = np.flatnonzero(l2)
                events.append(
                    TradeEvents("trade.batched", seq, at, _lazy_take(columns, l2_rows), len(l2_rows))
                )
        if rejected.any():
            events.append(
                TradeEvents("trade.rejected", seq, at, _rejected_columns(step, table, columns(), rejected))
            )

    # -- batches ---------------------------------------------------------------------------
    def _batch_cleared(self, seq: int, b: BatchCleared, events: list[EventGroup]) -> None:
        if self.synthetic:
            b = self._without_canaries(self.layout.pool_lookup[b.pool], b)
        k, s = self.batches.cleared(b)
        n, cleared_ms = b.flows, b.cleared_at_ms
        self.activity.move(k, "batched", "cleared", n)
        received = np.asarray(b.received_ms, dtype=np.int64)
        self.activity.add_latency(k, "batched_cleared", hist(cleared_ms - received), cleared_ms)
        self.activity.batch_volume(k, b.gross_usd, b.net_usd, cleared_ms)
        flight = self.members.cleared(k, b)
        self.positions.batch_cleared(flight)
        batch_id, pool_id, trades = b.batch_id, self.layout.pools[k], flight.trades
        events.append(BatchEvent(BATCH_CLEARED, seq, cleared_ms, batch_id, pool_id, self.batch_view(k, s)))
        events.append(
            TradeEvents(
                "trade.cleared",
                seq,
                cleared_ms,
                lambda: _batch_trade_columns(trades, batch_id, pool_id),
                trades.num_rows,
            )
        )

    def _canary_volume(self, table: pa.Table, pool: npt.NDArray[Any], rows: Mask) -> None:
        seqs = table.column("batch_seq").to_numpy()
        for i in np.flatnonzero(rows).tolist():
            key = (int(pool[i]), int(seqs[i]))
            share = synthetic.gross_usd(table.slice(i, 1), self.mark_minor)
            flows, usd = self.synthetic_gross.get(key, (0, 0.0))
            self.synthetic_gross[key] = (flows + 1, usd + share)

    def _without_canaries(self, k: int, b: BatchCleared) -> BatchCleared:
        flows, gross = self.synthetic_gross.pop((k, b.seq), (0, 0.0))
        if flows == b.flows:  # a batch of canaries only (exact: no rounding residue)
            return replace(b, gross_usd=0.0, net_usd=0.0)
        net = synthetic.net_debit_usd(
            b.net_participant, b.net_asset, b.net_minor, self.synthetic, self.mark_minor
        )
        if gross == 0.0 and net == 0.0:
            return b
        return replace(b, gross_usd=max(0.0, b.gross_usd - gross), net_usd=max(0.0, b.net_usd - net))

    def _batch_transitions(self, step: Step, events: list[EventGroup]) -> None:
        for event in step.events:
            match event:
                case BatchAnchored():
                    self._batch_anchored(step.seq, event, events)
                case BatchReorged():
                    self._batch_reorged(event)
                case BatchFinal():
                    self._batch_final(step.seq, event, events)
                case BatchUnwound():
                    self._batch_unwound(step.seq, event, events)

    def _batch_to(self, k: int, s: int, src: int, dst: int, trades_from: str | None = None) -> int:
        """Batch ``s`` of pool ``k`` goes from ``src`` to ``dst``, its trades with it; returns
        how many trades it holds."""
        n = int(self.batches.pool[k].flows[s])
        self.batches.move(k, s, src, dst)
        self.activity.batch_moved(k, n, src, dst, trades_from)
        return n

    def _batch_anchored(self, seq: int, event: BatchAnchored, events: list[EventGroup]) -> None:
        batch_id, at_ms = event.batch_id, event.at_ms
        k, s = self.batches.key(batch_id)
        pb, pool_id = self.batches.pool[k], self.layout.pools[k]
        n = self._batch_to(k, s, B_CLEARED, B_ANCHORED)
        pb.anchored_ms[s] = at_ms
        wait = at_ms - int(pb.cleared_ms[s])
        self.activity.add_latency(k, "cleared_anchored", hist(np.array([wait]), np.array([n])), at_ms)
        view = {**self.batch_view(k, s), "anchor": batch_event_row(event)[3]}
        events.append(BatchEvent(BATCH_ANCHORED, seq, at_ms, batch_id, pool_id, view))
        flight = self.members.inflight.get(batch_id)
        if flight is not None:
            events.append(_batch_events("trade.anchored", seq, at_ms, flight.trades, batch_id, pool_id))

    def _batch_reorged(self, event: BatchReorged) -> None:
        k, s = self.batches.key(event.batch_id)
        self._batch_to(k, s, B_ANCHORED, B_CLEARED)
        self.batches.pool[k].anchored_ms[s] = -1
        detail = batch_event_row(event)[3]  # the stored detail text
        self.activity.alert("warning", f"batch {event.batch_id} anchor reorged out: {detail}", event.at_ms)

    def _batch_final(self, seq: int, event: BatchFinal, events: list[EventGroup]) -> None:
        batch_id, at_ms = event.batch_id, event.at_ms
        k, s = self.batches.key(batch_id)
        pb, pool_id = self.batches.pool[k], self.layout.pools[k]
        n = self._batch_to(k, s, B_ANCHORED, B_FINAL)
        pb.final_ms[s] = at_ms
        wait = at_ms - int(pb.anchored_ms[s])
        self.activity.add_latency(k, "anchored_final", hist(np.array([wait]), np.array([n])), at_ms)
        flight = self.members.inflight.pop(batch_id, None)
        if flight is not None:
            self.activity.add_latency(k, "received_final", hist(at_ms - flight.received_ms), at_ms)
            self.positions.batch_final(flight)
            events.append(_batch_events("trade.final", seq, at_ms, flight.trades, batch_id, pool_id))
        events.append(BatchEvent(BATCH_FINAL, seq, at_ms, batch_id, pool_id, self.batch_view(k, s)))

    def _batch_unwound(self, seq: int, event: BatchUnwound, events: list[EventGroup]) -> None:
        batch_id, at_ms = event.batch_id, event.at_ms
        k, s = self.batches.key(batch_id)
        pb, pool_id = self.batches.pool[k], self.layout.pools[k]
        was = int(pb.state[s])
        trades_from = "anchored" if was == B_ANCHORED else "cleared"
        self._batch_to(k, s, was, B_UNWOUND, trades_from=trades_from)
        pb.unwound_ms[s] = at_ms
        self.activity.alert("critical", f"batch {batch_id} unwound: {event.reason}", at_ms)
        flight = self.members.inflight.pop(batch_id, None)
        if flight is not None:
            self.positions.batch_unwound(flight)
            self.members.unwound[batch_id] = flight
            events.append(_batch_events("trade.unwound", seq, at_ms, flight.trades, batch_id, pool_id))
        view = {**self.batch_view(k, s), "reason": event.reason}
        events.append(BatchEvent(BATCH_UNWOUND, seq, at_ms, batch_id, pool_id, view))

    # -- L1 ----------------------------------------------------------------------------------
    def _l1_group(self, step: Step, update: L1GroupUpdated, events: list[EventGroup]) -> None:
        view = self.l1_groups.get(update.group_id)
        if view is None:
            origin = "routed" if update.opened is None else update.opened.origin
            view = self._new_l1_view(update.group_id, origin, update.table, step)
            self.l1_groups.add(view)
        change = self.l1_groups.update(view, update.table)
        if view.routed:
            lk = self.layout.l1
            self.activity.move(lk, "submitted", "anchored", len(change.new_included))
            self.activity.move(lk, "anchored", "submitted", len(change.lost))
            manual = int(np.count_nonzero(_manual_rows(view, change.new_final)))
            self.activity.move(lk, "anchored", "final", len(change.new_final) - manual)
            self.activity.move(lk, "submitted", "final", manual)
        if len(change.new_included):
            self._l1_included(step.seq, change, events)
        if len(change.new_final):
            self._l1_final(step.seq, change, events)
        if change.done and view.unwound_net is not None:
            self.positions.unwound_final(view.unwound_net)
            view.unwound_net = None

    def _l1_included(self, seq: int, change: L1Change, events: list[EventGroup]) -> None:
        view, rows = change.view, change.new_included
        submitted = view.table.column("submitted_ms").to_numpy()[rows]
        inc_ms = view.table.column("included_ms").to_numpy()[rows]
        at = int(inc_ms.max())
        self.activity.add_latency(self.layout.l1, "submitted_anchored", hist(inc_ms - submitted), at)
        events.append(TradeEvents("trade.anchored", seq, at, _rows_of(view.trades, rows)))

    def _l1_final(self, seq: int, change: L1Change, events: list[EventGroup]) -> None:
        view, rows = change.view, change.new_final
        manual = _manual_rows(view, rows)
        if manual.any():  # settled off-system (issue 17): books settled, not final on a chain
            if len(view.legs[0]):
                newly = np.zeros(len(view.final), dtype=np.bool_)
                newly[rows[manual]] = True
                self.positions.l1_final_rows(view.legs, newly)
            at = int(view.table.column("final_ms").to_numpy()[rows[manual]].max())
            taken = view.trades.take(pa.array(rows[manual]))
            events.append(TradeEvents(TRADE_SETTLED_MANUALLY, seq, at, taken))
            rows = rows[~manual]
            if not len(rows):
                return
        fin_ms = view.table.column("final_ms").to_numpy()[rows]
        inc_ms = view.table.column("included_ms").to_numpy()[rows]
        at, lk = int(fin_ms.max()), self.layout.l1
        self.activity.add_latency(lk, "anchored_final", hist(fin_ms - inc_ms), at)
        if view.routed:
            self.activity.add_latency(lk, "received_final", hist(fin_ms - view.received_ms[rows]), at)
        if len(view.legs[0]):
            newly = np.zeros(len(view.final), dtype=np.bool_)
            newly[rows] = True
            self.positions.l1_final_rows(view.legs, newly)
        events.append(TradeEvents("trade.final", seq, at, _rows_of(view.trades, rows)))

    def _new_l1_view(self, group_id: str, origin: str, table: pa.Table, step: Step) -> L1View:
        n = table.num_rows
        batch_id = model_ids.parse_unwound_origin(origin)
        if batch_id is not None:
            return self._unwound_l1_view(group_id, origin, batch_id, table)
        # Routed L1 flows: the records of this step, L1 rows in order.
        records = None
        for rec in step.tables():
            groups = rec.column("l1_group")
            mask = pc.fill_null(pc.equal(groups.cast(pa.string()), pa.scalar(group_id, pa.string())), False)
            if pc.any(mask).as_py():
                records = rec.filter(mask)
                break
        if records is None or records.num_rows != n:
            records = _placeholder_records(n, table)
        cols = _trade_columns(records, _lane_names(records), self.layout.pools, np.full(records.num_rows, -1))
        legs = self.positions.legs(records)
        self.positions.l1_submitted(legs)
        received = records.column("received_ms").to_numpy().astype(np.int64)
        return L1View(group_id, origin, -1, cols, table, received, legs, _none(n), _none(n))

    def _unwound_l1_view(self, group_id: str, origin: str, batch_id: str, table: pa.Table) -> L1View:
        """The L1 group an unwound batch's flows settle in: its members, in group order."""
        n = table.num_rows
        flight = self.members.unwound.pop(batch_id, None)
        pool_id = model_ids.split_batch_id(batch_id)[0]
        k = self.layout.pool_lookup.get(pool_id, 0)
        trades = EMPTY_TRADES if flight is None else flight.trades
        ordered = _order_like(trades, table.column("flow_id"))
        cols = _batch_trade_columns(ordered, batch_id, pool_id)
        received = (
            ordered.column("received_ms").to_numpy() if ordered.num_rows == n else np.zeros(n, dtype=np.int64)
        )
        unwound_net = None if flight is None else (flight.net_p, flight.net_a, flight.net_minor)
        return L1View(group_id, origin, k, cols, table, received, NO_LEGS, _none(n), _none(n), unwound_net)


# ---------------------------------------------------------------------- helpers
def _none(n: int) -> Mask:
    return np.zeros(n, dtype=np.bool_)


def _placeholder_records(n: int, table: pa.Table) -> pa.Table:
    """Records for an L1 group whose step records were not found (never expected)."""
    return pa.table(
        {
            "flow_id": table.column("flow_id"),
            "kind": pa.array(np.zeros(n, dtype=np.int8)),
            "buyer": pa.array([""] * n),
            "seller": pa.array([""] * n),
            "base": pa.array([""] * n),
            "quote": pa.array([""] * n),
            "qty_minor": pa.array(np.zeros(n, dtype=np.int64)),
            "quote_minor": pa.array(np.zeros(n, dtype=np.int64)),
            "fee_buyer_minor": pa.array(np.zeros(n, dtype=np.int64)),
            "fee_seller_minor": pa.array(np.zeros(n, dtype=np.int64)),
            "lane": pa.array(["L1"] * n),
            "pool": pa.nulls(n, pa.string()),
            "batch_seq": pa.array(np.full(n, -1, dtype=np.int64)),
            "received_ms": table.column("submitted_ms"),
        }
    )


def _lane_names(table: pa.Table) -> pa.Array:
    return table.column("lane").combine_chunks().cast(pa.string())


def _trade_columns(table: pa.Table, lanes: pa.Array, pools: list[str], pool_codes: I64) -> pa.Table:
    """The columns a per-trade event carries (participant, pool and batch for filtering)."""
    if not (pool_codes >= 0).any():
        # Layer-1 flows only (a new L1 group, every step that routes any): no pool, no batch —
        # the same null columns without the four kernels that would spell them.
        pool_names = batch_arr = pa.nulls(table.num_rows, pa.string())
    else:
        pool_names = pa.array([*pools, None], type=pa.string()).take(
            pa.array(np.where(pool_codes >= 0, pool_codes, len(pools)))
        )
        seq = table.column("batch_seq").to_numpy()
        seq_text = pc.utf8_lpad(pc.cast(pa.array(np.maximum(seq, 0)), pa.string()), width=8, padding="0")
        batch_arr = pc.if_else(
            pa.array((pool_codes >= 0) & (seq >= 0)),
            pc.binary_join_element_wise(pc.fill_null(pool_names, ""), seq_text, "-"),
            pa.scalar(None, pa.string()),
        )
    return pa.table(
        {
            "trade_id": as_string(table.column("flow_id")),
            "kind": table.column("kind"),
            "buyer": as_string(table.column("buyer")),
            "seller": as_string(table.column("seller")),
            "lane": lanes,
            "pool": pool_names,
            "batch_id": batch_arr,
        }
    )


def _batch_events(kind: str, seq: int, at_ms: int, trades: pa.Table, batch_id: str, pool: str) -> TradeEvents:
    return TradeEvents(
        kind, seq, at_ms, lambda: _batch_trade_columns(trades, batch_id, pool), trades.num_rows
    )


def _batch_trade_columns(trades: pa.Table, batch_id: str, pool: str) -> pa.Table:
    n = trades.num_rows
    return pa.table(
        {
            "trade_id": as_string(trades.column("flow_id")),
            "kind": trades.column("kind"),
            "buyer": as_string(trades.column("buyer")),
            "seller": as_string(trades.column("seller")),
            "lane": pa.array(["L2"] * n, type=pa.string()),
            "pool": pa.array([pool] * n, type=pa.string()),
            "batch_id": pa.array([batch_id] * n, type=pa.string()),
        }
    )


def _manual_rows(view: L1View, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Which of ``rows`` an operator settled off-system (``included_height`` MANUAL_HEIGHT)."""
    heights = view.table.column("included_height").to_numpy()[rows]
    return np.asarray(heights == model_ids.MANUAL_HEIGHT, dtype=np.bool_)


def _rows_of(table: pa.Table, rows: npt.NDArray[np.int64]) -> pa.Table:
    """``table``'s ``rows`` (ascending, distinct): the table itself when they are all of it — a
    group's rows are usually included and final together, and a take per group was ~6 % of a
    poll's read-model time (serve7)."""
    return table if len(rows) == table.num_rows else table.take(pa.array(rows))


def _lazy_take(columns: Callable[[], pa.Table], rows: npt.NDArray[np.int64]) -> Callable[[], pa.Table]:
    return lambda: columns().take(pa.array(rows))


def _order_like(trades: pa.Table, ids: pa.ChunkedArray | pa.Array) -> pa.Table:
    """``trades`` reordered to follow ``ids`` (rows not found are dropped)."""
    if trades.num_rows == 0:
        return trades
    pos = pc.index_in(ids, value_set=as_string(trades.column("flow_id")))
    return trades.take(pc.drop_null(pos))


def _rejected_columns(step: Step, table: pa.Table, columns: pa.Table, rejected: Mask) -> pa.Table:
    """The rejected rows' event columns with their code, field and reason."""
    codes = table.column("reject_code").to_numpy()[rejected]
    rej = columns.take(pa.array(np.flatnonzero(rejected)))
    why = {r.input_id: r for r in step.rejects() if r.input_id is not None}
    ids = rej.column("trade_id").to_pylist()
    rej = rej.append_column("reject", pa.array([RejectCode(int(x)).slug for x in codes], type=pa.string()))
    rej = rej.append_column("reject_code", pa.array(codes.astype(np.int32)))
    rej = rej.append_column(
        "field", pa.array([why[i].field if i in why else None for i in ids], type=pa.string())
    )
    return rej.append_column(
        "reason", pa.array([why[i].reason if i in why else None for i in ids], type=pa.string())
    )
