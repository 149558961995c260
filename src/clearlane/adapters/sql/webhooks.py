"""Webhook tables (``webhook_endpoints``, ``webhook_deliveries``, ``webhook_attempts``) and the
delivery high-water mark in ``meta``: the reads and writes of
:mod:`clearlane.adapters.http.webhooks`, which owns signing, retry policy and HTTP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from clearlane.adapters.sql.schema import meta, webhook_attempts, webhook_deliveries, webhook_endpoints
from clearlane.adapters.sql.store import Store

_DUE = (
    webhook_deliveries.c.id,
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.event_id,
    webhook_deliveries.c.event_type,
    webhook_deliveries.c.payload,
    webhook_deliveries.c.attempts,
    webhook_deliveries.c.created_ms,
)


def _meta_value(conn: Connection, key: str) -> str | None:
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
    return None if value is None else str(value)


def _set_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute(sa.delete(meta).where(meta.c.key == key))
    conn.execute(sa.insert(meta).values(key=key, value=value))


def load_endpoints(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(webhook_endpoints)).mappings()]


def insert_endpoint(store: Store, endpoint: Mapping[str, Any], *, mark_key: str, mark_start: int) -> None:
    """Register an endpoint. The first endpoint also starts the high-water mark ``mark_key`` at
    ``mark_start``, in the same transaction, so a restart does not re-derive the whole history."""
    with store.engine.begin() as conn:
        if _meta_value(conn, mark_key) is None:
            conn.execute(sa.insert(meta).values(key=mark_key, value=str(mark_start)))
        conn.execute(sa.insert(webhook_endpoints).values(**endpoint))


def deactivate_endpoint(store: Store, endpoint_id: str) -> bool:
    """False if there is no such active endpoint."""
    stmt = (
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.endpoint_id == endpoint_id, webhook_endpoints.c.active)
        .values(active=False)
    )
    with store.engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount)


def _insert_ignore(dialect: str) -> Any:
    """INSERT that skips rows whose (endpoint, event) is already there (portable upsert)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(webhook_deliveries).on_conflict_do_nothing(
            index_elements=["endpoint_id", "event_id"]
        )
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(webhook_deliveries).on_conflict_do_nothing(
        index_elements=["endpoint_id", "event_id"]
    )


def enqueue_deliveries(
    store: Store, rows: Sequence[Mapping[str, Any]], *, mark_key: str, upto_seq: int
) -> None:
    """Write deliveries (a duplicate (endpoint, event) is skipped) and raise the high-water mark
    to ``upto_seq``, atomically: a crash before this commit re-derives the same rows."""
    with store.engine.begin() as conn:
        if rows:
            conn.execute(_insert_ignore(conn.dialect.name), list(rows))
        current = _meta_value(conn, mark_key)
        if current is None or int(current) < upto_seq:
            _set_meta(conn, mark_key, str(upto_seq))


def due_deliveries(store: Store, now_ms: int, limit: int = 64) -> list[dict[str, Any]]:
    """Pending deliveries whose next attempt is due, soonest first."""
    d = webhook_deliveries.c
    stmt = (
        sa.select(*_DUE)
        .where(d.status == "pending", d.next_attempt_ms <= now_ms)
        .order_by(d.next_attempt_ms, d.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def record_attempt(
    store: Store,
    delivery_id: int,
    *,
    status: str,
    code: int | None,
    error: str | None,
    duration_ms: float,
    at_ms: int,
    next_ms: int,
) -> None:
    """One attempt's outcome: the delivery's new status and the attempt's log row, together."""
    d = webhook_deliveries.c
    update = (
        sa.update(webhook_deliveries)
        .where(d.id == delivery_id)
        .values(
            status=status,
            attempts=d.attempts + 1,
            last_status=code,
            last_error=error,
            next_attempt_ms=next_ms,
            delivered_ms=at_ms if status == "delivered" else None,
        )
    )
    attempt = sa.insert(webhook_attempts).values(
        delivery_id=delivery_id, at_ms=at_ms, status=code, error=error, duration_ms=duration_ms
    )
    with store.engine.begin() as conn:
        conn.execute(update)
        conn.execute(attempt)


def pending_count(store: Store) -> int:
    stmt = (
        sa.select(sa.func.count())
        .select_from(webhook_deliveries)
        .where(webhook_deliveries.c.status == "pending")
    )
    with store.engine.connect() as conn:
        return int(conn.execute(stmt).scalar() or 0)


def list_deliveries(
    store: Store, endpoint_id: str, *, limit: int, before_id: int | None, status: str | None
) -> list[dict[str, Any]]:
    """One endpoint's deliveries, newest first, optionally before an id and of one status."""
    d = webhook_deliveries.c
    stmt = sa.select(webhook_deliveries).where(d.endpoint_id == endpoint_id)
    if before_id is not None:
        stmt = stmt.where(d.id < before_id)
    if status is not None:
        stmt = stmt.where(d.status == status)
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt.order_by(d.id.desc()).limit(limit)).mappings()]


# ---------------------------------------------------------------------- management (issue 17)
def update_endpoint(store: Store, endpoint_id: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """Change an endpoint's columns (url, events, description, active, secrets); its row after,
    or None if there is no such endpoint."""
    e = webhook_endpoints.c
    with store.engine.begin() as conn:
        if values:
            conn.execute(sa.update(webhook_endpoints).where(e.endpoint_id == endpoint_id).values(**values))
        row = (
            conn.execute(sa.select(webhook_endpoints).where(e.endpoint_id == endpoint_id)).mappings().first()
        )
    return None if row is None else dict(row)


def get_delivery(store: Store, endpoint_id: str, delivery_id: int) -> dict[str, Any] | None:
    d = webhook_deliveries.c
    stmt = sa.select(webhook_deliveries).where(d.id == delivery_id, d.endpoint_id == endpoint_id)
    with store.engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    return None if row is None else dict(row)


def redeliver(store: Store, endpoint_id: str, delivery_id: int, now_ms: int) -> bool:
    """Make a past delivery pending again, due now, with a fresh retry schedule (its attempts
    so far stay in ``webhook_attempts``). False if there is no such delivery."""
    d = webhook_deliveries.c
    stmt = (
        sa.update(webhook_deliveries)
        .where(d.id == delivery_id, d.endpoint_id == endpoint_id)
        .values(status="pending", attempts=0, next_attempt_ms=now_ms, delivered_ms=None)
    )
    with store.engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount)


def insert_delivery(store: Store, row: Mapping[str, Any]) -> int:
    """One delivery outside the event flow (a test ping); its id."""
    with store.engine.begin() as conn:
        result = conn.execute(sa.insert(webhook_deliveries).values(**row))
        key = result.inserted_primary_key
        return int(key[0]) if key is not None else 0
