"""Benchmark the Merkle backends of clearlane.core.proofs.merkle.

Usage: .venv/bin/python scripts/bench_merkle.py [--leaves 1000000] [--repeat 3] [--proofs 1000]

Prints the best-of-N wall time per step for the hashlib and fast backends, plus the one-shot
SHA256() variant of the fast backend for comparison. The numba cache load (or first compile)
happens before timing and is reported separately.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import numba
import numpy as np
import pyarrow as pa

from clearlane.core.proofs import merkle
from clearlane.core.proofs.verify import verify_consistency, verify_inclusion

T = TypeVar("T")
LEAF_BYTES = 40


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[float, T]:
    best_s = float("inf")
    result = fn()
    for _ in range(repeat):
        start_s = time.perf_counter()
        result = fn()
        best_s = min(best_s, time.perf_counter() - start_s)
    return best_s, result


def report(label: str, seconds: float, count: int, unit: str) -> None:
    per_ns = seconds / max(count, 1) * 1e9
    print(f"  {label:<42} {seconds * 1e3:10.1f} ms  {per_ns:8.0f} ns/{unit}")


def bench_backend(
    backend: str, items: list[bytes], arrow: pa.Array, indexes: list[int], old_sizes: list[int], repeat: int
) -> bytes:
    print(f"-- backend {backend}")
    n = len(items)
    dt, hashes = best_of(repeat, lambda: merkle.hash_leaves(items, backend=backend))
    report("hash_leaves(list of bytes)", dt, n, "leaf")
    dt, arrow_hashes = best_of(repeat, lambda: merkle.hash_leaves(arrow, backend=backend))
    report("hash_leaves(pyarrow BinaryArray)", dt, n, "leaf")
    if not np.array_equal(hashes, arrow_hashes):
        raise SystemExit("list and Arrow inputs disagree")
    dt, root = best_of(repeat, lambda: merkle.merkle_root(hashes, backend=backend))
    report("merkle_root", dt, n - 1, "node")
    dt, tree = best_of(repeat, lambda: merkle.MerkleTree.from_leaf_hashes(hashes, backend=backend))
    report("MerkleTree.from_leaf_hashes (incl. copy)", dt, n - 1, "node")
    if tree.root != root:
        raise SystemExit("tree and merkle_root disagree")

    dt, proofs = best_of(repeat, lambda: [tree.inclusion_proof(i) for i in indexes])
    report(f"{len(indexes)} inclusion proofs", dt, len(indexes), "proof")
    start_s = time.perf_counter()
    for i, proof in zip(indexes, proofs, strict=True):
        verify_inclusion(tree.leaf_hash(i), i, tree.size, proof, tree.root)
    report(f"{len(indexes)} verify_inclusion (hashlib)", time.perf_counter() - start_s, len(indexes), "proof")
    dt, _ = best_of(repeat, lambda: [tree.consistency_proof(m) for m in old_sizes])
    report(f"{len(old_sizes)} consistency proofs", dt, len(old_sizes), "proof")
    for m in old_sizes[:10]:
        old_root = merkle.merkle_root(hashes[:m])
        verify_consistency(m, tree.size, tree.consistency_proof(m), old_root, tree.root)
    return root


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
    load_s = time.perf_counter() - start_s
    print(f"fast backend {status}; first use (numba import + cache load/compile + self-test) {load_s:.2f} s")

    rng = np.random.default_rng(2024)
    flat = rng.integers(0, 256, args.leaves * LEAF_BYTES, dtype=np.uint8).tobytes()
    items = [flat[i * LEAF_BYTES : (i + 1) * LEAF_BYTES] for i in range(args.leaves)]
    arrow = pa.array(items, pa.binary())
    indexes = rng.integers(0, args.leaves, args.proofs).tolist()
    old_sizes = rng.integers(1, args.leaves + 1, args.proofs).tolist()
    print(f"{args.leaves:,} leaves of {LEAF_BYTES} random bytes; best of {args.repeat} after one warm-up")

    roots = {
        backend: bench_backend(backend, items, arrow, indexes, old_sizes, args.repeat)
        for backend in ("hashlib", "fast")
    }
    if len(set(roots.values())) != 1:
        raise SystemExit("backends disagree on the root")

    hashes = merkle.hash_leaves(items[:100_000])
    small = merkle.MerkleTree.from_leaf_hashes(hashes)
    small_indexes = rng.integers(0, small.size, args.proofs).tolist()
    dt, _ = best_of(args.repeat, lambda: [small.inclusion_proof(i) for i in small_indexes])
    print("-- 100,000-leaf tree")
    report(f"{args.proofs} inclusion proofs", dt, args.proofs, "proof")

    oneshot = merkle._oneshot_variant(merkle._load_libcrypto(), numba.njit(cache=True, nogil=True))
    if not merkle._self_test(oneshot):
        print("-- one-shot SHA256() variant failed its self-test")
        return
    print("-- fast backend, one-shot SHA256() variant (not the default)")
    all_hashes = merkle.hash_leaves(items)
    pairs = np.empty((args.leaves // 2, 32), np.uint8)
    dt, _ = best_of(args.repeat, lambda: oneshot.hash_pairs(all_hashes, pairs))
    report(f"hash one level ({len(pairs):,} nodes)", dt, len(pairs), "node")
    data = np.frombuffer(flat, np.uint8)
    offsets = np.arange(0, (args.leaves + 1) * LEAF_BYTES, LEAF_BYTES, dtype=np.int64)
    out = np.empty((args.leaves, 32), np.uint8)
    dt, _ = best_of(args.repeat, lambda: oneshot.hash_leaves(data, offsets, out))
    report("hash leaves (flat buffer)", dt, args.leaves, "leaf")


if __name__ == "__main__":
    main()
