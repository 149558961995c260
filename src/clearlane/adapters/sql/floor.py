"""The benchmark's write floor (``clearlane bench --floor``): a number of bytes written to a
scratch table of a store opened exactly as the node opens its own (same dialect, same pragmas),
in a number of transactions — the least that persisting a run's bytes could cost."""

from __future__ import annotations

import os
import time
from pathlib import Path

import sqlalchemy as sa

from clearlane.adapters.sql.store import Store

_TABLE = sa.Table(
    "floor_blobs",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("blob", sa.LargeBinary, nullable=False),
)


def store_bytes(db: Path) -> int:
    """Bytes of live pages in a SQLite store (its write-ahead log included, free pages not)."""
    store = Store.open(db, create=False)
    try:
        with store.engine.connect() as conn:
            pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
            free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
            size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        return (pages - free) * size
    finally:
        store.close()


def write_floor(scratch: Path, total_bytes: int, transactions: int) -> float:
    """Seconds to write ``total_bytes`` as ``transactions`` blobs, one commit each, into a fresh
    store at ``scratch`` (deleted afterwards)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{scratch}{suffix}").unlink(missing_ok=True)
    store = Store.open(scratch)
    try:
        _TABLE.create(store.engine)
        n = max(1, transactions)
        size = max(1, total_bytes // n)
        blob = os.urandom(size)  # incompressible, like hashes and encoded columns
        started = time.perf_counter()
        for i in range(n):
            with store.engine.begin() as conn:
                conn.execute(_TABLE.insert().values(id=i, blob=blob))
        return time.perf_counter() - started
    finally:
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{scratch}{suffix}").unlink(missing_ok=True)
