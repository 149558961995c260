"""The service's intake on its own: ``Intake.trades`` over serve-sized steps.

    .venv/bin/python scripts/bench_intake.py --requests 1 5 10

Generates a realistic day (``clearlane.sim``, 300 participants, 8 assets), turns its trades
into the JSON objects a ``POST /v1/trades/batch`` carries (100 trades a request, ``executed_at``
now), and times ``Intake.trades`` — parsing, every field check, the limits — on steps of
``--requests`` requests, the way the serve loop validates what queued since its last step. The
best of ``--repeats`` passes over 30 steps is printed per step size: ms a step and µs a row.
A step's fixed cost (the column set-up and the Arrow calls a step makes whatever its size) is
what the small steps show; the per-row cost is what the large ones add (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import time
import tomllib

from clearlane.core.config.model import parse_config
from clearlane.node.intake.rows import Intake
from clearlane.sim.generator import generate_day

STEPS = 30


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, nargs="+", default=[1, 5, 10], help="requests a step")
    parser.add_argument("--batch", type=int, default=100, help="trades a request")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    most = max(args.requests) * args.batch * STEPS
    day = generate_day(trades=most, participants=300, assets=8, seed=7)
    intake = Intake(parse_config(tomllib.loads(day.config_toml)))
    columns = ["trade_id", "venue", "symbol", "buyer", "seller", "quantity", "price", "exch_batch_id"]
    rows = day.trades.select(columns).to_pylist()
    now = int(time.time() * 1000)
    for row in rows:
        row["executed_at"] = now
        if row["exch_batch_id"] is None:
            del row["exch_batch_id"]
    print(f"{'requests a step':>16} {'rows':>6} {'ms a step':>10} {'µs a row':>9}")
    for k in args.requests:
        size = k * args.batch
        steps = [
            [
                (rows[s * size + i * args.batch : s * size + (i + 1) * args.batch], now, "trades")
                for i in range(k)
            ]
            for s in range(STEPS)
        ]
        for step in steps[:3]:  # warm: compiled kernels loaded, caches filled
            intake.trades(step)
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            for step in steps:
                _, errors, _ = intake.trades(step)
                if any(errors):
                    raise SystemExit(f"unexpected rejects: {[e for e in errors if e][:1]}")
            best = min(best, (time.perf_counter() - started) / STEPS)
        print(f"{k:>16} {size:>6} {best * 1e3:>10.2f} {best * 1e6 / size:>9.1f}")


if __name__ == "__main__":
    main()
