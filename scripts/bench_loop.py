"""The service's clearing loop alone, in process: what a step costs, without HTTP, a gateway,
a load generator or a second thread competing for the interpreter.

    .venv/bin/python scripts/bench_loop.py --per-step 2300 --step-ms 45 --steps 400
    .venv/bin/python scripts/bench_loop.py --per-step 100 --step-ms 25 --steps 400 --profile polls

It builds the app as ``clearlane serve`` does (dashboard, monitor, read model; no webhooks) on a
fresh store with the service's page size, for a generated day (300 participants, 8 assets, every
pool's window 25 ms, as ``scripts/bench_serve.py``), posts the day's deposits, then drives the
runtime's loop by hand: each step the clock moves ``--step-ms`` of engine time and
``--per-step`` trades (decoded submissions of 100, as a gateway sends them) are queued and
``Runtime._iteration`` is called once — a trade step, and the window closes, base-layer polls and
blocks that fall due, exactly as the loop thread would run them. ``--per-step 2300 --step-ms 45``
is the load of ``bench_serve.py --rate 50000`` with its ~22 trade steps a second.

Prints the iterations' wall and CPU (mean, percentiles, after 20 warm-up steps), each step
kind's mean (the runtime's own histogram), and the node's stage times per iteration. With
``--profile steps`` a cProfile of the iterations, with ``--profile polls`` of the base-layer
polls alone (each poll's wall printed: the ones that see a block carry its work).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from clearlane.adapters.embedded import open_node
from clearlane.adapters.http import server
from clearlane.adapters.sql.store import SERVICE_PAGE_SIZE
from clearlane.node.intake.rows import decoded_batch
from clearlane.node.runtime import RuntimeOptions, StepTimes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import prepare  # a sibling script: the same day and configuration

WARM_STEPS = 20
ROWS_A_SUBMISSION = 100


class StepClock:
    """Engine time that moves only when the driver says (a realtime clock's interface)."""

    mode = "realtime"
    speed = 1.0

    def __init__(self, start_ms: int) -> None:
        self.t = start_ms

    def now_ms(self) -> int:
        return self.t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-step", type=int, default=2300, help="trades queued before each step")
    ap.add_argument("--step-ms", type=int, default=45, help="engine ms between steps")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--window-ms", type=int, default=25, help="every pool's batch window")
    ap.add_argument("--profile", choices=("steps", "polls"), default=None)
    ap.add_argument("--top", type=int, default=45, help="profile lines")
    ap.add_argument("--sort", default="cumulative", help="profile order (pstats: cumulative, tottime)")
    args = ap.parse_args()

    need = max(args.per_step * args.steps + 1000, 20_000)
    work = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    # The day, configuration and deposits bench_serve.py posts (same seed, sizes and windows).
    config, _, deposits, rows = prepare(work, need, 300, 8, args.window_ms, 7)
    db = work / "loop.db"
    open_node(db, config, page_size=SERVICE_PAGE_SIZE).close()
    clock = StepClock(int(time.time() * 1000))
    app = server.build(db, config, clock=clock, runtime_options=RuntimeOptions(), webhooks=False)
    rt = app.state.runtime
    # The loop's iterations are driven here (no thread): the runtime takes submissions.
    rt._live = True
    rt._thread = threading.Thread(target=lambda: None)
    rt._thread.start()
    rt.node.warm()
    rt.intake.warm(clock.now_ms())
    for payload in deposits:
        done = rt.submit_events("collateral_deposit", [payload])
        rt._iteration()
        done.result()
    for r in rows:
        if r["exch_batch_id"] is None:
            del r["exch_batch_id"]

    profile = cProfile.Profile() if args.profile else None
    poll_walls: list[float] = []
    if args.profile == "polls" and profile is not None:
        real_step_time = rt._step_time

        def step_time(now: int, *, poll: bool) -> None:
            started = time.perf_counter()
            if poll:
                profile.enable()
            real_step_time(now, poll=poll)
            if poll:
                profile.disable()
                poll_walls.append(time.perf_counter() - started)

        rt._step_time = step_time

    # The deposits' steps are not the load: count from here.
    rt.node.timer.seconds.clear()
    rt.node.timer.cpu.clear()
    rt.counters.step_seconds = StepTimes()
    gc.collect()
    gc.freeze()
    walls, cpus = [], []
    at = 0
    for i in range(args.steps):
        clock.t += args.step_ms
        futures = []
        for start in range(at, at + args.per_step, ROWS_A_SUBMISSION):
            chunk = rows[start : min(start + ROWS_A_SUBMISSION, at + args.per_step)]
            for r in chunk:
                r["executed_at"] = clock.t
            futures.append(rt.submit_decoded(decoded_batch(chunk)))
        at += args.per_step
        started, cpu = time.perf_counter(), time.thread_time()
        if args.profile == "steps" and profile is not None and i >= WARM_STEPS:
            profile.enable()
        rt._iteration()
        if args.profile == "steps" and profile is not None:
            profile.disable()
        walls.append(time.perf_counter() - started)
        cpus.append(time.thread_time() - cpu)
        for f in futures:
            f.result()

    w = np.array(walls[WARM_STEPS:]) * 1e3
    c = np.array(cpus[WARM_STEPS:]) * 1e3
    print(
        f"{args.per_step} trades a step, {args.step_ms} ms apart, {args.steps} steps: iteration wall "
        f"mean {w.mean():.2f} p50 {np.median(w):.2f} p90 {np.percentile(w, 90):.2f} "
        f"p99 {np.percentile(w, 99):.2f} max {w.max():.2f} ms; CPU mean {c.mean():.2f} ms "
        f"({c.mean() * 1e3 / max(1, args.per_step):.1f} µs a trade)"
    )
    times = rt.counters.step_seconds
    print(
        "step kinds (count, mean ms):",
        {k: (sum(v), round(times.sums[k] * 1e3 / sum(v), 2)) for k, v in times.counts.items()},
    )
    print(
        "node stages a step, all steps (ms):",
        {k: round(v * 1e3 / len(walls), 3) for k, v in rt.node.timer.seconds.items()},
    )
    if poll_walls:
        print("polls (ms):", [round(x * 1e3, 1) for x in poll_walls])
    if profile is not None:
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)
    rt.stop()


if __name__ == "__main__":
    main()
