"""Escrow actions as log inputs applied by the engine: replayable, in the state root only when
used, the buyer's funds held from its collateral (the engine's withdrawal rule judges a hold),
deadlines fired by the engine clock."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.config import ClearingConfig
from clearlane.core.engine import Engine, LogEntry
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import EscrowMovement, EscrowTransition
from clearlane.core.model.states import EscrowState
from clearlane.testing.harness import Harness
from tests.conftest import T0

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
    assert replayed.pre_root() == engine.pre_root()  # the node also seals its chain head


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


def test_payouts_settle_through_the_lanes_and_turn_final(config: ClearingConfig) -> None:
    """An ordinary payout is a payment from the house netted in an L2 pool; one above the
    routing's high-value threshold settles gross on L1; each is final when its lane is."""
    d = Deal(config)
    d.h.deposit("RTL-0001", "1600000", at_ms=T0)
    plain = {**TERMS, "conditions": [], "fee_bps": 0}
    for escrow, amount in (("small", "24500.00"), ("large", "1500000.00")):
        d.act("open", "MARKET", escrow=escrow, terms={**plain, "amount": amount})
        d.act("agree", "RTL-0001", escrow=escrow)
        d.act("agree", "RTL-0002", escrow=escrow)
        d.act("fund", "RTL-0001", escrow=escrow)  # no conditions: released at once
        step = d.act("settle", "MARKET", escrow=escrow)
        (record,) = [t for t in step.tables()]
        lane = record.column("lane").to_pylist()[0]
        assert lane == ("L2" if escrow == "small" else "L1")
        view = d.h.engine.escrow(escrow)
        assert view is not None and view.where.clearing == view.amount_minor and view.where.final == 0
    d.h.run_until(T0 + 120_000)
    for escrow in ("small", "large"):
        view = d.h.engine.escrow(escrow)
        assert view is not None and view.where.final == view.amount_minor and view.where.clearing == 0
    finals = [
        e.reason
        for s in d.h.steps
        for e in s.events
        if isinstance(e, EscrowTransition) and e.action == "final"
    ]
    assert any("L2 batch" in r for r in finals) and any("L1 group" in r for r in finals)
    seller = engine_available(d.h.engine, "RTL-0002")
    assert seller == 2_450_000 + 150_000_000
    d.h.engine.check_invariants()


def engine_available(engine: Engine, participant: str) -> int:
    p, a = engine.participant_lookup[participant], engine.asset_lookup["USD"]
    return engine.ledger.balance(int(engine.acct_available[p, a])).posted_minor


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from([f"F{i}" for i in range(12)]), unique=True, max_size=6), max_size=5),
    st.lists(st.sampled_from([f"F{i}" for i in range(12)]), unique=True, min_size=1, max_size=6),
)
def test_payouts_a_step_clears_are_found_as_batch_by_batch(
    batches: list[list[str]], wanted: list[str]
) -> None:
    """The payout flows each of a step's cleared batches carries, looked up over all of them at
    once, are what a look-up per batch finds (in flow order; batches with none left out)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from clearlane.core.engine.escrows import _payouts_cleared
    from clearlane.core.model.events import BatchCleared

    cleared = [
        BatchCleared(
            batch_id=f"B{i}",
            pool="p",
            seq=i + 1,
            opened_at_ms=1,
            cleared_at_ms=2,
            flows=len(ids),
            obligations=0,
            gross_usd=0.0,
            net_usd=0.0,
            root=bytes(32),
            flow_ids=pa.array(ids, pa.string()),
            received_ms=np.zeros(len(ids), dtype=np.int64),
            net_participant=pa.array([], pa.string()),
            net_asset=pa.array([], pa.string()),
            net_minor=np.zeros(0, dtype=np.int64),
            gross_minor=np.zeros(1, dtype=np.int64),
        )
        for i, ids in enumerate(batches)
    ]
    value_set = pa.array(wanted, pa.string())
    one_by_one = {
        b.batch_id: b.flow_ids.filter(pc.is_in(b.flow_ids, value_set=value_set)).to_pylist() for b in cleared
    }
    assert _payouts_cleared(cleared, value_set) == {k: v for k, v in one_by_one.items() if v}
