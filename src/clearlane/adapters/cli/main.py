"""The ``clearlane`` command (typer + rich).

Exit codes: 0 success; 1 a command-specific failure (trade not found, replay mismatch);
2 bad invocation or input that cannot be used at all (config error, unreadable file, missing
database). Row-level problems in an input file never fail the command: the bad rows go to the
rejects file with a stable code and the good rows are applied.

Every :class:`~clearlane.core.errors.ClearlaneError` is answered once, by :class:`_Commands`:
its message on stderr and its category's exit code (:data:`EXIT_CODES`); commands catch only
what they answer differently.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from clearlane.core.errors import ClearlaneError, InputError, IntegrityError, NotFound, Unavailable, category
from clearlane.core.model import ids as model_ids

console = Console()
err = Console(stderr=True)

# The error tree's categories, once. An integrity failure exits 2 like unusable input: the
# store or file given cannot be used (a replay mismatch found by `verify` is a report, exit 1).
EXIT_CODES: dict[type[ClearlaneError], int] = {
    InputError: 2,
    NotFound: 1,
    IntegrityError: 2,
    Unavailable: 1,
    ClearlaneError: 1,  # an error that chose no category (the tests refuse such a declaration)
}


def exit_code(exc: ClearlaneError) -> int:
    return EXIT_CODES[category(exc)]


class _Commands(TyperGroup):
    """The top-level command group: answers any ClearlaneError a command lets through."""

    def invoke(self, ctx: Any) -> Any:  # Any: typer's vendored click Context is private
        try:
            return super().invoke(ctx)
        except ClearlaneError as exc:
            raise fail(str(exc), exit_code(exc)) from None


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    help="clearlane — Layer-2 clearing and settlement engine.",
)

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        help="SQLite database file (created if missing) or a database URL (postgresql://user@host:port/db).",
    ),
]


def _missing_db(db: str) -> bool:
    from clearlane.adapters.sql.store import is_url

    return not is_url(db) and not Path(db).exists()


KeysOption = Annotated[
    Path | None,
    typer.Option(
        "--keys",
        help="Signing-key directory (default: <db stem>.keys beside the database; created on first use).",
    ),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal and os.environ.get("CLEARLANE_PROGRESS") != "1",
    )


def _open_runner(
    db: str | Path,
    config: Path | None,
    *,
    create: bool = True,
    keys: Path | None = None,
    signing: bool = True,
) -> Any:
    from clearlane.node.runner import Runner

    with _progress() as progress:
        task = progress.add_task("replaying log", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return Runner.open(db, config, create=create, progress=on_progress, keys=keys, signing=signing)


def _clear_file(runner: Any, path: Path, rejects_path: Path, chunk_rows: int, settle: bool) -> dict[str, int]:
    from clearlane.node.intake import iter_input, write_rejects
    from clearlane.node.intake.readers import file_digest

    rejects: list[Any] = []
    rows_total = _count_rows(path)
    with _progress() as progress:
        task = progress.add_task(f"clearing {path.name}", total=rows_total)
        batches = iter_input(path, runner.config, chunk_rows=chunk_rows)
        runner.clear_batches(
            batches,
            source=model_ids.file_source(file_digest(path)),
            rejects=rejects,
            progress=lambda n: progress.advance(task, n),
        )
        if settle:
            settle_task = progress.add_task("settling on the base layer", total=None)
            runner.settle_until_quiet()
            progress.update(settle_task, total=1, completed=1)
    if rejects_path.exists():
        rejects_path.unlink()
    written = write_rejects(rejects_path, rejects) if rejects else 0
    return {"rejects": written}


def _count_rows(path: Path) -> int | None:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:
            return None
    return None


def _print_summary(summary: dict[str, Any], title: str) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value")
    lanes = summary["trades_by_lane"]
    table.add_row("trades per lane", ", ".join(f"{k}: {v:,}" for k, v in lanes.items()) or "-")
    b = summary["batches"]
    table.add_row(
        "L2 batches",
        f"{b['cleared']:,} cleared, {b['final']:,} final, {b['unwound']:,} unwound, {b['pending']:,} pending",
    )
    table.add_row(
        "L1 transactions",
        f"{summary['l1']['submitted']:,} submitted, {summary['l1']['final']:,} final, {summary['l1']['resubmitted']:,} re-sent",
    )
    table.add_row("gross L2 value", f"{summary['gross_usd']:,.2f} USD")
    table.add_row("net L2 settlement", f"{summary['net_usd']:,.2f} USD")
    table.add_row("netting efficiency", f"{summary['netting_efficiency'] * 100:.2f} %")
    table.add_row("liquidity saved", f"{summary['liquidity_saved_usd']:,.2f} USD")
    for lane, figures in summary["latency_s"].items():
        if figures["n"]:
            table.add_row(
                f"latency {lane}",
                f"p50 {figures['p50']:.2f} s, p99 {figures['p99']:.2f} s (n={figures['n']:,})",
            )
    rejects = summary["rejects_by_code"]
    table.add_row("rejects", ", ".join(f"{k}: {v:,}" for k, v in rejects.items()) or "none")
    table.add_row("duplicates (no-ops)", f"{summary['duplicates']:,}")
    if summary["alerts"]:
        table.add_row("alerts", "; ".join(summary["alerts"][:5]))
    table.add_row("state root", summary["state_root"])
    console.print(table)


# ---------------------------------------------------------------------- commands
@app.command()
def demo(
    trades: Annotated[int, typer.Option(help="Trades in the generated day.")] = 200_000,
    participants: Annotated[int, typer.Option(help="Participants (all kinds).")] = 300,
    assets: Annotated[int, typer.Option(help="Assets (USD first).")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the generated day.")] = 7,
    out: Annotated[Path, typer.Option(help="Directory for the day's files and database.")] = Path(
        "clearlane-demo"
    ),
    serve: Annotated[
        bool | None,
        typer.Option(
            "--serve/--no-serve",
            help="Stream the day live into the dashboard (default when run in a terminal) or clear it at full speed and exit.",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(help="With --serve: stop after this many seconds (default: run until Ctrl-C)."),
    ] = None,
    speed: Annotated[float, typer.Option(help="With --serve: engine seconds per wall-clock second.")] = 60.0,
    start: Annotated[
        str, typer.Option(help="With --serve: UTC time of day the stream starts at (HH:MM).")
    ] = "07:00",
    host: Annotated[str, typer.Option(help="With --serve: address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="With --serve: port (0 picks a free one).")] = 8000,
) -> None:
    """Generate a realistic trading day and clear it: live into the dashboard, or at full speed with a summary."""
    from clearlane.node.report import summary as make_summary
    from clearlane.sim.generator import generate_day

    live = sys.stdout.isatty() if serve is None else serve
    if speed <= 0:
        raise fail("--speed must be positive")
    if duration is not None and duration <= 0:
        raise fail("--duration must be positive")
    started = time.perf_counter()
    console.print(
        f"[bold]clearlane demo[/] — generating {trades:,} trades, {participants:,} participants, {assets} assets (seed {seed})"
    )
    day = generate_day(trades=trades, participants=participants, assets=assets, seed=seed)
    if out.exists():
        shutil.rmtree(out)
    paths = day.write(out)
    if live:
        _demo_live(day, paths, out, duration=duration, speed=speed, start=start, host=host, port=port)
        return
    runner = _open_runner(out / "clearlane.db", paths.config)
    first_ms = int(day.trades.column("executed_at")[0].as_py()) if day.trades.num_rows else 0
    for deposit in day.deposits:
        data = deposit.model_dump(mode="json")
        data.pop("type")
        data.pop("v", None)
        runner.submit("collateral_deposit", data, first_ms, model_ids.deposit_source(deposit.deposit_id))
    result = _clear_file(runner, paths.trades, out / "rejects.jsonl", 65_536, settle=True)
    summary = make_summary(runner.engine)
    elapsed = time.perf_counter() - started
    _print_summary(summary, f"Cleared {trades:,} trades in {elapsed:.1f} s")
    _print_badges(runner)
    console.print(
        f"rejects: {result['rejects']} (see {out / 'rejects.jsonl'})  database: {out / 'clearlane.db'}"
    )
    runner.close()


def _demo_live(
    day: Any, paths: Any, out: Path, *, duration: float | None, speed: float, start: str, host: str, port: int
) -> None:
    """Stream the generated day into the engine at ``speed``x and serve the dashboard until stopped."""
    import re

    from clearlane.adapters.cli.demo import start_live
    from clearlane.node.report import summary as make_summary

    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", start)
    if match is None:
        raise fail(f"--start: expected HH:MM (UTC), got {start!r}")
    first_ms = int(day.trades.column("executed_at")[0].as_py()) if day.trades.num_rows else 0
    day_start = first_ms - first_ms % 86_400_000
    start_ms = max(first_ms, day_start + (int(match.group(1)) * 60 + int(match.group(2))) * 60_000)
    try:
        demo_run = start_live(
            out, paths.config, day.trades, day.deposits, speed=speed, start_ms=start_ms, host=host, port=port
        )
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (try --port 0)") from None
    console.print(
        f"[bold green]dashboard live at {demo_run.url}/ui/[/]  (engine clock {speed:g}x; Ctrl-C to stop)"
    )
    console.print(
        f"API: {demo_run.url}/openapi.json   stream: {demo_run.url}/v1/stream?types=stats   (demo mode: no API keys)"
    )
    started = time.monotonic()
    try:
        while duration is None or time.monotonic() - started < duration:
            if demo_run.feed.error is not None:
                raise fail(f"market feed stopped: {demo_run.feed.error}")
            if not demo_run.runtime.healthy:
                raise fail(f"clearing runtime stopped: {demo_run.runtime.failed}")
            time.sleep(0.2)
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        demo_run.feed.stop()
        runtime = demo_run.runtime
        with runtime.lock:
            summary = make_summary(runtime.runner.engine)
            _print_summary(
                summary,
                f"Streamed {demo_run.feed.applied:,} trades in {time.monotonic() - started:.1f} s "
                f"(engine clock {speed:g}x)",
            )
            _print_badges(runtime.runner)
        demo_run.http.stop()
    console.print(f"database: {out / 'clearlane.db'}")


def _print_badges(runner: Any) -> None:
    from clearlane.node.report import trade_lifecycle

    sample = _sample_trades(runner)
    for flow_id in sample:
        life = trade_lifecycle(runner.store, flow_id)
        if life is not None:
            console.print(f"  {flow_id}: [bold]{life['badge']}[/]")
    db = runner.store.url.removeprefix("sqlite:///")
    console.print(f"next: clearlane status {sample[0] if sample else 'TRADE_ID'} --db {db}")
    if sample:
        console.print(f"      clearlane proof {sample[0]} --db {db}   (then: clearlane verify-proof FILE)")


def _sample_trades(runner: Any) -> list[str]:
    """One L2 and one L1 trade id from the first stored chunk, for the demo's badges."""
    table = runner.store.first_trade_chunk()
    if table is None:
        return []
    picks = []
    for lane in ("L2", "L1"):
        ids = table.filter(table.column("lane").to_numpy(zero_copy_only=False) == lane).column("flow_id")
        if len(ids):
            picks.append(str(ids[0]))
    return picks


@app.command()
def clear(
    file: Annotated[Path, typer.Argument(help="Trades as .csv, .parquet or .jsonl.")],
    db: DbOption = "clearlane.db",
    config: Annotated[Path | None, typer.Option(help="TOML config (required for a new database).")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Where bad rows go (JSON lines).")] = None,
    chunk_rows: Annotated[int, typer.Option(help="Rows per engine step.")] = 65_536,
    settle: Annotated[bool, typer.Option(help="Advance the base layer until everything is final.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    keys: KeysOption = None,
) -> None:
    """Clear a file of trades; bad rows go to the rejects file, good rows are applied once."""
    from clearlane.node.report import summary as make_summary

    if not file.exists():
        raise fail(f"{file}: no such file")
    if chunk_rows <= 0:
        raise fail("--chunk-rows must be positive")
    runner = _open_runner(db, config, keys=keys)
    rejects_path = rejects or file.with_name(file.name + ".rejects.jsonl")
    started = time.perf_counter()
    result = _clear_file(runner, file, rejects_path, chunk_rows, settle)
    summary = make_summary(runner.engine)
    summary["rejects_file"] = str(rejects_path) if result["rejects"] else None
    summary["rejects_written"] = result["rejects"]
    if as_json:
        console.print_json(json.dumps(summary))
    else:
        _print_summary(summary, f"{file.name}: cleared in {time.perf_counter() - started:.1f} s")
        if result["rejects"]:
            console.print(f"[yellow]{result['rejects']} rejected rows written to {rejects_path}[/]")
    runner.close()


@app.command()
def status(
    trade_id: Annotated[str, typer.Argument(help="Trade or payment id.")],
    db: DbOption = "clearlane.db",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    schema: Annotated[
        str | None, typer.Option(help="PostgreSQL schema of a worker partition (clearlane_<partition>).")
    ] = None,
) -> None:
    """Show one trade's lifecycle: every transition with its time, both finalities, its badge."""
    from clearlane.adapters.sql.store import Store
    from clearlane.node.report import trade_lifecycle

    if _missing_db(db):
        raise fail(f"{db}: no such database")
    store = Store.open(db, create=False, schema=schema)
    life = trade_lifecycle(store, trade_id)
    store.close()
    if life is None:
        raise fail(f"trade {trade_id!r} not found in {db}", code=1)
    if as_json:
        console.print_json(json.dumps(life, default=str))
        return
    console.print(
        f"[bold]{life['id']}[/] {life['kind']} {life['buyer']} ← {life['seller']} "
        f"{life['base']}/{life['quote']}  lane {life['lane'] or '-'} {life['pool'] or ''}"
    )
    console.print(f"[bold]{life['badge']}[/]")
    table = Table("state", "at (UTC)", "detail")
    for t in life["transitions"]:
        table.add_row(t["state"], t["at"] or "-", str(t["detail"]))
    console.print(table)
    console.print(f"L2 cleared: {life['l2_cleared_at'] or '-'}   L1 final: {life['l1_final_at'] or '-'}")


@app.command()
def replay(
    db: DbOption = "clearlane.db",
    into: Annotated[
        Path | None, typer.Option(help="Fresh database to rebuild into (default: a temp file).")
    ] = None,
) -> None:
    """Rebuild the state from the input log into a fresh database and print the state root."""
    from clearlane.adapters.sql.store import Store, is_url
    from clearlane.core.engine.core import Engine
    from clearlane.node.runner import Runner

    if _missing_db(db):
        raise fail(f"{db}: no such database")
    if into is None and is_url(db):
        raise fail("--into is needed to replay a database given by URL")
    source = Store.open(db, create=False)
    state = source.engine_state()
    toml_text = source.get_meta("config_toml")
    if state is None or toml_text is None:
        raise fail(f"{db}: empty database, nothing to replay")
    target = into or Path(db).with_name(Path(db).stem + ".replay.db")
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    import tomllib

    from clearlane.core.config.model import parse_config

    config = parse_config(tomllib.loads(toml_text), source=f"{db} (stored config)")
    fresh = Store.open(target)
    for key in ("config_toml", "config_digest", "chain_genesis_ms", "store_id"):
        value = source.get_meta(key)
        if value is not None:
            fresh.set_meta(key, value)
    # The replica keeps the source's identity and first key; rotations come back with the log.
    # It signs nothing (no private key is needed to replay).
    from clearlane.adapters.sql import audit_tables
    from clearlane.node.auditor import Auditor

    init_keys = [k for k in audit_tables.read_keys(source.engine) if k.action == "init"]
    with fresh.engine.begin() as conn:
        for key_record in init_keys:
            audit_tables.write_key(conn, key_record)
    auditor = Auditor(config, source.get_meta("store_id") or "0" * 32, init_keys)
    runner = Runner(fresh, config, Engine(config), None, auditor)
    total = int(state["applied_seq"])
    with _progress() as progress:
        task = progress.add_task("replaying", total=total)
        for stored in source.iter_log():
            runner.replay_entry(stored)
            progress.advance(task)
    root = runner.engine.state_root()
    console.print(f"replayed {total:,} log entries into {target}")
    console.print(f"state root  {root}")
    console.print(f"stored root {state['state_root']}")
    source.close()
    fresh.close()
    if root != state["state_root"]:
        raise fail("replayed state differs from the stored state", code=1)
    console.print("[green]identical[/]")


@app.command()
def close(
    db: DbOption = "clearlane.db",
    day: Annotated[str, typer.Option(help="Business day label, e.g. 2026-11-20.")] = "today",
) -> None:
    """End-of-day close: trial balance per lane (participants, L1, each L2 pool, house)."""
    runner = _open_runner(db, None, create=False, signing=False)
    result = runner.engine.ledger.close_day(day, runner.engine.now_ms)
    table = Table(
        "lane",
        "asset",
        "accounts",
        "debit",
        "credit",
        "net",
        "pending debit",
        "pending credit",
        title=f"Trial balance — {day}",
    )
    for row in result.trial_balance.rows():
        table.add_row(
            *(
                str(row[k])
                for k in (
                    "lane",
                    "asset",
                    "accounts",
                    "debit_minor",
                    "credit_minor",
                    "net_minor",
                    "pending_debit_minor",
                    "pending_credit_minor",
                )
            )
        )
    console.print(table)
    console.print(
        f"in flight across lanes: {len(result.pending)} pending entries; digest {result.digest_hex}"
    )
    runner.close()
    if not result.trial_balance.balanced:
        raise fail("trial balance does not close", code=1)


@app.command()
def bench(
    trades: Annotated[int, typer.Option(help="Trades in the generated day.")] = 10_000_000,
    participants: Annotated[int, typer.Option()] = 2_000,
    assets: Annotated[int, typer.Option()] = 16,
    seed: Annotated[int, typer.Option()] = 42,
    workdir: Annotated[Path, typer.Option(help="Where the Parquet day and database live.")] = Path("bench"),
    keys: KeysOption = None,
) -> None:
    """Benchmark: clear a generated day end to end from Parquet; print trades/s, stages, RSS."""
    from clearlane.node.report import summary as make_summary
    from clearlane.node.runner import Runner
    from clearlane.sim.generator import generate_day

    day_dir = workdir / f"day-{trades}-{participants}-{assets}-{seed}"
    if not (day_dir / "trades.parquet").exists():
        console.print(f"generating {trades:,} trades into {day_dir} ...")
        started = time.perf_counter()
        generate_day(trades=trades, participants=participants, assets=assets, seed=seed).write(day_dir)
        console.print(f"generated in {time.perf_counter() - started:.1f} s")
    db = workdir / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    runner = Runner.open(db, day_dir / "config.toml", keys=keys)
    from clearlane.node.intake import iter_input

    deposits_file = day_dir / "deposits.jsonl"
    started = time.perf_counter()
    cpu_started = time.process_time()
    main_cpu_started = time.thread_time()
    if deposits_file.exists():
        import pyarrow.parquet as pq

        first = pq.ParquetFile(day_dir / "trades.parquet").read_row_group(0, columns=["executed_at"])
        runner.clear_batches(
            iter_input(deposits_file, runner.config),
            source="deposits",
            events_at_ms=int(first.column(0)[0].as_py()),
        )
    read_seconds = read_cpu = 0.0

    def timed_batches() -> Any:
        nonlocal read_seconds, read_cpu
        iterator = iter_input(
            day_dir / "trades.parquet", runner.config, chunk_rows=runner.config.trade_chunk_rows_max
        )
        while True:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            finally:
                read_seconds += time.perf_counter() - t0
                read_cpu += time.thread_time() - c0
            yield batch

    runner.clear_batches(timed_batches(), source="bench")
    settle_started, settle_cpu_started = time.perf_counter(), time.thread_time()
    runner.settle_until_quiet()
    settle_seconds = time.perf_counter() - settle_started
    settle_cpu = time.thread_time() - settle_cpu_started
    total = time.perf_counter() - started
    total_cpu = time.process_time() - cpu_started
    main_cpu = time.thread_time() - main_cpu_started
    summary = make_summary(runner.engine)
    cleared = sum(summary["trades_by_lane"].values())
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    table = Table(
        "stage",
        "wall s",
        "CPU s",
        title=f"clearlane bench — {trades:,} trades, {participants:,} participants, {assets} assets",
    )
    table.add_row("read + validate (Parquet)", f"{read_seconds:.2f}", f"{read_cpu:.2f}")
    for stage, seconds in runner.timer.seconds.items():
        cpu = runner.timer.cpu.get(stage)
        table.add_row(stage, f"{seconds:.2f}", "-" if cpu is None else f"{cpu:.2f}")
    table.add_row("settle tail (chain to finality)", f"{settle_seconds:.2f}", f"{settle_cpu:.2f}")
    table.add_row("[bold]total end to end", f"[bold]{total:.2f}", f"[bold]{total_cpu:.2f}")
    console.print(table)
    console.print(
        f"CPU: main thread {main_cpu:.2f} s, all threads {total_cpu:.2f} s "
        "(the writer thread's stage overlaps the main thread's; wall stages do not add up)"
    )
    console.print(
        f"trades/s end to end: [bold]{cleared / total:,.0f}[/]   peak RSS: [bold]{rss_gib:.2f} GiB[/]"
    )
    console.print(
        f"batches: {summary['batches']}   netting efficiency: {summary['netting_efficiency'] * 100:.2f} %"
    )
    console.print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    runner.close()


# ---------------------------------------------------------------------- audit
keys_app = typer.Typer(no_args_is_help=True, help="Checkpoint signing keys (Ed25519).")
app.add_typer(keys_app, name="keys")


def _open_store(db: str) -> Any:
    from clearlane.adapters.sql.store import Store

    if _missing_db(db):
        raise fail(f"{db}: no such database")
    return Store.open(db, create=False)


@keys_app.command("init")
def keys_init(
    keys: Annotated[Path, typer.Option("--keys", help="Key directory (created 0700).")] = Path(
        "clearlane.keys"
    ),
) -> None:
    """Create the directory's active signing key if it has none; print its id and public key."""
    from clearlane.node.signing import KeyStore

    store = KeyStore(keys)
    existed = store.active_id() is not None
    signer = store.ensure_active()
    console.print(f"{'active key' if existed else 'created key'} {signer.key_id}")
    console.print(
        f"public key {signer.public_key.hex()}  (private key: {keys / (signer.key_id + '.key')}, mode 0600)"
    )


@keys_app.command("rotate")
def keys_rotate(db: DbOption = "clearlane.db", keys: KeysOption = None) -> None:
    """Replace the store's signing key: a log entry signed by the old and the new key."""
    from clearlane.node.runner import default_key_dir
    from clearlane.node.signing import KeyStore

    if _missing_db(db):
        raise fail(f"{db}: no such database")
    directory = keys if keys is not None else default_key_dir(db)
    runner = _open_runner(db, None, create=False, keys=directory)
    old = runner.auditor.current_key_id
    try:
        record = runner.rotate_key(KeyStore(directory))
    finally:
        runner.close()
    console.print(f"rotated {old} -> {record.key_id} at log seq {record.log_seq}")
    console.print(
        f"the retired key's private file was deleted; its public key still verifies checkpoints "
        f"up to log seq {record.log_seq - 1}"
    )


@keys_app.command("export")
def keys_export(
    db: DbOption = "clearlane.db",
    out: Annotated[Path | None, typer.Option(help="Write the pin file here (default: print it).")] = None,
) -> None:
    """The store's public keys with the log range each signed for (a --pubkeys file)."""
    from clearlane.adapters.sql import audit_tables
    from clearlane.core.proofs.canonical import canonical_document
    from clearlane.node.signing import public_key_doc

    store = _open_store(db)
    records = [
        {"key_id": k.key_id, "public_key": k.public_key, "log_seq": k.log_seq}
        for k in audit_tables.read_keys(store.engine)
    ]
    doc = public_key_doc(store.get_meta("store_id") or "", records)
    store.close()
    text_out = canonical_document(doc).decode()
    if out is None:
        console.out(text_out, end="")
    else:
        out.write_text(text_out)
        console.print(f"wrote {len(records)} public keys to {out}")


@app.command()
def proof(
    trade_id: Annotated[str, typer.Argument(help="Trade or payment id.")],
    db: DbOption = "clearlane.db",
    out: Annotated[Path | None, typer.Option(help="Proof file (default: proof-<TRADE_ID>.json).")] = None,
) -> None:
    """Write a self-contained inclusion proof of one trade (leaf -> batch root -> signed checkpoint)."""
    from clearlane.evidence.prove import Prover

    store = _open_store(db)
    try:
        data = Prover(store).proof_bytes(trade_id)
    finally:
        store.close()
    target = out or Path(f"proof-{_safe_name(trade_id)}.json")
    target.write_bytes(data)
    console.print(
        f"wrote {target} ({len(data):,} bytes); check it offline with: clearlane verify-proof {target}"
    )


def _safe_name(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value)


@app.command("verify-proof")
def verify_proof(
    file: Annotated[Path, typer.Argument(help="A proof or consistency file.")],
    pubkeys: Annotated[Path | None, typer.Option(help="Pinned public keys (clearlane keys export).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verified summary as JSON.")] = False,
) -> None:
    """Check a proof (or consistency) file offline, with nothing but the public keys."""
    from clearlane.core.proofs import verify as v

    if not file.exists():
        raise fail(f"{file}: no such file")
    data = file.read_bytes()
    try:
        pins = v.load_pubkeys(pubkeys.read_bytes()) if pubkeys is not None else None
        consistency_doc = b'"format": "clearlane.consistency.v1"' in data
        result = (
            v.verify_consistency_document(data, pins)
            if consistency_doc
            else v.verify_proof_document(data, pins)
        )
    except v.ProofError as exc:
        raise fail(f"refused: {exc}", code=1) from None
    except OSError as exc:
        raise fail(str(exc)) from None
    if as_json:
        console.print_json(json.dumps(result))
        return
    if consistency_doc:
        old, new = result["old"], result["new"]
        console.print(
            f"[green]verified[/]: checkpoint at log seq {new['log_seq']} (tree size {new['tree_size']}) "
            f"extends the one at log seq {old['log_seq']} (tree size {old['tree_size']})"
        )
    else:
        summary = result["summary"]
        batch = summary["batch"]
        console.print(
            f"[green]verified[/]: {summary['trade_id']} is leaf {batch['leaf_index']} of batch "
            f"{batch['batch_id']} (root {batch['root'][:16]}..., {batch['flows']} flows), state "
            f"{summary['state']}"
        )
        anchor = summary["anchor"]
        if anchor is not None:
            console.print(
                f"anchored by {anchor['tx_id']} at height {anchor['height']}, "
                f"{anchor['confirmations']} confirmations at the checkpoint"
            )
    console.print(f"trust: {result['trust']}")


@app.command()
def consistency(
    old: Annotated[int, typer.Argument(help="Earlier checkpoint id.")],
    new: Annotated[int | None, typer.Argument(help="Later checkpoint id (default: the latest).")] = None,
    db: DbOption = "clearlane.db",
    out: Annotated[Path | None, typer.Option(help="Write the consistency file here.")] = None,
) -> None:
    """Prove that a later checkpoint extends an earlier one (RFC 9162 consistency proof)."""
    from clearlane.adapters.sql import audit_tables
    from clearlane.core.proofs import verify as v
    from clearlane.evidence.prove import Prover

    store = _open_store(db)
    try:
        if new is None:
            latest = audit_tables.latest_checkpoint(store.engine)
            new = latest[0] if latest is not None else 0
        doc = Prover(store).consistency(old, new)
    finally:
        store.close()
    data = v.canonical_document(doc)
    try:
        result = v.verify_consistency_document(data)
    except v.ProofError as exc:
        raise fail(f"the store's own checkpoints are inconsistent: {exc}", code=1) from None
    if out is not None:
        out.write_bytes(data)
        console.print(f"wrote {out}")
    console.print(
        f"[green]consistent[/]: checkpoint {new} (tree size {result['new']['tree_size']}, log seq "
        f"{result['new']['log_seq']}) extends checkpoint {old} (tree size {result['old']['tree_size']}, "
        f"log seq {result['old']['log_seq']}); proof of {len(doc['proof'])} hashes"
    )


@app.command()
def verify(
    db: DbOption = "clearlane.db",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Walk the whole store: log chain, records, batch roots, nets, ledger, checkpoints; exit 1 on any bad record."""
    from clearlane.evidence.check import check_store

    store = _open_store(db)
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("verifying log", total=None)
        report = check_store(
            store, progress=lambda done, total: progress.update(task, completed=done, total=total)
        )
    store.close()
    elapsed = time.perf_counter() - started
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "ok": report.ok,
                    "problems": [str(p) for p in report.problems],
                    "steps": report.steps,
                    "trades": report.trades,
                    "batches": report.batches,
                    "records": report.records,
                    "checkpoints": report.checkpoints,
                    "notes": report.notes,
                    "seconds": round(elapsed, 3),
                }
            )
        )
    else:
        for note in report.notes:
            console.print(f"note: {note}")
        if report.ok:
            console.print(
                f"[green]verified[/] {report.steps:,} log steps, {report.trades:,} trade records, "
                f"{report.batches:,} batch roots, {report.records:,} audit records, "
                f"{report.checkpoints:,} signed checkpoints in {elapsed:.1f} s"
            )
    if not report.ok:
        first = report.problems[0]
        err.print(f"[bold red]tampered:[/] first bad record: {first}", highlight=False)
        if len(report.problems) > 1:
            err.print(f"({len(report.problems) - 1} more problem(s) after it)", highlight=False)
        raise typer.Exit(1)


@app.command()
def dispute(
    trade_id: Annotated[str, typer.Argument(help="Trade or payment id.")],
    db: DbOption = "clearlane.db",
    out: Annotated[Path | None, typer.Option(help="Bundle file (default: dispute-<TRADE_ID>.zip).")] = None,
) -> None:
    """Write a dispute bundle: proof, lifecycle, net instructions and the log entries to re-net the batch."""
    from clearlane.evidence.dispute import build_bundle

    store = _open_store(db)
    target = out or Path(f"dispute-{_safe_name(trade_id)}.zip")
    try:
        info = build_bundle(store, trade_id, target)
    finally:
        store.close()
    console.print(
        f"wrote {target}: batch {info['batch_id']} ({info['flows']:,} flows), log entries "
        f"{info['first_seq']}..{info['close_seq']} ({info['log_entries']} steps), {info['files']} files"
    )
    console.print(f"check it: clearlane dispute-check {target}   (or unzip it and run: python renet.py)")


@app.command("dispute-check")
def dispute_check(bundle: Annotated[Path, typer.Argument(help="A dispute bundle (.zip).")]) -> None:
    """Re-derive, re-hash and re-net a dispute bundle's batch; exit 1 if anything differs."""
    import zipfile

    from clearlane.evidence.dispute import check_bundle
    from clearlane.evidence.standalone.renet import BundleError

    if not bundle.exists():
        raise fail(f"{bundle}: no such file")
    try:
        done = check_bundle(bundle)
    except (BundleError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise fail(f"refused: {exc}", code=1) from None
    for line in done:
        console.print(f"ok: {line}")
    console.print("[green]the bundle reproduces the batch's commitment and netting result[/]")


@app.command()
def publish(
    file: Annotated[
        Path, typer.Argument(help="Trades (and, in .jsonl, small events) as .csv, .parquet or .jsonl.")
    ],
    nats_url: Annotated[str, typer.Option("--nats", help="NATS server URL.")] = "nats://127.0.0.1:4222",
    config: Annotated[
        Path, typer.Option(help="TOML config: routing rules that pick each trade's pool subject.")
    ] = Path("clearlane.toml"),
    chunk_rows: Annotated[
        int, typer.Option(help="Input rows per message (before splitting by pool).")
    ] = 10_000,
    events_pool: Annotated[
        str | None, typer.Option(help="Pool whose partition gets the file's small events.")
    ] = None,
    rejects: Annotated[Path | None, typer.Option(help="Where bad rows go (JSON lines).")] = None,
) -> None:
    """Publish a file to NATS JetStream: each trade to clearlane.trades.<pool> of its route."""
    import asyncio

    from clearlane.adapters.nats.publish import publish_file
    from clearlane.core.config.model import load_config
    from clearlane.node.intake import write_rejects

    if not file.exists():
        raise fail(f"{file}: no such file")
    if chunk_rows <= 0:
        raise fail("--chunk-rows must be positive")
    cfg = load_config(config)
    started = time.perf_counter()
    try:
        result = asyncio.run(
            publish_file(nats_url, file, cfg, chunk_rows=chunk_rows, events_pool=events_pool)
        )
    except OSError as exc:
        raise fail(f"{nats_url}: cannot reach NATS: {exc}") from None
    rejects_path = rejects or file.with_name(file.name + ".rejects.jsonl")
    if rejects_path.exists():
        rejects_path.unlink()
    written = write_rejects(rejects_path, result.rejects) if result.rejects else 0
    elapsed = time.perf_counter() - started
    console.print(
        f"published {result.trades:,} trades and {result.events:,} events in {result.messages:,} messages "
        f"({result.duplicates:,} already stored) in {elapsed:.1f} s; stream seq {result.first_seq}..{result.last_seq}"
    )
    for subject, count in sorted(result.by_subject.items()):
        console.print(f"  {subject}: {count:,} messages")
    if written:
        console.print(f"[yellow]{written} rejected rows written to {rejects_path}[/]")


@app.command()
def worker(
    db: DbOption = "clearlane.db",
    nats_url: Annotated[str, typer.Option("--nats", help="NATS server URL.")] = "nats://127.0.0.1:4222",
    pools: Annotated[
        str, typer.Option(help="Comma-separated pool ids (or L1) whose subjects this worker consumes.")
    ] = "",
    config: Annotated[Path | None, typer.Option(help="TOML config (required for a new partition).")] = None,
    partition: Annotated[
        str | None, typer.Option(help="Partition name (default: the pool ids joined by '_').")
    ] = None,
    fetch_batch: Annotated[int, typer.Option(help="Messages per fetch (acked together after commit).")] = 32,
    idle_advance_ms: Annotated[
        int, typer.Option(help="Observe the base layer this often without input (0: never).")
    ] = 1000,
    idle_exit: Annotated[
        float, typer.Option(help="Exit after this many seconds without input (0: never).")
    ] = 0.0,
) -> None:
    """Consume trades for a group of pools from NATS JetStream, exactly once, into one partition."""
    from clearlane.adapters.nats.worker import WorkerOptions, run_worker

    options = WorkerOptions(
        db=db,
        nats_url=nats_url,
        pools=[p for p in pools.split(",") if p],
        config=config,
        partition=partition,
        fetch_batch=fetch_batch,
        idle_advance_ms=idle_advance_ms,
        idle_exit_s=idle_exit,
    )
    try:
        stats = run_worker(options, log=lambda m: err.print(m, highlight=False))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    wall = time.perf_counter() - stats.started
    console.print(
        f"worker done: {stats.messages:,} messages ({stats.skipped:,} redelivered, skipped), "
        f"{stats.trades:,} trades in {stats.steps:,} steps, {stats.rejects:,} rejects, "
        f"{stats.events_published:,} events published; busy {stats.busy_s:.2f} s of {wall:.2f} s (CPU {stats.busy_cpu_s:.2f} s); "
        f"first input at {stats.first_input_at:.3f}, last commit at {stats.last_commit_at:.3f}",
        highlight=False,
    )


@app.command()
def serve(
    db: DbOption = "clearlane.db",
    config: Annotated[Path | None, typer.Option(help="TOML config (required for a new database).")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    clock: Annotated[
        str,
        typer.Option(help="realtime (wall clock) or accelerated (engine time runs --speed times faster)."),
    ] = "realtime",
    speed: Annotated[float, typer.Option(help="Engine ms per wall ms with --clock accelerated.")] = 60.0,
    tick_ms: Annotated[
        float, typer.Option(help="Wall ms the loop waits to gather submissions into one step.")
    ] = 50.0,
    durable: Annotated[bool, typer.Option(help="fsync every step (survives power loss, slower).")] = False,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth", help="Every request acts as an operator (local development only)."
        ),
    ] = False,
    webhooks: Annotated[bool, typer.Option(help="Deliver webhooks.")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    keys: KeysOption = None,
    id_filter_mib: Annotated[
        int,
        typer.Option(
            help="Bloom filter over archived trade ids, MiB (a power of two; ~16 bits per id held)."
        ),
    ] = 32,
) -> None:
    """Run the engine, its clock and the HTTP API in one process (OpenAPI at /openapi.json)."""
    import uvicorn

    from clearlane.adapters.http.app import ServiceOptions
    from clearlane.adapters.http.server import build
    from clearlane.node.runtime import RuntimeOptions

    if clock not in ("realtime", "accelerated"):
        raise fail("--clock must be realtime or accelerated")
    if speed <= 0:
        raise fail("--speed must be positive")
    if id_filter_mib < 1 or id_filter_mib & (id_filter_mib - 1):
        raise fail("--id-filter-mib must be a power of two")
    options = RuntimeOptions(
        tick_ms=tick_ms, durable=durable, tune_process=True, flow_id_bloom_bits=id_filter_mib << 23
    )
    api = build(
        db,
        config,
        clock=clock,
        speed=speed,
        runtime_options=options,
        service_options=ServiceOptions(auth=not insecure_no_auth),
        webhooks=webhooks,
        key_dir=keys,
    )
    if not insecure_no_auth and api.state.keys.count_active() == 0:
        err.print(
            f"[yellow]no API keys yet:[/] create one with  clearlane apikey create --db {db} --role operator"
        )
    err.print(
        f"clearlane serving {db} on http://{host}:{port}  (clock {clock}{f' x{speed:g}' if clock == 'accelerated' else ''})"
    )
    err.print(f"settlement dashboard: http://{host}:{port}/ui/  (needs an operator or auditor key)")
    uvicorn.run(api, host=host, port=port, log_level=log_level, access_log=False)


apikey_app = typer.Typer(
    no_args_is_help=True, help="API keys for clearlane serve (stored hashed; shown once)."
)
app.add_typer(apikey_app, name="apikey")


def _key_store(db: str) -> Any:
    from clearlane.adapters.http.auth import KeyStore
    from clearlane.adapters.sql.store import Store

    if _missing_db(db):
        raise fail(f"{db}: no such database (create it with clearlane serve --config or clearlane clear)")
    store = Store.open(db, create=False)
    participants = None
    toml_text = store.get_meta("config_toml")
    if toml_text is not None:
        import tomllib

        from clearlane.core.config.model import parse_config

        participants = set(parse_config(tomllib.loads(toml_text), source=str(db)).participant_index())
    return KeyStore(store, participants)


@apikey_app.command("create")
def apikey_create(
    db: DbOption = "clearlane.db",
    role: Annotated[str, typer.Option(help="participant, operator or auditor.")] = "operator",
    participant: Annotated[
        str | None, typer.Option(help="The participant a participant key acts for.")
    ] = None,
    label: Annotated[str, typer.Option(help="A note (who holds the key).")] = "",
) -> None:
    """Create an API key and print it (once: only its hash is stored)."""

    keys = _key_store(db)
    try:
        principal, token = keys.create(role, participant, label)
    finally:
        keys.store.close()
    err.print(
        f"created {principal.role} key {principal.key_id}" + (f" for {participant}" if participant else "")
    )
    print(token)


@apikey_app.command("list")
def apikey_list(db: DbOption = "clearlane.db") -> None:
    """List API keys (ids, roles, participants; never secrets)."""
    keys = _key_store(db)
    table = Table("key id", "role", "participant", "label", "created", "revoked")
    from clearlane.node.report import iso

    for row in keys.list():
        table.add_row(
            row["key_id"],
            row["role"],
            row["participant"] or "-",
            row["label"] or "",
            iso(int(row["created_ms"])) or "-",
            iso(row["revoked_ms"]) or "-",
        )
    keys.store.close()
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (not the key).")], db: DbOption = "clearlane.db"
) -> None:
    """Revoke an API key (takes effect within seconds on a running server)."""
    keys = _key_store(db)
    done = keys.revoke(key_id)
    keys.store.close()
    if not done:
        raise fail(f"no active key {key_id!r}", code=1)
    console.print(f"revoked {key_id}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
