"""The engine's escrow stage: escrow actions from the log, applied to the engine's own ledger.

The book (:class:`~clearlane.core.escrow.EscrowBook`) holds the rules; this stage wires it to
the engine: the buyer's funds are its collateral account (so the engine's collateral policy
judges a hold like a withdrawal, and the engine's collateral figures follow every hold and
refund), deadlines fire on engine time, and the book enters the state root only once an
escrow action was logged — a day without escrow keeps the root it had before escrow existed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine.step import StepBuilder
from clearlane.core.escrow import EscrowBook, EscrowView, Outcome
from clearlane.core.ledger import Ledger, Purpose
from clearlane.core.model.events import EscrowMovement
from clearlane.core.model.inputs import ESCROW_ACTIONS, EscrowAction

_RECORDS = tuple(ESCROW_ACTIONS.values())


def escrow_action_of(payload: object) -> EscrowAction | None:
    """The payload as an escrow action record, or None if it is none."""
    return cast(EscrowAction, payload) if isinstance(payload, _RECORDS) else None


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
        self.book = EscrowBook(ledger, {}, config.escrow, self._allowed, fold=False)
        self.configure(config)

    def configure(self, config: ClearingConfig) -> None:
        """Take the (possibly changed) configuration's assets, participants and policy."""
        self._participants = config.participant_index()
        self._assets = config.asset_index()
        self.book.scales = {a.code: a.scale for a in config.assets}
        self.book.policy = config.escrow

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

    def digest(self) -> bytes | None:
        """The book's digest, or None while no escrow action was ever applied."""
        return self.book.digest() if self.book.used else None

    def view(self, escrow_id: str) -> EscrowView | None:
        return self.book.view(escrow_id)
