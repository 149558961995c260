"""SQLite bulk insert: ``executemany`` against the store's multi-row statements (adapters/sql/multirow.py).

    .venv/bin/python scripts/bench_sqlite_insert.py [--rows 54000] [--rounds 3] [--contended]

Writes ``--rows`` outbox-like rows (an int, two short texts, a ~120-byte blob) into a fresh
WAL-mode file in one transaction, both ways, alternating; prints wall and thread CPU seconds.
``--contended`` runs a thread of pure Python beside it, as the engine's thread runs beside the
store's writer thread: ``executemany`` lets go of the interpreter lock for every row and waits
to take it back each time.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from clearlane.adapters.sql.multirow import insert_rows

_SQL = "INSERT INTO outbox (log_seq, tx_id, kind, payload) VALUES (?, ?, ?, ?)"


def _fresh(path: Path) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, log_seq BIGINT NOT NULL, "
        "tx_id TEXT NOT NULL, kind TEXT NOT NULL, payload BLOB NOT NULL)"
    )
    conn.execute("CREATE INDEX ix_outbox_seq ON outbox (log_seq)")
    return conn


def _executemany(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.executemany(_SQL, rows)


def _multirow(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    insert_rows(conn.cursor(), _SQL, rows, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=54_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contended", action="store_true")
    args = parser.parse_args()
    rows = [
        (
            i // 500,
            f"l1:T{i:09d}:1",
            "l1_settle",
            b'{"kind":"l1_settle","ref":"T%09d","at":1700000000000}' % i,
        )
        for i in range(args.rows)
    ]
    stop = threading.Event()

    def busy() -> None:
        x = 0
        while not stop.is_set():
            for i in range(1000):
                x += i

    if args.contended:
        threading.Thread(target=busy, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "insert.db"
        for _ in range(args.rounds):
            for name, write in (("executemany", _executemany), ("multi-row", _multirow)):
                conn = _fresh(path)
                wall, cpu = time.perf_counter(), time.thread_time()
                conn.execute("BEGIN")
                write(conn, rows)
                conn.execute("COMMIT")
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                count = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
                conn.close()
                print(f"{name:12s} {count:,} rows: wall {wall:.3f} s, CPU {cpu:.3f} s", flush=True)
    stop.set()
    print(f"machine: {os.cpu_count()} CPUs, SQLite {sqlite3.sqlite_version}")


if __name__ == "__main__":
    main()
