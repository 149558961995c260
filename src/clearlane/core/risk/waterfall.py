"""A participant default's loss waterfall, in integer minor units (cents of the reporting asset).

The defaulters' unpaid net debits are covered, in order, by

1. each defaulter's own collateral (up to its own unpaid debit — collateral is not mutualised);
2. the default fund (prefunded, mutualised);
3. the house (the clearing house's own resources, "skin in the game" after the fund here);

and what is still uncovered is left short to the *creditors*: the participants with net
credits on the same obligations, pro rata to their credits (largest remainder, ties to the lower
index, so the split is exact and deterministic). The conservation invariant — every unpaid cent
is either covered by one layer or borne by a named creditor — is checked in code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


class WaterfallInvariantError(Exception):
    """The waterfall lost or created money: a bug, never a user error (so, like the ledger's
    invariant errors, outside the ClearlaneError tree: no handler answering users swallows it)."""


@dataclass(frozen=True, slots=True)
class Waterfall:
    unpaid: I64  # per participant: unpaid net debit (defaulters only non-zero)
    from_collateral: I64  # per participant
    from_fund: int
    from_house: int
    left_short: I64  # per participant: the creditors' share of what is still uncovered

    @property
    def total_unpaid(self) -> int:
        return int(self.unpaid.sum())

    @property
    def uncovered(self) -> int:
        return int(self.left_short.sum())


def pro_rata(amount: int, weights: I64) -> I64:
    """Split ``amount`` over non-negative integer ``weights`` exactly (largest remainder)."""
    weights = np.asarray(weights, dtype=np.int64)
    total = int(weights.sum())
    out = np.zeros(len(weights), dtype=np.int64)
    if amount <= 0 or total <= 0:
        return out
    # Python ints: amount × weight can exceed int64 for large days.
    shares = [amount * int(w) for w in weights.tolist()]
    base = [s // total for s in shares]
    remainder = [s % total for s in shares]
    left = amount - sum(base)
    order = sorted(range(len(weights)), key=lambda i: (-remainder[i], i))
    for i in order[:left]:
        base[i] += 1
    return np.array(base, dtype=np.int64)


def waterfall(unpaid: I64, collateral: I64, credits: I64, *, default_fund: int, house: int) -> Waterfall:
    """Run the waterfall (module docstring). All arrays per participant, in cents, ≥ 0."""
    unpaid = np.asarray(unpaid, dtype=np.int64)
    collateral = np.asarray(collateral, dtype=np.int64)
    credits = np.asarray(credits, dtype=np.int64)
    if (unpaid < 0).any() or (collateral < 0).any() or (credits < 0).any() or min(default_fund, house) < 0:
        raise ValueError("waterfall amounts must be non-negative")
    from_collateral = np.minimum(unpaid, collateral)
    rest = int(unpaid.sum() - from_collateral.sum())
    from_fund = min(rest, default_fund)
    rest -= from_fund
    from_house = min(rest, house)
    rest -= from_house
    # The defaulters are not their own creditors.
    weights = np.where(unpaid > 0, 0, credits)
    left_short = pro_rata(rest, weights)
    if rest > 0 and int(weights.sum()) == 0:
        # No creditor to bear it: the house carries it beyond its stated resources.
        from_house += rest
    result = Waterfall(unpaid, from_collateral, from_fund, from_house, left_short)
    check_conservation(result)
    return result


def check_conservation(w: Waterfall) -> None:
    """Every unpaid cent is covered by exactly one layer or borne by a creditor."""
    covered = int(w.from_collateral.sum()) + w.from_fund + w.from_house + int(w.left_short.sum())
    if covered != w.total_unpaid:
        raise WaterfallInvariantError(f"waterfall covers {covered} of {w.total_unpaid} unpaid")
    if (w.from_collateral > w.unpaid).any() or (w.left_short < 0).any():
        raise WaterfallInvariantError("a layer covered more than a defaulter owed")
