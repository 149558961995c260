"""Stable reject codes.

A rejected input is data, not an exception: it carries a :class:`RejectCode` (a stable number
and name that clients may switch on), the row or message it came from, the field at fault and a
human reason. Codes are never renumbered; new codes get new numbers. The precedence in which a
trade is checked (the first failure wins) is the order of the ``1xx`` codes below, then routing
and liquidity (``2xx``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class RejectCode(IntEnum):
    """Why an input was refused. ``1xx`` = validation at the edge, ``2xx`` = engine policy,
    ``3xx`` = file / message framing, ``4xx`` = collateral, ``5xx`` = settlement failure,
    ``7xx`` = escrow rules (``6xx`` are the HTTP API's service codes)."""

    MISSING_FIELD = 101
    BAD_ID = 102
    UNKNOWN_SYMBOL = 103
    UNKNOWN_PARTICIPANT = 104
    SELF_TRADE = 105
    BAD_DECIMAL = 106
    PRECISION_EXCEEDED = 107
    NON_POSITIVE = 108
    AMOUNT_OVERFLOW = 109
    BAD_TIMESTAMP = 110
    BAD_LANE_HINT = 111
    UNKNOWN_ASSET = 112
    UNKNOWN_EVENT_TYPE = 113
    BAD_SCHEMA_VERSION = 114
    PARTICIPANT_SUSPENDED = 115
    ID_CONFLICT = 116
    RESERVED_ID = 117
    """An id in a namespace the engine keeps for itself (payment ids ``escrow:…``: escrow payouts)."""

    LIQUIDITY_EXCEEDED = 201
    NO_ROUTE = 202
    NO_MARK = 203

    UNREADABLE_ROW = 301
    BAD_JSON = 302

    COLLATERAL_INSUFFICIENT = 401

    ANCHOR_DEADLINE_MISSED = 501
    LEDGER_REFUSED = 502
    """The ledger refused an entry the input produces (an amount or a balance outside its range,
    docs/LIMITS.md): a deposit or withdrawal is refused, an accepted flow's settlement failed."""
    # A manual settlement (docs/MANUAL_SETTLEMENT.md, issue 17) refused by the engine.
    MANUAL_NO_OPEN_OBLIGATION = 511
    """No L1 obligation with this id is waiting to settle (unknown, on L2, or final already)."""
    MANUAL_ON_CHAIN = 512
    """The obligation's base-layer transaction is in a block: it settles on chain."""
    # A ledger adjustment (docs/RECONCILIATION.md §8, issue 13) refused by the engine.
    ADJUSTMENT_UNBALANCED = 521
    """The adjustment's legs do not sum to zero in every asset (or a leg is zero)."""

    # Escrow actions refused by the escrow rules (clearlane.core.escrow), issue 12. 7xx: 6xx
    # are the HTTP service codes (adapters/http/problems.py ServiceCode).
    ESCROW_NOT_FOUND = 701
    ESCROW_EXISTS = 702
    ESCROW_BAD_TERMS = 703
    ESCROW_WRONG_STATE = 704
    ESCROW_ROLE_NOT_ALLOWED = 705
    ESCROW_DISPUTED = 706
    ESCROW_AMOUNT_EXCEEDS_REMAINING = 707
    ESCROW_FUNDS_INSUFFICIENT = 708
    ESCROW_APPROVAL_REQUIRED = 709
    ESCROW_CONDITION_UNKNOWN = 710
    ESCROW_CONDITION_ALREADY_MET = 711

    @property
    def slug(self) -> str:
        """Lower-case name used in files and APIs (``precision_exceeded``)."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Reject:
    """One refused input: where it came from, which field, and why."""

    code: RejectCode
    field: str
    reason: str
    row: int | None = None
    input_id: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "row": self.row,
            "id": self.input_id,
            "code": int(self.code),
            "error": self.code.slug,
            "field": self.field,
            "reason": self.reason,
        }

    def __str__(self) -> str:
        where = f"row {self.row}: " if self.row is not None else ""
        who = f"{self.input_id}: " if self.input_id else ""
        return f"{where}{who}{self.code.slug} ({int(self.code)}) in {self.field!r}: {self.reason}"
