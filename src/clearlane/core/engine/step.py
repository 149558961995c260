"""How the engine builds a :class:`~clearlane.core.model.events.Step` and folds it into its
effects hash.

:class:`StepBuilder` is the one mutable thing a log entry's handlers write to while it is
applied; :meth:`StepBuilder.build` freezes it. :func:`fold_effects` is the running digest of
every step (``Engine.effects_head``, part of the state root): its bytes are those the engine
hashed when it still emitted dicts, so state roots recorded before typed events stay valid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from clearlane.core.ledger import LedgerChanges
from clearlane.core.model.chain import TxSubmission
from clearlane.core.model.codes import Reject
from clearlane.core.model.events import (
    Event,
    L1GroupOpened,
    L1GroupUpdated,
    Rejected,
    Step,
    TradeRecords,
    escrow_event_bytes,
)
from clearlane.core.proofs.canonical import spaced_json


class Snapshot(Protocol):
    """Something whose current state can be copied into a table (an L1 group)."""

    def to_table(self) -> pa.Table: ...


@dataclass(frozen=True, slots=True)
class _PendingGroup:
    """An L1 group's update whose table is taken when the step is built."""

    group_id: str
    group: Snapshot
    opened: L1GroupOpened | None


class StepBuilder:
    """What one log entry caused so far, in the order the engine produced it."""

    __slots__ = (
        "at_ms",
        "conflicts",
        "deferred",
        "duplicates",
        "events",
        "l1_at",
        "records",
        "seq",
        "submissions",
    )

    def __init__(self, seq: int, at_ms: int) -> None:
        self.seq = seq
        self.at_ms = at_ms
        self.events: list[Event | _PendingGroup] = []
        self.records: list[TradeRecords] = []
        self.submissions: list[TxSubmission] = []
        self.duplicates = 0
        self.conflicts: list[Reject] = []
        # Index in ``events`` of each L1 group's update: a group changed twice in one step keeps
        # one record (its last table) at the place of its first change.
        self.l1_at: dict[str, int] = {}
        # Work that waits for something computed meanwhile on a helper thread: the Merkle roots
        # of the batches this step closed (clearing.close_batches), written into the events,
        # submissions and batch states they belong to. Done, in order, by :meth:`settle`.
        self.deferred: list[Callable[[], None]] = []

    def defer(self, fill: Callable[[], None]) -> None:
        """Run ``fill`` before anything reads the step: :meth:`events_so_far`, :meth:`build`,
        or a stage that needs what it fills in calling :meth:`settle`."""
        self.deferred.append(fill)

    def settle(self) -> None:
        """Run the deferred fills, in the order they were deferred."""
        while self.deferred:
            fills, self.deferred = self.deferred, []
            for fill in fills:
                fill()

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def reject(self, reject: Reject) -> None:
        self.events.append(Rejected(reject))

    def l1_group(self, group_id: str, group: Snapshot, opened: L1GroupOpened | None = None) -> None:
        """Record that an L1 group changed (coalesced per step, see ``l1_at``); its table is
        taken once, when the step is built: a group included in several blocks of one chain
        entry was copied once per block, and only the last copy was kept."""
        at = self.l1_at.get(group_id)
        if at is None:
            self.l1_at[group_id] = len(self.events)
            self.events.append(_PendingGroup(group_id, group, opened))
            return
        earlier = self.events[at]
        if not isinstance(earlier, _PendingGroup):
            raise TypeError(f"event {at} of step {self.seq} is not L1 group {group_id}'s update")
        self.events[at] = _PendingGroup(group_id, group, earlier.opened or opened)

    def events_so_far(self) -> list[Event]:
        """The step's events up to now, L1 groups' tables as they stand (for a stage that reacts
        to what the step did, e.g. escrow payouts turning final)."""
        self.settle()
        return [
            L1GroupUpdated(e.group_id, e.group.to_table(), e.opened) if isinstance(e, _PendingGroup) else e
            for e in self.events
        ]

    def build(self, ledger: LedgerChanges) -> Step:
        events = self.events_so_far()
        return Step(
            seq=self.seq,
            at_ms=self.at_ms,
            events=tuple(events),
            trade_records=tuple(self.records),
            submissions=tuple(self.submissions),
            ledger=ledger,
            duplicates=self.duplicates,
            conflicts=tuple(self.conflicts),
        )


def fold_effects(head: bytes, step: Step) -> bytes:
    """The effects head after ``step``: a canonical digest of the step chained onto ``head``."""
    h = hashlib.sha256(head)
    h.update(f"|{step.seq}|{step.at_ms}|".encode())
    for records in step.trade_records:
        for column in records.table.columns:
            for chunk in column.chunks:
                for buf in chunk.buffers():
                    if buf is not None:
                        h.update(buf)
    # One update for the batches and one for the submissions: the bytes a line each would hash,
    # in the same order (~500,000 submissions a 10M-trade day; issue 18).
    h.update(
        b"".join([f"{b.batch_id}|{b.cleared_at_ms}|{b.flows}|".encode() + b.root for b in step.cleared()])
    )
    h.update(spaced_json(step.changes(), default=str))
    h.update(spaced_json(step.event_rows(), default=str))  # tuples: sorting keys changes nothing
    for update in sorted(step.l1_updates(), key=lambda u: u.group_id):
        h.update(update.group_id.encode())
        for column in update.table.columns[1:]:
            h.update(column.to_numpy().tobytes())
    h.update("".join([f"{tx.tx_id}|{tx.submitted_at_ms}|" for tx in step.submissions]).encode())
    h.update("".join([str(r) for r in step.rejects()]).encode())
    for manual in step.manual_settlements():  # none before issue 17: earlier heads stay valid
        h.update(spaced_json(manual.to_dict()))
    for adjusted in step.adjustments():  # none before issue 13: earlier heads stay valid
        h.update(spaced_json(adjusted.to_dict()))
    escrow = step.escrow_events()
    if escrow:  # nothing is added without escrow: earlier effects heads stay valid
        for event in escrow:
            h.update(escrow_event_bytes(event))
    return h.digest()
