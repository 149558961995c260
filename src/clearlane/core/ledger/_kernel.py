"""Compiled checks 7–12 and the balance update of a wide entry (numba), and the release of a
wide hold.

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

# PostResult codes the kernel can answer (entries.PostResult; pinned by a test).
OK = 0
ZERO_AMOUNT_LEG = 7
AMOUNT_OUT_OF_RANGE = 8
UNKNOWN_ACCOUNT = 9
UNBALANCED = 10
BALANCE_OUT_OF_RANGE = 11
FLOOR_EXCEEDED = 12


@nb.njit(cache=True)
def post_wide(
    accounts: Any,
    amounts: Any,
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
) -> tuple[int, Any]:
    """(code, touched accounts ascending); the entry is applied iff code is OK."""
    n = accounts.shape[0]
    none = np.empty(0, dtype=np.int64)
    for i in range(n):
        if amounts[i] == 0:
            return ZERO_AMOUNT_LEG, none
    for i in range(n):
        if amounts[i] < -max_amount or amounts[i] > max_amount:
            return AMOUNT_OUT_OF_RANGE, none
    gross = 0
    for i in range(n):
        gross += amounts[i] if amounts[i] > 0 else -amounts[i]
        if gross > max_amount:  # each leg is within range, so the sum never wraps
            return AMOUNT_OUT_OF_RANGE, none
    for i in range(n):
        if accounts[i] < 0 or accounts[i] >= n_accounts:
            return UNKNOWN_ACCOUNT, none
    per_asset = np.zeros(n_assets, dtype=np.int64)
    for i in range(n):
        per_asset[asset_of[accounts[i]]] += amounts[i]
    for a in range(n_assets):
        if per_asset[a] != 0:
            return UNBALANCED, none
    order = np.argsort(accounts, kind="mergesort")
    touched = np.empty(n, dtype=np.int64)
    low_delta = np.zeros(n, dtype=np.int64)
    high_delta = np.zeros(n, dtype=np.int64)
    m = -1
    for j in range(n):
        i = order[j]
        if m < 0 or touched[m] != accounts[i]:
            m += 1
            touched[m] = accounts[i]
        amount = amounts[i]
        if pending:
            if amount < 0:
                low_delta[m] += amount
            else:
                high_delta[m] += amount
        else:
            low_delta[m] += amount
    m += 1
    if not pending:
        high_delta = low_delta
    for s in range(m):
        index = touched[s]
        high_after = posted[index] + pending_credits[index] + high_delta[s]
        low_after = posted[index] - pending_debits[index] + low_delta[s]
        if high_after > max_balance or low_after < -max_balance:
            return BALANCE_OUT_OF_RANGE, none
    for s in range(m):
        index = touched[s]
        low_after = posted[index] - pending_debits[index] + low_delta[s]
        if has_floor[index] and low_delta[s] < 0 and low_after < floor_minor[index]:
            return FLOOR_EXCEEDED, none
    for s in range(m):
        index = touched[s]
        if pending:
            pending_debits[index] -= low_delta[s]
            pending_credits[index] += high_delta[s]
        else:
            posted[index] += low_delta[s]
    return OK, touched[:m].copy()


@nb.njit(cache=True)
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
