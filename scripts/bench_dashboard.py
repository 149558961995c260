"""Dashboard benchmark: first render of every page with a big day loaded, and live updates under load.

Part 1 (``--trades N``, default 10M): clears a generated day end to end into a database with
the node (as ``clearlane bench`` does; Parquet in ``--workdir``), then opens it as
``clearlane serve`` would (:func:`clearlane.adapters.http.server.build`: the runtime replays the log
into the service's read model), serves it, and loads every page in Debian's headless Chromium
(Playwright, in a child process) ``--repeat`` times, each in a fresh browser context; the
figure is the page's own ``clearlane:rendered`` mark (navigation start -> the page's data
rendered), and for the chart pages also the time until the charts are drawn.

Part 2 (``--live-rate R --live-seconds S``): the service with the dashboard on a fresh database,
fed R trades a second (submissions of R/10 every 100 ms, a few in flight) while the Overview page
is open; reports the achieved rate, the stats events the browser received per second, how often
it re-rendered, and the lag between an event leaving the server and the page handling it.

    .venv/bin/python scripts/bench_dashboard.py --trades 10000000 --workdir bench
    .venv/bin/python scripts/bench_dashboard.py --trades 0 --live-rate 20000 --live-seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from clearlane.adapters.cli.demo import HttpServer
from clearlane.adapters.embedded import open_node
from clearlane.sim.generator import generate_day

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = [
    ("overview", "overview"),
    ("trades", "trades"),
    ("trade (newest)", "trade/{trade}"),
    ("trade (oldest)", "trade/{oldest}"),
    ("trades by participant", "trades?participant={retail}"),
    ("batches", "batches"),
    ("batch", "batch/{batch}"),
    ("participants", "participants"),
    ("participant", "participant/{participant}"),
    ("latency", "latency"),
    ("savings", "savings"),
]
CHARTS = {"latency": "#heatmap[data-plotted='1']", "savings": "#liquidity[data-plotted='1']"}


def rss_gib() -> float:
    return float(psutil.Process().memory_info().rss / 2**30)


def clear_day(
    trades: int, participants: int, assets: int, seed: int, workdir: Path
) -> tuple[Path, dict[str, float]]:
    """The day cleared end to end into ``workdir/dashboard-bench.db`` (reused when complete)."""
    from clearlane.node.intake import iter_input

    day_dir = workdir / f"day-{trades}-{participants}-{assets}-{seed}"
    if not (day_dir / "trades.parquet").exists():
        print(f"generating {trades:,} trades into {day_dir} ...", flush=True)
        generate_day(trades=trades, participants=participants, assets=assets, seed=seed).write(day_dir)
    db = workdir / f"dashboard-bench-{trades}.db"
    done = workdir / f"dashboard-bench-{trades}.done"
    if db.exists() and done.exists():
        return db, {"clear_s": float(done.read_text())}
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    node = open_node(db, day_dir / "config.toml")
    started = time.perf_counter()
    import pyarrow.parquet as pq

    first = pq.ParquetFile(day_dir / "trades.parquet").read_row_group(0, columns=["executed_at"])
    node.clear_batches(
        iter_input(day_dir / "deposits.jsonl", node.config),
        source="deposits",
        events_at_ms=int(first.column(0)[0].as_py()),
    )
    node.clear_batches(
        iter_input(day_dir / "trades.parquet", node.config, chunk_rows=node.config.trade_chunk_rows_max),
        source="bench",
    )
    node.settle_until_quiet()
    node.close()
    seconds = time.perf_counter() - started
    done.write_text(str(seconds))
    return db, {"clear_s": seconds}


def open_service(db: Path) -> tuple[Any, dict[str, float]]:
    """The service over ``db`` as ``clearlane serve`` opens it (log replayed into the read model)."""
    from clearlane.adapters.http.app import ServiceOptions
    from clearlane.adapters.http.server import build
    from clearlane.node.runtime import AcceleratedClock

    rss0 = rss_gib()
    started = time.perf_counter()
    # speed 1 from the engine's own time (the clock starts where the log ends)
    app = build(
        db, None, clock=AcceleratedClock(1.0, 0), service_options=ServiceOptions(auth=False), webhooks=False
    )
    return app, {
        "open_s": time.perf_counter() - started,
        "rss_before_gib": rss0,
        "rss_after_gib": rss_gib(),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def measure_pages(url: str, runtime: Any, repeat: int) -> list[dict[str, Any]]:
    """Run the browser in a child process (as a real browser is): the server keeps this one."""
    import multiprocessing

    rm = runtime.rm
    with runtime.lock:
        last = rm.chunk_table(rm.n_chunks - 1)
        first = rm.chunk_table(0)
        k, s = int(rm.batch_order_pool[rm.n_batches - 1]), int(rm.batch_order_seq[rm.n_batches - 1])
        values = {
            "trade": last.column("flow_id")[last.num_rows // 2].as_py(),
            "oldest": first.column("flow_id")[0].as_py(),
            "batch": f"{rm.pools[k]}-{s:08d}",
            "participant": rm.participant_ids[0],
            "retail": next(p for p in rm.participant_ids if p.startswith("RTL-")),
        }
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        result: list[dict[str, Any]] = pool.apply(_browse, (url, values, repeat))
    return result


def _browse(url: str, values: dict[str, str], repeat: int) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for name, template in PAGES:
            route = template.format(**values)
            times: list[float] = []
            charts: list[float] = []
            views: list[float] = []
            for i in range(repeat + 1):  # the first load warms the server-side code paths
                context = browser.new_context(viewport={"width": 1366, "height": 900})
                page = context.new_page()
                page.goto(f"{url}/ui/#/{route}")
                page.wait_for_function("window.__clearlaneRender !== undefined", timeout=60_000)
                ms = float(page.evaluate("window.__clearlaneRender.ms"))
                views.append(
                    float(
                        page.evaluate(
                            "performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/dashboard/'))"
                            ".reduce((a, e) => Math.max(a, ...e.serverTiming.map(t => t.duration), 0), 0)"
                        )
                    )
                )
                if name in CHARTS:
                    page.wait_for_selector(CHARTS[name], timeout=60_000)
                    charts.append(float(page.evaluate("performance.now()")))
                if i:
                    times.append(ms)
                context.close()
            row = {
                "page": name,
                "median_ms": statistics.median(times),
                "max_ms": max(times),
                "runs": len(times),
                "server_view_ms": statistics.median(views[1:]),
            }
            if charts:
                row["charts_drawn_ms"] = statistics.median(charts[1:])
            print(
                f"  {name:<22} first render median {row['median_ms']:7.1f} ms  max {row['max_ms']:7.1f} ms"
                f"  (slowest view on the server {row['server_view_ms']:6.1f} ms)"
                + (f"  charts drawn {row['charts_drawn_ms']:7.1f} ms" if charts else ""),
                flush=True,
            )
            out.append(row)
        browser.close()
    return out


def live_rate(rate: int, seconds: float, workdir: Path) -> dict[str, Any]:
    """Submit ``rate`` trades/s to the clearing service (runtime + dashboard, as ``clearlane serve``)
    while the Overview page is open in a browser; measure what reaches the browser."""

    from playwright.sync_api import sync_playwright

    from clearlane.adapters.http.app import ServiceOptions
    from clearlane.adapters.http.server import build
    from clearlane.node.runtime import AcceleratedClock

    total = int(rate * seconds * 1.1) + 10_000
    day = generate_day(trades=total, participants=2_000, assets=16, seed=5)
    directory = workdir / "live-bench"
    shutil.rmtree(directory, ignore_errors=True)
    paths = day.write(directory)
    # the wall clock (speed 1 from now): a stats event's clock.now_ms is the server's wall time
    app = build(
        directory / "live.db",
        paths.config,
        clock=AcceleratedClock(1.0, int(time.time() * 1000)),
        service_options=ServiceOptions(auth=False),
        webhooks=False,
    )
    runtime = app.state.runtime
    http = HttpServer(app, "127.0.0.1", 0)
    http.start()
    deposits = []
    for d in day.deposits:
        data = d.model_dump(mode="json")
        data.pop("type", None)
        data.pop("v", None)
        deposits.append(data)
    runtime.submit_events("collateral_deposit", deposits).result(timeout=600)
    step = rate // 10
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page()
        page.add_init_script("""
            window.__lags = []; window.__events = 0; window.__renders = 0;
            window.__clearlaneStatsHook = (s) => { window.__events++; window.__lags.push(Date.now() - s.clock.now_ms); };
        """)
        page.goto(f"{http.url}/ui/#/overview")
        page.wait_for_function("window.__clearlaneRender !== undefined")
        page.evaluate(
            "new MutationObserver(() => window.__renders++).observe(document.getElementById('view'), {childList: true})"
        )
        cursor, steps, late = 0, 0, 0
        started = time.monotonic()
        cpu0 = time.process_time()
        pending = []
        while time.monotonic() - started < seconds and cursor + step <= day.trades.num_rows:
            tick = time.monotonic()
            rows = day.trades.slice(cursor, step).to_pylist()
            pending.append(runtime.submit_trades(rows))
            cursor += step
            steps += 1
            while len(pending) > 5:  # a venue keeps a few requests in flight
                pending.pop(0).result(timeout=60)
            spent = time.monotonic() - tick
            if spent > 0.1:
                late += 1
            else:
                time.sleep(0.1 - spent)
        for future in pending:
            future.result(timeout=60)
        elapsed = time.monotonic() - started
        cpu = time.process_time() - cpu0
        time.sleep(1.5)
        lags = page.evaluate("window.__lags")
        events = page.evaluate("window.__events")
        renders = page.evaluate("window.__renders")
        shown = page.evaluate(
            "Number(document.querySelector('#kpi-trades .value').textContent.replace(/,/g, ''))"
        )
        browser.close()
    applied = runtime.rm.trades_received
    http.stop()
    return {
        "target_rate": rate,
        "achieved_rate": cursor / elapsed,
        "seconds": elapsed,
        "steps": steps,
        "late_steps": late,
        "process_cpu_s": cpu,
        "events": events,
        "events_per_s": events / elapsed,
        "renders": renders,
        "lag_ms_p50": float(np.percentile(lags, 50)) if lags else None,
        "lag_ms_max": float(max(lags)) if lags else None,
        "trades_applied": applied,
        "trades_shown_at_end": shown,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trades", type=int, default=10_000_000)
    parser.add_argument("--participants", type=int, default=2_000)
    parser.add_argument("--assets", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=Path("bench"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--live-rate", type=int, default=0)
    parser.add_argument("--live-seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=None, help="Write the figures here too.")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"}
    if args.trades:
        db, figures = clear_day(args.trades, args.participants, args.assets, args.seed, args.workdir)
        app, opened = open_service(db)
        figures.update(opened)
        runtime = app.state.runtime
        http = HttpServer(app, "127.0.0.1", 0)
        http.start()
        print(
            f"{runtime.rm.trades_received:,} trades: cleared in {figures['clear_s']:.1f} s; service opened (log replayed into "
            f"its read model) in {figures['open_s']:.1f} s; RSS {figures['rss_after_gib']:.2f} GiB, peak "
            f"{figures['peak_rss_gib']:.2f} GiB",
            flush=True,
        )
        report["load"] = figures
        report["pages"] = measure_pages(http.url, runtime, args.repeat)
        http.stop()
    if args.live_rate:
        live = live_rate(args.live_rate, args.live_seconds, args.workdir)
        print(json.dumps(live, indent=2))
        report["live"] = live
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
