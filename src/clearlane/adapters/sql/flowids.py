"""The flow-id archive: every accepted trade and payment id of committed steps, on disk.

The service must refuse (or answer idempotently) a trade id accepted at any time in the past,
and find any trade by id, without keeping a per-trade structure in memory forever. This module
owns the store side of that (the engine's side is ``engine/dedup.py``; the read model's hot
tier is ``service/readmodel.py``):

* ids of committed steps are fed in log order (:meth:`FlowIdArchive.feed`) into a pending
  buffer — 16 bytes an id: a seeded 64-bit hash of (kind, id) and a packed location
  ``seq << 32 | part << 24 | row`` of its record in ``trade_chunks``;
* a full buffer is sorted by hash and written as one *run* (``flow_id_runs``) cut into blocks
  of ``block_ids`` ids (``flow_id_blocks``, one row each): append-only, sequential writes —
  no random B-tree insert per trade (SQLite's 64 KiB pages would make that a 64 KiB write per
  id);
* in memory stay only the first hash of every block (8 bytes per ``block_ids`` ids) and a
  fixed-size Bloom filter over all hashes (``bloom_bits``, 32 MiB by default: 0.04 % false
  positives at 10M ids, 2.7 % at 35M — docs/ARCHITECTURE.md on sizing it). A probe tests the
  Bloom filter; only a hit reads one block per run, and a hash hit is confirmed against the
  stored record (id and kind), so neither a Bloom false positive nor a hash collision can
  refuse a distinct id;
* runs are merged tiered in the background (:meth:`FlowIdArchive._compact`), so their number
  stays logarithmic in the ids held.

Runs hold committed steps only, and are written after those steps' commit; a crash loses at
most the pending buffer, which opening the store rebuilds from the replayed steps after the
last run (``covered_through``). Answers filter on ``seq`` ("accepted before ``before_seq``"),
so a replay that meets ids archived by its own later steps answers as the first run did.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from numba import njit
from sqlalchemy import text

from clearlane.adapters.sql.store import Store
from clearlane.core.engine.dedup import NAMESPACE_KIND, flow_hashes
from clearlane.core.model.events import Step
from clearlane.core.model.states import TradeState
from clearlane.core.proofs.codec import read_table

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

RUN_IDS = 1 << 18
BLOCK_IDS = 2048
COMPACT_FANIN = 4
MERGE_IDS = 1 << 16  # ids merged at a time by a compaction (bounds its memory)
_INSERT_BLOCKS = "INSERT INTO flow_id_blocks (run_id, block, first_hash, hashes, locs) VALUES (?, ?, ?, ?, ?)"
BLOOM_BITS = 1 << 28
_PAGE_BYTES = 4096  # the smallest page: touching one word in each pages the whole array in
_REJECTED = int(TradeState.REJECTED)


@njit(cache=True, nogil=True)
def _bloom_add(bits, hashes, mask):  # type: ignore[no-untyped-def]
    for i in range(hashes.shape[0]):
        h = hashes[i]
        step = (h >> np.uint64(32)) | np.uint64(1)
        for k in range(4):
            bit = (h + np.uint64(k) * step) & mask
            bits[bit >> np.uint64(6)] |= np.uint64(1) << (bit & np.uint64(63))


@njit(cache=True, nogil=True)
def _bloom_test(bits, hashes, mask, out):  # type: ignore[no-untyped-def]
    for i in range(hashes.shape[0]):
        h = hashes[i]
        step = (h >> np.uint64(32)) | np.uint64(1)
        hit = True
        for k in range(4):
            bit = (h + np.uint64(k) * step) & mask
            if (bits[bit >> np.uint64(6)] >> (bit & np.uint64(63))) & np.uint64(1) == 0:
                hit = False
                break
        out[i] = hit


@dataclass(frozen=True)
class _Run:
    run_id: int
    first_seq: int
    last_seq: int
    ids: int
    fences: U64  # the first hash of every block (hashes are sorted within a run)


def pack(seq: int | I64, part: int | I64, row: int | I64) -> Any:
    return (np.int64(seq) << np.int64(32)) | (np.int64(part) << np.int64(24)) | np.int64(row)


def unpack(loc: int) -> tuple[int, int, int]:
    return loc >> 32, (loc >> 24) & 0xFF, loc & 0xFFFFFF


def _merge_ranges(picked: list[_Run], total: int) -> list[tuple[int, int]]:
    """Hash ranges ``[lo, hi)`` cut at the picked runs' fences, about ``MERGE_IDS`` ids each."""
    fences = np.unique(np.concatenate([r.fences for r in picked]))
    step = max(1, len(fences) * MERGE_IDS // max(total, 1))
    cuts = [int(x) for x in fences[step::step]]
    return list(zip([0, *cuts], [*cuts, 1 << 64], strict=True))


class FlowIdArchive:
    """See the module docstring. One writer (the node's thread); readers hold the runtime lock."""

    def __init__(
        self,
        store: Store,
        seed: int,
        *,
        run_ids: int = RUN_IDS,
        block_ids: int = BLOCK_IDS,
        bloom_bits: int = BLOOM_BITS,
        compact_fanin: int = COMPACT_FANIN,
        background: bool = False,
    ) -> None:
        if bloom_bits & (bloom_bits - 1) or bloom_bits < 64:
            raise ValueError("bloom_bits must be a power of two >= 64")
        self.store = store
        self.seed = seed
        self.run_ids = run_ids
        self.block_ids = block_ids
        self._bits = np.zeros(bloom_bits // 64, dtype=np.uint64)
        self._mask = np.uint64(bloom_bits - 1)
        # The runs, oldest first; replaced as a whole (never mutated) so a reader holding the
        # lock sees one consistent list. ``_lock`` also covers the swap after a compaction.
        self._runs: list[_Run] = []
        self._next_run_id = 1
        self._lock = threading.RLock()
        self.compact_fanin = compact_fanin
        self.background = background
        self._compactor: threading.Thread | None = None
        self.compaction_error: BaseException | None = None
        self.compactions = 0
        self._pending_h = np.zeros(1024, dtype=np.uint64)
        self._pending_loc = np.zeros(1024, dtype=np.int64)
        self._pending_n = 0
        self._covered = 0
        self.ids = 0
        self._records: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()
        self.block_reads = 0
        self.flush_seconds: list[float] = []
        self.compact_seconds: list[float] = []

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, store: Store, **kwargs: Any) -> FlowIdArchive:
        """Load the runs' block fences and rebuild the Bloom filter from their hashes."""
        raw = store.get_meta("flow_id_seed")
        if raw is None:
            raw = str(secrets.randbits(64))
            store.set_meta("flow_id_seed", raw)
        archive = cls(store, int(raw), **kwargs)
        with store.engine.begin() as conn:
            # blocks of a compaction cut short by a crash (its run row was never committed)
            conn.execute(
                text("DELETE FROM flow_id_blocks WHERE run_id NOT IN (SELECT run_id FROM flow_id_runs)")
            )
        runs = store.rows(
            "SELECT run_id, first_seq, last_seq, ids FROM flow_id_runs ORDER BY first_seq, run_id"
        )
        with store.engine.connect() as conn:
            for run in runs:
                run_id = int(run["run_id"])
                blocks = conn.execute(
                    text("SELECT block, hashes FROM flow_id_blocks WHERE run_id = :r ORDER BY block"),
                    {"r": run_id},
                ).all()
                firsts = np.zeros(len(blocks), dtype=np.uint64)
                for i, (_, hashes) in enumerate(blocks):
                    h = np.frombuffer(bytes(hashes), dtype="<u8")
                    firsts[i] = h[0]
                    _bloom_add(archive._bits, h, archive._mask)
                archive._runs = [
                    *archive._runs,
                    _Run(run_id, int(run["first_seq"]), int(run["last_seq"]), int(run["ids"]), firsts),
                ]
                archive._next_run_id = max(archive._next_run_id, run_id + 1)
                archive._covered = max(archive._covered, int(run["last_seq"]))
                archive.ids += int(run["ids"])
        return archive

    def warm(self) -> None:
        """Page the Bloom filter in, keeping its bits: its first writes otherwise fault in every
        page of it (32 MiB: ~70 ms inside a service's first step)."""
        with self._lock:
            every_page = self._bits[:: max(1, _PAGE_BYTES // self._bits.itemsize)]
            every_page |= np.uint64(0)

    def close(self) -> None:
        """Wait for a running compaction (the store stays consistent either way)."""
        thread = self._compactor
        if thread is not None:
            thread.join()
            self._compactor = None

    @property
    def covered_through(self) -> int:
        return self._covered

    @property
    def archived_through(self) -> int:
        """The last step whose ids are all in written runs (the rest is in the pending buffer)."""
        return max((r.last_seq for r in self._runs), default=0)

    @property
    def run_count(self) -> int:
        return len(self._runs)

    # ------------------------------------------------------------------ write
    def feed(self, seq: int, fx: Step) -> None:
        """Take the accepted ids of committed step ``seq`` (in log order)."""
        if seq <= self._covered:
            return
        for part, table in enumerate(fx.tables()):
            n = table.num_rows
            if n == 0:
                continue
            if part > 0xFF or n > 0xFFFFFF:
                raise ValueError(
                    f"step {seq}: record part {part} of {n} rows does not fit a flow-id location"
                )
            state = table.column("state").to_numpy()
            kind = table.column("kind").to_numpy()
            ids = table.column("flow_id").combine_chunks()
            for k in np.unique(kind).tolist():
                rows = np.flatnonzero((state != _REJECTED) & (kind == k))
                if not len(rows):
                    continue
                sub = ids if len(rows) == n else ids.take(pa.array(rows))
                self._append(flow_hashes(sub, int(k), self.seed), pack(seq, part, rows.astype(np.int64)))
        self._covered = seq
        if self._pending_n >= self.run_ids:
            self.flush()

    def _append(self, hashes: U64, locs: I64) -> None:
        n = self._pending_n + len(hashes)
        if n > len(self._pending_h):
            size = max(n, 2 * len(self._pending_h))
            self._pending_h = np.resize(self._pending_h, size)
            self._pending_loc = np.resize(self._pending_loc, size)
        self._pending_h[self._pending_n : n] = hashes
        self._pending_loc[self._pending_n : n] = locs
        self._pending_n = n
        self.ids += len(hashes)
        _bloom_add(self._bits, hashes, self._mask)

    def flush(self) -> None:
        """Write the pending ids as one run (its own transaction; its steps are committed)."""
        n = self._pending_n
        if n == 0:
            return
        started = time.perf_counter()
        order = np.argsort(self._pending_h[:n], kind="stable")
        hashes = self._pending_h[:n][order].astype("<u8")
        locs = self._pending_loc[:n][order].astype("<i8")
        first_seq = int((self._pending_loc[:n] >> 32).min())
        with self._lock:
            run_id = self._next_run_id
            self._next_run_id += 1
        rows = self._block_rows(run_id, hashes, locs)
        with self.store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO flow_id_runs (run_id, first_seq, last_seq, ids, blocks) "
                    "VALUES (:r, :f, :l, :n, :b)"
                ),
                {"r": run_id, "f": first_seq, "l": self._covered, "n": n, "b": len(rows)},
            )
            self.store._executemany(conn, _INSERT_BLOCKS, rows)
        # committed: readers move from the pending ids to the run
        with self._lock:
            self._runs = [
                *self._runs,
                _Run(run_id, first_seq, self._covered, n, hashes[:: self.block_ids].astype(np.uint64)),
            ]
            self._pending_n = 0
        self._maybe_compact()
        self.flush_seconds.append(time.perf_counter() - started)
        del self.flush_seconds[:-100]
        if len(self._pending_h) > 2 * self.run_ids:
            self._pending_h = np.zeros(self.run_ids + 1024, dtype=np.uint64)
            self._pending_loc = np.zeros(self.run_ids + 1024, dtype=np.int64)

    def _block_rows(self, run_id: int, hashes: U64, locs: I64) -> list[tuple[Any, ...]]:
        b = self.block_ids
        return [
            (
                run_id,
                i,
                int(hashes[s].astype(np.int64)),
                hashes[s : s + b].astype("<u8").tobytes(),
                locs[s : s + b].astype("<i8").tobytes(),
            )
            for i, s in enumerate(range(0, len(hashes), b))
        ]

    # ------------------------------------------------------------------ compaction
    def _level(self, run: _Run) -> int:
        level, size = 0, self.run_ids * self.compact_fanin
        while run.ids >= size:
            level, size = level + 1, size * self.compact_fanin
        return level

    def _pick(self) -> list[_Run] | None:
        """``compact_fanin`` runs of the lowest level that has that many (oldest first)."""
        by_level: dict[int, list[_Run]] = {}
        for run in self._runs:
            by_level.setdefault(self._level(run), []).append(run)
        for level in sorted(by_level):
            if len(by_level[level]) >= self.compact_fanin:
                return by_level[level][: self.compact_fanin]
        return None

    def _maybe_compact(self) -> None:
        """Tiered compaction: ``compact_fanin`` runs of one size class are merged into one, so
        the run count stays O(fan-in x log(ids / run_ids)) and a probe reads that many blocks."""
        if self.compaction_error is not None:
            raise RuntimeError("flow-id run compaction failed") from self.compaction_error
        if self._compactor is not None:
            if self._compactor.is_alive():
                return
            self._compactor = None
        picked = self._pick()
        if picked is None:
            return
        if not self.background:
            self._compact(picked)
            self._maybe_compact()
            return
        self._compactor = threading.Thread(
            target=self._compact_guarded, args=(picked,), name="clearlane-id-compaction", daemon=True
        )
        self._compactor.start()

    def _compact_guarded(self, picked: list[_Run]) -> None:
        try:
            self._compact(picked)
        except BaseException as exc:  # surfaced on the next flush
            self.compaction_error = exc

    def _compact(self, picked: list[_Run]) -> None:
        """Merge ``picked`` into one new run, streaming: the hash space is cut at fences into
        ranges of about ``MERGE_IDS`` ids; each range's blocks are read from every picked run,
        sorted and written as the new run's next blocks (memory: one range, whatever the run
        sizes). Blocks go in small transactions (a crash leaves blocks without a run row,
        deleted on open); one last transaction adds the run row and deletes the merged runs —
        readers switch to the new run under the lock at that commit."""
        started = time.perf_counter()
        with self._lock:
            run_id = self._next_run_id
            self._next_run_id += 1
        total = sum(r.ids for r in picked)
        b = self.block_ids
        carry_h = np.zeros(0, dtype=np.uint64)
        carry_l = np.zeros(0, dtype=np.int64)
        block = 0
        firsts: list[U64] = []
        written = 0
        for lo, hi in _merge_ranges(picked, total):
            parts_h, parts_l = self._read_range(picked, lo, hi)
            hs = np.concatenate([carry_h, *parts_h])
            ls = np.concatenate([carry_l, *parts_l])
            order = np.argsort(hs, kind="stable")
            hs, ls = hs[order], ls[order]
            last = hi >= 1 << 64
            full = len(hs) if last else (len(hs) // b) * b
            if full:
                block += self._write_blocks(run_id, block, hs[:full], ls[:full])
                firsts.append(hs[:full][::b])
                written += full
            carry_h, carry_l = hs[full:], ls[full:]
            time.sleep(0)  # let the loop thread have the GIL between ranges
        if written != total:
            raise RuntimeError(f"flow-id compaction wrote {written} ids of {total}")
        merged = _Run(
            run_id,
            min(r.first_seq for r in picked),
            max(r.last_seq for r in picked),
            total,
            np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.uint64),
        )
        self._replace_runs(picked, merged, block)
        self.compactions += 1
        self.compact_seconds.append(time.perf_counter() - started)
        del self.compact_seconds[:-100]

    def _read_range(self, picked: list[_Run], lo: int, hi: int) -> tuple[list[U64], list[I64]]:
        """The ids of every picked run whose hash is in ``[lo, hi)`` (unsorted), read from the
        blocks the run's fences say may hold them."""
        parts_h: list[U64] = []
        parts_l: list[I64] = []
        with self.store.engine.connect() as conn:
            for run in picked:
                a = max(0, int(np.searchsorted(run.fences, np.uint64(lo), side="left")) - 1)
                z = (
                    len(run.fences)
                    if hi >= 1 << 64
                    else int(np.searchsorted(run.fences, np.uint64(hi), side="left"))
                )
                if z <= a:
                    continue
                for hashes, locs in conn.execute(
                    text(
                        "SELECT hashes, locs FROM flow_id_blocks WHERE run_id = :r AND block >= :a "
                        "AND block < :z ORDER BY block"
                    ),
                    {"r": run.run_id, "a": a, "z": z},
                ).all():
                    h = np.frombuffer(bytes(hashes), dtype="<u8")
                    keep = (
                        (h >= np.uint64(lo)) if hi >= 1 << 64 else (h >= np.uint64(lo)) & (h < np.uint64(hi))
                    )
                    parts_h.append(h[keep].astype(np.uint64))
                    parts_l.append(np.frombuffer(bytes(locs), dtype="<i8")[keep].astype(np.int64))
        return parts_h, parts_l

    def _write_blocks(self, run_id: int, block: int, hs: U64, ls: I64) -> int:
        """Write sorted ids as blocks ``block, block + 1, ...`` of run ``run_id``; returns how many."""
        rows = self._block_rows(run_id, hs, ls)
        rows = [(r[0], r[1] + block, *r[2:]) for r in rows]
        with self.store.engine.begin() as conn:
            self.store._executemany(conn, _INSERT_BLOCKS, rows)
        return len(rows)

    def _replace_runs(self, picked: list[_Run], merged: _Run, blocks: int) -> None:
        """One transaction adds the merged run's row and deletes the picked runs; readers switch
        to the new run list under the lock at its commit."""
        gone = [r.run_id for r in picked]
        with self._lock, self.store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO flow_id_runs (run_id, first_seq, last_seq, ids, blocks) "
                    "VALUES (:r, :f, :l, :n, :b)"
                ),
                {
                    "r": merged.run_id,
                    "f": merged.first_seq,
                    "l": merged.last_seq,
                    "n": merged.ids,
                    "b": blocks,
                },
            )
            for old in gone:
                conn.execute(text("DELETE FROM flow_id_blocks WHERE run_id = :r"), {"r": old})
                conn.execute(text("DELETE FROM flow_id_runs WHERE run_id = :r"), {"r": old})
            runs = [r for r in self._runs if r.run_id not in gone]
            self._runs = sorted([*runs, merged], key=lambda r: (r.first_seq, r.run_id))

    # ------------------------------------------------------------------ read
    def hashes(self, ids: pa.Array, kind: int) -> U64:
        return flow_hashes(ids, kind, self.seed)

    def maybe(self, hashes: U64) -> npt.NDArray[np.bool_]:
        """Bloom filter: False = certainly never archived; True = look it up."""
        out = np.zeros(len(hashes), dtype=np.bool_)
        if len(hashes) and self.ids:
            _bloom_test(self._bits, np.ascontiguousarray(hashes, dtype=np.uint64), self._mask, out)
        return out

    def locations(self, h: int) -> list[int]:
        """Every packed location stored under hash ``h`` (pending buffer and runs), unconfirmed."""
        key = np.uint64(h)
        with self._lock:
            found = [
                int(x)
                for x in self._pending_loc[: self._pending_n][self._pending_h[: self._pending_n] == key]
            ]
            for run in self._runs:
                found.extend(self._run_locations(run, key))
        return sorted(found)

    def _run_locations(self, run: _Run, key: np.uint64) -> list[int]:
        # the blocks that may hold `key`: from the last block starting below it to the last
        # block starting at or below it (equal hashes may span a block boundary)
        found: list[int] = []
        lo = max(0, int(np.searchsorted(run.fences, key, side="left")) - 1)
        hi = int(np.searchsorted(run.fences, key, side="right"))
        if hi == 0:
            return found
        with self.store.engine.connect() as conn:
            blocks = conn.execute(
                text(
                    "SELECT hashes, locs FROM flow_id_blocks WHERE run_id = :r AND block >= :lo AND block < :hi"
                ),
                {"r": run.run_id, "lo": lo, "hi": hi},
            ).all()
        self.block_reads += len(blocks)
        for hashes, locs in blocks:
            hb = np.frombuffer(bytes(hashes), dtype="<u8")
            a, z = np.searchsorted(hb, key, side="left"), np.searchsorted(hb, key, side="right")
            if z > a:
                found.extend(int(x) for x in np.frombuffer(bytes(locs), dtype="<i8")[a:z])
        return found

    def candidates(self, flow_id: str, kind: int) -> list[tuple[int, int, int]]:
        """(seq, part, row) of every archived record whose hash matches ``flow_id`` of ``kind``."""
        h = self.hashes(pa.array([flow_id], type=pa.string()), kind)
        if not self.maybe(h)[0]:
            return []
        return [unpack(loc) for loc in self.locations(int(h[0]))]

    def _record_table(self, seq: int, part: int) -> pa.Table:
        key = (seq, part)
        table = self._records.get(key)
        if table is None:
            blob = self.store.scalar(
                "SELECT blob FROM trade_chunks WHERE log_seq = :s AND part = :p", s=seq, p=part
            )
            if blob is None:
                raise LookupError(f"trade chunk {seq}/{part} missing from the store")
            table = read_table(bytes(blob))
            self._records[key] = table
            while len(self._records) > 8:
                self._records.popitem(last=False)
        return table

    def seen(self, namespace: str, ids: pa.Array, rows: I64, before_seq: int) -> npt.NDArray[np.bool_]:
        """The engine's port (``engine.dedup.FlowIdArchive``): per row of ``ids`` (only ``rows``
        are asked), accepted in a step with seq < ``before_seq``, confirmed on the record."""
        out = np.zeros(len(ids), dtype=np.bool_)
        if not len(rows) or not self.ids:
            return out
        kind = NAMESPACE_KIND[namespace]
        asked = ids.take(pa.array(rows)) if len(rows) != len(ids) else ids
        hashes = self.hashes(asked, kind)
        for i in np.flatnonzero(self.maybe(hashes)).tolist():
            flow_id = asked[i].as_py()
            for loc in self.locations(int(hashes[i])):
                seq, part, row = unpack(loc)
                if seq >= before_seq:
                    continue
                table = self._record_table(seq, part)
                if (
                    table.column("flow_id")[row].as_py() == flow_id
                    and int(table.column("kind")[row].as_py()) == kind
                    and int(table.column("state")[row].as_py()) != _REJECTED
                ):
                    out[int(rows[i])] = True
                    break
        return out

    def nbytes(self) -> int:
        fences = sum(r.fences.nbytes for r in self._runs)
        return int(self._bits.nbytes + fences + self._pending_h.nbytes + self._pending_loc.nbytes)
