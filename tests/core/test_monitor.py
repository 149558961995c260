"""core/monitor's pure rules (issue 15): canary verdicts against per-hop limits, the paths the
routing rules send synthetic pairs down, divergence bands, staleness, trust scores and the
L2-halt policy."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.config import parse_config
from clearlane.core.monitor import policy
from clearlane.core.monitor.canary import (
    GAUGE_VALUE,
    CanaryIntervalError,
    CanaryPath,
    HopLimit,
    Observation,
    Verdict,
    judge,
    minimum_interval_ms,
    plan_paths,
    summarize,
)
from clearlane.core.monitor.divergence import (
    Bands,
    Reading,
    count_divergence,
    freshness,
    mark_divergence,
    spread_bps,
)
from clearlane.core.monitor.trust import TrustRing
from tests.conftest import EXAMPLE_CONFIG

LIMITS = {h: HopLimit(1_000, 3_000) for h in ("accepted", "cleared", "final")}
PATH = CanaryPath("L2:fast", "A", "B", None, ("accepted", "cleared", "final"), LIMITS)


def _obs(**hops: int) -> Observation:
    return Observation("L2:fast", "c-1", 0, hops=dict(hops))


def test_verdicts_name_the_hop() -> None:
    assert judge(PATH, _obs(accepted=10, cleared=500, final=900), 900).verdict is Verdict.PASSED
    slow = judge(PATH, _obs(accepted=10, cleared=1_500, final=2_000), 2_000)
    assert (slow.verdict, slow.hop) == (Verdict.DEGRADED, "cleared")
    waiting = judge(PATH, _obs(accepted=10), 2_000)
    assert (waiting.verdict, waiting.hop) == (Verdict.PENDING, "cleared")
    late = judge(PATH, _obs(accepted=10), 3_001)
    assert (late.verdict, late.hop) == (Verdict.FAILED, "cleared")
    proof = _obs(accepted=1, cleared=2, final=3)
    proof.checks = {"proof": False, "delivery": None}
    assert judge(PATH, proof, 10).hop == "proof"
    delivery = _obs(accepted=1, cleared=2, final=3)
    delivery.checks = {"ledger": True, "delivery": False}
    assert judge(PATH, delivery, 10).verdict is Verdict.DEGRADED  # at least once: it may lag
    broken = _obs(accepted=1)
    broken.broken_hop, broken.detail = "anchored", "unwound"
    assert (judge(PATH, broken, 5).verdict, judge(PATH, broken, 5).hop) == (Verdict.FAILED, "anchored")
    assert GAUGE_VALUE == {Verdict.PASSED: 1.0, Verdict.DEGRADED: 0.5, Verdict.FAILED: 0.0}
    assert summarize([judge(PATH, _obs(accepted=1, cleared=2, final=3), 3), late]) is Verdict.FAILED
    with pytest.raises(ValueError, match="degraded_ms"):
        HopLimit(5, 4)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5_000), min_size=3, max_size=3), st.integers(0, 10_000))
def test_a_verdict_never_passes_a_hop_past_its_fail_limit(times: list[int], now: int) -> None:
    hops = dict(zip(("accepted", "cleared", "final"), sorted(times), strict=True))
    result = judge(PATH, _obs(**{k: v for k, v in hops.items() if v <= now}), now)
    late = any(v > 3_000 and v <= now for v in hops.values()) or (
        now > 3_000 and any(v > now for v in hops.values())
    )
    assert (result.verdict is Verdict.FAILED) == late


def test_paths_follow_the_routing_rules() -> None:
    raw = tomllib.loads(EXAMPLE_CONFIG.read_text())
    assert plan_paths(parse_config(raw), 60_000) == ([], ["L1", "L2:fast", "L2:retail"])
    raw["participants"] += [
        {"id": "C-MM-1", "kind": "market_maker", "synthetic": True},
        {"id": "C-MM-2", "kind": "market_maker", "synthetic": True},
    ]
    config = parse_config(raw)
    paths, missing = plan_paths(config, 60_000)
    assert [p.name for p in paths] == ["L1", "L2:fast", "payment", "escrow"] and missing == ["L2:retail"]
    assert config.synthetic_ids == frozenset({"C-MM-1", "C-MM-2"})
    assert all(lim.failed_ms <= 60_000 for p in paths for lim in p.limits.values())
    with pytest.raises(CanaryIntervalError, match="L1 needs when healthy: use at least 19000 ms"):
        plan_paths(config, 5_000)
    assert minimum_interval_ms(config) == 28_000 and minimum_interval_ms(config, 10_000) == 38_000


def test_marks_diverge_per_pair_band_and_stale_or_missing_sources_are_findings() -> None:
    marks = {
        ("a", "BTC"): Reading("a", "BTC", 65_000 * 10**10, 0),
        ("b", "BTC"): Reading("b", "BTC", 66_000 * 10**10, 0),
        ("a", "ETH"): Reading("a", "ETH", 3_200 * 10**10, 0),
    }
    assert spread_bps(65_000, 66_000) == 154
    wide = Bands(default_bps=100, per_pair={("a", "b", "BTC"): 200})
    assert mark_divergence(marks, ["a", "b"], ["BTC", "ETH"], wide) == []
    (found,) = mark_divergence(marks, ["a", "b"], ["BTC", "ETH"], Bands(default_bps=100))
    assert (found.kind, found.subject, found.sources, found.spread_bps) == (
        "diverged",
        "BTC",
        ("a", "b"),
        154,
    )
    stale = freshness(marks, ["a", "b"], ["BTC", "ETH"], {"a": 1_000}, 5_000)
    assert sorted((f.kind, f.sources[0], f.subject) for f in stale) == [
        ("no_data", "b", "ETH"),
        ("stale", "a", "BTC"),
        ("stale", "a", "ETH"),
    ]
    counts = count_divergence("X", {"venue": 4, "batch_report": 4, "clearlane": None})
    assert [f.kind for f in counts] == ["no_data"]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 10**15), st.integers(1, 10**15), st.integers(0, 10_000))
def test_the_band_check_is_symmetric_and_exact(a: int, b: int, band: int) -> None:
    marks = {("x", "A"): Reading("x", "A", a, 0), ("y", "A"): Reading("y", "A", b, 0)}
    found = mark_divergence(marks, ["x", "y"], ["A"], Bands(default_bps=band))
    assert bool(found) == (abs(a - b) * 10_000 > band * min(a, b))


def test_trust_is_the_product_of_its_parts_over_each_window() -> None:
    ring = TrustRing()
    assert ring.score(0, 3_600_000).value == 0.0  # never sampled: no trust
    for minute in range(60):
        ring.record(minute * 60_000, available=True, fresh=minute % 2 == 0, agreed=True, got=1, expected=1)
    one_hour = ring.score(59 * 60_000, 3_600_000)
    assert one_hour.availability == 1.0 and one_hour.freshness == 0.5 and one_hour.value == 0.5
    ring.record(2 * 3_600_000, available=False, fresh=False)
    later = ring.scores(2 * 3_600_000)
    assert later["1h"].value == 0.0 and 0.0 < later["24h"].availability < 1.0


def test_the_halt_policy_halts_then_resumes_after_quiet() -> None:
    off = policy.HaltPolicy()
    assert policy.halt_changes(off, frozenset(), {"BTC"}, {}, 0) == {}
    on = policy.HaltPolicy(enabled=True, resume_after_ms=1_000)
    assert policy.halt_changes(on, frozenset(), {"BTC"}, {"BTC": 0}, 0) == {"BTC": True}
    assert policy.halt_changes(on, frozenset({"BTC"}), set(), {"BTC": 0}, 500) == {}
    assert policy.halt_changes(on, frozenset({"BTC"}), set(), {"BTC": 0}, 1_000) == {"BTC": False}
    payload = policy.change_payload("m-1", {"BTC": True})
    assert payload == {"change_id": "m-1", "changes": {"assets": {"BTC": {"l2_halted": True}}}}
