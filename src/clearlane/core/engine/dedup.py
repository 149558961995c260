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

Same id, different content: beside each accepted id the index keeps a 64-bit digest of the
row's content as values (:func:`trade_digests`, :func:`payment_digest`,
:func:`collateral_digest`: ``80.0`` equals ``80.00``, a time is its epoch milliseconds, the
received time never counts). A duplicate whose digest differs is an *id conflict* (reject code
116): still a no-op, reported by the engine in ``Step.conflicts`` and by the service before it
logs — the one rule every path (files, the bus, HTTP) and every kind applies.

Bounded memory (the service): :class:`SeenFlowIds` can be given an archive — a port to the
store's id runs (``store/flowids.py``) that answers "was this id accepted in a log entry with
``seq`` below ``before_seq``" — and then keeps only a hot tier in memory: two generations of
:class:`IdIndex`, the older one dropped once every step it covers is in the archive. Both
modes answer every question identically (the archive filters on ``seq``, so a replay that finds
later ids already archived answers as the first run did); the bulk path keeps everything in
memory.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from clearlane.core.engine.commitment import arrow_strings
from clearlane.core.model.inputs import CollateralDeposit, CollateralWithdrawal, Payment

_MIN_TABLE = 1 << 12
_MAX_LOAD = 0.7  # table slots in use at most (linear probing stays short below ~0.75)


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
        row_hash[i] = _hash(data, off[i], off[i + 1]) & hash_mask
    mask = np.uint64(table.shape[0] - 1)
    low = np.uint64(0xFFFFFFFF)
    shift = np.uint64(32)
    first = count
    new_rows = np.empty(n, np.int64)
    for i in range(n):
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
        h = _hash(data, off[i], off[i + 1]) & hash_mask
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
def _seeded_hashes(data, off, seed, out):  # type: ignore[no-untyped-def]
    # FNV-1a from a seeded offset basis, then the splitmix64 finaliser (as ``_hash``).
    prime = np.uint64(1099511628211)
    for i in range(out.shape[0]):
        h = np.uint64(14695981039346656037) ^ seed
        for j in range(off[i], off[i + 1]):
            h = (h ^ np.uint64(data[j])) * prime
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out[i] = h ^ (h >> np.uint64(31))


# ---------------------------------------------------------------------- content digests
# "Same id, same content" is judged on values, not spellings: a decimal is compared with its
# trailing zeros removed (``80.0`` == ``80.00`` == ``80``), a time as epoch milliseconds (every
# RFC 3339 spelling of one instant parses to the same number), received time never counts. A
# 64-bit digest per row stands for that content: computed for every row in one compiled pass,
# compared only where an id is already known. Two different contents with equal digests (odds
# 2**-64 per re-sent id) would be answered as an exact duplicate — still a no-op, never applied.

_NULL_TEXT = np.uint64(0x6E756C6C2D746578)  # the digest of an absent optional text


@njit(cache=True, nogil=True)
def _mix(h, x):  # type: ignore[no-untyped-def]
    # splitmix64 of (h + x): every input bit reaches every output bit.
    z = (h ^ x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def _string_hashes(data, off, out):  # type: ignore[no-untyped-def]
    for i in range(out.shape[0]):
        out[i] = _hash(data, off[i], off[i + 1])


@njit(cache=True, nogil=True)
def _normal(mantissa, exponent):  # type: ignore[no-untyped-def]
    # (150, 2) and (15, 1) are the same decimal: drop trailing zero digits after the point.
    while exponent > 0 and mantissa % 10 == 0:
        mantissa //= 10
        exponent -= 1
    return mantissa, exponent


@njit(cache=True, nogil=True)
def _trade_digests(texts, qty_m, qty_e, price_m, price_e, executed, out):  # type: ignore[no-untyped-def]
    for i in range(out.shape[0]):
        h = np.uint64(0x636C6561726C616E)
        for c in range(texts.shape[1]):
            h = _mix(h, texts[i, c])
        m, e = _normal(qty_m[i], qty_e[i])
        h = _mix(_mix(h, np.uint64(m)), np.uint64(e))
        m, e = _normal(price_m[i], price_e[i])
        h = _mix(_mix(h, np.uint64(m)), np.uint64(e))
        out[i] = _mix(h, np.uint64(executed[i]))


def _text_hashes(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.uint64]:
    """Per row, the hash of its text (``_NULL_TEXT`` when absent); a dictionary column hashes
    each distinct value once."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = arr.dictionary if pa.types.is_dictionary(arr.type) else arr
    data, off = arrow_strings(values)
    hashes = np.empty(len(values) + 1, dtype=np.uint64)
    if len(values):
        _string_hashes(data, off, hashes[:-1])
    hashes[-1] = _NULL_TEXT
    if pa.types.is_dictionary(arr.type):
        index = pc.fill_null(arr.indices, len(values)).to_numpy(zero_copy_only=False)
    else:
        index = np.arange(len(arr), dtype=np.int64)
        if arr.null_count:
            index[~arr.is_valid().to_numpy(zero_copy_only=False)] = len(values)
    result: npt.NDArray[np.uint64] = hashes[index]
    return result


_TRADE_TEXT_COLUMNS = ("venue", "symbol", "buyer", "seller", "exch_batch_id", "lane_hint")


def trade_digests(table: pa.Table) -> npt.NDArray[np.uint64]:
    """The content digest of every row of a trade chunk (``TRADE_CHUNK_SCHEMA``): every field
    but the id and the received time, decimals and times compared as values."""
    n = table.num_rows
    out = np.zeros(n, dtype=np.uint64)
    if n == 0:
        return out
    texts = np.stack([_text_hashes(table.column(c)) for c in _TRADE_TEXT_COLUMNS], axis=1)

    def ints(name: str) -> npt.NDArray[np.int64]:
        return np.ascontiguousarray(table.column(name).to_numpy(), dtype=np.int64)

    _trade_digests(
        texts,
        ints("qty_mantissa"),
        ints("qty_exp"),
        ints("price_mantissa"),
        ints("price_exp"),
        ints("executed_at_ms"),
        out,
    )
    return out


def decimal_value(text: str) -> str:
    """A strict decimal string as its value's one spelling: ``80.00`` → ``80``, ``0.50`` → ``0.5``."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def content_digest(*fields: str | None) -> int:
    """The 64-bit content digest of a small input (a payment, deposit, withdrawal) from its
    fields as values (decimals through :func:`decimal_value`; ``None`` for an absent field)."""
    h = hashlib.sha256(b"clearlane.content.v1")
    for value in fields:
        raw = b"" if value is None else value.encode("utf-8")
        # Length-prefixed (-1 for absent): no two field lists share a byte string.
        h.update((-1 if value is None else len(raw)).to_bytes(8, "big", signed=True) + raw)
    return int.from_bytes(h.digest()[:8], "big")


def payment_digest(payment: Payment) -> int:
    """The content digest of a payment (every field but its id)."""
    return content_digest(
        payment.payer, payment.payee, payment.asset, decimal_value(payment.amount), payment.lane_hint
    )


def collateral_digest(event: CollateralDeposit | CollateralWithdrawal) -> int:
    """The content digest of a collateral deposit or withdrawal (every field but its id)."""
    return content_digest(event.participant, event.asset, decimal_value(event.amount))


NAMESPACE_KIND = {"t:": 0, "p:": 1}  # flow kind of each namespace (trade records' ``kind`` column)


def flow_hashes(ids: pa.Array, kind: int, seed: int) -> npt.NDArray[np.uint64]:
    """64-bit hashes of flow ids of one kind under a per-store ``seed`` (the archive's keys)."""
    data, off = arrow_strings(ids)
    out = np.zeros(len(ids), dtype=np.uint64)
    if len(ids):
        mixed = (seed ^ ((kind + 1) * 0x9E3779B97F4A7C15)) & 0xFFFFFFFFFFFFFFFF
        _seeded_hashes(data, off, np.uint64(mixed), out)
    return out


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
        h = int(_hash(data, int(off[0]), int(off[1])) & self._hash_mask)
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


class FlowIdArchive(Protocol):
    """The store side of the id set (``store/flowids.py``): ids of committed steps."""

    @property
    def covered_through(self) -> int:
        """Every id accepted in a step up to this ``seq`` can be found in the archive."""
        ...

    def seen(
        self, namespace: str, ids: pa.Array, rows: npt.NDArray[np.int64], before_seq: int
    ) -> npt.NDArray[np.bool_]:
        """Per row of ``ids`` (only ``rows`` are asked): accepted in a step with seq < ``before_seq``."""
        ...


HOT_IDS = 1 << 18  # ids per hot generation (per namespace) when an archive is attached


class SeenFlowIds:
    """Accepted flow ids per namespace (``"t:"`` trades, ``"p:"`` payments).

    ``"p:PAY-1" in seen`` reads like the set of prefixed keys it replaces; ``len`` counts all.
    Without an archive every id stays in memory; with one (:meth:`attach`), a bounded hot tier.
    """

    def __init__(self, hot_ids: int = HOT_IDS) -> None:
        self.by_namespace: dict[str, IdIndex] = {"t:": IdIndex(), "p:": IdIndex()}
        self._older: dict[str, IdIndex] = {}
        self._older_seq: dict[str, int] = {}  # the last seq an older generation holds ids of
        self._last_seq: dict[str, int] = {"t:": 0, "p:": 0}
        self.hot_ids = hot_ids
        self.archive: FlowIdArchive | None = None
        self.accepted = 0

    def index(self, namespace: str) -> IdIndex:
        return self.by_namespace[namespace]

    def attach(self, archive: FlowIdArchive) -> None:
        """Serve old ids from ``archive`` from now on; the ids in memory (all covered by it)
        are dropped."""
        last = max(self._last_seq.values())
        if archive.covered_through < last:
            raise ValueError(
                f"flow-id archive covers steps up to {archive.covered_through}, ids go up to {last}"
            )
        self.archive = archive
        self.by_namespace = {"t:": IdIndex(), "p:": IdIndex()}
        self._older.clear()
        self._older_seq.clear()

    def add(
        self, namespace: str, ids: pa.Array, candidates: npt.NDArray[np.bool_], seq: int
    ) -> npt.NDArray[np.bool_]:
        """Rows (among ``candidates``) whose id was accepted before (or earlier in ``ids``); the
        other candidates are accepted in step ``seq`` and remembered."""
        return self.classify(namespace, ids, candidates, seq, None)[0]

    def classify(
        self,
        namespace: str,
        ids: pa.Array,
        candidates: npt.NDArray[np.bool_],
        seq: int,
        digests: npt.NDArray[np.uint64] | None,
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """``(duplicate, conflict)`` per row (see :meth:`IdIndex.classify`); the new candidates
        are accepted in step ``seq`` and remembered with their content digests.

        An id answered by the archive (older than the hot tier) is a duplicate whose content is
        not known here: it is never a conflict. The service judges conflicts before it logs
        (the runtime compares with the logged input), so this matters only to a log written
        before that check."""
        archive = self.archive
        if archive is None:
            dup, conflict = self.by_namespace[namespace].classify(ids, candidates, digests)
        else:
            self._rotate(namespace, archive)
            dup = np.zeros(len(ids), dtype=np.bool_)
            conflict = np.zeros(len(ids), dtype=np.bool_)
            rows = np.flatnonzero(candidates)
            if len(rows):
                dup |= archive.seen(namespace, ids, rows.astype(np.int64), seq)
            older = self._older.get(namespace)
            if older is not None:
                found, clash = older.lookup(ids, candidates & ~dup, digests)
                dup |= found
                conflict |= clash
            found, clash = self.by_namespace[namespace].classify(ids, candidates & ~dup, digests)
            dup |= found
            conflict |= clash
        new = int(np.count_nonzero(candidates & ~dup))
        if new:
            self.accepted += new
            self._last_seq[namespace] = seq
        return dup, conflict

    def conflicts(
        self, namespace: str, ids: pa.Array, digests: npt.NDArray[np.uint64]
    ) -> npt.NDArray[np.bool_]:
        """Rows whose id is remembered with a different content digest (nothing is added; ids
        only the archive holds are never conflicts here, as in :meth:`classify`)."""
        everything = np.ones(len(ids), dtype=np.bool_)
        clash = self.by_namespace[namespace].lookup(ids, everything, digests)[1]
        older = self._older.get(namespace)
        if older is not None:
            clash |= older.lookup(ids, everything, digests)[1]
        return clash

    def _rotate(self, namespace: str, archive: FlowIdArchive) -> None:
        current = self.by_namespace[namespace]
        if current.count < self.hot_ids:
            return
        if namespace in self._older and self._older_seq[namespace] > archive.covered_through:
            return  # the older generation is not archived yet: keep both a little longer
        self._older[namespace] = current
        self._older_seq[namespace] = self._last_seq[namespace]
        self.by_namespace[namespace] = IdIndex()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        namespace, flow_id = key[:2], key[2:]
        index = self.by_namespace.get(namespace)
        if index is None:
            return False
        older = self._older.get(namespace)
        if flow_id in index or (older is not None and flow_id in older):
            return True
        if self.archive is None:
            return False
        ids = pa.array([flow_id], type=pa.string())
        return bool(self.archive.seen(namespace, ids, np.zeros(1, dtype=np.int64), 1 << 62)[0])

    def __len__(self) -> int:
        return self.accepted

    def nbytes(self) -> int:
        indexes = [*self.by_namespace.values(), *self._older.values()]
        return sum(index.nbytes() for index in indexes)
