"""Session-level PostgreSQL advisory locks on a dedicated connection.

The scale-out worker (:mod:`clearlane.adapters.nats.worker`) owns a partition while it holds
one: the lock lives as long as the session, so a killed worker's lock is released by the server
when its connection closes. The connection is psycopg's own (autocommit), not a pooled
SQLAlchemy one, so that no pool recycles it and silently drops the lock.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy.engine import make_url

from clearlane.adapters.sql.store import database_url


class AdvisoryLock:
    """``pg_try_advisory_lock(key)`` held on its own session until :meth:`close`."""

    def __init__(self, db: str, key: int, application_name: str) -> None:
        self.db = db
        self.key = key
        self.application_name = application_name
        self._conn: Any = None

    def try_acquire(self) -> bool:
        """True once this session holds the lock (re-asking while holding it stays True)."""
        import psycopg

        if self._conn is None:
            url = make_url(database_url(self.db)).set(drivername="postgresql")
            self._conn = psycopg.connect(
                url.render_as_string(hide_password=False),
                autocommit=True,
                application_name=self.application_name,
            )
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return bool(row and row[0])

    def ping(self) -> None:
        """Raise if the session (and so the lock) is gone."""
        if self._conn is None:
            raise RuntimeError("advisory lock: no session")
        self._conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
