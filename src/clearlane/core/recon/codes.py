"""Stable codes of reconciliation: per-record outcomes and break (reason) codes.

Numbers are never reused or renumbered; clients may switch on either the number or the name.
``1xx`` matched reasons, ``2xx`` record-level breaks, ``3xx`` statement-level breaks, ``4xx``
exchange batch-report breaks, ``5xx`` settlement-layer breaks, ``6xx`` run-level conditions.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Outcome(StrEnum):
    """The one outcome every record ends a run with."""

    MATCHED = "matched"
    PARTIALLY_MATCHED = "partially_matched"
    UNMATCHED = "unmatched"
    DUPLICATE = "duplicate"


class Reason(IntEnum):
    """Why a record has its outcome (the break code when it is not matched)."""

    MATCHED_REFERENCE = 101
    MATCHED_AMOUNT_DATE = 102
    MATCHED_SPLIT = 103
    MATCHED_WITHIN_TOLERANCE = 104
    MATCHED_FUZZY_REFERENCE = 105

    AMOUNT_MISMATCH = 201
    UNMATCHED_EXTERNAL = 202
    UNMATCHED_INTERNAL = 203
    DUPLICATE_RECORD = 204
    AMBIGUOUS_CANDIDATES = 205

    DUPLICATE_STATEMENT = 301
    STATEMENT_UNBALANCED = 302

    BATCH_MISSING_TRADE = 401
    BATCH_EXTRA_TRADE = 402
    BATCH_AMOUNT_MISMATCH = 403
    BATCH_LATE = 404
    BATCH_COUNT_MISMATCH = 405
    BATCH_DIGEST_MISMATCH = 406
    BATCH_UNKNOWN = 407
    BATCH_NOT_REPORTED = 408

    NET_INSTRUCTION_MISMATCH = 501  # reserved: the three-way tie per trade
    ANCHOR_MISSING = 502
    BATCH_UNWOUND = 503
    ANCHOR_ROOT_MISMATCH = 504
    L1_TX_MISSING = 505
    CHAIN_TX_UNKNOWN = 506

    SOURCE_INCOMPLETE = 601
    FLOOD_GUARD = 602

    @property
    def is_break(self) -> bool:
        return self.value >= 200


__all__ = ["Outcome", "Reason"]
