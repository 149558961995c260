"""Compiled checks 7–12 and the balance update of a run of wide entries, one after the other
(numba, :func:`post_wide_many`; a single entry is a run of one), and the release of every hold
(posted or voided, whatever its width).

:meth:`Ledger._check_wide` states the rules in numpy; this kernel decides exactly as it does in
one pass over the legs (a property test compares the two on random ledgers and entries) and,
when the entry passes, applies it in place. numpy's per-call overhead made a few hundred legs
cost ~25 numpy calls; holds and releases of a batch are such entries, thousands a day. On a
refusal nothing is changed and the caller asks :meth:`Ledger._check_wide` for the refusal's
detail (the rare path keeps one source of messages).

The arithmetic is the same int64 arithmetic as the numpy path, in the same order of checks.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from clearlane.core.ledger.entries import PostResult

# The PostResult codes the kernel can answer, as the plain ints numba compiles in.
OK = int(PostResult.OK)
ZERO_AMOUNT_LEG = int(PostResult.ZERO_AMOUNT_LEG)
AMOUNT_OUT_OF_RANGE = int(PostResult.AMOUNT_OUT_OF_RANGE)
UNKNOWN_ACCOUNT = int(PostResult.UNKNOWN_ACCOUNT)
UNBALANCED = int(PostResult.UNBALANCED)
BALANCE_OUT_OF_RANGE = int(PostResult.BALANCE_OUT_OF_RANGE)
FLOOR_EXCEEDED = int(PostResult.FLOOR_EXCEEDED)


@nb.njit(cache=True, nogil=True)
def _post_one(
    accounts: Any,
    amounts: Any,
    lo: int,
    hi: int,
    pending: bool,
    asset_of: Any,
    n_assets: int,
    n_accounts: int,
    posted: Any,
    pending_debits: Any,
    pending_credits: Any,
    has_floor: Any,
    floor_minor: Any,
    max_amount: int,
    max_balance: int,
    scratch_low: Any,
    scratch_high: Any,
    seen: Any,
    touched: Any,
    at: int,
) -> tuple[int, int]:
    """Check the entry whose legs are ``accounts[lo:hi]`` / ``amounts[lo:hi]`` and apply it iff
    the code is OK; ``(code, m)``: its ``m`` touched accounts, in leg order of first
    appearance, are written to ``touched[at:at + m]``. ``scratch_low``/``scratch_high`` (int64
    zeros) and ``seen`` (False) hold one cell per account and are left as they were found:
    per-account sums without a sort."""
    for i in range(lo, hi):
        if amounts[i] == 0:
            return ZERO_AMOUNT_LEG, 0
    for i in range(lo, hi):
        if amounts[i] < -max_amount or amounts[i] > max_amount:
            return AMOUNT_OUT_OF_RANGE, 0
    gross = 0
    for i in range(lo, hi):
        gross += amounts[i] if amounts[i] > 0 else -amounts[i]
        if gross > max_amount:  # each leg is within range, so the sum never wraps
            return AMOUNT_OUT_OF_RANGE, 0
    for i in range(lo, hi):
        if accounts[i] < 0 or accounts[i] >= n_accounts:
            return UNKNOWN_ACCOUNT, 0
    per_asset = np.zeros(n_assets, dtype=np.int64)
    for i in range(lo, hi):
        per_asset[asset_of[accounts[i]]] += amounts[i]
    for a in range(n_assets):
        if per_asset[a] != 0:
            return UNBALANCED, 0
    m = 0
    for i in range(lo, hi):
        index = accounts[i]
        if not seen[index]:
            seen[index] = True
            touched[at + m] = index
            m += 1
        amount = amounts[i]
        if pending and amount > 0:
            scratch_high[index] += amount
        else:
            scratch_low[index] += amount
    code = OK
    for s in range(m):
        index = touched[at + s]
        low = scratch_low[index]
        high = scratch_high[index] if pending else low
        high_after = posted[index] + pending_credits[index] + high
        low_after = posted[index] - pending_debits[index] + low
        if high_after > max_balance or low_after < -max_balance:
            code = BALANCE_OUT_OF_RANGE
            break
    if code == OK:
        for s in range(m):
            index = touched[at + s]
            low = scratch_low[index]
            low_after = posted[index] - pending_debits[index] + low
            if has_floor[index] and low < 0 and low_after < floor_minor[index]:
                code = FLOOR_EXCEEDED
                break
    for s in range(m):
        index = touched[at + s]
        if code == OK:
            if pending:
                pending_debits[index] -= scratch_low[index]
                pending_credits[index] += scratch_high[index]
            else:
                posted[index] += scratch_low[index]
        scratch_low[index] = 0
        scratch_high[index] = 0
        seen[index] = False
    if code != OK:
        return code, 0
    return OK, m


@nb.njit(cache=True, nogil=True)
def post_wide_many(
    accounts: Any,
    amounts: Any,
    bounds: Any,
    pending: Any,
    asset_of: Any,
    n_assets: int,
    n_accounts: int,
    posted: Any,
    pending_debits: Any,
    pending_credits: Any,
    has_floor: Any,
    floor_minor: Any,
    max_amount: int,
    max_balance: int,
    scratch_low: Any,
    scratch_high: Any,
    seen: Any,
    touched: Any,
    touched_bounds: Any,
) -> tuple[int, int]:
    """Entries one after the other, each checked against the balances its predecessors left
    (entry ``e``: legs ``bounds[e]:bounds[e + 1]``, two-phase iff ``pending[e]``), until one is
    refused: ``(applied, code)`` — the first ``applied`` entries are applied (entry ``e``'s
    touched accounts in ``touched[touched_bounds[e]:touched_bounds[e + 1]]``), and ``code`` is
    the refusal of entry ``applied`` (nothing of it applied), or OK when all were."""
    t = 0
    entries = bounds.shape[0] - 1
    for e in range(entries):
        code, m = _post_one(
            accounts,
            amounts,
            bounds[e],
            bounds[e + 1],
            pending[e],
            asset_of,
            n_assets,
            n_accounts,
            posted,
            pending_debits,
            pending_credits,
            has_floor,
            floor_minor,
            max_amount,
            max_balance,
            scratch_low,
            scratch_high,
            seen,
            touched,
            t,
        )
        if code != OK:
            return e, code
        t += m
        touched_bounds[e + 1] = t
    return entries, OK


@nb.njit(cache=True, nogil=True)
def release_wide(
    accounts: Any, amounts: Any, to_posted: bool, posted: Any, pending_debits: Any, pending_credits: Any
) -> None:
    """Release a hold's reservations leg by leg; post its legs too when ``to_posted``."""
    for i in range(accounts.shape[0]):
        index = accounts[i]
        amount = amounts[i]
        if amount < 0:
            pending_debits[index] += amount
        else:
            pending_credits[index] -= amount
        if to_posted:
            posted[index] += amount
