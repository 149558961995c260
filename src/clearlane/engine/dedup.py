"""Exact flow-id deduplication without a Python object per id.

Every trade and payment id is an idempotency key: a flow whose id was accepted before (or
earlier in the same chunk) is a duplicate and a no-op. A Python ``set`` of 10M id strings cost
~1 GB and a Python loop over every row. :class:`IdIndex` keeps, per namespace, every accepted id
once in an append-only byte store (UTF-8 bytes + offsets) and an open-addressing hash table of
64-bit id hashes over it, probed in one compiled loop per chunk.

Hashes only find candidates: a slot whose hash equals the id's hash is compared byte for byte
with the stored id, and only an exact match is a duplicate. Two distinct ids with the same hash
both go into the table (the probe continues past a colliding slot), so a hash collision can
neither drop a distinct flow nor admit a duplicate — it only costs one extra comparison.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from numba import njit

from clearlane.engine.commitment import arrow_strings

_EMPTY = -1
_MIN_TABLE = 1 << 12


@njit(cache=True, nogil=True)
def _hash(data, lo, hi):  # type: ignore[no-untyped-def]
    # FNV-1a over the bytes, then the splitmix64 finaliser so the low bits (the slot) mix well.
    h = np.uint64(14695981039346656037)
    prime = np.uint64(1099511628211)
    for j in range(lo, hi):
        h = (h ^ np.uint64(data[j])) * prime
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@njit(cache=True, nogil=True)
def _probe_insert(  # type: ignore[no-untyped-def]
    data, off, candidates, table, tab_hash, hashes, store, store_off, count, dup, hash_mask
):
    """Mark duplicates among candidate rows and insert the new ids; returns the new count."""
    mask = np.uint64(table.shape[0] - 1)
    for i in range(candidates.shape[0]):
        if not candidates[i]:
            continue
        lo = off[i]
        hi = off[i + 1]
        length = hi - lo
        h = _hash(data, lo, hi) & hash_mask
        slot = h & mask
        found = False
        while True:
            ref = table[slot]
            if ref < 0:
                break
            if tab_hash[slot] == h:
                s_lo = store_off[ref]
                if store_off[ref + 1] - s_lo == length:
                    same = True
                    for j in range(length):
                        if store[s_lo + j] != data[lo + j]:
                            same = False
                            break
                    if same:
                        found = True
                        break
            slot = (slot + np.uint64(1)) & mask
        if found:
            dup[i] = True
            continue
        table[slot] = count
        tab_hash[slot] = h
        hashes[count] = h
        at = store_off[count]
        for j in range(length):
            store[at + j] = data[lo + j]
        store_off[count + 1] = at + length
        count += 1
    return count


@njit(cache=True, nogil=True)
def _rehash(table, tab_hash, hashes, count):  # type: ignore[no-untyped-def]
    mask = np.uint64(table.shape[0] - 1)
    for ref in range(count):
        slot = hashes[ref] & mask
        while table[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = ref
        tab_hash[slot] = hashes[ref]


_A = TypeVar("_A", bound=np.generic)


def _grow(array: npt.NDArray[_A], need: int) -> npt.NDArray[_A]:
    if array.shape[0] >= need:
        return array
    out: npt.NDArray[_A] = np.zeros(max(need, 2 * array.shape[0]), dtype=array.dtype)
    out[: array.shape[0]] = array
    return out


class IdIndex:
    """The accepted ids of one namespace (trades or payments)."""

    def __init__(self, hash_bits: int = 64) -> None:
        # Fewer hash bits only for tests: they force full-hash collisions between distinct ids.
        self._hash_mask = np.uint64((1 << hash_bits) - 1)
        self.count = 0
        self._table = np.full(_MIN_TABLE, _EMPTY, dtype=np.int64)
        self._tab_hash = np.zeros(_MIN_TABLE, dtype=np.uint64)
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self._store = np.zeros(1 << 14, dtype=np.uint8)
        self._store_off = np.zeros(1025, dtype=np.int64)

    def __len__(self) -> int:
        return self.count

    def add(self, ids: pa.Array, candidates: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Rows (among ``candidates``) whose id was seen before or earlier in ``ids``; the other
        candidates' ids are remembered."""
        n = len(ids)
        dup = np.zeros(n, dtype=np.bool_)
        if n == 0 or not candidates.any():
            return dup
        data, off = arrow_strings(ids)
        need = self.count + int(np.count_nonzero(candidates))
        if 2 * need > self._table.shape[0]:
            size = self._table.shape[0]
            while 2 * need > size:
                size *= 2
            self._table = np.full(size, _EMPTY, dtype=np.int64)
            self._tab_hash = np.zeros(size, dtype=np.uint64)
            _rehash(self._table, self._tab_hash, self._hashes, self.count)
        self._hashes = _grow(self._hashes, need)
        self._store_off = _grow(self._store_off, need + 1)
        lengths = off[1:] - off[:-1]
        used = int(self._store_off[self.count])
        self._store = _grow(self._store, used + int(lengths[candidates].sum()))
        self.count = int(_probe_insert(data, off, candidates, self._table, self._tab_hash, self._hashes, self._store,
                                       self._store_off, self.count, dup, self._hash_mask))
        return dup

    def __contains__(self, flow_id: str) -> bool:
        ids = pa.array([flow_id], type=pa.string())
        data, off = arrow_strings(ids)
        h = _hash(data, int(off[0]), int(off[1])) & self._hash_mask
        mask = self._table.shape[0] - 1
        slot = int(h) & mask
        raw = flow_id.encode("utf-8")
        while True:
            ref = int(self._table[slot])
            if ref < 0:
                return False
            if int(self._hashes[ref]) == int(h):
                lo, hi = int(self._store_off[ref]), int(self._store_off[ref + 1])
                if self._store[lo:hi].tobytes() == raw:
                    return True
            slot = (slot + 1) & mask

    def ids(self) -> list[str]:
        """Every accepted id, in acceptance order (for tests and tools)."""
        store, off = self._store.tobytes(), self._store_off
        return [store[int(off[i]) : int(off[i + 1])].decode("utf-8") for i in range(self.count)]


class SeenFlowIds:
    """Accepted flow ids per namespace (``"t:"`` trades, ``"p:"`` payments).

    ``"p:PAY-1" in seen`` reads like the set of prefixed keys it replaces; ``len`` counts all.
    """

    def __init__(self) -> None:
        self.by_namespace: dict[str, IdIndex] = {"t:": IdIndex(), "p:": IdIndex()}

    def index(self, namespace: str) -> IdIndex:
        return self.by_namespace[namespace]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        namespace, flow_id = key[:2], key[2:]
        index = self.by_namespace.get(namespace)
        return index is not None and flow_id in index

    def __len__(self) -> int:
        return sum(len(index) for index in self.by_namespace.values())
