"""``clearlane verify``: walk a whole store and name the first record that does not add up.

The walk follows the log. For each step ``seq`` it recomputes the input entry's hash from its
stored payload and the previous chain head, the transition entry's hash from its stored body,
and then holds every row the step wrote against that transition: the trade-record chunks (by
column digest), the batch events, the outbox, the engine rejects and the audit records (derived
again from the transitions). Batches are checked when they clear: their leaves are recomputed
from the trade records in leaf order, the Merkle root must equal the committed one and the
obligations are netted again, which must give the stored net instructions and the header's net
totals. After the walk come the final state of every batch, L1 group and journal entry, the
engine state, the signing keys and every checkpoint (tree root over the audit records, log
head, state root, Ed25519 signature by the key that was current), and finally the ledger
balances against the postings. Problems are reported in that order; the first one names the
first bad record.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import tomllib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text

from clearlane.adapters.sql.store import Store
from clearlane.core.config.model import ClearingConfig, ConfigError, parse_config
from clearlane.core.engine.flows import Flows, leaf_texts
from clearlane.core.engine.netting import net_positions
from clearlane.core.escrow.accounts import made_by_escrow
from clearlane.core.ledger import AccountKey, Purpose
from clearlane.core.ledger.entries import JournalEntry
from clearlane.core.model import ids as model_ids
from clearlane.core.model.events import BATCH_UPDATABLE
from clearlane.core.model.states import BatchState
from clearlane.core.proofs.codec import read_table, write_table
from clearlane.core.proofs.hashchain import (
    Frontier,
    RecordFold,
    canonical_json,
    genesis_hash,
    input_hash,
    net_lines,
    table_digest,
    totals_text,
    transition_hash,
)
from clearlane.core.proofs.merkle import forest_roots, hash_leaves
from clearlane.core.proofs.verify import ProofError, trusted_keys, verify_checkpoint
from clearlane.evidence.prove import EvidenceError, batch_member_mask, flows_from_records

__all__ = ["CheckReport", "Problem", "check_store"]

_NOT_CANONICAL = (
    "blob bytes are not the canonical encoding of its records (altered, or written by another Arrow)"
)


@dataclass(frozen=True)
class Problem:
    table: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.table} {self.key}: {self.message}"


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    steps: int = 0
    trades: int = 0
    batches: int = 0
    records: int = 0
    checkpoints: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Stop(Exception):
    pass


class _Rows:
    """Pages through a table in key order (portable SQL, one page in memory)."""

    def __init__(
        self,
        store: Store,
        table: str,
        columns: str,
        key: str = "id",
        page: int = 4096,
        where: str = "",
        minor: str | None = None,
    ) -> None:
        self._store, self._table, self._columns, self._key = store, table, columns, key
        self._page, self._where, self._minor = page, where, minor
        self._buffer: deque[Any] = deque()
        self._last: Any = None
        self._last_minor: Any = None
        self._done = False

    def peek(self) -> Any:
        if not self._buffer and not self._done:
            self._fill()
        return self._buffer[0] if self._buffer else None

    def peek_many(self, n: int) -> list[Any]:
        while len(self._buffer) < n and not self._done:
            self._fill()
        return list(itertools.islice(self._buffer, n))

    def pop(self) -> Any:
        row = self.peek()
        if row is not None:
            self._buffer.popleft()
        return row

    def _fill(self) -> None:
        clauses = [self._where] if self._where else []
        params: dict[str, Any] = {"n": self._page}
        key, minor = self._key, self._minor
        if self._last is not None:
            if minor is None:
                clauses.append(f"{key} > :last")
            else:
                clauses.append(f"({key} > :last OR ({key} = :last AND {minor} > :last_minor))")
                params["last_minor"] = self._last_minor
            params["last"] = self._last
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        order = key if minor is None else f"{key}, {minor}"
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {self._columns} FROM {self._table} {where}ORDER BY {order} LIMIT :n"), params
            ).all()
        if len(rows) < self._page:
            self._done = True
        if rows:
            self._last = getattr(rows[-1], key)
            self._last_minor = getattr(rows[-1], minor) if minor is not None else None
        self._buffer.extend(rows)


@dataclass
class _Prepared:
    """A trade-record chunk decoded and checked off the main thread (see :class:`_ChunkFeed`)."""

    error: str | None = None
    rows: int = 0
    digest: str = ""
    canonical: bool = False
    flows: Flows | None = None
    flows_error: str | None = None
    pool_codes: np.ndarray | None = None
    pools: np.ndarray | None = None
    tails: pa.Array | None = None


def _prepare_chunk(
    blob: bytes, config: ClearingConfig, participant_ids: pa.Array, asset_array: pa.Array
) -> _Prepared:
    """Everything about one chunk that does not depend on the walk's state: decode, column
    digest, canonical bytes, the batched rows as flows and the batch-independent leaf tails."""
    try:
        table = _read(blob)
        prep = _Prepared(
            rows=table.num_rows, digest=table_digest(table), canonical=_canonical_blob(table, blob)
        )
    except (pa.ArrowException, OSError, ValueError) as exc:
        return _Prepared(error=f"blob does not decode ({type(exc).__name__})")
    try:
        member, pool_codes, pools = batch_member_mask(table)
        rows = np.flatnonzero(member)
        if len(rows):
            prep.flows = flows_from_records(table.take(pa.array(rows)), config)
            prep.pool_codes, prep.pools = pool_codes[rows], pools
            prep.tails = pc.replace_substring_regex(
                leaf_texts(prep.flows, "", participant_ids, asset_array, config.house_index),
                pattern=r"^clearlane\.leaf\.v1\|\|[0-9]+\|",
                replacement="",
                max_replacements=1,
            )
    except (EvidenceError, KeyError, ValueError, pa.ArrowInvalid) as exc:
        prep.flows_error = str(exc)
    return prep


class _ChunkFeed:
    """Trade-record chunks in log order, each prepared on a worker thread two chunks ahead (the
    decoding, digests, re-encoding and string building run in Arrow and release the GIL)."""

    def __init__(self, rows: _Rows, pool: ThreadPoolExecutor, prepare: Callable[[bytes], _Prepared]) -> None:
        self._rows, self._pool, self._prepare = rows, pool, prepare
        self._ahead: deque[tuple[Any, Future[_Prepared]]] = deque()

    def _fill(self) -> None:
        while len(self._ahead) < 3:
            row = self._rows.pop()
            if row is None:
                return
            self._ahead.append((row, self._pool.submit(self._prepare, bytes(row.blob))))

    def peek(self) -> Any:
        self._fill()
        return self._ahead[0][0] if self._ahead else None

    def pop(self) -> tuple[Any, Future[_Prepared]] | None:
        self._fill()
        return self._ahead.popleft() if self._ahead else None


@dataclass
class _Streams:
    """The stored tables the walk reads in step with the log, each in key order."""

    log: _Rows
    transitions: _Rows
    chunks: _ChunkFeed
    events: _Rows
    outbox: _Rows
    rejects: _Rows
    records: _Rows


@dataclass
class _Batch:
    cleared: dict[str, Any]
    seq: int
    state: dict[str, Any]


class _Checker:
    def __init__(self, store: Store, limit: int, progress: Callable[[int, int], None] | None) -> None:
        self.store = store
        self.report = CheckReport()
        self.limit = limit
        self.progress = progress
        self._config: ClearingConfig | None = None

    @property
    def config(self) -> ClearingConfig:
        if self._config is None:
            raise RuntimeError("configuration not loaded")
        return self._config

    def problem(self, table: str, key: object, message: str) -> None:
        self.report.problems.append(Problem(table, str(key), message))
        if len(self.report.problems) >= self.limit:
            raise _Stop

    # ------------------------------------------------------------------ entry point
    def run(self) -> CheckReport:
        started = time.perf_counter()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clearlane-verify")
        try:
            if self._meta():
                self._walk()
                self.report.seconds["log walk"] = time.perf_counter() - started
                mark = time.perf_counter()
                self._final_state()
                self._keys_and_checkpoints()
                self.report.seconds["checkpoints"] = time.perf_counter() - mark
                mark = time.perf_counter()
                self._ledger()
                self.report.seconds["ledger"] = time.perf_counter() - mark
        except _Stop:
            self.report.notes.append(f"stopped after {self.limit} problems")
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        return self.report

    # ------------------------------------------------------------------ meta
    def _meta(self) -> bool:
        store = self.store
        toml_text = store.get_meta("config_toml")
        if toml_text is None:
            self.problem("meta", "config_toml", "missing: the store has no configuration")
            return False
        try:
            self._config = parse_config(tomllib.loads(toml_text), source="stored config")
        except (ConfigError, tomllib.TOMLDecodeError) as exc:
            self.problem("meta", "config_toml", f"does not parse: {exc}")
            return False
        if store.get_meta("config_digest") != self.config.digest:
            self.problem("meta", "config_digest", "does not match the stored configuration")
        self.store_id = store.get_meta("store_id")
        if self.store_id is None:
            self.problem("meta", "store_id", "missing")
        return True

    # ------------------------------------------------------------------ the log walk
    def _walk(self) -> None:
        state = self.store.engine_state()
        self.applied = 0 if state is None else int(state["applied_seq"])
        self._start_walk()
        streams = self._streams()
        head = genesis_hash(self.config.digest)
        expect_seq = 1
        while (row := streams.log.pop()) is not None:
            seq = int(row.seq)
            if seq != expect_seq:
                self.problem(
                    "input_log", f"seq {expect_seq}", f"missing (the next stored entry is seq {seq})"
                )
            head = self._entry(row, head, streams)
            expect_seq = seq + 1
        self._leftovers(streams)
        self.head = head
        self.last_seq = expect_seq - 1
        self._engine_state(state, head)

    def _start_walk(self) -> None:
        """The state the walk accumulates, compared with the stored tables as it goes and after."""
        config = self.config
        self.fold = RecordFold.for_config(config)
        self.frontier = Frontier()
        self.asset_codes = [a.code for a in config.assets]
        self.participant_ids = pa.array(config.participant_ids, type=pa.string())
        self.asset_array = pa.array(self.asset_codes, type=pa.string())
        self.heads: dict[int, bytes] = {}
        self.state_roots: dict[int, str] = {}
        self.roots_at: dict[int, bytes] = {0: Frontier().root()}
        self.batches: dict[str, _Batch] = {}
        self.open_parts: dict[tuple[str, int], list[tuple[Flows, np.ndarray]]] = {}
        self.open_counts: dict[tuple[str, int], int] = {}
        self.pending_roots: list[tuple[str, np.ndarray, str]] = []
        self.leaf_head = pa.scalar("clearlane.leaf.v1", pa.string())
        self.bar = pa.scalar("|", pa.string())
        self.l1: dict[str, dict[str, Any]] = {}
        self.ledger: dict[str, dict[str, Any]] = {}
        self.rotations: list[dict[str, Any]] = []
        self.first_submission_ms: int | None = None
        self.checkpoint_sizes = {
            int(r["tree_size"]) for r in self.store.rows("SELECT tree_size FROM checkpoints")
        }

    def _streams(self) -> _Streams:
        store, config = self.store, self.config
        return _Streams(
            log=_Rows(
                store,
                "input_log",
                "seq, at_ms, kind, source_id, payload, prev_hash, hash",
                key="seq",
                page=16,
            ),
            transitions=_Rows(
                store, "transition_log", "seq, body, prev_hash, hash, state_root", key="seq", page=64
            ),
            chunks=_ChunkFeed(
                _Rows(
                    store, "trade_chunks", "log_seq, part, rows, blob", key="log_seq", page=4, minor="part"
                ),
                self.pool,
                lambda blob: _prepare_chunk(blob, config, self.participant_ids, self.asset_array),
            ),
            events=_Rows(store, "batch_events", "id, batch_id, event, at_ms, detail, log_seq"),
            outbox=_Rows(store, "outbox", "id, log_seq, kind, payload"),
            # Edge rejects (bus messages refused before the log, source != 'engine') are not log effects.
            rejects=_Rows(
                store,
                "rejects",
                "id, log_seq, source, row, input_id, code, error, field, reason",
                where="source = 'engine'",
            ),
            records=_Rows(store, "audit_records", "idx, kind, ref, log_seq, record, hash", key="idx"),
        )

    def _entry(self, row: Any, head: bytes, streams: _Streams) -> bytes:
        """Check one input entry, its transition and the rows its step wrote; return the new head."""
        seq = int(row.seq)
        payload = bytes(row.payload)
        if bytes(row.prev_hash) != head:
            self.problem(
                "input_log",
                f"seq {seq}",
                "prev_hash is not the previous chain head (entry removed, inserted or reordered)",
            )
        in_hash = input_hash(head, seq, int(row.at_ms), str(row.kind), payload)
        if bytes(row.hash) != in_hash:
            self.problem("input_log", f"seq {seq}", "hash does not match the entry's content")
        trow = self._transition_for(seq, streams.transitions)
        if trow is None:
            self.problem("transition_log", f"seq {seq}", "missing")
            return in_hash
        body_bytes = bytes(trow.body)
        t_hash = transition_hash(in_hash, seq, body_bytes)
        if bytes(trow.prev_hash) != in_hash:
            self.problem("transition_log", f"seq {seq}", "prev_hash is not its input entry's hash")
        if bytes(trow.hash) != t_hash:
            self.problem("transition_log", f"seq {seq}", "hash does not match the transition's body")
        self.heads[seq] = t_hash
        self.state_roots[seq] = str(trow.state_root)
        body = self._transition_body(seq, body_bytes, row.source_id)
        if body is None:
            return t_hash
        try:
            self._step(seq, str(row.kind), payload, body, streams)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A canonical JSON body missing a field (or of the wrong shape) is a finding, not a crash.
            self.problem("transition_log", f"seq {seq}", f"body is not a well-formed transition: {exc!r}")
            return t_hash
        self.report.steps += 1
        if self.progress is not None:
            self.progress(seq, self.applied)
        return t_hash

    def _transition_for(self, seq: int, transitions: _Rows) -> Any:
        """Pop the transition of step ``seq`` (None if it is missing), reporting orphans before it."""
        trow = transitions.peek()
        while trow is not None and int(trow.seq) < seq:
            self.problem("transition_log", f"seq {int(trow.seq)}", "has no input entry")
            transitions.pop()
            trow = transitions.peek()
        if trow is None or int(trow.seq) != seq:
            return None
        transitions.pop()
        return trow

    def _transition_body(self, seq: int, body_bytes: bytes, source_id: Any) -> Any:
        """The decoded transition body, or None when it is not canonical JSON of step ``seq``."""
        try:
            body = json.loads(body_bytes)
            if canonical_json(body) != body_bytes or body.get("seq") != seq:
                raise ValueError("not canonical")
            if body.get("source") != source_id:
                self.problem(
                    "input_log", f"seq {seq}", "source_id differs from the one its transition recorded"
                )
        except ValueError:
            self.problem("transition_log", f"seq {seq}", "body is not a canonical transition")
            return None
        return body

    def _leftovers(self, streams: _Streams) -> None:
        """Rows still unread after the last step were written by no step of the log."""
        for name, rows, key in (
            ("trade_chunks", streams.chunks, "log_seq"),
            ("batch_events", streams.events, "id"),
            ("outbox", streams.outbox, "id"),
            ("rejects", streams.rejects, "id"),
            ("audit_records", streams.records, "idx"),
        ):
            extra = rows.peek()
            if extra is not None:
                self.problem(name, f"{key} {getattr(extra, key)}", "written by no step of the log")
        trow = streams.transitions.peek()
        if trow is not None:
            self.problem("transition_log", f"seq {int(trow.seq)}", "has no input entry")

    def _engine_state(self, state: dict[str, Any] | None, head: bytes) -> None:
        if state is None:
            if self.last_seq:
                self.problem("engine_state", "id 1", "missing while the log has entries")
            return
        if self.applied != self.last_seq:
            self.problem(
                "engine_state", "id 1", f"applied_seq {self.applied} but the log ends at {self.last_seq}"
            )
        if state["log_head"] != head:
            self.problem("engine_state", "id 1", "log_head is not the chain head")
        if self.last_seq and state["state_root"] != self.state_roots.get(self.last_seq):
            self.problem("engine_state", "id 1", "state_root differs from the last transition's")

    def _step(self, seq: int, kind: str, payload: bytes, body: dict[str, Any], streams: _Streams) -> None:
        self._step_chunks(seq, body, streams.chunks)
        # Batches cleared by this step: leaves, root and netting from the trade records.
        for c in body["cleared"]:
            self._clear(seq, c)
        self._check_roots()
        for batch_id, change in body["updates"].items():
            batch = self.batches.get(batch_id)
            if batch is None:
                self.problem("transition_log", f"seq {seq}", f"updates unknown batch {batch_id}")
                continue
            batch.state.update({k: v for k, v in change.items() if k in BATCH_UPDATABLE})
        # Rows written in order: events, outbox, rejects, audit records.
        self._step_events(seq, body, streams.events)
        if self.first_submission_ms is None and body["submissions"]:
            # The node starts the simulated chain at the earliest submission of the first step with any.
            self.first_submission_ms = min(int(sub["submitted_at_ms"]) for sub in body["submissions"])
        self._step_outbox(seq, body["submissions"], streams.outbox)
        self._step_rejects(seq, body, streams.rejects)
        self._step_l1_and_journal(seq, body)
        self._step_records(seq, kind, payload, body, streams.records)

    def _step_chunks(self, seq: int, body: dict[str, Any], chunks: _ChunkFeed) -> None:
        """Trade records, each chunk against its column digest."""
        want = {int(r["part"]): r for r in body["records"]}
        got: dict[int, Any] = {}
        while (row := chunks.peek()) is not None and int(row.log_seq) <= seq:
            item = chunks.pop()
            if item is None:
                break
            future = item[1]
            if int(row.log_seq) < seq:
                self.problem(
                    "trade_chunks",
                    f"log_seq {int(row.log_seq)} part {int(row.part)}",
                    "written by no step of the log",
                )
                continue
            got[int(row.part)] = (row, future)
        for part in sorted(set(want) | set(got)):
            key = f"log_seq {seq} part {part}"
            if part not in got:
                self.problem("trade_chunks", key, "missing")
                continue
            if part not in want:
                self.problem("trade_chunks", key, "not written by its step")
                continue
            row, future = got[part]
            self._chunk(key, row, future.result(), want[part])

    def _chunk(self, key: str, row: Any, prep: _Prepared, want: dict[str, Any]) -> None:
        if prep.error is not None:
            self.problem("trade_chunks", key, prep.error)
            return
        if prep.digest != want["digest"] or int(row.rows) != want["rows"] or prep.rows != want["rows"]:
            self.problem("trade_chunks", key, "records differ from what the step wrote (column digest)")
            return
        if not prep.canonical:
            self.problem("trade_chunks", key, _NOT_CANONICAL)
            return
        self.report.trades += prep.rows
        self._collect(prep)

    def _step_events(self, seq: int, body: dict[str, Any], events: _Rows) -> None:
        for i, expected in enumerate(body["events"]):
            row = events.peek()
            key = (
                f"id {row.id}"
                if row is not None and int(row.log_seq) == seq
                else f"(log_seq {seq} event {i})"
            )
            if row is None or int(row.log_seq) > seq:
                self.problem("batch_events", key, "missing")
                continue
            events.pop()
            if [row.batch_id, row.event, int(row.at_ms), row.detail] != expected or int(row.log_seq) != seq:
                self.problem("batch_events", key, "differs from the event its step recorded")
        while (row := events.peek()) is not None and int(row.log_seq) <= seq:
            events.pop()
            self.problem("batch_events", f"id {row.id}", "not recorded by its step")

    def _step_outbox(self, seq: int, subs: list[dict[str, Any]], outbox: _Rows) -> None:
        if subs and self._outbox_bulk(seq, subs, outbox):
            subs = []
        for i, sub in enumerate(subs):
            row = outbox.peek()
            if row is None or int(row.log_seq) > seq:
                self.problem("outbox", f"(log_seq {seq} submission {i})", "missing")
                continue
            outbox.pop()
            if (
                bytes(row.payload) != canonical_json(sub)
                or row.kind != sub["kind"]
                or int(row.log_seq) != seq
            ):
                self.problem("outbox", f"id {row.id}", "differs from the submission its step made")
        while (row := outbox.peek()) is not None and int(row.log_seq) <= seq:
            outbox.pop()
            self.problem("outbox", f"id {row.id}", "not made by its step")

    def _step_rejects(self, seq: int, body: dict[str, Any], rejects: _Rows) -> None:
        for i, rej in enumerate(body["rejects"]):
            row = rejects.peek()
            if row is None or int(row.log_seq) > seq:
                self.problem("rejects", f"(log_seq {seq} reject {i})", "missing")
                continue
            rejects.pop()
            stored = {
                "row": row.row,
                "id": row.input_id,
                "code": int(row.code),
                "error": row.error,
                "field": row.field,
                "reason": row.reason,
            }
            if stored != rej or int(row.log_seq) != seq:
                self.problem("rejects", f"id {row.id}", "differs from the reject its step recorded")
        while (row := rejects.peek()) is not None and int(row.log_seq) <= seq:
            rejects.pop()
            self.problem("rejects", f"id {row.id}", "not recorded by its step")

    def _step_l1_and_journal(self, seq: int, body: dict[str, Any]) -> None:
        """L1 groups and the journal: latest expected state, compared after the walk."""
        for g in body["l1"]:
            entry = self.l1.setdefault(g["group_id"], {"meta": None, "log_seq": seq})
            if g["meta"] is not None:
                entry["meta"], entry["log_seq"] = g["meta"], seq
            entry["digest"], entry["open"] = g["digest"], g["open"]
        for entry_id, digest in body["ledger"]["entries"]:
            self.ledger[entry_id] = {"digest": digest, "status": None, "status_at_ms": None}
        for entry_id, status, at_ms in body["ledger"]["status"]:
            if entry_id not in self.ledger:
                self.problem(
                    "transition_log", f"seq {seq}", f"status change of unknown journal entry {entry_id}"
                )
                continue
            self.ledger[entry_id]["status"], self.ledger[entry_id]["status_at_ms"] = status, at_ms

    def _step_records(
        self, seq: int, kind: str, payload: bytes, body: dict[str, Any], records: _Rows
    ) -> None:
        """Audit records: derived again from the transition."""
        decoded: Any = None
        if kind == "key_rotation":
            try:
                decoded = json.loads(payload)
                self.rotations.append({"seq": seq, **decoded})
            except ValueError:
                self.problem("input_log", f"seq {seq}", "key rotation payload is not JSON")
                return
        try:
            texts = self.fold.step(kind, decoded, body)
        except (KeyError, ValueError, TypeError) as exc:
            self.problem("transition_log", f"seq {seq}", f"audit records cannot be derived: {exc}")
            return
        for record in texts:
            index = self.frontier.size
            digest = self.frontier.append(record.encode())
            self.report.records += 1
            if self.frontier.size in self.checkpoint_sizes:
                self.roots_at[self.frontier.size] = self.frontier.root()
            row = records.peek()
            if row is None or int(row.idx) != index:
                self.problem("audit_records", f"idx {index}", "missing")
                continue
            records.pop()
            if row.record != record or bytes(row.hash) != digest or int(row.log_seq) != seq:
                self.problem("audit_records", f"idx {index}", "differs from the record its step implies")

    def _outbox_bulk(self, seq: int, subs: list[dict[str, Any]], outbox: _Rows) -> bool:
        """Compare a step's submissions with its outbox rows in one go; False = look row by row."""
        rows = outbox.peek_many(len(subs))
        if len(rows) != len(subs) or any(
            int(r.log_seq) != seq or r.kind != s["kind"] for r, s in zip(rows, subs, strict=True)
        ):
            return False
        stored = b"[" + b",".join(bytes(r.payload) for r in rows) + b"]"
        if stored != canonical_json(subs):
            return False
        for _ in rows:
            outbox.pop()
        return True

    def _collect(self, prep: _Prepared) -> None:
        """Park the chunk's L2 rows per (pool, batch seq) until their batch clears.

        The leaves of all of a chunk's batched rows are built and hashed in one pass: the
        batch-independent tail of each leaf comes from :func:`leaf_texts` (the engine's own
        encoder, run in :func:`_prepare_chunk`), the ``clearlane.leaf.v1|<batch id>|<index>|``
        head is joined on per row here, where the walk knows each batch's next index.
        """
        if prep.flows_error is not None:
            self.problem("trade_chunks", "records", prep.flows_error)
            return
        flows, pool_codes, pools, tails = prep.flows, prep.pool_codes, prep.pools, prep.tails
        if flows is None or pool_codes is None or pools is None or tails is None:
            return
        keys = pool_codes.astype(np.int64) * (1 << 40) + flows.batch_seq
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(sorted_keys)]
        index = np.empty(len(flows), dtype=np.int64)
        group = np.empty(len(flows), dtype=np.int32)
        names: list[tuple[str, int]] = []
        for g, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            key = int(sorted_keys[lo])
            name = (str(pools[key >> 40]), key & ((1 << 40) - 1))
            names.append(name)
            done = self.open_counts.get(name, 0)
            index[order[lo:hi]] = np.arange(done, done + hi - lo)
            group[order[lo:hi]] = g
            self.open_counts[name] = done + hi - lo
        batch_ids = pa.array([model_ids.batch_id(pool, seq) for pool, seq in names], pa.string()).take(
            pa.array(group)
        )
        leaves = pc.binary_join_element_wise(
            self.leaf_head, batch_ids, pc.cast(pa.array(index), pa.string()), tails, self.bar
        )
        hashes = hash_leaves(leaves)
        for g, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            take = order[lo:hi]
            self.open_parts.setdefault(names[g], []).append((flows.take(take), hashes[take]))

    def _clear(self, seq: int, c: dict[str, Any]) -> None:
        config = self.config
        batch_id = c["batch_id"]
        self.report.batches += 1
        self.batches[batch_id] = _Batch(c, seq, {"state": BatchState.CLEARED.label, "attempts": 1})
        key = (c["pool"], int(c["seq"]))
        parts = self.open_parts.pop(key, [])
        self.open_counts.pop(key, None)
        n = sum(len(p) for p, _ in parts)
        if n != c["flows"]:
            self.problem(
                "trade_chunks",
                f"batch {batch_id}",
                f"{n} trade records in the batch, it cleared {c['flows']}",
            )
            return
        flows = Flows.concat([p for p, _ in parts])
        # Roots are computed for all batches of the step at once (_check_roots).
        self.pending_roots.append((batch_id, np.concatenate([h for _, h in parts]), c["root"]))
        payer, payee, asset, amount, _ = flows.legs(config.house_index)
        if len(amount) != c["obligations"]:
            self.problem("batches", batch_id, "obligation count differs from the trade records")
        result = net_positions(payer, payee, asset, amount, config.participant_count, len(config.assets))
        participant, asset_i, net = result.instructions()
        lines = net_lines(
            self.participant_ids.take(pa.array(participant)), self.asset_array.take(pa.array(asset_i)), net
        )
        if hashlib.sha256(lines).hexdigest() != c["net"]:
            self.problem("batches", batch_id, "netting the obligations again gives other net instructions")
        if totals_text(self.asset_codes, result.gross_per_asset, net, asset_i) != c["totals"]:
            self.problem("batches", batch_id, "net totals differ from the obligations")
        if table_digest(pa.table({"flow_id": flows.ids, "received_ms": flows.time_ms})) != c["detail"]:
            self.problem(
                "trade_chunks", f"batch {batch_id}", "trade records are not the batch's flows in leaf order"
            )

    def _check_roots(self) -> None:
        pending, self.pending_roots = self.pending_roots, []
        if not pending:
            return
        hashes = np.concatenate([h for _, h, _ in pending])
        roots = forest_roots(
            hashes, [len(h) for _, h, _ in pending], backend="hashlib" if len(hashes) < 512 else None
        )
        for (batch_id, _, want), root in zip(pending, roots, strict=True):
            if root.tobytes().hex() != want:
                self.problem(
                    "batches",
                    batch_id,
                    "leaves recomputed from the trade records do not give the committed root",
                )

    # ------------------------------------------------------------------ after the walk
    def _final_state(self) -> None:
        self._final_batches()
        self._final_l1()
        self._journal()
        genesis = self.store.get_meta("chain_genesis_ms")
        if self.first_submission_ms is not None:
            block_ms = int(self.config.chain["block_time_ms"])
            if genesis is None or int(genesis) != (self.first_submission_ms // block_ms) * block_ms:
                self.problem("meta", "chain_genesis_ms", "does not match the first submission in the log")

    def _final_batches(self) -> None:
        stored = {
            str(r["batch_id"]): r
            for r in self.store.rows(
                "SELECT batch_id, pool, seq, opened_at_ms, cleared_at_ms, flows, obligations, gross_usd, net_usd, root, "
                "state, attempts, anchor_tx, anchor_height, anchored_at_ms, anchor_block, final_at_ms, unwound_at_ms, "
                "log_seq, detail, net FROM batches ORDER BY log_seq, batch_id"
            )
        }
        for batch_id, batch in self.batches.items():
            row = stored.pop(batch_id, None)
            if row is None:
                self.problem("batches", batch_id, "missing")
                continue
            c = batch.cleared
            want = {
                k: c[k]
                for k in (
                    "pool",
                    "seq",
                    "opened_at_ms",
                    "cleared_at_ms",
                    "flows",
                    "obligations",
                    "gross_usd",
                    "net_usd",
                )
            }
            want.update({"log_seq": batch.seq, "root": c["root"]})
            want.update({k: batch.state.get(k) for k in BATCH_UPDATABLE})
            have = {k: row[k] for k in want}
            have["root"] = bytes(row["root"]).hex()
            for k in ("gross_usd", "net_usd"):
                have[k] = float(have[k])
            if have != want:
                bad = sorted(k for k in want if have[k] != want[k])
                self.problem("batches", batch_id, f"{', '.join(bad)} differ from the log")
            self._batch_blobs(batch_id, row, c)
        for batch_id in stored:
            self.problem("batches", batch_id, "cleared by no step of the log")

    def _batch_blobs(self, batch_id: str, row: Any, c: dict[str, Any]) -> None:
        """A stored batch's detail and net blobs against the digests its clearing step recorded."""
        try:
            detail = _read(bytes(row["detail"]))
            net = _read(bytes(row["net"]))
            if table_digest(detail) != c["detail"]:
                self.problem("batches", batch_id, "detail (flow ids in leaf order) differs from the log")
            elif not _canonical_blob(detail, bytes(row["detail"])) or not _canonical_blob(
                net, bytes(row["net"])
            ):
                self.problem("batches", batch_id, "detail or net: " + _NOT_CANONICAL)
            lines = net_lines(
                net.column("participant").combine_chunks(),
                net.column("asset").combine_chunks(),
                net.column("net_minor").to_numpy(),
            )
            if hashlib.sha256(lines).hexdigest() != c["net"]:
                self.problem("batches", batch_id, "stored net instructions differ from the log")
        except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
            self.problem("batches", batch_id, f"detail or net blob unusable ({type(exc).__name__})")

    def _final_l1(self) -> None:
        groups = {
            str(r["group_id"]): r
            for r in self.store.rows(
                "SELECT group_id, origin, created_ms, flows, open_flows, log_seq, blob FROM l1_groups"
            )
        }
        for group_id, want in self.l1.items():
            row = groups.pop(group_id, None)
            if row is None:
                self.problem("l1_groups", group_id, "missing")
                continue
            meta = want["meta"] or {}
            try:
                table = _read(bytes(row["blob"]))
                digest = table_digest(table)
                canonical = _canonical_blob(table, bytes(row["blob"]))
            except (pa.ArrowException, OSError, ValueError) as exc:
                self.problem("l1_groups", group_id, f"blob unusable ({type(exc).__name__})")
                continue
            if not canonical:
                self.problem("l1_groups", group_id, _NOT_CANONICAL)
                continue
            if (
                digest != want["digest"]
                or int(row["open_flows"]) != want["open"]
                or row["origin"] != meta.get("origin")
                or int(row["created_ms"]) != meta.get("created_ms")
                or int(row["flows"]) != meta.get("flows")
                or int(row["log_seq"]) != want["log_seq"]
            ):
                self.problem("l1_groups", group_id, "differs from the log")
        for group_id in groups:
            self.problem("l1_groups", group_id, "created by no step of the log")

    def _journal(self) -> None:
        rows = _Rows(
            self.store,
            "ledger_entries",
            "entry_id, kind, at_ms, ref, pending, timeout_at_ms, status, status_at_ms, legs",
            key="entry_id",
            page=512,
        )
        seen = set()
        self.postings: list[tuple[str, np.ndarray, np.ndarray]] = []
        while (row := rows.pop()) is not None:
            entry_id = str(row.entry_id)
            seen.add(entry_id)
            want = self.ledger.get(entry_id)
            if want is None:
                self.problem("ledger_entries", entry_id, "posted by no step of the log")
                continue
            try:
                legs = _read(bytes(row.legs))
                accounts = legs.column("account").to_numpy().astype(np.int64)
                amounts = legs.column("amount_minor").to_numpy().astype(np.int64)
                entry = JournalEntry(
                    entry_id,
                    str(row.kind),
                    int(row.at_ms),
                    accounts,
                    amounts,
                    bool(row.pending),
                    None if row.timeout_at_ms is None else int(row.timeout_at_ms),
                    str(row.ref),
                )
            except Exception as exc:  # any decoding failure of a stored row is a finding, not a crash
                self.problem("ledger_entries", entry_id, f"row unusable ({type(exc).__name__})")
                continue
            if not _canonical_blob(legs, bytes(row.legs), compress=False):
                self.problem("ledger_entries", entry_id, "legs: " + _NOT_CANONICAL)
                continue
            if entry.content_digest().hex() != want["digest"]:
                self.problem("ledger_entries", entry_id, "legs or header differ from the posting in the log")
                continue
            status = want["status"] or ("pending" if entry.pending else "posted")
            status_at = want["status_at_ms"] if want["status"] else entry.at_ms
            if row.status != status or int(row.status_at_ms) != status_at:
                self.problem(
                    "ledger_entries", entry_id, f"status {row.status!r} differs from the log ({status!r})"
                )
                continue
            self.postings.append((status, accounts, amounts))
        for entry_id in self.ledger:
            if entry_id not in seen:
                self.problem("ledger_entries", entry_id, "missing")

    def _keys_and_checkpoints(self) -> None:
        trusted = self._keys()
        cps = self.store.rows(
            "SELECT id, tree_size, tree_root, log_seq, log_head, state_root, chain_tip, at_ms, key_id, "
            "body, signature FROM checkpoints ORDER BY id"
        )
        previous = None
        expected_id = 1
        for cp in cps:
            if int(cp["id"]) != expected_id:
                self.problem(
                    "checkpoints",
                    f"id {expected_id}",
                    f"missing (the next stored checkpoint is id {cp['id']})",
                )
            expected_id = int(cp["id"]) + 1
            self.report.checkpoints += 1
            fields = self._checkpoint(cp, trusted, previous)
            if fields is not None:
                previous = fields
        if self.last_seq and previous is None:
            self.problem(
                "checkpoints",
                "(none)",
                "no signed checkpoint covers the log (a replica made by `clearlane replay` carries none)",
            )
        elif previous is not None and previous["log_seq"] != self.last_seq:
            self.problem(
                "checkpoints",
                f"id {expected_id - 1}",
                f"the latest checkpoint covers the log up to seq "
                f"{previous['log_seq']}, the log ends at {self.last_seq} (opening the store signs the tail)",
            )

    def _keys(self) -> dict[str, Any]:
        """The signing keys, trusted when their chain of signed statements holds."""
        keys = self.store.rows(
            "SELECT key_id, public_key, action, prev_key_id, log_seq, at_ms, statement, sig_new, "
            "sig_prev FROM audit_keys ORDER BY log_seq, at_ms"
        )
        docs = [
            {
                "statement": k["statement"],
                "sig_new": bytes(k["sig_new"]).hex(),
                "sig_prev": None if k["sig_prev"] is None else bytes(k["sig_prev"]).hex(),
            }
            for k in keys
        ]
        rotations = [(k["key_id"], int(k["log_seq"])) for k in keys if k["action"] == "rotate"]
        if rotations != [(r.get("key_id"), r["seq"]) for r in self.rotations]:
            self.problem("audit_keys", "rotations", "do not match the key_rotation entries of the log")
        trusted: dict[str, Any] = {}
        if keys:
            try:
                trusted = trusted_keys(docs, None)
            except ProofError as exc:
                self.problem("audit_keys", "statements", str(exc))
        for k in keys:
            if bytes(k["public_key"]).hex() not in k["statement"]:
                self.problem("audit_keys", k["key_id"], "public_key differs from its signed statement")
        return trusted

    def _checkpoint(
        self, cp: Any, trusted: dict[str, Any], previous: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """One checkpoint's signature, columns and claims; its signed fields, or None if unusable."""
        key = f"id {cp['id']}"
        try:
            fields = verify_checkpoint(
                {"body": cp["body"], "signature": bytes(cp["signature"]).hex()}, trusted
            )
        except ProofError as exc:
            self.problem("checkpoints", key, str(exc))
            return None
        columns = {
            "tree_size": int(cp["tree_size"]),
            "tree_root": bytes(cp["tree_root"]).hex(),
            "log_seq": int(cp["log_seq"]),
            "log_head": bytes(cp["log_head"]).hex(),
            "state_root": cp["state_root"],
            "chain_tip": int(cp["chain_tip"]),
            "at_ms": int(cp["at_ms"]),
            "key_id": cp["key_id"],
        }
        if any(fields[k] != v for k, v in columns.items()) or fields["store"] != self.store_id:
            self.problem("checkpoints", key, "columns differ from the signed body")
            return None
        if fields["tree_root"] != self.roots_at.get(fields["tree_size"], b"").hex():
            self.problem("checkpoints", key, "tree root is not the root of the audit records it covers")
        head = self.heads.get(fields["log_seq"])
        if head is None or head.hex() != fields["log_head"]:
            self.problem("checkpoints", key, "log head is not the chain head at its log seq")
        if self.state_roots.get(fields["log_seq"]) != fields["state_root"]:
            self.problem("checkpoints", key, "state root differs from the transition at its log seq")
        if previous is not None and (
            fields["tree_size"] < previous["tree_size"] or fields["log_seq"] < previous["log_seq"]
        ):
            self.problem("checkpoints", key, "goes back in time from the previous checkpoint")
        return fields

    def _ledger(self) -> None:
        config = self.config
        store = self.store
        seq = store.get_meta("balances_seq")
        if seq is None or seq != str(self.last_seq):
            self.problem(
                "ledger_accounts",
                f"(balances_seq {seq})",
                f"the balance view is not of the log's last step "
                f"{self.last_seq} (stale after a crash: opening the store refreshes it)",
            )
            return
        rows = store.rows(
            "SELECT idx, owner, asset, purpose, lane, floor_minor, posted_minor, pending_debits_minor, "
            "pending_credits_minor FROM ledger_accounts ORDER BY idx"
        )
        n = len(rows)
        posted = np.zeros(n, dtype=np.int64)
        debits = np.zeros(n, dtype=np.int64)
        credits = np.zeros(n, dtype=np.int64)
        for status, accounts, amounts in self.postings:
            if len(accounts) and (accounts.max() >= n or accounts.min() < 0):
                self.problem("ledger_accounts", "idx", "a posting names an account that is not in the table")
                return
            if status == "posted":
                np.add.at(posted, accounts, amounts)
            elif status == "pending":
                np.add.at(debits, accounts, -np.minimum(amounts, 0))
                np.add.at(credits, accounts, np.maximum(amounts, 0))
        from clearlane.core.engine.core import Engine

        ledger = Engine(config).ledger
        for i, row in enumerate(rows):
            key = f"idx {row['idx']}"
            if int(row["idx"]) != i:
                self.problem("ledger_accounts", key, "account index out of sequence")
                return
            if i >= ledger.n_accounts:
                # Escrow makes its accounts on first use (core/escrow/accounts.py): only those.
                stored = AccountKey(row["owner"], row["asset"], Purpose(row["purpose"]), row["lane"])
                if not made_by_escrow(stored, row["floor_minor"], frozenset(config.participant_index())):
                    self.problem("ledger_accounts", key, "no such account in the configuration")
                    return
                k = stored
            else:
                k = ledger.account_key(i)
            if (row["owner"], row["asset"], row["purpose"], row["lane"]) != (
                k.owner,
                k.asset,
                str(k.purpose.value),
                k.lane,
            ) or row["floor_minor"] != (ledger.floor(i) if i < ledger.n_accounts else None):
                self.problem("ledger_accounts", key, "account differs from the one the configuration defines")
            if (
                int(row["posted_minor"]),
                int(row["pending_debits_minor"]),
                int(row["pending_credits_minor"]),
            ) != (int(posted[i]), int(debits[i]), int(credits[i])):
                self.problem("ledger_accounts", key, "balance differs from the sum of its postings")
        if len(rows) < ledger.n_accounts:
            self.problem(
                "ledger_accounts",
                f"idx {len(rows)}",
                f"missing (the configuration defines {ledger.n_accounts} accounts)",
            )


def _read(blob: bytes) -> pa.Table:
    """A stored blob's table, every array fully validated. The IPC reader checks a stream's
    framing, not its arrays: a flipped length or offset can decode into an array that points
    past its buffers, and reading it then fails or reads other memory. Validated, every such
    blob raises ``ArrowInvalid`` here and becomes a finding."""
    table = read_table(blob)
    table.validate(full=True)
    return table


def _canonical_blob(table: pa.Table, blob: bytes, *, compress: bool = True) -> bool:
    """Stored blobs are checked by value (column digests); this also pins their exact bytes, so a
    flipped byte in padding or metadata that decodes to the same values is still found."""
    return write_table(table, compress=compress) == blob


def check_store(
    store: Store, *, limit: int = 50, progress: Callable[[int, int], None] | None = None
) -> CheckReport:
    """Walk ``store``; the report's first problem names the first bad record."""
    return _Checker(store, limit, progress).run()
