"""The engine's ledger adjustment stage (issue 13, docs/RECONCILIATION.md §8): an operator's
adjusting journal entry, applied like any other log entry.

An adjustment is a list of signed legs, each on one account an adjustment may touch:

- a participant's ``available`` account (a participant's cash, e.g. a fee refunded or a
  mis-booked amount moved back);
- the house ``fees`` account (income given back or taken);
- the house ``external`` account (the money outside the system: a bank line the books missed).

Collateral, in-flight and settlement accounts are never adjusted by hand: the engine's own
lifecycle owns them, and an edit there would desynchronise it from its journal.

The adjustment:

- is a no-op when its ``adjustment_id`` was posted before with the same content, and an
  ``id_conflict`` (116) with other content;
- is refused, changing nothing (not even remembering its id, so a corrected retry may reuse it),
  with ``unknown_participant`` (104), ``unknown_asset`` (112), ``bad_decimal`` (106) /
  ``precision_exceeded`` (107) naming the leg, ``adjustment_unbalanced`` (521) when the legs do
  not sum to zero in every asset or a leg is zero, and ``ledger_refused`` (502) when the ledger
  refuses the entry (an amount or a balance out of range, a floor);
- else posts one entry ``adjust:<adjustment_id>`` of kind ``adjustment`` (ref: the case id),
  so trial balance and close include it, and emits
  :class:`~clearlane.core.model.events.LedgerAdjusted`, which the effects head folds.

Pure: everything comes from the log entry and the engine's state.
"""

from __future__ import annotations

import hashlib

import numpy as np

from clearlane.core.engine import limits, outcomes
from clearlane.core.engine.state import EngineError, EngineState
from clearlane.core.engine.step import StepBuilder
from clearlane.core.ledger import JournalEntry, PostResult
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import LedgerAdjusted
from clearlane.core.model.inputs import AdjustmentLeg, LedgerAdjustment
from clearlane.core.money import DecimalError, parse_signed_decimal

ENTRY_KIND = "adjustment"
ID_KIND = "adjustment"
_LEDGER_REFUSALS = (
    PostResult.AMOUNT_OUT_OF_RANGE,
    PostResult.BALANCE_OUT_OF_RANGE,
    PostResult.FLOOR_EXCEEDED,
)


def entry_id(adjustment_id: str) -> str:
    """The ledger entry of an adjustment (one per adjustment id)."""
    return f"adjust:{adjustment_id}"


def _digest(payload: LedgerAdjustment) -> int:
    """The content digest kept beside the adjustment id (an id reused for other content: 116)."""
    raw = hashlib.sha256(payload.model_dump_json().encode()).digest()
    return int.from_bytes(raw[:8], "big", signed=True)


class _Refused(Exception):
    def __init__(self, code: RejectCode, field: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.field, self.reason = code, field, reason


def _leg(engine: EngineState, i: int, leg: AdjustmentLeg) -> tuple[int, int, int, str]:
    """(ledger account, asset index, signed minor amount, account label) of leg ``i``."""
    a = engine.asset_lookup.get(str(leg.asset), -1)
    if a < 0:
        raise _Refused(RejectCode.UNKNOWN_ASSET, f"legs.{i}.asset", "not a configured asset")
    if leg.participant is not None:
        p = engine.participant_lookup.get(str(leg.participant), -1)
        if p < 0:
            raise _Refused(
                RejectCode.UNKNOWN_PARTICIPANT, f"legs.{i}.participant", "not a configured participant"
            )
        account, label = int(engine.acct_available[p, a]), f"participant:{leg.participant}"
    elif leg.house == "fees":
        account, label = int(engine.acct_available[engine.house, a]), "house:fees"
    else:
        account, label = int(engine.acct_external[a]), "house:external"
    try:
        amount = parse_signed_decimal(str(leg.amount), int(engine.scales[a]))
    except DecimalError as exc:
        code = RejectCode.PRECISION_EXCEEDED if exc.reason == "precision" else RejectCode.BAD_DECIMAL
        raise _Refused(code, f"legs.{i}.amount", str(exc)) from None
    if amount == 0:
        raise _Refused(RejectCode.ADJUSTMENT_UNBALANCED, f"legs.{i}.amount", "a leg of zero moves nothing")
    if abs(amount) > limits.TRANSFER_MAX_MINOR:
        reason = f"amount exceeds the ledger's per-entry limit ({limits.TRANSFER_MAX_MINOR} minor units)"
        raise _Refused(RejectCode.AMOUNT_OVERFLOW, f"legs.{i}.amount", reason)
    return account, a, amount, label


def _entry(engine: EngineState, payload: LedgerAdjustment, at_ms: int) -> tuple[JournalEntry, LedgerAdjusted]:
    """The balanced entry of an adjustment and its event (``_Refused`` says what is wrong)."""
    legs = [_leg(engine, i, leg) for i, leg in enumerate(payload.legs)]
    sums: dict[int, int] = {}
    for _, a, amount, _ in legs:
        sums[a] = sums.get(a, 0) + amount
    for a, total in sorted(sums.items()):  # checked here, not left to the ledger: a stable code
        if total != 0:
            code = engine.config.assets[a].code
            raise _Refused(
                RejectCode.ADJUSTMENT_UNBALANCED,
                "legs",
                f"the legs in {code} sum to {total} minor units, not 0",
            )
    eid = entry_id(str(payload.adjustment_id))
    accounts = np.array([acct for acct, _, _, _ in legs], dtype=np.int64)
    amounts = np.array([amount for _, _, amount, _ in legs], dtype=np.int64)
    entry = JournalEntry(eid, ENTRY_KIND, at_ms, accounts, amounts, False, None, str(payload.case_id))
    shown = tuple((label, engine.config.assets[a].code, amount) for _, a, amount, label in legs)
    event = LedgerAdjusted(
        str(payload.adjustment_id),
        str(payload.case_id),
        str(payload.operator),
        payload.reason,
        eid,
        shown,
        at_ms,
    )
    return entry, event


def apply_adjustment(engine: EngineState, payload: LedgerAdjustment, at_ms: int, out: StepBuilder) -> None:
    """Apply one ledger adjustment (see the module docstring)."""
    adjustment_id = str(payload.adjustment_id)
    digest = _digest(payload)
    if model_ids.event_key(ID_KIND, adjustment_id) in engine.seen_event_ids:
        outcomes.event_id(engine, ID_KIND, adjustment_id, out, digest)  # duplicate, or 116 conflict
        return
    try:
        entry, event = _entry(engine, payload, at_ms)
    except _Refused as refused:
        outcomes.reject(engine, out, refused.code, refused.field, refused.reason, adjustment_id)
        return
    result = engine.ledger.post(entry)
    if result in _LEDGER_REFUSALS:
        reason = f"the ledger refused the adjustment entry ({result.name})"
        outcomes.reject(engine, out, RejectCode.LEDGER_REFUSED, "legs", reason, adjustment_id)
        outcomes.refused(engine, out, f"ledger adjustment {adjustment_id}", result, at_ms)
        return
    if result is not PostResult.OK:
        raise EngineError(f"ledger refused {entry.entry_id}: {result.name}")
    outcomes.event_id(engine, ID_KIND, adjustment_id, out, digest)
    out.emit(event)
