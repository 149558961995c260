"""``clearlane stress``: a generated day under a shipped scenario, every export written, the
canonical JSON identical across two runs; bad invocations exit 2 naming the problem."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from typer.testing import CliRunner

from clearlane.adapters.cli.main import app

SCENARIO = Path(__file__).parents[3] / "src" / "clearlane" / "sim" / "scenarios" / "retail-unwind.toml"


def _stress(tmp_path: Path, out: str, *extra: str) -> str:
    args = [
        "stress",
        "--scenario",
        str(SCENARIO),
        "--trades",
        "1500",
        "--participants",
        "30",
        "--day-hours",
        "1",
    ]
    args += ["--assets", "3", "--workdir", str(tmp_path / "days"), "--out", str(tmp_path / out), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_stress_writes_every_export_and_is_reproducible(tmp_path: Path) -> None:
    output = _stress(
        tmp_path,
        "a.json",
        "--csv",
        str(tmp_path / "r.csv"),
        "--auth063",
        str(tmp_path / "r.xml.json"),
        "--auth063-xml",
        str(tmp_path / "r.xml"),
    )
    assert "stress scenario retail-unwind" in output and "Cover-1" in output
    _stress(tmp_path, "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    report = json.loads((tmp_path / "a.json").read_bytes())
    assert report["faults"]["batch_failure"]["fired"] == 5
    # The scenario has the liquidity check charge the finality-window margin (both runs).
    charged = [r["baseline"]["liquidity_check_margin_cents"] for r in report["participants"]]
    assert max(charged) > 0 and "liquidity_diverted_flows" in report["system"]
    assert (tmp_path / "r.csv").read_text().startswith("participant,")
    assert "CCPLqdtyStrssTstgRsltRpt" in json.loads((tmp_path / "r.xml.json").read_text())["Document"]
    assert b"<CCPLqdtyStrssTstgRsltRpt>" in (tmp_path / "r.xml").read_bytes()


def test_stress_seed_override_and_json_output(tmp_path: Path) -> None:
    output = _stress(tmp_path, "c.json", "--seed", "9", "--json")
    assert json.loads(output.splitlines()[-1])["scenario"]["seed"] == 9


def test_stress_needs_exactly_one_day(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["stress", "--scenario", str(SCENARIO)])
    assert result.exit_code == 2 and "exactly one of" in result.output


def test_a_bad_scenario_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\nseed = 1\n[[faults]]\ntype = "meteor"\n')
    result = CliRunner().invoke(app, ["stress", "--scenario", str(bad), "--trades", "10"])
    assert result.exit_code == 2 and "faults.0" in result.output


def test_stress_replays_a_stores_input_log(tmp_path: Path) -> None:
    from clearlane.node.stress import compress_trades
    from clearlane.sim.generator import generate_day

    generated = generate_day(trades=800, participants=20, assets=3, seed=4)
    day = replace(generated, trades=compress_trades(generated.trades, 1.0)).write(tmp_path / "day")
    db = tmp_path / "day.db"
    cli = CliRunner()
    for path in (day.deposits, day.trades):
        result = cli.invoke(app, ["clear", str(path), "--db", str(db), "--config", str(day.config)])
        assert result.exit_code == 0, result.output
    out = tmp_path / "log.json"
    result = cli.invoke(app, ["stress", "--scenario", str(SCENARIO), "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_bytes())
    assert report["scenario"]["day"] == str(db) and report["system"]["batches"]["baseline"] > 0


def test_a_seed_sweep_reports_the_worst_and_shrinks_a_failure(tmp_path: Path) -> None:
    """Two seeds of a scenario whose liveness bound (1 s) a day cannot meet (batches cleared
    after the last input take longer than that to be final): the sweep table, the worst seed,
    and the failure shrunk within its budget to a smaller case, printed as TOML that reads back."""
    import tomllib

    from clearlane.core.risk.scenario import parse_scenario

    bad = tmp_path / "tight.toml"
    bad.write_text(
        'id = "tight"\nseed = 3\nliveness_bound_s = 1\n'
        '[[faults]]\ntype = "finality_delay"\nprobability = 0.5\nblocks = 4\n'
        '[[faults]]\ntype = "anchor_reorg"\ndepth = 2\n'
    )
    args = ["stress", "--scenario", str(bad), "--trades", "400", "--participants", "12", "--assets", "3"]
    args += [
        "--day-hours",
        "0.5",
        "--workdir",
        str(tmp_path / "days"),
        "--seeds",
        "2",
        "--shrink-budget",
        "2",
    ]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 1, result.output
    out = result.output
    assert "seed sweep" in out and "seeds failed" in out and "liveness:" in out
    assert "faults fired in: anchor_reorg 2/2, finality_delay 2/2" in out
    assert "shrunk in 2 replays" in out and "dropped fault 1 (anchor_reorg)" in out
    text = out[out.index('id = "tight"') : out.index("stress scenario tight")]
    shrunk = parse_scenario(tomllib.loads(text))
    assert [f.type for f in shrunk.faults] == [] and shrunk.liveness_bound_s == 1
