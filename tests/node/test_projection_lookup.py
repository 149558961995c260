"""The read model's value → index lookup answers the same on its small (dict) and large
(Arrow dictionary) paths (serve7: node/projections/common.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.node.projections import common
from clearlane.node.projections.common import dict_codes, lookup

_INDEX = {"MM-ALPHA": 0, "MM-BETA": 1, "BTC": 2, "": 3}
_VALUES = st.lists(st.one_of(st.none(), st.sampled_from([*_INDEX, "UNKNOWN", "mm-alpha"])), max_size=40)


@settings(max_examples=40, deadline=None)
@given(_VALUES, st.sampled_from(["string", "dictionary", "chunked", "list"]), st.integers(-1, 7))
def test_property_the_small_lookup_answers_as_the_arrow_one(
    values: list[str | None], shape: str, missing: int
) -> None:
    arr = pa.array(values, type=pa.string())
    given_values: object = {
        "string": arr,
        "dictionary": arr.dictionary_encode(),
        "chunked": pa.chunked_array([arr.slice(0, len(values) // 2), arr.slice(len(values) // 2)]),
        "list": values,
    }[shape]
    codes = dict_codes(arr, _INDEX)
    expected = np.where(codes < 0, missing, codes).astype(np.int32)
    got = lookup(given_values, _INDEX, missing)
    assert got.dtype == np.int32 and np.array_equal(got, expected)


def test_a_large_column_takes_the_arrow_path() -> None:
    values = ["MM-BETA", None, "nope"] * (common._LOOKUP_BY_DICT_MAX // 3 + 1)
    got = lookup(pa.array(values), _INDEX, -1)
    assert got.tolist() == [1, -1, -1] * (len(values) // 3)
