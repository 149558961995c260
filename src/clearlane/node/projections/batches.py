"""The batches projection: every L2 batch as struct-of-arrays per pool (state, lifecycle times,
size, gross and net value), the pools' batch counts by state and size, and who is on each
batch that is still open or in flight (to publish per-trade events and move positions when the
batch moves)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.model import ids as model_ids
from clearlane.core.model.events import BatchCleared
from clearlane.node.projections.common import (
    B_CLEARED,
    BATCH_SIZE_EDGES,
    BATCH_STATE_NAMES,
    BATCH_TO_TRADE,
    F64,
    I64,
    Layout,
    Mask,
    grow,
    lookup,
)


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
        self.state = grow(self.state, n)
        for name in ("opened_ms", "cleared_ms", "anchored_ms", "final_ms", "unwound_ms"):
            setattr(self, name, grow(getattr(self, name), n, -1))
        self.flows = grow(self.flows, n)
        self.gross_usd = grow(self.gross_usd, n)
        self.net_usd = grow(self.net_usd, n)


class Batches:
    """See the module docstring (the arrays; :class:`BatchMembers` holds who is on them)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        k = layout.n_pools
        self.pool = [PoolBatches() for _ in range(k)]
        self.order_pool = np.zeros(0, dtype=np.int32)
        self.order_seq = np.zeros(0, dtype=np.int64)
        self.n_batches = 0
        self.counts = np.zeros((k, len(BATCH_STATE_NAMES)), dtype=np.int64)
        self.gross_usd = np.zeros(k, dtype=np.float64)
        self.net_usd = np.zeros(k, dtype=np.float64)
        self.sizes = np.zeros((k, len(BATCH_SIZE_EDGES) + 1), dtype=np.int64)
        self.size_sum = np.zeros(k, dtype=np.int64)

    def cleared(self, b: BatchCleared) -> tuple[int, int]:
        """A batch cleared: its row, its place in clearing order, the pool's totals."""
        k, s = self.layout.pool_lookup[b.pool], b.seq
        pb = self.pool[k]
        pb.ensure(s)
        pb.state[s] = B_CLEARED
        pb.opened_ms[s] = b.opened_at_ms
        pb.cleared_ms[s] = b.cleared_at_ms
        pb.flows[s] = b.flows
        pb.gross_usd[s] = b.gross_usd
        pb.net_usd[s] = b.net_usd
        i = self.n_batches
        self.order_pool = grow(self.order_pool, i + 1)
        self.order_seq = grow(self.order_seq, i + 1)
        self.order_pool[i], self.order_seq[i] = k, s
        self.n_batches += 1
        self.counts[k, B_CLEARED] += 1
        self.gross_usd[k] += b.gross_usd
        self.net_usd[k] += b.net_usd
        self.sizes[k, int(np.searchsorted(BATCH_SIZE_EDGES, b.flows, side="left"))] += 1
        self.size_sum[k] += b.flows
        return k, s

    def key(self, batch_id: str) -> tuple[int, int]:
        """(pool index, batch seq) of a batch id, its pool's arrays grown to hold it."""
        pool_id, s = model_ids.split_batch_id(batch_id)
        k = self.layout.pool_lookup[pool_id]
        self.pool[k].ensure(s)
        return k, s

    def move(self, k: int, s: int, src: int, dst: int) -> None:
        """Batch ``s`` of pool ``k`` goes from state ``src`` to ``dst`` (the counts follow)."""
        self.pool[k].state[s] = dst
        self.counts[k, src] -= 1
        self.counts[k, dst] += 1

    def view(self, k: int, s: int) -> dict[str, Any]:
        """One batch as the API shows it."""
        pb = self.pool[k]

        def opt(v: int) -> int | None:
            return None if v < 0 else int(v)

        return {
            "batch_id": model_ids.batch_id(self.layout.pools[k], s),
            "pool": self.layout.pools[k],
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

    def trade_states(self, state: npt.NDArray[np.int8], pool: I64, seq: I64, live: Mask) -> None:
        """Set, in place, the current trade state of every live L2 record from its batch."""
        for k in range(self.layout.n_pools):
            rows = np.flatnonzero((pool == k) & live)
            if not len(rows):
                continue
            pb = self.pool[k]
            s = seq[rows]
            inside = s < len(pb.state)
            bstate = np.zeros(len(rows), dtype=np.int8)
            bstate[inside] = pb.state[s[inside]]
            state[rows] = BATCH_TO_TRADE[bstate]


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


EMPTY_TRADES = pa.table(
    {
        "flow_id": pa.array([], type=pa.string()),
        "kind": pa.array([], type=pa.int8()),
        "buyer": pa.array([], type=pa.string()),
        "seller": pa.array([], type=pa.string()),
        "received_ms": pa.array([], type=pa.int64()),
    }
)


class BatchMembers:
    """Who is on each open batch, each cleared batch not yet final, and each unwound batch
    whose L1 group has not opened yet."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.open: dict[tuple[int, int], list[pa.Table]] = {}
        self.inflight: dict[str, InflightBatch] = {}
        self.unwound: dict[str, InflightBatch] = {}

    def add_open(self, table: pa.Table, pool: I64, l2: Mask) -> None:
        """Records routed to open batches, grouped by batch."""
        small = table.select(["flow_id", "kind", "buyer", "seller", "received_ms"])
        batch_seq = table.column("batch_seq").to_numpy()
        keyed = pool.astype(np.int64) * (1 << 40) + batch_seq
        for key in np.unique(keyed[l2]).tolist():
            rows = np.flatnonzero(l2 & (keyed == key))
            k, s = int(key >> 40), int(key & ((1 << 40) - 1))
            self.open.setdefault((k, s), []).append(small.take(pa.array(rows)))

    def cleared(self, k: int, b: BatchCleared) -> InflightBatch:
        """The batch's members leave the open set and fly with its net instructions."""
        parts = self.open.pop((k, b.seq), [])
        trades = pa.concat_tables(parts) if parts else EMPTY_TRADES
        layout = self.layout
        flight = InflightBatch(
            k,
            b.seq,
            trades,
            lookup(b.net_participant, layout.participant_lookup, layout.house),
            lookup(b.net_asset, layout.asset_lookup, -1),
            np.asarray(b.net_minor, dtype=np.int64),
            np.asarray(b.received_ms, dtype=np.int64),
        )
        self.inflight[b.batch_id] = flight
        return flight
