"""Ledger adjustments (issue 13, docs/RECONCILIATION.md §8): an operator's adjusting journal
entry — validated here, logged and applied through the runner (the engine judges it:
clearlane.core.engine.adjust), answered with a receipt.

Receipts: ``accepted`` (posted as ledger entry ``adjust:<adjustment_id>``), ``duplicate`` (the
id was posted before with the same content: nothing changed), or ``rejected`` with the reject
(521 unbalanced, 104/112/106/107 a bad leg, 502 the ledger refused, 116 the id was used for
other content). A rejected adjustment is logged (the log says it was refused) and changes
nothing else.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError

from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.events import Step
from clearlane.core.model.inputs import LEDGER_ADJUSTMENT_KIND, LedgerAdjustment
from clearlane.node.intake.rows import RowError

_PYDANTIC_CODES = {
    "missing": RejectCode.MISSING_FIELD,
    "string_pattern_mismatch": RejectCode.BAD_ID,
    "extra_forbidden": RejectCode.UNKNOWN_EVENT_TYPE,
}


def parse(obj: Any) -> tuple[LedgerAdjustment | None, RowError | None]:
    """The record of a request body, or the first thing wrong with it (field named)."""
    if not isinstance(obj, dict):
        code = RejectCode.BAD_JSON
        return None, RowError(0, int(code), code.slug, "-", "a ledger adjustment is a JSON object")
    try:
        return LedgerAdjustment.model_validate(obj), None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "-"
        code = _PYDANTIC_CODES.get(first["type"], RejectCode.BAD_ID)
        if field.endswith(".amount"):
            code = RejectCode.BAD_DECIMAL
        adjustment_id = obj.get("adjustment_id")
        input_id = adjustment_id if isinstance(adjustment_id, str) else None
        return None, RowError(0, int(code), code.slug, field, str(first["msg"]), input_id)


class AdjustNode(Protocol):
    def submit(self, kind: str, payload: Any, at_ms: int) -> Step | None: ...


def submit(node: AdjustNode, record: LedgerAdjustment, at_ms: int) -> tuple[dict[str, Any], Reject | None]:
    """Log and apply one adjustment; its receipt and the reject that refused it, if any. Call
    with the runtime's lock held (the service)."""
    step = node.submit(LEDGER_ADJUSTMENT_KIND, record.model_dump(mode="json", exclude_none=True), at_ms)
    if step is None:  # pragma: no cover - no source id is given, so it is always logged
        raise RuntimeError("a ledger adjustment was not logged")
    done = step.adjustments()
    rejects = [*step.conflicts, *step.rejects()]
    reject = rejects[0] if rejects else None
    status = "accepted" if done else "rejected" if reject is not None else "duplicate"
    receipt = {
        "id": record.adjustment_id,
        "kind": LEDGER_ADJUSTMENT_KIND,
        "status": status,
        "adjustment": done[0].to_dict() if done else None,
        "reject": None if reject is None else reject.to_dict(),
        "log_seq": step.seq,
    }
    return receipt, reject
