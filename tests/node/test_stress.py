"""Stress replay (node/stress.py): a generated day replayed under every fault type, checked for
determinism, fault coverage, safety and liveness, and the report's shapes."""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clearlane.adapters.embedded import open_memory_node
from clearlane.core.model.events import BatchFinal
from clearlane.core.risk.scenario import FAULT_TYPES, ScenarioError, load_scenario, parse_scenario
from clearlane.node import stress
from clearlane.node.intake import iter_input
from clearlane.sim.generator import generate_day

# The CI scenario (issue 14): 100,000 trades of a generated day compressed into one hour around
# noon, 100 chunks, the five fault types and a Cover-2 default (docs/PERFORMANCE.md: ~16 s CPU).
TRADES = 100_000
SMALL = 2_000  # the day of the tests that replay more than once (determinism, a store's log)
SCENARIOS = Path(stress.__file__).parents[1] / "sim" / "scenarios"
FIVE = {
    "id": "t",
    "seed": 11,
    "resources": {"default_fund_usd": "1000000", "house_usd": "100"},
    "faults": [
        {"type": "batch_failure", "pools": ["retail", "bulk"], "count": 2},
        {"type": "finality_delay", "probability": 0.3, "blocks": 5},
        {"type": "anchor_reorg", "depth": 3, "count": 2},
        {"type": "base_layer_outage", "at": "12:00", "duration_s": 900},
        {"type": "participant_default", "participant": "cover2", "at": "12:05"},
        {"type": "mark_shock", "asset": "BTC", "percent": "-15", "at": "12:01"},
    ],
}


def _day(factory: pytest.TempPathFactory, trades: int) -> stress.DaySource:
    directory = factory.mktemp(f"day{trades}")
    generated = generate_day(trades=trades, participants=30, assets=4, seed=3)
    replace(generated, trades=stress.compress_trades(generated.trades, 1.0)).write(directory)
    files = (directory / "deposits.jsonl", directory / "trades.parquet")
    label = f"generated-{trades}-1h"
    return stress.DaySource(directory / "config.toml", files=files, label=label, steps_per_day=100)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> stress.DaySource:
    return _day(tmp_path_factory, TRADES)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> stress.DaySource:
    return _day(tmp_path_factory, SMALL)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


def _run(day: stress.DaySource, keys: Path, raw: dict[str, Any] = FIVE) -> stress.StressResult:
    hint = TRADES if day.label.startswith(f"generated-{TRADES}-") else SMALL
    return stress.run_stress(
        lambda path: open_memory_node(path, keys=keys), day, parse_scenario(raw), trades_hint=hint
    )


@pytest.fixture(scope="module")
def result(day: stress.DaySource, keys: Path) -> stress.StressResult:
    return _run(day, keys)


@pytest.fixture(scope="module")
def small_result(small: stress.DaySource, keys: Path) -> stress.StressResult:
    return _run(small, keys)


def test_same_scenario_seed_and_day_give_byte_identical_reports(
    small: stress.DaySource, keys: Path, small_result: stress.StressResult
) -> None:
    again = _run(small, keys)
    assert stress.report_json(again.report) == stress.report_json(small_result.report)
    assert stress.report_csv(again.report) == stress.report_csv(small_result.report)


def test_every_fault_type_fires(result: stress.StressResult) -> None:
    faults = result.report["faults"]
    assert sorted(faults) == sorted(FAULT_TYPES)
    for kind, counts in faults.items():
        assert counts["fired"] >= 1, kind
    assert faults["batch_failure"]["fired"] == 2


def test_safety_and_liveness_hold(result: stress.StressResult) -> None:
    report = result.report
    assert report["safety"]["violations"] == 0 and report["safety"]["checked_steps"] > 0
    assert report["liveness"]["ok"], report["liveness"]
    unwound = [b for b in result.stressed.batches.values() if b.unwound_ms >= 0]
    assert len(unwound) == report["system"]["unwound_batches"] >= 2
    assert all(b.group is not None and b.final_ms >= b.unwound_ms for b in unwound)
    fees = sum(r["scenario"]["l1_fallback_fees_minor"] for r in report["participants"])
    flows = sum(b.flows for b in unwound)
    assert fees == flows * int(result.config.chain["fee_per_tx_minor"])
    assert all(r["baseline"]["l1_fallback_fees_minor"] == 0 for r in report["participants"])


def test_the_default_runs_the_waterfall_and_names_the_cover2_pair(result: stress.StressResult) -> None:
    report = result.report
    (default,) = report["defaults"]
    assert default["defaulters"] == report["system"]["baseline"]["cover2"]["defaulters"]
    layers = (
        default["from_collateral_cents"]
        + default["from_default_fund_cents"]
        + default["from_house_cents"]
        + default["left_short_cents"]
    )
    assert layers == default["unpaid_cents"]
    assert sum(default["left_short"].values()) == default["left_short_cents"]
    for name in ("baseline", "scenario"):
        system = report["system"][name]
        assert system["cover2"]["obligation_cents"] >= system["cover1"]["obligation_cents"]


def test_stress_lengthens_the_finality_window_and_the_margin(result: stress.StressResult) -> None:
    horizon = result.report["system"]["margin_horizon"]
    base, scen = horizon["baseline"]["windows_ms"], horizon["scenario"]["windows_ms"]
    assert all(s >= b for b, s in zip(base, scen, strict=True)) and scen != base
    by_lane = result.report["system"]["margin_by_lane_cents"]["baseline"]
    assert set(by_lane) == {"fast", "retail", "bulk", "L1"}
    rows = result.report["participants"]
    assert sum(r["scenario"]["margin_var_cents"] for r in rows) > sum(
        r["baseline"]["margin_var_cents"] for r in rows
    )


def test_a_different_seed_changes_the_choices(
    day: stress.DaySource, keys: Path, result: stress.StressResult
) -> None:
    frame_faults = result.compiled.chain_faults
    other = stress.compile_scenario(
        parse_scenario({**FIVE, "seed": 12}), stress._frame(result.baseline, result.config)
    )
    assert other.chain_faults != frame_faults


def test_csv_and_auth063_shapes(result: stress.StressResult) -> None:
    rows = list(csv.reader(io.StringIO(stress.report_csv(result.report))))
    assert rows[0][0] == "participant" and len(rows) == 1 + result.config.participant_count
    assert len(rows[0]) == 1 + 3 * len(stress.CSV_COLUMNS)
    doc = stress.report_auth063(result.report)
    (test,) = doc["Document"]["CCPLqdtyStrssTstgRsltRpt"]["LqdtyStrssTstRslt"]
    assert [d["LqdtyHrzn"] for d in test["LqdtyReqrdAndAvlbl"]] == list(stress.AUTH063_HORIZONS)
    cover2 = result.report["system"]["scenario"]["cover2"]
    assert {test["ScnroDfltrs"]["Cover1Id"], test["ScnroDfltrs"]["Cover2Id"]} == set(cover2["defaulters"])


def test_auth063_xml_validates_against_the_message_structure(result: stress.StressResult) -> None:
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(Path(__file__).with_name("auth.063.001.01.subset.xsd"))))
    ids = result.config.participant_ids
    leis = {pid: f"{i:018d}{i % 97:02d}" for i, pid in enumerate(ids)}  # LEI-shaped stand-ins
    xml = stress.report_auth063_xml(result.report, leis=leis)
    assert xml == stress.report_auth063_xml(result.report, leis=leis)  # byte-stable
    root = etree.fromstring(xml)
    schema.assertValid(root)
    ns = {"a": stress.AUTH063_NS}
    settle = root.findtext(
        ".//a:LqdtyReqrdAndAvlbl[a:LqdtyHrzn='SAMD']/a:StrssLqdRsrcRqrmnt/a:SttlmOrDlvry/a:Amt", namespaces=ns
    )
    cents = result.report["system"]["scenario"]["cover2"]["obligation_cents"]
    assert settle == f"{cents // 100}.{cents % 100:02d}"
    # Without LEIs the participant ids are written as they are, which the LEI pattern refuses.
    assert not schema.validate(etree.fromstring(stress.report_auth063_xml(result.report)))


def test_a_stores_input_log_replays_like_its_files(
    small: stress.DaySource, keys: Path, tmp_path: Path
) -> None:
    day = small
    node = open_memory_node(day.config_path, keys=keys)
    for path in day.files:
        node.clear_batches(
            iter_input(path, node.config),
            source=path.name,
            events_at_ms=1_795_132_800_000 if "dep" in path.name else None,
        )
    node.settle_until_quiet()
    logged = stress.DaySource(day.config_path, log=node.store, label="log")
    plan = stress.RunPlan(day.config_path, trades=SMALL)
    from_log, _ = stress.replay(lambda p: open_memory_node(p, keys=keys), logged, plan)
    from_files, _ = stress.replay(lambda p: open_memory_node(p, keys=keys), day, plan)
    assert len(from_log.batches) > 0
    assert from_log.fired["unwound"] == from_files.fired["unwound"] == 0
    assert sum(b.flows for b in from_log.batches.values()) == sum(
        b.flows for b in from_files.batches.values()
    )


def test_a_batch_settled_twice_is_caught(
    small: stress.DaySource, keys: Path, small_result: stress.StressResult
) -> None:
    result = small_result
    node = open_memory_node(small.config_path, keys=keys)
    collector = stress.Collector(node, buffer_pct=100.0, delay_ms=0, seed=5)
    batch_id, batch = next(iter(result.baseline.batches.items()))
    collector.facts.batches[batch_id] = batch
    with pytest.raises(stress.StressSafetyViolation, match=r"settled twice.*--seed 5"):
        collector._event(None, BatchFinal(batch_id, batch.final_ms + 1))  # type: ignore[arg-type]


def test_toml_dumps_round_trips_a_configuration(day: stress.DaySource) -> None:
    raw = tomllib.loads(day.config_path.read_text())
    raw["chain"]["faults"] = {"reorgs": [[5, 2]], "drop_probability": 0.25, "drop_tx_ids": ["a:1"]}
    assert tomllib.loads(stress.toml_dumps(raw)) == raw


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.stem)
def test_the_shipped_scenarios_load(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.id == path.stem and scenario.faults


def test_liveness_and_latency_figures_are_integers(result: stress.StressResult) -> None:
    pools = result.report["system"]["finality_latency_by_pool"]["scenario"]
    assert all(isinstance(v["p99_ms"], int) for v in pools.values())
    assert np.all(np.diff(np.array(result.stressed.times)) >= 0)


@pytest.mark.parametrize(
    ("fault", "key"),
    [
        ({"type": "mark_shock", "asset": "DOGE", "percent": "5"}, "faults.0.asset"),
        ({"type": "batch_failure", "pools": ["nope"], "count": 1}, "faults.0.pools"),
        ({"type": "participant_default", "participant": "NOBODY"}, "faults.0.participant"),
    ],
)
def test_a_scenario_naming_what_the_day_lacks_is_refused_before_replay(
    day: stress.DaySource, fault: dict[str, Any], key: str
) -> None:
    scenario = parse_scenario({"id": "x", "seed": 1, "faults": [fault]})
    with pytest.raises(ScenarioError) as info:
        stress.run_stress(lambda path: pytest.fail("no replay may start"), day, scenario)
    assert info.value.key == key


def test_the_worst_seed_is_a_safety_violation_then_a_liveness_failure(
    small_result: stress.StressResult,
) -> None:
    base = parse_scenario({"id": "w", "seed": 1})
    ok = stress.SeedOutcome(base.with_seed(1), None, small_result)
    late = stress.SeedOutcome(base.with_seed(2), "liveness: late", small_result)
    broken = stress.SeedOutcome(base.with_seed(3), "safety: settled twice", None)
    assert stress.worst([ok, late]) is late and stress.worst([ok, late, broken]) is broken
    assert stress.worst([ok, stress.SeedOutcome(base.with_seed(0), None, small_result)]).scenario.seed == 0
    fired = stress.coverage([ok, broken])
    assert fired == {k: int(v["fired"] > 0) for k, v in sorted(small_result.report["faults"].items())}
