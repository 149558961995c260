"""Multilateral netting.

Given obligations ``payer → payee : asset amount``, the net position of a participant in an
asset is what it receives minus what it pays (positive = net creditor, negative = net debtor).
With the clearing house as central counterparty each participant settles only its net
position. Two invariants are checked on every result, explicitly (not with ``assert``): for each
asset the net positions sum to zero, and the net debits never exceed the gross amount.

:func:`settlement_instructions` also expresses the result as payer → payee transfers (debtors
matched to creditors largest first, ties by participant index), which is how the published
netting examples state their results ("UK to pay France 632,517").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


class NettingInvariantError(RuntimeError):
    """Net positions that do not conserve value: a bug, never a data problem."""


@dataclass(frozen=True)
class NetResult:
    """Net positions of one batch, kept sparse: the non-zero ``(participant, asset, amount)``
    triples in participant-major order, and per-asset totals.

    Sparse because a batch touches a few hundred of the ``participants × assets`` cells: a dense
    matrix made every batch cost O(participants × assets) (32,000 cells on the reference day)
    whatever its size — the per-batch fixed cost of issue 18. :attr:`net` gives the dense matrix
    for readers that want it (tests, reports); the engine never builds it.
    """

    participant: I64
    asset: I64
    amount: I64
    gross_per_asset: I64  # sum of all obligation amounts
    net_debit_per_asset: I64  # sum of negative net positions (as positive numbers)
    participants: int

    @property
    def net(self) -> I64:
        """The dense ``net[participant, asset]`` matrix."""
        matrix = np.zeros((self.participants, len(self.gross_per_asset)), dtype=np.int64)
        matrix[self.participant, self.asset] = self.amount
        return matrix

    def instructions(self) -> tuple[I64, I64, I64]:
        """Non-zero positions as (participant, asset, net amount), participant-major order."""
        return self.participant, self.asset, self.amount


def empty_result(participants: int, gross_per_asset: I64) -> NetResult:
    """No net positions (a batch settled gross), with its gross per asset."""
    none = np.zeros(0, dtype=np.int64)
    assets = len(gross_per_asset)
    return NetResult(none, none, none, gross_per_asset, np.zeros(assets, dtype=np.int64), participants)


def net_positions(
    payer: npt.NDArray[np.integer],
    payee: npt.NDArray[np.integer],
    asset: npt.NDArray[np.integer],
    amount: I64,
    participants: int,
    assets: int,
) -> NetResult:
    """Net obligations per participant and asset (vectorised, exact int64, sparse): one batch
    of :func:`net_positions_many`.

    Each obligation is two legs keyed ``participant * assets + asset``; one sort and one
    ``reduceat`` sum the legs of each key exactly (no float weights), and the keys' sorted order
    is the participant-major order of the dense matrix's ``nonzero``.
    """
    one = np.zeros(len(amount), dtype=np.int64)
    return net_positions_many(payer, payee, asset, amount, one, 1, participants, assets)[0]


def net_positions_many(
    payer: npt.NDArray[np.integer],
    payee: npt.NDArray[np.integer],
    asset: npt.NDArray[np.integer],
    amount: I64,
    leg_batch: I64,
    batches: int,
    participants: int,
    assets: int,
) -> list[NetResult]:
    """:func:`net_positions` of ``batches`` batches at once (``leg_batch``: each leg's batch,
    0-based): the same results, each equal to netting that batch's legs alone.

    Sub-second windows close hundreds of small batches a step; one sort keyed ``(batch,
    participant, asset)`` and one ``reduceat`` replace a few dozen numpy calls per batch. Each
    batch's legs must sum within int64 (the caller checks ``legs_fit`` per batch).
    """
    if np.any(amount < 0):
        raise ValueError("obligation amounts must be non-negative")
    amount = amount.astype(np.int64, copy=False)
    asset64, batch64 = asset.astype(np.int64), leg_batch.astype(np.int64)
    cells = participants * assets
    if len(amount) and cells <= _COMPILED_MAX_CELLS:
        key, net, batch_of, gross, net_debit = _net_compiled(
            payer.astype(np.int64),
            payee.astype(np.int64),
            asset64,
            amount,
            batch64,
            batches,
            participants,
            assets,
        )
        participant, asset_i = np.divmod(key, assets)
    else:
        gross = np.zeros(batches * assets, dtype=np.int64)
        np.add.at(gross, batch64 * assets + asset64, amount)
        base = batch64 * cells + asset64
        keys = np.concatenate(
            [base + payer.astype(np.int64) * assets, base + payee.astype(np.int64) * assets]
        )
        legs = np.concatenate([-amount, amount])
        # Any sort will do: legs with equal keys are summed in int64, exactly, in any order.
        order = np.argsort(keys)
        keys, legs = keys[order], legs[order]
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else keys
        sums = np.add.reduceat(legs, starts) if len(keys) else legs
        keep = sums != 0
        key, net = keys[starts][keep], sums[keep]
        batch_of, cell = np.divmod(key, cells)
        participant, asset_i = np.divmod(cell, assets)
        debit = net < 0
        net_debit = np.zeros(batches * assets, dtype=np.int64)
        np.add.at(net_debit, batch_of[debit] * assets + asset_i[debit], -net[debit])
    _check_many(batch_of * assets + asset_i, net, gross, net_debit)
    gross_of, debit_of = gross.reshape(batches, assets), net_debit.reshape(batches, assets)
    bounds = np.searchsorted(batch_of, np.arange(batches + 1)).tolist()
    return [
        NetResult(participant[lo:hi], asset_i[lo:hi], net[lo:hi], gross_of[b], debit_of[b], participants)
        for b, (lo, hi) in enumerate(itertools.pairwise(bounds))
    ]


_COMPILED_MAX_CELLS = 1 << 22
"""The compiled pass keeps one int64 scratch cell per (participant, asset) — 32 MiB at this
bound; a configuration with more cells nets through the numpy sort instead."""


@nb.njit(cache=True, nogil=True)
def _net_compiled(
    payer: Any,
    payee: Any,
    asset: Any,
    amount: Any,
    leg_batch: Any,
    batches: int,
    participants: int,
    assets: int,
) -> tuple[Any, Any, Any, Any, Any]:
    """The numpy path's result without its global sort: legs are bucketed by batch (a counting
    sort), each batch's legs summed into a scratch cell per (participant, asset), and only the
    cells a batch touched are sorted and emitted (participant-major), then cleared. int64 sums,
    like the numpy path: the caller guarantees each batch's legs fit."""
    n = amount.shape[0]
    start = np.zeros(batches + 1, dtype=np.int64)
    for i in range(n):
        if leg_batch[i] < 0 or leg_batch[i] >= batches:
            raise ValueError("leg batch out of range")
        start[leg_batch[i] + 1] += 1
    for b in range(batches):
        start[b + 1] += start[b]
    fill = start[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        order[fill[leg_batch[i]]] = i
        fill[leg_batch[i]] += 1
    scratch, seen, touched, gross, net_debit, key, net, batch_of = _cells(
        n, participants * assets, batches, assets
    )
    out = 0
    for b in range(batches):
        t = 0
        for j in range(start[b], start[b + 1]):
            i = order[j]
            a = asset[i]
            gross[b * assets + a] += amount[i]
            t = _move(payer[i] * assets + a, payee[i] * assets + a, amount[i], scratch, seen, touched, t)
        out = _emit(b, touched[:t], seen, scratch, assets, key, net, batch_of, net_debit, out)
    return key[:out].copy(), net[:out].copy(), batch_of[:out].copy(), gross, net_debit


@nb.njit(cache=True)
def _cells(legs: int, n_cells: int, batches: int, assets: int) -> Any:
    """The netting passes' arrays: per cell the scratch sum and a touched flag, the touched
    list, per (batch, asset) gross and net debit, and room for every leg's two positions."""
    return (
        np.zeros(n_cells, dtype=np.int64),
        np.zeros(n_cells, dtype=np.bool_),
        np.empty(2 * legs, dtype=np.int64),
        np.zeros(batches * assets, dtype=np.int64),
        np.zeros(batches * assets, dtype=np.int64),
        np.empty(2 * legs, dtype=np.int64),
        np.empty(2 * legs, dtype=np.int64),
        np.empty(2 * legs, dtype=np.int64),
    )


@nb.njit(cache=True)
def _move(debit_cell: int, credit_cell: int, v: int, scratch: Any, seen: Any, touched: Any, t: int) -> int:
    """One leg of ``v`` out of ``debit_cell`` into ``credit_cell``; a cell touched for the first
    time in its batch is listed in ``touched`` (returns the new count)."""
    for cell, delta in ((debit_cell, -v), (credit_cell, v)):
        if not seen[cell]:
            seen[cell] = True
            touched[t] = cell
            t += 1
        scratch[cell] += delta
    return t


@nb.njit(cache=True)
def _emit(
    b: int,
    touched: Any,
    seen: Any,
    scratch: Any,
    assets: int,
    key: Any,
    net: Any,
    batch_of: Any,
    net_debit: Any,
    out: int,
) -> int:
    """Write batch ``b``'s non-zero cells from ``out`` on (returns the new end) and clear the
    cells it touched. Ascending cell order: the touched cells sorted when few, else a scan of
    every flag (the sort costs more once a batch touches 1/256 of the cells)."""
    cells = np.sort(touched) if touched.shape[0] * 256 < seen.shape[0] else np.flatnonzero(seen)
    for cell in cells:
        value = scratch[cell]
        if value != 0:
            key[out] = cell
            net[out] = value
            batch_of[out] = b
            out += 1
            if value < 0:
                net_debit[b * assets + cell % assets] -= value
        scratch[cell] = 0
        seen[cell] = False
    return out


def net_flows_many(
    flows: Any, bounds: I64, house: int, participants: int, assets: int, limit: int
) -> list[tuple[NetResult | None, int]] | None:
    """Each batch's net positions straight from the flow columns (``flows``: an engine
    ``Flows``; batch ``b`` is rows ``bounds[b]:bounds[b + 1]``), with its number of non-zero
    legs; ``None`` for a batch whose legs sum past ``limit`` (``limits.legs_fit``: not netted,
    int64 sums would not be exact). The same results as ``Flows.legs`` then
    :func:`net_positions_many` over the batches that fit (property test), in one compiled pass
    that never builds the legs, nor sorts them by batch: the flows already come batch by batch.
    ``None`` instead of a list when the configuration has too many cells for the scratch pass."""
    batches = len(bounds) - 1
    if participants * assets > _COMPILED_MAX_CELLS:
        return None
    key, net, batch_of, gross, net_debit, fits, legs = _net_flows_compiled(
        flows.obligations(), bounds.astype(np.int64, copy=False), house, participants, assets, limit
    )
    participant, asset_i = np.divmod(key, assets)
    _check_many(batch_of * assets + asset_i, net, gross, net_debit)
    gross_of, debit_of = gross.reshape(batches, assets), net_debit.reshape(batches, assets)
    cuts = np.searchsorted(batch_of, np.arange(batches + 1)).tolist()
    return [
        (
            NetResult(participant[lo:hi], asset_i[lo:hi], net[lo:hi], gross_of[b], debit_of[b], participants)
            if fit
            else None,
            count,
        )
        for b, (lo, hi), fit, count in zip(
            range(batches), itertools.pairwise(cuts), fits.tolist(), legs.tolist(), strict=True
        )
    ]


@nb.njit(cache=True, inline="always")
def _fit_leg(v: int, total: int, limit: int) -> int:
    """The running sum of a batch's legs after ``v`` (-1 once it passes ``limit``, exactly)."""
    if v < 0:
        raise ValueError("obligation amounts must be non-negative")
    if total < 0 or v > limit - total:
        return -1
    return total + v


@nb.njit(cache=True, nogil=True)
def _net_flows_compiled(
    obligations: Any, bounds: Any, house: int, participants: int, assets: int, limit: int
) -> tuple[Any, Any, Any, Any, Any, Any, Any]:
    """:func:`_net_compiled` over legs read from the flow columns (``Flows.obligations()``),
    batch by batch: first each batch's non-zero legs are counted and their sum held to
    ``limit`` (exactly: the running total never passes it), then the batches that fit are
    summed cell by cell."""
    buyer, seller, base, quote, qty, quote_amt, fee_buyer, fee_seller = obligations
    batches = bounds.shape[0] - 1
    fits = np.ones(batches, dtype=np.bool_)
    legs = np.zeros(batches, dtype=np.int64)
    for b in range(batches):
        total = 0
        count = 0
        for i in range(bounds[b], bounds[b + 1]):
            for v in (qty[i], quote_amt[i], fee_buyer[i], fee_seller[i]):
                if v != 0:
                    count += 1
                total = _fit_leg(v, total, limit)
        legs[b] = count
        fits[b] = total >= 0
    n = legs.sum()
    scratch, seen, touched, gross, net_debit, key, net, batch_of = _cells(
        n, participants * assets, batches, assets
    )
    out = 0
    for b in range(batches):
        if not fits[b]:
            continue
        t = 0
        for i in range(bounds[b], bounds[b + 1]):
            for leg in range(4):  # Flows.legs's order (one branch each: faster than a helper)
                if leg == 0:  # A: seller -> buyer, base asset
                    payer, payee, a, v = seller[i], buyer[i], base[i], qty[i]
                elif leg == 1:  # B: buyer -> seller, quote asset
                    payer, payee, a, v = buyer[i], seller[i], quote[i], quote_amt[i]
                elif leg == 2:  # the buyer's fee to the house
                    payer, payee, a, v = buyer[i], house, quote[i], fee_buyer[i]
                else:  # the seller's fee to the house
                    payer, payee, a, v = seller[i], house, quote[i], fee_seller[i]
                if v == 0:
                    continue
                gross[b * assets + a] += v
                t = _move(payer * assets + a, payee * assets + a, v, scratch, seen, touched, t)
        out = _emit(b, touched[:t], seen, scratch, assets, key, net, batch_of, net_debit, out)
    return key[:out].copy(), net[:out].copy(), batch_of[:out].copy(), gross, net_debit, fits, legs


def _check_many(cell: I64, net: I64, gross: I64, net_debit: I64) -> None:
    """Conservation, checked on the sparse triples for every (batch, asset) cell at once: each
    cell's net positions sum to zero, and its net debits never exceed its gross."""
    sums = cell_sums(cell, net, len(gross))
    if np.any(sums != 0):
        bad = int(np.flatnonzero(sums)[0])
        raise NettingInvariantError(f"net positions of asset cell #{bad} sum to {int(sums[bad])}, not 0")
    if np.any(net_debit > gross):
        bad = int(np.flatnonzero(net_debit > gross)[0])
        raise NettingInvariantError(f"net debit of asset cell #{bad} exceeds its gross amount")


@nb.njit(cache=True, nogil=True)
def cell_sums(cell: Any, value: Any, size: int) -> Any:
    """``np.add.at(zeros(size), cell, value)`` in int64 (wrapping alike), without ``ufunc.at``'s
    cost per element: 0.36 s for the 1M day's 1.5M net positions, the netting pass's own time."""
    sums = np.zeros(size, dtype=np.int64)
    for i in range(cell.shape[0]):
        sums[cell[i]] += value[i]
    return sums


def check_conservation(net: I64, gross_per_asset: I64) -> None:
    """Raise unless every asset's net positions sum to zero and net debits <= gross."""
    sums = net.sum(axis=0)
    if np.any(sums != 0):
        bad = int(np.flatnonzero(sums)[0])
        raise NettingInvariantError(f"net positions of asset #{bad} sum to {int(sums[bad])}, not 0")
    net_debit = -np.minimum(net, 0).sum(axis=0)
    if np.any(net_debit > gross_per_asset):
        bad = int(np.flatnonzero(net_debit > gross_per_asset)[0])
        raise NettingInvariantError(f"net debit of asset #{bad} exceeds its gross amount")


def settlement_instructions(net: I64) -> list[tuple[int, int, int, int]]:
    """Payer → payee transfers that settle ``net``: ``(payer, payee, asset, amount)``.

    Per asset, the largest debtor pays the largest creditor until one is exhausted (ties broken
    by the lower participant index). The number of transfers is at most debtors + creditors - 1.
    """
    out: list[tuple[int, int, int, int]] = []
    for a in range(net.shape[1]):
        column = net[:, a]
        debtors = [(-int(column[p]), p) for p in np.flatnonzero(column < 0)]
        creditors = [(int(column[p]), p) for p in np.flatnonzero(column > 0)]
        debtors.sort(key=lambda item: (-item[0], item[1]))
        creditors.sort(key=lambda item: (-item[0], item[1]))
        i = j = 0
        owe = [d for d, _ in debtors]
        due = [c for c, _ in creditors]
        while i < len(debtors) and j < len(creditors):
            amount = min(owe[i], due[j])
            out.append((int(debtors[i][1]), int(creditors[j][1]), a, amount))
            owe[i] -= amount
            due[j] -= amount
            if owe[i] == 0:
                i += 1
            if due[j] == 0:
                j += 1
    return out
