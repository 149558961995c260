"""Batch commitments in one compiled pass: canonical leaves → leaf hashes → RFC 9162 roots.

:func:`clearlane.core.engine.flows.leaf_texts` defines the canonical leaf of a flow and
:mod:`clearlane.core.proofs.merkle` the tree; building the leaf strings with Arrow kernels and hashing
them level by level costs ~1.5 ms of fixed overhead per batch (a dozen Arrow calls, one compiled
call per tree level), which dominated the close of ~5,000 batches on the benchmark day.

:func:`batch_roots` does the same work for *all* batches that close in one engine step in one
compiled call (numba, ``nogil``): for each flow it writes the canonical leaf bytes into a scratch
buffer (exactly the bytes :func:`leaf_texts` produces), hashes ``0x00 || leaf`` with libcrypto's
SHA-256 and then folds each batch's level in place into its Merkle Tree Hash. The result is
byte-identical to ``merkle_root(hash_leaves(leaf_texts(...)))`` (property-tested in
``tests/test_commitment.py``); if libcrypto's low-level SHA-256 calls are unavailable it falls
back to exactly that Python path.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from numba import njit

from clearlane.core.engine.flows import FLOW_PAYMENT, Flows, leaf_texts
from clearlane.core.proofs.merkle import hash_leaves, merkle_root, sha256_ctx_functions
from clearlane.core.textcols import arrow_strings, put_bytes, put_int, string_table

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

_PREFIX = np.frombuffer(b"clearlane.leaf.v1|", dtype=np.uint8).copy()
_KIND_TEXT = (
    np.frombuffer(b"trade", dtype=np.uint8).copy(),
    np.frombuffer(b"payment", dtype=np.uint8).copy(),
)
PARALLEL_MIN_FLOWS = 16_384
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clearlane-merkle")
    return _POOL


if FLOW_PAYMENT != 1:  # the kernel tests kind == 1 for "payment"
    raise ImportError("clearlane.core.engine.commitment expects FLOW_PAYMENT == 1")


@njit(cache=True, nogil=True, inline="always")
def _put_leg(buf, at, first, payer, payee, asset, amount, pid_data, pid_off, code_data, code_off):  # type: ignore[no-untyped-def]
    if not first:
        buf[at] = 59  # ';'
        at += 1
    at = put_bytes(buf, at, pid_data, pid_off[payer], pid_off[payer + 1])
    buf[at] = 62  # '>'
    at += 1
    at = put_bytes(buf, at, pid_data, pid_off[payee], pid_off[payee + 1])
    buf[at] = 58  # ':'
    at += 1
    at = put_bytes(buf, at, code_data, code_off[asset], code_off[asset + 1])
    buf[at] = 58
    at += 1
    return put_int(buf, at, amount)


@njit(cache=True, nogil=True)
def _batch_roots(  # type: ignore[no-untyped-def]
    init,
    update,
    final,
    seg,
    bid_data,
    bid_off,
    kind,
    buyer,
    seller,
    base,
    quote,
    qty,
    quote_amt,
    fee_buyer,
    fee_seller,
    id_data,
    id_off,
    ex_data,
    ex_off,
    pid_data,
    pid_off,
    code_data,
    code_off,
    house,
    prefix,
    trade_text,
    payment_text,
    scratch,
    level,
    out,
    b_first,
    b_last,
):
    """Roots of batches ``b_first <= b < b_last`` over flows ``seg[b]:seg[b + 1]``; returns
    libcrypto failures."""
    ctx = np.zeros(32, np.uint64)
    c = ctx.ctypes.data
    tag = np.zeros(1, np.uint8)
    failures = 0
    for b in range(b_first, b_last):
        lo = seg[b]
        hi = seg[b + 1]
        m = hi - lo
        for i in range(lo, hi):
            at = 0
            scratch[at] = 0  # leaf hash prefix 0x00
            at = 1
            at = put_bytes(scratch, at, prefix, 0, prefix.shape[0])
            at = put_bytes(scratch, at, bid_data, bid_off[b], bid_off[b + 1])
            scratch[at] = 124
            at += 1
            at = put_int(scratch, at, i - lo)
            scratch[at] = 124
            at += 1
            if kind[i] == 1:
                at = put_bytes(scratch, at, payment_text, 0, payment_text.shape[0])
            else:
                at = put_bytes(scratch, at, trade_text, 0, trade_text.shape[0])
            scratch[at] = 124
            at += 1
            at = put_bytes(scratch, at, id_data, id_off[i], id_off[i + 1])
            scratch[at] = 124
            at += 1
            at = put_bytes(scratch, at, ex_data, ex_off[i], ex_off[i + 1])
            scratch[at] = 124
            at += 1
            first = True
            if qty[i] != 0:
                at = _put_leg(
                    scratch,
                    at,
                    first,
                    seller[i],
                    buyer[i],
                    base[i],
                    qty[i],
                    pid_data,
                    pid_off,
                    code_data,
                    code_off,
                )
                first = False
            if quote_amt[i] != 0:
                at = _put_leg(
                    scratch,
                    at,
                    first,
                    buyer[i],
                    seller[i],
                    quote[i],
                    quote_amt[i],
                    pid_data,
                    pid_off,
                    code_data,
                    code_off,
                )
                first = False
            if fee_buyer[i] != 0:
                at = _put_leg(
                    scratch,
                    at,
                    first,
                    buyer[i],
                    house,
                    quote[i],
                    fee_buyer[i],
                    pid_data,
                    pid_off,
                    code_data,
                    code_off,
                )
                first = False
            if fee_seller[i] != 0:
                at = _put_leg(
                    scratch,
                    at,
                    first,
                    seller[i],
                    house,
                    quote[i],
                    fee_seller[i],
                    pid_data,
                    pid_off,
                    code_data,
                    code_off,
                )
                first = False
            failures += init(c) != 1
            failures += update(c, scratch.ctypes.data, at) != 1
            failures += final(level[i - lo].ctypes.data, c) != 1
        # Fold the level in place: parent j reads children 2j, 2j+1 (never a slot already
        # overwritten in this pass); an unpaired last node is promoted unchanged (RFC 9162 MTH).
        tag[0] = 1
        while m > 1:
            pairs = m // 2
            for j in range(pairs):
                failures += init(c) != 1
                failures += update(c, tag.ctypes.data, 1) != 1
                failures += update(c, level[2 * j].ctypes.data, 64) != 1
                failures += final(level[j].ctypes.data, c) != 1
            if m % 2:
                for k in range(32):
                    level[pairs, k] = level[m - 1, k]
            m = pairs + m % 2
        for k in range(32):
            out[b, k] = level[0, k]
    return failures


def batch_roots(
    flows: Flows,
    bounds: I64,
    batch_ids: list[str],
    participants: tuple[U8, I64],
    assets: tuple[U8, I64],
    house: int,
    participant_ids: pa.Array,
    asset_codes: pa.Array,
) -> list[bytes]:
    """Merkle roots of the batches ``flows[bounds[b]:bounds[b + 1]]`` with the given batch ids.

    Equal to ``merkle_root(hash_leaves(leaf_texts(batch flows, batch id, ...)))`` per batch.
    """
    return _batch_roots_call(
        flows, bounds, batch_ids, participants, assets, house, participant_ids, asset_codes, background=False
    )()


def batch_roots_async(
    flows: Flows,
    bounds: I64,
    batch_ids: list[str],
    participants: tuple[U8, I64],
    assets: tuple[U8, I64],
    house: int,
    participant_ids: pa.Array,
    asset_codes: pa.Array,
) -> Callable[[], list[bytes]]:
    """:func:`batch_roots` started on a helper thread (the kernel releases the GIL): returns a
    function that waits for the roots, so the caller can do other work of the step meanwhile."""
    return _batch_roots_call(
        flows, bounds, batch_ids, participants, assets, house, participant_ids, asset_codes, background=True
    )


def _batch_roots_call(
    flows: Flows,
    bounds: I64,
    batch_ids: list[str],
    participants: tuple[U8, I64],
    assets: tuple[U8, I64],
    house: int,
    participant_ids: pa.Array,
    asset_codes: pa.Array,
    *,
    background: bool,
) -> Callable[[], list[bytes]]:
    nb = len(batch_ids)
    if nb == 0:
        return list
    if np.any(np.diff(bounds) <= 0):
        raise ValueError("every batch needs at least one flow")
    fns = sha256_ctx_functions()
    if fns is None:
        roots = [
            merkle_root(
                hash_leaves(
                    leaf_texts(
                        flows.take(np.arange(bounds[b], bounds[b + 1], dtype=np.int64)),
                        batch_ids[b],
                        participant_ids,
                        asset_codes,
                        house,
                    )
                )
            )
            for b in range(nb)
        ]
        return lambda: roots
    id_data, id_off = arrow_strings(flows.ids)
    ex_data, ex_off = arrow_strings(flows.exch_batch)
    bid_data, bid_off = string_table(batch_ids)
    pid_data, pid_off = participants
    code_data, code_off = assets
    longest_pid = int(np.diff(pid_off).max())
    longest_code = int(np.diff(code_off).max())
    longest = (
        1
        + len(_PREFIX)
        + int(np.diff(bid_off).max())
        + 20
        + 7
        + 5
        + int(np.diff(id_off).max(initial=0))
        + int(np.diff(ex_off).max(initial=0))
        + 4 * (2 * longest_pid + longest_code + 24)
    )
    out = np.zeros((nb, 32), dtype=np.uint8)
    init, update, final = fns
    seg = bounds.astype(np.int64)
    widest = int(np.diff(bounds).max())
    kind = flows.kind.astype(np.int8)

    def run(b_first: int, b_last: int) -> int:
        scratch = np.zeros(longest, dtype=np.uint8)
        level = np.zeros((widest, 32), dtype=np.uint8)
        return int(
            _batch_roots(
                init,
                update,
                final,
                seg,
                bid_data,
                bid_off,
                kind,
                *flows.obligations(),
                id_data,
                id_off,
                ex_data,
                ex_off,
                pid_data,
                pid_off,
                code_data,
                code_off,
                house,
                _PREFIX,
                _KIND_TEXT[0],
                _KIND_TEXT[1],
                scratch,
                level,
                out,
                b_first,
                b_last,
            )
        )

    def finish(failures: int) -> list[bytes]:
        if failures:
            raise RuntimeError(f"libcrypto reported {failures} failures while hashing batch leaves")
        return [out[b].tobytes() for b in range(nb)]

    if background:
        pending = _pool().submit(run, 0, nb)
        return lambda: finish(pending.result())
    # The kernel releases the GIL: a big step's batches are hashed in two halves (by flows) on
    # two threads. Each batch's root depends on its own flows only, so the split changes nothing.
    split = int(np.searchsorted(seg, seg[-1] // 2)) if seg[-1] >= PARALLEL_MIN_FLOWS and nb > 1 else nb
    split = min(max(split, 1), nb)
    if split < nb:
        other = _pool().submit(run, split, nb)
        done = finish(run(0, split) + other.result())
    else:
        done = finish(run(0, nb))
    return lambda: done
