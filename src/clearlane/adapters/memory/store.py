"""The in-memory store (see the package docstring).

Atomicity: a commit checks everything that can refuse it (sequence order, a source id logged
twice, a missing audit step) before it changes anything, then applies the whole step under one
lock; so a refused commit leaves the store as it was, like a rolled-back transaction. Blobs
(batch detail and net, L1 groups) are kept in the SQL store's Arrow IPC encoding so that the
rows a read returns have the same shape on every store.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.engine.core import LogEntry
from clearlane.core.model import ids as model_ids
from clearlane.core.model.chain import TxSubmission
from clearlane.core.model.events import BATCH_UPDATABLE, L1GroupUpdated, Step
from clearlane.core.model.states import BatchState
from clearlane.core.proofs.codec import write_table
from clearlane.node.auditor import AuditStep, Checkpoint, KeyRecord, record_kind
from clearlane.node.ports import StepToCommit, StoredEntry, StoredTransition

_BATCH_FIXED = (
    "batch_id",
    "pool",
    "seq",
    "opened_at_ms",
    "cleared_at_ms",
    "flows",
    "obligations",
    "gross_usd",
    "net_usd",
    "root",
)


class MemoryStoreError(RuntimeError):
    """A commit the store refuses (out of order, a source id logged twice); nothing changed."""


@dataclass
class _Output:
    """The committed output of every step, in the SQL store's row shapes."""

    trade_chunks: dict[tuple[int, int], pa.Table] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_events: list[dict[str, Any]] = field(default_factory=list)
    l1_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[tuple[int, TxSubmission]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    ledger_entries: dict[str, dict[str, Any]] = field(default_factory=dict)


def write_output(out: _Output, seq: int, step: Step) -> None:
    """Record one step's output. The ONE place that reads the engine's step output type."""
    for part, table in enumerate(step.tables()):
        if table.num_rows:
            out.trade_chunks[(seq, part)] = table
    for b in step.cleared():
        detail = pa.table({"flow_id": b.flow_ids, "received_ms": b.received_ms})
        net = pa.table({"participant": b.net_participant, "asset": b.net_asset, "net_minor": b.net_minor})
        row = {k: getattr(b, k) for k in _BATCH_FIXED} | dict.fromkeys(BATCH_UPDATABLE)
        row |= {"state": BatchState.CLEARED.label, "attempts": 1, "log_seq": seq}
        out.batches[b.batch_id] = row | {"detail": write_table(detail), "net": write_table(net)}
    for batch_id, changes in step.changes().items():
        if batch_id in out.batches:
            out.batches[batch_id].update({k: v for k, v in changes.items() if k in BATCH_UPDATABLE})
    for batch_id, event, at_ms, detail_text in step.event_rows():
        out.batch_events.append(
            {"batch_id": batch_id, "event": event, "at_ms": at_ms, "detail": detail_text, "log_seq": seq}
        )
    for update in step.l1_updates():
        _write_l1_group(out, seq, update)
    out.outbox.extend((seq, tx) for tx in step.submissions)
    for r in step.rejects():
        fields = r.to_dict()
        out.rejects.append(
            {"log_seq": seq, "source": "engine", "row": fields["row"], "input_id": fields["id"]}
            | {k: fields[k] for k in ("code", "error", "field", "reason")}
        )
    _write_ledger(out, step)


def _write_l1_group(out: _Output, seq: int, update: L1GroupUpdated) -> None:
    opened = update.opened
    if opened is not None:
        out.l1_groups[update.group_id] = {
            "group_id": update.group_id,
            "log_seq": seq,
            "origin": opened.origin,
            "created_ms": opened.created_ms,
            "flows": opened.flows,
        }
    group = out.l1_groups.get(update.group_id)
    if group is not None:  # an update of an unknown group changes nothing, as in SQL
        group |= {"open_flows": update.open_flows(), "blob": write_table(update.table)}


def _write_ledger(out: _Output, step: Step) -> None:
    for e in step.ledger.new_entries:
        status = "pending" if e.pending else "posted"
        out.ledger_entries[e.entry_id] = {
            "kind": e.kind,
            "ref": e.ref,
            "status": status,
            "status_at_ms": e.at_ms,
        }
    for c in step.ledger.status_changes:
        out.ledger_entries[c.entry_id] |= {"status": str(c.status.value), "status_at_ms": c.at_ms}


@dataclass
class _Audit:
    transitions: list[StoredTransition] = field(default_factory=list)
    records: list[tuple[int, str, str, int, str, bytes]] = field(
        default_factory=list
    )  # idx kind ref seq text hash
    keys: list[KeyRecord] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    def add_step(self, step: AuditStep) -> None:
        self.transitions.append(
            StoredTransition(step.seq, step.body, step.input_hash, step.head, step.state_root)
        )
        for index, text, digest in step.records:
            kind, ref = record_kind(text)
            self.records.append((index, kind, ref, step.seq, text, digest))
        if step.key_record is not None:
            self.keys.append(step.key_record)
        if step.checkpoint is not None:
            self.checkpoints.append(step.checkpoint)


class MemoryStore:
    """The node's ``Store`` port in memory (see the module docstring). Thread-safe: the pipelined
    writer commits from its own thread while readers hold the runtime lock."""

    dialect = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._meta: dict[str, str] = {}
        self._log: list[StoredEntry] = []
        self._seqs: list[int] = []  # the log's seqs, for bisect
        self._sources: dict[str, int] = {}
        self._state: dict[str, Any] | None = None
        self._out = _Output()
        self._audit = _Audit()
        self._balances: list[dict[str, Any]] = []
        self._reject_ids = 0

    @classmethod
    def open(cls) -> MemoryStore:
        return cls()

    def close(self) -> None:
        """Nothing to release: the contents stay readable until the object is dropped."""

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._meta[key] = value

    # ------------------------------------------------------------------ log
    def engine_state(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self._state is None else dict(self._state)

    def log_head(self) -> bytes | None:
        state = self.engine_state()
        return None if state is None else bytes(state["log_head"])

    def has_source(self, source_id: str) -> bool:
        with self._lock:
            return source_id in self._sources

    def source_ids_between(self, lo: str, hi: str) -> set[str]:
        with self._lock:
            return {s for s in self._sources if lo <= s < hi}

    def iter_log(self, after_seq: int = 0, upto_seq: int | None = None) -> Iterator[StoredEntry]:
        with self._lock:
            start = bisect.bisect_right(self._seqs, after_seq)
            stop = len(self._seqs) if upto_seq is None else bisect.bisect_right(self._seqs, upto_seq)
            entries = self._log[start:stop]
        yield from entries

    def log_payload(self, seq: int) -> tuple[str, bytes] | None:
        with self._lock:
            at = bisect.bisect_left(self._seqs, seq)
            if at == len(self._seqs) or self._seqs[at] != seq:
                return None
            stored = self._log[at]
        return stored.entry.kind, stored.payload

    # ------------------------------------------------------------------ commit
    def commit_step(
        self,
        entry: LogEntry,
        payload: bytes,
        source_id: str | None,
        step: Step,
        state_root: str,
        now_ms: int,
        audit: AuditStep,
    ) -> bytes:
        """Append ``entry`` and commit its output, all or nothing. Returns the new chain head."""
        with self._lock:
            self._check([(entry.seq, source_id, audit)])
            self._apply(entry, payload, source_id, step, state_root, now_ms, audit)
        return audit.head

    def commit_steps(self, steps: Sequence[StepToCommit]) -> bytes | None:
        """Commit several applied steps in log order, all or none. Returns the chain head."""
        with self._lock:
            self._check([(s.entry.seq, s.source_id, s.audit) for s in steps])
            head = None
            for s in steps:
                assert s.audit is not None  # checked above
                self._apply(s.entry, s.payload, s.source_id, s.step, s.state_root, s.now_ms, s.audit)
                self._meta.update(s.meta)
                head = s.audit.head
        return head

    def _check(self, steps: list[tuple[int, str | None, AuditStep | None]]) -> None:
        last = self._seqs[-1] if self._seqs else 0
        sources: set[str] = set()
        for seq, source_id, audit in steps:
            if audit is None:
                raise MemoryStoreError(f"step {seq} reached the store without its audit step")
            if seq <= last:
                raise MemoryStoreError(f"step {seq}: the log is already at {last}")
            if source_id is not None and (source_id in self._sources or source_id in sources):
                raise MemoryStoreError(f"step {seq}: source id {source_id!r} is already logged")
            if source_id is not None:
                sources.add(source_id)
            last = seq

    def _apply(
        self,
        entry: LogEntry,
        payload: bytes,
        source_id: str | None,
        step: Step,
        state_root: str,
        now_ms: int,
        audit: AuditStep,
    ) -> None:
        self._log.append(StoredEntry(entry, source_id, bytes(payload), audit.input_prev, audit.input_hash))
        self._seqs.append(entry.seq)
        if source_id is not None:
            self._sources[source_id] = entry.seq
        write_output(self._out, entry.seq, step)
        for reject in self._out.rejects[len(self._out.rejects) - len(step.rejects()) :]:
            self._reject_ids += 1
            reject["id"] = self._reject_ids
        self._audit.add_step(audit)
        self._state = {
            "applied_seq": entry.seq,
            "state_root": state_root,
            "log_head": audit.head,
            "now_ms": now_ms,
        }

    def write_balances(self, ledger: Any, seq: int | None = None) -> None:
        """Materialise the ledger's balances (the SQL store's ``ledger_accounts`` rows)."""
        posted, pending_debits, pending_credits = ledger.balances()
        accounts = ledger.accounts_table()  # column-wise, as the SQL store (issue 18)
        columns: tuple[str, ...] = ("idx", "owner", "asset", "purpose", "lane", "floor_minor")
        columns += ("posted_minor", "pending_debits_minor", "pending_credits_minor")
        floors = [
            int(f) if has else None
            for f, has in zip(accounts.floor_minor.tolist(), accounts.has_floor.tolist(), strict=True)
        ]
        values: tuple[list[Any], ...] = (accounts.owner, accounts.asset, accounts.purpose, accounts.lane)
        values += (floors, posted.tolist(), pending_debits.tolist(), pending_credits.tolist())
        rows = [dict(zip(columns, row, strict=True)) for row in zip(range(len(floors)), *values, strict=True)]
        with self._lock:
            if seq is not None:
                self._meta["balances_seq"] = str(seq)
            self._balances = rows

    def replace_rejects(self, source: str, rejects: list[Any]) -> None:
        """Record edge rejects of one input idempotently: a retry replaces them."""
        with self._lock:
            kept = [r for r in self._out.rejects if r["log_seq"] is not None or r["source"] != source]
            for r in rejects:
                fields = r.to_dict()
                self._reject_ids += 1
                kept.append(
                    {"id": self._reject_ids, "log_seq": None, "source": source, "row": fields["row"]}
                    | {"input_id": fields["id"]}
                    | {k: fields[k] for k in ("code", "error", "field", "reason")}
                )
            self._out.rejects = kept

    # ------------------------------------------------------------------ reads
    def outbox_after(self, seq: int) -> list[TxSubmission]:
        with self._lock:
            return [tx for log_seq, tx in self._out.outbox if log_seq > seq]

    def find_trade(self, flow_id: str) -> dict[str, Any] | None:
        """The stored record of one trade or payment (newest chunk first, as the SQL store)."""
        with self._lock:
            keys = sorted(self._out.trade_chunks, key=lambda k: (-k[0], k[1]))
            chunks = [(k[0], self._out.trade_chunks[k]) for k in keys]
        for log_seq, table in chunks:
            hit = table.filter(pc.equal(table.column("flow_id"), flow_id))
            if hit.num_rows:
                record: dict[str, Any] = hit.slice(0, 1).to_pylist()[0]
                record["log_seq"] = log_seq
                return record
        return None

    def trade_chunk(self, log_seq: int, part: int) -> pa.Table | None:
        with self._lock:
            return self._out.trade_chunks.get((log_seq, part))

    def balances(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._balances]

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._out.batches.get(batch_id)
            if row is None:
                return None
            events = [e for e in self._out.batch_events if e["batch_id"] == batch_id]
        out = dict(row)
        out["events"] = [
            {"event": e["event"], "at_ms": int(e["at_ms"]), "detail": e["detail"]} for e in events
        ]
        return out

    def l1_group(self, group_id: str) -> dict[str, Any] | None:
        with self._lock:
            group = self._out.l1_groups.get(group_id)
            return None if group is None else dict(group)

    def l1_group_for_batch(self, batch_id: str) -> dict[str, Any] | None:
        origin = model_ids.unwound_origin(batch_id)
        with self._lock:
            found = next((g for g in self._out.l1_groups.values() if g["origin"] == origin), None)
            return None if found is None else dict(found)

    def reject_reason(self, input_id: str, code: int) -> dict[str, Any] | None:
        with self._lock:
            for r in reversed(self._out.rejects):
                if r["input_id"] == input_id and r["code"] == code:
                    return {"field": r["field"], "reason": r["reason"]}
        return None

    def rejects_after(self, after_id: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = sorted((r for r in self._out.rejects if r["id"] > after_id), key=lambda r: r["id"])
            sources = {s.entry.seq: s.source_id for s in self._log}
            return [r | {"source_id": sources.get(r["log_seq"])} for r in rows]

    # ------------------------------------------------------------------ audit trail
    def audit_keys(self) -> list[KeyRecord]:
        with self._lock:
            return sorted(self._audit.keys, key=lambda k: (k.log_seq, k.at_ms))

    def add_audit_key(self, record: KeyRecord) -> None:
        with self._lock:
            self._audit.keys.append(record)

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._lock:
            self._audit.checkpoints.append(checkpoint)

    def latest_checkpoint(self) -> Checkpoint | None:
        with self._lock:
            return self._audit.checkpoints[-1] if self._audit.checkpoints else None

    def audit_record_hashes(self) -> list[bytes]:
        with self._lock:
            return [r[5] for r in sorted(self._audit.records)]

    def iter_transitions(self, after_seq: int = 0, upto_seq: int | None = None) -> Iterator[StoredTransition]:
        with self._lock:
            rows = [
                t
                for t in self._audit.transitions
                if t.seq > after_seq and (upto_seq is None or t.seq <= upto_seq)
            ]
        yield from rows
