"""Dispute and chargeback status mapping to Stripe, Mangopay and Hyperswitch (docs/ESCROW.md).

An escrow's dispute or chargeback is in one :class:`DisputePhase`; each PSP names it with its
own status. The tables map every phase to each PSP's status and every PSP status back to the
phase it means, so a round trip keeps what matters: whether it is over, and who won
(:attr:`DisputePhase.outcome`). Stripe has 8 statuses, Mangopay 6, Hyperswitch 7 (+ 3 stages).
"""

from __future__ import annotations

from enum import StrEnum


class DisputePhase(StrEnum):
    OPEN = "open"
    """Disputed, awaiting the arbiter (or an inquiry that may become one)."""
    ESCALATED = "escalated"
    """Escalated by an inspection lapse; no party has argued yet."""
    WON = "won"
    """Decided for the seller (buyer share 0), or a chargeback won."""
    LOST = "lost"
    """Decided for the buyer (all back), or a chargeback lost."""
    SPLIT = "split"
    """Decided by a split."""
    CHARGEBACK = "chargeback"
    """Funds withdrawn by the buyer's bank, not yet won or lost."""
    CANCELLED = "cancelled"
    """Withdrawn before a decision (a PSP-side status; clearlane's arbiter always decides)."""

    @property
    def outcome(self) -> str | None:
        """``seller`` / ``buyer`` / ``split`` once over, None while open."""
        return _OUTCOME.get(self)


_OUTCOME = {
    DisputePhase.WON: "seller",
    DisputePhase.LOST: "buyer",
    DisputePhase.SPLIT: "split",
    DisputePhase.CANCELLED: "seller",
}

STRIPE: dict[DisputePhase, str] = {
    DisputePhase.OPEN: "needs_response",
    DisputePhase.ESCALATED: "warning_needs_response",
    DisputePhase.WON: "won",
    DisputePhase.LOST: "lost",
    DisputePhase.SPLIT: "lost",
    DisputePhase.CHARGEBACK: "under_review",
    DisputePhase.CANCELLED: "warning_closed",
}
FROM_STRIPE: dict[str, DisputePhase] = {
    "warning_needs_response": DisputePhase.ESCALATED,
    "warning_under_review": DisputePhase.ESCALATED,
    "warning_closed": DisputePhase.CANCELLED,
    "needs_response": DisputePhase.OPEN,
    "under_review": DisputePhase.CHARGEBACK,
    "won": DisputePhase.WON,
    "lost": DisputePhase.LOST,
    "prevented": DisputePhase.CANCELLED,
}

# Mangopay: the result (won / lost) is ResultCode beside Status CLOSED.
MANGOPAY: dict[DisputePhase, tuple[str, str | None]] = {
    DisputePhase.OPEN: ("PENDING_CLIENT_ACTION", None),
    DisputePhase.ESCALATED: ("CREATED", None),
    DisputePhase.WON: ("CLOSED", "WON"),
    DisputePhase.LOST: ("CLOSED", "LOST"),
    DisputePhase.SPLIT: ("CLOSED", "LOST"),
    DisputePhase.CHARGEBACK: ("PENDING_BANK_ACTION", None),
    DisputePhase.CANCELLED: ("CLOSED", "WON"),
}
FROM_MANGOPAY: dict[str, DisputePhase] = {
    "CREATED": DisputePhase.ESCALATED,
    "PENDING_CLIENT_ACTION": DisputePhase.OPEN,
    "SUBMITTED": DisputePhase.CHARGEBACK,
    "PENDING_BANK_ACTION": DisputePhase.CHARGEBACK,
    "REOPENED_PENDING_CLIENT_ACTION": DisputePhase.OPEN,
    "CLOSED": DisputePhase.LOST,  # read with the result code: see from_mangopay
}

HYPERSWITCH: dict[DisputePhase, tuple[str, str]] = {
    DisputePhase.OPEN: ("dispute_opened", "dispute"),
    DisputePhase.ESCALATED: ("dispute_opened", "pre_dispute"),
    DisputePhase.WON: ("dispute_won", "dispute"),
    DisputePhase.LOST: ("dispute_lost", "dispute"),
    DisputePhase.SPLIT: ("dispute_accepted", "dispute"),
    DisputePhase.CHARGEBACK: ("dispute_challenged", "dispute"),
    DisputePhase.CANCELLED: ("dispute_cancelled", "dispute"),
}
FROM_HYPERSWITCH: dict[str, DisputePhase] = {
    "dispute_opened": DisputePhase.OPEN,
    "dispute_expired": DisputePhase.LOST,
    "dispute_accepted": DisputePhase.LOST,
    "dispute_cancelled": DisputePhase.CANCELLED,
    "dispute_challenged": DisputePhase.CHARGEBACK,
    "dispute_won": DisputePhase.WON,
    "dispute_lost": DisputePhase.LOST,
}
HYPERSWITCH_STAGES = ("pre_dispute", "dispute", "pre_arbitration")


def from_mangopay(status: str, result_code: str | None) -> DisputePhase:
    """The phase a Mangopay dispute is in (``CLOSED`` is read with its result code)."""
    if status == "CLOSED":
        return DisputePhase.WON if result_code == "WON" else DisputePhase.LOST
    return FROM_MANGOPAY[status]


def from_hyperswitch(status: str, stage: str) -> DisputePhase:
    if status == "dispute_opened" and stage == "pre_dispute":
        return DisputePhase.ESCALATED
    return FROM_HYPERSWITCH[status]
