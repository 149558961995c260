"""The escrow application (issue 12): a request becomes an escrow action record, is logged and
applied through the node (the engine judges it: clearlane.core.escrow), and is answered with
a receipt; a committed step's escrow transitions become public ``escrow.*`` events; and a
participant sees only the escrows it is party to.

Receipts: a new action id is logged and applied (``accepted``) or logged and refused
(``rejected``: the refusal is the record of that id, so the same id can never later succeed);
an id seen before is answered from the book without logging (``duplicate``, or ``id_conflict``
when its content differs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from clearlane.core.engine import Engine
from clearlane.core.escrow import EscrowView, Outcome
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import (
    EscrowMovement,
    EscrowTransition,
    Step,
    escrow_event_dict,
)
from clearlane.core.model.inputs import ESCROW_KIND, EscrowAction, escrow_action
from clearlane.node.events import ESCROW_UPDATED, EventFilter, EventGroup, iso
from clearlane.node.intake.rows import RowError

_PYDANTIC_CODES = {
    "missing": RejectCode.MISSING_FIELD,
    "string_pattern_mismatch": RejectCode.BAD_ID,
    "literal_error": RejectCode.UNKNOWN_EVENT_TYPE,
}


def parse_action(obj: Any, index: int = 0) -> tuple[EscrowAction | None, RowError | None]:
    """The action record of a request body, or the first thing wrong with it (field named)."""
    if not isinstance(obj, dict):
        code = RejectCode.BAD_JSON
        return None, RowError(index, int(code), code.slug, "-", "an escrow action is a JSON object")
    try:
        return escrow_action(obj), None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "-"
        code = _PYDANTIC_CODES.get(first["type"], RejectCode.ESCROW_BAD_TERMS)
        if field.endswith("amount") and code is RejectCode.BAD_ID:
            code = RejectCode.BAD_DECIMAL
        return None, RowError(
            index, int(code), code.slug, field, str(first["msg"]), _text(obj.get("action_id"))
        )
    except ValueError:
        code = RejectCode.UNKNOWN_EVENT_TYPE
        reason = f"action must be one of the escrow actions, not {obj.get('action')!r}"
        return None, RowError(index, int(code), code.slug, "action", reason, _text(obj.get("action_id")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class EscrowReceipt:
    """The answer to one action: its outcome and the escrow's view after it."""

    outcome: Outcome
    view: EscrowView | None

    @property
    def status(self) -> str:
        if self.outcome.duplicate:
            return "duplicate"
        return "accepted" if self.outcome.reject is None else "rejected"

    def to_dict(self) -> dict[str, Any]:
        reject = self.outcome.reject
        return {
            "id": self.outcome.action_id,
            "kind": ESCROW_KIND,
            "status": self.status,
            "escrow": None if self.view is None else view_dict(self.view),
            "events": [escrow_event_dict(e) for e in self.outcome.events],
            "reject": None if reject is None else reject.to_dict(),
        }

    def error(self, index: int = 0) -> RowError | None:
        reject = self.outcome.reject
        return None if reject is None else RowError.of(index, reject)


class EscrowNode(Protocol):
    """What an escrow action goes through: the node (a Node) — its engine and its submit."""

    @property
    def engine(self) -> Engine: ...

    def submit(self, kind: str, payload: Any, at_ms: int) -> object: ...


def submit(node: EscrowNode, action: EscrowAction, at_ms: int) -> EscrowReceipt:
    """Log and apply one action through the node, unless its id is known. Call with the
    runtime's lock held (the service)."""
    engine, log = node.engine, node.submit
    known = engine.escrows.book.known(action)
    if known is None:
        log(ESCROW_KIND, action.model_dump(mode="json", exclude_none=True), at_ms)
        known = engine.escrows.book.outcome(action.action_id)
        if known is None:  # the engine applied the entry, so the book has its outcome
            raise RuntimeError(f"escrow action {action.action_id} was logged but has no outcome")
    return EscrowReceipt(known, engine.escrow(action.escrow_id))


# ---------------------------------------------------------------------- views
def visible(view: EscrowView, participant: str | None) -> bool:
    """A participant sees the escrows it is party to (any role); None sees all."""
    return participant is None or any(party == participant for _, party in view.parties)


def view_dict(view: EscrowView) -> dict[str, Any]:
    """An escrow as the API shows it (amounts in minor units, times in ms and RFC 3339)."""
    return {
        "escrow_id": view.escrow_id,
        "state": view.state.label,
        "asset": view.asset,
        "amount_minor": view.amount_minor,
        "parties": dict(view.parties),
        "payees": [{"party": p, "share_bps": bps} for p, bps in view.payees],
        "fee_bps": view.fee_bps,
        "reserve_bps": view.reserve_bps,
        "conditions": [
            {
                "condition_id": c.condition_id,
                "kind": c.kind,
                "role": c.role,
                "met": c.satisfied_at_ms is not None,
                "satisfied_by": c.satisfied_by or None,
                "satisfied_at_ms": c.satisfied_at_ms,
            }
            for c in view.conditions
        ],
        "lapse_action": view.lapse_action,
        "funded_minor": view.funded_minor,
        "remaining_minor": view.remaining_minor,
        "released_minor": view.released_minor,
        "refunded_minor": view.refunded_minor,
        "fees_minor": view.fees_minor,
        "reserved_minor": view.reserved_minor,
        "settled_minor": view.settled_minor,
        "approved_minor": view.approved_minor,
        "charged_back_minor": view.charged_back_minor,
        "fund_deadline_ms": view.fund_deadline_ms,
        "fund_deadline": iso(view.fund_deadline_ms),
        "inspection_deadline_ms": view.inspection_deadline_ms,
        "inspection_deadline": iso(view.inspection_deadline_ms),
        "dispute_reason": view.dispute_reason or None,
        "where": {
            "buyer": view.where.buyer,
            "escrow": view.where.escrow,
            "clearing": view.where.clearing,
            "final": view.where.final,
            "charged_back": view.where.charged_back,
        },
        "version": view.version,
        "created_at_ms": view.created_at_ms,
        "order_ref": view.order_ref,
    }


# ---------------------------------------------------------------------- public events
def event_type(transition: EscrowTransition) -> str:
    """``escrow.<state entered>`` (``escrow.opened`` for a new escrow), or ``escrow.updated``
    when the action changed no state."""
    if transition.action == "open":
        return "escrow.opened"
    if transition.from_state is transition.to_state:
        return ESCROW_UPDATED
    return f"escrow.{transition.to_state.label}"


class EscrowEvent(EventGroup):
    """One escrow transition with the money its action moved, for one escrow's parties."""

    def __init__(
        self, seq: int, transition: EscrowTransition, movements: list[EscrowMovement], parties: frozenset[str]
    ) -> None:
        self.type = event_type(transition)
        self.seq = seq
        self.at_ms = transition.at_ms
        self.transition = transition
        self.movements = movements
        self.parties = parties

    def events(self, flt: EventFilter) -> list[dict[str, Any]]:
        if flt.participant is not None and flt.participant not in self.parties:
            return []
        t = self.transition
        data = escrow_event_dict(t)
        data["movements"] = [escrow_event_dict(m) for m in self.movements]
        subject = f"{t.escrow_id}:{t.version}"
        return [
            {
                "id": f"{self.seq}:{self.type}:{subject}",
                "type": self.type,
                "at_ms": self.at_ms,
                "at": iso(self.at_ms),
                "data": data,
            }
        ]


def escrow_groups(seq: int, step: Step, view_of: Callable[[str], EscrowView | None]) -> list[EventGroup]:
    """The public events of a step's escrow transitions, in order; each carries the movements
    its action made before the next transition of that action."""
    out: list[EventGroup] = []
    pending: list[EscrowMovement] = []
    for event in step.escrow_events():
        if isinstance(event, EscrowMovement):
            pending.append(event)
            continue
        view = view_of(event.escrow_id)
        parties = frozenset(party for _, party in view.parties) if view is not None else frozenset()
        mine = [m for m in pending if m.action_id == event.action_id]
        pending = [m for m in pending if m.action_id != event.action_id]
        out.append(EscrowEvent(seq, event, mine, parties))
    return out
