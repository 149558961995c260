"""Extreme but edge-valid input never stops the engine (issue 11): the ledger's ranges."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearlane.core.config import ClearingConfig
from clearlane.core.engine.limits import FLOW_GROSS_MAX_MINOR, TRANSFER_MAX_MINOR
from clearlane.core.model.codes import RejectCode
from clearlane.testing.harness import Harness
from tests.conftest import T0, chunk, config_with, trade


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


def test_a_batch_whose_hold_does_not_fit_is_settled_gross_on_l1() -> None:
    """Huge collateral lets big trades into one L2 batch; the netted hold would leave the
    ledger's range, so the batch is unwound as it clears (no anchor) and settles gross."""
    h = Harness(config_with(routing=[{"name": "all", "lane": "L2", "pool": "fast"}]), T0)
    # Collateral near the range (the house's external account per asset bounds the total).
    for who, asset, amount in (("MM-ALPHA", "USD", "20000000000000000"), ("MM-BETA", "BTC", "20000000000")):
        body = {"deposit_id": f"D-{who}", "participant": who, "asset": asset, "amount": amount}
        assert not h.apply("collateral_deposit", body, T0).rejects()
    big = (1_000_000_000, 0)  # 1e9 BTC = 1e17 satoshi, quote 6.5e13 USD = 6.5e15 cents
    rows = [trade(i, "MM-ALPHA", "MM-BETA", qty=big, price=(65000, 0)) for i in range(12)]
    step = h.apply("trades", chunk(rows), T0)
    assert not step.rejects()
    h.run_until(T0 + 200_000)
    unwound = [e for s in h.steps for e in s.batch_events() if type(e).__name__ == "BatchUnwound"]
    assert unwound and "ledger refused" in unwound[0].reason
    assert h.engine.stats.ledger_refused >= 1
    assert any("ledger_refused" in a for a in h.engine.stats.alerts)
    assert not h.engine.pending and not h.engine.l1_groups
    h.engine.check_invariants()
    h.engine.ledger.audit_balances()


def test_a_deposit_that_would_overflow_the_balance_is_a_reject_and_an_alert(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    amount = str(TRANSFER_MAX_MINOR // 100)
    codes = []
    for k in range(3):
        step = h.apply(
            "collateral_deposit",
            {"deposit_id": f"D{k}", "participant": "MM-ALPHA", "asset": "USD", "amount": amount},
            T0,
        )
        codes.append([r.code for r in step.rejects()])
    assert codes == [[], [], [RejectCode.LEDGER_REFUSED]]
    assert [type(e).__name__ for e in h.steps[-1].events] == ["Rejected", "Alert"]
    h.engine.check_invariants()
    h.engine.ledger.audit_balances()


_QTY = st.one_of(st.integers(1, 10**6), st.integers(10**15, 10**18 - 1))
_PRICE = st.one_of(st.integers(1, 10**7), st.integers(10**12, 10**18 - 1))
_PARTIES = st.sampled_from([("MM-ALPHA", "MM-BETA"), ("MM-BETA", "MM-ALPHA"), ("BRK-NORTH", "RTL-0001")])
_ROW = st.tuples(_PARTIES, _QTY, st.integers(0, 8), _PRICE, st.integers(0, 12), st.sampled_from([None, "L1"]))
_EVENT = st.one_of(
    st.tuples(st.just("trades"), st.lists(_ROW, min_size=1, max_size=12)),
    st.tuples(
        st.just("deposit"),
        st.sampled_from(["MM-ALPHA", "MM-BETA", "BRK-NORTH"]),
        st.integers(1, TRANSFER_MAX_MINOR),
    ),
    st.tuples(st.just("payment"), _PARTIES, st.integers(1, FLOW_GROSS_MAX_MINOR)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_EVENT, min_size=1, max_size=12))
def test_extreme_inputs_never_stop_the_engine_and_keep_the_ledger_whole(events: list[tuple]) -> None:
    """Quantities and prices up to 18 digits, deposits and payments up to the limits, the same
    pairs trading again and again (balances accumulate): the engine never raises, every flow
    ends settled, failed (ledger_refused) or rejected, and the ledger's invariants hold."""
    cfg = config_with()
    h = Harness(cfg, T0)
    t, i = T0, 0
    for event in events:
        t += 700
        if event[0] == "trades":
            rows = []
            for (buyer, seller), q, q_exp, p, p_exp, hint in event[1]:
                rows.append(trade(i, buyer, seller, qty=(q, q_exp), price=(p, p_exp), at=t, hint=hint))
                i += 1
            h.apply("trades", chunk(rows), t)
        elif event[0] == "deposit":
            body = {"deposit_id": f"D{i}", "participant": event[1], "asset": "USD", "amount": _usd(event[2])}
            h.apply("collateral_deposit", body, t)
            i += 1
        else:
            (payer, payee), amount = event[1], event[2]
            body = {
                "payment_id": f"P{i}",
                "payer": payer,
                "payee": payee,
                "asset": "USD",
                "amount": _usd(amount),
            }
            h.apply("payment", body, t)
            i += 1
        h.advance(t)
    h.run_until(t + 400_000, step_ms=5000)
    h.engine.check_invariants()
    h.engine.ledger.audit_balances()
    assert not h.engine.pending and not h.engine.l1_groups
    stats = h.engine.stats
    l2_final = sum(len(x) for x in stats.latency_l2_final_ms)
    assert l2_final + stats.l1_final == sum(stats.flows_by_lane.values())


def _usd(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def test_a_settlement_that_would_overflow_a_balance_fails_as_a_record_and_an_alert(
    config: ClearingConfig,
) -> None:
    """Each trade fits the ledger, five of them push the buyer's balance past its range: the
    fifth settlement is a ledger_refused reject under the trade's id, the rest are posted."""
    h = Harness(config, T0)
    rows = [
        trade(i, "BRK-NORTH", "RTL-0001", qty=(10_000_000_000, 0), price=(65000, 0), hint="L1")
        for i in range(5)
    ]
    assert not h.apply("trades", chunk(rows), T0).rejects()
    h.run_until(T0 + 120_000)
    failed = [r for s in h.steps for r in s.rejects()]
    assert [(r.code, r.input_id) for r in failed] == [(RejectCode.LEDGER_REFUSED, "T000004")]
    assert h.engine.stats.settlements_failed == 1
    assert not h.engine.l1_groups
    h.engine.check_invariants()
    h.engine.ledger.audit_balances()
