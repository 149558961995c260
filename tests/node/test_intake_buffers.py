"""The intake's buffer readers equal the Arrow compute calls they replace (issue 18):
``filled`` against ``pc.fill_null``, ``text_lengths`` against ``pc.binary_length`` — on
random boolean, integer and string arrays with nulls, read through slices (non-zero offsets)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from clearlane.node.intake.validate import filled, text_lengths, to_mask

_INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32()]


def _sliced(values: list[object], typ: pa.DataType, start: int, stop: int) -> pa.Array:
    array = pa.array(values, type=typ)
    stop = max(start, min(stop, len(array)))
    return array.slice(min(start, len(array)), stop - min(start, len(array)))


@given(
    values=st.lists(st.none() | st.booleans(), max_size=80),
    start=st.integers(0, 20),
    stop=st.integers(0, 90),
    fill=st.booleans(),
)
def test_filled_bool_equals_fill_null(values: list[bool | None], start: int, stop: int, fill: bool) -> None:
    array = _sliced(values, pa.bool_(), start, stop)
    expected = np.asarray(pc.fill_null(array, fill).to_numpy(zero_copy_only=False), dtype=np.bool_)
    got = filled(array, fill)
    assert got.dtype == np.bool_
    assert got.tolist() == expected.tolist()
    assert to_mask(array, fill).tolist() == expected.tolist()


@given(
    data=st.data(),
    typ=st.sampled_from(_INT_TYPES),
    start=st.integers(0, 20),
    stop=st.integers(0, 90),
)
def test_filled_int_equals_fill_null(data: st.DataObject, typ: pa.DataType, start: int, stop: int) -> None:
    info = np.iinfo(typ.to_pandas_dtype())
    lo, hi = max(int(info.min), -(2**40)), min(int(info.max), 2**40)
    values = data.draw(st.lists(st.none() | st.integers(lo, hi), max_size=80))
    fill = data.draw(st.integers(max(lo, -1), min(hi, 300)))
    array = _sliced(values, typ, start, stop)
    expected = pc.fill_null(array, fill).to_numpy(zero_copy_only=False)
    got = filled(array, fill)
    assert got.dtype == expected.dtype
    assert got.tolist() == expected.tolist()


@given(
    values=st.lists(st.none() | st.text(max_size=12), max_size=80),
    start=st.integers(0, 20),
    stop=st.integers(0, 90),
    binary=st.booleans(),
)
def test_text_lengths_equal_binary_length(
    values: list[str | None], start: int, stop: int, binary: bool
) -> None:
    typ = pa.binary() if binary else pa.string()
    raw = [v.encode("utf-8", "surrogatepass") if binary and v is not None else v for v in values]
    array = _sliced(raw, typ, start, stop)
    expected = np.asarray(
        pc.fill_null(pc.binary_length(array), 0).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    assert text_lengths(array).tolist() == expected.tolist()
    chunked = pa.chunked_array([array, array], type=typ)  # the compute path, unchanged
    assert text_lengths(chunked).tolist() == expected.tolist() * 2


def test_all_null_and_empty_arrays() -> None:
    assert filled(pa.nulls(3, pa.bool_()), True).tolist() == [True, True, True]
    assert filled(pa.nulls(2, pa.int32()), -1).tolist() == [-1, -1]
    assert text_lengths(pa.nulls(2, pa.string())).tolist() == [0, 0]
    assert text_lengths(pa.array([], pa.string())).tolist() == []
    assert filled(pa.array([], pa.bool_()), False).tolist() == []
