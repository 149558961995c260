"""Benchmark the Merkle backends of clearlane.audit.merkle.

Usage: .venv/bin/python scripts/bench_merkle.py [--leaves 1000000] [--repeat 3]

Prints the best-of-N wall time per step for the hashlib and fast backends (and the one-shot
SHA256() variant of the fast backend, for comparison). The numba cache is warmed before timing
so compile time is excluded; it is reported separately as the first-use cost.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pyarrow as pa

from clearlane.audit import merkle
from clearlane.audit.verify import verify_consistency, verify_inclusion

T = TypeVar("T")
LEAF_BYTES = 40


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[float, T]:
    best_s = float("inf")
    result: T
    for _ in range(repeat):
        start_s = time.perf_counter()
        result = fn()
        best_s = min(best_s, time.perf_counter() - start_s)
    return best_s, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--proofs", type=int, default=1000)
    args = parser.parse_args()

    start_s = time.perf_counter()
    status = merkle.fast_backend_status()
    print(
        f"fast backend: {status} (first use incl. numba import/cache load: {time.perf_counter() - start_s:.2f} s)"
    )

    rng = np.random.default_rng(2024)
    flat = rng.integers(0, 256, args.leaves * LEAF_BYTES, dtype=np.uint8).tobytes()
    items = [flat[i * LEAF_BYTES : (i + 1) * LEAF_BYTES] for i in range(args.leaves)]
    arrow = pa.array(items, pa.binary())
    indexes = rng.integers(0, args.leaves, args.proofs).tolist()
    old_sizes = rng.integers(1, args.leaves + 1, args.proofs).tolist()
    print(f"{args.leaves:,} leaves of {LEAF_BYTES} bytes, best of {args.repeat}")

    reference_root = b""
    for backend in ("hashlib", "fast"):
        print(f"-- backend {backend}")
        dt, hashes = best_of(args.repeat, lambda b=backend: merkle.hash_leaves(items, backend=b))
        print(f"hash_leaves(list of bytes)        {dt:8.3f} s  {dt / args.leaves * 1e9:6.0f} ns/leaf")
        dt, arrow_hashes = best_of(args.repeat, lambda b=backend: merkle.hash_leaves(arrow, backend=b))
        print(f"hash_leaves(pyarrow BinaryArray)  {dt:8.3f} s  {dt / args.leaves * 1e9:6.0f} ns/leaf")
        if not np.array_equal(hashes, arrow_hashes):
            raise SystemExit("list and Arrow inputs disagree")
        dt, root = best_of(args.repeat, lambda b=backend, h=hashes: merkle.merkle_root(h, backend=b))
        print(
            f"merkle_root                       {dt:8.3f} s  {dt / max(args.leaves - 1, 1) * 1e9:6.0f} ns/node"
        )
        if reference_root and root != reference_root:
            raise SystemExit("backends disagree on the root")
        reference_root = root
        dt, tree = best_of(
            args.repeat, lambda b=backend, h=hashes: merkle.MerkleTree.from_leaf_hashes(h, backend=b)
        )
        print(f"MerkleTree.from_leaf_hashes       {dt:8.3f} s")
        dt, proofs = best_of(args.repeat, lambda t=tree: [t.inclusion_proof(i) for i in indexes])
        print(
            f"{args.proofs} inclusion proofs            {dt * 1e3:8.2f} ms {dt / args.proofs * 1e6:6.1f} µs/proof"
        )
        dt, _ = best_of(
            1,
            lambda t=tree, p=proofs: [
                verify_inclusion(t.leaf_hash(i), i, t.size, pi, t.root)
                for i, pi in zip(indexes, p, strict=True)
            ],
        )
        print(f"{args.proofs} inclusion verifications     {dt * 1e3:8.2f} ms")
        dt, _ = best_of(args.repeat, lambda t=tree: [t.consistency_proof(m) for m in old_sizes])
        print(
            f"{args.proofs} consistency proofs          {dt * 1e3:8.2f} ms {dt / args.proofs * 1e6:6.1f} µs/proof"
        )
        old_roots = {m: merkle.merkle_root(hashes[:m], backend="fast") for m in old_sizes[:20]}
        for m in old_roots:
            verify_consistency(m, tree.size, tree.consistency_proof(m), old_roots[m], tree.root)

    small = merkle.MerkleTree.from_leaf_hashes(hashes[:100_000])
    small_indexes = rng.integers(0, small.size, args.proofs).tolist()
    dt, _ = best_of(args.repeat, lambda: [small.inclusion_proof(i) for i in small_indexes])
    print(f"-- 100,000-leaf tree: inclusion proof {dt / args.proofs * 1e6:.1f} µs/proof")

    import numba

    oneshot = merkle._oneshot_variant(merkle._load_libcrypto(), numba.njit(cache=True, nogil=True))
    if merkle._self_test(oneshot):
        level = hashes
        dt, _ = best_of(
            args.repeat, lambda: oneshot.hash_pairs(level, np.empty((len(level) // 2, 32), np.uint8))
        )
        print(
            f"-- one-shot SHA256() variant: one level of {len(level) // 2:,} pairs {dt:.3f} s "
            f"({dt / (len(level) // 2) * 1e9:.0f} ns/node)"
        )
        dt, _ = best_of(
            args.repeat,
            lambda: oneshot.hash_leaves(
                np.frombuffer(flat, np.uint8),
                np.arange(0, (args.leaves + 1) * LEAF_BYTES, LEAF_BYTES, dtype=np.int64),
                np.empty((args.leaves, 32), np.uint8),
            ),
        )
        print(
            f"-- one-shot SHA256() variant: {args.leaves:,} leaves {dt:.3f} s ({dt / args.leaves * 1e9:.0f} ns/leaf)"
        )


if __name__ == "__main__":
    main()
