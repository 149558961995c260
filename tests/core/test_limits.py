"""Extreme but edge-valid input never stops the engine (issue 11): the ledger's ranges."""

from __future__ import annotations

from clearlane.core.config import ClearingConfig
from tests.conftest import T0, chunk, trade
from tests.harness import Harness


def test_l1_rows_whose_settlement_sums_past_the_ledger_range_do_not_stop_the_engine(
    config: ClearingConfig,
) -> None:
    """The demo's spoiled rows (quantity + "000000001"): each fits the ledger alone, three that
    become final in the same block do not fit one settlement entry."""
    h = Harness(config, T0)
    rows = [trade(i, "BRK-NORTH", "RTL-0001", qty=(5_000_000_001, 0), price=(65000, 0)) for i in range(3)]
    h.apply("trades", chunk(rows), T0)
    h.run_until(T0 + 120_000)
    h.engine.check_invariants()
    h.engine.ledger.audit_balances()
    assert h.engine.stats.l1_final == 3
    assert not h.engine.l1_groups
