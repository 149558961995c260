"""The rows a group of committed steps writes, built as plain tuples for DBAPI ``executemany``.

:meth:`Store.commit_steps` collects every step of a group here (outside the transaction), then
writes one statement per table for the whole group. What is written is exactly what writing
the steps one by one wrote — the same values, the same rows in the same order per table (so
autoincrement ids are the same): inserts first, then every update in log order, so a row that
one step inserts and a later one updates ends the same. The generic SQLAlchemy path cost more
than SQLite itself on the writer thread (a ``text()`` compiled and a parameter dict processed
per statement and row, ~12 statements per step); see docs/PERFORMANCE.md (issue 18). A step's
blobs (two per cleared batch, one per journal entry) are written together, not one stream
writer each, to the same bytes (``cleared_rows``, ``ledger_rows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.engine.core import LogEntry
from clearlane.core.ledger.entries import JournalEntry
from clearlane.core.model.events import BatchCleared, L1GroupUpdated, Step
from clearlane.core.model.states import BatchState
from clearlane.core.proofs.codec import write_batches, write_int64_columns, write_table
from clearlane.core.proofs.hashchain import submission_json
from clearlane.node.auditor import AuditStep, record_kind

Row = tuple[Any, ...]

INPUT_LOG_SQL = "INSERT INTO input_log (seq, at_ms, kind, source_id, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
TRADE_CHUNKS_SQL = "INSERT INTO trade_chunks (log_seq, part, rows, blob) VALUES (?, ?, ?, ?)"
BATCHES_SQL = (
    "INSERT INTO batches (batch_id, pool, seq, opened_at_ms, cleared_at_ms, flows, obligations, "
    "gross_usd, net_usd, root, state, attempts, log_seq, detail, net) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)"
)
BATCH_EVENTS_SQL = "INSERT INTO batch_events (batch_id, event, at_ms, detail, log_seq) VALUES (?, ?, ?, ?, ?)"
OUTBOX_SQL = "INSERT INTO outbox (log_seq, kind, payload) VALUES (?, ?, ?)"
REJECTS_SQL = (
    "INSERT INTO rejects (log_seq, source, row, input_id, code, error, field, reason) "
    "VALUES (?, 'engine', ?, ?, ?, ?, ?, ?)"
)
LEDGER_COLUMNS = (
    "entry_id",
    "kind",
    "at_ms",
    "ref",
    "pending",
    "timeout_at_ms",
    "status",
    "status_at_ms",
    "legs",
)
LEDGER_SQL = f"INSERT INTO ledger_entries ({', '.join(LEDGER_COLUMNS)}) VALUES ({', '.join('?' * 9)})"
LEDGER_STATUS_SQL = "UPDATE ledger_entries SET status = ?, status_at_ms = ? WHERE entry_id = ?"
TRANSITIONS_SQL = "INSERT INTO transition_log (seq, body, prev_hash, hash, state_root) VALUES (?, ?, ?, ?, ?)"
AUDIT_RECORDS_SQL = (
    "INSERT INTO audit_records (idx, kind, ref, log_seq, record, hash) VALUES (?, ?, ?, ?, ?, ?)"
)
AUDIT_KEYS_SQL = (
    "INSERT INTO audit_keys (key_id, public_key, action, prev_key_id, log_seq, at_ms, statement, "
    "sig_new, sig_prev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
CHECKPOINT_SQL = (
    "INSERT INTO checkpoints (id, tree_size, tree_root, log_seq, log_head, state_root, chain_tip, at_ms, "
    "key_id, body, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
L1_UPDATE_SQL = "UPDATE l1_groups SET blob = ?, open_flows = ? WHERE group_id = ?"
L1_INSERT_SQL = (
    "INSERT INTO l1_groups (group_id, origin, created_ms, flows, open_flows, log_seq, blob) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

# The insert statements in the order they are flushed, each with its PostgreSQL COPY
# (table, columns, types) where the rows can be many.
INSERTS: tuple[tuple[str, tuple[str, tuple[str, ...], tuple[str, ...]] | None], ...] = (
    (INPUT_LOG_SQL, None),
    (TRADE_CHUNKS_SQL, None),
    (BATCHES_SQL, None),
    (BATCH_EVENTS_SQL, None),
    (OUTBOX_SQL, ("outbox", ("log_seq", "kind", "payload"), ("int8", "text", "bytea"))),
    (REJECTS_SQL, None),
    (
        LEDGER_SQL,
        (
            "ledger_entries",
            LEDGER_COLUMNS,
            ("text", "text", "int8", "text", "bool", "int8", "text", "int8", "bytea"),
        ),
    ),
    (TRANSITIONS_SQL, None),
    (AUDIT_RECORDS_SQL, None),
    (AUDIT_KEYS_SQL, None),
)


@dataclass
class GroupRows:
    """Every row of a group of steps: inserts per statement, updates as ordered runs."""

    inserts: dict[str, list[Row]] = field(default_factory=lambda: {sql: [] for sql, _ in INSERTS})
    updates: list[tuple[str, list[Row]]] = field(default_factory=list)
    checkpoints: list[Row] = field(default_factory=list)  # without their id (assigned at flush)
    meta: dict[str, str] = field(default_factory=dict)
    state: Row | None = None  # the engine_state row of the last step

    def update(self, sql: str, row: Row) -> None:
        """Queue an update after the ones queued before (a run of one statement is merged)."""
        self.update_many(sql, [row])

    def update_many(self, sql: str, rows: list[Row]) -> None:
        """Queue updates after the ones queued before, in order."""
        if self.updates and self.updates[-1][0] == sql:
            self.updates[-1][1].extend(rows)
        else:
            self.updates.append((sql, list(rows)))

    def add_step(
        self,
        entry: LogEntry,
        payload: bytes,
        source_id: str | None,
        step: Step,
        state_root: str,
        now_ms: int,
        audit: AuditStep,
    ) -> None:
        seq = entry.seq
        self.inserts[INPUT_LOG_SQL].append(
            (seq, entry.at_ms, entry.kind, source_id, payload, audit.input_prev, audit.input_hash)
        )
        self._effects(step, audit)
        self._audit(audit)
        self.state = (seq, state_root, audit.head, now_ms)

    def _effects(self, step: Step, audit: AuditStep) -> None:
        """Every row the step's events and records stand for (what the auditor built for the
        transition body — the submissions' JSON, the batch events and updates — reused)."""
        seq, inserts = step.seq, self.inserts
        inserts[TRADE_CHUNKS_SQL].extend(
            (seq, part, table.num_rows, write_table(table))
            for part, table in enumerate(step.tables())
            if table.num_rows
        )
        inserts[BATCHES_SQL].extend(cleared_rows(step.cleared(), seq))
        updates = audit.batch_updates
        self._batch_updates(updates if updates is not None else step.changes())
        if audit.batch_events is not None:
            inserts[BATCH_EVENTS_SQL].extend((b, e, a, d, seq) for b, e, a, d in audit.batch_events)
        else:
            inserts[BATCH_EVENTS_SQL].extend((*row, seq) for row in step.event_rows())
        for l1 in step.l1_updates():
            self._l1_group(seq, l1)
        # ~500k rows a day (one L1 transaction per gross flow): the canonical JSON built directly,
        # by the auditor if it did (``submissions``: what it put in the transition body).
        submissions = audit.submissions_json
        if len(submissions) != len(step.submissions):
            submissions = [submission_json(tx) for tx in step.submissions]
        inserts[OUTBOX_SQL].extend(
            (seq, tx.kind, payload) for tx, payload in zip(step.submissions, submissions, strict=True)
        )
        for reject in step.rejects():
            r = reject.to_dict()
            inserts[REJECTS_SQL].append(
                (seq, r["row"], r["id"], r["code"], r["error"], r["field"], r["reason"])
            )
        changes = step.ledger
        inserts[LEDGER_SQL].extend(ledger_rows(changes.new_entries))
        for c in changes.status_changes:
            self.update(LEDGER_STATUS_SQL, (str(c.status.value), c.at_ms, c.entry_id))

    def _batch_updates(self, changes: dict[str, dict[str, Any]]) -> None:
        """One UPDATE per batch the step changed (``batch_changes``), grouped by the columns it
        sets, in order of each group's first batch (a batch is changed by one row of one group)."""
        updates: dict[tuple[str, ...], list[Row]] = {}
        for batch_id, columns_set in changes.items():
            columns = tuple(columns_set)
            updates.setdefault(columns, []).append((*(columns_set[k] for k in columns), batch_id))
        for columns, rows in updates.items():
            sets = ", ".join(f"{k} = ?" for k in columns)
            self.update_many(f"UPDATE batches SET {sets} WHERE batch_id = ?", rows)

    def _l1_group(self, seq: int, update: L1GroupUpdated) -> None:
        table, opened = update.table, update.opened
        # NumPy, not pc.less(column, 0): pyarrow.compute's wrapper retries an optional import on
        # every call given a Python scalar (~0.25 ms; a chain step updates dozens of groups).
        open_flows = int(np.count_nonzero(table.column("final_ms").to_numpy() < 0))
        blob = write_table(table)
        if opened is None:
            self.update(L1_UPDATE_SQL, (blob, open_flows, update.group_id))
        else:
            # An insert keeps its place among the group's l1 statements (a later step may update it).
            self.update(
                L1_INSERT_SQL,
                (update.group_id, opened.origin, opened.created_ms, opened.flows, open_flows, seq, blob),
            )

    def _audit(self, step: AuditStep) -> None:
        inserts = self.inserts
        inserts[TRANSITIONS_SQL].append((step.seq, step.body, step.input_hash, step.head, step.state_root))
        for index, text, digest in step.records:
            kind, ref = record_kind(text)
            inserts[AUDIT_RECORDS_SQL].append((index, kind, ref, step.seq, text, digest))
        key = step.key_record
        if key is not None:
            inserts[AUDIT_KEYS_SQL].append(
                (
                    key.key_id,
                    key.public_key,
                    key.action,
                    key.prev_key_id,
                    key.log_seq,
                    key.at_ms,
                    key.statement,
                    key.sig_new,
                    key.sig_prev,
                )
            )
        cp = step.checkpoint
        if cp is not None:
            self.checkpoints.append(
                (
                    cp.tree_size,
                    cp.tree_root,
                    cp.log_seq,
                    cp.log_head,
                    cp.state_root,
                    cp.chain_tip,
                    cp.at_ms,
                    cp.key_id,
                    cp.body,
                    cp.signature,
                )
            )


def ledger_rows(entries: Sequence[JournalEntry]) -> list[Row]:
    """The ``ledger_entries`` rows of new journal entries; the legs blobs (one uncompressed IPC
    stream per entry, of its ``account`` and ``amount_minor`` columns) written from the step's
    legs concatenated (``write_int64_columns``: a step of the demo's day posts ~50,000 entries;
    issue 18). Same bytes as :func:`write_table` of each entry's own table (test)."""
    if not entries:
        return []
    sizes = np.fromiter((e.accounts.shape[0] for e in entries), dtype=np.int64, count=len(entries))
    blobs = write_int64_columns(
        _LEGS,
        [np.concatenate([e.accounts for e in entries]), np.concatenate([e.amounts_minor for e in entries])],
        np.concatenate([[0], np.cumsum(sizes)]).tolist(),
    )
    return [
        (
            e.entry_id,
            e.kind,
            e.at_ms,
            e.ref,
            bool(e.pending),
            e.timeout_at_ms,
            "pending" if e.pending else "posted",
            e.at_ms,
            blob,
        )
        for e, blob in zip(entries, blobs, strict=True)
    ]


_LEGS = ("account", "amount_minor")


def cleared_rows(batches: list[BatchCleared], seq: int) -> list[Row]:
    """:func:`cleared_row` of each batch, the blobs of all of them written through one stream
    writer per table kind instead of two stream writers per batch (issue 18)."""
    schemas = _cleared_schemas(batches)
    if schemas is None:
        return [cleared_row(b, seq) for b in batches]  # as it always did (or raises as it did)
    detail, net = schemas
    # The int64 columns as slices of one array each (at offset 1 or more, which the writer
    # truncates to exactly the slice's values: the bytes of the batch's own NumPy array); the
    # string columns are the batch's own arrays (their bytes depend on their layout).
    times = _int64_parent([b.received_ms for b in batches])
    amounts = _int64_parent([b.net_minor for b in batches])
    detail_batches, net_batches, t, a = [], [], 1, 1
    for b in batches:
        n, m = len(b.received_ms), len(b.net_minor)
        detail_batches.append(pa.RecordBatch.from_arrays([b.flow_ids, times.slice(t, n)], schema=detail))
        net_batches.append(
            pa.RecordBatch.from_arrays([b.net_participant, b.net_asset, amounts.slice(a, m)], schema=net)
        )
        t, a = t + n, a + m
    details, nets = write_batches(detail, detail_batches), write_batches(net, net_batches)
    return [_batch_row(b, seq, d, n) for b, d, n in zip(batches, details, nets, strict=True)]


def _int64_parent(columns: list[npt.NDArray[np.int64]]) -> pa.Array:
    """The columns concatenated after one leading zero (so that no slice starts at offset 0)."""
    return pa.array(np.concatenate([np.zeros(1, dtype=np.int64), *columns]))


def _cleared_schemas(batches: list[BatchCleared]) -> tuple[pa.Schema, pa.Schema] | None:
    """The detail and net schemas ``pa.table`` gives every batch, or None when the batches do not
    all give the same ones from Arrow string arrays and int64 NumPy vectors of matching lengths."""
    if not batches:
        return None
    first = batches[0]
    ids, participant, asset = first.flow_ids.type, first.net_participant.type, first.net_asset.type
    for b in batches:
        if not (
            isinstance(b.flow_ids, pa.Array)
            and isinstance(b.net_participant, pa.Array)
            and isinstance(b.net_asset, pa.Array)
            and isinstance(b.received_ms, np.ndarray)
            and isinstance(b.net_minor, np.ndarray)
            and b.received_ms.dtype == np.int64
            and b.net_minor.dtype == np.int64
            and b.received_ms.ndim == b.net_minor.ndim == 1
            and b.flow_ids.type == ids
            and b.net_participant.type == participant
            and b.net_asset.type == asset
            and len(b.flow_ids) == len(b.received_ms)
            and len(b.net_participant) == len(b.net_asset) == len(b.net_minor)
        ):
            return None
    detail = pa.schema([("flow_id", ids), ("received_ms", pa.int64())])
    net = pa.schema([("participant", participant), ("asset", asset), ("net_minor", pa.int64())])
    return detail, net


def cleared_row(b: BatchCleared, seq: int) -> Row:
    """The ``batches`` row of a cleared batch (leaves are not stored: they are recomputed from
    the trade records for proofs)."""
    detail = pa.table({"flow_id": b.flow_ids, "received_ms": b.received_ms})
    net = pa.table({"participant": b.net_participant, "asset": b.net_asset, "net_minor": b.net_minor})
    return _batch_row(b, seq, write_table(detail), write_table(net))


def _batch_row(b: BatchCleared, seq: int, detail_blob: bytes, net_blob: bytes) -> Row:
    """The ``batches`` row of cleared batch ``b`` with its detail and net blobs (one shape for
    the bulk path and :func:`cleared_row`)."""
    return (
        b.batch_id,
        b.pool,
        b.seq,
        b.opened_at_ms,
        b.cleared_at_ms,
        b.flows,
        b.obligations,
        b.gross_usd,
        b.net_usd,
        b.root,
        BatchState.CLEARED.label,
        seq,
        detail_blob,
        net_blob,
    )
