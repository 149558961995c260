"""Settlement lanes and one enum per lifecycle: a trade's (:class:`TradeState`) and an L2
micro-batch's (:class:`BatchState`). Each member has one stable integer code (its value: the
read model's arrays and sort order) and one label (its lower-case name: stored in the database,
written to the hash chain, shown by the API). Code and label never change.

A trade moves ``received → routed → batched → cleared → anchored → final`` on Layer-2 (a
micro-batch of its pool is netted, committed and anchored) or ``received → routed → submitted →
anchored → final`` on Layer-1 (settled gross, one base-layer transaction per trade). It may end
``rejected`` (refused at the edge or by policy), ``failed`` (L1 transaction could not settle) or
``unwound`` (its L2 batch missed the anchor deadline and its obligations moved to L1 gross).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Lane(StrEnum):
    L1 = "L1"
    L2 = "L2"


class TradeState(IntEnum):
    """Ordered so that a later state has a larger value (used for max() over events)."""

    RECEIVED = 0
    ROUTED = 1
    BATCHED = 2
    SUBMITTED = 3
    CLEARED = 4
    ANCHORED = 5
    FINAL = 6
    REJECTED = 10
    FAILED = 11
    UNWOUND = 12

    @property
    def label(self) -> str:
        return _TRADE_LABELS[self]


# Each member's label, looked up: the enum's ``name`` is a descriptor call (~0.4 us with the
# lower-casing), asked ~400,000 times a demo day by the engine and as many by the writer (issue 18).
_TRADE_LABELS = {member: member.name.lower() for member in TradeState}


class BatchState(IntEnum):
    """An L2 micro-batch: ``open`` (collecting flows) → ``cleared`` (netted, committed, its
    anchor submitted) → ``anchored`` (the anchor is in a block; a reorg sends it back to
    ``cleared``) → ``final``, or ``unwound`` (the anchor deadline passed: its flows settle
    gross on L1). The values are the read model's codes (0 is also "no such batch yet")."""

    OPEN = 0
    CLEARED = 1
    ANCHORED = 2
    FINAL = 3
    UNWOUND = 4

    @property
    def label(self) -> str:
        return _BATCH_LABELS[self]

    @classmethod
    def of_label(cls, label: str) -> BatchState:
        """The state a label names; ``ValueError`` for anything else."""
        member = _BATCH_BY_LABEL.get(label)
        if member is None:
            raise ValueError(f"not a batch state: {label!r}")
        return member

    @property
    def terminal(self) -> bool:
        """Nothing more happens to a batch in this state (its API answer may be cached)."""
        return self in (BatchState.FINAL, BatchState.UNWOUND)

    @property
    def trade_state(self) -> TradeState:
        """The state of the trades in a batch in this state (an open batch's are ``batched``)."""
        return _TRADE_STATE_OF_BATCH[self]


_BATCH_LABELS = {member: member.name.lower() for member in BatchState}  # as _TRADE_LABELS

BATCH_STATE_LABELS = tuple(s.label for s in BatchState)
_BATCH_BY_LABEL = {s.label: s for s in BatchState}
_TRADE_STATE_OF_BATCH = {
    BatchState.OPEN: TradeState.BATCHED,
    BatchState.CLEARED: TradeState.CLEARED,
    BatchState.ANCHORED: TradeState.ANCHORED,
    BatchState.FINAL: TradeState.FINAL,
    BatchState.UNWOUND: TradeState.UNWOUND,
}


# ---------------------------------------------------------------------- escrow (issue 12)
# An escrow's lifecycle and its vocabularies; the rules live in clearlane.core.escrow.


class EscrowState(IntEnum):
    """One escrow: ``draft`` (terms proposed) → ``agreed`` (buyer and seller agreed; the fund
    deadline runs) → ``funded`` (the buyer's funds are held) → ``inspection`` (every condition
    but the inspection is met; the inspection deadline runs) → ``releasable`` (every condition
    met) → ``released`` (nothing left in escrow, something paid out), or ``refunded`` /
    ``cancelled``. ``disputed`` blocks release and refund until the arbiter decides;
    ``chargeback`` follows ``released`` until it is won (back to ``released``) or lost
    (``closed``). Values are stable codes (docs/ESCROW.md)."""

    DRAFT = 0
    AGREED = 1
    FUNDED = 2
    INSPECTION = 3
    RELEASABLE = 4
    DISPUTED = 5
    RELEASED = 6
    REFUNDED = 7
    CANCELLED = 8
    CHARGEBACK = 9
    CLOSED = 10

    @property
    def label(self) -> str:
        return _ESCROW_LABELS[self]

    @property
    def terminal(self) -> bool:
        """Nothing more can happen (``released`` is not: a chargeback may still come)."""
        return self in (EscrowState.REFUNDED, EscrowState.CANCELLED, EscrowState.CLOSED)

    @property
    def holds_funds(self) -> bool:
        """States in which money may remain in escrow."""
        return self in _ESCROW_HOLDING


_ESCROW_LABELS = {member: member.name.lower() for member in EscrowState}  # as _TRADE_LABELS

_ESCROW_HOLDING = frozenset(
    {EscrowState.FUNDED, EscrowState.INSPECTION, EscrowState.RELEASABLE, EscrowState.DISPUTED}
)


class EscrowRole(StrEnum):
    """Who may act on an escrow; an actor has exactly one role per escrow."""

    BUYER = "buyer"
    SELLER = "seller"
    PLATFORM = "platform"
    ARBITER = "arbiter"


class ConditionKind(StrEnum):
    """What must happen before release (Escrow.com's ship / receive / accept, generalised)."""

    DELIVERY_CONFIRMED = "delivery_confirmed"
    TITLE_TRANSFERRED = "title_transferred"
    INSPECTION_PASSED = "inspection_passed"
    CUSTOM = "custom"


class LapseAction(StrEnum):
    """What the engine clock does when an inspection period lapses with no decision."""

    ACCEPT = "accept"
    REFUND = "refund"
    ESCALATE = "escalate"


class MovementKind(StrEnum):
    """A money movement of an escrow (each one balanced ledger entry)."""

    FUNDED = "funded"
    RELEASED = "released"
    REFUNDED = "refunded"
    SETTLED = "settled"
    CHARGED_BACK = "charged_back"
    REINSTATED = "reinstated"
    RESERVE_RELEASED = "reserve_released"
