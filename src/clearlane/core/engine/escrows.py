"""The engine's escrow stage: escrow actions from the log, applied to the engine's own ledger.

The book (:class:`~clearlane.core.escrow.EscrowBook`) holds the rules; this stage wires it to
the engine: the buyer's funds are its collateral account (so the engine's collateral policy
judges a hold like a withdrawal, and the engine's collateral figures follow every hold and
refund), deadlines fire on engine time, and the book enters the state root only once an
escrow action was logged — a day without escrow keeps the root it had before escrow existed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine.step import StepBuilder
from clearlane.core.escrow import EscrowBook, EscrowView, Outcome
from clearlane.core.ledger import Ledger, Purpose
from clearlane.core.model import ids
from clearlane.core.model.events import BatchCleared, BatchFinal, BatchUnwound, EscrowMovement, L1GroupUpdated
from clearlane.core.model.inputs import ESCROW_ACTIONS, EscrowAction
from clearlane.core.model.states import MovementKind

_RECORDS = tuple(ESCROW_ACTIONS.values())


def escrow_action_of(payload: object) -> EscrowAction | None:
    """The payload as an escrow action record, or None if it is none."""
    return cast(EscrowAction, payload) if isinstance(payload, _RECORDS) else None


@dataclass(frozen=True, slots=True)
class Payout:
    """One payee's settlement through the lanes: a payment flow from the house."""

    flow_id: str
    payee: int
    asset: int
    amount: int


Gate = Callable[[int, int, int], bool]
"""``(participant, asset, amount) -> bool``: the engine's withdrawal rule."""
CollateralMoved = Callable[[int, int, int], None]
"""``(participant, asset, delta)``: keep the engine's collateral figures in step."""


class EscrowStage:
    def __init__(self, ledger: Ledger, config: ClearingConfig, gate: Gate, moved: CollateralMoved) -> None:
        self._gate = gate
        self._moved = moved
        # The effects head folds every escrow event and reject of a step, so the book keeps no
        # digest of its own here (its digest is then its counts; the ledger's covers the money).
        self.book = EscrowBook(ledger, {}, config.escrow, self._allowed, fold=False, lanes=self._in_lanes)
        self.configure(config)
        # Payout flows settling through the lanes, until final: flow id -> (escrow, amount);
        # and the batch each one cleared in.
        self._payouts: dict[str, tuple[str, int]] = {}
        self._batch_payouts: dict[str, list[str]] = {}

    def configure(self, config: ClearingConfig) -> None:
        """Take the (possibly changed) configuration's assets, participants and policy."""
        self._participants = config.participant_index()
        self._assets = config.asset_index()
        self.book.scales = {a.code: a.scale for a in config.assets}
        self.book.policy = config.escrow

    def _in_lanes(self, party: str) -> bool:
        """Configured participants are paid through the lanes; anyone else directly."""
        return party in self._participants

    def _allowed(self, party: str, asset: str, amount: int) -> bool:
        p, a = self._participants.get(party), self._assets.get(asset)
        return p is not None and a is not None and self._gate(p, a, amount)

    def apply(self, action: EscrowAction, at_ms: int) -> Outcome:
        return self.book.apply(action, at_ms)

    def advance(self, now_ms: int, out: StepBuilder) -> None:
        """Fire the escrow deadlines due by ``now_ms`` (nothing to do without escrows)."""
        deadline = self.book.next_deadline_ms()
        if deadline is None or deadline > now_ms:
            return
        for outcome in self.book.advance(now_ms):
            self.emit(outcome, out)

    def emit(self, outcome: Outcome, out: StepBuilder) -> None:
        for event in outcome.events:
            out.emit(event)
            if not isinstance(event, EscrowMovement):
                continue
            for owner, purpose, amount in event.legs:
                p = self._participants.get(owner)
                if purpose == Purpose.COLLATERAL.value and p is not None:
                    self._moved(p, self._assets[event.asset], amount)

    def payouts(self, outcome: Outcome) -> list[Payout]:
        """The payment flows (house → payee) a ``settle`` sends through the lanes; the engine
        clears them like any payment (routing, L2 netting or L1 gross), and :meth:`observe`
        follows them to finality."""
        out = []
        for event in outcome.events:
            if not isinstance(event, EscrowMovement) or event.kind is not MovementKind.SETTLED:
                continue
            paid = [
                (owner, -amount) for owner, purpose, amount in event.legs if purpose == Purpose.PAYABLE.value
            ]
            for n, (owner, amount) in enumerate(paid):
                p = self._participants.get(owner)
                if p is None:
                    continue
                flow_id = ids.escrow_payout_flow_id(event.action_id, n)
                self._payouts[flow_id] = (event.escrow_id, amount)
                out.append(Payout(flow_id, p, self._assets[event.asset], amount))
        return out

    def observe(self, out: StepBuilder) -> None:
        """Payouts the step made final (their L2 batch final, or their L1 transaction final).
        Flow ids are matched in Arrow (a cleared batch may carry tens of thousands of flows)."""
        if not self._payouts:
            return
        wanted = pa.array(list(self._payouts), type=pa.string())
        events = out.events_so_far()
        cleared = _payouts_cleared([e for e in events if isinstance(e, BatchCleared)], wanted)
        for event in events:
            match event:
                case BatchCleared():
                    mine = cleared.get(event.batch_id)
                    if mine:
                        self._batch_payouts[event.batch_id] = mine
                case BatchFinal():
                    for flow_id in self._batch_payouts.pop(event.batch_id, []):
                        self._final(flow_id, event.at_ms, f"L2 batch {event.batch_id}", out)
                case BatchUnwound():
                    self._batch_payouts.pop(event.batch_id, None)  # its flows settle on L1
                case L1GroupUpdated():
                    table = event.table
                    hit = pc.and_(
                        pc.is_in(table.column("flow_id"), value_set=wanted),
                        pc.greater_equal(table.column("final_ms"), 0),
                    )
                    final = table.filter(hit)
                    for flow_id, at in zip(
                        final.column("flow_id").to_pylist(), final.column("final_ms").to_pylist(), strict=True
                    ):
                        if flow_id in self._payouts:  # an L1 group reports a final flow again later
                            self._final(flow_id, at, f"L1 group {event.group_id}", out)

    def _final(self, flow_id: str, at_ms: int, where: str, out: StepBuilder) -> None:
        escrow_id, amount = self._payouts.pop(flow_id)
        outcome = self.book.finalize(escrow_id, amount, at_ms, ids.escrow_final_action_id(flow_id), where)
        self.emit(outcome, out)

    def digest(self) -> bytes | None:
        """The book's digest, or None while no escrow action was ever applied."""
        if not self.book.used:
            return None
        return self.book.digest() + f"|{len(self._payouts)}|{len(self._batch_payouts)}".encode()

    def view(self, escrow_id: str) -> EscrowView | None:
        return self.book.view(escrow_id)


def _payouts_cleared(cleared: list[BatchCleared], wanted: pa.Array) -> dict[str, list[str]]:
    """The flow ids in ``wanted`` that each cleared batch carries, in its flow order (batches
    that carry none left out): one look-up over the step's batches' ids concatenated, not one
    compute call a batch (a step of the demo's day clears ~250 sub-second batches; issue 18).
    Columns that cannot be concatenated are looked up batch by batch."""
    if not cleared:
        return {}
    columns = [e.flow_ids for e in cleared]
    if not all(isinstance(c, pa.Array) and c.type == columns[0].type for c in columns):
        hits = {
            e.batch_id: e.flow_ids.filter(pc.is_in(e.flow_ids, value_set=wanted)).to_pylist() for e in cleared
        }
        return {batch_id: mine for batch_id, mine in hits.items() if mine}
    ids = pa.concat_arrays(columns)
    rows = np.flatnonzero(pc.is_in(ids, value_set=wanted).to_numpy(zero_copy_only=False))
    if not len(rows):
        return {}
    bounds = np.cumsum([len(c) for c in columns])
    batch_of = np.searchsorted(bounds, rows, side="right").tolist()
    out: dict[str, list[str]] = {}
    for b, flow_id in zip(batch_of, ids.take(pa.array(rows)).to_pylist(), strict=True):
        out.setdefault(cleared[b].batch_id, []).append(flow_id)
    return out
