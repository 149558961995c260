"""The service's read model: in-memory, columnar views of the committed history.

It is fed every committed :class:`~clearlane.core.model.events.Step` (live, and for every
step replayed when the runner opens, so it is rebuilt identically on restart) and keeps:

* a trade-id index (:class:`~clearlane.node.projections.index.IdIndex`, 16 bytes per id) pointing at the
  step's trade-record table; record tables live in a bounded cache and are re-read from the
  store's ``trade_chunks`` when evicted — never one Python object per trade. With ``bounded``
  (the service) the index is a hot tier of two generations of ``hot_ids`` ids; older ids are
  found through the store's flow-id runs (``store/flowids.py``, :attr:`ReadModel.archive`);
* every L2 batch as struct-of-arrays per pool (state, lifecycle times, size, gross/net value),
  so a page of trades gets its current state by array indexing, not by look-ups;
* L1 groups (per-flow inclusion and finality) and the trades of in-flight batches (who is on
  them), to publish per-trade events and move positions when a batch goes final;
* positions per participant, lane and asset (open, cleared-not-final, final; L1 pending and
  final), trades by state per lane and pool, latency histograms per hop over time buckets,
  netting and liquidity figures per pool and time bucket, alerts.

Apply returns the step's lifecycle events as columnar :class:`~clearlane.node.events.EventGroup`
objects; the runtime publishes them after the commit.

Thread safety: the runtime's loop thread is the only writer; readers take the runtime lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
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
from clearlane.core.model.states import BATCH_STATE_LABELS, BatchState, TradeState
from clearlane.node.events import (
    BATCH_ANCHORED,
    BATCH_CLEARED,
    BATCH_FINAL,
    BATCH_UNWOUND,
    AlertEvent,
    BatchEvent,
    EventGroup,
    TradeEvents,
)
from clearlane.node.ports import FlowIdArchive, Store
from clearlane.node.projections.index import IdIndex, hash_id, hash_ids

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

# Batch states (per pool arrays) are BatchState codes; 0 = not cleared yet (open, or never
# existed). The short names stay for the array code that indexes by them.
B_OPEN, B_CLEARED, B_ANCHORED, B_FINAL, B_UNWOUND = BatchState
BATCH_STATE_NAMES = BATCH_STATE_LABELS
_BATCH_TO_TRADE = np.array([s.trade_state for s in BatchState], dtype=np.int8)

# Trades by state, per lane key (pools, then L1).
STATE_KEYS = ("received", "batched", "submitted", "cleared", "anchored", "final", "rejected", "unwound")
S = {name: i for i, name in enumerate(STATE_KEYS)}

# Latency hops.
HOPS = (
    "received_routed",  # HTTP receipt -> durably committed, routed (service wall clock; API input only)
    "batched_cleared",  # L2: received -> its batch cleared (netted and committed)
    "cleared_anchored",  # L2: batch cleared -> anchor included in a block
    "submitted_anchored",  # L1: submitted -> included in a block
    "anchored_final",  # both lanes: included -> final (confirmations, challenge window)
    "received_final",  # both lanes: end to end
)
H = {name: i for i, name in enumerate(HOPS)}

# Histogram bucket upper bounds in ms (1-1.5-2-3-5-7.5 series, 1 ms .. 1 h), then +Inf.
_SERIES = (1.0, 1.5, 2.0, 3.0, 5.0, 7.5)
_LEDGER_REFUSED = RejectCode.LEDGER_REFUSED.slug
LATENCY_EDGES_MS = np.array(
    [m * 10.0**e for e in range(0, 7) for m in _SERIES if m * 10.0**e <= 3_600_000], dtype=np.float64
)
NBINS = len(LATENCY_EDGES_MS) + 1
BATCH_SIZE_EDGES = np.array(
    [1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000], dtype=np.float64
)

TRADE_STATE_NAMES = {int(s): s.label for s in TradeState}


def _grow(a: npt.NDArray[Any], n: int, fill: Any = 0) -> npt.NDArray[Any]:
    if len(a) >= n:
        return a
    size = max(n, 2 * len(a), 64)
    out = np.full(size, fill, dtype=a.dtype)
    out[: len(a)] = a
    return out


def hist(values_ms: npt.NDArray[Any], weights: npt.NDArray[Any] | None = None) -> I64:
    """Counts per latency bucket (``NBINS``; the last one is +Inf)."""
    idx = np.searchsorted(LATENCY_EDGES_MS, np.asarray(values_ms, dtype=np.float64), side="left")
    out: I64 = np.bincount(idx, weights=weights, minlength=NBINS).astype(np.int64)
    return out


def percentile(counts: I64, q: float) -> float | None:
    """Approximate q-quantile (0..1) of a latency histogram, linear within a bucket, in ms."""
    total = int(counts.sum())
    if total == 0:
        return None
    rank = q * total
    cum = np.cumsum(counts)
    b = int(np.searchsorted(cum, rank, side="left"))
    b = min(b, NBINS - 1)
    lo = 0.0 if b == 0 else float(LATENCY_EDGES_MS[b - 1])
    hi = float(LATENCY_EDGES_MS[b]) if b < len(LATENCY_EDGES_MS) else lo
    before = float(cum[b - 1]) if b > 0 else 0.0
    inside = float(counts[b])
    frac = 0.0 if inside == 0 else min(1.0, max(0.0, (rank - before) / inside))
    return lo + (hi - lo) * frac


@dataclass
class PoolBatches:
    """Every batch of one pool, indexed by its sequence number."""

    state: npt.NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    opened_ms: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cleared_ms: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    anchored_ms: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    final_ms: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    unwound_ms: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    flows: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    gross_usd: F64 = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    net_usd: F64 = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    def ensure(self, seq: int) -> None:
        n = seq + 1
        if len(self.state) >= n:
            return
        self.state = _grow(self.state, n)
        for name in ("opened_ms", "cleared_ms", "anchored_ms", "final_ms", "unwound_ms"):
            setattr(self, name, _grow(getattr(self, name), n, -1))
        self.flows = _grow(self.flows, n)
        self.gross_usd = _grow(self.gross_usd, n)
        self.net_usd = _grow(self.net_usd, n)


@dataclass
class InflightBatch:
    """A cleared, not yet final batch: who is on it and what it moves."""

    pool: int
    seq: int
    trades: pa.Table  # flow_id, kind, buyer, seller, received_ms (batch order not guaranteed)
    net_p: npt.NDArray[np.int32]
    net_a: npt.NDArray[np.int32]
    net_minor: I64
    received_ms: I64


@dataclass
class L1View:
    """One group of L1 gross settlements (routed L1 flows, or an unwound batch's flows)."""

    group_id: str
    origin: str
    pool: int  # -1 for routed L1, the pool of the unwound batch otherwise
    trades: pa.Table  # flow_id, kind, buyer, seller (group row order)
    table: pa.Table  # the engine's group table: flow_id, attempt, submitted_ms, included_*, final_ms
    received_ms: I64
    leg_row: I64  # legs of routed flows, for positions (empty for unwound groups)
    leg_p: npt.NDArray[np.int32]
    leg_a: npt.NDArray[np.int32]
    leg_amount: I64
    included: npt.NDArray[np.bool_]
    final: npt.NDArray[np.bool_]
    unwound_net: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], I64] | None = None


@dataclass
class Bucket:
    """One time bucket of the timeline (engine time)."""

    latency: I64  # [lane key, hop, bin]
    gross_usd: F64  # per pool
    net_usd: F64
    batches: I64  # per pool
    trades: I64  # per lane key (received)
    queues: dict[str, int] = field(default_factory=dict)


class Timeline:
    """Time buckets of one width (engine time), the oldest dropped past ``retention``."""

    def __init__(self, bucket_ms: int, retention: int, n_pools: int) -> None:
        self.bucket_ms = bucket_ms
        self.retention = retention
        self.n_pools = n_pools
        self.buckets: dict[int, Bucket] = {}
        self.newest = -1

    def bucket(self, at_ms: int) -> Bucket:
        key = at_ms // self.bucket_ms
        bucket = self.buckets.get(key)
        if bucket is None:
            k = self.n_pools
            bucket = Bucket(
                latency=np.zeros((k + 1, len(HOPS), NBINS), dtype=np.int64),
                gross_usd=np.zeros(k),
                net_usd=np.zeros(k),
                batches=np.zeros(k, dtype=np.int64),
                trades=np.zeros(k + 1, dtype=np.int64),
            )
            self.buckets[key] = bucket
            if key > self.newest:
                self.newest = key
                if len(self.buckets) > self.retention:
                    for old in [b for b in self.buckets if b <= key - self.retention]:
                        del self.buckets[old]
        return bucket

    def window(self, since_ms: int, until_ms: int) -> list[tuple[int, Bucket]]:
        lo, hi = since_ms // self.bucket_ms, until_ms // self.bucket_ms
        return [(key * self.bucket_ms, self.buckets[key]) for key in sorted(self.buckets) if lo <= key <= hi]


class ReadModel:
    """See the module docstring."""

    def __init__(
        self,
        config: ClearingConfig,
        store: Store,
        *,
        cache_rows: int = 500_000,
        bucket_ms: int = 10_000,
        retention_buckets: int = 1_500,
        bounded: bool = False,
        hot_ids: int = 1 << 18,
    ) -> None:
        self.config = config
        self.store = store
        self.pools = [p.id for p in config.pools]
        self.pool_lookup = {p: i for i, p in enumerate(self.pools)}
        self.n_pools = len(self.pools)
        self.l1 = self.n_pools  # lane key of L1
        self.lane_keys = [*self.pools, "L1"]
        self.participant_lookup = config.participant_index()
        self.participant_ids = config.participant_ids
        self.asset_lookup = config.asset_index()
        self.asset_codes = [a.code for a in config.assets]
        self.scales = [a.scale for a in config.assets]
        self.house = config.house_index
        n_p, n_a = config.participant_count, len(config.assets)
        # chunk registry
        self.chunk_seq = np.zeros(0, dtype=np.int64)
        self.chunk_part = np.zeros(0, dtype=np.int32)
        self.chunk_rows = np.zeros(0, dtype=np.int32)
        self.n_chunks = 0
        self.cache: OrderedDict[int, pa.Table] = OrderedDict()
        self.cache_rows = 0
        self.cache_rows_max = cache_rows
        self.index = IdIndex()
        self.older_index: IdIndex | None = None
        self.bounded = bounded
        self.hot_ids = hot_ids
        self.archive: FlowIdArchive | None = None
        # batches
        self.batches = [PoolBatches() for _ in self.pools]
        self.batch_order_pool = np.zeros(0, dtype=np.int32)
        self.batch_order_seq = np.zeros(0, dtype=np.int64)
        self.n_batches = 0
        self.open_trades: dict[tuple[int, int], list[pa.Table]] = {}
        self.inflight: dict[str, InflightBatch] = {}
        self.l1_groups: dict[str, L1View] = {}
        self.l1_open: set[str] = set()
        self.l1_done: set[str] = set()
        self._unwound_trades: dict[str, InflightBatch] = {}
        self._init_aggregates(bucket_ms, retention_buckets)
        self._init_positions(n_p, n_a)
        self.applied_seq = 0
        self.now_ms = 0
        self.trades_received = 0

    def _init_aggregates(self, bucket_ms: int, retention_buckets: int) -> None:
        """Counts by lane and state, rejects, batch figures, latency histograms, timelines."""
        self.counts = np.zeros((self.n_pools + 1, len(STATE_KEYS)), dtype=np.int64)
        self.rejected_total = 0
        self.rejects_by_code: dict[str, int] = {}
        self.duplicates = 0
        self.batch_counts = np.zeros((self.n_pools, len(BATCH_STATE_NAMES)), dtype=np.int64)
        self.gross_usd = np.zeros(self.n_pools, dtype=np.float64)
        self.net_usd = np.zeros(self.n_pools, dtype=np.float64)
        self.latency = np.zeros((self.n_pools + 1, len(HOPS), NBINS), dtype=np.int64)
        self.batch_sizes = np.zeros((self.n_pools, len(BATCH_SIZE_EDGES) + 1), dtype=np.int64)
        self.batch_size_sum = np.zeros(self.n_pools, dtype=np.int64)
        # A fine timeline (the last two hours) and a coarse one (the last day and more).
        self.timelines = [
            Timeline(bucket_ms, max(1, 7_200_000 // bucket_ms), self.n_pools),
            Timeline(max(bucket_ms, 60_000), retention_buckets, self.n_pools),
        ]
        self.alerts: list[dict[str, Any]] = []
        self.alerts_by_kind: dict[str, int] = {}

    def _init_positions(self, n_p: int, n_a: int) -> None:
        """Positions per pool, participant and asset: cleared-not-final, final, L1 pending/final."""
        self.cleared_net = np.zeros((self.n_pools, n_p, n_a), dtype=np.int64)
        self.final_net = np.zeros((self.n_pools, n_p, n_a), dtype=np.int64)
        self.l1_pending = np.zeros((n_p, n_a), dtype=np.int64)
        self.l1_final = np.zeros((n_p, n_a), dtype=np.int64)

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
            self._alert("critical", event.message, event.at_ms)
            kind = event.message.split(" ", 1)[0] if event.message.startswith(_LEDGER_REFUSED) else "alert"
            self.alerts_by_kind[kind] = self.alerts_by_kind.get(kind, 0) + 1
            events.append(AlertEvent(step.seq, event.at_ms, index, kind, event.message))
        self.duplicates += step.duplicates
        return events

    # -- trade records ---------------------------------------------------------------------
    def _add_records(self, step: Step, part: int, table: pa.Table, events: list[EventGroup]) -> None:
        self._register_chunk(step.seq, part, table)
        pool = _dict_codes(table.column("pool"), self.pool_lookup)
        rejected = table.column("state").to_numpy() == TradeState.REJECTED
        live = ~rejected
        l2 = live & (pool >= 0)
        self._count_records(table, pool, live, l2, rejected)
        if l2.any():
            self._track_open_batches(table, pool, l2)
        self._record_events(step, table, pool, live, l2, rejected, events)

    def _register_chunk(self, seq: int, part: int, table: pa.Table) -> None:
        """The chunk in the registry, its ids in the index, its table in the cache."""
        c = self.n_chunks
        self.chunk_seq = _grow(self.chunk_seq, c + 1)
        self.chunk_part = _grow(self.chunk_part, c + 1)
        self.chunk_rows = _grow(self.chunk_rows, c + 1)
        self.chunk_seq[c], self.chunk_part[c], self.chunk_rows[c] = seq, part, table.num_rows
        self.n_chunks += 1
        keys = hash_ids(table.column("flow_id"))
        locs = (np.int64(c) << np.int64(32)) | np.arange(table.num_rows, dtype=np.int64)
        if self.bounded and self.index.size >= self.hot_ids:
            # The older generation's ids are in the store's flow-id runs (fed before this
            # observer sees a step): drop it.
            self.older_index, self.index = self.index, IdIndex()
        self.index.add(keys, locs)
        self._cache_put(c, table)

    def _count_records(
        self, table: pa.Table, pool: npt.NDArray[Any], live: Mask, l2: Mask, rejected: Mask
    ) -> None:
        """Trades by lane and state, rejects by code, and the timeline's trade counts."""
        l1 = live & (pool < 0)
        self.trades_received += table.num_rows
        np.add.at(self.counts[:, S["received"]], np.where(l2, pool, self.l1)[live], 1)
        np.add.at(self.counts[:, S["batched"]], pool[l2], 1)
        self.counts[self.l1, S["submitted"]] += int(l1.sum())
        n_rej = int(rejected.sum())
        if n_rej:
            self.rejected_total += n_rej
            codes = table.column("reject_code").to_numpy()[rejected]
            for code, count in zip(*np.unique(codes, return_counts=True), strict=True):
                slug = RejectCode(int(code)).slug
                self.rejects_by_code[slug] = self.rejects_by_code.get(slug, 0) + int(count)
        per_lane = np.bincount(np.where(l2, pool, self.l1)[live], minlength=self.n_pools + 1)
        for bucket in self._buckets(int(table.column("received_ms").to_numpy()[-1])):
            bucket.trades += per_lane

    def _track_open_batches(self, table: pa.Table, pool: npt.NDArray[Any], l2: Mask) -> None:
        """Who is on which open batch, for per-trade events when the batch moves."""
        small = table.select(["flow_id", "kind", "buyer", "seller", "received_ms"])
        batch_seq = table.column("batch_seq").to_numpy()
        keyed = pool.astype(np.int64) * (1 << 40) + batch_seq
        for key in np.unique(keyed[l2]).tolist():
            rows = np.flatnonzero(l2 & (keyed == key))
            k, s = int(key >> 40), int(key & ((1 << 40) - 1))
            self.open_trades.setdefault((k, s), []).append(small.take(pa.array(rows)))

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

    def _cache_put(self, chunk: int, table: pa.Table) -> None:
        self.cache[chunk] = table
        self.cache_rows += table.num_rows
        while self.cache_rows > self.cache_rows_max and len(self.cache) > 1:
            _, old = self.cache.popitem(last=False)
            self.cache_rows -= old.num_rows

    def chunk_table(self, chunk: int) -> pa.Table:
        """The trade records of one chunk (cached, else read back from the store)."""
        table = self.cache.get(chunk)
        if table is not None:
            self.cache.move_to_end(chunk)
            return table
        seq, part = int(self.chunk_seq[chunk]), int(self.chunk_part[chunk])
        table = self.store.trade_chunk(seq, part)
        if table is None:
            raise LookupError(f"trade chunk {seq}/{part} missing from the store")
        self._cache_put(chunk, table)
        return table

    def find(self, flow_id: str, kind: int | None = None) -> tuple[int, int] | None:
        """(chunk, row) of the record of ``flow_id`` (newest if trade and payment share it)."""
        found = None
        h = hash_id(flow_id)
        locs = [] if self.older_index is None else self.older_index.find(h)
        for loc in locs + self.index.find(h):
            chunk, row = loc >> 32, loc & 0xFFFFFFFF
            if self._matches(chunk, row, flow_id, kind):
                found = (chunk, row)
        if found is None and self.archive is not None:
            for k in (0, 1) if kind is None else (kind,):
                for seq, part, at in self.archive.candidates(flow_id, k):
                    c = self._chunk_of(seq, part)
                    if (
                        c is not None
                        and self._matches(c, at, flow_id, kind)
                        and (found is None or c > found[0])
                    ):
                        found = (c, at)
        return found

    def _matches(self, chunk: int, row: int, flow_id: str, kind: int | None) -> bool:
        table = self.chunk_table(chunk)
        if row >= table.num_rows or table.column("flow_id")[row].as_py() != flow_id:
            return False
        return kind is None or int(table.column("kind")[row].as_py()) == kind

    def _chunk_of(self, seq: int, part: int) -> int | None:
        """The chunk number of step ``seq``'s record part (chunks are registered in log order)."""
        c = int(np.searchsorted(self.chunk_seq[: self.n_chunks], seq, side="left"))
        while c < self.n_chunks and int(self.chunk_seq[c]) == seq:
            if int(self.chunk_part[c]) == part:
                return c
            c += 1
        return None

    def maybe_known(self, ids: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.bool_]:
        """Trade ids that may have a record (a hit still needs :meth:`find`; a miss is certain)."""
        keys = hash_ids(ids)
        maybe = self.index.contains(keys)
        if self.older_index is not None:
            maybe |= self.older_index.contains(keys)
        if self.archive is not None:
            arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
            maybe |= self.archive.maybe(self.archive.hashes(arr, 0))
        return maybe

    def index_nbytes(self) -> int:
        return self.index.nbytes() + (0 if self.older_index is None else self.older_index.nbytes())

    def find_trade(self, flow_id: str) -> dict[str, Any] | None:
        """The stored record dict of one flow, like :meth:`Store.find_trade`."""
        hit = self.find(flow_id)
        if hit is None:
            return None
        chunk, row = hit
        record: dict[str, Any] = self.chunk_table(chunk).slice(row, 1).to_pylist()[0]
        record["log_seq"] = int(self.chunk_seq[chunk])
        return record

    # -- batches ---------------------------------------------------------------------------
    def _batch_cleared(self, seq: int, b: BatchCleared, events: list[EventGroup]) -> None:
        k = self.pool_lookup[b.pool]
        s = b.seq
        pb = self.batches[k]
        pb.ensure(s)
        pb.state[s] = B_CLEARED
        pb.opened_ms[s] = b.opened_at_ms
        pb.cleared_ms[s] = b.cleared_at_ms
        pb.flows[s] = b.flows
        pb.gross_usd[s] = b.gross_usd
        pb.net_usd[s] = b.net_usd
        i = self.n_batches
        self.batch_order_pool = _grow(self.batch_order_pool, i + 1)
        self.batch_order_seq = _grow(self.batch_order_seq, i + 1)
        self.batch_order_pool[i], self.batch_order_seq[i] = k, s
        self.n_batches += 1
        n = b.flows
        cleared_ms = b.cleared_at_ms
        self.counts[k, S["batched"]] -= n
        self.counts[k, S["cleared"]] += n
        self.batch_counts[k, B_CLEARED] += 1
        self.gross_usd[k] += b.gross_usd
        self.net_usd[k] += b.net_usd
        size_bin = int(np.searchsorted(BATCH_SIZE_EDGES, n, side="left"))
        self.batch_sizes[k, size_bin] += 1
        self.batch_size_sum[k] += n
        received = np.asarray(b.received_ms, dtype=np.int64)
        buckets = self._buckets(cleared_ms)
        self._add_latency(k, "batched_cleared", hist(cleared_ms - received), buckets)
        for bucket in buckets:
            bucket.gross_usd[k] += b.gross_usd
            bucket.net_usd[k] += b.net_usd
            bucket.batches[k] += 1
        parts = self.open_trades.pop((k, s), [])
        trades = pa.concat_tables(parts) if parts else _EMPTY_TRADES
        net_p = _lookup(b.net_participant, self.participant_lookup, self.house)
        net_a = _lookup(b.net_asset, self.asset_lookup, -1)
        net_minor = np.asarray(b.net_minor, dtype=np.int64)
        np.add.at(self.cleared_net[k], (net_p, net_a), net_minor)
        batch_id = b.batch_id
        self.inflight[batch_id] = InflightBatch(k, s, trades, net_p, net_a, net_minor, received)
        events.append(
            BatchEvent(BATCH_CLEARED, seq, cleared_ms, batch_id, self.pools[k], self.batch_view(k, s))
        )
        events.append(
            TradeEvents(
                "trade.cleared",
                seq,
                cleared_ms,
                lambda: _batch_trade_columns(trades, batch_id, self.pools[k]),
                trades.num_rows,
            )
        )

    def _batch_transitions(self, step: Step, events: list[EventGroup]) -> None:
        for event in step.events:
            match event:
                case BatchAnchored():
                    self._batch_anchored(step.seq, event, events)
                case BatchReorged():
                    k, s = self._batch_key(event.batch_id)
                    self._batch_to(k, s, int(self.batches[k].flows[s]), B_ANCHORED, B_CLEARED)
                    self.batches[k].anchored_ms[s] = -1
                    detail = batch_event_row(event)[3]  # the stored detail text
                    self._alert(
                        "warning", f"batch {event.batch_id} anchor reorged out: {detail}", event.at_ms
                    )
                case BatchFinal():
                    self._batch_final(step.seq, event, events)
                case BatchUnwound():
                    self._batch_unwound(step.seq, event, events)

    def _batch_key(self, batch_id: str) -> tuple[int, int]:
        """(pool index, batch seq) of a batch id, its pool's arrays grown to hold it."""
        pool_id, s = model_ids.split_batch_id(batch_id)
        k = self.pool_lookup[pool_id]
        self.batches[k].ensure(s)
        return k, s

    def _batch_anchored(self, seq: int, event: BatchAnchored, events: list[EventGroup]) -> None:
        batch_id, at_ms = event.batch_id, event.at_ms
        k, s = self._batch_key(batch_id)
        pb, pool_id = self.batches[k], self.pools[k]
        n = int(pb.flows[s])
        self._batch_to(k, s, n, B_CLEARED, B_ANCHORED)
        pb.anchored_ms[s] = at_ms
        wait = at_ms - int(pb.cleared_ms[s])
        self._add_latency(k, "cleared_anchored", hist(np.array([wait]), np.array([n])), self._buckets(at_ms))
        view = {**self.batch_view(k, s), "anchor": batch_event_row(event)[3]}
        events.append(BatchEvent(BATCH_ANCHORED, seq, at_ms, batch_id, pool_id, view))
        flight = self.inflight.get(batch_id)
        if flight is not None:
            events.append(_batch_events("trade.anchored", seq, at_ms, flight.trades, batch_id, pool_id))

    def _batch_final(self, seq: int, event: BatchFinal, events: list[EventGroup]) -> None:
        batch_id, at_ms = event.batch_id, event.at_ms
        k, s = self._batch_key(batch_id)
        pb, pool_id = self.batches[k], self.pools[k]
        n = int(pb.flows[s])
        self._batch_to(k, s, n, B_ANCHORED, B_FINAL)
        pb.final_ms[s] = at_ms
        buckets = self._buckets(at_ms)
        wait = at_ms - int(pb.anchored_ms[s])
        self._add_latency(k, "anchored_final", hist(np.array([wait]), np.array([n])), buckets)
        flight = self.inflight.get(batch_id)
        if flight is not None:
            self._add_latency(k, "received_final", hist(at_ms - flight.received_ms), buckets)
            np.add.at(self.cleared_net[k], (flight.net_p, flight.net_a), -flight.net_minor)
            np.add.at(self.final_net[k], (flight.net_p, flight.net_a), flight.net_minor)
            del self.inflight[batch_id]
            events.append(_batch_events("trade.final", seq, at_ms, flight.trades, batch_id, pool_id))
        events.append(BatchEvent(BATCH_FINAL, seq, at_ms, batch_id, pool_id, self.batch_view(k, s)))

    def _batch_unwound(self, seq: int, event: BatchUnwound, events: list[EventGroup]) -> None:
        batch_id, at_ms = event.batch_id, event.at_ms
        k, s = self._batch_key(batch_id)
        pb, pool_id = self.batches[k], self.pools[k]
        was = int(pb.state[s])
        trades_from = "anchored" if was == B_ANCHORED else "cleared"
        self._batch_to(k, s, int(pb.flows[s]), was, B_UNWOUND, trades_from=trades_from)
        pb.unwound_ms[s] = at_ms
        self._alert("critical", f"batch {batch_id} unwound: {event.reason}", at_ms)
        flight = self.inflight.pop(batch_id, None)
        if flight is not None:
            np.add.at(self.cleared_net[k], (flight.net_p, flight.net_a), -flight.net_minor)
            np.add.at(self.l1_pending, (flight.net_p, flight.net_a), flight.net_minor)
            self._unwound_trades[batch_id] = flight
            events.append(_batch_events("trade.unwound", seq, at_ms, flight.trades, batch_id, pool_id))
        view = {**self.batch_view(k, s), "reason": event.reason}
        events.append(BatchEvent(BATCH_UNWOUND, seq, at_ms, batch_id, pool_id, view))

    def _move(self, k: int, src: str, dst: str, n: int) -> None:
        self.counts[k, S[src]] -= n
        self.counts[k, S[dst]] += n

    def _batch_to(self, k: int, s: int, n: int, src: int, dst: int, trades_from: str | None = None) -> None:
        """Batch ``s`` of pool ``k`` (``n`` trades) goes from state ``src`` to ``dst``: its state,
        the pool's batch counts and its trades' counts (by default from the trade state named
        like ``src``) move together."""
        self.batches[k].state[s] = dst
        self.batch_counts[k, src] -= 1
        self.batch_counts[k, dst] += 1
        self._move(k, trades_from or BATCH_STATE_NAMES[src], BATCH_STATE_NAMES[dst], n)

    def _add_latency(self, lane: int, hop: str, h: I64, buckets: list[Bucket]) -> None:
        """A histogram of one hop into the lane's totals and into every timeline's bucket."""
        self.latency[lane, H[hop]] += h
        for bucket in buckets:
            bucket.latency[lane, H[hop]] += h

    # -- L1 ----------------------------------------------------------------------------------
    def _l1_group(self, step: Step, update: L1GroupUpdated, events: list[EventGroup]) -> None:
        group_id, table = update.group_id, update.table
        view = self.l1_groups.get(group_id)
        if view is None:
            origin = "routed" if update.opened is None else update.opened.origin
            view = self._new_l1_view(group_id, origin, table, step)
            self.l1_groups[group_id] = view
            self.l1_open.add(group_id)
        view.table = table
        included = table.column("included_height").to_numpy() >= 0
        final = table.column("final_ms").to_numpy() >= 0
        new_incl = np.flatnonzero(included & ~view.included)
        new_final = np.flatnonzero(final & ~view.final)
        lost = np.flatnonzero(~included & view.included & ~final)
        routed = view.pool < 0
        lk = self.l1 if routed else view.pool
        if routed:
            self._move(lk, "submitted", "anchored", len(new_incl))
            self._move(lk, "anchored", "submitted", len(lost))
            self._move(lk, "anchored", "final", len(new_final))
        if len(new_incl):
            submitted = table.column("submitted_ms").to_numpy()[new_incl]
            inc_ms = table.column("included_ms").to_numpy()[new_incl]
            self._add_latency(
                self.l1, "submitted_anchored", hist(inc_ms - submitted), self._buckets(int(inc_ms.max()))
            )
            events.append(
                TradeEvents(
                    "trade.anchored", step.seq, int(inc_ms.max()), view.trades.take(pa.array(new_incl))
                )
            )
        if len(new_final):
            fin_ms = table.column("final_ms").to_numpy()[new_final]
            inc_ms = table.column("included_ms").to_numpy()[new_final]
            buckets = self._buckets(int(fin_ms.max()))
            self._add_latency(self.l1, "anchored_final", hist(fin_ms - inc_ms), buckets)
            if routed:
                self._add_latency(
                    self.l1, "received_final", hist(fin_ms - view.received_ms[new_final]), buckets
                )
            if len(view.leg_row):
                newly = np.zeros(len(view.final), dtype=np.bool_)
                newly[new_final] = True
                legs = newly[view.leg_row]
                np.add.at(self.l1_pending, (view.leg_p[legs], view.leg_a[legs]), -view.leg_amount[legs])
                np.add.at(self.l1_final, (view.leg_p[legs], view.leg_a[legs]), view.leg_amount[legs])
            events.append(
                TradeEvents("trade.final", step.seq, int(fin_ms.max()), view.trades.take(pa.array(new_final)))
            )
        view.included = included
        view.final = final
        if final.all():
            self.l1_open.discard(group_id)
            if view.unwound_net is not None:
                p, a, v = view.unwound_net
                np.add.at(self.l1_pending, (p, a), -v)
                np.add.at(self.l1_final, (p, a), v)
                view.unwound_net = None
            # Settled: only "all final" is needed from now on (memory stays bounded).
            del self.l1_groups[group_id]
            self.l1_done.add(group_id)

    def _new_l1_view(self, group_id: str, origin: str, table: pa.Table, step: Step) -> L1View:
        n = table.num_rows
        z = np.zeros(0, dtype=np.int64)
        z32 = np.zeros(0, dtype=np.int32)
        batch_id = model_ids.parse_unwound_origin(origin)
        if batch_id is not None:
            flight = self._unwound_trades.pop(batch_id, None)
            pool_id = model_ids.split_batch_id(batch_id)[0]
            k = self.pool_lookup.get(pool_id, 0)
            trades = _EMPTY_TRADES if flight is None else flight.trades
            ordered = _order_like(trades, table.column("flow_id"))
            cols = _batch_trade_columns(ordered, batch_id, pool_id)
            received = (
                ordered.column("received_ms").to_numpy()
                if ordered.num_rows == n
                else np.zeros(n, dtype=np.int64)
            )
            unwound_net = None if flight is None else (flight.net_p, flight.net_a, flight.net_minor)
            return L1View(
                group_id,
                origin,
                k,
                cols,
                table,
                received,
                z,
                z32,
                z32,
                z,
                np.zeros(n, dtype=np.bool_),
                np.zeros(n, dtype=np.bool_),
                unwound_net,
            )
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
        cols = _trade_columns(records, _lane_names(records), self.pools, np.full(records.num_rows, -1))
        leg_row, leg_p, leg_a, leg_amount = self._legs(records)
        np.add.at(self.l1_pending, (leg_p, leg_a), leg_amount)
        return L1View(
            group_id,
            origin,
            -1,
            cols,
            table,
            records.column("received_ms").to_numpy().astype(np.int64),
            leg_row,
            leg_p,
            leg_a,
            leg_amount,
            np.zeros(n, dtype=np.bool_),
            np.zeros(n, dtype=np.bool_),
        )

    def _legs(self, records: pa.Table) -> tuple[I64, npt.NDArray[np.int32], npt.NDArray[np.int32], I64]:
        """Signed position changes of flows settled gross: (row, participant, asset, amount)."""
        n = records.num_rows
        if n == 0:
            z = np.zeros(0, dtype=np.int64)
            return z, z.astype(np.int32), z.astype(np.int32), z
        buyer = _lookup(records.column("buyer"), self.participant_lookup, self.house)
        seller = _lookup(records.column("seller"), self.participant_lookup, self.house)
        base = _lookup(records.column("base"), self.asset_lookup, 0)
        quote = _lookup(records.column("quote"), self.asset_lookup, 0)
        qty = records.column("qty_minor").to_numpy().astype(np.int64)
        quote_amt = records.column("quote_minor").to_numpy().astype(np.int64)
        fee_b = records.column("fee_buyer_minor").to_numpy().astype(np.int64)
        fee_s = records.column("fee_seller_minor").to_numpy().astype(np.int64)
        house = np.full(n, self.house, dtype=np.int32)
        rows = np.arange(n, dtype=np.int64)
        # legs A, B, FEE1, FEE2 as (payer, payee, asset, amount); each gives two signed changes
        specs = (
            (seller, buyer, base, qty),
            (buyer, seller, quote, quote_amt),
            (buyer, house, quote, fee_b),
            (seller, house, quote, fee_s),
        )
        out_r, out_p, out_a, out_v = [], [], [], []
        for payer, payee, asset, amount in specs:
            out_r += [rows, rows]
            out_p += [payer, payee]
            out_a += [asset, asset]
            out_v += [-amount, amount]
        return (
            np.concatenate(out_r),
            np.concatenate(out_p).astype(np.int32),
            np.concatenate(out_a).astype(np.int32),
            np.concatenate(out_v),
        )

    # -- timeline ----------------------------------------------------------------------------
    def _buckets(self, at_ms: int) -> list[Bucket]:
        return [t.bucket(at_ms) for t in self.timelines]

    def observe_api(self, lane_keys: npt.NDArray[np.int64], latency_ms: F64, at_ms: int) -> None:
        """The service hop: HTTP receipt -> durably committed (wall clock), per lane key."""
        buckets = self._buckets(at_ms)
        for lk in np.unique(lane_keys).tolist():
            self._add_latency(lk, "received_routed", hist(latency_ms[lane_keys == lk]), buckets)

    def sample_queues(self, at_ms: int, queues: dict[str, int]) -> None:
        for bucket in self._buckets(at_ms):
            for name, value in queues.items():
                if value > bucket.queues.get(name, -1):
                    bucket.queues[name] = value

    def _alert(self, severity: str, message: str, at_ms: int) -> None:
        self.alerts.append(
            {"id": f"alert-{len(self.alerts) + 1}", "severity": severity, "message": message, "at_ms": at_ms}
        )
        if len(self.alerts) > 200:
            del self.alerts[:-200]

    # ================================================================== views
    def batch_view(self, k: int, s: int) -> dict[str, Any]:
        pb = self.batches[k]

        def opt(v: int) -> int | None:
            return None if v < 0 else int(v)

        return {
            "batch_id": model_ids.batch_id(self.pools[k], s),
            "pool": self.pools[k],
            "seq": s,
            "state": BATCH_STATE_NAMES[int(pb.state[s])],
            "flows": int(pb.flows[s]),
            "opened_at_ms": opt(int(pb.opened_ms[s])),
            "cleared_at_ms": opt(int(pb.cleared_ms[s])),
            "anchored_at_ms": opt(int(pb.anchored_ms[s])),
            "final_at_ms": opt(int(pb.final_ms[s])),
            "unwound_at_ms": opt(int(pb.unwound_ms[s])),
            "gross_usd": round(float(pb.gross_usd[s]), 2),
            "net_usd": round(float(pb.net_usd[s]), 2),
        }

    def current_states(self, table: pa.Table) -> npt.NDArray[np.int8]:
        """Each record's current lifecycle state (TradeState values), vectorised."""
        state = table.column("state").to_numpy().astype(np.int8).copy()
        pool = _dict_codes(table.column("pool"), self.pool_lookup)
        seq = table.column("batch_seq").to_numpy()
        for k in range(self.n_pools):
            rows = np.flatnonzero((pool == k) & (state != TradeState.REJECTED))
            if not len(rows):
                continue
            pb = self.batches[k]
            s = seq[rows]
            inside = s < len(pb.state)
            bstate = np.zeros(len(rows), dtype=np.int8)
            bstate[inside] = pb.state[s[inside]]
            state[rows] = _BATCH_TO_TRADE[bstate]
        l1_rows = np.flatnonzero((pool < 0) & (state == TradeState.SUBMITTED))
        if len(l1_rows):
            groups = table.column("l1_group").combine_chunks()
            names = groups.dictionary.to_pylist() if pa.types.is_dictionary(groups.type) else None
            codes = groups.indices.to_numpy(zero_copy_only=False) if names is not None else None
            for gi, name in enumerate(names or []):
                rows = l1_rows[codes[l1_rows] == gi] if codes is not None else l1_rows
                if not len(rows):
                    continue
                if name in self.l1_done:
                    state[rows] = TradeState.FINAL
                    continue
                view = self.l1_groups.get(name)
                if view is None:
                    continue
                ids = table.column("flow_id").take(pa.array(rows))
                pos = pc.index_in(ids, value_set=view.table.column("flow_id")).to_numpy(zero_copy_only=False)
                ok = ~np.isnan(pos.astype(np.float64))
                g_rows = pos[ok].astype(np.int64)
                sub = np.full(len(g_rows), TradeState.SUBMITTED, dtype=np.int8)
                sub[view.included[g_rows]] = TradeState.ANCHORED
                sub[view.final[g_rows]] = TradeState.FINAL
                state[rows[ok]] = sub
        out: npt.NDArray[np.int8] = state
        return out


# ---------------------------------------------------------------------- helpers
_EMPTY_TRADES = pa.table(
    {
        "flow_id": pa.array([], type=pa.string()),
        "kind": pa.array([], type=pa.int8()),
        "buyer": pa.array([], type=pa.string()),
        "seller": pa.array([], type=pa.string()),
        "received_ms": pa.array([], type=pa.int64()),
    }
)


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


def _dict_codes(column: pa.ChunkedArray | pa.Array, lookup: dict[str, int]) -> I64:
    """Index of each value in ``lookup`` (-1 for null or unknown), via the dictionary."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    table = np.array(
        [lookup.get(v, -1) if v is not None else -1 for v in arr.dictionary.to_pylist()] + [-1],
        dtype=np.int64,
    )
    codes = pc.fill_null(arr.indices, len(arr.dictionary)).to_numpy(zero_copy_only=False).astype(np.int64)
    out: I64 = table[codes]
    return out


def _lookup(values: Any, lookup: dict[str, int], missing: int) -> npt.NDArray[np.int32]:
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, type=pa.string())
    codes = _dict_codes(arr, lookup)
    return np.where(codes < 0, missing, codes).astype(np.int32)


def _lane_names(table: pa.Table) -> pa.Array:
    return table.column("lane").combine_chunks().cast(pa.string())


def _as_string(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr


def _trade_columns(table: pa.Table, lanes: pa.Array, pools: list[str], pool_codes: I64) -> pa.Table:
    """The columns a per-trade event carries (participant, pool and batch for filtering)."""
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
            "trade_id": _as_string(table.column("flow_id")),
            "kind": table.column("kind"),
            "buyer": _as_string(table.column("buyer")),
            "seller": _as_string(table.column("seller")),
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
            "trade_id": _as_string(trades.column("flow_id")),
            "kind": trades.column("kind"),
            "buyer": _as_string(trades.column("buyer")),
            "seller": _as_string(trades.column("seller")),
            "lane": pa.array(["L2"] * n, type=pa.string()),
            "pool": pa.array([pool] * n, type=pa.string()),
            "batch_id": pa.array([batch_id] * n, type=pa.string()),
        }
    )


def _lazy_take(columns: Callable[[], pa.Table], rows: npt.NDArray[np.int64]) -> Callable[[], pa.Table]:
    return lambda: columns().take(pa.array(rows))


def _order_like(trades: pa.Table, ids: pa.ChunkedArray | pa.Array) -> pa.Table:
    """``trades`` reordered to follow ``ids`` (rows not found are dropped)."""
    if trades.num_rows == 0:
        return trades
    pos = pc.index_in(ids, value_set=_as_string(trades.column("flow_id")))
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
