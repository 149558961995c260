"""Cover-1 / Cover-2 (PFMI Principles 4 and 7): the participant (or two) whose default causes the
largest stressed obligation, and the shortfall of prefunded resources against it.

A participant's *stressed obligation* is what its default would leave unpaid in extreme but
plausible conditions: its peak net debit over the day plus its stressed margin (the VaR over the
finality window), less its own collateral, floored at zero. Cover-N names the N participants
with the largest stressed obligations (ties: lower index first, so the choice is deterministic)
and its shortfall is ``max(0, Σ obligations − default fund)``. Obligations are non-negative, so
Cover-2 ≥ Cover-1 always (checked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


class CoverInvariantError(Exception):
    """Cover-2 below Cover-1: a bug (outside the ClearlaneError tree, like every invariant error)."""


@dataclass(frozen=True, slots=True)
class Cover:
    n: int
    defaulters: tuple[int, ...]  # participant indices, largest first
    obligation: int  # cents
    resources: int  # cents: the default fund
    shortfall: int  # cents


def stressed_obligations(peak_debit: I64, margin: I64, collateral: I64) -> I64:
    """``max(0, peak net debit + stressed margin − collateral)`` per participant, cents."""
    out: I64 = np.maximum(
        np.asarray(peak_debit, np.int64) + np.asarray(margin, np.int64) - np.asarray(collateral, np.int64), 0
    )
    return out


def cover(obligations: I64, n: int, default_fund: int, *, exclude: tuple[int, ...] = ()) -> Cover:
    """Cover-``n`` over per-participant stressed obligations (cents); ``exclude``: indices that
    cannot default (the house)."""
    obligations = np.asarray(obligations, dtype=np.int64)
    candidates = [i for i in range(len(obligations)) if i not in exclude]
    ranked = sorted(candidates, key=lambda i: (-int(obligations[i]), i))[:n]
    total = int(sum(int(obligations[i]) for i in ranked))
    return Cover(n, tuple(ranked), total, default_fund, max(0, total - default_fund))


def cover_1_and_2(
    obligations: I64, default_fund: int, *, exclude: tuple[int, ...] = ()
) -> tuple[Cover, Cover]:
    one = cover(obligations, 1, default_fund, exclude=exclude)
    two = cover(obligations, 2, default_fund, exclude=exclude)
    if two.obligation < one.obligation or two.shortfall < one.shortfall:
        raise CoverInvariantError("Cover-2 below Cover-1: obligations must be non-negative")
    return one, two
