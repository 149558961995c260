"""IdIndex.contains (probed in sorted order, the tail sorted per call) answers exactly set
membership of the hashes added — across segments, the tail, repeats and the empty index."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.node.projections.index import IdIndex

_KEYS = st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=300)


@settings(max_examples=40, deadline=None)
@given(added=st.lists(_KEYS, max_size=6), probes=_KEYS, small=st.integers(0, 300))
def test_contains_is_set_membership(added: list[list[int]], probes: list[int], small: int) -> None:
    index = IdIndex()
    seen: set[int] = set()
    for part in added:
        # Small values too, so probes hit: a probe list drawn from what was added.
        index.add(np.array(part, dtype=np.uint64), np.arange(len(part), dtype=np.int64))
        seen.update(part)
    probe = probes + sorted(seen)[:small]
    mask = index.contains(np.array(probe, dtype=np.uint64))
    assert mask.tolist() == [p in seen for p in probe]


def test_contains_across_merged_segments_and_the_tail() -> None:
    index = IdIndex()
    keys = np.arange(30_000, dtype=np.uint64) * np.uint64(11400714819323198485)
    for start in range(0, len(keys), 1_000):
        index.add(keys[start : start + 1_000], np.arange(1_000, dtype=np.int64))
    assert len(index._segments) >= 1 and index._tail_n > 0
    rng = np.random.default_rng(5)
    probe = np.concatenate(
        [keys[rng.integers(0, len(keys), 2_000)], rng.integers(0, 2**63, 2_000).astype(np.uint64)]
    )
    expected = np.isin(probe, keys)
    assert (index.contains(probe) == expected).all()
    assert index.contains(np.zeros(0, dtype=np.uint64)).tolist() == []
    assert IdIndex().contains(np.array([1, 2], dtype=np.uint64)).tolist() == [False, False]
