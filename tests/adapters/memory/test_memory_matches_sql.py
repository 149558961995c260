"""The in-memory store fed the real engine's steps keeps and answers what the SQL store does.

The contract suite commits synthetic steps; here a real day runs through the node on SQLite
while every commit is also made on a :class:`MemoryStore` (a tee), and every read of the port is
compared between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clearlane.adapters.embedded import open_node
from clearlane.adapters.memory import MemoryStore
from clearlane.adapters.sql.store import Store
from tests.adapters.sql.test_store_contract import run_day
from tests.conftest import EXAMPLE_CONFIG


class TeeStore:
    """The node's SQL store, with every commit repeated on a memory store."""

    def __init__(self, sql: Store, memory: MemoryStore) -> None:
        self.sql = sql
        self.memory = memory

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sql, name)

    def commit_step(self, *args: Any) -> bytes:
        self.memory.commit_step(*args)
        return self.sql.commit_step(*args)

    def commit_steps(self, steps: Sequence[Any]) -> bytes | None:
        self.memory.commit_steps(steps)
        return self.sql.commit_steps(steps)


def _log(store: Any) -> list[tuple[Any, ...]]:
    return [
        (s.entry.seq, s.entry.kind, s.source_id, s.payload, s.prev_hash, s.hash) for s in store.iter_log()
    ]


def test_a_real_day_reads_the_same_on_memory_and_sqlite(tmp_path: Path) -> None:
    node = open_node(tmp_path / "tee.db", EXAMPLE_CONFIG)
    sql, memory = node.store, MemoryStore.open()
    node.store = TeeStore(sql, memory)  # type: ignore[assignment]
    run_day(node)
    node.store = sql
    try:
        assert _log(memory) == _log(sql) and len(_log(sql)) > 10
        assert memory.engine_state() == sql.engine_state()
        assert list(memory.iter_transitions()) == list(sql.iter_transitions())
        assert memory.audit_record_hashes() == sql.audit_record_hashes() != []
        assert memory.get_meta("store_id") is None  # meta written outside a commit stays in SQL
        assert memory.outbox_after(0) == sql.outbox_after(0) != []
        assert memory.rejects_after(0) == sql.rejects_after(0) != []
        batch_ids = [r["batch_id"] for r in sql.rows("SELECT batch_id FROM batches")]
        assert batch_ids and all(memory.batch(b) == sql.batch(b) for b in batch_ids)
        assert all(memory.l1_group_for_batch(b) == sql.l1_group_for_batch(b) for b in batch_ids)
        groups = [r["group_id"] for r in sql.rows("SELECT group_id, origin FROM l1_groups")]
        assert groups and all(memory.l1_group(g) == sql.l1_group(g) for g in groups)
        flow_ids = [f"T{i:06d}" for i in range(0, 120, 7)]
        assert all(memory.find_trade(f) == sql.find_trade(f) for f in flow_ids)
        assert memory.find_trade(flow_ids[0]) is not None
    finally:
        node.close()
