"""Settlement lanes and the lifecycle states of a trade.

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
        return self.name.lower()
