"""monitor sources: clearlane's own counts per exchange batch, a step's counts added at once."""

from __future__ import annotations

from collections import Counter, OrderedDict
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.node.monitor import sources as src
from clearlane.node.monitor.sources import CLEARLANE, Sources


def _reference(steps: list[list[str | None]], kept: int) -> OrderedDict[str, int]:
    """Each step's ids counted, added in first-seen order (value_counts' order), moved to the
    end, then the oldest ids dropped down to ``kept``."""
    book: OrderedDict[str, int] = OrderedDict()
    for ids in steps:
        for key, n in Counter(i for i in ids if i is not None).items():
            book[key] = book.get(key, 0) + n
            book.move_to_end(key)
        while len(book) > kept:
            book.popitem(last=False)
    return book


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.none(), st.sampled_from([f"EB-{i}" for i in range(12)])), max_size=30),
        max_size=8,
    )
)
def test_step_counts_are_added_then_trimmed(steps: list[list[str | None]]) -> None:
    kept = src.EXCH_BATCHES_KEPT
    src.EXCH_BATCHES_KEPT = 5  # small, so that trimming happens
    try:
        sources = Sources(assets=["USD"])
        for at, ids in enumerate(steps):
            table = pa.table({"exch_batch_id": pa.array(ids, pa.string())})
            fx: Any = SimpleNamespace(tables=lambda t=table: [t])
            sources.on_step(SimpleNamespace(at_ms=at), fx)  # type: ignore[arg-type]
        assert sources.counts.get(CLEARLANE, OrderedDict()) == _reference(steps, 5)
        assert list(sources.counts.get(CLEARLANE, {})) == list(_reference(steps, 5))
    finally:
        src.EXCH_BATCHES_KEPT = kept
