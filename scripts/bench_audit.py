"""Audit benchmarks (figures go to docs/PERFORMANCE.md, "Audit").

    .venv/bin/python scripts/bench_audit.py proofs [--flows 100000] [--n 1000]
        one batch of FLOWS trades (FLOWS leaves, 4 obligations each): time to rebuild the batch
        tree after commit, then per-proof generation and per-proof offline verification
    .venv/bin/python scripts/bench_audit.py overhead [--trades 1000000] [--workdir bench]
        clears a generated day like `clearlane bench` and attributes CPU time to the audit:
        chain + transitions + audit records (Auditor.step), checkpoint signing, audit rows
        written in the step transaction
    .venv/bin/python scripts/bench_audit.py verify --db bench/bench.db
        `clearlane verify` on an existing store: wall and CPU seconds per stage

CPU time (time.process_time) is reported next to wall time: the 2-core machine is shared.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from clearlane.adapters.embedded import open_node

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "src" / "clearlane" / "core" / "config" / "example.toml"
T0 = 1_763_700_000_000


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return (
        f"median {statistics.median(values) * 1e3:.3f} ms, mean {statistics.fmean(values) * 1e3:.3f} ms, "
        f"p99 {p99 * 1e3:.3f} ms"
    )


def bench_proofs(flows: int, n: int) -> None:
    from clearlane.adapters.sql.store import Store
    from clearlane.core.model.inputs import TRADE_CHUNK_SCHEMA
    from clearlane.core.proofs.verify import verify_proof_document
    from clearlane.evidence.prove import Prover

    work = Path(tempfile.mkdtemp(prefix="clearlane-bench-audit-"))
    config = work / "config.toml"
    text = EXAMPLE.read_text()
    text = text.replace("window_ms = 500", "window_ms = 3600000", 1).replace(
        "size_max = 20000", f"size_max = {flows}", 1
    )
    config.write_text(text)
    db = work / "proofs.db"
    node = open_node(db, config)
    started = time.perf_counter()
    chunk_rows = 65_536
    for first in range(0, flows, chunk_rows):
        count = min(chunk_rows, flows - first)
        i = pa.array(range(first, first + count), pa.int64())
        even = [(k % 2 == 0) for k in range(first, first + count)]
        columns = {
            "trade_id": pa.array([f"T{k:08d}" for k in range(first, first + count)]),
            "venue": pa.array(["XCL"] * count).dictionary_encode(),
            "symbol": pa.array(["BTC/USD"] * count).dictionary_encode(),
            "buyer": pa.array(["MM-ALPHA" if e else "MM-BETA" for e in even]).dictionary_encode(),
            "seller": pa.array(["MM-BETA" if e else "MM-ALPHA" for e in even]).dictionary_encode(),
            "qty_mantissa": pa.array([1 + k % 7 for k in range(first, first + count)], pa.int64()),
            "qty_exp": pa.array([4] * count, pa.int8()),
            "price_mantissa": pa.array(
                [6_500_000 + k % 100 for k in range(first, first + count)], pa.int64()
            ),
            "price_exp": pa.array([2] * count, pa.int8()),
            "executed_at_ms": pa.compute.add(i, T0),
            "received_at_ms": pa.compute.add(i, T0),
            "exch_batch_id": pa.array([f"EB-{k // 1000}" for k in range(first, first + count)]),
            "lane_hint": pa.array([None] * count, pa.string()).dictionary_encode(),
        }
        table = pa.Table.from_arrays(
            [columns[f.name].cast(f.type) for f in TRADE_CHUNK_SCHEMA], schema=TRADE_CHUNK_SCHEMA
        )
        node.submit("trades", table, T0 + first, f"bench-{first}")
    node.advance(T0 + flows + 1)
    node.settle_until_quiet()
    node.close()
    print(f"cleared {flows:,} trades into one batch in {time.perf_counter() - started:.1f} s")

    store = Store.open(db, create=False)
    batch = store.rows("SELECT batch_id, flows, obligations, state FROM batches ORDER BY flows DESC LIMIT 1")[
        0
    ]
    print(
        f"batch {batch['batch_id']}: {batch['flows']:,} leaves, {batch['obligations']:,} obligations, {batch['state']}"
    )
    prover = Prover(store)
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    tree = prover.batch_tree(batch["batch_id"])
    first = prover.proof_bytes(next(iter(tree.index)))
    print(
        f"first proof (rebuilds the batch tree from the trade records and checks its root): "
        f"{time.perf_counter() - t_wall:.3f} s wall, {time.process_time() - t_cpu:.3f} s CPU"
    )
    ids = random.Random(7).sample(list(tree.index), min(n, len(tree.index)))
    made, docs = [], []
    cpu = time.process_time()
    for flow in ids:
        t = time.perf_counter()
        docs.append(prover.proof_bytes(flow))
        made.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu) / len(ids)
    print(
        f"proof generation, {len(ids):,} proofs after commit: {_ms(made)}; CPU {cpu * 1e3:.3f} ms/proof "
        f"({len(first):,} bytes each)"
    )
    verify_proof_document(docs[0])  # first use imports cryptography
    checked = []
    cpu = time.process_time()
    for doc in docs:
        t = time.perf_counter()
        verify_proof_document(doc)
        checked.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu) / len(docs)
    print(
        f"offline verification (verify.py: canonical form, Ed25519, leaf path + record paths): {_ms(checked)}; "
        f"CPU {cpu * 1e3:.3f} ms/proof"
    )
    store.close()


def bench_overhead(trades: int, workdir: Path) -> None:
    import clearlane.adapters.sql.audit_tables as tables_module
    import clearlane.node.auditor as auditor_module
    from clearlane.node.intake import iter_input
    from clearlane.sim.generator import generate_day

    cpu: dict[str, float] = {}

    def timed(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                cpu[label] = cpu.get(label, 0.0) + time.process_time() - t

        setattr(owner, name, wrapper)

    timed(auditor_module.Auditor, "step", "chain + transitions + records")
    timed(auditor_module.Auditor, "checkpoint", "checkpoint signing")
    timed(tables_module, "write_step", "audit rows in the step txn")
    timed(tables_module, "write_checkpoint", "audit rows in the step txn")

    day = workdir / f"day-{trades}-2000-16-42"
    if not (day / "trades.parquet").exists():
        generate_day(trades=trades, participants=2000, assets=16, seed=42).write(day)
    db = workdir / "bench-audit.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    node = open_node(db, day / "config.toml")
    import pyarrow.parquet as pq

    wall, total = time.perf_counter(), time.process_time()
    first = pq.ParquetFile(day / "trades.parquet").read_row_group(0, columns=["executed_at"])
    node.clear_batches(
        iter_input(day / "deposits.jsonl", node.config),
        source="deposits",
        events_at_ms=int(first.column(0)[0].as_py()),
    )
    node.clear_batches(
        iter_input(day / "trades.parquet", node.config, chunk_rows=node.config.trade_chunk_rows_max),
        source="bench",
    )
    node.settle_until_quiet()
    total = time.process_time() - total
    wall = time.perf_counter() - wall
    audit = sum(cpu.values())
    steps = node.engine.applied_seq
    node.close()
    print(f"{trades:,} trades, {steps:,} log steps: {wall:.1f} s wall, {total:.1f} s CPU end to end")
    for label, seconds in cpu.items():
        print(f"  {label:<32} {seconds:7.3f} s CPU")
    print(
        f"audit CPU {audit:.2f} s = {audit / (total - audit) * 100:.1f} % on top of clearing without it "
        f"({(total - audit):.1f} s CPU)"
    )


def bench_verify(db: Path) -> None:
    from clearlane.adapters.sql.store import Store
    from clearlane.evidence.check import check_store

    store = Store.open(db, create=False)
    wall, cpu = time.perf_counter(), time.process_time()
    report = check_store(store)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    store.close()
    print(
        f"clearlane verify {db}: {'ok' if report.ok else report.problems[0]}; {report.steps:,} steps, "
        f"{report.trades:,} trade records, {report.batches:,} batch roots, {report.records:,} audit records, "
        f"{report.checkpoints:,} checkpoints"
    )
    print(
        f"  {wall:.1f} s wall, {cpu:.1f} s CPU; stages (wall): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("proofs")
    p.add_argument("--flows", type=int, default=100_000)
    p.add_argument("--n", type=int, default=1000)
    o = sub.add_parser("overhead")
    o.add_argument("--trades", type=int, default=1_000_000)
    o.add_argument("--workdir", type=Path, default=Path("bench"))
    v = sub.add_parser("verify")
    v.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()
    if args.what == "proofs":
        bench_proofs(args.flows, args.n)
    elif args.what == "overhead":
        args.workdir.mkdir(parents=True, exist_ok=True)
        bench_overhead(args.trades, args.workdir)
    else:
        bench_verify(args.db)


if __name__ == "__main__":
    sys.exit(main())
