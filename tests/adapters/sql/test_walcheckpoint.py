"""SQLite WAL checkpoints on their own thread (adapters/sql/walcheckpoint.py): they run, a
commit's own threshold is raised to the safety net, and close() stops the thread; a store's
page size is chosen when it is created (Store.open), and the safety net is the same bytes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from clearlane.adapters.sql.store import BULK_PAGE_SIZE, SERVICE_PAGE_SIZE, Store, StoreError
from clearlane.adapters.sql.walcheckpoint import AUTOCHECKPOINT_BYTES


def test_checkpoints_run_off_the_committing_thread_and_stop_on_close(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    checkpointer = store._checkpointer
    assert checkpointer is not None
    with store.engine.connect() as conn:
        assert (
            conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()
            == AUTOCHECKPOINT_BYTES // BULK_PAGE_SIZE
        )
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


def _pragma(store: Store, name: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f"PRAGMA {name}")).scalar_one())


def test_a_new_store_takes_its_page_size_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    service = Store.open(tmp_path / "service.db", page_size=SERVICE_PAGE_SIZE)
    bulk = Store.open(tmp_path / "bulk.db")
    try:
        assert _pragma(service, "page_size") == SERVICE_PAGE_SIZE
        assert _pragma(service, "wal_autocheckpoint") == AUTOCHECKPOINT_BYTES // SERVICE_PAGE_SIZE
        assert _pragma(bulk, "page_size") == BULK_PAGE_SIZE
        service.set_meta("k", "v")
        bulk.set_meta("k", "v")
    finally:
        service.close()
        bulk.close()
    # Reopened with the other size: each file keeps the size it was created with, and its
    # safety net stays the same bytes of pages.
    service = Store.open(tmp_path / "service.db", create=False)
    bulk = Store.open(tmp_path / "bulk.db", create=False, page_size=SERVICE_PAGE_SIZE)
    try:
        assert _pragma(service, "page_size") == SERVICE_PAGE_SIZE
        assert _pragma(service, "wal_autocheckpoint") == AUTOCHECKPOINT_BYTES // SERVICE_PAGE_SIZE
        assert _pragma(bulk, "page_size") == BULK_PAGE_SIZE
        assert _pragma(bulk, "wal_autocheckpoint") == AUTOCHECKPOINT_BYTES // BULK_PAGE_SIZE
        assert service.get_meta("k") == bulk.get_meta("k") == "v"
    finally:
        service.close()
        bulk.close()


@pytest.mark.parametrize("size", [0, 256, 1000, 131_072])
def test_a_page_size_sqlite_cannot_take_is_refused(tmp_path: Path, size: int) -> None:
    with pytest.raises(StoreError, match="page size"):
        Store.open(tmp_path / "x.db", page_size=size)
