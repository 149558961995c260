"""``content_digests`` (one concatenation of a step's legs, hashed in slices) gives each entry's
``content_digest``, byte for byte."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.ledger.entries import JournalEntry, content_digests

int64 = st.integers(-(2**63), 2**63 - 1)
texts = st.text(max_size=6)  # lone surrogates included: both encode them with surrogatepass
entries = st.builds(
    lambda entry_id, kind, ref, at_ms, legs, pending, timeout: JournalEntry(
        entry_id=entry_id,
        kind=kind,
        at_ms=at_ms,
        accounts=np.array([a for a, _ in legs], dtype=np.int64),
        amounts_minor=np.array([m for _, m in legs], dtype=np.int64),
        pending=pending,
        timeout_at_ms=(at_ms + timeout) if pending and timeout is not None else None,
        ref=ref,
    ),
    texts,
    texts,
    texts,
    st.integers(0, 2**40),
    st.lists(st.tuples(st.integers(0, 2**31), int64), max_size=400),
    st.booleans(),
    st.none() | st.integers(1, 2**20),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(entries, max_size=8))
def test_content_digests_are_each_entrys_content_digest(batch: list[JournalEntry]) -> None:
    assert content_digests(batch) == [e.content_digest() for e in batch]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.lists(st.integers(0, 4), max_size=6), st.data())
def test_int64_columns_of_one_or_three_columns(width: int, sizes: list[int], data: st.DataObject) -> None:
    """``write_int64_columns`` beyond the ledger's two columns: each range's own table's bytes."""
    import pyarrow as pa

    from clearlane.core.proofs import codec

    total = sum(sizes)
    names = tuple(f"c{i}" for i in range(width))
    columns = [
        np.array(data.draw(st.lists(int64, min_size=total, max_size=total)), dtype=np.int64) for _ in names
    ]
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64).tolist()
    blobs = codec.write_int64_columns(names, columns, bounds)
    expected = [
        codec.write_table(
            pa.table({n: c[lo:hi].copy() for n, c in zip(names, columns, strict=True)}), compress=False
        )
        for lo, hi in itertools.pairwise(bounds)
    ]
    assert blobs == expected
