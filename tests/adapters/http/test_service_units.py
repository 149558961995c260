"""Units of the service: the id index (hashing straight from Arrow buffers, collisions, merges),
latency histograms and percentiles, cursors, event filtering and stream back-pressure."""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.adapters.http.problems import Problem
from clearlane.adapters.http.views import decode_cursor, encode_cursor
from clearlane.node.events import EventBus, EventFilter, TradeEvents
from clearlane.node.projections.common import LATENCY_EDGES_MS, NBINS, hist, percentile
from clearlane.node.projections.index import IdIndex, hash_id, hash_ids


@given(st.lists(st.text(min_size=0, max_size=40), max_size=50))
def test_columnar_hash_equals_scalar_hash(ids: list[str]) -> None:
    arr = pa.array(ids, type=pa.string())
    assert hash_ids(arr).tolist() == [hash_id(x) for x in ids]
    if len(ids) > 2:  # sliced arrays (non-zero offset) hash the same
        assert hash_ids(arr.slice(1)).tolist() == [hash_id(x) for x in ids[1:]]
    assert hash_ids(pa.array(ids).dictionary_encode()).tolist() == [hash_id(x) for x in ids]


def test_index_finds_across_tail_and_merged_segments() -> None:
    index = IdIndex()
    keys = np.arange(20_000, dtype=np.uint64) * np.uint64(2654435761)
    for start in range(0, len(keys), 700):
        part = keys[start : start + 700]
        index.add(part, np.arange(start, start + len(part), dtype=np.int64))
    assert index.size == 20_000
    for probe in (0, 1, 4095, 4096, 12_345, 19_999):
        assert index.find(int(keys[probe])) == [probe]
    assert index.find(7) == []
    mask = index.contains(np.array([keys[3], 7, keys[19_999]], dtype=np.uint64))
    assert mask.tolist() == [True, False, True]
    index.add(np.array([keys[5]], dtype=np.uint64), np.array([99_999], dtype=np.int64))
    assert index.find(int(keys[5])) == [5, 99_999]  # a collision: both candidates, oldest first


def test_histogram_percentiles_are_within_a_bucket() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(5, 1, 50_000)
    counts = hist(values)
    assert len(counts) == NBINS and counts.sum() == len(values)
    for q in (0.5, 0.99):
        exact = float(np.quantile(values, q))
        approx = percentile(counts, q)
        assert approx is not None
        b = int(np.searchsorted(LATENCY_EDGES_MS, exact))
        lo = 0.0 if b == 0 else LATENCY_EDGES_MS[b - 1]
        assert lo - 1e-9 <= approx <= LATENCY_EDGES_MS[b] + 1e-9
    assert percentile(np.zeros(NBINS, dtype=np.int64), 0.5) is None


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(c=3, r=7), "c", "r") == {"c": 3, "r": 7}
    for bad in ("x", encode_cursor(c=1), encode_cursor(c=-1, r=0), "eyJjIjoiYSIsInIiOjB9"):
        with pytest.raises(Problem):
            decode_cursor(bad, "c", "r")


def _trades() -> pa.Table:
    return pa.table(
        {
            "trade_id": ["A", "B", "C"],
            "kind": pa.array([0, 0, 1], pa.int8()),
            "buyer": ["P1", "P2", "P3"],
            "seller": ["P2", "P3", "P1"],
            "lane": ["L2", "L1", "L2"],
            "pool": ["fast", None, "retail"],
            "batch_id": ["fast-1", None, "retail-1"],
        }
    )


def test_trade_events_filter_on_columns() -> None:
    group = TradeEvents("trade.cleared", 9, 1000, _trades())
    assert [e["data"]["trade_id"] for e in group.events(EventFilter(participant="P1"))] == ["A", "C"]
    assert [e["data"]["trade_id"] for e in group.events(EventFilter(pool="L1"))] == ["B"]
    assert [e["data"]["trade_id"] for e in group.events(EventFilter(participant="P3", pool="retail"))] == [
        "C"
    ]
    ids = [e["id"] for e in group.events(EventFilter())]
    assert ids == ["9:trade.cleared:A", "9:trade.cleared:B", "9:trade.cleared:C"]
    assert group.events(EventFilter())[2]["data"]["kind"] == "payment"
    lazy = TradeEvents("trade.final", 9, 1000, _trades, rows=3)
    assert lazy.count() == 3 and len(lazy.events(EventFilter())) == 3


def test_slow_subscriber_overflows_without_blocking() -> None:
    async def run() -> list[dict[str, object]]:
        bus = EventBus()
        sub = bus.subscribe(
            EventFilter(types=frozenset({"trade.cleared"})), asyncio.get_running_loop(), maxsize=2
        )
        for seq in range(3):
            bus.publish([TradeEvents("trade.cleared", seq, 1000, _trades())])
        await asyncio.sleep(0.05)
        out = []
        while not sub.queue.empty():
            out.append(sub.queue.get_nowait())
        assert sub.dropped >= 7
        bus.publish([TradeEvents("trade.cleared", 5, 1000, _trades())])
        await asyncio.sleep(0.05)
        while not sub.queue.empty():
            out.append(sub.queue.get_nowait())
        return out

    events = asyncio.run(run())
    assert any(e["type"] == "overflow" for e in events)


@settings(max_examples=30)
@given(st.lists(st.integers(min_value=0, max_value=10_000_000), min_size=1, max_size=200))
def test_histogram_counts_every_value(values: list[int]) -> None:
    counts = hist(np.array(values))
    assert int(counts.sum()) == len(values)
