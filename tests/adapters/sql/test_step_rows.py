"""The store's bulk write paths (issue 18) leave the same tables as writing one thing at a time:
a group of steps committed in one transaction as the same steps committed one by one, and
balances brought up to date row by row as a full rewrite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clearlane.adapters.sql.store import Store
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
