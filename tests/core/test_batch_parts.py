"""A chunk's L2 rows grouped by (pool, batch seq) in chunk order (lanes._batch_parts, issue 18):
the one-pass-per-pool grouping gives what the two-key stable sort gave, and falls back to the
sort when a pool's seqs are not in arrival order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.engine.flows import Flows
from clearlane.core.engine.lanes import _batch_parts


def _flows(pool: list[int], seq: list[int]) -> Flows:
    n = len(pool)
    zeros = np.zeros(n, np.int64)
    return Flows(
        ids=pa.array([f"T{i}" for i in range(n)]),
        kind=np.zeros(n, np.int8),
        buyer=np.zeros(n, np.int32),
        seller=np.ones(n, np.int32),
        base=np.zeros(n, np.int32),
        quote=np.zeros(n, np.int32),
        qty=np.arange(1, n + 1, dtype=np.int64),
        quote_amt=zeros,
        fee_buyer=zeros,
        fee_seller=zeros,
        time_ms=zeros,
        executed_ms=zeros,
        pool=np.array(pool, np.int32),
        batch_seq=np.array(seq, np.int64),
        exch_batch=pa.nulls(n, pa.string()),
    )


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-1, 3), st.integers(0, 3)), max_size=40),
    st.booleans(),
)
def test_batch_parts_group_rows_as_the_stable_sort(rows: list[tuple[int, int]], monotone: bool) -> None:
    pool = [p for p, _ in rows]
    steps = [s for _, s in rows]
    if monotone:  # as the kernel assigns them: a pool's seq never goes back
        last: dict[int, int] = {}
        seq = []
        for p, step in zip(pool, steps, strict=True):
            last[p] = last.get(p, 0) + step
            seq.append(last[p])
    else:
        seq = steps
    flows = _flows(pool, seq)
    in_l2 = np.array(pool, dtype=np.int64) >= 0 if rows else np.zeros(0, np.bool_)
    parts = _batch_parts(flows, in_l2)
    l2 = [i for i, p in enumerate(pool) if p >= 0]
    expected: dict[tuple[int, int], list[str]] = {}
    for i in sorted(l2, key=lambda i: (pool[i], seq[i])):  # Python's sort is stable
        expected.setdefault((pool[i], seq[i]), []).append(f"T{i}")
    assert list(parts) == list(expected)
    assert {key: part.ids.to_pylist() for key, part in parts.items()} == expected
