"""API keys in the ``api_keys`` table: the reads and writes :mod:`clearlane.adapters.http.auth`
needs (the HTTP side owns roles, secrets and the verification cache; this module only stores).

Every change to the keys (a key created or revoked, by any process: ``clearlane apikey revoke``
runs beside the server) writes a new random *key epoch* into ``meta`` in the same transaction.
A server reads the epoch before it trusts its cache (:class:`EpochReader`: one primary-key read
on a connection of its own, ~10 µs on SQLite), so a revocation holds from the next request.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import sqlalchemy as sa

from clearlane.adapters.sql.schema import api_keys, meta
from clearlane.adapters.sql.store import Store

EPOCH_KEY = "api_keys_epoch"

_LISTED = (
    api_keys.c.key_id,
    api_keys.c.role,
    api_keys.c.participant,
    api_keys.c.label,
    api_keys.c.created_ms,
    api_keys.c.revoked_ms,
)


def _bump_epoch(conn: sa.Connection) -> None:
    conn.execute(sa.delete(meta).where(meta.c.key == EPOCH_KEY))
    conn.execute(sa.insert(meta).values(key=EPOCH_KEY, value=secrets.token_hex(8)))


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
        _bump_epoch(conn)


def revoke_key(store: Store, key_id: str, at_ms: int) -> bool:
    """Mark an active key revoked; False if there is no such active key."""
    stmt = (
        sa.update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_ms.is_(None))
        .values(revoked_ms=at_ms)
    )
    with store.engine.begin() as conn:
        done = bool(conn.execute(stmt).rowcount)
        if done:
            _bump_epoch(conn)
        return done


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


class EpochReader:
    """Reads the key epoch on a driver connection of its own (autocommit, so every read sees the
    latest commit and no transaction stays open): the pool, SQLAlchemy's statement layer and
    a checkout per request would cost ~25x more (measured: ~260 µs through ``Store.get_meta``,
    ~10 µs here, SQLite). Not thread-safe: the caller serialises."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._raw: Any = None
        marker = "?" if store.engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = f"SELECT value FROM meta WHERE key = {marker}"

    def read(self) -> str | None:
        """The current epoch (None before any key was created); raises what the driver raises."""
        if self._raw is None:
            self._raw = self._store.engine.raw_connection()
            driver = self._raw.driver_connection
            if getattr(driver, "autocommit", None) is False:  # psycopg: no idle transaction
                driver.autocommit = True
        try:
            cursor = self._raw.cursor()
            try:
                cursor.execute(self._sql, (EPOCH_KEY,))
                row = cursor.fetchone()
            finally:
                cursor.close()
        except Exception:
            self.close()  # reconnect on the next read
            raise
        return None if row is None else str(row[0])

    def close(self) -> None:
        if self._raw is not None:
            raw, self._raw = self._raw, None
            # A connection of its own: closed, not returned to the pool (nor raising if broken).
            with contextlib.suppress(Exception):
                raw.invalidate()
