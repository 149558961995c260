"""The ledger's range as one flow sees it: the most a single trade, payment, deposit or
withdrawal may move, so that every entry it can produce fits the ledger.

The ledger refuses an entry whose gross (sum of |legs|) exceeds
:data:`~clearlane.core.ledger.MAX_AMOUNT_MINOR` (2**62 - 1). The largest entry one flow can
produce on its own is its gross L1 settlement: each obligation (leg A, B, FEE1, FEE2 of
:mod:`clearlane.core.engine.flows`) is posted as four legs (payer → house L1 → house L1 → payee),
so its gross is ``4 × (quantity + quote amount + buyer fee + seller fee)`` in minor units; the
L2 hold of a one-flow batch is no larger (``2 × Σ|net| ≤ 4 × Σ legs``). Hence the rule, checked
at the edge (:mod:`clearlane.node.intake.validate`, payment/deposit models) and again by the
engine on every logged row (same functions, so the two cannot disagree):

    quantity_minor + quote_minor + fee_buyer + fee_seller  <=  FLOW_GROSS_MAX_MINOR  (= MAX // 4)

with the quote amount rounded half to even exactly as the engine books it, and each fee at the
participant's *undiscounted* tier rate (a pool discount only lowers it; L1 has none), also
rounded half to even. A deposit or withdrawal is one two-leg entry: ``amount <= MAX // 2``.

What no per-flow rule can foresee — many flows settling in one entry, a batch whose netted hold
sums past the range, a balance that accumulates past ``MAX_BALANCE_MINOR`` — the engine meets
as a ledger refusal and turns into data (docs/LIMITS.md): an L1 settlement is split into entries
that fit, a batch whose hold does not fit is settled gross on L1 instead, and whatever the
ledger still refuses becomes a ``ledger_refused`` (502) reject plus an alert. Nothing here
raises on input.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from clearlane.core.ledger import MAX_AMOUNT_MINOR
from clearlane.core.money import mul_div_half_even

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

SETTLEMENT_LEGS_PER_OBLIGATION = 4
FLOW_GROSS_MAX_MINOR = MAX_AMOUNT_MINOR // SETTLEMENT_LEGS_PER_OBLIGATION
"""Largest ``quantity + quote + fees`` (minor units, summed over assets) of one flow."""
TRANSFER_MAX_MINOR = MAX_AMOUNT_MINOR // 2
"""Largest amount of one deposit or withdrawal (a two-leg entry)."""
FEE_DENOMINATOR = 10**10  # fee rates are in hundredths of a basis point (1e6) x discount basis (1e4)
_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)


def quote_amount(qty: I64, price_mantissa: I64, exp10: I64) -> tuple[I64, Mask]:
    """qty x price_mantissa x 10**exp10, rounded half to even (exp10 may be negative); the
    second array marks rows whose result does not fit int64 (their value is 0)."""
    up = np.clip(exp10, 0, 18)
    down = np.clip(-exp10, 0, 18)
    scaled_price = price_mantissa * _POW10[up]
    overflow = (up > 0) & (price_mantissa.astype(np.float64) * _POW10[up].astype(np.float64) >= 2.0**62)
    value, too_big = mul_div_half_even(qty, np.where(overflow, 0, scaled_price), _POW10[down])
    failed = too_big | overflow
    value[failed] = 0
    return value, failed


def fee(amount: I64, cbps: I64, discount_bp: I64 | int = 0) -> I64:
    """``amount`` x rate (hundredths of a bp) x (1 - discount), rounded half to even."""
    den = np.full(len(amount), FEE_DENOMINATOR, dtype=np.int64)
    value, _ = mul_div_half_even(amount, cbps * (10_000 - np.asarray(discount_bp, dtype=np.int64)), den)
    return value


def flow_over_limit(qty: I64, quote: I64, fee_buyer: I64, fee_seller: I64) -> Mask:
    """Rows whose ``qty + quote + fees`` exceed :data:`FLOW_GROSS_MAX_MINOR` (all >= 0).

    Each part is compared first, so the sum is only formed where it cannot overflow int64
    (fees are at most 1 % of the quote amount: a tier above 100 bps is refused by the config).
    """
    limit = FLOW_GROSS_MAX_MINOR
    part_over = (qty > limit) | (quote > limit) | (fee_buyer > limit) | (fee_seller > limit)
    total = np.where(part_over, 0, qty) + np.where(part_over, 0, quote)
    total = np.where(total > limit, limit + 1, total + np.where(part_over, 0, fee_buyer + fee_seller))
    over: Mask = part_over | (total > limit)
    return over


def trade_over_limit(qty: I64, quote: I64, cbps_buyer: I64, cbps_seller: I64) -> Mask:
    """:func:`flow_over_limit` of trades at their undiscounted fees (an upper bound)."""
    return flow_over_limit(qty, quote, fee(quote, cbps_buyer), fee(quote, cbps_seller))


def payment_over_limit(amount: I64, cbps_payer: I64) -> Mask:
    """:func:`flow_over_limit` of payments (leg A + the payer's undiscounted fee)."""
    zero = np.zeros(len(amount), dtype=np.int64)
    return flow_over_limit(amount, zero, zero, fee(amount, cbps_payer))


def legs_fit(amounts: I64, limit: int = FLOW_GROSS_MAX_MINOR) -> bool:
    """Whether non-negative ``amounts`` sum to at most ``limit`` (exactly, never wrapping):
    a cheap bound first, the exact Python sum only when the bound cannot decide."""
    if len(amounts) == 0:
        return True
    if int(amounts.max()) * len(amounts) <= limit:
        return True
    total: int = sum(amounts.tolist())
    return total <= limit


def runs_that_fit(amounts: I64, limit: int = FLOW_GROSS_MAX_MINOR) -> list[tuple[int, int]]:
    """Split rows (each ``amounts[i] <= limit``) into consecutive ``(start, stop)`` runs whose
    sums stay within ``limit``, greedily in row order: one run when everything fits."""
    if legs_fit(amounts, limit):
        return [(0, len(amounts))]
    runs: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, amount in enumerate(amounts.tolist()):
        if i > start and total + amount > limit:
            runs.append((start, i))
            start, total = i, 0
        total += amount
    runs.append((start, len(amounts)))
    return runs
