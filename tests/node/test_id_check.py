"""Intake's id and symbol checks without per-call regex compiles decide exactly as the
grammar's RE2 patterns (issue 18, serve7: node/intake/validate.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.model.inputs import ID_PATTERN, SYMBOL_PATTERN
from clearlane.node.intake.validate import to_mask, valid_ids, valid_symbols

# Id characters, the printable ASCII outside the grammar, controls (newline at the end: RE2's
# ``$`` is the end of the text), DEL, and multi-byte characters.
_CHARS = st.sampled_from(
    list("aZ09._~!$&'()*+,;=:@-") + list(' "#%/<>?[\\]^`{|}') + ["\n", "\t", "\x00", "\x7f", "é", "€", "𝄞"]
)
_TEXTS = st.one_of(
    st.none(), st.text(_CHARS, max_size=70), st.text(st.sampled_from("aB9-"), min_size=60, max_size=70)
)
_SYMBOL_CHARS = st.sampled_from([*"ABCZ09/", "a", "\n", " ", "É"])
_SYMBOLS = st.one_of(
    st.none(), st.text(_SYMBOL_CHARS, max_size=27), st.sampled_from(["BTC/USD", "ETH/BTC", "BTC/USD\n"])
)


def _regex(column: pa.Array, pattern: str) -> np.ndarray:
    return to_mask(pc.match_substring_regex(column, pattern))


@settings(max_examples=60, deadline=None)
@given(st.lists(_TEXTS, max_size=40), st.integers(0, 5), st.booleans())
def test_property_the_byte_class_id_check_decides_as_the_regex(
    texts: list[str | None], cut: int, large: bool
) -> None:
    column = pa.array(texts, type=pa.large_string() if large else pa.string())
    column = column.slice(min(cut, len(texts)))  # a non-zero array offset, as a sliced chunk has
    assert np.array_equal(valid_ids(column), _regex(column, ID_PATTERN))


@settings(max_examples=40, deadline=None)
@given(st.lists(_SYMBOLS, max_size=30))
def test_property_the_symbol_check_decides_as_the_regex(symbols: list[str | None]) -> None:
    column = pa.array(symbols, type=pa.string())
    assert np.array_equal(valid_symbols(column), _regex(column, SYMBOL_PATTERN))


def test_the_id_check_on_empty_all_null_and_unique_garbage_columns() -> None:
    assert valid_ids(pa.array([], type=pa.string())).shape == (0,)
    nulls = pa.nulls(3, type=pa.string())
    assert not valid_ids(nulls).any()
    many = pa.array([f"ok-{i}" if i % 3 else f"bad {i}" for i in range(5000)])
    assert np.array_equal(valid_ids(many), _regex(many, ID_PATTERN))
    assert np.array_equal(valid_symbols(many), _regex(many, SYMBOL_PATTERN))  # > 4,096: the Arrow pass
