"""The demo's car marketplace takes every path: accepted, lapsed (engine clock), disputed and
split, refunded, charged back after release — and its payouts reach finality in the lanes."""

from __future__ import annotations

from types import SimpleNamespace

from clearlane.core.config import ClearingConfig
from clearlane.core.model.inputs import escrow_action
from clearlane.core.model.states import EscrowState
from clearlane.node import escrow as escrow_app
from clearlane.node.escrow_demo import INSPECTION_MS, car_marketplace
from clearlane.testing.harness import Harness
from tests.conftest import T0


def test_the_car_marketplace_scenario(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    deposits, actions = car_marketplace(config)
    for deposit in deposits:
        h.apply("collateral_deposit", deposit, T0)

    def log(kind: str, payload: dict[str, object], at_ms: int) -> None:
        h.apply(kind, payload, at_ms)

    refused = [
        body["action_id"]
        for body in actions
        if escrow_app.submit(
            SimpleNamespace(engine=h.engine, submit=log), escrow_action(body), T0
        ).outcome.reject
        is not None
    ]
    assert refused == []
    h.run_until(T0 + INSPECTION_MS + 120_000, step_ms=5_000)
    states = {v.escrow_id: v.state for v in h.engine.escrow_views()}
    assert states == {
        "car-0001": EscrowState.RELEASED,
        "car-0002": EscrowState.RELEASED,  # the inspection lapsed: accepted by the engine clock
        "car-0003": EscrowState.RELEASED,  # the arbiter's split: 30 % back, the rest released
        "car-0004": EscrowState.REFUNDED,
        "car-0005": EscrowState.CHARGEBACK,
    }
    first = h.engine.escrow("car-0001")
    assert first is not None and first.where.final == first.amount_minor
    assert all(v.inspection_deadline_ms is None for v in h.engine.escrow_views())
    h.engine.check_invariants()
