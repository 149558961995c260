"""Canaries down every path (issue 15): healthy paths pass; a base-layer outage injected with the
stress faults (core/risk/scenario → node/stress.faulted_config) is detected within two canary
intervals, naming the failing hop. The loop is driven by the test on a fake wall clock."""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path
from typing import Any

from clearlane.adapters.embedded import EMBEDDED
from clearlane.adapters.http.routes.monitoring import proof_verifier
from clearlane.core.monitor.canary import Verdict
from clearlane.core.risk.scenario import DayFrame, compile_scenario, parse_scenario
from clearlane.node.monitor.canaries import Canaries, CanaryOptions
from clearlane.node.runtime import AcceleratedClock, Runtime, RuntimeOptions
from clearlane.node.stress import faulted_config, toml_dumps
from tests.conftest import EXAMPLE_CONFIG, T0

INTERVAL = 30_000


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def canary_config(directory: Path) -> Path:
    """The example configuration with a canary set: two synthetic market makers (→ fast) and two
    synthetic retail accounts (→ retail), with credit for their tiny trades."""
    raw = tomllib.loads(EXAMPLE_CONFIG.read_text())
    for pid, kind in (("CANARY-MM-A", "market_maker"), ("CANARY-MM-B", "market_maker")):
        raw["participants"].append({"id": pid, "kind": kind, "credit_limit_usd": "1000", "synthetic": True})
    for pid in ("CANARY-RT-A", "CANARY-RT-B"):
        raw["participants"].append(
            {"id": pid, "kind": "retail", "credit_limit_usd": "1000", "synthetic": True}
        )
    path = directory / "canary.toml"
    path.write_text(toml_dumps(raw), encoding="utf-8")
    return path


def driven_runtime(tmp_path: Path, config: Path, wall: FakeTime) -> Runtime:
    clock = AcceleratedClock(100, T0, monotonic=wall)
    rt = Runtime(
        tmp_path / "c.db", config, clock=clock, options=RuntimeOptions(tune_process=False), opener=EMBEDDED
    )
    rt._live = True
    rt._thread = threading.Thread(target=lambda: None)
    rt._thread.start()
    return rt


def run_for(rt: Runtime, wall: FakeTime, engine_ms: int, step_ms: int = 1_000) -> None:
    """Advance engine time by ``engine_ms`` in loop iterations of ``step_ms`` engine ms each."""
    for _ in range(engine_ms // step_ms):
        wall.now += step_ms / 100 / 1000
        rt._iteration()


def test_every_path_passes_on_a_healthy_node(tmp_path: Path) -> None:
    wall = FakeTime()
    rt = driven_runtime(tmp_path, canary_config(tmp_path), wall)
    results: list[Any] = []
    verifier = proof_verifier(rt)  # the evidence prover + the standalone verifier, offline
    canaries = Canaries(
        rt, CanaryOptions(interval_ms=INTERVAL, loop_slack_ms=1_000), verifier, on_result=results.append
    )
    rt.hooks.append(canaries.tick)
    try:
        assert set(canaries.paths) == {"L1", "L2:fast", "L2:retail", "payment", "escrow", "unwind"}
        assert canaries.unreachable == []
        run_for(rt, wall, 3 * INTERVAL)
        by_path: dict[str, list[Verdict]] = {}
        for r in results:
            by_path.setdefault(r.path, []).append(r.verdict)
        exercised = set(canaries.paths) - {"unwind"}  # nothing unwinds on a healthy node
        assert set(by_path) == exercised
        assert all(v == [Verdict.PASSED] * len(v) for v in by_path.values()), results
        assert canaries.gauges() == dict.fromkeys(exercised, 1.0)
        fast = next(r for r in results if r.path == "L2:fast")
        assert verifier(fast.flow_id) is None and "EvidenceError" in str(verifier("no-such-trade"))
        snap = canaries.snapshot()
        assert {p["path"]: p["status"] for p in snap["paths"]} == {
            **dict.fromkeys(exercised, "passed"),
            "unwind": "pending",
        }
        # Only canaries traded: the figures clients see (savings, volume, timeline) are empty.
        rm = rt.rm
        assert rm.batches.counts.sum() > 0  # batches did clear
        assert float(rm.batches.gross_usd.sum()) < 0.01 and float(rm.batches.net_usd.sum()) < 0.01
        assert all(int(b.trades.sum()) == 0 for t in rm.activity.timelines for _, b in t.window(0, rm.now_ms))
    finally:
        rt.stop()


def test_a_base_layer_outage_is_caught_within_two_intervals(tmp_path: Path) -> None:
    start = T0 + INTERVAL + 5_000  # after the first round of canaries passed
    scenario = parse_scenario(
        {
            "id": "outage",
            "seed": 3,
            "faults": [{"type": "base_layer_outage", "at": _hhmmss(start), "duration_s": 600}],
        }
    )
    day = T0 - T0 % 86_400_000
    frame = DayFrame(day, T0, T0 + 3_600_000, T0, 2_000, 8, {})
    faults = compile_scenario(scenario, frame).chain_faults
    assert faults["outages"] == [[start, start + 600_000]]
    config = faulted_config(canary_config(tmp_path), faults, tmp_path)
    wall = FakeTime()
    rt = driven_runtime(tmp_path, config, wall)
    results: list[Any] = []
    canaries = Canaries(
        rt, CanaryOptions(interval_ms=INTERVAL, loop_slack_ms=1_000), on_result=results.append
    )
    rt.hooks.append(canaries.tick)
    try:
        run_for(rt, wall, 4 * INTERVAL)
        failed = [r for r in results if r.verdict is Verdict.FAILED]
        assert failed, results
        first = min(r.decided_ms for r in failed)
        assert first - start <= 2 * INTERVAL
        assert {r.hop for r in failed} <= {"submitted", "anchored", "final"}
        assert canaries.gauges()[failed[0].path] == 0.0
    finally:
        rt.stop()


def _hhmmss(ms: int) -> str:
    s = (ms % 86_400_000) // 1000
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def test_an_unwound_canary_exercises_the_unwind_path(tmp_path: Path) -> None:
    """The fast pool's first batch (the first canary's) has its anchors dropped (a stress
    batch_failure): the canary fails at ``anchored``, then, once the pool's anchor deadline
    unwinds the batch, the unwind path is judged on the flow's gross L1 settlement — and
    passes."""
    scenario = parse_scenario(
        {"id": "unwind", "seed": 1, "faults": [{"type": "batch_failure", "batches": ["fast-00000001"]}]}
    )
    frame = DayFrame(T0 - T0 % 86_400_000, T0, T0 + 3_600_000, T0, 2_000, 10, {})
    config = faulted_config(canary_config(tmp_path), compile_scenario(scenario, frame).chain_faults, tmp_path)
    wall = FakeTime()
    rt = driven_runtime(tmp_path, config, wall)
    results: list[Any] = []
    canaries = Canaries(
        rt, CanaryOptions(interval_ms=INTERVAL, loop_slack_ms=2_000), on_result=results.append
    )
    rt.hooks.append(canaries.tick)
    try:
        run_for(rt, wall, 140_000, step_ms=2_000)
        first = next(r for r in results if r.path == "L2:fast")
        assert (first.verdict, first.hop) == (Verdict.FAILED, "anchored")
        unwind = [r for r in results if r.path == "unwind"]
        assert (Verdict.PASSED, first.flow_id) in [(r.verdict, r.flow_id) for r in unwind]
        assert all(r.verdict is Verdict.PASSED for r in unwind)
    finally:
        rt.stop()
