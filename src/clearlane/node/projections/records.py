"""The trade-records projection: every committed chunk of trade records, found by trade id.

A trade-id index (:class:`~clearlane.node.projections.index.IdIndex`, 16 bytes per id) points
at the step's record table; tables live in a bounded cache and are re-read from the store's
``trade_chunks`` when evicted — never one Python object per trade. With ``bounded`` (the
service) the index is a hot tier of two generations of ``hot_ids`` ids; older ids are found
through the store's flow-id runs (``adapters/sql/flowids.py``, :attr:`TradeRecords.archive`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.node.ports import FlowIdArchive, Store
from clearlane.node.projections.common import grow
from clearlane.node.projections.index import IdIndex, hash_id, hash_ids

# Rows of trade records the cache keeps (~220 B a row in serve: ~14 MiB). It was 500,000
# (~110 MB, 8 minutes to fill at 1,000 trades/s): most of serve's RSS growth over a 5-minute run
# was this cache still filling (serve7, docs/PERFORMANCE.md). What it serves — receipts of
# recent duplicates, the newest pages of the trade list — is the last few seconds to a minute;
# anything older is one store read.
CACHE_ROWS = 1 << 16


class TradeRecords:
    """See the module docstring."""

    def __init__(self, store: Store, *, cache_rows: int, bounded: bool, hot_ids: int) -> None:
        self.store = store
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
        self.trades_received = 0

    def register(self, seq: int, part: int, table: pa.Table) -> None:
        """The chunk in the registry, its ids in the index, its table in the cache."""
        c = self.n_chunks
        self.chunk_seq = grow(self.chunk_seq, c + 1)
        self.chunk_part = grow(self.chunk_part, c + 1)
        self.chunk_rows = grow(self.chunk_rows, c + 1)
        self.chunk_seq[c], self.chunk_part[c], self.chunk_rows[c] = seq, part, table.num_rows
        self.n_chunks += 1
        self.trades_received += table.num_rows
        keys = hash_ids(table.column("flow_id"))
        locs = (np.int64(c) << np.int64(32)) | np.arange(table.num_rows, dtype=np.int64)
        if self.bounded and self.index.size >= self.hot_ids:
            # The older generation's ids are in the store's flow-id runs (fed before this
            # observer sees a step): drop it.
            self.older_index, self.index = self.index, IdIndex()
        self.index.add(keys, locs)
        self._cache_put(c, table)

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
