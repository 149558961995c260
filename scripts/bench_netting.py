"""Netting micro-benchmark: multilateral net positions of N obligations.

Run: .venv/bin/python scripts/bench_netting.py [N]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from clearlane.core.engine.netting import net_positions


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    participants, assets = 2001, 16
    rng = np.random.default_rng(1)
    payer = rng.integers(0, participants, n, dtype=np.int32)
    payee = rng.integers(0, participants, n, dtype=np.int32)
    asset = rng.integers(0, assets, n, dtype=np.int32)
    amount = rng.integers(1, 10**12, n, dtype=np.int64)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        net_positions(payer, payee, asset, amount, participants, assets)
        best = min(best, time.perf_counter() - started)
    print(
        f"netted {n:,} obligations ({participants} participants x {assets} assets) in {best:.3f} s "
        f"= {n / best:,.0f} obligations/s (best of 3)"
    )


if __name__ == "__main__":
    main()
