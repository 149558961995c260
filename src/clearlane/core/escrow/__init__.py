"""Escrow for marketplaces: the pure rules (issue 12).

Owns: the escrow state machine (:class:`EscrowBook`: agree → fund → conditions → inspection →
release / refund / dispute → chargeback), who may do what (``rules.py``: one role per action or
condition, the states each action is allowed in), the money arithmetic (fee, reserve and payee
splits, the arbiter's split, the chargeback clawback order), the escrow's ledger accounts
(``accounts.py``), its deadlines fired by the engine clock, idempotency by action id, and the
invariants checked after every action.

Money is integer minor units; every movement is one balanced journal entry of the clearing
ledger (:mod:`clearlane.core.ledger`). Nothing here reads a clock: time arrives as ``at_ms``.

Does not own: parsing HTTP bodies (the edge validates the input records of
:mod:`clearlane.core.model.inputs`), logging (the node), or the lanes a payout settles through.
"""

from clearlane.core.escrow.accounts import EscrowAccounts
from clearlane.core.escrow.book import EscrowBook, EscrowInvariantError, Outcome
from clearlane.core.escrow.records import EscrowPolicy, EscrowView, WhereIsMoney

__all__ = [
    "EscrowAccounts",
    "EscrowBook",
    "EscrowInvariantError",
    "EscrowPolicy",
    "EscrowView",
    "Outcome",
    "WhereIsMoney",
]
