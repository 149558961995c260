"""What every projection shares: the config's dimensions (pools, lanes, participants, assets),
the latency histogram and time-bucket types, and the small columnar helpers that map ids to
array indices. No state of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.config.model import ClearingConfig
from clearlane.core.model.states import BATCH_STATE_LABELS, BatchState, TradeState

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

# Batch states (per pool arrays) are BatchState codes; 0 = not cleared yet (open, or never
# existed). The short names stay for the array code that indexes by them.
B_OPEN, B_CLEARED, B_ANCHORED, B_FINAL, B_UNWOUND = BatchState
BATCH_STATE_NAMES = BATCH_STATE_LABELS
BATCH_TO_TRADE = np.array([s.trade_state for s in BatchState], dtype=np.int8)

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
LATENCY_EDGES_MS = np.array(
    [m * 10.0**e for e in range(0, 7) for m in _SERIES if m * 10.0**e <= 3_600_000], dtype=np.float64
)
NBINS = len(LATENCY_EDGES_MS) + 1
BATCH_SIZE_EDGES = np.array(
    [1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000], dtype=np.float64
)

TRADE_STATE_NAMES = {int(s): s.label for s in TradeState}


@dataclass(frozen=True)
class Layout:
    """The config's dimensions as the projections index them: pools (lane keys 0..k-1, then
    L1 = k), participants (the house included) and assets."""

    pools: list[str]
    pool_lookup: dict[str, int]
    participant_ids: list[str]
    participant_lookup: dict[str, int]
    asset_codes: list[str]
    asset_lookup: dict[str, int]
    scales: list[int]
    house: int

    @classmethod
    def of(cls, config: ClearingConfig) -> Layout:
        pools = [p.id for p in config.pools]
        return cls(
            pools=pools,
            pool_lookup={p: i for i, p in enumerate(pools)},
            participant_ids=list(config.participant_ids),
            participant_lookup=config.participant_index(),
            asset_codes=[a.code for a in config.assets],
            asset_lookup=config.asset_index(),
            scales=[a.scale for a in config.assets],
            house=config.house_index,
        )

    @property
    def n_pools(self) -> int:
        return len(self.pools)

    @property
    def l1(self) -> int:
        """The lane key of L1 (after the pools)."""
        return len(self.pools)

    @property
    def lane_keys(self) -> list[str]:
        return [*self.pools, "L1"]

    @property
    def n_participants(self) -> int:
        return len(self.participant_ids)

    @property
    def n_assets(self) -> int:
        return len(self.asset_codes)


def grow(a: npt.NDArray[Any], n: int, fill: Any = 0) -> npt.NDArray[Any]:
    """``a`` with room for ``n`` items (doubling; new slots hold ``fill``)."""
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


def dict_codes(column: pa.ChunkedArray | pa.Array, lookup: dict[str, int]) -> I64:
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


# Up to this many values, a Python dict lookup per value beats the Arrow calls of dict_codes
# (dictionary encode, decode the dictionary, fill nulls: ~100 µs of fixed cost — a batch's net
# legs and an L1 group's rows are tens of values, looked up at every clear; serve7).
_LOOKUP_BY_DICT_MAX = 256


def lookup(values: Any, index: dict[str, int], missing: int) -> npt.NDArray[np.int32]:
    """Index of each value in ``index`` (``missing`` for null or unknown), as int32."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, type=pa.string())
    if len(arr) <= _LOOKUP_BY_DICT_MAX:
        get = index.get
        found = [missing if v is None else get(v, missing) for v in arr.to_pylist()]
        return np.array(found, dtype=np.int32)
    codes = dict_codes(arr, index)
    return np.where(codes < 0, missing, codes).astype(np.int32)


def as_string(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr
