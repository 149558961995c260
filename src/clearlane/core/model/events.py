"""What the engine says happened: frozen, typed records, and the :class:`Step` that carries them.

``Engine.apply(entry)`` returns one :class:`Step` per log entry. Its ``events`` are the
lifecycle facts in the order the engine produced them (a batch cleared, anchored, reorged,
re-submitted, final or unwound; an L1 group opened or changed; an input rejected; an alert; a
hold that expired). Consumers pattern-match on the record types (``match``/``isinstance``),
never on string keys.

Bulk data stays columnar: a step's trade records are Arrow tables (:class:`TradeRecords`), a
cleared batch carries its flow ids and net instructions as arrays, an L1 group its per-flow
state as a table — never one Python object per trade.

This module also owns the stored encodings of the batch transitions (the ``batch_events`` row
and the ``batches`` column changes, :func:`batch_event_row` and :func:`batch_changes`): the
engine's effects hash, the transition body of the audit log and the SQL store all derive their
bytes from these two functions, so the three cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeAlias, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.ledger import LedgerChanges
from clearlane.core.model.chain import TxSubmission
from clearlane.core.model.codes import Reject
from clearlane.core.model.states import BatchState, EscrowState, MovementKind

I64 = npt.NDArray[np.int64]


# Records holding arrays or tables use eq=False: element-wise array equality has no single truth
# value, so identity is the only well-defined equality for them.
@dataclass(frozen=True, slots=True, eq=False)
class TradeRecords:
    """The records of every flow of one chunk the step applied (rejected rows included,
    duplicates excluded), as one Arrow table: the step's columnar trade output."""

    table: pa.Table


@dataclass(frozen=True, slots=True, eq=False)
class BatchCleared:
    """An L2 micro-batch closed, netted and committed to its Merkle ``root``."""

    event: ClassVar[str] = "cleared"

    batch_id: str
    pool: str
    seq: int
    opened_at_ms: int
    cleared_at_ms: int
    flows: int
    obligations: int
    gross_usd: float
    net_usd: float
    root: bytes
    flow_ids: pa.Array
    received_ms: I64
    net_participant: pa.Array
    net_asset: pa.Array
    net_minor: I64
    gross_minor: I64  # per configured asset, in config order

    def with_root(self, root: bytes) -> BatchCleared:
        """``dataclasses.replace(self, root=root)`` — the class has no checks to run again —
        copied slot by slot: a step's roots are filled in after its batches closed, one event a
        batch (~100,000 a demo day), and ``replace`` walks the fields and calls ``__init__``
        (5.6 -> 2.7 us; issue 18)."""
        out = object.__new__(BatchCleared)
        for get, put in _CLEARED_COPY:
            put(out, get(self))
        _CLEARED_SET_ROOT(out, root)
        return out


# The slots' own accessors, every field but the root (written by ``with_root``).
_CLEARED_COPY = tuple(
    (vars(BatchCleared)[f.name].__get__, vars(BatchCleared)[f.name].__set__)
    for f in fields(BatchCleared)
    if f.name != "root"
)
_CLEARED_SET_ROOT = vars(BatchCleared)["root"].__set__


@dataclass(frozen=True, slots=True)
class BatchAnchored:
    """The batch's anchor transaction ``tx_id`` was included at ``height``."""

    event: ClassVar[str] = "anchored"

    batch_id: str
    at_ms: int
    tx_id: str
    height: int
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class BatchReorged:
    """The block holding the batch's anchor was orphaned; the batch is cleared (unanchored)."""

    event: ClassVar[str] = "reorged"

    batch_id: str
    at_ms: int
    tx_id: str
    fork_height: int


@dataclass(frozen=True, slots=True)
class BatchResubmitted:
    """The batch's anchor was submitted again (``attempt`` counts from 1, the first submission)."""

    event: ClassVar[str] = "resubmitted"

    batch_id: str
    at_ms: int
    attempt: int


@dataclass(frozen=True, slots=True)
class BatchFinal:
    """The anchor reached its confirmations and challenge window: the batch settled on L2."""

    event: ClassVar[str] = "final"

    batch_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class BatchUnwound:
    """The batch missed its anchor deadline: its hold was voided, its flows went gross to L1."""

    event: ClassVar[str] = "unwound"

    batch_id: str
    at_ms: int
    reason: str


BatchTransition: TypeAlias = BatchAnchored | BatchReorged | BatchResubmitted | BatchFinal | BatchUnwound


@dataclass(frozen=True, slots=True)
class L1GroupOpened:
    """A group of flows submitted gross to L1 together (``origin``: ``routed`` or
    ``unwound:<batch id>``)."""

    group_id: str
    origin: str
    created_ms: int
    flows: int


@dataclass(frozen=True, slots=True, eq=False)
class L1GroupUpdated:
    """An L1 group's per-flow state (attempt, inclusion, finality) after the step, as a table.

    One per group per step, at the position of the step's first change to it; ``opened`` is set
    when the group was opened in this step.
    """

    group_id: str
    table: pa.Table
    opened: L1GroupOpened | None = None

    def open_flows(self) -> int:
        """Flows of the group not final yet."""
        return int(np.count_nonzero(self.table.column("final_ms").to_numpy() < 0))


@dataclass(frozen=True, slots=True)
class L1SettledManually:
    """An operator recorded that an L1 obligation was settled off-system (issue 17): its gross
    settlement was posted as ledger entry ``entry_id`` and its base-layer transaction is no
    longer awaited. Settled manually is not final on the base layer (the L1 group's row has
    ``included_height`` :data:`~clearlane.core.model.ids.MANUAL_HEIGHT`)."""

    settlement_id: str
    flow_id: str
    group_id: str
    operator: str
    evidence_ref: str
    evidence_sha256: str
    note: str
    entry_id: str
    at_ms: int

    def to_dict(self) -> dict[str, object]:
        return {
            "settlement_id": self.settlement_id,
            "flow_id": self.flow_id,
            "group_id": self.group_id,
            "operator": self.operator,
            "evidence_ref": self.evidence_ref,
            "evidence_sha256": self.evidence_sha256,
            "note": self.note or None,
            "entry_id": self.entry_id,
            "at_ms": self.at_ms,
        }


@dataclass(frozen=True, slots=True)
class LedgerAdjusted:
    """An operator's adjusting journal entry was posted (issue 13, docs/RECONCILIATION.md §8):
    ledger entry ``entry_id`` of kind ``adjustment``, resolving reconciliation case ``case_id``.
    ``legs`` are (account label, asset, signed minor amount), in the order given."""

    adjustment_id: str
    case_id: str
    operator: str
    reason: str
    entry_id: str
    legs: tuple[tuple[str, str, int], ...]
    at_ms: int

    def to_dict(self) -> dict[str, object]:
        return {
            "adjustment_id": self.adjustment_id,
            "case_id": self.case_id,
            "operator": self.operator,
            "reason": self.reason,
            "entry_id": self.entry_id,
            "legs": [{"account": a, "asset": c, "amount_minor": m} for a, c, m in self.legs],
            "at_ms": self.at_ms,
        }


@dataclass(frozen=True, slots=True)
class Rejected:
    """The engine refused an input (a flow, a deposit, a withdrawal, a mark)."""

    reject: Reject


@dataclass(frozen=True, slots=True)
class Alert:
    """Something an operator must look at (e.g. a final batch's anchor reorged out)."""

    message: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class HoldExpired:
    """A ledger hold timed out (a safety net behind the engine's own unwind)."""

    entry_id: str
    at_ms: int


# ---------------------------------------------------------------------- escrow (issue 12)
@dataclass(frozen=True, slots=True)
class EscrowTransition:
    """One applied escrow action (or one the engine clock fired): the state it left and
    entered (equal when a partial release or an approval changes no state), who acted in
    which role, why, and when in engine time. ``version`` counts the escrow's transitions, so
    consumers can order and deduplicate them per escrow."""

    escrow_id: str
    action_id: str
    action: str
    from_state: EscrowState
    to_state: EscrowState
    actor: str
    role: str
    reason: str
    at_ms: int
    version: int


@dataclass(frozen=True, slots=True)
class EscrowMovement:
    """Money an escrow moved, as one balanced ledger entry ``entry_id``: ``legs`` are
    ``(owner, purpose, signed minor amount)`` (> 0 credits), in posting order."""

    escrow_id: str
    action_id: str
    kind: MovementKind
    asset: str
    amount_minor: int
    entry_id: str
    legs: tuple[tuple[str, str, int], ...]
    at_ms: int


EscrowEvent: TypeAlias = EscrowTransition | EscrowMovement

Event: TypeAlias = (
    BatchCleared
    | BatchTransition
    | L1GroupUpdated
    | Rejected
    | Alert
    | HoldExpired
    | EscrowTransition
    | EscrowMovement
    | L1SettledManually
    | LedgerAdjusted
)
Note: TypeAlias = Alert | HoldExpired


@dataclass(frozen=True, slots=True, eq=False)
class Step:
    """Everything one log entry caused, for the store to commit atomically and publish after."""

    seq: int
    at_ms: int
    events: tuple[Event, ...]
    trade_records: tuple[TradeRecords, ...]
    submissions: tuple[TxSubmission, ...]
    ledger: LedgerChanges
    duplicates: int
    # Rows not applied because their id was applied before with different content (code 116,
    # ``row`` = index in the entry's chunk). They are counted in ``duplicates`` too and change no
    # state: a report for the caller (rejects file, bus rejects), re-derived by a replay, never
    # stored or hashed — so a log that holds one replays to the root it had before this check.
    conflicts: tuple[Reject, ...] = ()
    # What :meth:`changes` and :meth:`event_rows` computed, kept for the next reader: the effects
    # head reads both on the engine's thread, then the audit chain and the store on the writer's.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def tables(self) -> list[pa.Table]:
        """The trade-record tables, in order (their index is the stored ``part``)."""
        return [r.table for r in self.trade_records]

    def cleared(self) -> list[BatchCleared]:
        return [e for e in self.events if isinstance(e, BatchCleared)]

    def batch_events(self) -> list[BatchCleared | BatchTransition]:
        """Batch lifecycle events, in order (clearing included)."""
        return [e for e in self.events if isinstance(e, _BATCH_EVENTS)]

    def l1_updates(self) -> list[L1GroupUpdated]:
        return [e for e in self.events if isinstance(e, L1GroupUpdated)]

    def rejects(self) -> list[Reject]:
        return [e.reject for e in self.events if isinstance(e, Rejected)]

    def notes(self) -> list[Note]:
        return [e for e in self.events if isinstance(e, Alert | HoldExpired)]

    def manual_settlements(self) -> list[L1SettledManually]:
        """Off-system settlements an operator recorded in this step (issue 17)."""
        return [e for e in self.events if isinstance(e, L1SettledManually)]

    def adjustments(self) -> list[LedgerAdjusted]:
        """Adjusting journal entries an operator posted in this step (issue 13)."""
        return [e for e in self.events if isinstance(e, LedgerAdjusted)]

    def changes(self) -> dict[str, dict[str, Any]]:
        """:func:`batch_changes` of the step's events, computed once (treat it as read-only)."""
        found = self.memo.get("changes")
        if found is None:
            found = self.memo["changes"] = batch_changes(self.events)
        return cast(dict[str, dict[str, Any]], found)

    def event_rows(self) -> list[tuple[str, str, int, str]]:
        """:func:`batch_event_row` of each batch event, in order, computed once (read-only)."""
        found = self.memo.get("rows")
        if found is None:
            found = self.memo["rows"] = [batch_event_row(e) for e in self.batch_events()]
        return cast(list[tuple[str, str, int, str]], found)

    def escrow_events(self) -> list[EscrowEvent]:
        """Escrow transitions and movements, in order (empty unless escrow is used)."""
        return [e for e in self.events if isinstance(e, EscrowTransition | EscrowMovement)]


_BATCH_EVENTS = (BatchCleared, BatchAnchored, BatchReorged, BatchResubmitted, BatchFinal, BatchUnwound)


# ---------------------------------------------------------------------- stored encodings
def batch_event_row(event: BatchCleared | BatchTransition) -> tuple[str, str, int, str]:
    """``(batch_id, event, at_ms, detail)``: the batch's ``batch_events`` row."""
    match event:
        case BatchCleared():
            return (event.batch_id, event.event, event.cleared_at_ms, event.root.hex())
        case BatchAnchored():
            return (event.batch_id, event.event, event.at_ms, f"{event.tx_id}@{event.height}")
        case BatchReorged():
            detail = f"{event.tx_id} orphaned at fork {event.fork_height}"
            return (event.batch_id, event.event, event.at_ms, detail)
        case BatchResubmitted():
            return (event.batch_id, event.event, event.at_ms, f"attempt {event.attempt}")
        case BatchFinal():
            return (event.batch_id, event.event, event.at_ms, "")
        case BatchUnwound():
            return (event.batch_id, event.event, event.at_ms, event.reason)


BATCH_UPDATABLE = (
    "state",
    "attempts",
    "anchor_tx",
    "anchor_height",
    "anchored_at_ms",
    "anchor_block",
    "final_at_ms",
    "unwound_at_ms",
)
"""The ``batches`` columns a transition may change (what :func:`batch_changes` sets); the
others are fixed when the batch is cleared."""


def _changes(event: BatchTransition) -> dict[str, Any]:
    match event:
        case BatchAnchored():
            return {
                "state": BatchState.ANCHORED.label,
                "anchor_tx": event.tx_id,
                "anchor_height": event.height,
                "anchored_at_ms": event.at_ms,
                "anchor_block": event.block_hash.hex(),
            }
        case BatchReorged():
            return {
                "state": BatchState.CLEARED.label,
                "anchor_tx": None,
                "anchor_height": None,
                "anchored_at_ms": None,
                "anchor_block": None,
            }
        case BatchResubmitted():
            return {"attempts": event.attempt}
        case BatchFinal():
            return {"state": BatchState.FINAL.label, "final_at_ms": event.at_ms}
        case BatchUnwound():
            return {"state": BatchState.UNWOUND.label, "unwound_at_ms": event.at_ms}


def batch_changes(events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """Per batch (in order of its first transition), the ``batches`` columns the step's
    transitions leave changed: later transitions of the same batch overwrite earlier ones."""
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        if isinstance(event, _BATCH_EVENTS) and not isinstance(event, BatchCleared):
            out.setdefault(event.batch_id, {}).update(_changes(event))
    return out


def escrow_event_bytes(event: EscrowEvent) -> bytes:
    """The canonical bytes of an escrow event (hashed into the effects head and the escrow
    book's digest): a JSON array of its fields in declaration order, enums by value."""
    match event:
        case EscrowTransition():
            fields: list[Any] = [
                "transition",
                event.escrow_id,
                event.action_id,
                event.action,
                int(event.from_state),
                int(event.to_state),
                event.actor,
                event.role,
                event.reason,
                event.at_ms,
                event.version,
            ]
        case EscrowMovement():
            fields = [
                "movement",
                event.escrow_id,
                event.action_id,
                event.kind.value,
                event.asset,
                event.amount_minor,
                event.entry_id,
                [list(leg) for leg in event.legs],
                event.at_ms,
            ]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()


def escrow_event_dict(event: EscrowEvent) -> dict[str, Any]:
    """An escrow event as plain JSON values (the transition body, the effects hash, the API)."""
    match event:
        case EscrowTransition():
            return {
                "escrow_id": event.escrow_id,
                "action_id": event.action_id,
                "action": event.action,
                "from": event.from_state.label,
                "to": event.to_state.label,
                "actor": event.actor,
                "role": event.role,
                "reason": event.reason,
                "at_ms": event.at_ms,
                "version": event.version,
            }
        case EscrowMovement():
            return {
                "escrow_id": event.escrow_id,
                "action_id": event.action_id,
                "movement": event.kind.value,
                "asset": event.asset,
                "amount_minor": event.amount_minor,
                "entry_id": event.entry_id,
                "legs": [list(leg) for leg in event.legs],
                "at_ms": event.at_ms,
            }


def note_dict(note: Note) -> dict[str, Any]:
    """The note as recorded in the transition body."""
    match note:
        case Alert():
            return {"alert": note.message, "at_ms": note.at_ms}
        case HoldExpired():
            return {"hold_expired": note.entry_id, "at_ms": note.at_ms}
