"""Monitoring's cost and its false-alarm rate (issue 15).

``overhead`` (default): a runtime on the real clock, its loop thread running, fed ``--rate``
trades/s for ``--seconds``, with the monitor attached (canaries every ``--interval-ms`` down
every path of a canary set, divergence and trust every 10 s, two external mark feeds) and a
Prometheus scrape of /metrics' registry every ``--scrape-s``. The CPU time spent in the
monitor's hook, its bus and step listeners and in the scrapes is measured where it is spent
(``time.thread_time`` around each call) and reported as a share of one core over the run.

``--replay-hours H``: a healthy node driven on an accelerated clock (the loop run by this
script on a fake wall clock, background trades every step) for H hours of engine time with
canaries every ``--interval-ms``; prints the verdicts and exits 1 on any failed or degraded
canary (a false alarm).

    .venv/bin/python scripts/bench_monitor.py --rate 1000 --seconds 60
    .venv/bin/python scripts/bench_monitor.py --replay-hours 24 --interval-ms 60000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clearlane.adapters.embedded import EMBEDDED, open_memory_node
from clearlane.adapters.http.metrics import Metrics
from clearlane.adapters.http.routes.monitoring import install_gauges, proof_verifier
from clearlane.core.config import ClearingConfig, load_config
from clearlane.node.monitor.canaries import CanaryOptions
from clearlane.node.monitor.service import Monitor, MonitorOptions
from clearlane.node.runtime import AcceleratedClock, Runtime, RuntimeOptions
from clearlane.node.stress import toml_dumps

CONFIG = Path(__file__).resolve().parents[1] / "src" / "clearlane" / "core" / "config" / "example.toml"
PAIRS = (("MM-ALPHA", "MM-BETA"), ("BRK-NORTH", "RTL-0001"), ("CUST-VAULT", "RTL-0002"))


def canary_config(directory: Path) -> Path:
    raw = tomllib.loads(CONFIG.read_text())
    for pid, kind in (("CANARY-MM-A", "market_maker"), ("CANARY-MM-B", "market_maker")):
        raw["participants"].append({"id": pid, "kind": kind, "credit_limit_usd": "1000", "synthetic": True})
    for pid in ("CANARY-RT-A", "CANARY-RT-B"):
        raw["participants"].append(
            {"id": pid, "kind": "retail", "credit_limit_usd": "1000", "synthetic": True}
        )
    path = directory / "canary.toml"
    path.write_text(toml_dumps(raw), encoding="utf-8")
    return path


class Meter:
    """CPU seconds spent inside wrapped calls (on whichever thread runs them)."""

    def __init__(self) -> None:
        self.cpu = Counter[str]()
        self.calls = Counter[str]()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args)
            finally:
                self.cpu[name] += time.thread_time() - start
                self.calls[name] += 1

        return timed


def _rows(start: int, n: int, now_ms: int) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        buyer, seller = PAIRS[i % len(PAIRS)]
        out.append(
            {
                "trade_id": f"B{i:09d}",
                "venue": "XCL",
                "symbol": "BTC/USD",
                "buyer": buyer,
                "seller": seller,
                "quantity": "0.001",
                "price": "65000",
                "executed_at": now_ms,
                "exch_batch_id": f"X{i // 1000:06d}",
            }
        )
    return out


def instrument(rt: Runtime, monitor: Monitor, meter: Meter) -> None:
    """Swap the monitor's hook and listeners for timed ones (same calls, same order)."""
    rt.hooks[rt.hooks.index(monitor.tick)] = meter.wrap("hook", monitor.tick)
    rt.step_listeners[rt.step_listeners.index(monitor.sources.on_step)] = meter.wrap(
        "step_listener", monitor.sources.on_step
    )
    bus = rt.bus
    listener = monitor.canaries._on_events
    bus.remove_listener(listener)
    bus.add_listener(meter.wrap("bus_listener", listener))


def overhead(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rt = Runtime(tmp / "m.db", canary_config(tmp), options=RuntimeOptions(), opener=EMBEDDED)
    options = MonitorOptions(canaries=CanaryOptions(interval_ms=args.interval_ms))
    monitor = Monitor.attach(rt, options, verifier=proof_verifier(rt))
    meter = Meter()
    instrument(rt, monitor, meter)
    metrics = Metrics(rt)
    install_gauges(metrics, monitor)
    rt.start()
    stop = threading.Event()

    def scrape() -> None:
        while not stop.wait(args.scrape_s):
            meter.wrap("scrape", metrics.render)()

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    sent, per_tick, t0 = 0, max(1, args.rate // 20), time.perf_counter()
    cpu0 = time.process_time()
    while time.perf_counter() - t0 < args.seconds:
        now = rt.clock.now_ms()
        rt.submit_trades(_rows(sent, per_tick, now))
        sent += per_tick
        if sent % 1000 < per_tick:
            for feed, bump in (("feed-a", "65010"), ("feed-b", "64990")):
                monitor.push_mark(feed, "BTC", bump)
        time.sleep(max(0.0, t0 + sent / args.rate - time.perf_counter()))
    wall = time.perf_counter() - t0
    stop.set()
    process_cpu = time.process_time() - cpu0
    snap = monitor.snapshot()
    rt.stop()
    spent = sum(meter.cpu.values())
    return {
        "rate": args.rate,
        "seconds": round(wall, 1),
        "trades_sent": sent,
        "trades_accepted": rt.counters.trades_accepted,
        "canary_interval_ms": args.interval_ms,
        "canary_verdicts": Counter(r["verdict"] for p in snap["canaries"]["paths"] for r in p["last"]),
        "monitor_cpu_s": {k: round(v, 4) for k, v in meter.cpu.items()},
        "calls": dict(meter.calls),
        "overhead_pct_of_one_core": round(100 * spent / wall, 3),
        "process_cpu_pct": round(100 * process_cpu / wall, 1),
        "loop_cpu_s": round(rt.counters.loop_cpu_s, 2),
    }


class MemoryOpener:
    """The runtime on the in-memory store (the replay measures canaries, not SQLite)."""

    def resolve_config(
        self, db: str | Path, config_path: str | Path | None
    ) -> tuple[ClearingConfig | None, None]:
        return (None if config_path is None else load_config(config_path)), None

    def open_node(self, db: str | Path, config_path: str | Path | None, **options: Any) -> Any:
        if config_path is None:
            raise ValueError("a configuration is needed")
        return open_memory_node(config_path, keys=options.get("keys"), observer=options.get("observer"))


def replay(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    wall = [1000.0]
    clock = AcceleratedClock(1000, 1_763_700_000_000, monotonic=lambda: wall[0])
    options = RuntimeOptions(tune_process=False)
    rt = Runtime(tmp / "r.db", canary_config(tmp), clock=clock, options=options, opener=MemoryOpener())
    rt._live = True  # the loop is driven here, on the fake wall clock
    rt._thread = threading.Thread(target=lambda: None)
    rt._thread.start()
    # The loop is stepped here, one step_ms of engine time per iteration: that is its latency.
    canaries = CanaryOptions(interval_ms=args.interval_ms, loop_slack_ms=args.step_ms)
    monitor = Monitor.attach(rt, MonitorOptions(canaries=canaries))
    step_ms, sent, started = args.step_ms, 0, time.perf_counter()
    for _ in range(int(args.replay_hours * 3_600_000) // step_ms):
        rt.submit_trades(_rows(sent, args.trades_per_step, rt.clock.now_ms()))
        sent += args.trades_per_step
        wall[0] += step_ms / 1000 / 1000
        rt._iteration()
    # Every failure over the run also raised an alert (counted separately, as a cross-check).
    failed_alerts = rt.rm.activity.alerts_by_kind.get("canary_failed", 0)
    sent_canaries = {name: s.sent for name, s in monitor.canaries.paths.items()}
    verdicts = {name: s.verdicts for name, s in monitor.canaries.paths.items()}
    rt.stop()
    return {
        "engine_hours": args.replay_hours,
        "wall_s": round(time.perf_counter() - started, 1),
        "background_trades": sent,
        "canaries_sent": sent_canaries,
        "canary_failed_alerts": failed_alerts,
        "verdicts": verdicts,
        "not_passed": sum(n for by in verdicts.values() for v, n in by.items() if v != "passed"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval-ms", type=int, default=60_000)
    parser.add_argument("--scrape-s", type=float, default=15.0)
    parser.add_argument("--replay-hours", type=float, default=0)
    parser.add_argument("--step-ms", type=int, default=5_000)
    parser.add_argument("--trades-per-step", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = replay(args, Path(tmp)) if args.replay_hours else overhead(args, Path(tmp))
    print(json.dumps(out, indent=2, default=dict))
    if args.replay_hours and (out["canary_failed_alerts"] or out["not_passed"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
