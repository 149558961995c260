"""The dashboard's read model: what the pages show, kept current from the engine's effects.

:meth:`DashboardModel.observe` is called once per applied log entry with that entry's
:class:`~clearlane.engine.core.Effects` and the engine (read for a few small snapshots: open
batch positions, projected debits, collateral, marks, block height). Everything is folded into
aggregates as it happens, so a page never scans the day to answer:

* trade records stay as the engine's Arrow chunks (dictionary-encoded, ~100 bytes a trade) with
  NumPy views of the columns the search filters on; a trade's *current* state is derived on
  demand from its batch's state (L2) or its base-layer transaction row (L1) — a batch or block
  event changes one small array, never millions of rows;
* counts by lane/pool and settlement state move incrementally with each transition;
* latency per hop is a log-binned histogram per (hop, minute of the day), so p50/p99 of any hop
  over any window are a sum over bins;
* positions per participant, asset and lane are two int64 arrays (settled, pending) moved by
  batch nets and L1 gross legs;
* batches keep their header, events and net instructions.

The model is thread-safe: a single lock guards observe and every query (queries are O(page)).
Money stays integer minor units here; the API renders decimal strings in the asset's scale.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.config.model import ClearingConfig
from clearlane.engine.core import Effects, Engine
from clearlane.model.codes import Reject, RejectCode
from clearlane.model.lifecycle import TradeState
from clearlane.service.index import IdIndex, hash_id, hash_ids

I64 = npt.NDArray[np.int64]

# Trade states as shown (code -> word). Order is the display order.
STATE_WORDS: dict[int, str] = {
    int(TradeState.RECEIVED): "received",
    int(TradeState.BATCHED): "batched",
    int(TradeState.SUBMITTED): "submitted",
    int(TradeState.CLEARED): "cleared",
    int(TradeState.ANCHORED): "anchored",
    int(TradeState.FINAL): "final",
    int(TradeState.REJECTED): "rejected",
    int(TradeState.UNWOUND): "unwound",
}
STATE_CODES = {word: code for code, word in STATE_WORDS.items()}
BATCH_STATE_CODE = {"cleared": int(TradeState.CLEARED), "anchored": int(TradeState.ANCHORED),
                     "final": int(TradeState.FINAL), "unwound": int(TradeState.UNWOUND)}

_BATCH_COL = {"cleared": 0, "anchored": 1, "final": 2, "unwound": 3}

# Latency histogram: log-spaced bins from 1 ms to ~2.8 h, 16 bins a decade.
_BINS = 96
_EDGES = np.concatenate([[0.0], np.logspace(0, 6, _BINS - 1)])  # ms; last bin open-ended
BUCKET_MS = 60_000  # one heatmap column = one minute of engine time
SERIES_MAX = 4_000
HISTORY_MAX = 200
ANCHOR_BACKLOG_ALERT = 5


class _Grow:
    """A growable 1-D NumPy array (amortised doubling)."""

    def __init__(self, dtype: Any, fill: int = 0) -> None:
        self.data = np.full(1024, fill, dtype=dtype)
        self.fill = fill
        self.n = 0

    def extend(self, values: npt.ArrayLike) -> int:
        arr = np.asarray(values)
        start = self.n
        need = start + len(arr)
        if need > len(self.data):
            bigger = np.full(max(need, 2 * len(self.data)), self.fill, dtype=self.data.dtype)
            bigger[: self.n] = self.data[: self.n]
            self.data = bigger
        self.data[start:need] = arr
        self.n = need
        return start

    def ensure(self, size: int) -> None:
        if size > len(self.data):
            bigger = np.full(max(size, 2 * len(self.data)), self.fill, dtype=self.data.dtype)
            bigger[: self.n] = self.data[: self.n]
            self.data = bigger
        self.n = max(self.n, size)

    @property
    def view(self) -> npt.NDArray[Any]:
        return self.data[: self.n]


@dataclass
class _Chunk:
    """One engine step's trade records plus NumPy views for filtering."""

    first: int  # global row number of this chunk's first row
    table: pa.Table
    ids: pa.Array
    buyer: npt.NDArray[np.int32]
    seller: npt.NDArray[np.int32]
    lane: npt.NDArray[np.int8]  # -1 none (rejected), 0 L1, 1 L2
    pool: npt.NDArray[np.int8]
    batch_seq: I64
    l1_row: I64  # global L1 row, -1
    rec_state: npt.NDArray[np.int8]
    received_ms: I64
    by_party: npt.NDArray[np.int32]  # row numbers grouped by participant (buyer side, then seller side)
    party_starts: I64  # participant p's rows are by_party[party_starts[p]:party_starts[p + 1]]

    def rows_of(self, participant: int) -> I64:
        """Sorted row numbers where ``participant`` is buyer or seller."""
        n = len(self.lane)
        rows = self.by_party[self.party_starts[participant]: self.party_starts[participant + 1]].astype(np.int64)
        return np.unique(np.where(rows >= n, rows - n, rows))


@dataclass
class Batch:
    batch_id: str
    pool: int
    seq: int
    opened_at_ms: int
    cleared_at_ms: int
    flows: int
    obligations: int
    gross_usd: float
    net_usd: float
    root: str
    net_participant: npt.NDArray[np.int32]
    net_asset: npt.NDArray[np.int32]
    net_minor: I64
    gross_minor: I64
    state: str = "cleared"
    attempts: int = 1
    anchor_tx: str | None = None
    anchor_height: int | None = None
    anchored_at_ms: int | None = None
    final_at_ms: int | None = None
    unwound_at_ms: int | None = None
    events: list[tuple[str, int, str]] = field(default_factory=list)
    received_ms: I64 | None = None  # kept until final (latency), then dropped


@dataclass
class _L1Group:
    group_id: str
    origin: str
    offset: int
    n: int


class DashboardModel:
    """Aggregates for the settlement dashboard (see the module docstring)."""

    def __init__(self, config: ClearingConfig) -> None:
        self.lock = threading.RLock()
        self.config = config
        self.participant_ids = [p.id for p in config.participants]
        self.participant_index = config.participant_index()
        self.asset_codes = [a.code for a in config.assets]
        self.asset_index = config.asset_index()
        self.scales = [int(s) for s in config.asset_scales()]
        self.pool_ids = [p.id for p in config.pools]
        self.house = config.house_index
        k, p, a = len(config.pools), config.participant_count, len(config.assets)
        self.version = 0
        self.updated_wall = time.time()
        # trades
        self.chunks: list[_Chunk] = []
        self.chunk_first: list[int] = []
        self.id_index = IdIndex()  # 64-bit hash of every trade id -> global row (16 bytes a trade)
        self.rows = 0
        self.pool_batch_state = [_Grow(np.int8, int(TradeState.BATCHED)) for _ in range(k)]
        # lanes: row 0 = L1, 1..k = pools, k+1 = no lane (rejected)
        self.lane_names = ["L1", *[f"L2 {pid}" for pid in self.pool_ids], "no lane"]
        self.counts = np.zeros((k + 2, 16), dtype=np.int64)
        self.edge_rejects_by_code: dict[str, int] = {}
        self.engine_rejects_by_code: dict[str, int] = {}
        self.rejects_by_participant = np.zeros(p, dtype=np.int64)
        self.recent_rejects: deque[dict[str, Any]] = deque(maxlen=HISTORY_MAX)
        self.received_queue = 0
        # batches
        self.batches: dict[str, Batch] = {}
        self.batch_order: list[str] = []
        self.pool_batches: list[list[str]] = [[] for _ in range(k)]
        self.pool_gross_usd = np.zeros(k)
        self.pool_net_usd = np.zeros(k)
        self.pool_batch_count = np.zeros(k, dtype=np.int64)
        self.pool_flows = np.zeros(k, dtype=np.int64)
        self.batch_states = np.zeros((k, 4), dtype=np.int64)  # cleared, anchored, final, unwound
        # L1 rows (global): legs for positions, times for latency and state
        self.l1_groups: dict[str, _L1Group] = {}
        self.l1_group_rows = 0
        self.l1 = {name: _Grow(np.int64, -1) for name in
                   ("submitted", "received", "included", "height", "final", "attempt", "buyer", "seller", "base",
                    "quote", "qty", "quote_amt", "fee_b", "fee_s", "chunk_row")}
        self.l1_unwound = _Grow(np.int8, 0)
        self.l1_open = 0
        # positions: [lane (0 = L1, 1 + pool), participant (+ house), asset]
        self.settled = np.zeros((k + 1, p, a), dtype=np.int64)
        self.pending = np.zeros((k + 1, p, a), dtype=np.int64)
        self.open_pos = np.zeros((k, p, a), dtype=np.int64)
        self.debit_total = np.zeros(p)
        self.collateral = np.zeros((p, a), dtype=np.int64)
        self.marks_usd = np.array(config.marks_usd, dtype=np.float64)
        self.credit_usd = np.array([pp.credit_limit_cents / 100.0 for pp in config.participants] + [0.0])
        # latency
        self.hops: list[tuple[str, str]] = []  # (lane label, hop label)
        for pid in self.pool_ids:
            self.hops += [(f"L2 {pid}", "received → cleared"), (f"L2 {pid}", "cleared → anchored"),
                          (f"L2 {pid}", "anchored → final"), (f"L2 {pid}", "received → final")]
        self.hops += [("L1", "received → included"), ("L1", "included → final"), ("L1", "received → final")]
        self.hist = np.zeros((len(self.hops), 0, _BINS), dtype=np.int64)
        self.hist_sum = np.zeros((len(self.hops), 0), dtype=np.float64)
        self.bucket0: int | None = None
        # savings per minute bucket
        self.save_gross = np.zeros((k, 0))
        self.save_net = np.zeros((k, 0))
        self.save_l2_flows = np.zeros(0, dtype=np.int64)
        self.save_l1_flows = np.zeros(0, dtype=np.int64)
        self.save_batches = np.zeros(0, dtype=np.int64)
        # time series of queue lengths: (t, open flows per pool..., awaiting anchor, awaiting final, L1 open, ingest)
        self.series: list[tuple[int, ...]] = []
        self.series_stride = 1
        self.series_skip = 0
        # chain and time
        self.tip_height = 0
        self.now_ms = 0
        self.chain_seen_ms = 0
        self.first_ms: int | None = None
        self.alerts: deque[dict[str, Any]] = deque(maxlen=HISTORY_MAX)
        self.engine_alerts_seen = 0
        self.applied_seq = 0
        self.l1_fee_minor = int(config.chain.get("fee_per_tx_minor", 0))
        self.fee_asset = str(config.chain.get("fee_asset", config.reporting_asset))

    # ================================================================== ingest
    def observe(self, fx: Effects, engine: Engine | None = None) -> None:
        """Fold one applied log entry's effects (call after the step is committed).

        ``engine`` (read for small snapshots: open positions, debits, collateral, marks, block
        height) may be omitted while a runner replays its log on open; call :meth:`snapshot`
        once it is known."""
        with self.lock:
            if self.first_ms is None and fx.trade_records:
                rec = fx.trade_records[0]
                if rec.num_rows:
                    self.first_ms = int(pc.min(rec.column("received_ms")).as_py())
            for table in fx.trade_records:
                self._add_records(table.combine_chunks() if table.num_rows else table)
            for b in fx.batches_cleared:
                self._batch_cleared(b)
            for batch_id, changes in fx.batch_updates.items():
                self._batch_update(batch_id, changes)
            for batch_id, event, at_ms, detail in fx.batch_events:
                batch = self.batches.get(batch_id)
                if batch is not None:
                    batch.events.append((event, at_ms, detail))
            for group_id, table in sorted(fx.l1_groups.items()):
                self._l1_group(group_id, table, fx.l1_group_meta.get(group_id))
            for r in fx.rejects:
                self.engine_rejects_by_code[r.code.slug] = self.engine_rejects_by_code.get(r.code.slug, 0) + 1
            for note in fx.notes:
                if "alert" in note:
                    self._alert(int(note.get("at_ms", fx.at_ms)), "critical", str(note["alert"]))
            if engine is not None:
                self._snapshot(engine)
            else:
                self.now_ms = max(self.now_ms, fx.at_ms)
            self.version += 1
            self.updated_wall = time.time()

    def observe_edge_rejects(self, rejects: list[Reject], participants: list[tuple[str | None, str | None]] | None = None,
                             at_ms: int | None = None) -> None:
        """Count rejects refused at the edge (they never reach the engine log)."""
        with self.lock:
            for i, r in enumerate(rejects):
                self.edge_rejects_by_code[r.code.slug] = self.edge_rejects_by_code.get(r.code.slug, 0) + 1
                self.counts[-1, int(TradeState.REJECTED)] += 1
                who = participants[i] if participants is not None and i < len(participants) else (None, None)
                for pid in who:
                    idx = self.participant_index.get(pid or "", -1)
                    if idx >= 0:
                        self.rejects_by_participant[idx] += 1
                self.recent_rejects.appendleft({"id": r.input_id, "code": int(r.code), "error": r.code.slug,
                                                "field": r.field, "reason": r.reason, "at_ms": at_ms or self.now_ms,
                                                "where": "edge", "participants": [x for x in who if x]})
            self.version += 1

    def snapshot(self, engine: Engine) -> None:
        """Take the engine snapshots now (after a replay that observed without the engine)."""
        with self.lock:
            self._snapshot(engine)
            self.version += 1

    def set_received_queue(self, n: int) -> None:
        with self.lock:
            self.received_queue = int(n)

    # ------------------------------------------------------------------ records
    def _add_records(self, table: pa.Table) -> None:
        n = table.num_rows
        if n == 0:
            return

        def codes(name: str) -> npt.NDArray[np.int32]:
            arr = table.column(name).chunk(0)
            idx = arr.indices.fill_null(-1) if arr.null_count else arr.indices
            return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int32)

        lane = codes("lane").astype(np.int8)
        pool = codes("pool").astype(np.int8)
        rec_state = table.column("state").to_numpy().astype(np.int8)
        batch_seq = table.column("batch_seq").to_numpy()
        received = table.column("received_ms").to_numpy()
        buyer = codes("buyer")
        seller = codes("seller")
        l1_row = np.full(n, -1, dtype=np.int64)
        group_col = table.column("l1_group").chunk(0)
        l1_mask = np.asarray(group_col.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
        if l1_mask.any():
            rows = np.flatnonzero(l1_mask)
            group_id = str(group_col.dictionary[0])
            offset = self._l1_alloc(group_id, "routed", len(rows))
            l1_row[rows] = offset + np.arange(len(rows))
            g = self.l1
            sl = slice(offset, offset + len(rows))
            g["submitted"].data[sl] = received[rows]
            g["received"].data[sl] = received[rows]
            g["buyer"].data[sl] = buyer[rows]
            g["seller"].data[sl] = seller[rows]
            g["base"].data[sl] = codes("base")[rows]
            g["quote"].data[sl] = codes("quote")[rows]
            g["qty"].data[sl] = table.column("qty_minor").to_numpy()[rows]
            g["quote_amt"].data[sl] = table.column("quote_minor").to_numpy()[rows]
            g["fee_b"].data[sl] = table.column("fee_buyer_minor").to_numpy()[rows]
            g["fee_s"].data[sl] = table.column("fee_seller_minor").to_numpy()[rows]
            g["chunk_row"].data[sl] = self.rows + rows
            g["attempt"].data[sl] = 1
            self._legs_to(0, self.pending, sl, +1)
            self.counts[0, int(TradeState.SUBMITTED)] += len(rows)
            self.l1_open += len(rows)
            self._bump_savings(int(received[rows[-1]]), l1_flows=len(rows))
        parties = np.concatenate([buyer, seller])
        by_party = np.argsort(parties, kind="stable").astype(np.int32)
        party_starts = np.searchsorted(parties[by_party], np.arange(len(self.participant_ids) + 2)).astype(np.int64)
        ids = table.column("flow_id").chunk(0)
        chunk = _Chunk(self.rows, table, ids, buyer, seller, lane, pool, batch_seq, l1_row, rec_state, received,
                       by_party, party_starts)
        self.id_index.add(hash_ids(ids), np.arange(self.rows, self.rows + n, dtype=np.int64))
        self.chunk_first.append(self.rows)
        self.chunks.append(chunk)
        self.rows += n
        l2 = lane == 1
        if l2.any():
            per_pool = np.bincount(pool[l2], minlength=len(self.pool_ids))
            self.counts[1: 1 + len(self.pool_ids), int(TradeState.BATCHED)] += per_pool
            for k in range(len(self.pool_ids)):
                if per_pool[k]:
                    grow = self.pool_batch_state[k]
                    grow.ensure(int(batch_seq[l2 & (pool == k)].max()) + 1)
        rejected = rec_state == int(TradeState.REJECTED)
        if rejected.any():
            self.counts[-1, int(TradeState.REJECTED)] += int(rejected.sum())
            codes_ = table.column("reject_code").to_numpy()
            unreliable = np.isin(codes_, [int(RejectCode.UNKNOWN_PARTICIPANT), int(RejectCode.UNKNOWN_SYMBOL)])
            for side in (buyer, seller):
                np.add.at(self.rejects_by_participant, side[rejected & ~unreliable], 1)
            ids = chunk.ids
            for i in np.flatnonzero(rejected)[:HISTORY_MAX].tolist():
                code = RejectCode(int(codes_[i]))
                who = [] if unreliable[i] else [self.participant_ids[buyer[i]], self.participant_ids[seller[i]]]
                self.recent_rejects.appendleft({"id": ids[i].as_py(), "code": int(code), "error": code.slug,
                                                "field": "-", "reason": code.slug.replace("_", " "),
                                                "at_ms": int(received[i]), "where": "engine", "participants": who})

    # ------------------------------------------------------------------ batches
    def _batch_cleared(self, b: dict[str, Any]) -> None:
        k = self.pool_ids.index(str(b["pool"]))
        lookup_p = self.participant_index
        parts = np.array([lookup_p.get(x, self.house) for x in b["net_participant"].to_pylist()], dtype=np.int32)
        assets = np.array([self.asset_index[x] for x in b["net_asset"].to_pylist()], dtype=np.int32)
        net = np.asarray(b["net_minor"], dtype=np.int64)
        received = np.asarray(b["received_ms"], dtype=np.int64)
        batch = Batch(
            batch_id=str(b["batch_id"]), pool=k, seq=int(b["seq"]), opened_at_ms=int(b["opened_at_ms"]),
            cleared_at_ms=int(b["cleared_at_ms"]), flows=int(b["flows"]), obligations=int(b["obligations"]),
            gross_usd=float(b["gross_usd"]), net_usd=float(b["net_usd"]), root=bytes(b["root"]).hex(),
            net_participant=parts, net_asset=assets, net_minor=net,
            gross_minor=np.asarray(b["gross_minor"], dtype=np.int64), received_ms=received,
        )
        self.batches[batch.batch_id] = batch
        self.batch_order.append(batch.batch_id)
        self.pool_batches[k].append(batch.batch_id)
        grow = self.pool_batch_state[k]
        grow.ensure(batch.seq + 1)
        grow.data[batch.seq] = int(TradeState.CLEARED)
        self.counts[1 + k, int(TradeState.BATCHED)] -= batch.flows
        self.counts[1 + k, int(TradeState.CLEARED)] += batch.flows
        np.add.at(self.pending[1 + k], (parts, assets), net)
        self.pool_gross_usd[k] += batch.gross_usd
        self.pool_net_usd[k] += batch.net_usd
        self.pool_batch_count[k] += 1
        self.batch_states[k, 0] += 1
        self.pool_flows[k] += batch.flows
        self._record_hop(4 * k + 0, batch.cleared_at_ms, batch.cleared_at_ms - received)
        col = self._bump_savings(batch.cleared_at_ms, l2_flows=batch.flows, batches=1)
        self.save_gross[k, col] += batch.gross_usd
        self.save_net[k, col] += batch.net_usd

    def _batch_update(self, batch_id: str, changes: dict[str, Any]) -> None:
        batch = self.batches.get(batch_id)
        if batch is None:
            return
        old = batch.state
        for key in ("attempts", "anchor_tx", "anchor_height", "anchored_at_ms", "final_at_ms", "unwound_at_ms"):
            if key in changes:
                setattr(batch, key, changes[key])
        new = str(changes.get("state", old))
        if new == old:
            return
        batch.state = new
        k = batch.pool
        self.counts[1 + k, BATCH_STATE_CODE[old]] -= batch.flows
        self.counts[1 + k, BATCH_STATE_CODE[new]] += batch.flows
        self.pool_batch_state[k].data[batch.seq] = BATCH_STATE_CODE[new]
        self.batch_states[k, _BATCH_COL[old]] -= 1
        self.batch_states[k, _BATCH_COL[new]] += 1
        if new in ("anchored", "final") and old == "cleared" and batch.anchored_at_ms is not None:
            self._record_hop(4 * k + 1, batch.anchored_at_ms, np.array([batch.anchored_at_ms - batch.cleared_at_ms]),
                             weight=batch.flows)
        if new == "final" and batch.final_at_ms is not None:
            final = int(batch.final_at_ms)
            anchored = batch.anchored_at_ms if batch.anchored_at_ms is not None else batch.cleared_at_ms
            self._record_hop(4 * k + 2, final, np.array([final - anchored]), weight=batch.flows)
            if batch.received_ms is not None:
                self._record_hop(4 * k + 3, final, final - batch.received_ms)
            batch.received_ms = None
            self._move(batch, self.pending, self.settled)
        if new == "unwound":
            np.add.at(self.pending[1 + k], (batch.net_participant, batch.net_asset), -batch.net_minor)
            batch.received_ms = None
            self._alert(int(batch.unwound_at_ms or self.now_ms), "critical",
                        f"batch {batch_id} missed its anchor deadline and was unwound to Layer-1")
        if new == "cleared" and old == "anchored":
            self._alert(self.now_ms, "warning", f"anchor of batch {batch_id} was reorged out; awaiting re-inclusion")

    def _move(self, batch: Batch, src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64]) -> None:
        idx = (batch.net_participant, batch.net_asset)
        np.add.at(src[1 + batch.pool], idx, -batch.net_minor)
        np.add.at(dst[1 + batch.pool], idx, batch.net_minor)

    # ------------------------------------------------------------------ layer 1
    def _l1_alloc(self, group_id: str, origin: str, n: int) -> int:
        group = self.l1_groups.get(group_id)
        if group is not None:
            return group.offset
        offset = self.l1_group_rows
        for grow in self.l1.values():
            grow.ensure(offset + n)
        self.l1_unwound.ensure(offset + n)
        self.l1_groups[group_id] = _L1Group(group_id, origin, offset, n)
        self.l1_group_rows = offset + n
        return offset

    def _l1_group(self, group_id: str, table: pa.Table, meta: dict[str, Any] | None) -> None:
        group = self.l1_groups.get(group_id)
        if group is None:
            origin = str((meta or {}).get("origin", "routed"))
            offset = self._l1_alloc(group_id, origin, table.num_rows)
            group = self.l1_groups[group_id]
            if origin.startswith("unwound:"):
                self._fill_unwound(group, origin.removeprefix("unwound:"), table, offset)
        g = self.l1
        sl = slice(group.offset, group.offset + group.n)
        included = table.column("included_height").to_numpy()
        included_ms = table.column("included_ms").to_numpy()
        final = table.column("final_ms").to_numpy()
        prev_height = g["height"].data[sl].copy()
        prev_final = g["final"].data[sl].copy()
        g["height"].data[sl] = included
        g["included"].data[sl] = included_ms
        g["final"].data[sl] = final
        g["submitted"].data[sl] = table.column("submitted_ms").to_numpy()
        g["attempt"].data[sl] = table.column("attempt").to_numpy()
        unwound = group.origin.startswith("unwound:")
        newly_in = (prev_height < 0) & (included >= 0) & (final < 0)
        newly_out = (prev_height >= 0) & (included < 0)
        newly_final = (prev_final < 0) & (final >= 0)
        if not unwound:
            self.counts[0, int(TradeState.SUBMITTED)] += int(newly_out.sum()) - int(newly_in.sum())
            self.counts[0, int(TradeState.ANCHORED)] += int(newly_in.sum()) - int(newly_out.sum())
            was_anchored = newly_final & (prev_height >= 0)
            self.counts[0, int(TradeState.ANCHORED)] -= int(was_anchored.sum())
            self.counts[0, int(TradeState.SUBMITTED)] -= int((newly_final & ~(prev_height >= 0)).sum())
            self.counts[0, int(TradeState.FINAL)] += int(newly_final.sum())
        rows_in = np.flatnonzero(newly_in | (newly_final & (prev_height < 0)))
        if len(rows_in):
            sub = g["submitted"].data[sl][rows_in]
            self._record_hop(len(self.hops) - 3, int(included_ms[rows_in].max()), included_ms[rows_in] - sub)
        rows_final = np.flatnonzero(newly_final)
        if len(rows_final):
            at = int(final[rows_final].max())
            self._record_hop(len(self.hops) - 2, at, final[rows_final] - included_ms[rows_final])
            self._record_hop(len(self.hops) - 1, at, final[rows_final] - g["received"].data[sl][rows_final])
            idx = group.offset + rows_final
            self._legs_to(0, self.pending, idx, -1)
            self._legs_to(0, self.settled, idx, +1)
            self.l1_open -= len(rows_final)

    def _fill_unwound(self, group: _L1Group, batch_id: str, table: pa.Table, offset: int) -> None:
        """Legs of an unwound batch's flows, found in the trade records (a rare event)."""
        batch = self.batches.get(batch_id)
        if batch is None:
            return
        g = self.l1
        ids = table.column("flow_id").combine_chunks()
        self.l1_unwound.data[offset: offset + group.n] = 1
        for chunk in self.chunks:
            mask = (chunk.lane == 1) & (chunk.pool == batch.pool) & (chunk.batch_seq == batch.seq)
            if not mask.any():
                continue
            rows = np.flatnonzero(mask)
            sub = chunk.table.take(pa.array(rows))
            positions = pc.index_in(sub.column("flow_id"), value_set=ids).to_numpy(zero_copy_only=False)
            for j, pos in enumerate(positions.tolist()):
                if pos is None or pos != pos:
                    continue
                r = offset + int(pos)
                g["received"].data[r] = int(chunk.received_ms[rows[j]])
                g["buyer"].data[r] = int(chunk.buyer[rows[j]])
                g["seller"].data[r] = int(chunk.seller[rows[j]])
                g["base"].data[r] = sub.column("base").chunk(0).indices[j].as_py()
                g["quote"].data[r] = sub.column("quote").chunk(0).indices[j].as_py()
                g["qty"].data[r] = sub.column("qty_minor")[j].as_py()
                g["quote_amt"].data[r] = sub.column("quote_minor")[j].as_py()
                g["fee_b"].data[r] = sub.column("fee_buyer_minor")[j].as_py()
                g["fee_s"].data[r] = sub.column("fee_seller_minor")[j].as_py()
                g["chunk_row"].data[r] = chunk.first + int(rows[j])
                chunk.l1_row[rows[j]] = r
        self._legs_to(0, self.pending, slice(offset, offset + group.n), +1)
        self.l1_open += group.n

    def _legs_to(self, lane: int, target: npt.NDArray[np.int64], rows: Any, sign: int) -> None:
        g = self.l1
        buyer, seller = g["buyer"].data[rows], g["seller"].data[rows]
        ok = (buyer >= 0) & (seller >= 0)
        buyer, seller = buyer[ok], seller[ok]
        base, quote = g["base"].data[rows][ok], g["quote"].data[rows][ok]
        qty, amt = g["qty"].data[rows][ok], g["quote_amt"].data[rows][ok]
        fb, fs = g["fee_b"].data[rows][ok], g["fee_s"].data[rows][ok]
        t = target[lane]
        np.add.at(t, (buyer, base), sign * qty)
        np.add.at(t, (seller, base), -sign * qty)
        np.add.at(t, (buyer, quote), -sign * (amt + fb))
        np.add.at(t, (seller, quote), sign * (amt - fs))
        np.add.at(t, (np.full(len(fb), self.house), quote), sign * (fb + fs))

    # ------------------------------------------------------------------ time series
    def _bucket(self, at_ms: int) -> int:
        b = at_ms // BUCKET_MS
        if self.bucket0 is None:
            self.bucket0 = b
        col = b - self.bucket0
        if col < 0:  # before the first bucket: clamp (late data), never reallocate backwards
            return 0
        if col >= self.hist.shape[1]:
            grow = max(col + 1, self.hist.shape[1] + 60)
            pad = grow - self.hist.shape[1]
            self.hist = np.concatenate([self.hist, np.zeros((len(self.hops), pad, _BINS), dtype=np.int64)], axis=1)
            self.hist_sum = np.concatenate([self.hist_sum, np.zeros((len(self.hops), pad))], axis=1)
            self.save_gross = np.concatenate([self.save_gross, np.zeros((len(self.pool_ids), pad))], axis=1)
            self.save_net = np.concatenate([self.save_net, np.zeros((len(self.pool_ids), pad))], axis=1)
            self.save_l2_flows = np.concatenate([self.save_l2_flows, np.zeros(pad, dtype=np.int64)])
            self.save_l1_flows = np.concatenate([self.save_l1_flows, np.zeros(pad, dtype=np.int64)])
            self.save_batches = np.concatenate([self.save_batches, np.zeros(pad, dtype=np.int64)])
        return int(col)

    def _record_hop(self, hop: int, at_ms: int, values_ms: npt.ArrayLike, weight: int = 1) -> None:
        values = np.maximum(np.asarray(values_ms, dtype=np.float64), 0.0)
        if values.size == 0:
            return
        col = self._bucket(at_ms)
        bins = np.clip(np.searchsorted(_EDGES, values, side="right") - 1, 0, _BINS - 1)
        counts = np.bincount(bins, minlength=_BINS) * weight
        self.hist[hop, col] += counts
        self.hist_sum[hop, col] += float(values.sum()) * weight

    def _bump_savings(self, at_ms: int, *, l2_flows: int = 0, l1_flows: int = 0, batches: int = 0) -> int:
        col = self._bucket(at_ms)
        self.save_l2_flows[col] += l2_flows
        self.save_l1_flows[col] += l1_flows
        self.save_batches[col] += batches
        return col

    def _alert(self, at_ms: int, severity: str, text: str) -> None:
        self.alerts.appendleft({"at_ms": at_ms, "severity": severity, "text": text})

    def _snapshot(self, engine: Engine) -> None:
        self.now_ms = int(engine.now_ms)
        self.chain_seen_ms = int(engine.chain_seen_ms)
        self.tip_height = int(engine.tip_height)
        self.applied_seq = int(engine.applied_seq)
        np.copyto(self.open_pos, engine.pos)
        np.copyto(self.debit_total, engine.debit_total)
        np.copyto(self.collateral, engine.collateral)
        np.copyto(self.marks_usd, engine.marks_usd)
        alerts = engine.stats.alerts
        for text in alerts[self.engine_alerts_seen:]:
            if not any(a["text"] == text for a in list(self.alerts)[:20]):
                self._alert(self.now_ms, "critical", text)
        self.engine_alerts_seen = len(alerts)
        point = (self.now_ms, *[int(c) for c in engine.count], *self._backlog(), self.l1_open, self.received_queue)
        self.series_skip += 1
        if self.series_skip >= self.series_stride:
            self.series_skip = 0
            self.series.append(point)
            if len(self.series) > SERIES_MAX:
                self.series = self.series[::2]
                self.series_stride *= 2

    def _backlog(self) -> tuple[int, int]:
        """Batches awaiting their anchor (cleared) and awaiting finality (anchored)."""
        return int(self.batch_states[:, 0].sum()), int(self.batch_states[:, 1].sum())

    # ================================================================== queries
    def trade_states(self, chunk: _Chunk, rows: I64 | None = None) -> npt.NDArray[np.int8]:
        """Current state code of the given rows (all rows by default) of ``chunk`` (derived, vectorised)."""
        sel: Any = slice(None) if rows is None else rows
        state: npt.NDArray[np.int8] = chunk.rec_state[sel].copy()
        lane, pool, batch_seq, l1_of = chunk.lane[sel], chunk.pool[sel], chunk.batch_seq[sel], chunk.l1_row[sel]
        l2 = lane == 1
        if l2.any():
            for k in range(len(self.pool_ids)):
                m = l2 & (pool == k)
                if m.any():
                    state[m] = self.pool_batch_state[k].data[batch_seq[m]]
        l1 = l1_of >= 0
        if l1.any():
            rows = l1_of[l1]
            final = self.l1["final"].data[rows] >= 0
            included = self.l1["height"].data[rows] >= 0
            s = np.where(final, int(TradeState.FINAL), np.where(included, int(TradeState.ANCHORED), int(TradeState.SUBMITTED)))
            s = np.where(self.l1_unwound.data[rows] == 1, int(TradeState.UNWOUND), s)
            state[l1] = s.astype(np.int8)
        return state

    def find_trade(self, flow_id: str) -> tuple[_Chunk, int] | None:
        """The chunk and row of a trade id (hash index; a hit is confirmed against the id)."""
        for row in reversed(self.id_index.find(hash_id(flow_id))):
            c = bisect.bisect_right(self.chunk_first, row) - 1
            chunk = self.chunks[c]
            r = row - chunk.first
            if chunk.ids[r].as_py() == flow_id:
                return chunk, r
        return None

    def search(self, *, q: str | None = None, participant: int | None = None, state: int | None = None,
               lane: str | None = None, before: int | None = None, limit: int = 50,
               batch: tuple[int, int] | None = None) -> tuple[list[tuple[_Chunk, int, int]], int | None]:
        """Newest-first trade rows matching every given filter; returns (rows, next cursor).

        With a participant only its own rows of each chunk are looked at (``rows_of``), so a
        search for a rare participant does not scan every trade of the day."""
        out: list[tuple[_Chunk, int, int]] = []
        pool_k = self.pool_ids.index(lane) if lane in self.pool_ids else None
        for chunk in reversed(self.chunks):
            n = len(chunk.lane)
            if before is not None and chunk.first >= before:
                continue
            end = n if before is None else min(n, before - chunk.first)
            if participant is not None:
                rows = chunk.rows_of(participant)
                rows = rows[(rows < end) & (chunk.rec_state[rows] != int(TradeState.REJECTED))]
            else:
                rows = np.arange(end, dtype=np.int64)
            if lane is not None and len(rows):
                if lane == "L1":
                    rows = rows[chunk.lane[rows] == 0]
                elif lane == "L2":
                    rows = rows[chunk.lane[rows] == 1]
                elif pool_k is not None:
                    rows = rows[(chunk.lane[rows] == 1) & (chunk.pool[rows] == pool_k)]
                else:
                    rows = rows[:0]
            if q and len(rows):
                hit = pc.starts_with(chunk.ids.take(pa.array(rows)), pattern=q).fill_null(False)
                rows = rows[np.asarray(hit.to_numpy(zero_copy_only=False), dtype=np.bool_)]
            if not len(rows):
                continue
            if state is not None:
                states = self.trade_states(chunk, rows)
                keep = states == state
                rows, states = rows[keep], states[keep]
            picked = rows[::-1][: limit - len(out)]
            states = self.trade_states(chunk, picked) if state is None else states[::-1][: len(picked)]
            out.extend((chunk, int(r), int(st)) for r, st in zip(picked, states, strict=True))
            if len(out) >= limit:
                last_chunk, last_row, _ = out[-1]
                return out, last_chunk.first + last_row
        return out, None

    def l1_row(self, row: int) -> dict[str, int]:
        return {name: int(grow.data[row]) for name, grow in self.l1.items()}

    def used_buckets(self) -> int:
        """Heatmap / savings columns in use (the arrays grow ahead of time in steps of an hour)."""
        if self.bucket0 is None:
            return 0
        last = max(self.now_ms, self.chain_seen_ms) // BUCKET_MS - self.bucket0 + 1
        return int(max(0, min(self.hist.shape[1], last)))

    def hop_percentiles(self, hop: int, cols: slice | None = None) -> tuple[float | None, float | None, int]:
        """(p50, p99) in seconds and the count of ``hop`` over the bucket range."""
        hist = self.hist[hop, cols if cols is not None else slice(None)].sum(axis=0)
        return hist_percentiles(hist)


def hist_percentiles(hist: npt.NDArray[np.int64], qs: tuple[float, ...] = (0.5, 0.99)) -> tuple[Any, ...]:
    """Percentiles in seconds from a log-binned histogram (linear within a bin) + the count."""
    total = int(hist.sum())
    if total == 0:
        return (*[None] * len(qs), 0)
    cum = np.cumsum(hist)
    out: list[float | None] = []
    for q in qs:
        target = q * total
        b = int(np.searchsorted(cum, target, side="left"))
        b = min(b, _BINS - 1)
        lo = _EDGES[b]
        hi = _EDGES[b + 1] if b + 1 < len(_EDGES) else _EDGES[b] * 1.2
        before = cum[b - 1] if b else 0
        frac = (target - before) / hist[b] if hist[b] else 0.0
        out.append(float(lo + (hi - lo) * frac) / 1000.0)
    return (*out, total)
