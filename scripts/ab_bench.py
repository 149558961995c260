"""Compare two source trees end to end with ``clearlane bench``, in alternating order.

    .venv/bin/python scripts/ab_bench.py BASE_TREE CHANGED_TREE --rounds 4 --trades 10000000

Each round runs both trees once, one after the other: A then B in odd rounds, B then A in even
ones (ABBA). On the 2-core development machine the first run of a back-to-back pair tended to be
the faster one, by 1.5–4 s on the 10M-trade day whichever build it was (docs/PERFORMANCE.md,
twelfth session), so a fixed order favours one side. Each run is
``python -m clearlane.adapters.cli.main bench`` with ``PYTHONPATH=<tree>/src`` (the interpreter
running this script, its installed dependencies), under ``flock`` of ``--lock`` when given, so
that nothing else benchmarks at the same time. The day is generated once into ``--workdir``.

Prints each run (end to end, main-thread and all-thread CPU, the state root's first 8 hex digits:
the trees must agree on it unless a change is meant to move it) and each tree's mean and
spread. Exit code 1 if a run fails or the roots differ between the trees.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path


def run(tree: Path, args: argparse.Namespace) -> dict[str, str | float]:
    cmd = [
        sys.executable,
        "-m",
        "clearlane.adapters.cli.main",
        "bench",
        "--trades",
        str(args.trades),
        "--participants",
        str(args.participants),
        "--assets",
        str(args.assets),
        "--seed",
        str(args.seed),
        "--workdir",
        str(args.workdir),
        "--writer",
        args.writer,
    ]
    if args.lock:
        cmd = ["flock", str(args.lock), *cmd]
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "COLUMNS": "200"}
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: bench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    out = done.stdout
    total = re.search(r"total end to end\s*│\s*([0-9.]+)", out)
    cpu = re.search(r"main thread ([0-9.]+) s, all threads ([0-9.]+) s", out)
    root = re.search(r"state root: ([0-9a-f]+)", out)
    if total is None or cpu is None or root is None:
        raise SystemExit(f"{tree}: could not read the bench's output:\n{out}")
    return {
        "total": float(total.group(1)),
        "main_cpu": float(cpu.group(1)),
        "all_cpu": float(cpu.group(2)),
        "root": root.group(1)[:8],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="the first tree (e.g. a git worktree of the base)")
    ap.add_argument("b", type=Path, help="the second tree (e.g. the change)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--participants", type=int, default=2_000)
    ap.add_argument("--assets", type=int, default=16)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", type=Path, default=Path("bench").resolve())
    ap.add_argument("--writer", default="thread", choices=("thread", "process", "auto"))
    ap.add_argument("--lock", type=Path, default=None, help="flock this file around each run")
    args = ap.parse_args()
    args.workdir = args.workdir.resolve()
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    results: dict[str, list[dict[str, str | float]]] = {"A": [], "B": []}
    for k in range(args.rounds):
        for side in ("A", "B") if k % 2 == 0 else ("B", "A"):
            r = run(trees[side], args)
            results[side].append(r)
            print(
                f"round {k + 1} {side} {trees[side].name}: {r['total']:.2f} s end to end, "
                f"CPU main {r['main_cpu']:.2f} s / all {r['all_cpu']:.2f} s, root {r['root']}",
                flush=True,
            )
    for side in ("A", "B"):
        totals = [float(r["total"]) for r in results[side]]
        spread = statistics.stdev(totals) if len(totals) > 1 else 0.0
        print(
            f"{side} {trees[side].name}: mean {statistics.mean(totals):.2f} s, "
            f"min {min(totals):.2f}, max {max(totals):.2f}, stdev {spread:.2f} ({len(totals)} runs)"
        )
    roots = {str(r["root"]) for side in results.values() for r in side}
    if len(roots) > 1:
        print(f"the state roots differ: {sorted(roots)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
