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

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


class NettingInvariantError(RuntimeError):
    """Net positions that do not conserve value: a bug, never a data problem."""


@dataclass(frozen=True)
class NetResult:
    """Net positions of one batch: ``net[participant, asset]`` and per-asset totals."""

    net: I64  # shape (participants, assets)
    gross_per_asset: I64  # sum of all obligation amounts
    net_debit_per_asset: I64  # sum of negative net positions (as positive numbers)

    def instructions(self) -> tuple[I64, I64, I64]:
        """Non-zero positions as (participant, asset, net amount), participant-major order."""
        participant, asset = np.nonzero(self.net)
        return participant.astype(np.int64), asset.astype(np.int64), self.net[participant, asset]


def net_positions(
    payer: npt.NDArray[np.integer],
    payee: npt.NDArray[np.integer],
    asset: npt.NDArray[np.integer],
    amount: I64,
    participants: int,
    assets: int,
) -> NetResult:
    """Net obligations per participant and asset (vectorised, exact int64)."""
    if np.any(amount < 0):
        raise ValueError("obligation amounts must be non-negative")
    net = np.zeros(participants * assets, dtype=np.int64)
    asset64 = asset.astype(np.int64)
    np.add.at(net, payer.astype(np.int64) * assets + asset64, -amount)
    np.add.at(net, payee.astype(np.int64) * assets + asset64, amount)
    gross = np.zeros(assets, dtype=np.int64)
    np.add.at(gross, asset64, amount)
    matrix = net.reshape(participants, assets)
    net_debit = -np.minimum(matrix, 0).sum(axis=0)
    check_conservation(matrix, gross)
    return NetResult(net=matrix, gross_per_asset=gross, net_debit_per_asset=net_debit)


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
