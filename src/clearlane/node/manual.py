"""Manual settlement (issue 17): an operator's record that an L1 obligation was settled
off-system, with evidence — validated here, logged and applied through the node (the engine
judges it: clearlane.core.engine.manual), answered with a receipt (docs/MANUAL_SETTLEMENT.md).

Receipts: ``accepted`` (posted, the obligation reads "settled manually"), ``duplicate`` (the
settlement id was applied before with the same content: nothing changed), or ``rejected`` with
the reject (511 no open L1 obligation, 512 already in a block, 502 the ledger refused, 116 the
id was used for other content). A rejected settlement is logged: the log says it was refused.
"""

from __future__ import annotations

from typing import Any, Protocol

from clearlane.core.model.codes import Reject
from clearlane.core.model.events import Step
from clearlane.core.model.inputs import MANUAL_SETTLEMENT_KIND, ManualSettlement
from clearlane.node.intake.rows import RowError, parse_body
from clearlane.node.receipts import operator_receipt


def parse(obj: Any) -> tuple[ManualSettlement | None, RowError | None]:
    """The record of a request body, or the first thing wrong with it (field named)."""
    return parse_body(ManualSettlement, obj, "a manual settlement", "settlement_id")


class ManualNode(Protocol):
    def submit(self, kind: str, payload: Any, at_ms: int) -> Step | None: ...


def submit(node: ManualNode, record: ManualSettlement, at_ms: int) -> tuple[dict[str, Any], Reject | None]:
    """Log and apply one manual settlement; its receipt and the reject that refused it, if any.
    Call with the runtime's lock held (the service)."""
    step = node.submit(MANUAL_SETTLEMENT_KIND, record.model_dump(mode="json", exclude_none=True), at_ms)
    if step is None:  # pragma: no cover - no source id is given, so it is always logged
        raise RuntimeError("a manual settlement was not logged")
    return operator_receipt(
        step, MANUAL_SETTLEMENT_KIND, record.settlement_id, "settlement", step.manual_settlements()
    )
