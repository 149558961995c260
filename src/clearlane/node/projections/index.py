"""A compact, columnar id index: trade id -> (chunk, row), 16 bytes per id.

Ids are hashed to 64 bits (FNV-1a, compiled, straight over the Arrow string buffers — no
Python object per id) and kept in sorted segments, log-structured: new ids go to a small
unsorted tail; full tails are sorted into segments and equal-sized segments are merged, so a
lookup is one ``searchsorted`` per segment (O(log n) segments) plus a scan of the tail.

A hash is not an identity: callers confirm a hit against the stored record (two ids with the
same 64-bit hash are both returned as candidates).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from numba import njit

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
TAIL_MAX = 4_096


@njit(cache=True)
def _fnv1a(offsets, data, out):  # type: ignore[no-untyped-def]
    for i in range(len(out)):
        h = np.uint64(0xCBF29CE484222325)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(0x100000001B3)
        out[i] = h


def hash_ids(ids: pa.Array | pa.ChunkedArray) -> U64:
    """64-bit FNV-1a of each string (nulls hash like the empty string)."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if pa.types.is_large_string(ids.type):
        ids = ids.cast(pa.string())
    n = len(ids)
    out = np.zeros(n, dtype=np.uint64)
    if n == 0:
        return out
    buffers = ids.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32, count=ids.offset + n + 1)[ids.offset :]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(1, dtype=np.uint8)
    )
    _fnv1a(offsets, data, out)
    return out


def hash_id(value: str) -> int:
    h = int(_FNV_OFFSET)
    for byte in value.encode():
        h = ((h ^ byte) * int(_FNV_PRIME)) & 0xFFFFFFFFFFFFFFFF
    return h


class IdIndex:
    """Hash -> location (an int64 the caller packs, e.g. chunk << 32 | row)."""

    def __init__(self) -> None:
        self._segments: list[tuple[U64, I64]] = []
        self._tail_keys = np.zeros(TAIL_MAX, dtype=np.uint64)
        self._tail_locs = np.zeros(TAIL_MAX, dtype=np.int64)
        self._tail_n = 0
        self.size = 0

    def add(self, keys: U64, locs: I64) -> None:
        start = 0
        while start < len(keys):
            room = TAIL_MAX - self._tail_n
            take = min(room, len(keys) - start)
            self._tail_keys[self._tail_n : self._tail_n + take] = keys[start : start + take]
            self._tail_locs[self._tail_n : self._tail_n + take] = locs[start : start + take]
            self._tail_n += take
            start += take
            if self._tail_n == TAIL_MAX:
                self._flush_tail()
        self.size += len(keys)

    def _flush_tail(self) -> None:
        keys = self._tail_keys[: self._tail_n].copy()
        locs = self._tail_locs[: self._tail_n].copy()
        order = np.argsort(keys, kind="stable")
        self._segments.append((keys[order], locs[order]))
        self._tail_n = 0
        # Merge while the newest segment is at least as big as the one before it.
        while len(self._segments) > 1 and len(self._segments[-1][0]) >= len(self._segments[-2][0]):
            k2, l2 = self._segments.pop()
            k1, l1 = self._segments.pop()
            keys = np.concatenate([k1, k2])
            locs = np.concatenate([l1, l2])
            order = np.argsort(keys, kind="stable")
            self._segments.append((keys[order], locs[order]))

    def find(self, key: int) -> list[int]:
        """Every location stored under ``key``, oldest first."""
        k = np.uint64(key)
        found: list[int] = []
        for keys, locs in self._segments:
            lo = int(np.searchsorted(keys, k, side="left"))
            hi = int(np.searchsorted(keys, k, side="right"))
            found.extend(int(x) for x in locs[lo:hi])
        if self._tail_n:
            hits = np.flatnonzero(self._tail_keys[: self._tail_n] == k)
            found.extend(int(self._tail_locs[i]) for i in hits)
        return sorted(found)

    def contains(self, keys: U64) -> npt.NDArray[np.bool_]:
        """Vectorised membership of many hashes (a hit still needs confirming)."""
        keys = np.asarray(keys, dtype=np.uint64)
        # Probed in sorted order (searchsorted walks a big segment about twice as fast with
        # sorted needles), the tail sorted once per call rather than np.isin (which sorts both):
        # ~0.7 -> 0.3 ms for a 1,300-id step against 0.5M ids (tests/node: same answers).
        order = np.argsort(keys, kind="stable")
        probe = keys[order]
        found = np.zeros(len(keys), dtype=np.bool_)
        tail = np.sort(self._tail_keys[: self._tail_n])
        for seg_keys in [k for k, _ in self._segments] + ([tail] if len(tail) else []):
            pos = np.minimum(np.searchsorted(seg_keys, probe, side="left"), len(seg_keys) - 1)
            found |= seg_keys[pos] == probe
        hit = np.empty(len(keys), dtype=np.bool_)
        hit[order] = found
        return hit

    def nbytes(self) -> int:
        return int(
            sum(k.nbytes + v.nbytes for k, v in self._segments)
            + self._tail_keys.nbytes
            + self._tail_locs.nbytes
        )
