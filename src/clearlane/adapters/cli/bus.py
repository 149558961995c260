"""The NATS JetStream commands: ``publish`` (a file, each trade to its pool's subject) and
``worker`` (consume a group of pools exactly once into one partition).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from clearlane.adapters.cli.common import (
    ChainKeyOption,
    ChainOption,
    DbOption,
    RpcUrlOption,
    chain_choice,
    console,
    err,
    fail,
)


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
    chain: ChainOption = "simulated",
    rpc_url: RpcUrlOption = None,
    chain_key: ChainKeyOption = None,
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
        chain=chain_choice(chain, rpc_url, chain_key),
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
