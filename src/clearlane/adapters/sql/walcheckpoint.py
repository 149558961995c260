"""SQLite WAL checkpoints off the committing thread.

By default SQLite checkpoints the WAL inside the commit that takes it past
``wal_autocheckpoint`` pages: with a bulk store's 64 KiB pages that is a ~64 MiB copy into the
database file, and the step that happens to commit then waits for it (~50 ms every few hundred
steps under ``serve``: the slowest steps of the loop, measured with ``scripts/mem_serve.py``).

Here a daemon thread runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of its own every
``interval_s``: a passive checkpoint never waits for and never blocks a writer or a reader — it
copies the frames no reader still needs, and each run copies only what was committed since the
last, so the copying is spread out instead of landing on one commit. SQLite releases the
interpreter lock while it copies. The connections' own automatic checkpoint stays as a safety net
at :data:`AUTOCHECKPOINT_BYTES` of pages (should this thread fall behind, a commit checkpoints as
before).
A checkpoint changes where committed pages live, never what is committed: durability stays that
of the commit (``synchronous``), and the database's content is the same.
"""

from __future__ import annotations

import sqlite3
import threading

AUTOCHECKPOINT_BYTES = 256 * 2**20
"""The committing connections' own checkpoint threshold, in bytes of WAL pages (4,096 pages of
64 KiB, 65,536 of 4 KiB; SQLite's default is 1,000 pages): reached only if the background
checkpoints fall behind."""


class WalCheckpointer:
    """Passive WAL checkpoints of the SQLite file ``path`` every ``interval_s`` on a thread."""

    def __init__(self, path: str, interval_s: float = 0.2) -> None:
        self.path = path
        self.interval_s = interval_s
        self.runs = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clearlane-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            self.failures += 1
            return
        try:
            while not self._stop.wait(self.interval_s):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One passive checkpoint (a busy database just waits for the next run)."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.runs += 1
        except sqlite3.Error:
            self.failures += 1

    def stop(self, *, wait: bool = True) -> None:
        """Stop the thread (``wait``: until its connection is closed)."""
        self._stop.set()
        if wait and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
