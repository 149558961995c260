"""The edge checks the ledger's per-flow limit (docs/LIMITS.md) with the engine's own rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.config import ClearingConfig
from clearlane.core.engine.limits import FLOW_GROSS_MAX_MINOR, TRANSFER_MAX_MINOR, trade_over_limit
from clearlane.core.model.codes import RejectCode
from clearlane.node.intake import iter_input
from clearlane.node.intake.rows import Intake
from tests.node.test_ingest import good, read, write

R = RejectCode


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        # The demo's spoiled row: a quantity whose minor units fit int64 but not the ledger.
        ({"quantity": "20000000001"}, "quantity"),
        # Each part fits; quantity x price does not.
        ({"quantity": "1000000", "price": "2000000000000"}, "price"),
        ({"symbol": "BTC/ETH", "quantity": "90000000000", "price": "1"}, "quantity"),
    ],
)
def test_a_trade_whose_settlement_exceeds_the_ledger_range_is_refused_at_the_edge(
    tmp_path: Path, config: ClearingConfig, changes: dict[str, Any], field: str
) -> None:
    table, rejects, _ = read(write(tmp_path / "t.csv", [good(1, **changes), good(2)]), config)
    assert table.column("trade_id").to_pylist() == ["T00002"]
    assert [(r.code, r.field, r.row) for r in rejects] == [(R.AMOUNT_OVERFLOW, field, 1)]
    assert "per-trade limit" in rejects[0].reason


def test_the_largest_trade_the_edge_accepts_is_one_the_ledger_can_settle(
    tmp_path: Path, config: ClearingConfig
) -> None:
    """At the limit: 1 satoshi less is accepted, the limit + 1 refused (USD/EUR at 1: fees)."""
    # EUR/USD at price 1, standard tier 2 bps each side: q + q + 2 x fee(q).
    rate = np.array([200], dtype=np.int64)
    lo, hi = 1, FLOW_GROSS_MAX_MINOR  # lo fits, hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if trade_over_limit(np.array([mid]), np.array([mid]), rate, rate)[0]:
            hi = mid
        else:
            lo = mid
    ok = f"{lo // 100}.{lo % 100:02d}"
    bad = f"{hi // 100}.{hi % 100:02d}"
    rows = [
        good(1, symbol="EUR/USD", buyer="BRK-NORTH", seller="CUST-VAULT", quantity=ok, price="1"),
        good(2, symbol="EUR/USD", buyer="BRK-NORTH", seller="CUST-VAULT", quantity=bad, price="1"),
    ]
    table, rejects, _ = read(write(tmp_path / "t.csv", rows), config)
    assert table.column("trade_id").to_pylist() == ["T00001"]
    assert [(r.code, r.field) for r in rejects] == [(R.AMOUNT_OVERFLOW, "price")]


def test_http_bodies_and_bus_messages_get_the_same_answer(config: ClearingConfig) -> None:
    intake = Intake(config)
    _, errors, _ = intake.trades([([good(1, quantity="20000000001")], 0, "")])
    assert [(e.code, e.field) for e in errors[0]] == [(int(R.AMOUNT_OVERFLOW), "quantity")]


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("payment", {"payment_id": "P1", "payer": "MM-ALPHA", "payee": "BRK-NORTH", "asset": "USD"}),
        ("collateral_deposit", {"deposit_id": "D1", "participant": "MM-ALPHA", "asset": "USD"}),
        ("collateral_withdrawal", {"withdrawal_id": "W1", "participant": "MM-ALPHA", "asset": "USD"}),
    ],
)
def test_small_events_over_the_ledger_range_are_refused_at_the_edge(
    tmp_path: Path, config: ClearingConfig, kind: str, body: dict[str, Any]
) -> None:
    limit = FLOW_GROSS_MAX_MINOR if kind == "payment" else TRANSFER_MAX_MINOR
    too_big = f"{(limit + 1) // 100 + 1}.00"
    fits = f"{limit // 100 // 2}.00"
    intake = Intake(config)
    _, error = intake.event(kind, {**body, "amount": too_big})
    assert error is not None and (error.code, error.field) == (int(R.AMOUNT_OVERFLOW), "amount")
    data, error = intake.event(kind, {**body, "amount": fits})
    assert error is None and data is not None
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps({"type": kind, **body, "amount": too_big}) + "\n")
    rejects = [r for b in iter_input(path, config) for r in b.rejects]
    assert [(r.code, r.field) for r in rejects] == [(R.AMOUNT_OVERFLOW, "amount")]


@settings(max_examples=80, deadline=None)
@given(
    qty=st.integers(1, 10**18 - 1),
    price_mantissa=st.integers(1, 10**18 - 1),
    price_decimals=st.integers(0, 12),
)
def test_edge_and_engine_agree_on_the_limit(qty: int, price_mantissa: int, price_decimals: int) -> None:
    """Whatever the edge accepts, the engine accepts: same functions, same minor units."""
    from clearlane.core.config import load_config
    from clearlane.core.engine import Engine, LogEntry
    from clearlane.core.model.inputs import log_payload
    from tests.conftest import EXAMPLE_CONFIG, T0

    config = load_config(EXAMPLE_CONFIG)
    price = str(price_mantissa)
    if price_decimals:
        price = price.rjust(price_decimals + 1, "0")
        price = f"{price[:-price_decimals]}.{price[-price_decimals:]}"
    quantity = f"{qty // 10**8}.{qty % 10**8:08d}"
    row = good(1, quantity=quantity, price=price, buyer="BRK-NORTH", seller="RTL-0001", lane_hint="L1")
    table, errors, _ = Intake(config).trades([([row], T0, "")])
    if errors[0]:
        return
    engine = Engine(config)
    step = engine.apply(LogEntry(1, T0, "trades", log_payload("trades", table)))
    assert [r.code for r in step.rejects()] in ([], [R.NON_POSITIVE])
