"""API keys in the ``api_keys`` table: the reads and writes :mod:`clearlane.adapters.http.auth`
needs (the HTTP side owns roles, secrets and the verification cache; this module only stores)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from clearlane.adapters.sql.schema import api_keys
from clearlane.adapters.sql.store import Store

_LISTED = (
    api_keys.c.key_id,
    api_keys.c.role,
    api_keys.c.participant,
    api_keys.c.label,
    api_keys.c.created_ms,
    api_keys.c.revoked_ms,
)


def insert_key(
    store: Store,
    *,
    key_id: str,
    secret_sha256: bytes,
    role: str,
    participant: str | None,
    label: str,
    created_ms: int,
) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(api_keys).values(
                key_id=key_id,
                secret_sha256=secret_sha256,
                role=role,
                participant=participant,
                label=label,
                created_ms=created_ms,
            )
        )


def revoke_key(store: Store, key_id: str, at_ms: int) -> bool:
    """Mark an active key revoked; False if there is no such active key."""
    stmt = (
        sa.update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_ms.is_(None))
        .values(revoked_ms=at_ms)
    )
    with store.engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount)


def list_keys(store: Store) -> list[dict[str, Any]]:
    """Every key without its secret digest, oldest first."""
    stmt = sa.select(*_LISTED).order_by(api_keys.c.created_ms, api_keys.c.key_id)
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def count_active_keys(store: Store) -> int:
    stmt = sa.select(sa.func.count()).select_from(api_keys).where(api_keys.c.revoked_ms.is_(None))
    with store.engine.connect() as conn:
        return int(conn.execute(stmt).scalar() or 0)


def key_row(store: Store, key_id: str) -> dict[str, Any] | None:
    """One key with its secret digest (for verification), or None."""
    stmt = sa.select(
        api_keys.c.key_id,
        api_keys.c.secret_sha256,
        api_keys.c.role,
        api_keys.c.participant,
        api_keys.c.label,
        api_keys.c.revoked_ms,
    ).where(api_keys.c.key_id == key_id)
    with store.engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    return None if row is None else dict(row)
