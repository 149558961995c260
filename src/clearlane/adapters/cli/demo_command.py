"""The ``demo`` command: generate a trading day and clear it, either at full speed with a
summary or streamed live into the dashboard (the serving itself is :mod:`.demo`'s); with the
lifecycle badges of two sample trades it prints at the end.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from clearlane.adapters.cli.clearing import clear_file, print_summary
from clearlane.adapters.cli.common import console, err, fail, open_node, print_json
from clearlane.core.model import ids as model_ids

DEMO_PRESET = "ethereum"


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
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Clear at full speed and print the summary as JSON (not with --serve)."),
    ] = False,
    nats_url: Annotated[
        str | None,
        typer.Option("--nats", help="With --serve: also publish the public events to NATS, as serve --nats."),
    ] = None,
) -> None:
    """Generate a realistic trading day and clear it: live into the dashboard, or at full speed with a summary."""
    from clearlane.sim.generator import generate_day

    if as_json and serve:
        raise fail("--json prints the summary of a full-speed run: not with --serve")
    live = (sys.stdout.isatty() and not as_json) if serve is None else serve
    if nats_url is not None and not live:
        raise fail("--nats publishes the live service's events: use it with --serve")
    if speed <= 0:
        raise fail("--speed must be positive")
    if duration is not None and duration <= 0:
        raise fail("--duration must be positive")
    started = time.perf_counter()
    (err if as_json else console).print(
        f"[bold]clearlane demo[/] — generating {trades:,} trades, {participants:,} participants, {assets} assets (seed {seed})"
    )
    # Real base-layer timing (12 s blocks, final after 64) beside sub-second L2 windows, so the
    # Savings page shows the latency L2 really saves (core/config/presets.py).
    day = generate_day(trades=trades, participants=participants, assets=assets, seed=seed, preset=DEMO_PRESET)
    if out.exists():
        shutil.rmtree(out)
    paths = day.write(out)
    if live:
        _demo_live(
            day,
            paths,
            out,
            duration=duration,
            speed=speed,
            start=start,
            host=host,
            port=port,
            nats_url=nats_url,
        )
        return
    _demo_batch(day, paths, out, started, as_json)


def _demo_batch(day: Any, paths: Any, out: Path, started: float, as_json: bool) -> None:
    """Clear the generated day at full speed; the summary as a table (or JSON) and two badges."""
    from clearlane.node.report import summary as make_summary

    node = open_node(out / "clearlane.db", paths.config)
    first_ms = int(day.trades.column("executed_at")[0].as_py()) if day.trades.num_rows else 0
    for deposit in day.deposits:
        data = deposit.model_dump(mode="json")
        data.pop("type")
        data.pop("v", None)
        node.submit("collateral_deposit", data, first_ms, model_ids.deposit_source(deposit.deposit_id))
    _car_marketplace(node, first_ms)
    result = clear_file(node, paths.trades, out / "rejects.jsonl", 65_536, settle=True)
    summary = make_summary(node)
    summary["run"] = result["run"]
    candidates = day.trades.column("trade_id").slice(0, 200).to_pylist()
    if as_json:
        summary["badges"] = dict(_badges(node, candidates))
        summary["rejects_written"] = result["rejects"]
        summary["rejects_file"] = str(out / "rejects.jsonl")
        summary["database"] = str(out / "clearlane.db")
        node.close()
        print_json(summary)
        return
    elapsed = time.perf_counter() - started
    print_summary(summary, f"Cleared {day.trades.num_rows:,} trades in {elapsed:.1f} s")
    _print_badges(node, candidates)
    console.print(
        f"rejects: {result['rejects']} (see {out / 'rejects.jsonl'})  database: {out / 'clearlane.db'}"
    )
    node.close()


def _car_marketplace(node: Any, at_ms: int) -> None:
    """The demo's used-car deals in escrow, logged before the day (node/escrow_demo.py)."""
    from clearlane.core.model.inputs import escrow_action
    from clearlane.node import escrow as escrow_app
    from clearlane.node.escrow_demo import car_marketplace

    deposits, actions = car_marketplace(node.config)
    for deposit in deposits:
        node.submit("collateral_deposit", deposit, at_ms, model_ids.deposit_source(deposit["deposit_id"]))
    for body in actions:
        escrow_app.submit(node, escrow_action(body), at_ms)


# The live demo's canary set (docs/MONITORING.md): a synthetic pair of each kind the generated
# day's routing sends to its own pool (market makers → fast, retail → retail, brokers → bulk),
# so the Monitoring page shows every path passing. Canaries never count in client figures.
_CANARY_KINDS = (("MM", "market_maker"), ("RT", "retail"), ("BRK", "broker"))


def _add_canaries(config: Path) -> None:
    """Append the canary participants to the live demo's configuration (before it is opened)."""
    blocks = [
        f'\n[[participants]]\nid = "CANARY-{tag}-{side}"\nkind = "{kind}"\n'
        'credit_limit_usd = "1000"\nsynthetic = true\n'
        for tag, kind in _CANARY_KINDS
        for side in ("A", "B")
    ]
    with config.open("a", encoding="utf-8") as f:
        f.write("".join(blocks))


def _demo_live(
    day: Any,
    paths: Any,
    out: Path,
    *,
    duration: float | None,
    speed: float,
    start: str,
    host: str,
    port: int,
    nats_url: str | None = None,
) -> None:
    """Stream the generated day into the engine at ``speed``x and serve the dashboard until stopped."""
    import re

    from clearlane.adapters.cli.demo import start_live
    from clearlane.adapters.nats.events_out import PublisherOptions

    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", start)
    if match is None:
        raise fail(f"--start: expected HH:MM (UTC), got {start!r}")
    first_ms = int(day.trades.column("executed_at")[0].as_py()) if day.trades.num_rows else 0
    day_start = first_ms - first_ms % 86_400_000
    start_ms = max(first_ms, day_start + (int(match.group(1)) * 60 + int(match.group(2))) * 60_000)
    _add_canaries(Path(paths.config))
    try:
        demo_run = start_live(
            out,
            paths.config,
            day.trades,
            day.deposits,
            speed=speed,
            start_ms=start_ms,
            host=host,
            port=port,
            nats=None if nats_url is None else (nats_url, PublisherOptions()),
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
            summary = runtime.summary()
            summary["run"] = _live_run(demo_run)
            print_summary(
                summary,
                f"Streamed {demo_run.feed.applied:,} trades in {time.monotonic() - started:.1f} s "
                f"(engine clock {speed:g}x)",
            )
            feed = demo_run.feed
            _print_badges(runtime, feed.trades.column("trade_id").slice(feed.first, 200).to_pylist())
        console.print(_clock_line(runtime.clock, speed))
        demo_run.http.stop()
    console.print(f"database: {out / 'clearlane.db'}")


def _clock_line(clock: Any, speed: float) -> str:
    """Whether the paced clock had to wait for the engine (node/runtime.py AcceleratedClock)."""
    status = clock.status() if hasattr(clock, "status") else {}
    if not status.get("held_episodes"):
        return f"engine clock: {speed:g}x throughout, never ahead of the engine"
    return (
        f"[yellow]engine clock: held back {status['held_episodes']} time(s), "
        f"{status['slipped_ms'] / 1000:,.1f} s of engine time skipped — the machine was too busy "
        f"for {speed:g}x; the clock waited for the engine instead of compressing deadlines[/]"
    )


def _live_run(demo_run: Any) -> dict[str, Any]:
    """The stream's own figures: the trades the feed submitted, refused at the edge or by the
    engine (the service's counters, by code) and answered as duplicates."""
    from clearlane.node.report import run_from_counts

    counters = demo_run.runtime.counters
    by_code = dict(counters.edge_rejects)
    for slug, count in counters.engine_rejects.items():
        by_code[slug] = by_code.get(slug, 0) + count
    feed = demo_run.feed
    return run_from_counts(feed.applied + feed.refused, by_code, demo_run.runtime.rm.activity.duplicates)


def _badges(owner: Any, candidates: list[str]) -> list[tuple[str, str]]:
    """(trade id, badge) of one L2 and one L1 sample trade. ``owner``: the node
    (``--no-serve``) or the live runtime, whose read model finds a record by id at once (the
    store scans chunk blobs)."""
    from clearlane.node.report import trade_lifecycle

    source = owner.store
    if hasattr(owner, "rm"):
        from clearlane.adapters.http.views import LifecycleSource

        source = LifecycleSource(owner.rm)
    out = []
    for flow_id in _sample_trades(source, candidates):
        life = trade_lifecycle(source, flow_id)
        if life is not None:
            out.append((flow_id, str(life["badge"])))
    return out


def _print_badges(owner: Any, candidates: list[str]) -> None:
    """Two badges and the next commands."""
    sample = _badges(owner, candidates)
    for flow_id, badge in sample:
        console.print(f"  {flow_id}: [bold]{badge}[/]")
    db = owner.store.url.removeprefix("sqlite:///")
    console.print(f"next: clearlane status {sample[0][0] if sample else 'TRADE_ID'} --db {db}")
    if sample:
        console.print(f"      clearlane proof {sample[0][0]} --db {db}   (then: clearlane verify-proof FILE)")


def _sample_trades(source: Any, candidates: list[str]) -> list[str]:
    """One L2 and one L1 exchange trade for the demo's badges: the first of ``candidates`` (the
    day's first trade ids) stored on each lane."""
    picks: dict[str, str] = {}
    for trade_id in candidates:
        if "L2" in picks and "L1" in picks:
            break
        record = source.find_trade(trade_id)
        if record is not None and record.get("lane"):
            picks.setdefault(str(record["lane"]), str(record["flow_id"]))
    return [picks[lane] for lane in ("L2", "L1") if lane in picks]
