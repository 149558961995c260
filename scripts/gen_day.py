"""Generate a trading day and time reading it back through the ingest readers.

    python scripts/gen_day.py --trades 10000000 --participants 5000 --assets 16 --seed 7 --out /tmp/day

Writes config.toml, trades.parquet and deposits.jsonl into --out and prints generation time,
file size, peak memory and ingest throughput (rows/s) for trades.parquet.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from clearlane.core.config import load_config
from clearlane.node.intake import iter_input
from clearlane.sim import generate_day


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--participants", type=int, default=5_000)
    parser.add_argument("--assets", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--no-read", action="store_true", help="skip the ingest read-back")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    day = generate_day(trades=args.trades, participants=args.participants, assets=args.assets, seed=args.seed)
    generated = time.perf_counter()
    paths = day.write(args.out)
    written = time.perf_counter()
    size_mib = paths.trades.stat().st_size / 2**20
    print(
        f"generated {args.trades:,} trades in {generated - started:.2f} s ({args.trades / (generated - started):,.0f} trades/s)"
    )
    print(
        f"wrote {paths.trades} ({size_mib:,.1f} MiB) + config + {len(day.deposits):,} deposits in {written - generated:.2f} s"
    )
    del day
    if not args.no_read:
        config = load_config(paths.config)
        rows = valid = rejects = chunks = 0
        read_start = time.perf_counter()
        for batch in iter_input(paths.trades, config, chunk_rows=args.chunk_rows):
            if batch.trades is not None:
                rows += batch.trades.rows_read
                valid += batch.trades.table.num_rows
                chunks += 1
            rejects += len(batch.rejects)
        read_s = time.perf_counter() - read_start
        print(
            f"ingested {rows:,} rows ({valid:,} valid, {rejects:,} rejects, {chunks} chunks) in {read_s:.2f} s = {rows / read_s:,.0f} rows/s"
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mib:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
