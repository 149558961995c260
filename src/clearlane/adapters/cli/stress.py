"""The ``stress`` command: replay a day under a stress scenario (``node/stress.py``) on in-memory
nodes and print or write the report (canonical JSON, CSV, an auth.063-shaped JSON).

The day is a generated one (``--trades N``, kept under ``--workdir``), a day directory
(``--day``: config.toml, deposits.jsonl, trades.parquet as ``generate_day`` writes them), one
input file with a configuration (``--input`` + ``--config``), or a store's input log (``--db``:
its stored configuration; its chain observations are made anew by the replay's base layer).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clearlane.adapters.cli.common import console, fail, open_store, progress_bar


def stress(
    scenario: Annotated[Path, typer.Option("--scenario", help="Scenario TOML (docs/STRESS.md).")],
    day: Annotated[
        Path | None, typer.Option(help="A day directory (config.toml, deposits.jsonl, trades.parquet).")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="One input file (needs --config).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Configuration for --input.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Replay this store's input log.")] = None,
    trades: Annotated[int | None, typer.Option(help="Generate a day with this many trades.")] = None,
    participants: Annotated[int, typer.Option(help="Participants of a generated day.")] = 200,
    assets: Annotated[int, typer.Option(help="Assets of a generated day.")] = 8,
    day_seed: Annotated[
        int, typer.Option(help="Seed of a generated day (the input stays put when --seed varies).")
    ] = 42,
    workdir: Annotated[Path, typer.Option(help="Where generated days are kept.")] = Path("stress-days"),
    steps_per_day: Annotated[
        int, typer.Option(min=10, max=100_000, help="Trade chunks a day: the intraday series' grain.")
    ] = 600,
    day_hours: Annotated[
        float | None,
        typer.Option(min=0.1, max=24, help="Compress a generated day into this many hours around noon."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario's seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the canonical JSON report.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the canonical JSON report here.")] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write the per-participant CSV here.")
    ] = None,
    auth063: Annotated[Path | None, typer.Option(help="Write the auth.063-shaped JSON here.")] = None,
    auth063_xml: Annotated[
        Path | None, typer.Option("--auth063-xml", help="Write the auth.063 XML (lxml) here.")
    ] = None,
    leis: Annotated[
        Path | None, typer.Option(help="JSON {participant: LEI} for the auth.063 defaulter ids.")
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            min=1, max=1000, help="Sweep this many seeds (from --seed or the scenario's); report the worst."
        ),
    ] = None,
    shrink_budget: Annotated[
        int, typer.Option(min=0, help="Replays spent shrinking a failing seed to a minimal case (0: none).")
    ] = 24,
) -> None:
    """Replay a day under a stress scenario: liquidity, margin and default impact per participant."""
    from clearlane.core.risk.scenario import load_scenario
    from clearlane.node import stress as node_stress

    chosen = load_scenario(scenario)
    if seed is not None:
        chosen = chosen.with_seed(seed)
    given = sum(x is not None for x in (day, input_file, db, trades))
    if given != 1:
        raise fail("give exactly one of --day, --input, --db, --trades")
    with tempfile.TemporaryDirectory(prefix="clearlane-stress-") as tmp:
        source, hint = _source(
            day, input_file, config, db, trades, participants, assets, workdir, day_seed, Path(tmp), day_hours
        )
        source = replace(source, steps_per_day=steps_per_day)
        keys = Path(tmp) / "keys"

        def open_node(path: Path) -> Any:
            from clearlane.adapters.embedded import open_memory_node

            return open_memory_node(path, keys=keys)

        with progress_bar() as bar:
            tasks: dict[str, Any] = {}

            def on_progress(phase: str, done: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=hint or None)
                bar.update(tasks[phase], completed=done)

            # One seed is a sweep of one: a failing run is shrunk all the same.
            sweeper = node_stress.Sweeper(open_node, source, trades_hint=hint, progress=on_progress)
            outcomes, worst, shrunk = _sweep(sweeper, chosen, seeds or 1, shrink_budget)
        if source.log is not None:
            source.log.close()
    if seeds is not None or worst.failure:
        _print_sweep(outcomes, worst, shrunk)
    if worst.result is None:  # a safety invariant broke: there is no report to write
        raise typer.Exit(2)
    _emit(worst.result.report, out, csv_file, auth063, auth063_xml, leis, as_json)


def _emit(
    report: dict[str, Any],
    out: Path | None,
    csv_file: Path | None,
    auth063: Path | None,
    auth063_xml: Path | None,
    leis: Path | None,
    as_json: bool,
) -> None:
    """Write the exports, print the report, exit 1 if liveness failed."""
    from clearlane.node import stress as node_stress

    _write(report, out, csv_file, auth063)
    if auth063_xml is not None:
        lei_map = json.loads(leis.read_text(encoding="utf-8")) if leis is not None else None
        auth063_xml.write_bytes(node_stress.report_auth063_xml(report, leis=lei_map))
    if as_json:
        typer.echo(node_stress.report_json(report).decode())
    else:
        _print(report)
    if not report["liveness"]["ok"]:
        raise typer.Exit(1)


def _sweep(sweeper: Any, chosen: Any, seeds: int, budget: int) -> tuple[list[Any], Any, Any]:
    """Every seed's outcome, the worst, and — when the worst failed — its shrunk case."""
    from clearlane.node import stress as node_stress

    outcomes = sweeper.sweep(chosen, [chosen.seed + i for i in range(seeds)])
    worst = node_stress.worst(outcomes)
    shrunk = sweeper.shrink(worst, budget=budget) if worst.failure and budget else None
    return outcomes, worst, shrunk


def _print_sweep(outcomes: list[Any], worst: Any, shrunk: Any) -> None:
    from clearlane.core.risk.shrink import scenario_toml
    from clearlane.node import stress as node_stress

    table = Table("seed", "outcome", "unwound", "Cover-2 shortfall", "peak need Σ", title="seed sweep (USD)")
    for outcome in outcomes:
        report = outcome.result.report if outcome.result is not None else None
        table.add_row(
            str(outcome.scenario.seed),
            outcome.kind if outcome.failure is None else f"[red]{outcome.kind}[/]",
            str(report["system"]["unwound_batches"]) if report else "—",
            _usd(report["system"]["scenario"]["cover2"]["shortfall_cents"]) if report else "—",
            _usd(sum(r["scenario"]["peak_intraday_liquidity_need_cents"] for r in report["participants"]))
            if report
            else "—",
        )
    console.print(table)
    failed = sum(o.failure is not None for o in outcomes)
    console.print(
        f"worst: seed {worst.scenario.seed} ({worst.kind}); {failed} of {len(outcomes)} seeds failed"
    )
    fired = node_stress.coverage(outcomes)
    if fired:
        never = [kind for kind, n in fired.items() if n == 0]
        console.print(
            "faults fired in: "
            + ", ".join(f"{kind} {n}/{len(outcomes)}" for kind, n in fired.items())
            + (f" — [red]never fired: {', '.join(never)}[/]" if never else "")
        )
    if worst.failure:
        console.print(f"[red]{worst.failure}[/]")
    if shrunk is not None:
        state = "budget spent" if shrunk.exhausted else "no smaller case fails"
        console.print(
            f"shrunk in {shrunk.tries} replays ({state}): "
            + ("; ".join(shrunk.steps) or "no smaller case failed")
        )
        console.print("minimal failing case (save as a scenario file and re-run with --scenario):")
        typer.echo(scenario_toml(shrunk.scenario))


def _source(
    day: Path | None,
    input_file: Path | None,
    config: Path | None,
    db: str | None,
    trades: int | None,
    participants: int,
    assets: int,
    workdir: Path,
    seed: int,
    tmp: Path,
    day_hours: float | None = None,
) -> tuple[Any, int]:
    from clearlane.node.stress import DaySource

    if trades is not None:
        day = _generated(workdir, trades, participants, assets, seed, day_hours)
    if day is not None:
        files = tuple(p for p in (day / "deposits.jsonl", day / "trades.parquet") if p.exists())
        return DaySource(day / "config.toml", files=files, label=str(day)), trades or _rows(
            day / "trades.parquet"
        )
    if input_file is not None:
        if config is None:
            raise fail("--input needs --config")
        return DaySource(config, files=(input_file,), label=str(input_file)), 0
    store = open_store(str(db))
    stored = store.get_meta("config_toml")
    if stored is None:
        store.close()
        raise fail(f"{db}: no stored configuration")
    path = tmp / "config.toml"
    path.write_text(stored, encoding="utf-8")
    return DaySource(path, log=store, label=str(db)), 0


def _rows(path: Path) -> int:
    if not path.exists():
        return 0
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _generated(
    workdir: Path, trades: int, participants: int, assets: int, seed: int, hours: float | None
) -> Path:
    from clearlane.node.stress import compress_trades
    from clearlane.sim.generator import generate_day

    name = f"day-{trades}-{participants}-{assets}-{seed}" + (f"-{hours:g}h" if hours else "")
    day = workdir / name
    if not (day / "trades.parquet").exists():
        generated = generate_day(trades=trades, participants=participants, assets=assets, seed=seed)
        if hours:
            generated = replace(generated, trades=compress_trades(generated.trades, hours))
        generated.write(day)
    return day


def _write(report: dict[str, Any], out: Path | None, csv_file: Path | None, auth063: Path | None) -> None:
    from clearlane.node import stress as node_stress

    if out is not None:
        out.write_bytes(node_stress.report_json(report))
    if csv_file is not None:
        csv_file.write_text(node_stress.report_csv(report), encoding="utf-8")
    if auth063 is not None:
        doc = node_stress.report_auth063(report)
        auth063.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _usd(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _print(report: dict[str, Any]) -> None:
    scenario = report["scenario"]
    console.print(f"[bold]stress scenario {scenario['id']}[/] seed {scenario['seed']} — {scenario['day']}")
    faults = Table("fault", "configured", "fired", title="faults")
    for kind, counts in report["faults"].items():
        faults.add_row(kind, str(counts["configured"]), str(counts["fired"]))
    console.print(faults)
    live = report["liveness"]
    console.print(
        f"safety: {report['safety']['checked_steps']} steps checked, no violation; "
        f"liveness: {'ok' if live['ok'] else '[red]FAILED[/]'} "
        f"(worst {live['worst_after_faults_ms'] / 1000:.0f} s after faults, bound {live['bound_s']} s, "
        f"{live['unsettled_count']} unsettled)"
    )
    system = Table("", "Cover-1", "shortfall", "Cover-2", "shortfall", title="system (USD)")
    for name in ("baseline", "scenario"):
        c1, c2 = report["system"][name]["cover1"], report["system"][name]["cover2"]
        system.add_row(
            name,
            f"{_usd(c1['obligation_cents'])} ({', '.join(c1['defaulters'])})",
            _usd(c1["shortfall_cents"]),
            f"{_usd(c2['obligation_cents'])} ({', '.join(c2['defaulters'])})",
            _usd(c2["shortfall_cents"]),
        )
    console.print(system)
    for default in report["defaults"]:
        console.print(
            f"default of {', '.join(default['defaulters'])}: unpaid {_usd(default['unpaid_cents'])}, "
            f"collateral {_usd(default['from_collateral_cents'])}, fund {_usd(default['from_default_fund_cents'])}, "
            f"house {_usd(default['from_house_cents'])}, left short {_usd(default['left_short_cents'])}"
        )
    _print_participants(report)


def _print_participants(report: dict[str, Any], top: int = 10) -> None:
    rows = sorted(
        report["participants"],
        key=lambda r: (-r["scenario"]["peak_intraday_liquidity_need_cents"], r["participant"]),
    )[:top]
    table = Table(
        "participant",
        "peak need",
        "Δ",
        "margin",
        "Δ",
        "breaches",
        "L1 fees",
        "latency max s",
        title=f"top {top} participants by peak intraday liquidity need (scenario; USD)",
    )
    for row in rows:
        b, s = row["baseline"], row["scenario"]
        table.add_row(
            row["participant"],
            _usd(s["peak_intraday_liquidity_need_cents"]),
            _usd(s["peak_intraday_liquidity_need_cents"] - b["peak_intraday_liquidity_need_cents"]),
            _usd(s["margin_var_cents"]),
            _usd(s["margin_var_cents"] - b["margin_var_cents"]),
            str(len(s["buffer_breaches"])),
            str(s["l1_fallback_fees_minor"]),
            f"{b['finality_latency_max_ms'] / 1000:.0f} → {s['finality_latency_max_ms'] / 1000:.0f}",
        )
    console.print(table)
