"""The matcher's exact-key passes in columns (numpy over pyarrow dictionary codes): the
duplicate pass and the reference pass decide most records of a run by sort and group, with no
Python object per comparison; the tolerance and date-window passes then run on the residue
(``matching.py``). Same decisions as the record-at-a-time passes, byte for byte — a property
test holds them equal (tests/core/test_recon_matching.py).

Strings become integer codes from one dictionary shared by both sides, so equal references are
equal codes; several key columns become one group id by a lexicographic sort (``factorize``).
Amounts and times are int64: a run whose amounts could overflow a group sum goes the slow way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import combinations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.recon.codes import Reason
from clearlane.core.recon.records import ReconRecord

I64 = npt.NDArray[np.int64]
# Differences of two amounts and sums of up to 8 (a split) below this stay inside int64.
AMOUNT_SAFE = 2**58


def sort_by_id(records: Sequence[ReconRecord]) -> tuple[list[ReconRecord], str | None]:
    """The records in id order (UTF-8 byte order is code point order: Python's ``sorted``), and
    an id that appears twice, if one does."""
    ids = pa.array([r.record_id for r in records], pa.string())
    order = pc.sort_indices(ids).to_numpy()
    ordered = [records[i] for i in order.tolist()]
    for k in range(1, len(ordered)):
        if ordered[k].record_id == ordered[k - 1].record_id:
            return ordered, ordered[k].record_id
    return ordered, None


def shared_codes(*columns: list[str]) -> list[I64]:
    """Integer codes of string columns from one dictionary (equal strings, equal codes)."""
    joined = pa.array([s for col in columns for s in col], pa.string()).dictionary_encode()
    codes = joined.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    out, start = [], 0
    for col in columns:
        out.append(codes[start : start + len(col)])
        start += len(col)
    return out


def factorize(*keys: I64) -> tuple[I64, int]:
    """One group id per row for the tuple of key columns (ids in key order), and the count."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64), 0
    order = np.lexsort(keys[::-1])
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        ranked = key[order]
        change[1:] |= ranked[1:] != ranked[:-1]
    gid = np.empty(n, dtype=np.int64)
    gid[order] = np.cumsum(change) - 1
    return gid, int(change.sum())


def _rank_in_group(gid: I64) -> I64:
    """0, 1, 2... within each group, in row order (rows are in id order)."""
    order = np.lexsort((np.arange(len(gid)), gid))
    ranked = gid[order]
    start = np.ones(len(gid), dtype=bool)
    start[1:] = ranked[1:] != ranked[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(len(gid)), 0))
    rank = np.empty(len(gid), dtype=np.int64)
    rank[order] = np.arange(len(gid)) - first
    return rank


class NotColumnar(Exception):
    """Amounts too large for int64 group sums: the run takes the record-at-a-time passes."""


class _Side:
    """One side's columns (rows in id order)."""

    def __init__(self, records: list[ReconRecord]) -> None:
        self.records = records
        try:
            self.amount = np.fromiter((r.amount_minor for r in records), np.int64, len(records))
            self.at = np.fromiter((r.at_ms for r in records), np.int64, len(records))
        except OverflowError:
            raise NotColumnar from None
        if len(records) and (self.amount.max() >= AMOUNT_SAFE or self.amount.min() <= -AMOUNT_SAFE):
            raise NotColumnar
        self.has_ref = np.fromiter((bool(r.reference) for r in records), bool, len(records))


@dataclass
class ExactDecisions:
    """What the exact passes decided, as row positions in id order."""

    duplicates: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_ext: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_int: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_reason: list[Reason] = field(default_factory=list)
    many: list[tuple[list[int], list[int]]] = field(default_factory=list)  # M:N reference groups
    ext_open: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    int_open: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))


def _duplicates(e: _Side, i: _Side, ref_e: I64, ref_i: I64, asset_e: I64, asset_i: I64) -> I64:
    """External rows repeating a kept row's full content beyond the internal side's copies of
    its (reference, asset, amount)."""
    we, wi = np.flatnonzero(e.has_ref), np.flatnonzero(i.has_ref)
    triple, _ = factorize(
        np.concatenate([ref_e[we], ref_i[wi]]),
        np.concatenate([asset_e[we], asset_i[wi]]),
        np.concatenate([e.amount[we], i.amount[wi]]),
    )
    copies = np.bincount(triple[len(we) :], minlength=int(triple.max(initial=-1)) + 1)[triple[: len(we)]]
    acct, src = shared_codes(
        [e.records[k].account for k in we.tolist()], [e.records[k].source_ref for k in we.tolist()]
    )
    full, _ = factorize(triple[: len(we)], acct, e.at[we], src)
    return we[_rank_in_group(full) >= np.maximum(1, copies)]


def _groups_by_reference(e: _Side, i: _Side, ref_e: I64, ref_i: I64, asset_e: I64, asset_i: I64,
                         ext_open: npt.NDArray[np.bool_]) -> tuple[I64, I64]:  # fmt: skip
    """(group id per open external row with a reference, per internal row with one), -1 when
    the row has no reference; groups are (reference, asset)."""
    we, wi = np.flatnonzero(e.has_ref & ext_open), np.flatnonzero(i.has_ref)
    gid, _ = factorize(np.concatenate([ref_e[we], ref_i[wi]]), np.concatenate([asset_e[we], asset_i[wi]]))
    ge, gi = np.full(len(e.records), -1, np.int64), np.full(len(i.records), -1, np.int64)
    ge[we], gi[wi] = gid[: len(we)], gid[len(we) :]
    return ge, gi


def _pair_reasons(e: _Side, i: _Side, pe: I64, pi: I64, tolerance: I64, bps: I64) -> list[Reason]:
    a, b = e.amount[pe], i.amount[pi]
    diff = np.abs(a - b)
    codes = np.where(
        diff == 0, Reason.MATCHED_REFERENCE.value,
        np.where(diff <= tolerance, Reason.MATCHED_WITHIN_TOLERANCE.value, Reason.AMOUNT_MISMATCH.value),
    )  # fmt: skip
    # The percentage test in Python integers (gap × 10,000 can overflow int64), only on the
    # few pairs the absolute tolerance refused in an asset that has one.
    for k in np.flatnonzero((codes == Reason.AMOUNT_MISMATCH.value) & (bps > 0)).tolist():
        x, y = int(a[k]), int(b[k])
        if abs(x - y) * 10_000 <= int(bps[k]) * max(abs(x), abs(y)):
            codes[k] = Reason.MATCHED_WITHIN_TOLERANCE.value
    lookup = {r.value: r for r in Reason}
    return [lookup[c] for c in codes.tolist()]


def _rows_in(gid: I64, chosen: npt.NDArray[np.bool_]) -> I64:
    """Rows (in id order) whose group is ``chosen``; -1 is no group."""
    if not len(chosen):
        return np.zeros(0, np.int64)
    return np.flatnonzero((gid >= 0) & chosen[np.maximum(gid, 0)])


def _reference_pass(out: ExactDecisions, e: _Side, i: _Side, ge: I64, gi: I64, tol: tuple[I64, I64]) -> None:
    """Groups on both sides decide: 1:1 in columns, M:N handed back as position lists."""
    size = int(max(ge.max(initial=-1), gi.max(initial=-1))) + 1
    ne, ni = np.bincount(ge[ge >= 0], minlength=size), np.bincount(gi[gi >= 0], minlength=size)
    both = (ne > 0) & (ni > 0)
    one_to_one = both & (ne == 1) & (ni == 1)
    pe, pi = _rows_in(ge, one_to_one), _rows_in(gi, one_to_one)
    pe, pi = pe[np.argsort(ge[pe], kind="stable")], pi[np.argsort(gi[pi], kind="stable")]
    out.pair_ext, out.pair_int, out.pair_reason = pe, pi, _pair_reasons(e, i, pe, pi, tol[0][pe], tol[1][pe])
    lists: dict[int, tuple[list[int], list[int]]] = {}
    many = both & ~one_to_one
    for k in _rows_in(ge, many).tolist():
        lists.setdefault(int(ge[k]), ([], []))[0].append(k)
    for k in _rows_in(gi, many).tolist():
        lists.setdefault(int(gi[k]), ([], []))[1].append(k)
    out.many = [lists[g] for g in sorted(lists)]
    out.ext_open[_rows_in(ge, both)] = False
    out.int_open[_rows_in(gi, both)] = False


def exact_passes(
    ext: list[ReconRecord],
    intl: list[ReconRecord],
    tolerance: dict[str, int],
    tolerance_bps: dict[str, int] | None = None,
) -> ExactDecisions:
    """The duplicate and reference passes over both sides (each in id order); ``tolerance``
    per asset in minor units, ``tolerance_bps`` in basis points of the larger amount."""
    e, i = _Side(ext), _Side(intl)
    ref_e, ref_i = shared_codes([r.reference for r in ext], [r.reference for r in intl])
    assets = sorted({r.asset for r in ext} | {r.asset for r in intl})
    index = {a: k for k, a in enumerate(assets)}
    asset_e = np.fromiter((index[r.asset] for r in ext), np.int64, len(ext))
    asset_i = np.fromiter((index[r.asset] for r in intl), np.int64, len(intl))
    out = ExactDecisions(ext_open=np.ones(len(ext), bool), int_open=np.ones(len(intl), bool))
    if len(ext):
        out.duplicates = _duplicates(e, i, ref_e, ref_i, asset_e, asset_i)
        out.ext_open[out.duplicates] = False
    ge, gi = _groups_by_reference(e, i, ref_e, ref_i, asset_e, asset_i, out.ext_open)
    bps = tolerance_bps or {}
    tol = (
        (
            np.array([tolerance.get(a, 0) for a in assets], np.int64)[asset_e],
            np.array([bps.get(a, 0) for a in assets], np.int64)[asset_e],
        )
        if len(ext)
        else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    )
    _reference_pass(out, e, i, ge, gi, tol)
    return out


@cache
def _combinations(k: int, size_max: int) -> I64:
    """Every subset of 2..size_max of k items, in (size, lexicographic) order, as rows of
    indices padded with ``k`` (a zero amount)."""
    rows = [
        combo + (k,) * (size_max - len(combo))
        for size in range(2, min(size_max, k) + 1)
        for combo in combinations(range(k), size)
    ]
    return np.array(rows, dtype=np.int64).reshape(len(rows), size_max)


def subset_sums(amounts: list[int], size_max: int) -> I64:
    """The sum of every subset of :func:`_combinations`, same order."""
    table = _combinations(len(amounts), size_max)
    padded = np.array([*amounts, 0], dtype=np.int64)
    return padded[table].sum(axis=1)  # type: ignore[no-any-return]


def first_cover(
    sums: I64 | None, k: int, size_max: int, target: int, tolerance: int
) -> tuple[int, ...] | None:
    """The first subset whose sum is within ``tolerance`` of ``target`` (as item indices);
    with a tolerance, only when one sum is within it (several subsets may share that sum)."""
    if sums is None or not len(sums):
        return None
    hit = np.flatnonzero(np.abs(sums - target) <= tolerance)
    if not len(hit) or (tolerance and len(np.unique(sums[hit])) > 1):
        return None
    return tuple(i for i in _combinations(k, size_max)[hit[0]].tolist() if i < k)


__all__ = [
    "ExactDecisions",
    "NotColumnar",
    "exact_passes",
    "factorize",
    "first_cover",
    "shared_codes",
    "sort_by_id",
    "subset_sums",
]
