"""The compiled batch commitment equals the reference path (leaf_texts → hash_leaves → merkle_root)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.engine.commitment import batch_roots
from clearlane.core.engine.flows import Flows, leaf_texts
from clearlane.core.proofs.merkle import hash_leaves, merkle_root
from clearlane.core.textcols import string_table

PARTICIPANTS = ["MM-ALPHA", "BRK-NORTH", "RTL-ÄÖ-0001", "C", "HOUSE"]
ASSETS = ["USD", "BTC", "JPY", "ÉTH"]
HOUSE = 4


def _flows(rng: np.random.Generator, n: int, null_every: int) -> Flows:
    kind = (rng.random(n) < 0.2).astype(np.int8)
    buyer = rng.integers(0, 4, n).astype(np.int32)
    seller = ((buyer + rng.integers(1, 4, n)) % 4).astype(np.int32)
    base = rng.integers(0, 4, n).astype(np.int32)
    quote = np.where(kind == 1, base, (base + 1) % 4).astype(np.int32)

    def amounts(zero_share: float) -> np.ndarray:
        values = rng.integers(1, 10**15, n) // (10 ** rng.integers(0, 14, n))
        return np.where(rng.random(n) < zero_share, 0, values).astype(np.int64)

    ids = pa.array([f"T{i}-{'x' * int(rng.integers(0, 30))}" for i in range(n)], type=pa.string())
    exch = pa.array(
        [None if null_every and i % null_every == 0 else f"EB-{i % 7}" for i in range(n)], type=pa.string()
    )
    return Flows(
        ids=ids,
        kind=kind,
        buyer=buyer,
        seller=seller,
        base=base,
        quote=quote,
        qty=np.maximum(amounts(0.0), 1),
        quote_amt=np.where(kind == 1, 0, amounts(0.05)),
        fee_buyer=np.where(kind == 1, 0, amounts(0.5)),
        fee_seller=amounts(0.3),
        time_ms=np.zeros(n, np.int64),
        executed_ms=np.zeros(n, np.int64),
        pool=np.zeros(n, np.int32),
        batch_seq=np.zeros(n, np.int64),
        exch_batch=exch,
    )


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 70), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
    null_every=st.sampled_from([0, 1, 3]),
    sliced=st.booleans(),
)
def test_compiled_roots_equal_reference(sizes: list[int], seed: int, null_every: int, sliced: bool) -> None:
    rng = np.random.default_rng(seed)
    total = sum(sizes)
    flows = _flows(rng, total + 3, null_every)
    # Arrow slices keep a non-zero offset into their parent's buffers: the kernel must honour it.
    flows = (
        flows.take(np.arange(3, total + 3, dtype=np.int64))
        if not sliced
        else Flows(
            **{
                name: (col.slice(3) if isinstance(col, pa.Array) else col[3:])
                for name, col in vars(flows).items()
            }
        )
    )
    bounds = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    ids = [f"pool-{b:08d}" for b in range(len(sizes))]
    pids, codes = pa.array(PARTICIPANTS), pa.array(ASSETS)
    got = batch_roots(
        flows, bounds, ids, string_table(PARTICIPANTS), string_table(ASSETS), HOUSE, pids, codes
    )
    for b in range(len(sizes)):
        part = flows.take(np.arange(bounds[b], bounds[b + 1], dtype=np.int64))
        want = merkle_root(
            hash_leaves(leaf_texts(part, ids[b], pids, codes, HOUSE), backend="hashlib"), backend="hashlib"
        )
        assert got[b] == want, b


def test_big_step_is_hashed_in_two_halves_with_the_same_roots() -> None:
    rng = np.random.default_rng(5)
    sizes = [7000, 1, 9000, 3000, 2500]
    flows = _flows(rng, sum(sizes), 4)
    bounds = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    ids = [f"bulk-{b:08d}" for b in range(len(sizes))]
    pids, codes = pa.array(PARTICIPANTS), pa.array(ASSETS)
    got = batch_roots(
        flows, bounds, ids, string_table(PARTICIPANTS), string_table(ASSETS), HOUSE, pids, codes
    )
    for b in range(len(sizes)):
        part = flows.take(np.arange(bounds[b], bounds[b + 1], dtype=np.int64))
        assert got[b] == merkle_root(
            hash_leaves(leaf_texts(part, ids[b], pids, codes, HOUSE), backend="hashlib"), backend="hashlib"
        )
