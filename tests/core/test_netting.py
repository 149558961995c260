"""Multilateral netting: the published examples reproduced exactly, and property tests."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.engine import netting
from clearlane.core.engine.netting import (
    NettingInvariantError,
    check_conservation,
    net_positions,
    net_positions_many,
    settlement_instructions,
)


def _load(shared: Path) -> dict[str, dict]:
    data = json.loads((shared / "realdata" / "netting" / "netting_examples.json").read_text())
    return {example["id"]: example for example in data["examples"]}


def _net(example: dict, obligations_key: str = "obligations") -> tuple[dict[str, int], list[str]]:
    names: list[str] = []
    for o in example[obligations_key]:
        for who in (o["from"], o["to"]):
            if who not in names:
                names.append(who)
    index = {n: i for i, n in enumerate(names)}
    ob = example[obligations_key]
    payer = np.array([index[o["from"]] for o in ob])
    payee = np.array([index[o["to"]] for o in ob])
    amount = np.array([int(o["amount"]) for o in ob], dtype=np.int64)
    result = net_positions(payer, payee, np.zeros(len(ob), dtype=np.int64), amount, len(names), 1)
    return {n: int(result.net[index[n], 0]) for n in names}, names


@pytest.mark.parametrize("example_id", ["banxico-2000-3banks", "wikipedia-net-settlement-3parties"])
def test_published_multilateral_nets(shared: Path, example_id: str) -> None:
    example = _load(shared)[example_id]
    net, _ = _net(example)
    assert net == example["stated_multilateral_net"]


def test_banxico_pays_and_receives(shared: Path) -> None:
    example = _load(shared)["banxico-2000-3banks"]
    pays: dict[str, int] = defaultdict(int)
    receives: dict[str, int] = defaultdict(int)
    for o in example["obligations"]:
        pays[o["from"]] += o["amount"]
        receives[o["to"]] += o["amount"]
    assert dict(pays) == example["stated_totals"]["pays"]
    assert dict(receives) == example["stated_totals"]["receives"]
    # "Central pays into the system 4 and Meridional 9. Comercial will then get 13."
    net, _ = _net(example)
    assert (net["Central"], net["Meridional"], net["Comercial"]) == (-4, -9, 13)


def test_tuition_fx_example_usd_and_instructions(shared: Path) -> None:
    example = _load(shared)["scribd-tuition-CN7-3country-fx"]
    obligations = [
        {"from": o["from"], "to": o["to"], "amount": o["usd"]} for o in example["stated_step1_conversion"]
    ]
    net, names = _net({"obligations": obligations})
    assert net == example["stated_multilateral_net_usd"]
    matrix = np.array([[net[n]] for n in names], dtype=np.int64)
    transfers = {(names[p], names[q], amount) for p, q, _, amount in settlement_instructions(matrix)}
    # "UK to pay France 632,517", "SA to pay France 208,483"
    assert transfers == {("UK", "FR", 632517), ("SA", "FR", 208483)}


def test_conservation_violation_is_loud() -> None:
    with pytest.raises(NettingInvariantError):
        check_conservation(np.array([[5], [-4]], dtype=np.int64), np.array([5], dtype=np.int64))


obligation = st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 2), st.integers(0, 10**15))


@settings(max_examples=200, deadline=None)
@given(st.lists(obligation, max_size=60))
def test_net_positions_conserve_and_match_naive(obligations: list[tuple[int, int, int, int]]) -> None:
    payer = np.array([o[0] for o in obligations], dtype=np.int64)
    payee = np.array([o[1] for o in obligations], dtype=np.int64)
    asset = np.array([o[2] for o in obligations], dtype=np.int64)
    amount = np.array([o[3] for o in obligations], dtype=np.int64)
    result = net_positions(payer, payee, asset, amount, 6, 3)
    naive: dict[tuple[int, int], int] = defaultdict(int)
    gross = [0, 0, 0]
    for p, q, a, x in obligations:
        naive[(p, a)] -= x
        naive[(q, a)] += x
        gross[a] += x
    for p in range(6):
        for a in range(3):
            assert result.net[p, a] == naive[(p, a)]
    assert result.net.sum(axis=0).tolist() == [0, 0, 0]
    assert result.gross_per_asset.tolist() == gross
    assert all(result.net_debit_per_asset <= result.gross_per_asset)
    # The payer → payee instructions settle exactly the net positions.
    settled = np.zeros_like(result.net)
    for p, q, a, x in settlement_instructions(result.net):
        assert x > 0
        settled[p, a] -= x
        settled[q, a] += x
    assert (settled == result.net).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(obligation, min_size=0, max_size=12), min_size=1, max_size=8))
def test_netting_many_batches_at_once_equals_netting_each_alone(
    batches: list[list[tuple[int, int, int, int]]],
) -> None:
    """net_positions_many (one sort for a step's closing batches) gives each batch exactly what
    net_positions gives it alone: same triples in the same order, same per-asset totals."""
    rows = [(b, *o) for b, obligations in enumerate(batches) for o in obligations]
    column = [np.array([r[i] for r in rows], dtype=np.int64) for i in range(5)]
    leg_batch, payer, payee, asset, amount = column
    together = net_positions_many(payer, payee, asset, amount, leg_batch, len(batches), 6, 3)
    assert len(together) == len(batches)
    for b, obligations in enumerate(batches):
        cols = [np.array([o[i] for o in obligations], dtype=np.int64) for i in range(4)]
        alone = net_positions(*cols, 6, 3)
        got = together[b]
        for name in ("participant", "asset", "amount", "gross_per_asset", "net_debit_per_asset"):
            assert np.array_equal(getattr(got, name), getattr(alone, name)), name


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 7), st.integers(0, 5), st.integers(0, 5), st.integers(0, 2), st.integers(0, 10**15)
        ),
        max_size=80,
    ),
    st.randoms(use_true_random=False),
)
def test_the_compiled_pass_nets_as_the_numpy_sort(
    rows: list[tuple[int, int, int, int, int]], rng: Any
) -> None:
    """The compiled pass (a scratch cell per participant and asset) and the numpy sort give the
    same triples in the same order and the same totals — legs in any batch order, batches with
    no legs, amounts that cancel."""
    rng.shuffle(rows)
    leg_batch, payer, payee, asset, amount = (
        np.array([r[i] for r in rows], dtype=np.int64) for i in range(5)
    )
    compiled = net_positions_many(payer, payee, asset, amount, leg_batch, 8, 6, 3)
    saved = netting._COMPILED_MAX_CELLS
    netting._COMPILED_MAX_CELLS = 0
    try:
        sorted_ = net_positions_many(payer, payee, asset, amount, leg_batch, 8, 6, 3)
    finally:
        netting._COMPILED_MAX_CELLS = saved
    for got, want in zip(compiled, sorted_, strict=True):
        for name in ("participant", "asset", "amount", "gross_per_asset", "net_debit_per_asset"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name


def test_a_batch_too_big_to_net_keeps_the_others_in_place() -> None:
    """The step's closing batches are netted together; one whose legs sum past the ledger's
    range is left out (None, settled gross) and every other batch still gets its own result."""
    from types import SimpleNamespace

    import pyarrow as pa

    from clearlane.core.engine.clearing import _net_all
    from clearlane.core.engine.flows import Flows
    from clearlane.core.ledger import MAX_AMOUNT_MINOR

    qty = np.array([5, MAX_AMOUNT_MINOR, MAX_AMOUNT_MINOR, 7, 9], dtype=np.int64)
    n = len(qty)
    zeros = np.zeros(n, np.int64)
    flows = Flows(
        ids=pa.array([f"T{i}" for i in range(n)]),
        kind=np.ones(n, np.int8),  # payments: one leg each
        buyer=np.array([1, 2, 3, 4, 5], np.int32),
        seller=np.array([0, 1, 2, 3, 4], np.int32),
        base=np.zeros(n, np.int32),
        quote=np.zeros(n, np.int32),
        qty=qty,
        quote_amt=zeros,
        fee_buyer=zeros,
        fee_seller=zeros,
        time_ms=zeros,
        executed_ms=zeros,
        pool=np.zeros(n, np.int32),
        batch_seq=zeros,
        exch_batch=pa.nulls(n, pa.string()),
    )
    engine = SimpleNamespace(house=6, config=SimpleNamespace(participant_count=7, assets=[0]))
    bounds = np.array([0, 1, 3, 5], dtype=np.int64)  # batches: [T0], [T1, T2] too big, [T3, T4]
    results = _net_all(engine, flows, bounds)  # type: ignore[arg-type]
    assert [count for _, count in results] == [1, 2, 2]
    assert results[1][0] is None
    for b, (lo, hi) in ((0, (0, 1)), (2, (3, 5))):
        alone = net_positions(flows.seller[lo:hi], flows.buyer[lo:hi], flows.base[lo:hi], qty[lo:hi], 7, 1)
        got = results[b][0]
        assert got is not None
        assert np.array_equal(got.participant, alone.participant) and np.array_equal(got.amount, alone.amount)


_FLOW_ROW = st.tuples(
    st.integers(0, 5),  # seller
    st.integers(0, 5),  # buyer
    st.integers(0, 2),  # base
    st.integers(0, 2),  # quote
    *(st.one_of(st.just(0), st.integers(0, 10**15), st.just(2**62)) for _ in range(4)),
)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(_FLOW_ROW, max_size=6), max_size=7),
    st.sampled_from([2**63 - 1, 10**15, 3 * 10**15]),
)
def test_netting_straight_from_flows_equals_legs_then_netting(
    batches: list[list[tuple[int, ...]]], limit: int
) -> None:
    """``net_flows_many`` (legs read from the flow columns in one compiled pass) gives what
    ``Flows.legs`` then ``net_positions_many`` give for the batches whose legs fit ``limit``,
    ``None`` for the others, and each batch's count of non-zero legs — empty batches, zero legs
    (payments, no fees), self-trades and legs that cancel included."""
    import pyarrow as pa

    from clearlane.core.engine.flows import Flows
    from clearlane.core.engine.limits import legs_fit

    rows = [row for batch in batches for row in batch]
    bounds = np.cumsum([0, *(len(b) for b in batches)]).astype(np.int64)
    col = [np.array([r[i] for r in rows], dtype=np.int32 if i < 4 else np.int64) for i in range(8)]
    n, zeros, house = len(rows), np.zeros(len(rows), np.int64), 6
    flows = Flows(
        pa.array([f"T{i}" for i in range(n)], pa.string()), np.zeros(n, np.int8), col[1], col[0],
        col[2], col[3], col[4], col[5], col[6], col[7], zeros, zeros, np.zeros(n, np.int32), zeros,
        pa.nulls(n, pa.string()),
    )  # fmt: skip
    got = netting.net_flows_many(flows, bounds, house, 7, 3, limit)
    assert got is not None
    payer, payee, asset, amount, flow = flows.legs(house)
    leg_batch = np.searchsorted(bounds, flow, side="right") - 1
    for b, (result, count) in enumerate(got):
        mine = leg_batch == b
        assert count == int(mine.sum())
        if not legs_fit(amount[mine], limit):
            assert result is None
            continue
        alone = net_positions_many(
            payer[mine], payee[mine], asset[mine], amount[mine], leg_batch[mine] * 0, 1, 7, 3
        )
        assert result is not None
        for name in ("participant", "asset", "amount", "gross_per_asset", "net_debit_per_asset"):
            assert np.array_equal(getattr(result, name), getattr(alone[0], name)), name
