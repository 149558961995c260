"""Who may do what, when, and the money arithmetic: small tables and pure functions.

The tables are the whole policy of the state machine (docs/ESCROW.md prints them). Rounding is
always toward the party that did not ask: the fee and the reserve round down (the payees keep
the odd minor unit), payee shares round down and the first payee (the seller) takes the rest,
and the arbiter's buyer share rounds down (the seller side takes the odd unit).
"""

from __future__ import annotations

from dataclasses import dataclass

from clearlane.core.model.states import EscrowRole, EscrowState

BPS = 10_000

_B, _S, _P, _A = EscrowRole.BUYER, EscrowRole.SELLER, EscrowRole.PLATFORM, EscrowRole.ARBITER
_St = EscrowState

ACTION_ROLES: dict[str, frozenset[EscrowRole]] = {
    "open": frozenset({_B, _S, _P}),
    "agree": frozenset({_B, _S}),
    "fund": frozenset({_B}),
    # "satisfy": the condition names its role (condition_role below)
    "reject": frozenset({_B}),
    "release": frozenset({_B, _P}),
    "approve": frozenset({_P}),
    "refund": frozenset({_S, _P}),
    "cancel": frozenset({_B, _S, _P}),
    "dispute": frozenset({_B, _S}),
    "decide": frozenset({_A}),
    "settle": frozenset({_P}),
    "chargeback": frozenset({_P}),
    "chargeback_resolve": frozenset({_P}),
}
"""The roles allowed to take each action (``satisfy``: see :func:`condition_roles`)."""

_HOLDING = frozenset({_St.FUNDED, _St.INSPECTION, _St.RELEASABLE})

ACTION_STATES: dict[str, frozenset[EscrowState]] = {
    "agree": frozenset({_St.DRAFT}),
    "fund": frozenset({_St.AGREED}),
    "satisfy": frozenset({_St.FUNDED, _St.INSPECTION}),
    "reject": frozenset({_St.INSPECTION}),
    "release": frozenset({_St.RELEASABLE}),
    "approve": _HOLDING | {_St.DISPUTED},
    "refund": _HOLDING,
    "cancel": frozenset({_St.DRAFT, _St.AGREED, _St.FUNDED}),
    "dispute": _HOLDING,
    "decide": frozenset({_St.DISPUTED}),
    "settle": _HOLDING | {_St.DISPUTED, _St.RELEASED, _St.CHARGEBACK, _St.CLOSED},
    "chargeback": frozenset({_St.RELEASED}),
    "chargeback_resolve": frozenset({_St.CHARGEBACK}),
}
"""The states each action is allowed in (``open`` creates the escrow)."""

BLOCKED_BY_DISPUTE = frozenset({"release", "refund", "cancel", "satisfy", "reject"})
"""Refused with ``escrow_disputed`` (not ``escrow_wrong_state``) while a dispute is open."""

FUNDED_CANCEL_ROLES = frozenset({_P})
"""Cancelling a funded escrow refunds the buyer in full: only the platform may."""


def condition_roles(role: EscrowRole, delegate_accept: bool) -> frozenset[EscrowRole]:
    """Who may satisfy a condition whose rule names ``role``: that role only, or also the
    platform for the buyer's conditions when the policy delegates (Escrow.com's rule that a
    partner cannot accept for the buyer, made configurable)."""
    if role is EscrowRole.BUYER and delegate_accept:
        return frozenset({role, EscrowRole.PLATFORM})
    return frozenset({role})


@dataclass(frozen=True, slots=True)
class Split:
    """How a released amount is divided: all parts sum to the amount."""

    fee: int
    reserve: int
    payees: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return self.fee + self.reserve + sum(amount for _, amount in self.payees)


def release_split(amount: int, fee_bps: int, reserve_bps: int, payees: tuple[tuple[str, int], ...]) -> Split:
    """The fee (down), then the reserve of what is left (down), then the payees' shares of the
    rest by basis points (down, the first payee takes the remainder)."""
    fee = amount * fee_bps // BPS
    reserve = (amount - fee) * reserve_bps // BPS
    rest = amount - fee - reserve
    shares = [rest * bps // BPS for _, bps in payees]
    shares[0] += rest - sum(shares)
    return Split(
        fee, reserve, tuple((party, share) for (party, _), share in zip(payees, shares, strict=True))
    )


def arbiter_split(remaining: int, buyer_share_bps: int) -> tuple[int, int]:
    """``(back to the buyer, released)`` of what remains; the buyer's part rounds down."""
    buyer = remaining * buyer_share_bps // BPS
    return buyer, remaining - buyer


@dataclass(frozen=True, slots=True)
class Clawback:
    """Where a chargeback's money comes from, in order (sums to the chargeback)."""

    payable: int
    reserve: int
    loss: int


def clawback(amount: int, payable_left: int, reserve_balance: int, reserve_overdraft: int) -> Clawback:
    """Seller payable (this escrow's unsettled part) first, then the seller's reserve down to
    ``-reserve_overdraft`` (so a reserve may go negative, and is reported), then platform loss."""
    from_payable = min(amount, max(payable_left, 0))
    room = max(reserve_balance + reserve_overdraft, 0)
    from_reserve = min(amount - from_payable, room)
    return Clawback(from_payable, from_reserve, amount - from_payable - from_reserve)
