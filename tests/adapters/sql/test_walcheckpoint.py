"""SQLite WAL checkpoints on their own thread (adapters/sql/walcheckpoint.py): they run, a
commit's own threshold is raised to the safety net, and close() stops the thread."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from clearlane.adapters.sql.store import Store
from clearlane.adapters.sql.walcheckpoint import AUTOCHECKPOINT_PAGES


def test_checkpoints_run_off_the_committing_thread_and_stop_on_close(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    checkpointer = store._checkpointer
    assert checkpointer is not None
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == AUTOCHECKPOINT_PAGES
    for i in range(20):
        store.set_meta(f"k{i}", "x" * 1000)
    deadline = time.monotonic() + 10
    while checkpointer.runs < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpointer.runs >= 2 and checkpointer.failures == 0
    store.close()
    assert not checkpointer._thread.is_alive()
    again = Store.open(tmp_path / "s.db", create=False)
    try:
        assert again.get_meta("k19") == "x" * 1000
    finally:
        again.close()


def test_a_memory_database_has_no_checkpointer() -> None:
    store = Store.open("sqlite://")
    try:
        assert store._checkpointer is None
    finally:
        store.close()
