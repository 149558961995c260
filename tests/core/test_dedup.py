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
