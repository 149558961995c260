"""Flow-id dedup: exact against a Python set, including forced hash collisions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.engine.dedup import IdIndex, SeenFlowIds

ids_strategy = st.lists(st.text(alphabet="ab1é\x00", max_size=4), max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(st.tuples(ids_strategy, st.integers(0, 2**32 - 1)), max_size=6),
    hash_bits=st.sampled_from([64, 3, 0]),
)
def test_dedup_is_exact_with_and_without_hash_collisions(
    chunks: list[tuple[list[str], int]], hash_bits: int
) -> None:
    index = IdIndex(hash_bits=hash_bits)
    seen: set[str] = set()
    for ids, seed in chunks:
        candidates = np.random.default_rng(seed).random(len(ids)) < 0.8
        dup = index.add(pa.array(ids, type=pa.string()), candidates)
        for i, flow_id in enumerate(ids):
            if not candidates[i]:
                assert not dup[i]
                continue
            assert bool(dup[i]) == (flow_id in seen), (flow_id, hash_bits)
            seen.add(flow_id)
    assert len(index) == len(seen)
    assert sorted(index.ids()) == sorted(seen)
    for flow_id in [*seen, "never-seen", ""]:
        assert (flow_id in index) == (flow_id in seen)


def test_growth_and_sliced_arrays() -> None:
    index = IdIndex()
    ids = pa.array([f"T{i:09d}" for i in range(50_000)])
    assert not index.add(ids.slice(10), np.ones(len(ids) - 10, np.bool_)).any()
    again = index.add(ids, np.ones(len(ids), np.bool_))
    assert again[10:].all() and not again[:10].any()
    assert len(index) == 50_000


def test_seen_flow_ids_namespaces() -> None:
    seen = SeenFlowIds()
    seen.add("p:", pa.array(["X"]), np.ones(1, np.bool_), 1)
    assert "p:X" in seen and "t:X" not in seen and len(seen) == 1


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(
        st.lists(st.tuples(st.sampled_from(["a", "b", "c", "é", ""]), st.integers(0, 3)), max_size=30),
        max_size=5,
    ),
    hash_bits=st.sampled_from([64, 2, 0]),
)
def test_conflicts_are_exact_with_and_without_hash_collisions(
    chunks: list[list[tuple[str, int]]], hash_bits: int
) -> None:
    """A duplicate is a conflict exactly when its content digest differs from the digest the id
    was first accepted with (earlier chunks or earlier in the same chunk)."""
    index = IdIndex(hash_bits=hash_bits)
    first: dict[str, int] = {}
    for rows in chunks:
        ids = pa.array([r[0] for r in rows], type=pa.string())
        digests = np.array([r[1] for r in rows], dtype=np.uint64)
        dup, conflict = index.classify(ids, np.ones(len(rows), np.bool_), digests)
        for i, (flow_id, digest) in enumerate(rows):
            assert bool(dup[i]) == (flow_id in first)
            assert bool(conflict[i]) == (flow_id in first and first[flow_id] != digest)
            first.setdefault(flow_id, digest)
        found, clash = index.lookup(ids, np.ones(len(rows), np.bool_), digests)
        assert found.all()
        assert [bool(c) for c in clash] == [first[r[0]] != r[1] for r in rows]


def test_content_digests_compare_values_not_spellings() -> None:
    from clearlane.core.engine.dedup import decimal_value, trade_digests
    from tests.conftest import chunk, trade

    same = [trade(0), trade(0, qty=(50, 3), price=(65000120, 3)), trade(0, qty=(500000, 7))]
    changed = [
        trade(0, qty=(6, 2)),
        trade(0, price=(6500013, 2)),
        trade(0, at=1),
        trade(0, hint="L1"),
        trade(0, buyer="MM-BETA"),
        trade(0, symbol="ETH/USD"),
        {**trade(0), "exch_batch_id": None},
        {**trade(0), "venue": "XB"},
    ]
    digests = trade_digests(chunk(same + changed)).tolist()
    assert digests[0] == digests[1] == digests[2]
    assert len(set(digests[2:])) == 1 + len(changed)
    received = trade_digests(chunk([{**trade(0), "received_at_ms": 5}]))[0]
    assert received == digests[0]  # the received time is not content
    assert [decimal_value(t) for t in ("80", "80.0", "80.00", "0.50", "0.0", "10.010")] == [
        "80",
        "80",
        "80",
        "0.5",
        "0",
        "10.01",
    ]
