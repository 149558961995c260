"""The accepted ids of one namespace without a Python object per id (see engine/dedup.py):
an append-only byte store of the ids, an open-addressing table of their 64-bit hashes, and the
content digest kept beside each one; probed in one compiled loop per chunk.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from clearlane.core.engine.content import byte_hash
from clearlane.core.textcols import arrow_strings

_MIN_TABLE = 1 << 12
_MAX_LOAD = 0.7  # table slots in use at most (linear probing stays short below ~0.75)
_AHEAD = 16  # rows whose first table slot is prefetched ahead of the probe (see _prefetch)


@intrinsic
def _prefetch(typingctx, array, index):  # type: ignore[no-untyped-def]
    """A hint to the CPU to bring ``array[index]`` into the cache for a write (LLVM's
    ``llvm.prefetch``; no effect on results, an out-of-range index is never dereferenced).

    The probe loop's table reads are random over a table of up to 134 MB at 10M ids; asking
    for row ``i + 16``'s slot while row ``i`` is probed overlaps those misses: classifying a
    10M-id day took 1.51 s against 1.83 s, means of 6 alternated pairs in fresh processes
    (docs/PERFORMANCE.md, issue 18)."""
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(  # type: ignore[no-untyped-call]
            context, builder, array_type, view, [args[1]], wraparound=False
        )
        i32 = ir.IntType(32)
        if getattr(pointer.type, "is_opaque", False):  # LLVM with opaque pointers
            name = "llvm.prefetch.p0"
        else:
            pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
            name = "llvm.prefetch.p0i8"
        fnty = ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)  # type: ignore[no-untyped-call]
        # rw = 1 (for a write: a new id is stored in the slot), locality = 3, data cache.
        builder.call(fn, [pointer, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _same(a, a_lo, a_hi, b, b_lo, b_hi):  # type: ignore[no-untyped-def]
    if a_hi - a_lo != b_hi - b_lo:
        return False
    for j in range(a_hi - a_lo):  # noqa: SIM110 - compiled loop, no generator in numba
        if a[a_lo + j] != b[b_lo + j]:
            return False
    return True


@njit(cache=True, nogil=True)
def _probe_insert(  # type: ignore[no-untyped-def]
    data,
    off,
    candidates,
    table,
    hashes,
    store,
    store_off,
    count,
    dup,
    hash_mask,
    digests,
    row_digest,
    conflict,
):
    """Mark duplicates among candidate rows and insert the new ids; returns the new count.

    A table slot packs the upper 32 bits of an id's hash with its id number + 1 (0 = empty),
    so one probe is one memory access; a fragment match is confirmed on the full hash, then on
    the bytes. Three passes (hash every row; probe and insert; copy the new ids' bytes) keep the
    probe loop short, which lets the CPU overlap the cache misses of independent probes — ~5x
    faster than one pass doing everything per row. A duplicate whose content digest differs
    from the one kept beside the accepted id is also marked in ``conflict``.
    """
    n = candidates.shape[0]
    row_hash = np.empty(n, np.uint64)
    for i in range(n):
        row_hash[i] = byte_hash(data, off[i], off[i + 1]) & hash_mask
    mask = np.uint64(table.shape[0] - 1)
    low = np.uint64(0xFFFFFFFF)
    shift = np.uint64(32)
    first = count
    new_rows = np.empty(n, np.int64)
    for i in range(min(_AHEAD, n)):
        _prefetch(table, np.int64(row_hash[i] & mask))  # type: ignore[call-arg]
    for i in range(n):
        if i + _AHEAD < n:
            _prefetch(table, np.int64(row_hash[i + _AHEAD] & mask))  # type: ignore[call-arg]
        if not candidates[i]:
            continue
        h = row_hash[i]
        fragment = h >> shift
        slot = h & mask
        found = False
        while True:
            packed = table[slot]
            if packed == 0:
                break
            if packed >> shift == fragment:
                ref = np.int64(packed & low) - 1
                if hashes[ref] == h:
                    if ref >= first:  # accepted earlier in this chunk: its bytes are in `data`
                        row = new_rows[ref - first]
                        found = _same(data, off[row], off[row + 1], data, off[i], off[i + 1])
                    else:
                        found = _same(store, store_off[ref], store_off[ref + 1], data, off[i], off[i + 1])
                    if found:
                        break
            slot = (slot + np.uint64(1)) & mask
        if found:
            dup[i] = True
            if digests[ref] != row_digest[i]:
                conflict[i] = True
            continue
        table[slot] = (fragment << shift) | np.uint64(count + 1)
        hashes[count] = h
        digests[count] = row_digest[i]
        new_rows[count - first] = i
        count += 1
    for k in range(count - first):
        row = new_rows[k]
        at = store_off[first + k]
        lo = off[row]
        length = off[row + 1] - lo
        for j in range(length):
            store[at + j] = data[lo + j]
        store_off[first + k + 1] = at + length
    return count


@njit(cache=True, nogil=True)
def _probe_only(  # type: ignore[no-untyped-def]
    data, off, candidates, table, hashes, store, store_off, found, hash_mask, digests, row_digest, conflict
):
    """Mark candidate rows whose id is in the table (no insert), and those of them whose
    content digest differs from the accepted one."""
    mask = np.uint64(table.shape[0] - 1)
    low = np.uint64(0xFFFFFFFF)
    shift = np.uint64(32)
    for i in range(candidates.shape[0]):
        if not candidates[i]:
            continue
        h = byte_hash(data, off[i], off[i + 1]) & hash_mask
        fragment = h >> shift
        slot = h & mask
        while True:
            packed = table[slot]
            if packed == 0:
                break
            if packed >> shift == fragment:
                ref = np.int64(packed & low) - 1
                if hashes[ref] == h and _same(
                    store, store_off[ref], store_off[ref + 1], data, off[i], off[i + 1]
                ):
                    found[i] = True
                    if digests[ref] != row_digest[i]:
                        conflict[i] = True
                    break
            slot = (slot + np.uint64(1)) & mask


@njit(cache=True, nogil=True)
def _rehash(table, hashes, count):  # type: ignore[no-untyped-def]
    mask = np.uint64(table.shape[0] - 1)
    shift = np.uint64(32)
    for ref in range(count):
        h = hashes[ref]
        slot = h & mask
        while table[slot] != 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = ((h >> shift) << shift) | np.uint64(ref + 1)


_A = TypeVar("_A", bound=np.generic)


def _row_digests(digests: npt.NDArray[np.uint64] | None, n: int) -> npt.NDArray[np.uint64]:
    if digests is None:
        return np.zeros(n, dtype=np.uint64)
    if digests.shape != (n,):
        raise ValueError(f"{digests.shape[0]} content digests for {n} ids")
    return np.ascontiguousarray(digests, dtype=np.uint64)


def _grow(array: npt.NDArray[_A], need: int) -> npt.NDArray[_A]:
    """``array`` with room for ``need`` items: itself, or a copy four times as long. Four, not
    two: each copy of these arrays (~380 MB in all at 10M ids) writes fresh memory, and the
    first touch of fresh memory is where the kernel zeroes (huge) pages and can stall to
    compact them — doubling made a 10M-id day's growth 0.4–0.9 s of the engine thread,
    quadrupling 0.03–0.04 s (docs/PERFORMANCE.md, issue 18). The unused tail is never touched,
    so it costs address space, not resident memory."""
    if array.shape[0] >= need:
        return array
    out: npt.NDArray[_A] = np.zeros(max(need, 4 * array.shape[0]), dtype=array.dtype)
    out[: array.shape[0]] = array
    return out


class IdIndex:
    """The accepted ids of one namespace (trades or payments)."""

    def __init__(self, hash_bits: int = 64) -> None:
        # Fewer hash bits only for tests: they force full-hash collisions between distinct ids.
        self._hash_mask = np.uint64((1 << hash_bits) - 1)
        self.count = 0
        self._table = np.zeros(_MIN_TABLE, dtype=np.uint64)
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self._digests = np.zeros(1024, dtype=np.uint64)  # content digest of each accepted id
        self._store = np.zeros(1 << 14, dtype=np.uint8)
        self._store_off = np.zeros(1025, dtype=np.int64)

    def __len__(self) -> int:
        return self.count

    def add(self, ids: pa.Array, candidates: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Rows (among ``candidates``) whose id was seen before or earlier in ``ids``; the other
        candidates' ids are remembered."""
        return self.classify(ids, candidates, None)[0]

    def classify(
        self, ids: pa.Array, candidates: npt.NDArray[np.bool_], digests: npt.NDArray[np.uint64] | None
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """``(duplicate, conflict)`` per row: among ``candidates``, an id seen before or earlier
        in ``ids`` is a duplicate, and a conflict too when its content digest (``digests``, one
        per row; ``None``: all 0) differs from the one kept when the id was accepted. The other
        candidates' ids are remembered with their digests."""
        n = len(ids)
        dup = np.zeros(n, dtype=np.bool_)
        conflict = np.zeros(n, dtype=np.bool_)
        if n == 0 or not candidates.any():
            return dup, conflict
        row_digest = _row_digests(digests, n)
        data, off = arrow_strings(ids)
        need = self.count + int(np.count_nonzero(candidates))
        if need > _MAX_LOAD * self._table.shape[0]:
            size = self._table.shape[0]
            while need > _MAX_LOAD * size:
                size *= 4  # x4: fewer rehashes of the whole table as the day grows
            if size > 1 << 32:
                raise OverflowError("more than 2**31 flow ids in one namespace")
            self._table = np.zeros(size, dtype=np.uint64)
            _rehash(self._table, self._hashes, self.count)
        self._hashes = _grow(self._hashes, need)
        self._digests = _grow(self._digests, need)
        self._store_off = _grow(self._store_off, need + 1)
        lengths = off[1:] - off[:-1]
        used = int(self._store_off[self.count])
        self._store = _grow(self._store, used + int(lengths[candidates].sum()))
        self.count = int(
            _probe_insert(
                data,
                off,
                candidates,
                self._table,
                self._hashes,
                self._store,
                self._store_off,
                self.count,
                dup,
                self._hash_mask,
                self._digests,
                row_digest,
                conflict,
            )
        )
        return dup, conflict

    def contains(self, ids: pa.Array, candidates: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Candidate rows whose id is in the index (nothing is added)."""
        return self.lookup(ids, candidates, None)[0]

    def lookup(
        self, ids: pa.Array, candidates: npt.NDArray[np.bool_], digests: npt.NDArray[np.uint64] | None
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """``(found, conflict)``: candidate rows whose id is in the index, and those of them whose
        content digest differs from the accepted one (nothing is added)."""
        found = np.zeros(len(ids), dtype=np.bool_)
        conflict = np.zeros(len(ids), dtype=np.bool_)
        if self.count == 0 or len(ids) == 0 or not candidates.any():
            return found, conflict
        row_digest = _row_digests(digests, len(ids))
        data, off = arrow_strings(ids)
        _probe_only(
            data,
            off,
            candidates,
            self._table,
            self._hashes,
            self._store,
            self._store_off,
            found,
            self._hash_mask,
            self._digests,
            row_digest,
            conflict,
        )
        return found, conflict

    def __contains__(self, flow_id: str) -> bool:
        ids = pa.array([flow_id], type=pa.string())
        data, off = arrow_strings(ids)
        h = int(byte_hash(data, int(off[0]), int(off[1])) & self._hash_mask)
        mask = self._table.shape[0] - 1
        slot = h & mask
        raw = flow_id.encode("utf-8")
        while True:
            packed = int(self._table[slot])
            if packed == 0:
                return False
            ref = (packed & 0xFFFFFFFF) - 1
            if int(self._hashes[ref]) == h:
                lo, hi = int(self._store_off[ref]), int(self._store_off[ref + 1])
                if self._store[lo:hi].tobytes() == raw:
                    return True
            slot = (slot + 1) & mask

    def nbytes(self) -> int:
        arrays = (self._table, self._hashes, self._digests, self._store, self._store_off)
        return int(sum(a.nbytes for a in arrays))

    def ids(self) -> list[str]:
        """Every accepted id, in acceptance order (for tests and tools)."""
        store, off = self._store.tobytes(), self._store_off
        return [store[int(off[i]) : int(off[i + 1])].decode("utf-8") for i in range(self.count)]
