"""Outcomes every stage records the same way: a reject (counted and put in the step), a
ledger refusal turned into data (an alert, never an exception: docs/LIMITS.md), and an id seen
before (a no-op, or an id conflict, code 116, when its content differs).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.engine.state import EngineError, EngineState
from clearlane.core.engine.step import StepBuilder
from clearlane.core.ledger import JournalEntry, PostResult
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.events import Alert


def reject(
    engine: EngineState, out: StepBuilder, code: RejectCode, field_name: str, reason: str, event_id: str
) -> None:
    """Count a reject of a small input (its id: ``event_id``) and put it in the step."""
    engine.stats.bump(engine.stats.rejects_by_code, code.slug)
    out.reject(Reject(code, field_name, reason, None, event_id))


def refused(engine: EngineState, out: StepBuilder, what: str, result: PostResult, at_ms: int) -> None:
    """Count a ledger refusal the engine turned into data and raise an alert for it."""
    engine.stats.ledger_refused += 1
    message = f"{RejectCode.LEDGER_REFUSED.slug} ({int(RejectCode.LEDGER_REFUSED)}): {what}: {result.name}"
    engine.stats.alerts.append(message)
    out.emit(Alert(message, at_ms))


def try_post(engine: EngineState, entry: JournalEntry) -> PostResult | None:
    """Post an entry whose amounts come from input: None when posted, else the ledger's
    refusal. Only range refusals are input's doing; anything else is still a bug."""
    return _input_refusal(entry, engine.ledger.post(entry))


def try_post_many(engine: EngineState, entries: list[JournalEntry]) -> list[PostResult | None]:
    """:func:`try_post` for each entry, in order, with one ledger call (``Ledger.post_many``)."""
    results = engine.ledger.post_many(entries)
    return [_input_refusal(entry, result) for entry, result in zip(entries, results, strict=True)]


def _input_refusal(entry: JournalEntry, result: PostResult) -> PostResult | None:
    """None for a posted entry, the ledger's refusal for a range refusal (input's doing); any
    other refusal is a bug and raises."""
    if result in (PostResult.OK, PostResult.DUPLICATE):
        return None
    if result not in (PostResult.AMOUNT_OUT_OF_RANGE, PostResult.BALANCE_OUT_OF_RANGE):
        raise EngineError(f"ledger refused {entry.entry_id}: {result.name}")
    return result


def post_or_refuse(engine: EngineState, entry: JournalEntry, out: StepBuilder, event_id: str) -> bool:
    """A deposit's or withdrawal's entry: posted, or refused as a reject plus an alert."""
    result = try_post(engine, entry)
    if result is None:
        return True
    record_refusal(engine, entry, result, out, event_id)
    return False


def record_refusal(
    engine: EngineState, entry: JournalEntry, result: PostResult, out: StepBuilder, event_id: str
) -> None:
    """A small event's entry the ledger refused (``result``): a reject under its id and an alert."""
    reason = f"the ledger refused the {entry.kind} entry ({result.name}): a balance or amount out of range"
    reject(engine, out, RejectCode.LEDGER_REFUSED, "amount", reason, event_id)
    refused(engine, out, f"{entry.kind} {event_id}", result, entry.at_ms)


def event_id(engine: EngineState, kind: str, event_id: str, out: StepBuilder, digest: int = 0) -> bool:
    """Remember a small event's id with its content digest; ``False`` for a known id (a
    no-op; an id conflict, code 116, when ``digest`` differs from the accepted one)."""
    key = model_ids.event_key(kind, event_id)
    known = engine.seen_event_ids.get(key)
    if known is not None:
        out.duplicates += 1
        engine.stats.duplicates += 1
        if known != digest:
            field_name = f"{kind}_id"
            reason = f"{field_name} {event_id!r} was already applied with different content"
            out.conflicts.append(Reject(RejectCode.ID_CONFLICT, field_name, reason, None, event_id))
            engine.stats.conflicts += 1
        return False
    engine.seen_event_ids[key] = digest
    return True


def dedup_flows(
    engine: EngineState,
    ids: pa.Array,
    candidates: npt.NDArray[np.bool_],
    namespace: str,
    digests: npt.NDArray[np.uint64],
    out: StepBuilder,
) -> npt.NDArray[np.bool_]:
    """Mark ids seen before (or earlier in this chunk) as duplicates; remember the rest.

    A duplicate is a no-op: same id, nothing applied twice. Only rows that passed validation
    consume their id, so a corrected resubmission of a rejected row is accepted. A duplicate
    whose content differs from the accepted row's (``digests``: engine/dedup.py) is an id
    conflict (code 116): still a no-op, and reported in the step's ``conflicts``.
    """
    dup, conflict = engine.seen_flow_ids.classify(namespace, ids, candidates, engine.applied_seq + 1, digests)
    if conflict.any():
        trades = namespace != model_ids.PAYMENT_NAMESPACE
        id_field = "trade_id" if trades else "payment_id"
        rows = np.flatnonzero(conflict).tolist()
        for row in rows:
            flow_id = str(ids[row].as_py())
            reason = f"{id_field} {flow_id!r} was already applied with different content"
            where = row if trades else None
            out.conflicts.append(Reject(RejectCode.ID_CONFLICT, id_field, reason, where, flow_id))
        engine.stats.conflicts += len(rows)
    return dup
