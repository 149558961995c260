"""The pure risk rules: scenario parsing and seeded streams, margin, waterfall, Cover-N,
liquidity metrics — with hypothesis properties for each invariant."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.risk import cover, liquidity, margin, scenario, waterfall

money = st.integers(min_value=0, max_value=10**12)


# ---------------------------------------------------------------------- scenario
def _frame() -> scenario.DayFrame:
    day = 1_763_596_800_000
    return scenario.DayFrame(
        day_start_ms=day,
        first_ms=day + 1000,
        last_ms=day + 86_000_000,
        genesis_ms=day + 30_000,
        block_time_ms=2000,
        anchor_attempts=10,
        batches={"retail": [f"retail-{i:06d}" for i in range(1, 50)], "fast": ["fast-000001"]},
    )


RAW = {
    "id": "s1",
    "seed": 7,
    "faults": [
        {"type": "batch_failure", "pools": ["retail"], "count": 3},
        {"type": "finality_delay", "probability": 0.5, "blocks": 4},
        {"type": "anchor_reorg", "depth": 3, "count": 2},
        {"type": "base_layer_outage", "at": "10:00", "duration_s": 600},
        {"type": "participant_default", "participant": "cover2"},
        {"type": "mark_shock", "asset": "BTC", "percent": "-12.5", "at": "11:30"},
    ],
}


def test_scenario_compiles_every_fault_type() -> None:
    compiled = scenario.compile_scenario(scenario.parse_scenario(RAW), _frame())
    faults = compiled.chain_faults
    assert len(faults["drop_tx_ids"]) == 3 * 10
    assert faults["delay_probability"] == 0.5 and faults["delay_blocks"] == 4
    assert len(faults["reorgs"]) == 2 and all(d == 3 for _, d in faults["reorgs"])
    start = _frame().day_start_ms + 10 * 3_600_000
    assert faults["outages"] == [[start, start + 600_000]]
    assert compiled.marks == [(_frame().day_start_ms + 41_400_000, "BTC", "-12.5")]
    assert compiled.defaults[0][1] == "cover2"
    assert all(compiled.expected[t] >= 1 for t in scenario.FAULT_TYPES)


def test_scenario_is_deterministic_and_seed_dependent() -> None:
    one = scenario.compile_scenario(scenario.parse_scenario(RAW), _frame())
    two = scenario.compile_scenario(scenario.parse_scenario(RAW), _frame())
    other = scenario.compile_scenario(scenario.parse_scenario({**RAW, "seed": 8}), _frame())
    assert one == two
    assert one.chain_faults != other.chain_faults


def test_named_streams_are_independent() -> None:
    streams = scenario.Streams(1)
    a = streams("a").random(4)
    assert np.array_equal(a, scenario.Streams(1)("a").random(4))
    assert not np.array_equal(a, streams("b").random(4))


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"seed": -1}, "seed"),
        ({"faults": [{"type": "meteor"}]}, "faults.0"),
        ({"faults": [{"type": "base_layer_outage", "at": "25:00"}]}, "faults.0.base_layer_outage.at"),
        (
            {"faults": [{"type": "mark_shock", "asset": "BTC", "percent": "-100"}]},
            "faults.0.mark_shock.percent",
        ),
        ({"faults": [{"type": "batch_failure"}]}, "faults.0.batch_failure"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_scenarios_name_the_key(patch: dict[str, object], key: str) -> None:
    with pytest.raises(scenario.ScenarioError) as info:
        scenario.parse_scenario({**RAW, **patch})
    assert info.value.code == "SCENARIO_INVALID"
    assert info.value.key == key


# ---------------------------------------------------------------------- margin
VOLS = np.array([0.03, 0.05, 0.01])


def _returns(seed: int = 1, days: int = 300) -> np.ndarray:
    return margin.returns_history(VOLS, days, np.random.Generator(np.random.PCG64(seed)))


exposures = st.lists(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False), min_size=3, max_size=3).map(
    lambda xs: np.array(xs).reshape(1, 1, 3)
)


@settings(max_examples=60, deadline=None)
@given(exposures, st.floats(0.0, 5.0), st.floats(0.0, 5.0), st.sampled_from(["sqrt_time", "overlapping"]))
def test_var_monotone_in_horizon(x: np.ndarray, h1: float, h2: float, method: str) -> None:
    lo, hi = sorted((h1, h2))
    r = _returns()
    a = margin.var_margin(x, np.array([lo]), r, method=method)
    b = margin.var_margin(x, np.array([hi]), r, method=method)
    if method == "sqrt_time":
        assert b[0] >= a[0] - 1e-6 * max(1.0, a[0])


@settings(max_examples=60, deadline=None)
@given(exposures, st.floats(0.6, 0.999), st.floats(0.6, 0.999), st.floats(0.001, 3.0))
def test_var_monotone_in_confidence(x: np.ndarray, c1: float, c2: float, h: float) -> None:
    lo, hi = sorted((c1, c2))
    r = _returns()
    a = margin.var_margin(x, np.array([h]), r, confidence=lo)
    b = margin.var_margin(x, np.array([h]), r, confidence=hi)
    assert b[0] >= a[0] >= 0.0


def test_var_is_deterministic_and_longer_windows_cost_more() -> None:
    x = np.zeros((2, 1, 3))
    x[0, 0, 0] = x[1, 0, 0] = 1e6
    short = margin.var_margin(x[:1], margin.horizon_days(np.array([60_000.0]), 0.0), _returns())
    long = margin.var_margin(x[1:], margin.horizon_days(np.array([3_600_000.0]), 0.0), _returns())
    assert long[0] > short[0] > 0
    assert np.array_equal(_returns(3), _returns(3))


def test_overlapping_sums() -> None:
    r = np.arange(10, dtype=float).reshape(5, 2)
    assert np.array_equal(margin.overlapping(r, 2), r[1:] + r[:-1])


def test_span_grid_has_16_scenarios_and_covers_a_linear_move() -> None:
    x = np.zeros((1, 2, 3))
    x[0, 0, 1] = 1e6
    x[0, 1, 2] = -5e5
    scanning, losses = margin.span_grid(x, np.array([1.0]), VOLS)
    assert losses.shape == (2, 3, margin.SPAN_SCENARIOS) and margin.SPAN_SCENARIOS == 16
    z = margin.normal_quantile(0.99)
    assert scanning[0] == pytest.approx(1e6 * z * 0.05)
    assert scanning[1] == pytest.approx(5e5 * z * 0.01)


def test_normal_quantile() -> None:
    assert margin.normal_quantile(0.99) == pytest.approx(2.326348, abs=1e-5)


# ---------------------------------------------------------------------- waterfall
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(money, money, money), min_size=1, max_size=8), money, money)
def test_waterfall_conserves(rows: list[tuple[int, int, int]], fund: int, house: int) -> None:
    unpaid, coll, credits = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    w = waterfall.waterfall(unpaid, coll, credits, default_fund=fund, house=house)
    total = int(w.from_collateral.sum()) + w.from_fund + w.from_house + w.uncovered
    assert total == int(unpaid.sum())
    assert (w.from_collateral <= unpaid).all() and w.from_fund <= fund
    assert (w.left_short[unpaid > 0] == 0).all()


def test_waterfall_layers_in_order() -> None:
    w = waterfall.waterfall(
        np.array([1000, 0, 0]), np.array([300, 0, 0]), np.array([0, 600, 200]), default_fund=200, house=100
    )
    assert w.from_collateral.tolist() == [300, 0, 0] and (w.from_fund, w.from_house) == (200, 100)
    assert w.left_short.tolist() == [0, 300, 100]


@given(money, st.lists(st.integers(0, 10**9), min_size=1, max_size=10))
def test_pro_rata_is_exact(amount: int, weights: list[int]) -> None:
    shares = waterfall.pro_rata(amount, np.array(weights, dtype=np.int64))
    assert int(shares.sum()) == (amount if sum(weights) else 0)
    assert (shares >= 0).all()


# ---------------------------------------------------------------------- cover
@settings(max_examples=200, deadline=None)
@given(st.lists(money, min_size=2, max_size=12), money)
def test_cover2_at_least_cover1(obligations: list[int], fund: int) -> None:
    one, two = cover.cover_1_and_2(np.array(obligations, dtype=np.int64), fund)
    assert two.obligation >= one.obligation and two.shortfall >= one.shortfall
    assert one.defaulters[0] == two.defaulters[0]
    assert one.obligation == max(obligations)


def test_cover_excludes_the_house_and_breaks_ties_by_index() -> None:
    one, two = cover.cover_1_and_2(np.array([5, 9, 9, 100]), 3, exclude=(3,))
    assert one.defaulters == (1,) and two.defaulters == (1, 2)
    assert (one.shortfall, two.shortfall) == (6, 15)


def test_stressed_obligations_floor_at_zero() -> None:
    out = cover.stressed_obligations(np.array([10, 10]), np.array([5, 0]), np.array([3, 50]))
    assert out.tolist() == [12, 0]


# ---------------------------------------------------------------------- liquidity
def test_liquidity_metrics_find_peaks_and_breaches() -> None:
    times = np.array([0, 10, 20, 30, 40])
    need = np.array([[0, 5], [7, 5], [12, 0], [3, 9], [12, 9]])
    m = liquidity.metrics(times, need, np.array([10, 8]))
    assert m.peak_need.tolist() == [12, 9] and m.peak_at_ms.tolist() == [20, 30]
    assert m.breaches[0] == [liquidity.Breach(20, 30, 2), liquidity.Breach(40, 40, 2)]
    assert m.breaches[1] == [liquidity.Breach(30, 40, 1)]


@given(st.lists(st.lists(st.integers(0, 1000), min_size=3, max_size=3), min_size=1, max_size=20))
def test_liquidity_peak_bounds_every_sample(rows: list[list[int]]) -> None:
    need = np.array(rows, dtype=np.int64)
    m = liquidity.metrics(np.arange(len(rows)) * 10, need, np.full(3, 500))
    assert (m.peak_need >= need).all()
    for p, runs in enumerate(m.breaches):
        assert all(b.peak_excess > 0 for b in runs)
        assert bool(runs) == bool((need[:, p] > 500).any())


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 63) - 1))
def test_compiling_is_deterministic_for_any_seed(seed: int) -> None:
    raw = {**RAW, "seed": seed}
    one = scenario.compile_scenario(scenario.parse_scenario(raw), _frame())
    two = scenario.compile_scenario(scenario.parse_scenario(raw), _frame())
    assert one == two
    assert len(one.chain_faults["drop_tx_ids"]) == 30 and len(one.chain_faults["reorgs"]) == 2
    vols = np.array([0.02, 0.04])
    a = margin.returns_history(vols, 50, scenario.Streams(seed)("returns"))
    assert np.array_equal(a, margin.returns_history(vols, 50, scenario.Streams(seed)("returns")))


def test_risk_bugs_stay_outside_the_error_tree() -> None:
    from clearlane.core.errors import ClearlaneError

    for bug in (waterfall.WaterfallInvariantError, cover.CoverInvariantError):
        assert not issubclass(bug, ClearlaneError)


# ---------------------------------------------------------------------- shrinking
def test_shrink_finds_the_one_fault_and_the_smallest_parameters() -> None:
    from clearlane.core.risk.shrink import shrink

    # "Fails" whenever a reorg of depth ≥ 2 is in the schedule, whatever the rest and the seed.
    def fails(s: scenario.Scenario) -> bool:
        return any(f.type == "anchor_reorg" and f.depth >= 2 for f in s.faults)

    shrunk = shrink(scenario.parse_scenario(RAW), fails, budget=100)
    (only,) = shrunk.scenario.faults
    assert only.type == "anchor_reorg" and only.depth == 2 and only.count == 1
    assert shrunk.scenario.seed == 0 and not shrunk.exhausted
    assert fails(shrunk.scenario) and shrunk.steps[0].startswith("dropped fault 5")


def test_shrink_stops_at_its_budget_and_keeps_a_failing_case() -> None:
    from clearlane.core.risk.shrink import shrink

    calls: list[int] = []

    def fails(s: scenario.Scenario) -> bool:
        calls.append(len(s.faults))
        return True

    shrunk = shrink(scenario.parse_scenario(RAW), fails, budget=3)
    assert shrunk.exhausted and shrunk.tries == 3 == len(calls) and len(shrunk.scenario.faults) == 3


def test_a_shrunk_scenario_prints_as_toml_that_reads_back() -> None:
    import tomllib

    from clearlane.core.risk.shrink import scenario_toml

    original = scenario.parse_scenario(
        {**RAW, "description": 'a "quoted" one', "margin": {"confidence": 0.975}, "liveness_bound_s": 60}
    )
    text = scenario_toml(original)
    assert scenario.parse_scenario(tomllib.loads(text)) == original
    assert "[margin]" in text and "[resources]" not in text  # defaults left out
