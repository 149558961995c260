"""The ``bench`` command: generate a day once (kept under ``--workdir``), clear it end to end
from Parquet into a fresh database, and print each stage's wall and CPU seconds, trades per
second and peak RSS.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clearlane.adapters.cli.common import KeysOption, WriterOption, console, writer_in_process


@dataclass(frozen=True)
class _Timings:
    """Seconds measured around one benchmark run (CPU: this thread unless said otherwise)."""

    read: float
    read_cpu: float
    settle: float
    settle_cpu: float
    total: float
    total_cpu: float  # every thread of the process
    main_cpu: float


class _TimedReader:
    """Opens a reader of trade chunks when first pulled, adding up the time spent in it."""

    def __init__(self, open_chunks: Callable[[], Iterator[Any]]) -> None:
        self.open_chunks = open_chunks
        self.seconds = 0.0
        self.cpu = 0.0

    def chunks(self) -> Iterator[Any]:
        iterator = self.open_chunks()
        while True:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - t0
                self.cpu += time.thread_time() - c0
            yield batch


def bench(
    trades: Annotated[int, typer.Option(help="Trades in the generated day.")] = 10_000_000,
    participants: Annotated[int, typer.Option()] = 2_000,
    assets: Annotated[int, typer.Option()] = 16,
    seed: Annotated[int, typer.Option()] = 42,
    workdir: Annotated[Path, typer.Option(help="Where the Parquet day and database live.")] = Path("bench"),
    keys: KeysOption = None,
    store: Annotated[
        str, typer.Option(help="sqlite (a fresh bench.db in --workdir) or memory (the in-memory store).")
    ] = "sqlite",
    floor: Annotated[
        bool,
        typer.Option(
            help="Also measure, in the same run, the floor of the same work; print end to end ÷ floor."
        ),
    ] = False,
    writer: WriterOption = "auto",
) -> None:
    """Benchmark: clear a generated day end to end from Parquet; print trades/s, stages, RSS."""
    from clearlane.node.report import summary as make_summary

    day_dir = workdir / f"day-{trades}-{participants}-{assets}-{seed}"
    _generate_once(day_dir, trades, participants, assets, seed)
    if store not in ("sqlite", "memory"):
        raise typer.BadParameter(f"unknown store {store!r}: sqlite or memory", param_hint="--store")
    from clearlane.adapters.cli.floor import FloorRecorder

    recorder = FloorRecorder() if floor else None
    db = workdir / "bench.db"
    in_process = store == "sqlite" and writer_in_process(writer, (day_dir / "trades.parquet").stat().st_size)
    node = _fresh_node(
        db,
        day_dir / "config.toml",
        keys,
        memory=store == "memory",
        observer=recorder,
        writer_process=in_process,
    )
    os.sync()  # the day's and the last run's pages on disk: the run pays for none of them
    timings = _clear_day(node, day_dir)
    summary = make_summary(node)
    _print_report(
        node,
        summary,
        timings,
        f"clearlane bench — {trades:,} trades, {participants:,} participants, {assets} assets, {store} store",
    )
    config = node.config
    node.close()
    if recorder is not None:
        _print_floor(config, recorder, day_dir, db if store == "sqlite" else None, timings)


def _print_floor(config: Any, recorder: Any, day_dir: Path, db: Path | None, timings: _Timings) -> None:
    """The floor of the same work (:mod:`clearlane.adapters.cli.floor`) and end to end ÷ floor.
    Measured once the node is closed (its checkpoint and background threads done) and the
    run's written pages are on disk (``os.sync``): the floor's own writes then pay for nothing
    the run left behind."""
    from clearlane.adapters.cli.floor import measure_floor
    from clearlane.adapters.sql.floor import store_bytes, write_floor

    os.sync()
    written = store_bytes(db) if db is not None else 0
    scratch = None if db is None else db.with_name("floor.db")
    figures = measure_floor(
        recorder,
        config,
        day_dir / "trades.parquet",
        None if scratch is None else (lambda n, steps: write_floor(scratch, n, steps)),
        written,
    )
    table = Table(
        "floor part",
        "wall s",
        title="the floor of the same work (in bulk, one thread, best of three)",
    )
    table.add_row("read (Parquet, same file)", f"{figures.read:.2f}")
    table.add_row(f"net ({figures.flows:,} flows, {figures.batches:,} batches, exact)", f"{figures.net:.2f}")
    table.add_row("hash (same leaves and nodes, same hasher; roots equal)", f"{figures.hash:.2f}")
    if figures.write is None:
        table.add_row("write (memory store: none)", "-")
    else:
        table.add_row(
            f"write ({figures.write_bytes / 2**20:,.0f} MiB in {recorder.steps:,} transactions)",
            f"{figures.write:.2f}",
        )
    table.add_row("[bold]floor", f"[bold]{figures.total:.2f}")
    console.print(table)
    console.print(f"end to end ÷ floor: [bold]{timings.total / figures.total:.2f}×[/]")


def _generate_once(day_dir: Path, trades: int, participants: int, assets: int, seed: int) -> None:
    from clearlane.sim.generator import generate_day

    if not (day_dir / "trades.parquet").exists():
        console.print(f"generating {trades:,} trades into {day_dir} ...")
        started = time.perf_counter()
        generate_day(trades=trades, participants=participants, assets=assets, seed=seed).write(day_dir)
        console.print(f"generated in {time.perf_counter() - started:.1f} s")


def _fresh_node(
    db: Path,
    config: Path,
    keys: Path | None,
    *,
    memory: bool,
    observer: Any = None,
    writer_process: bool = False,
) -> Any:
    from clearlane.adapters.embedded import open_memory_node
    from clearlane.adapters.embedded import open_node as start_node

    node: Any
    if memory:
        key_dir = keys if keys is not None else db.with_name("bench.keys")
        node = open_memory_node(config, keys=key_dir, observer=observer)
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        node = start_node(db, config, keys=keys, observer=observer, writer_process=writer_process)
    # The compiled kernels' cached code, loaded now as a service loads it when it starts
    # (Node.warm), not by the day's first chunks: a process's one-time start-up, like the
    # writer process's below (~0.2 s of the 1M-trade day's clear; issue 18).
    node.warm()
    if node.writer_process is not None:
        # Its start-up (a fresh interpreter's imports, the store's connection: ~1.4 s) is part
        # of opening the node, like the replay and the compiler's warm-up, not of the clear.
        node.writer_process.wait_ready()
    return node


def _clear_day(node: Any, day_dir: Path) -> _Timings:
    """Clear the day's deposits, then its trades, then settle until quiet; time each part."""
    from clearlane.node.intake import iter_input

    started = time.perf_counter()
    cpu_started = time.process_time()
    main_cpu_started = time.thread_time()
    _clear_deposits(node, day_dir)
    trades_file, chunk_rows = day_dir / "trades.parquet", node.config.trade_chunk_rows_max
    reader = _TimedReader(lambda: iter_input(trades_file, node.config, chunk_rows=chunk_rows))
    node.clear_batches(reader.chunks(), source="bench")
    settle_started, settle_cpu_started = time.perf_counter(), time.thread_time()
    node.settle_until_quiet()
    settle_seconds = time.perf_counter() - settle_started
    settle_cpu = time.thread_time() - settle_cpu_started
    return _Timings(
        read=reader.seconds,
        read_cpu=reader.cpu,
        settle=settle_seconds,
        settle_cpu=settle_cpu,
        total=time.perf_counter() - started,
        total_cpu=time.process_time() - cpu_started,
        main_cpu=time.thread_time() - main_cpu_started,
    )


def _clear_deposits(node: Any, day_dir: Path) -> None:
    from clearlane.node.intake import iter_input

    deposits_file = day_dir / "deposits.jsonl"
    if deposits_file.exists():
        import pyarrow.parquet as pq

        first = pq.ParquetFile(day_dir / "trades.parquet").read_row_group(0, columns=["executed_at"])
        node.clear_batches(
            iter_input(deposits_file, node.config),
            source="deposits",
            events_at_ms=int(first.column(0)[0].as_py()),
        )


def _print_report(node: Any, summary: dict[str, Any], timings: _Timings, title: str) -> None:
    cleared = sum(summary["trades_by_lane"].values())
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    table = Table("stage", "wall s", "CPU s", title=title)
    table.add_row("read + validate (Parquet)", f"{timings.read:.2f}", f"{timings.read_cpu:.2f}")
    for stage, seconds in node.timer.seconds.items():
        cpu = node.timer.cpu.get(stage)
        table.add_row(stage, f"{seconds:.2f}", "-" if cpu is None else f"{cpu:.2f}")
    table.add_row("settle tail (chain to finality)", f"{timings.settle:.2f}", f"{timings.settle_cpu:.2f}")
    table.add_row("[bold]total end to end", f"[bold]{timings.total:.2f}", f"[bold]{timings.total_cpu:.2f}")
    console.print(table)
    console.print(
        f"CPU: main thread {timings.main_cpu:.2f} s, all threads {timings.total_cpu:.2f} s "
        "(the writer thread's stage overlaps the main thread's; wall stages do not add up)"
    )
    waits = {k: node.timer.seconds.get(k, 0.0) for k in ("wait for writer", "wait for reader")}
    held_off = timings.total - timings.main_cpu - sum(waits.values())
    console.print(
        f"main thread's wall: {timings.main_cpu:.2f} s on CPU, {waits['wait for writer']:.2f} s waiting for "
        f"the writer, {waits['wait for reader']:.2f} s for the reader, {max(held_off, 0.0):.2f} s otherwise "
        "off CPU (waiting for the interpreter lock, a core, or I/O)"
    )
    console.print(
        f"trades/s end to end: [bold]{cleared / timings.total:,.0f}[/]   peak RSS: [bold]{rss_gib:.2f} GiB[/]"
    )
    console.print(
        f"batches: {summary['batches']}   netting efficiency: {summary['netting_efficiency'] * 100:.2f} %"
    )
    console.print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    writer = "process (node/writer_process.py)" if node.writer_process is not None else "thread"
    console.print(f"writer: {writer}")
    console.print(f"state root: {node.queries.state_root()}")
