"""The reads and writes of the audit tables (migration 0002; their Core tables are in schema.py).

``transition_log`` holds the transition entry of every step (its ``prev_hash`` is the step's
input-entry hash in ``input_log``), ``audit_records`` the leaves of the checkpoint tree,
``checkpoints`` the signed checkpoints and ``audit_keys`` the public half of every signing key
with its signed statement. Written in the step's own transaction by :meth:`Store.commit_step`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import Engine as SqlEngine

from clearlane.adapters.sql.schema import audit_keys, audit_records, checkpoints, transition_log
from clearlane.node.auditor import AuditStep, Checkpoint, KeyRecord, record_kind


def write_step(conn: Connection, step: AuditStep) -> None:
    """The audit rows of one step (called inside the step's transaction)."""
    conn.execute(
        transition_log.insert(),
        {
            "seq": step.seq,
            "body": step.body,
            "prev_hash": step.input_hash,
            "hash": step.head,
            "state_root": step.state_root,
        },
    )
    if step.records:
        rows = []
        for index, text, digest in step.records:
            kind, ref = record_kind(text)
            rows.append(
                {"idx": index, "kind": kind, "ref": ref, "log_seq": step.seq, "record": text, "hash": digest}
            )
        conn.execute(audit_records.insert(), rows)
    if step.key_record is not None:
        write_key(conn, step.key_record)
    if step.checkpoint is not None:
        write_checkpoint(conn, step.checkpoint)


def write_key(conn: Connection, key: KeyRecord) -> None:
    conn.execute(
        audit_keys.insert(),
        {
            "key_id": key.key_id,
            "public_key": key.public_key,
            "action": key.action,
            "prev_key_id": key.prev_key_id,
            "log_seq": key.log_seq,
            "at_ms": key.at_ms,
            "statement": key.statement,
            "sig_new": key.sig_new,
            "sig_prev": key.sig_prev,
        },
    )


def write_checkpoint(conn: Connection, cp: Checkpoint) -> None:
    next_id = conn.execute(sa.select(sa.func.coalesce(sa.func.max(checkpoints.c.id), 0))).scalar_one() + 1
    conn.execute(
        checkpoints.insert(),
        {
            "id": next_id,
            "tree_size": cp.tree_size,
            "tree_root": cp.tree_root,
            "log_seq": cp.log_seq,
            "log_head": cp.log_head,
            "state_root": cp.state_root,
            "chain_tip": cp.chain_tip,
            "at_ms": cp.at_ms,
            "key_id": cp.key_id,
            "body": cp.body,
            "signature": cp.signature,
        },
    )


def key_from_row(row: Any) -> KeyRecord:
    return KeyRecord(
        str(row.key_id),
        bytes(row.public_key),
        str(row.action),
        row.prev_key_id,
        int(row.log_seq),
        int(row.at_ms),
        str(row.statement),
        bytes(row.sig_new),
        None if row.sig_prev is None else bytes(row.sig_prev),
    )


def read_keys(engine: SqlEngine) -> list[KeyRecord]:
    """Every key statement, oldest first (init, then rotations in log order)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_keys).order_by(audit_keys.c.log_seq, audit_keys.c.at_ms)).all()
    return [key_from_row(r) for r in rows]


def checkpoint_from_row(row: Any) -> Checkpoint:
    return Checkpoint(
        int(row.tree_size),
        bytes(row.tree_root),
        int(row.log_seq),
        bytes(row.log_head),
        str(row.state_root),
        int(row.chain_tip),
        int(row.at_ms),
        str(row.key_id),
        str(row.body),
        bytes(row.signature),
    )


def read_checkpoints(engine: SqlEngine) -> list[tuple[int, Checkpoint]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(checkpoints).order_by(checkpoints.c.id)).all()
    return [(int(r.id), checkpoint_from_row(r)) for r in rows]


def latest_checkpoint(engine: SqlEngine) -> tuple[int, Checkpoint] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(checkpoints).order_by(checkpoints.c.id.desc()).limit(1)).first()
    return None if row is None else (int(row.id), checkpoint_from_row(row))


def read_record_hashes(engine: SqlEngine) -> list[bytes]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_records.c.hash).order_by(audit_records.c.idx)).all()
    return [bytes(r[0]) for r in rows]


def records_for(engine: SqlEngine, ref: str) -> list[tuple[int, str]]:
    """(index, record text) of the audit records about one batch or key, in tree order."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_records.c.idx, audit_records.c.record)
            .where(audit_records.c.ref == ref)
            .order_by(audit_records.c.idx)
        ).all()
    return [(int(i), str(t)) for i, t in rows]


def iter_transitions(
    engine: SqlEngine, after_seq: int = 0, upto_seq: int | None = None, page: int = 256
) -> Iterator[Any]:
    """Transition rows in seq order, paged."""
    last = after_seq
    while True:
        query = (
            sa.select(transition_log)
            .where(transition_log.c.seq > last)
            .order_by(transition_log.c.seq)
            .limit(page)
        )
        if upto_seq is not None:
            query = query.where(transition_log.c.seq <= upto_seq)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        yield from rows
        last = int(rows[-1].seq)
