"""Bounds on what the service keeps per trade (issue 18, serve7: flat memory under load)."""

from __future__ import annotations

import pyarrow as pa

from clearlane.core.model import ids as model_ids
from clearlane.node.projections.l1 import DoneGroups
from clearlane.node.projections.records import CACHE_ROWS, TradeRecords
from clearlane.node.runtime import RuntimeOptions


class _Store:
    """The one store call the record cache makes: a chunk's table, read back when evicted."""

    def __init__(self) -> None:
        self.tables: dict[tuple[int, int], pa.Table] = {}
        self.reads = 0

    def trade_chunk(self, seq: int, part: int) -> pa.Table | None:
        self.reads += 1
        return self.tables.get((seq, part))


def _table(seq: int, rows: int) -> pa.Table:
    ids = [f"T{seq}-{i}" for i in range(rows)]
    return pa.table({"flow_id": ids, "kind": pa.array([0] * rows, type=pa.int8())})


def test_the_record_cache_holds_at_most_cache_rows_and_reads_evicted_chunks_back() -> None:
    store = _Store()
    records = TradeRecords(store, cache_rows=250, bounded=True, hot_ids=1 << 10)  # type: ignore[arg-type]
    for seq in range(1, 11):
        table = _table(seq, 100)
        store.tables[(seq, 0)] = table
        records.register(seq, 0, table)
        assert records.cache_rows == sum(t.num_rows for t in records.cache.values())
        assert records.cache_rows <= 250
    assert store.reads == 0
    assert records.find_trade("T1-7") is not None  # evicted: read back from the store
    assert store.reads == 1 and records.cache_rows <= 250
    assert records.find_trade("T10-99") is not None and store.reads == 1  # cached


def test_the_service_defaults_bound_the_record_cache() -> None:
    # ~220 B a cached row in serve: the default is ~14 MiB, full within a minute at 1,000/s.
    assert RuntimeOptions().cache_rows == CACHE_ROWS <= 1 << 16


def test_done_l1_groups_answer_as_the_set_of_their_ids_did() -> None:
    done = DoneGroups()
    for number in (3, 1, 3, 5000):
        done.add(model_ids.l1_group_id(number))
    done.add("elsewhere-7")
    assert len(done) == 4
    assert all(model_ids.l1_group_id(n) in done for n in (1, 3, 5000))
    assert model_ids.l1_group_id(2) not in done and model_ids.l1_group_id(10**6) not in done
    assert "elsewhere-7" in done and "elsewhere-8" not in done and 3 not in done
    assert done.flags.nbytes < 16 * 1024  # a byte a group number, not an object per id
