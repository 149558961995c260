"""Escrow actions as log inputs applied by the engine: replayable, in the state root only when
used, the buyer's funds held from its collateral (the engine's withdrawal rule judges a hold),
deadlines fired by the engine clock."""

from __future__ import annotations

from typing import Any

from clearlane.core.config import ClearingConfig
from clearlane.core.engine import Engine, LogEntry
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import EscrowMovement, EscrowTransition
from clearlane.core.model.states import EscrowState
from tests.conftest import T0
from tests.harness import Harness

TERMS = {
    "asset": "USD",
    "amount": "25000.00",
    "buyer": "RTL-0001",
    "seller": "RTL-0002",
    "platform": "MARKET",
    "arbiter": "ARB",
    "fee_bps": 200,
    "conditions": [
        {"condition_id": "title", "kind": "title_transferred", "role": "platform"},
        {"condition_id": "inspection", "kind": "inspection_passed", "role": "buyer"},
    ],
    "inspection_period_ms": 60_000,
    "lapse_action": "accept",
}


class Deal:
    def __init__(self, config: ClearingConfig) -> None:
        self.h = Harness(config, T0)
        self.h.deposit("RTL-0001", "30000", at_ms=T0)
        self.n = 0

    def act(self, action: str, actor: str, at_ms: int = T0, escrow: str = "car-1", **fields: Any) -> Any:
        self.n += 1
        raw = {
            "action": action,
            "action_id": f"{escrow}-{self.n}",
            "escrow_id": escrow,
            "actor": actor,
            **fields,
        }
        step = self.h.apply("escrow", raw, at_ms)
        self.h.engine.check_invariants()
        return step

    def state(self, escrow: str = "car-1") -> EscrowState:
        view = self.h.engine.escrow(escrow)
        assert view is not None
        return view.state


def test_a_car_deal_through_the_engine_log(config: ClearingConfig) -> None:
    d = Deal(config)
    engine = d.h.engine
    usd = engine.asset_lookup["USD"]
    buyer = engine.participant_lookup["RTL-0001"]
    d.act("open", "MARKET", terms=TERMS)
    d.act("agree", "RTL-0001")
    d.act("agree", "RTL-0002")
    step = d.act("fund", "RTL-0001")
    assert any(isinstance(e, EscrowMovement) for e in step.events)
    assert int(engine.collateral[buyer, usd]) == 500_000  # 30,000.00 − 25,000.00 held
    assert not engine.withdrawal_allowed(buyer, usd, 500_001)
    d.act("satisfy", "MARKET", condition_id="title")
    assert d.state() is EscrowState.INSPECTION
    d.h.apply("tick", {}, T0 + 59_999)
    assert d.state() is EscrowState.INSPECTION
    step = d.h.apply("tick", {}, T0 + 60_000)  # the engine clock fires the lapse: accept
    moved = [e for e in step.events if isinstance(e, EscrowTransition)]
    assert moved and moved[-1].to_state is EscrowState.RELEASED and moved[-1].actor == "engine"
    replayed = Engine(config)
    for entry in d.h.log:
        replayed.apply(entry)
    assert replayed.state_root() == engine.state_root()


def test_refusals_and_retries_are_rejects_and_duplicates(config: ClearingConfig) -> None:
    d = Deal(config)
    d.act("open", "MARKET", terms={**TERMS, "amount": "40000.00"})
    d.act("agree", "RTL-0001")
    d.act("agree", "RTL-0002")
    before = d.h.engine.state_root()
    step = d.act("fund", "RTL-0001")  # more than the buyer's collateral
    assert [r.code for r in step.rejects()] == [RejectCode.ESCROW_FUNDS_INSUFFICIENT]
    assert step.rejects()[0].input_id == "car-1-4"
    retry = LogEntry(len(d.h.log) + 1, T0, "escrow", d.h.log[-1].payload)
    d.h.log.append(retry)
    assert d.h.engine.apply(retry).duplicates == 1
    assert d.state() is EscrowState.AGREED
    assert before != d.h.engine.state_root()  # the log moved on (seq), the escrow did not


def test_a_day_without_escrow_keeps_its_state_root(config: ClearingConfig) -> None:
    plain, used = Harness(config, T0), Harness(config, T0)
    plain.deposit("RTL-0001", "10", at_ms=T0)
    used.deposit("RTL-0001", "10", at_ms=T0)
    assert plain.engine.state_root() == used.engine.state_root()
    assert plain.engine.escrows.digest() is None
    used.apply("escrow", {"action": "agree", "action_id": "x", "escrow_id": "nope", "actor": "B"}, T0)
    assert used.engine.escrows.digest() is not None
