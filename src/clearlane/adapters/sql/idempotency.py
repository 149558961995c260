"""The ``idempotency_keys`` table (migration 0011): the first response the HTTP API gave to an
``Idempotency-Key``, kept until it expires, read and written by
:mod:`clearlane.adapters.http.idempotency` (which owns the rules: scope, fingerprint, TTL)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from clearlane.adapters.sql.schema import idempotency_keys
from clearlane.adapters.sql.store import Store


class SqlIdempotencyStore:
    """Responses by (scope, key) in the service's database: a restart keeps them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, scope: str, key: str, now_ms: int) -> dict[str, Any] | None:
        k = idempotency_keys.c
        stmt = sa.select(idempotency_keys).where(k.scope == scope, k.key == key, k.expires_ms > now_ms)
        with self.store.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return None if row is None else {**row, "body": bytes(row["body"])}

    def put(self, row: dict[str, Any]) -> bool:
        """Keep a first response; False if the key is already taken (a concurrent first wins).
        Expired keys are dropped on the way (an indexed range delete)."""
        k = idempotency_keys.c
        try:
            with self.store.engine.begin() as conn:
                conn.execute(sa.delete(idempotency_keys).where(k.expires_ms <= row["created_ms"]))
                conn.execute(sa.insert(idempotency_keys).values(**row))
        except SAIntegrityError:
            return False
        return True
