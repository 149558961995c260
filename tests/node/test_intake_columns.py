"""intake.rows: the column fast path takes exactly ``r.get(name)`` per row, whatever keys the
rows have or lack."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.node.intake.rows import _COLUMNS, _column_values

_ROW = st.dictionaries(
    st.sampled_from([*_COLUMNS, "extra"]),
    st.one_of(st.none(), st.text(max_size=3), st.integers()),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_ROW, min_size=1, max_size=6))
def test_column_values_are_get_per_row(rows: list[dict[str, Any]]) -> None:
    got = _column_values(rows)
    assert {name: list(got[name]) for name in _COLUMNS} == {
        name: [r.get(name) for r in rows] for name in _COLUMNS
    }
