"""Ledger adjustments (issue 13, docs/RECONCILIATION.md §8): an operator's adjusting journal
entry — validated here, logged and applied through the node (the engine judges it:
clearlane.core.engine.adjust), answered with a receipt.

Receipts: ``accepted`` (posted as ledger entry ``adjust:<adjustment_id>``), ``duplicate`` (the
id was posted before with the same content: nothing changed), or ``rejected`` with the reject
(521 unbalanced, 104/112/106/107 a bad leg, 502 the ledger refused, 116 the id was used for
other content). A rejected adjustment is logged (the log says it was refused) and changes
nothing else.
"""

from __future__ import annotations

from typing import Any, Protocol

from clearlane.core.model.codes import Reject
from clearlane.core.model.events import Step
from clearlane.core.model.inputs import LEDGER_ADJUSTMENT_KIND, LedgerAdjustment
from clearlane.node.intake.rows import RowError, parse_body
from clearlane.node.receipts import operator_receipt


def parse(obj: Any) -> tuple[LedgerAdjustment | None, RowError | None]:
    """The record of a request body, or the first thing wrong with it (field named)."""
    return parse_body(LedgerAdjustment, obj, "a ledger adjustment", "adjustment_id", ".amount")


class AdjustNode(Protocol):
    def submit(self, kind: str, payload: Any, at_ms: int) -> Step | None: ...


def submit(node: AdjustNode, record: LedgerAdjustment, at_ms: int) -> tuple[dict[str, Any], Reject | None]:
    """Log and apply one adjustment; its receipt and the reject that refused it, if any. Call
    with the runtime's lock held (the service)."""
    step = node.submit(LEDGER_ADJUSTMENT_KIND, record.model_dump(mode="json", exclude_none=True), at_ms)
    if step is None:  # pragma: no cover - no source id is given, so it is always logged
        raise RuntimeError("a ledger adjustment was not logged")
    return operator_receipt(
        step, LEDGER_ADJUSTMENT_KIND, record.adjustment_id, "adjustment", step.adjustments()
    )
