"""The store's bulk write paths (issue 18) leave the same tables as writing one thing at a time:
a group of steps committed in one transaction as the same steps committed one by one, a step's
batch and ledger rows built column-wise as built one at a time, and balances brought up to date
row by row as a full rewrite."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa

from clearlane.adapters.sql.step_rows import (
    BATCH_EVENTS_SQL,
    GroupRows,
    cleared_row,
    cleared_rows,
    ledger_rows,
)
from clearlane.adapters.sql.store import Store
from clearlane.core.ledger.entries import JournalEntry
from clearlane.core.model.events import BatchCleared
from clearlane.core.proofs.codec import write_table
from clearlane.core.proofs.hashchain import submission_json, transition_body
from clearlane.testing.store_contract import StepMaker, anchoring_output, clearing_output, fake_ledger, trades

TABLES = (
    "input_log",
    "trade_chunks",
    "batches",
    "batch_events",
    "l1_groups",
    "outbox",
    "rejects",
    "ledger_entries",
    "transition_log",
    "audit_records",
    "engine_state",
    "meta",
    "ledger_accounts",
)


def _dump(store: Store) -> dict[str, list[dict[str, Any]]]:
    return {t: store.rows(f"SELECT * FROM {t} ORDER BY 1, 2") for t in TABLES}


def _steps() -> list[Any]:
    maker = StepMaker()
    first = maker.make("trades", trades(["T1", "T2"]), "src#0")
    first.step = clearing_output(1, first.now_ms, trades(["T1", "T2"]))
    second = maker.make("chain", {"to_ms": 5}, "src#1")
    second.step = anchoring_output(2, second.now_ms)  # updates the batch and group the first made
    second.meta = {"chain_genesis_ms": "0"}
    third = maker.make("chain", {"to_ms": 6}, None)
    return [first, second, third]


def test_a_group_commit_writes_what_one_by_one_commits_write(tmp_path: Path) -> None:
    grouped, single = Store.open(tmp_path / "grouped.db"), Store.open(tmp_path / "single.db")
    try:
        grouped.commit_steps(_steps())
        for step in _steps():
            single.commit_steps([step])
        assert _dump(grouped) == _dump(single)
        assert grouped.batch("fast-000001")["anchor_tx"] == "tx-a"  # the update followed the insert
    finally:
        grouped.close()
        single.close()


def test_balances_updated_in_place_equal_a_full_rewrite(tmp_path: Path) -> None:
    rng = np.random.default_rng(18)
    kept, fresh = Store.open(tmp_path / "kept.db"), None
    try:
        for n in (5, 9, 9, 3, 0, 4):  # grow, change, shrink, empty, grow again
            posted = rng.integers(-3, 3, n).tolist()
            kept.write_balances(fake_ledger(posted), n)
            fresh = Store.open(tmp_path / f"fresh-{n}-{len(posted)}.db")
            fresh.write_balances(fake_ledger(posted), n)
            assert kept.balances() == fresh.balances()
            assert kept.get_meta("balances_seq") == str(n)
            fresh.close()
            fresh = None
    finally:
        kept.close()
        if fresh is not None:
            fresh.close()


def _ledger(rng: np.random.Generator, n: int) -> Any:
    """A ledger whose every column varies: balances, floors and (never in practice) owners."""
    cols = [rng.integers(-2, 2, n).astype(np.int64) for _ in range(3)]
    has_floor = rng.random(n) < 0.3
    table = SimpleNamespace(
        owner=[f"P{int(v)}" for v in rng.integers(0, 2, n)],
        asset=["USD"] * n,
        purpose=["cash" if v else "held" for v in rng.integers(0, 8, n)],
        lane=["L2"] * n,
        has_floor=has_floor,
        floor_minor=np.where(has_floor, rng.integers(-9, 0, n), 7),
    )
    return SimpleNamespace(balances=lambda: tuple(c.copy() for c in cols), accounts_table=lambda: table)


def test_balances_compared_column_wise_equal_a_full_rewrite(tmp_path: Path) -> None:
    """Every column of a row can differ from the last checkpoint's; what the store holds after
    an in-place update is what a full rewrite holds (floors: None where an account has none)."""
    rng = np.random.default_rng(7)
    kept = Store.open(tmp_path / "kept.db")
    try:
        for i, n in enumerate((6, 6, 11, 11, 4, 9)):
            ledger = _ledger(rng, n)
            kept.write_balances(ledger, i)
            fresh = Store.open(tmp_path / f"fresh-{i}.db")
            try:
                fresh.write_balances(ledger, i)
                assert kept.balances() == fresh.balances()
            finally:
                fresh.close()
    finally:
        kept.close()


def test_all_balance_rows_equal_the_rows_at_every_index() -> None:
    """A full rewrite's rows (the text columns taken as they are) equal the rows picked by
    index, in index order: floors None where an account has none."""
    from clearlane.adapters.sql.balances import BalancesView

    rng = np.random.default_rng(11)
    for n in (0, 1, 7, 50):
        view = BalancesView.of(_ledger(rng, n))
        assert view.rows() == view.rows(np.arange(n, dtype=np.int64))
        assert all((row[5] is None) != bool(view.has_floor[row[0]]) for row in view.rows())


def _batches(rng: np.random.Generator, n: int) -> list[BatchCleared]:
    """Cleared batches whose columns are slices of a chunk's, as the engine makes them."""
    ids = pa.array([f"T{i}é" for i in range(4 * n)])
    times = np.arange(4 * n, dtype=np.int64) * 7
    out, at = [], 0
    for i in range(n):
        flows, lines = int(rng.integers(1, 4)), int(rng.integers(0, 4))
        out.append(
            BatchCleared(
                batch_id=f"fast-{i:06d}",
                pool="fast",
                seq=i,
                opened_at_ms=1,
                cleared_at_ms=2,
                flows=flows,
                obligations=lines,
                gross_usd=0.1 * i,
                net_usd=0.05,
                root=bytes([i % 256]) * 32,
                flow_ids=ids.slice(at, flows),
                received_ms=times[at : at + flows],
                net_participant=pa.array([f"P{j}" for j in range(lines)], pa.string()),
                net_asset=pa.array(["USD"] * lines, pa.string()),
                net_minor=rng.integers(-(10**12), 10**12, lines).astype(np.int64),
                gross_minor=np.zeros(4, dtype=np.int64),
            )
        )
        at += flows
    return out


def test_cleared_and_ledger_rows_of_a_step_are_each_ones() -> None:
    """Column-wise rows (one stream writer per step) equal the rows built one batch / one
    journal entry at a time, blobs byte for byte."""
    rng = np.random.default_rng(18)
    batches = _batches(rng, 40)
    assert cleared_rows(batches, 3) == [cleared_row(b, 3) for b in batches]
    mixed = [batches[0], replace(batches[1], flow_ids=batches[1].flow_ids.cast(pa.large_string()))]
    assert cleared_rows(mixed, 3) == [cleared_row(b, 3) for b in mixed]  # no columns: one by one
    assert cleared_rows([], 3) == []
    entries = [
        JournalEntry(f"e{i}", "hold", 5, rng.integers(0, 99, k), rng.integers(-9, 9, k), pending=i % 2 == 0)
        for i, k in enumerate(rng.integers(0, 5, 30))
    ]
    assert ledger_rows(entries) == [
        (
            e.entry_id,
            e.kind,
            e.at_ms,
            e.ref,
            e.pending,
            e.timeout_at_ms,
            "pending" if e.pending else "posted",
            e.at_ms,
            write_table(pa.table({"account": e.accounts, "amount_minor": e.amounts_minor}), compress=False),
        )
        for e in entries
    ]


def test_rows_from_the_auditors_parts_equal_rows_built_from_the_step() -> None:
    """The auditor hands the store what it built for the transition body (submissions' JSON,
    the batch columns, events and updates); the rows are the ones the store builds without."""
    bare, shared = GroupRows(), GroupRows()
    for pending in _steps():
        audit = pending.audit
        doc, _ = transition_body(pending.entry.seq, pending.now_ms, pending.entry.kind, pending.step, ["USD"])
        bare.add_step(pending.entry, pending.payload, None, pending.step, "r", 1, audit)
        given = replace(
            audit,
            submissions_json=[submission_json(tx) for tx in pending.step.submissions],
            batch_events=doc["events"],
            batch_updates=doc["updates"],
        )
        shared.add_step(pending.entry, pending.payload, None, pending.step, "r", 1, given)
    assert shared.inserts == bare.inserts
    assert shared.updates == bare.updates
    assert shared.inserts[BATCH_EVENTS_SQL] and shared.updates  # the test exercised both
