"""money: the column parser agrees with the scalar parser; vector rounding is exact."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.money import (
    DecimalError,
    mul_div_half_even,
    parse_decimal,
    parse_decimal_column,
    round_half_even_div,
)

_REASON_CODES = {"syntax": 1, "precision": 2, "overflow": 3, "zero": 4}


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="0123456789.-e ,+", max_size=24),
            st.from_regex(r"[1-9][0-9]{0,20}(\.[0-9]{0,12})?", fullmatch=True),
        ),
        max_size=30,
    ),
    st.integers(0, 12),
)
def test_column_parser_agrees_with_scalar_parser(texts: list[str], scale: int) -> None:
    import pyarrow as pa

    parsed = parse_decimal_column(pa.array(texts, type=pa.string()), scale)
    for i, text in enumerate(texts):
        try:
            value = parse_decimal(text, scale)
        except DecimalError as exc:
            assert parsed.error[i] == _REASON_CODES[exc.reason], text
            continue
        assert parsed.error[i] == 0 and parsed.minor[i] == value, text


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**62), st.integers(0, 2**62), st.integers(1, 10**18))
def test_vector_half_even_matches_exact(a: int, b: int, den: int) -> None:
    got, overflow = mul_div_half_even(
        np.array([a], dtype=np.int64), np.array([b], dtype=np.int64), np.array([den], dtype=np.int64)
    )
    exact = round_half_even_div(a * b, den)
    assert bool(overflow[0]) == (exact > 2**63 - 1)
    if not overflow[0]:
        assert int(got[0]) == exact


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**40),
            st.one_of(st.integers(0, 2**40), st.integers(2**40, 2**63 - 1)),
            st.sampled_from([1, 2, 10, 100, 10**6, 10**8, 7, 3]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_mul_div_half_even_columns_match_exact_arithmetic(rows: list[tuple[int, int, int]]) -> None:
    """The compiled column pass (one row at a time, risky rows to Python ints) against exact
    integer arithmetic, ties included (small denominators make many exact halves)."""
    a, b, den = (np.array(col, dtype=np.int64) for col in zip(*rows, strict=True))
    got, overflow = mul_div_half_even(a, b, den)
    for i, (x, y, d) in enumerate(rows):
        exact = round_half_even_div(x * y, d)
        assert bool(overflow[i]) == (exact > 2**63 - 1)
        assert int(got[i]) == (0 if overflow[i] else exact)
