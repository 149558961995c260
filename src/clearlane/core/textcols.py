"""textcols owns text as bytes for the compiled passes: Arrow string columns (and small lists of
strings) as a data buffer with absolute int64 offsets, and the byte and decimal writers that
the compiled text builders share — the Merkle leaves (engine/commitment.py) and the net
instruction lines the audit chain digests (proofs/hashchain.py). The engine's id index and
content digests and the intake read string columns through it too.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


def string_table(values: list[str]) -> tuple[U8, I64]:
    """UTF-8 bytes and int64 offsets of a small list of strings (ids, codes)."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded) or b"\x00", dtype=np.uint8).copy()
    return data, offsets


def arrow_strings(array: pa.Array) -> tuple[U8, I64]:
    """Data buffer and absolute int64 offsets of an Arrow string array; nulls read as ''."""
    if array.null_count:
        array = pc.fill_null(array, pa.scalar("", pa.string()))
    if not pa.types.is_string(array.type):
        array = array.cast(pa.string())
    n = len(array)
    buffers = array.buffers()
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if n and buffers[2] is not None and buffers[2].size
        else np.zeros(1, np.uint8)
    )
    return data, string_offsets(array)


def string_offsets(array: pa.Array) -> I64:
    """Absolute int64 offsets (``len + 1`` of them) of a string or binary array, read from its
    buffer at the array's own offset; a null slot's offsets are whatever the array stores."""
    n = len(array)
    if not n:
        return np.zeros(1, np.int64)
    ends = np.frombuffer(array.buffers()[1], dtype=np.int32, count=array.offset + n + 1)[array.offset :]
    return ends.astype(np.int64)


@njit(cache=True, nogil=True, inline="always")
def put_bytes(buf, at, src, lo, hi):  # type: ignore[no-untyped-def]
    """Copy ``src[lo:hi]`` to ``buf[at:]``; returns the position after it."""
    for j in range(lo, hi):
        buf[at] = src[j]
        at += 1
    return at


@njit(cache=True, nogil=True, inline="always")
def put_int(buf, at, value):  # type: ignore[no-untyped-def]
    """``value`` (int64) in decimal at ``buf[at]``, ``-`` first when negative, as ``str(value)``
    writes it (int64's minimum included); returns the position after it. The one decimal
    writer of the compiled text builders (the Merkle leaves in engine/commitment.py, the net
    lines in proofs/hashchain.py)."""
    if value < 0:
        buf[at] = 45
        at += 1
        magnitude = np.uint64(-(value + 1)) + np.uint64(1)
    else:
        magnitude = np.uint64(value)
    ten = np.uint64(10)
    digits = 1
    rest = magnitude // ten
    while rest > 0:
        digits += 1
        rest //= ten
    pos = at + digits - 1
    while True:
        buf[pos] = np.uint8(48 + magnitude % ten)
        magnitude //= ten
        if magnitude == 0:
            break
        pos -= 1
    return at + digits
