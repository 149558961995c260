"""The deterministic engine: routing, liquidity, batching, idempotency, finality, faults."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearlane.core.config import ClearingConfig
from clearlane.core.engine import Engine, EngineError, EngineOptions, LogEntry
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import batch_event_row
from clearlane.core.model.inputs import ClockTick
from clearlane.testing.harness import Harness
from tests.conftest import T0, chunk, config_with, example_raw, trade


def records(h: Harness) -> list[dict]:
    return [row for step in h.steps for t in step.tables() for row in t.to_pylist()]


def test_routing_policy_first_match_wins(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    rows = [
        trade(0, "CUST-VAULT", "MM-ALPHA"),  # legacy opt-out → L1
        trade(1, "RTL-0001", "BRK-NORTH", hint="L1"),  # venue asked for L1
        trade(2, "BRK-NORTH", "RTL-0001", qty=(20, 0)),  # 20 BTC ≈ 1.3M USD → high value → L1
        trade(3, "MM-ALPHA", "RTL-0001"),  # market maker on one side → fast pool
        trade(4, "RTL-0001", "RTL-0002", qty=(1, 3)),  # everyone else → retail
    ]
    h.deposit("RTL-0001", "100000", at_ms=T0)
    h.deposit("RTL-0002", "100000", at_ms=T0)
    h.apply("trades", chunk(rows), T0)
    got = {r["flow_id"]: (r["lane"], r["pool"], r["route_rule"]) for r in records(h)}
    assert got["T000000"] == ("L1", None, "legacy opt-out")
    assert got["T000001"] == ("L1", None, "venue asked for L1")
    assert got["T000002"] == ("L1", None, "high value")
    assert got["T000003"] == ("L2", "fast", "market makers")
    assert got["T000004"] == ("L2", "retail", "everyone else")


def test_trade_obligations_fees_and_rounding(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    # 0.05 BTC at 65000.12 = 3250.006 USD → 3250.01 (half-even on 0.6 cents rounds up)
    h.apply("trades", chunk([trade(0, "MM-ALPHA", "BRK-NORTH", qty=(5, 2), price=(6500012, 2))]), T0)
    r = records(h)[0]
    assert r["qty_minor"] == 5_000_000
    assert r["quote_minor"] == 325001
    # fast pool: 40 % discount; maker 0.5 bps, standard 2 bps of 3250.01 USD
    assert r["fee_buyer_minor"] == 10  # 325001 * 50 cbps * 0.6 / 1e6 = 9.75 → 10
    assert r["fee_seller_minor"] == 39  # 325001 * 200 * 0.6 / 1e6 = 39.0


def test_half_even_rounding_of_quote_amount(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    # 0.00000001 BTC at 50 USD = 0.0000005 USD → 0 cents → refused (rounds to zero)
    # 0.00000001 BTC at 1500000 USD = 0.015 USD → 2 cents (half-even: 1.5 → 2)
    # 0.00000001 BTC at 2500000 USD = 0.025 USD → 2 cents (half-even: 2.5 → 2)
    rows = [
        trade(0, qty=(1, 8), price=(50, 0)),
        trade(1, qty=(1, 8), price=(1500000, 0)),
        trade(2, qty=(1, 8), price=(2500000, 0)),
    ]
    fx = h.apply("trades", chunk(rows), T0)
    by_id = {r["flow_id"]: r for r in records(h)}
    assert by_id["T000000"]["reject_code"] == RejectCode.NON_POSITIVE
    assert by_id["T000001"]["quote_minor"] == 2
    assert by_id["T000002"]["quote_minor"] == 2
    assert [r.code for r in fx.rejects()] == [RejectCode.NON_POSITIVE]
    assert fx.rejects()[0].field == "price"


def test_engine_rejects_name_field_and_change_nothing(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    before = h.engine.ledger.state_digest()
    rows = [
        trade(0, "NOBODY", "BRK-NORTH"),
        trade(1, "MM-ALPHA", "MM-ALPHA"),
        trade(2, symbol="BTC/DOGE"),
        trade(3, qty=(1, 9)),  # 9 decimals on an 8-scale asset
    ]
    fx = h.apply("trades", chunk(rows), T0)
    assert [(r.input_id, r.code, r.field) for r in fx.rejects()] == [
        ("T000000", RejectCode.UNKNOWN_PARTICIPANT, "buyer"),
        ("T000001", RejectCode.SELF_TRADE, "seller"),
        ("T000002", RejectCode.UNKNOWN_SYMBOL, "symbol"),
        ("T000003", RejectCode.PRECISION_EXCEEDED, "quantity"),
    ]
    assert not fx.submissions and not fx.cleared()
    assert h.engine.ledger.state_digest() == before
    assert h.engine.pos.sum() == 0


def test_duplicates_are_no_ops_within_and_across_chunks(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    h.apply("trades", chunk([trade(0), trade(1), trade(0)]), T0)
    root_once = h.engine.pos.copy()
    fx = h.apply("trades", chunk([trade(0), trade(1)]), T0 + 100)
    assert fx.duplicates == 2
    assert (h.engine.pos == root_once).all()
    assert sum(h.engine.stats.flows_by_lane.values()) == 2
    assert h.engine.stats.duplicates == 3


def test_batches_close_on_size_and_window(config: ClearingConfig) -> None:
    raw = example_raw()
    raw["pools"][0]["size_max"] = 3
    from clearlane.core.config import parse_config

    h = Harness(parse_config(raw), T0)
    rows = [trade(i, at=T0 + i) for i in range(7)]  # 7 fast-pool trades 1 ms apart
    fx = h.apply("trades", chunk(rows), T0)
    assert [b.flows for b in fx.cleared()] == [3, 3]
    assert [b.batch_id for b in fx.cleared()] == ["fast-00000001", "fast-00000002"]
    assert fx.cleared()[0].cleared_at_ms == T0 + 2  # closed by size at its 3rd trade
    # The 7th trade waits; the window (500 ms) closes it on a later tick.
    fx = h.apply("tick", {}, T0 + 6 + 500)
    assert [(b.batch_id, b.flows, b.cleared_at_ms) for b in fx.cleared()] == [("fast-00000003", 1, T0 + 506)]


def test_liquidity_breach_routes_to_l1_or_rejects() -> None:
    raw = example_raw()
    for p in raw["participants"]:
        if p["id"] == "RTL-0001":
            p["credit_limit_usd"] = "100"
    from clearlane.core.config import parse_config

    cfg = parse_config(raw)
    h = Harness(cfg, T0)
    rows = [trade(0, "RTL-0001", "MM-ALPHA", qty=(1, 3)), trade(1, "RTL-0001", "MM-ALPHA", qty=(1, 4))]
    h.apply("trades", chunk(rows), T0)  # 0.001 BTC = 65 USD fits 100; the next 6.5 USD... also fits
    rows = [trade(2, "RTL-0001", "MM-ALPHA", qty=(1, 3))]  # another 65 USD → 136.5 > 100 → L1
    h.apply("trades", chunk(rows), T0 + 100)
    got = {r["flow_id"]: (r["lane"], r["route_rule"]) for r in records(h)}
    assert got["T000002"][0] == "L1" and got["T000002"][1].startswith("liquidity")
    assert h.engine.stats.liquidity_diverted == 1
    # A deposit raises the limit: the same size now fits.
    h.deposit("RTL-0001", "1000", at_ms=T0 + 150)
    h.apply("trades", chunk([trade(3, "RTL-0001", "MM-ALPHA", qty=(1, 3), at=T0 + 200)]), T0 + 200)
    assert {r["flow_id"]: r["lane"] for r in records(h)}["T000003"] == "L2"
    # With liquidity_breach = "reject" the breach is a reject with a stable code.
    raw["clearing"]["liquidity_breach"] = "reject"
    h2 = Harness(parse_config(raw), T0)
    fx = h2.apply("trades", chunk([trade(0, "RTL-0001", "MM-ALPHA", qty=(1, 2))]), T0)
    assert [r.code for r in fx.rejects()] == [RejectCode.LIQUIDITY_EXCEEDED]


def test_two_finalities_l2_and_l1(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    rows = [
        trade(0, "MM-ALPHA", "BRK-NORTH"),
        trade(1, "CUST-VAULT", "MM-BETA"),
        trade(2, "RTL-0001", "RTL-0002", qty=(1, 5)),
    ]
    h.apply("trades", chunk(rows), T0)
    h.run_until(T0 + 60_000)
    events = h.batch_events()
    fast = [e for e in events if e[0] == "fast-00000001"]
    assert [e[1] for e in fast] == ["cleared", "anchored", "final"]
    cleared, anchored, final = (e[2] for e in fast)
    assert cleared == T0 + 500  # window
    assert anchored == T0 + 2000  # first block after submission
    assert final == T0 + 4000  # 2 confirmations: the block after the anchor's
    retail = [e for e in events if e[0] == "retail-00000001"]
    retail_anchor = retail[1][2]
    # 3 confirmations (T+4 s after the anchor) but the 10 s challenge window dominates
    assert retail[2] == ("retail-00000001", "final", retail_anchor + 10_000, "")
    assert h.engine.stats.l1_final == 1  # the custodian's trade, gross
    h.engine.check_invariants()
    h.engine.ledger.audit_balances()
    assert not h.engine.pending and not h.engine.l1_groups


def test_dropped_anchor_is_resubmitted(config: ClearingConfig) -> None:
    h = Harness(config, T0, faults={"drop_tx_ids": ["anchor:fast-00000001:1"]})
    h.apply("trades", chunk([trade(0)]), T0)
    h.run_until(T0 + 60_000)
    kinds = [e[1] for e in h.batch_events() if e[0] == "fast-00000001"]
    assert kinds == ["cleared", "resubmitted", "anchored", "final"]
    assert h.engine.stats.batches_final == 1
    assert h.engine.anchor_txs == {}  # both attempts forgotten once final (bounded memory)


def test_anchor_deadline_unwinds_to_l1(config: ClearingConfig) -> None:
    h = Harness(config, T0, faults={"outages": [[T0, T0 + 300_000]]})
    h.apply("trades", chunk([trade(0), trade(1, "RTL-0001", "RTL-0002", qty=(1, 5))]), T0)
    h.run_until(T0 + 600_000, step_ms=5000)
    kinds = [e[1] for e in h.batch_events() if e[0] == "fast-00000001"]
    assert kinds[0] == "cleared" and kinds[-1] == "unwound"
    assert h.engine.stats.batches_unwound == 2
    assert h.engine.stats.l1_final == 2  # both trades settled gross after the outage
    h.engine.check_invariants()
    h.engine.ledger.audit_balances()
    pending = [e for e in h.engine.ledger.pending_entries()]
    assert pending == []


def test_reorg_unanchors_then_reanchors(config: ClearingConfig) -> None:
    # Block 1 carries the anchor; producing block 2 orphans blocks 1-2 (depth 2).
    h = Harness(config, T0, faults={"reorgs": [[2, 2]]})
    h.apply("trades", chunk([trade(0)]), T0)
    h.run_until(T0 + 60_000)
    kinds = [e[1] for e in h.batch_events() if e[0] == "fast-00000001"]
    assert kinds[:3] == ["cleared", "anchored", "reorged"]
    assert kinds[-1] == "final"
    assert h.engine.stats.reorged_anchors == 1


def test_log_must_be_applied_in_order(config: ClearingConfig) -> None:
    engine = Engine(config)
    with pytest.raises(EngineError):
        engine.apply(LogEntry(2, T0, "tick", ClockTick()))
    engine.apply(LogEntry(1, T0, "tick", ClockTick()))
    with pytest.raises(EngineError):
        engine.apply(LogEntry(2, T0, "no-such-kind", {}))


def test_payments_and_collateral() -> None:
    raw = example_raw()
    for p in raw["participants"]:
        if p["id"] == "RTL-0001":
            p["credit_limit_usd"] = "0"  # exposure must be covered by collateral alone
    from clearlane.core.config import parse_config

    h = Harness(parse_config(raw), T0)
    h.deposit("RTL-0001", "500.00", at_ms=T0)
    fx = h.apply(
        "payment",
        {"payment_id": "P1", "payer": "RTL-0001", "payee": "BRK-NORTH", "asset": "USD", "amount": "120.50"},
        T0 + 1,
    )
    assert not fx.rejects()
    fx = h.apply(
        "payment",
        {"payment_id": "P2", "payer": "RTL-0001", "payee": "BRK-NORTH", "asset": "USD", "amount": "1.234"},
        T0 + 2,
    )
    assert [(r.code, r.field) for r in fx.rejects()] == [(RejectCode.PRECISION_EXCEEDED, "amount")]
    # Withdrawing all collateral while the payment is in the open batch is refused.
    fx = h.apply(
        "collateral_withdrawal",
        {"withdrawal_id": "W1", "participant": "RTL-0001", "asset": "USD", "amount": "500.00"},
        T0 + 3,
    )
    assert [r.code for r in fx.rejects()] == [RejectCode.COLLATERAL_INSUFFICIENT]
    h.run_until(T0 + 60_000)
    assert h.engine.stats.batches_final == 1
    fx = h.apply(
        "collateral_withdrawal",
        {"withdrawal_id": "W2", "participant": "RTL-0001", "asset": "USD", "amount": "500.00"},
        T0 + 60_001,
    )
    assert not fx.rejects()
    h.engine.ledger.audit_balances()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    deposit_cents=st.integers(1, 100_000),
    paid_cents=st.integers(0, 100_000),
    withdraw_cents=st.lists(st.integers(1, 120_000), min_size=1, max_size=4),
)
def test_the_withdrawal_query_is_the_judgement(
    deposit_cents: int, paid_cents: int, withdraw_cents: list[int]
) -> None:
    """Engine.withdrawal_allowed (what the runtime asks before logging) predicts exactly what
    apply decides, whatever the collateral and the open exposure; liquidity() reports the
    figures the check used."""
    raw = example_raw()
    for p in raw["participants"]:
        if p["id"] == "RTL-0001":
            p["credit_limit_usd"] = "0"
    from clearlane.core.config import parse_config

    h = Harness(parse_config(raw), T0)
    h.deposit("RTL-0001", f"{deposit_cents / 100:.2f}", at_ms=T0)
    if paid_cents:
        h.apply(
            "payment",
            {
                "payment_id": "P1",
                "payer": "RTL-0001",
                "payee": "BRK-NORTH",
                "asset": "USD",
                "amount": f"{paid_cents / 100:.2f}",
            },
            T0 + 1,
        )
    engine = h.engine
    p, a = engine.participant_lookup["RTL-0001"], engine.asset_lookup["USD"]
    for n, cents in enumerate(withdraw_cents):
        allowed = engine.withdrawal_allowed(p, a, cents)
        before = engine.liquidity()
        step = h.apply(
            "collateral_withdrawal",
            {
                "withdrawal_id": f"W{n}",
                "participant": "RTL-0001",
                "asset": "USD",
                "amount": f"{cents / 100:.2f}",
            },
            T0 + 2 + n,
        )
        refused = [r.code for r in step.rejects()] == [RejectCode.COLLATERAL_INSUFFICIENT]
        assert allowed != refused
        assert before.debit_usd[p] == engine.debit_total[p]
        assert before.available_usd[p] == before.collateral_usd[p] + before.credit_usd[p]
    h.engine.ledger.audit_balances()


flows = st.lists(
    st.tuples(
        st.sampled_from(["MM-ALPHA", "MM-BETA", "BRK-NORTH", "RTL-0001", "RTL-0002", "CUST-VAULT"]),
        st.sampled_from(["MM-ALPHA", "MM-BETA", "BRK-NORTH", "RTL-0001", "RTL-0002", "CUST-VAULT"]),
        st.integers(1, 5000),
        st.integers(100, 9_000_000),
        st.sampled_from(["BTC/USD", "ETH/USD", "ETH/BTC", "BTC/EUR"]),
        st.integers(0, 3000),
    ),
    min_size=1,
    max_size=40,
)


def _funded(cfg: ClearingConfig, rows: list[tuple], faults: dict) -> tuple[Harness, list[dict], int]:
    """A harness with the retail participant funded, the generated rows as trades, the last time."""
    h = Harness(cfg, T0, faults=faults)
    h.deposit("RTL-0001", "50000", at_ms=T0)
    t = T0
    table_rows = []
    for i, (b, s, q, p, sym, gap) in enumerate(rows):
        t += gap
        table_rows.append(trade(i, b, s, qty=(q, 4), price=(p, 2), symbol=sym, at=t))
    return h, table_rows, t


def _run(cfg: ClearingConfig, rows: list[tuple], faults: dict) -> Harness:
    h, table_rows, t = _funded(cfg, rows, faults)
    for start in range(0, len(table_rows), 7):
        part = table_rows[start : start + 7]
        h.apply("trades", chunk(part), part[0]["received_at_ms"])
        h.advance(part[-1]["received_at_ms"])
    h.run_until(t + 400_000, step_ms=3000)
    return h


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows, st.sampled_from([{}, {"drop_probability": 0.3}, {"reorg_every_blocks": 3, "reorg_depth": 2}]))
def test_property_conservation_determinism_and_closure(rows: list[tuple], faults: dict) -> None:
    cfg = config_with()
    a = _run(cfg, rows, faults)
    b = _run(cfg, rows, faults)
    assert a.engine.state_root() == b.engine.state_root()  # same log → same state
    a.engine.check_invariants()
    a.engine.ledger.audit_balances()
    # Every batch nets to zero per asset, and gross ≥ net debits.
    for step in a.steps:
        for batch in step.cleared():
            assets = batch.net_asset.to_pylist()
            net = batch.net_minor
            for code in set(assets):
                assert sum(int(n) for n, x in zip(net, assets, strict=True) if x == code) == 0
    # Nothing left in flight: every accepted flow ended final on L2 or L1.
    assert not a.engine.pending and not a.engine.l1_groups
    assert not a.engine.anchor_txs and not a.engine.l1_txs  # only in-flight txs are remembered
    accepted = sum(a.engine.stats.flows_by_lane.values())
    l2_final_flows = sum(len(x) for x in a.engine.stats.latency_l2_final_ms)
    assert l2_final_flows + a.engine.stats.l1_final == accepted
    # Replaying the very same log into a fresh engine gives the same root.
    fresh = Engine(cfg)
    for entry in a.log:
        fresh.apply(entry)
        fresh.state_root()
        fresh.check_invariants()  # includes: the cached state-root digests equal fresh ones
    # The node sealed its hash-chain head into its root; a bare engine has none to seal.
    assert fresh.pre_root() == a.engine.pre_root()
    assert np.array_equal(fresh.pos, a.engine.pos)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flows,
    st.sampled_from(
        [
            {},
            {"drop_probability": 0.3},
            {"reorg_every_blocks": 3, "reorg_depth": 2},
            {"delay_probability": 0.5, "delay_blocks": 3},
        ]
    ),
)
def test_skipping_quiet_batches_and_groups_changes_nothing(rows: list[tuple], faults: dict) -> None:
    """Steps skip batches and L1 groups whose last walk did nothing (``EngineOptions.quiet_skip``;
    quiet ones also across chain entries until what they wait for comes): every step's effects
    and state root equal a full walk's."""
    _compare_with_a_full_walk(rows, faults)


def test_quiet_l1_groups_are_carried_across_chain_entries() -> None:
    # The custodian's trades settle gross on L1; they wait for confirmations over several blocks.
    rows = [("CUST-VAULT", "MM-BETA", 10 + i, 2_000_000, "BTC/USD", 400) for i in range(12)]
    assert _compare_with_a_full_walk(rows, {})[0] > 0


def test_quiet_batches_are_carried_across_chain_entries() -> None:
    # Market makers' trades clear on L2; their batches wait out confirmations and the challenge
    # window over many chain entries without being walked.
    rows = [("MM-ALPHA", "MM-BETA", 10 + i, 2_000_000, "BTC/USD", 400) for i in range(12)]
    assert _compare_with_a_full_walk(rows, {})[1] > 0


def _compare_with_a_full_walk(rows: list[tuple], faults: dict) -> tuple[int, int]:
    """Apply the generated log to an engine that walks everything and one that skips; every
    step's effects and root must be equal. Returns how many times a quiet L1 group and a quiet
    pending batch were carried across a chain entry without a walk."""
    cfg = config_with()
    h, table_rows, t = _funded(cfg, rows, faults)
    for start in range(0, len(table_rows), 5):
        part = table_rows[start : start + 5]
        h.apply("trades", chunk(part), part[0]["received_at_ms"])
        for k in range(1, 4):  # steps without chain entries, time passing
            h.apply("tick", {}, part[-1]["received_at_ms"] + k * 700)
        h.advance(part[-1]["received_at_ms"] + 2100)
    h.run_until(t + 400_000, step_ms=3000)
    for k in range(40):  # ticks after the last chain entry: challenge windows end on engine time
        h.apply("tick", {}, t + 400_000 + k * 5_000)
    full = Engine(cfg, EngineOptions(quiet_skip=False))
    skipping = Engine(cfg)
    skipped = skipped_l1 = carried_l1 = carried = 0
    for entry in h.log:
        a, b = full.apply(entry), skipping.apply(entry)
        assert [batch_event_row(e) for e in a.batch_events()] == [
            batch_event_row(e) for e in b.batch_events()
        ]
        assert [(u.group_id, u.table) for u in a.l1_updates()] == [
            (u.group_id, u.table) for u in b.l1_updates()
        ]
        assert a.submissions == b.submissions
        assert full.state_root() == skipping.state_root(), entry.seq  # effects head included
        skipped += sum(1 for st in skipping.pending.values() if st.quiet_epoch == skipping.chain_epoch)
        groups = skipping.l1_groups.values()
        skipped_l1 += sum(1 for g in groups if g.quiet_epoch == skipping.chain_epoch)
        carried_l1 += sum(1 for g in groups if 0 <= g.quiet_epoch < skipping.chain_epoch)
        pending = skipping.pending.values()
        carried += sum(1 for st in pending if 0 <= st.quiet_epoch < skipping.chain_epoch)
    assert full.pre_root() == h.engine.pre_root()  # the node's root also seals its chain head
    assert skipped > 0 or not any(step.cleared() for step in h.steps)
    assert skipped_l1 + carried_l1 > 0 or not any(step.l1_updates() for step in h.steps)
    return carried_l1, carried


def _respelled(row: dict, zeros: int) -> dict:
    """The same trade with ``zeros`` more trailing decimal zeros on quantity and price."""
    return {
        **row,
        "qty_mantissa": row["qty_mantissa"] * 10**zeros,
        "qty_exp": row["qty_exp"] + zeros,
        "price_mantissa": row["price_mantissa"] * 10**zeros,
        "price_exp": row["price_exp"] + zeros,
    }


_CHANGES = {
    "quantity": lambda r: {**r, "qty_mantissa": r["qty_mantissa"] + 1},
    "price": lambda r: {**r, "price_mantissa": r["price_mantissa"] + 1},
    "executed_at": lambda r: {**r, "executed_at_ms": r["executed_at_ms"] + 1},
    "buyer": lambda r: {**r, "buyer": "RTL-0002"},  # never a party of the rows below
    "venue": lambda r: {**r, "venue": "OTHER"},
    "exch_batch_id": lambda r: {**r, "exch_batch_id": None},
    "lane_hint": lambda r: {**r, "lane_hint": "L1"},
}


def _observable(h: Harness) -> tuple:
    e = h.engine
    return (
        e.pos.tobytes(),
        e.ledger.state_digest(),
        e.collateral.tobytes(),
        len(e.seen_flow_ids),
        len(e.seen_event_ids),
        dict(e.stats.flows_by_lane),
        dict(e.stats.rejects_by_code),
        sorted(e.pending),
        e.count.tobytes(),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 12),
    resend=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 3)), min_size=1, max_size=12),
    change=st.sampled_from(sorted(_CHANGES)),
    changed_at=st.integers(0, 11),
)
def test_property_resending_applied_inputs_changes_nothing_and_a_changed_field_is_116(
    config: ClearingConfig, n: int, resend: list[tuple[int, int]], change: str, changed_at: int
) -> None:
    h = Harness(config, T0)
    pairs = ["MM-ALPHA", "BRK-NORTH", "RTL-0001", "MM-BETA"]
    rows = [trade(i, pairs[i % 4], pairs[(i + 1) % 4], at=T0 + i) for i in range(n)]
    h.apply("trades", chunk(rows), T0 + n)
    deposit = {"deposit_id": "D1", "participant": "RTL-0001", "asset": "USD", "amount": "50.0"}
    h.apply("collateral_deposit", deposit, T0 + n)
    payment = {
        "payment_id": "P1",
        "payer": "RTL-0001",
        "payee": "BRK-NORTH",
        "asset": "USD",
        "amount": "1.50",
    }
    h.apply("payment", payment, T0 + n)
    before = _observable(h)
    again = [_respelled(rows[i % n], zeros) for i, zeros in resend]
    fx = h.apply("trades", chunk(again), T0 + n)
    assert fx.conflicts == () and fx.duplicates == len(again) and fx.tables()[0].num_rows == 0
    fx = h.apply("collateral_deposit", {**deposit, "amount": "50.00"}, T0 + n)
    assert fx.conflicts == () and fx.duplicates == 1
    fx = h.apply("payment", {**payment, "amount": "1.5"}, T0 + n)
    assert fx.conflicts == () and fx.duplicates == 1
    assert _observable(h) == before

    target = rows[changed_at % n]
    fx = h.apply("trades", chunk([*again, _CHANGES[change](target)]), T0 + n)
    assert [(r.code, r.field, r.input_id, r.row) for r in fx.conflicts] == [
        (RejectCode.ID_CONFLICT, "trade_id", target["trade_id"], len(again))
    ]
    fx = h.apply("collateral_deposit", {**deposit, "amount": "50.01"}, T0 + n)
    assert [(r.code, r.input_id) for r in fx.conflicts] == [(RejectCode.ID_CONFLICT, "D1")]
    fx = h.apply("payment", {**payment, "payee": "MM-ALPHA"}, T0 + n)
    assert [(r.code, r.input_id) for r in fx.conflicts] == [(RejectCode.ID_CONFLICT, "P1")]
    assert _observable(h) == before
    assert not [r for step in h.steps for r in step.rejects()]  # conflicts are never stored rejects
