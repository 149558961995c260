"""Where the service's memory goes: the serve loop in-process, component by component.

    .venv/bin/python scripts/mem_serve.py --trades 600000 --per-step 1000 --report-every 200000

Drives a :class:`~clearlane.node.runtime.Runtime` exactly as its loop thread does (intake,
``node.submit`` of one ``trades`` step, receipts, chain polls), without HTTP and on a manual
engine clock (``--per-step`` trades every ``--step-ms`` engine ms: 1,000 per 50 ms = 20,000/s).
Every ``--report-every`` trades it prints the bytes held by each per-trade structure (NumPy
``nbytes`` / Arrow ``nbytes``), the process RSS, and with ``--tracemalloc`` the Python heap's
top allocation sites.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import re
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa


def _nb(obj: Any) -> int:
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, pa.Table | pa.Array | pa.ChunkedArray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(_nb(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_nb(v) for v in obj)
    return 0


def _sqlite_memory() -> int:
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        return -1
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_used())


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _malloc_in_use() -> int:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return -1
    return int(info.uordblks + info.hblkhd)


def _deep(obj: Any, depth: int = 0, seen: set[int] | None = None) -> int:
    """NumPy/Arrow bytes reachable from ``obj`` through attributes and containers (approximate)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 6:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) if obj.base is None else 0
    if isinstance(obj, pa.Table | pa.Array | pa.ChunkedArray):
        return int(obj.nbytes)
    if isinstance(obj, bytes | bytearray):
        return len(obj)
    if isinstance(obj, str):
        return len(obj) + 49
    if isinstance(obj, dict):
        return 100 * len(obj) + sum(
            _deep(k, depth + 1, seen) + _deep(v, depth + 1, seen) for k, v in obj.items()
        )
    if isinstance(obj, list | tuple | set | frozenset):
        return 8 * len(obj) + sum(_deep(v, depth + 1, seen) for v in obj)
    if (
        hasattr(obj, "__dict__")
        and not isinstance(obj, type)
        and type(obj).__module__.startswith("clearlane")
    ):
        return sum(_deep(v, depth + 1, seen) for v in vars(obj).values())
    if hasattr(obj, "__slots__") and type(obj).__module__.startswith("clearlane"):
        return sum(_deep(getattr(obj, n, None), depth + 1, seen) for n in obj.__slots__)
    return 0


def walk(rt: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    roots = {
        "engine": rt.node.engine,
        "auditor": rt.node.auditor,
        "chain": rt.node.chain,
        "rm": rt.readmodel,
        "node": rt.node,
        "bus": rt.bus,
        "ledger": rt.node.engine.ledger,
    }
    for name, root in roots.items():
        for attr, value in vars(root).items():
            out[f"{name}.{attr}"] = _deep(value)
    return out


def components(rt: Any) -> dict[str, int]:
    eng = rt.node.engine
    rm = rt.readmodel
    out: dict[str, int] = {}
    dedup = eng.seen_flow_ids
    out["engine.seen_flow_ids (hot tier)"] = int(dedup.nbytes())
    archive = rt.node.flow_archive
    if archive is not None:
        out["store flow-id archive (bloom, fences, pending)"] = archive.nbytes()
        out["store flow-id archive block reads (n)"] = archive.block_reads
        out["store flow-id run flush max ms (n)"] = int(1000 * max(archive.flush_seconds, default=0))
        out["store flow-id runs (n)"] = archive.run_count
        out["store flow-id compactions (n)"] = archive.compactions
        out["store flow-id compaction max ms (n)"] = int(1000 * max(archive.compact_seconds, default=0))
    out["engine.seen_event_ids (n)"] = len(eng.seen_event_ids)
    out["engine.pending batches (n)"] = len(eng.pending)
    out["engine.pending batch flows"] = sum(_nb(list(vars(b.flows).values())) for b in eng.pending.values())
    out["engine.l1_groups flows"] = sum(_nb(list(vars(g.flows).values())) for g in eng.l1_groups.values())
    out["engine.l1_groups (n)"] = len(eng.l1_groups)
    out["engine.l1_txs (n)"] = len(eng.l1_txs)
    out["engine.anchor_txs (n)"] = len(eng.anchor_txs)
    out["engine.final_batch_txs (n)"] = len(eng.final_batch_txs)
    out["engine.block_ms (n)"] = len(eng.block_ms)
    ledger = eng.ledger
    out["engine.ledger arrays"] = sum(
        int(v.nbytes) for v in vars(ledger).values() if isinstance(v, np.ndarray)
    )
    book = getattr(ledger, "_book", None)
    if book is not None:
        out["engine.ledger book arrays"] = sum(
            int(v.nbytes) for v in vars(book).values() if isinstance(v, np.ndarray)
        )
    out["engine.stats arrays"] = sum(
        int(v.nbytes) for v in vars(eng.stats).values() if isinstance(v, np.ndarray)
    )
    if rm is not None:
        rec, members = rm.records, rm.members
        out["rm.index (hot tier)"] = rec.index_nbytes()
        out["rm.chunk registry"] = int(rec.chunk_seq.nbytes + rec.chunk_part.nbytes + rec.chunk_rows.nbytes)
        out["rm.cache (arrow)"] = sum(t.nbytes for t in rec.cache.values())
        out["rm.cache rows"] = rec.cache_rows
        out["rm.batches arrays"] = sum(_nb(list(vars(pb).values())) for pb in rm.batches.pool) + int(
            rm.batches.order_pool.nbytes + rm.batches.order_seq.nbytes
        )
        out["rm.open batch trades"] = sum(_nb(parts) for parts in members.open.values())
        out["rm.inflight (n)"] = len(members.inflight)
        out["rm.inflight tables"] = sum(f.trades.nbytes for f in members.inflight.values())
        out["rm.l1_groups (n)"] = len(rm.l1_groups.groups)
        out["rm.l1_done (n)"] = len(rm.l1_groups.done)
    out["pyarrow pool"] = pa.total_allocated_bytes()
    out["sqlite3_memory_used (page caches, all connections)"] = _sqlite_memory()
    out["malloc in use (mallinfo2 uordblks)"] = _malloc_in_use()
    out["gc objects (n)"] = len(gc.get_objects())
    chain = rt.node.chain
    if chain is not None:
        out["chain (sim) objects"] = sum(
            len(v) for v in vars(chain).values() if isinstance(v, dict | list | set)
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trades", type=int, default=600_000)
    ap.add_argument("--day", type=int, default=1_200_000, help="trades generated (re-sent with new ids)")
    ap.add_argument("--per-step", type=int, default=1000)
    ap.add_argument("--step-ms", type=int, default=50)
    ap.add_argument("--window-ms", type=int, default=100)
    ap.add_argument("--report-every", type=int, default=200_000)
    ap.add_argument("--participants", type=int, default=300)
    ap.add_argument("--assets", type=int, default=8)
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument(
        "--walk", action="store_true", help="print the attributes that grew most since the last report"
    )
    ap.add_argument("--workdir", type=Path)
    ap.add_argument(
        "--profile-polls",
        type=Path,
        help="cProfile every base-layer poll (Node.advance) into this pstats file; print the poll times",
    )
    ap.add_argument(
        "--profile-kind",
        help="with --profile-polls: profile the node steps of this log kind (Node.submit: tick, trades) instead",
    )
    args = ap.parse_args()

    from clearlane.adapters.embedded import EMBEDDED
    from clearlane.node.runtime import Runtime, RuntimeOptions, _TradeJob
    from clearlane.sim.generator import generate_day

    work = args.workdir or Path(tempfile.mkdtemp(prefix="mem-serve-"))
    day = generate_day(
        trades=min(args.day, args.trades), participants=args.participants, assets=args.assets, seed=7
    )
    toml = re.sub(r"(?m)^window_ms = \d+$", f"window_ms = {args.window_ms}", day.config_toml)
    (work / "config.toml").write_text(toml, encoding="utf-8")
    rows = day.trades.select(
        ["trade_id", "venue", "symbol", "buyer", "seller", "quantity", "price", "exch_batch_id"]
    ).to_pylist()
    for r in rows:
        if r["exch_batch_id"] is None:
            del r["exch_batch_id"]

    class Manual:
        mode = "manual"
        speed = 1.0
        t = int(time.time() * 1000)

        def now_ms(self) -> int:
            return self.t

    clock = Manual()
    rt = Runtime(
        work / "mem.db", work / "config.toml", clock=clock, options=RuntimeOptions(), opener=EMBEDDED
    )  # type: ignore[arg-type]
    rt._live = True
    for d in day.deposits:
        data = d.model_dump(mode="json")
        data.pop("type", None)
        data.pop("v", None)
        rt.node.submit("collateral_deposit", data, clock.t)
    poll_times = _profile_polls(rt, args.profile_polls, args.profile_kind) if args.profile_polls else None
    proc = psutil.Process()
    if args.tracemalloc:
        tracemalloc.start(5)
    gc.collect()
    rss0 = proc.memory_info().rss
    print(f"start RSS {rss0 / 2**20:.0f} MiB", flush=True)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    done = 0
    snap0 = tracemalloc.take_snapshot() if args.tracemalloc else None
    last_walk: dict[str, int] = {}
    step_times: list[float] = []
    while done < args.trades:
        at = done % len(rows)
        cycle = done // len(rows)
        part = [dict(r) for r in rows[at : at + args.per_step]]
        for r in part:
            r["executed_at"] = clock.t
            if cycle:
                r["trade_id"] = f"{r['trade_id']}~{cycle}"
        fut: Future[list[dict[str, Any]]] = Future()
        job = _TradeJob(part, clock.t, time.perf_counter(), fut, "trades")
        step_t0 = time.perf_counter()
        due = rt._batch_due_ms()
        rt._apply_trades([job], clock.t)
        rt._advance(clock.t, due is not None and clock.t >= due)  # as Runtime._iteration
        rt._publish()
        step_times.append(time.perf_counter() - step_t0)
        fut.result()
        done += len(part)
        clock.t += args.step_ms
        if done % args.report_every < args.per_step or done >= args.trades:
            gc.collect()
            rss = proc.memory_info().rss
            comp = components(rt)
            print(
                f"\n== {done:,} trades  RSS {rss / 2**20:.0f} MiB (+{(rss - rss0) / done:.0f} B/trade)  "
                f"wall {time.perf_counter() - t0:.1f} s  cpu {time.process_time() - cpu0:.1f} s",
                flush=True,
            )
            for name, value in comp.items():
                per = "" if "(n)" in name or "rows" in name else f"  ({value / done:.1f} B/trade)"
                print(f"  {name:34s} {value:>14,}{per}")
            if args.walk:
                now_walk = walk(rt)
                grew = sorted(((v - last_walk.get(k, 0), k) for k, v in now_walk.items()), reverse=True)[:10]
                for delta, k in grew:
                    print(f"   grew {k:40s} {delta:>+14,} (now {now_walk[k]:,})")
                last_walk = now_walk
            if args.tracemalloc and snap0 is not None:
                snap = tracemalloc.take_snapshot()
                for stat in snap.compare_to(snap0, "lineno")[:12]:
                    print("   ", stat)
    st = np.array(step_times) * 1000
    cpu = time.process_time() - cpu0
    rm = rt.readmodel
    cleared = int(rm.batches.counts.sum()) if rm is not None else 0
    print(
        f"\nloop CPU (process, in-process runtime, no HTTP): {cpu:.1f} s = {cpu * 1e6 / max(1, done):.1f} µs a trade, "
        f"{cpu * 1000 / max(1, len(st)):.1f} ms a step; batches seen by the read model: {cleared:,} "
        f"({cleared / max(1e-9, len(st) * args.step_ms / 1000):.0f} a second of engine time)"
    )
    print(
        f"\nstep wall ms ({len(st)} steps): p50 {np.percentile(st, 50):.1f}  p90 {np.percentile(st, 90):.1f}  "
        f"p99 {np.percentile(st, 99):.1f}  p99.9 {np.percentile(st, 99.9):.1f}  max {st.max():.1f}"
    )
    slow = np.argsort(st)[-8:]
    print("slowest steps (index: ms):", ", ".join(f"{i}: {st[i]:.0f}" for i in sorted(slow.tolist())))
    if poll_times is not None:
        _report_polls(poll_times, args.profile_polls)
    rt.node.close()
    sys.exit(0)


def _profile_polls(rt: Any, path: Path, kind: str | None) -> tuple[Any, list[float]]:
    """Wrap ``Node.advance`` (a poll's whole node step) — or, with ``kind``, ``Node.submit`` of
    that log kind — in one cProfile, kept across calls."""
    import cProfile

    profile = cProfile.Profile()
    times: list[float] = []
    wrapped = rt.node.advance if kind is None else rt.node.submit

    def profiled(*args: Any, **kwargs: Any) -> Any:
        if kind is not None and args[0] != kind:
            return wrapped(*args, **kwargs)
        t0 = time.perf_counter()
        profile.enable()
        try:
            return wrapped(*args, **kwargs)
        finally:
            profile.disable()
            times.append(time.perf_counter() - t0)

    if kind is None:
        rt.node.advance = profiled
    else:
        rt.node.submit = profiled
    return profile, times


def _report_polls(poll_times: tuple[Any, list[float]], path: Path) -> None:
    import pstats

    profile, times = poll_times
    if not times:
        print("\nno step of that kind ran")
        return
    profile.dump_stats(str(path))
    ms = np.array(times) * 1000
    if len(ms):
        print(
            f"\nprofiled steps: {len(ms)}, wall ms (under cProfile) p50 {np.percentile(ms, 50):.1f}  "
            f"p90 {np.percentile(ms, 90):.1f}  max {ms.max():.1f}"
        )
    pstats.Stats(str(path)).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
