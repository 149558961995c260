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

Here: :class:`SeenFlowIds` and the archive's port and keys; :class:`IdIndex` is in idindex.py,
the content digests in content.py.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from numba import njit

from clearlane.core.engine.content import (
    collateral_digest,
    content_digest,
    decimal_value,
    payment_digest,
    trade_digests,
)
from clearlane.core.engine.idindex import IdIndex
from clearlane.core.textcols import arrow_strings

# The content digests are in content.py and the id index in idindex.py; named here too, where
# callers have always found them.
__all__ = [
    "HOT_IDS",
    "NAMESPACE_KIND",
    "FlowIdArchive",
    "IdIndex",
    "SeenFlowIds",
    "collateral_digest",
    "content_digest",
    "decimal_value",
    "flow_hashes",
    "payment_digest",
    "trade_digests",
]


@njit(cache=True, nogil=True)
def _seeded_hashes(data, off, seed, out):  # type: ignore[no-untyped-def]
    # FNV-1a from a seeded offset basis, then the splitmix64 finaliser (as ``content.byte_hash``).
    prime = np.uint64(1099511628211)
    for i in range(out.shape[0]):
        h = np.uint64(14695981039346656037) ^ seed
        for j in range(off[i], off[i + 1]):
            h = (h ^ np.uint64(data[j])) * prime
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out[i] = h ^ (h >> np.uint64(31))


NAMESPACE_KIND = {"t:": 0, "p:": 1}  # flow kind of each namespace (trade records' ``kind`` column)


def flow_hashes(ids: pa.Array, kind: int, seed: int) -> npt.NDArray[np.uint64]:
    """64-bit hashes of flow ids of one kind under a per-store ``seed`` (the archive's keys)."""
    data, off = arrow_strings(ids)
    out = np.zeros(len(ids), dtype=np.uint64)
    if len(ids):
        mixed = (seed ^ ((kind + 1) * 0x9E3779B97F4A7C15)) & 0xFFFFFFFFFFFFFFFF
        _seeded_hashes(data, off, np.uint64(mixed), out)
    return out


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
