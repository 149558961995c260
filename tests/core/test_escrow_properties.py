"""Stateful property tests of the escrow rules (hypothesis ``RuleBasedStateMachine``).

Random sequences of escrow actions by random actors (parties or strangers, allowed or not),
random amounts (all, part, too much, too precise, zero), retries of earlier action ids and
clock jumps that fire deadlines. After every action, against a model kept from the events
alone (not from the book's own counters):

- conservation per escrow: funded = posted + voided + expired + remaining, where *posted* is
  what left escrow to payees, fee and reserve, *voided* what went back to the buyer by an
  action (refund, cancel, the arbiter's buyer share) and *expired* what went back when the
  engine clock fired a deadline (inspection lapse → refund); the model's figures equal the
  book's view;
- the ledger's trial balance is zero per asset and no pending entry is left behind;
- resolution at most once: once an escrow's funds are gone, no movement ever pays out of it
  again, and every refusal is a typed :class:`~clearlane.core.model.codes.Reject` (a stable
  code and a field) that changes nothing; a retried id answers its first outcome;
- a rejected hold is never committed: a refused ``fund`` id never funds, and the funds of an
  escrow voided back to the buyer are never released;
- terminal escrows (and released ones) never report anything pending: nothing in escrow, no
  deadline;
- a refund and a dispute never both pay out the same funds: outflows never exceed what was
  funded, and a disputed escrow pays out only by the arbiter's decision.

At the end the recorded inputs are replayed into a fresh book: same digests, byte for byte.

Each step is one hypothesis draw (an integer decoded below, biased toward actions the
escrow's state and the actor's role allow, so sequences get deep), because hypothesis' own
cost per draw dominates: 2,000 sequences run in CI in about 10 s of CPU.
``CLEARLANE_ESCROW_EXAMPLES`` sets the number of sequences (the 10,000-run command is in
docs/PERFORMANCE.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from clearlane.core.escrow import EscrowBook, EscrowPolicy, EscrowView, Outcome, rules
from clearlane.core.ledger import HOUSE_OWNER, JournalEntry, Ledger, Purpose
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.events import EscrowMovement, EscrowTransition
from clearlane.core.model.inputs import EscrowAction, escrow_action
from clearlane.core.model.states import EscrowState, MovementKind

EXAMPLES = int(os.environ.get("CLEARLANE_ESCROW_EXAMPLES", "2000"))
STEPS = 8
MAX_ESCROWS = 6
BLOB = 28  # bytes per step: enough digits for three actions
SCALES = {"USD": 2, "BTC": 8}
ACTORS = ("B", "S", "P", "A", "X", "engine")
ROLE_ACTOR = {"buyer": "B", "seller": "S", "platform": "P", "arbiter": "A"}
ACTOR_ROLE = {actor: role for role, actor in ROLE_ACTOR.items()}
ACTIONS = tuple(rules.ACTION_STATES)
KINDS = ("delivery_confirmed", "title_transferred", "inspection_passed", "custom")
POLICY = EscrowPolicy(approval_over_minor={"USD": 40_000}, reserve_overdraft_minor={"USD": 5_000, "BTC": 50})
DEPOSITS = {"USD": 200_000, "BTC": 1_500 * 10**8}
_ESCROW = (HOUSE_OWNER, Purpose.ESCROW.value)
_BUYER = ("B", Purpose.COLLATERAL.value)
_PAYOUT = (MovementKind.RELEASED, MovementKind.REFUNDED)


def new_book(ledger: Ledger) -> EscrowBook:
    book = EscrowBook(ledger, SCALES, POLICY)
    for asset, amount in DEPOSITS.items():
        source, external = book.accounts.source("B", asset), book.accounts.external(asset)
        ledger.post_or_raise(
            JournalEntry.from_legs(f"dep-{asset}", "deposit", 0, [(external, -amount), (source, amount)])
        )
    return book


def decimal(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


class Code:
    """Digits taken off one drawn integer: each step is one hypothesis draw."""

    def __init__(self, n: int) -> None:
        self.n = n

    def take(self, k: int) -> int:
        self.n, digit = divmod(self.n, k)
        return digit

    def pick(self, items: Any) -> Any:
        return items[self.take(len(items))]


@dataclass
class Model:
    """One escrow's money as its events tell it."""

    funded: int = 0
    posted: int = 0
    voided: int = 0
    expired: int = 0
    emptied: bool = False
    state: EscrowState = EscrowState.DRAFT
    agreed: set[str] = field(default_factory=set)
    view: EscrowView | None = None
    """The book's view after the last action or tick (a refusal must leave it as it was)."""
    fund_refused: set[str] = field(default_factory=set)


class EscrowMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        self.book = new_book(self.ledger)
        self.now = 0
        self.n = 0
        self.models: dict[str, Model] = {}
        self.log: list[tuple[EscrowAction | None, int]] = []  # (action, at) | (None, at): advance
        self.sent: list[EscrowAction] = []
        self.outcomes: dict[str, Outcome] = {}
        self.asset_rows: dict[str, np.ndarray] = {}

    @rule(blob=st.binary(min_size=BLOB, max_size=BLOB))
    def step(self, blob: bytes) -> None:
        """A burst of one to three actions, retries or clock ticks, decoded from one draw."""
        code = Code(int.from_bytes(blob, "little"))
        for _ in range(1 + code.take(3)):
            op = code.take(16)
            live = [e for e, m in self.models.items() if not m.state.terminal]
            if (op == 0 and len(live) < 3 and len(self.models) < MAX_ESCROWS) or not live:
                self._open(code)
            elif op == 2 and self.sent:
                self._retry(code)
            elif op == 3:
                self._tick(code)
            else:
                self._act(code, live)

    # -- the actions ------------------------------------------------------------------------
    def _open(self, code: Code) -> None:
        escrow_id = f"e{len(self.models)}"
        broker = code.take(3) == 0
        payees = [{"party": "S", "share_bps": 7_500}, {"party": "K", "share_bps": 2_500}] if broker else []
        conditions = [
            {"condition_id": f"c{i}", "kind": code.pick(KINDS), "role": code.pick(tuple(ROLE_ACTOR))}
            for i in range(code.take(4))
        ]
        terms = {
            "asset": code.pick(("USD", "USD", "BTC")),
            "amount": decimal(1 + code.take(120_000)),
            "buyer": "B",
            "seller": "S",
            "platform": "P",
            "arbiter": "A",
            "payees": payees,
            "fee_bps": code.pick((0, 250)),
            "reserve_bps": code.pick((0, 1_000)),
            "conditions": conditions,
            "inspection_period_ms": code.pick((0, 1_000, 5_000)),
            "lapse_action": code.pick(("accept", "refund", "escalate")),
            "fund_timeout_ms": code.pick((0, 2_000)),
            "auto_release": code.take(2) == 0,
            "reserve_hold_ms": code.pick((0, 0, 2_000)),
        }
        self.models[escrow_id] = Model()
        self._send({"action": "open", "escrow_id": escrow_id, "actor": "P", "terms": terms})

    def _act(self, code: Code, live: list[str]) -> None:
        escrow_id = code.pick(live if code.take(8) else tuple(self.models))
        m = self.models[escrow_id]
        unmet = [c for c in m.view.conditions if c.satisfied_at_ms is None] if m.view else []
        if code.take(8):  # mostly an action the state allows, by a role that may take it
            allowed = [a for a in ACTIONS if m.state in rules.ACTION_STATES[a]]
            if code.take(8):  # cancelling ends an escrow's story early: only now and then
                allowed = [a for a in allowed if a != "cancel"]
            action = code.pick(allowed or ACTIONS)
            roles = ROLE_ACTOR if action == "satisfy" else sorted(r.value for r in rules.ACTION_ROLES[action])
            if action == "satisfy" and unmet:
                condition = code.pick(unmet)
                roles = [condition.role]
            elif action == "agree":
                roles = [r for r in roles if r not in m.agreed] or roles
            actor = ROLE_ACTOR[code.pick(tuple(roles))]
        else:
            action, actor = code.pick(ACTIONS), code.pick(ACTORS)
        raw: dict[str, Any] = {"action": action, "escrow_id": escrow_id, "actor": actor}
        view = m.view
        remaining = 0 if view is None else view.remaining_minor
        amount = self._amount(code, remaining)
        if action in ("release", "refund", "chargeback"):
            raw["amount"] = amount
        elif action == "approve":
            raw["amount"] = amount or "1.00"
        elif action == "satisfy":
            chosen = [c.condition_id for c in unmet if c.role == ACTOR_ROLE.get(actor)]
            raw["condition_id"] = chosen[0] if chosen and code.take(4) else f"c{code.take(4)}"
        elif action == "decide":
            raw["buyer_share_bps"] = code.pick((0, 10_000, code.take(10_001)))
        elif action == "chargeback_resolve":
            raw["won"] = code.take(2) == 0
        self._send(raw)

    @staticmethod
    def _amount(code: Code, remaining: int) -> str | None:
        match code.take(8):
            case 0 | 1 | 2:
                return None  # the default: all of it
            case 3 | 4:
                return decimal(max(1, remaining // 2))
            case 5:
                return decimal(remaining + 1)
            case 6:
                return code.pick(("0", "0.001", "99999999999999999999"))
            case _:
                return decimal(code.take(120_000))

    def _retry(self, code: Code) -> None:
        """The same action id again: the first outcome, and nothing changes."""
        action = code.pick(self.sent)
        first = self.outcomes[action.action_id]
        before = (self.ledger.n_entries, self.book.view(action.escrow_id))
        again = self.book.apply(action, self.now)
        assert again.duplicate and again.events == first.events and again.reject == first.reject
        assert (self.ledger.n_entries, self.book.view(action.escrow_id)) == before
        self.log.append((action, self.now))

    def _tick(self, code: Code) -> None:
        self.now += code.pick((1, 500, 1_000, 3_000))
        for outcome in self.book.advance(self.now):
            self._account(outcome, None)
        self.log.append((None, self.now))
        for escrow_id in self.models:
            self._check_escrow(escrow_id, self.book.view(escrow_id))
        self._check_books()

    def _send(self, raw: dict[str, Any]) -> None:
        self.n += 1
        action = escrow_action({**raw, "action_id": f"a{self.n}"})
        view = self.models[action.escrow_id].view
        before = (self.ledger.n_entries, self.ledger.n_accounts, view)
        outcome = self.book.apply(action, self.now)
        self.outcomes[action.action_id] = outcome
        self.sent.append(action)
        self.log.append((action, self.now))
        after = self.book.view(action.escrow_id)
        if outcome.reject is not None:
            self._check_refusal(action, outcome.reject, before, after)
        self._account(outcome, (action.action, None if view is None else view.state))
        self._check_escrow(action.escrow_id, after)
        self._check_books()

    # -- the model and the checks -----------------------------------------------------------
    def _check_refusal(
        self, action: EscrowAction, reject: Reject, before: tuple[Any, ...], after: EscrowView | None
    ) -> None:
        """A refusal is typed, names a field, and changes nothing."""
        assert isinstance(reject.code, RejectCode) and reject.field
        assert (self.ledger.n_entries, self.ledger.n_accounts, after) == before
        if action.action == "fund":
            self.models[action.escrow_id].fund_refused.add(action.action_id)

    def _account(self, outcome: Outcome, sent: tuple[str, EscrowState | None] | None) -> None:
        for event in outcome.events:
            if isinstance(event, EscrowTransition):
                m = self.models[event.escrow_id]
                assert event.from_state is m.state  # the events alone tell the state
                m.state = event.to_state
                if event.action == "agree":
                    m.agreed.add(event.role)
                if event.from_state is EscrowState.DISPUTED and event.to_state is not EscrowState.DISPUTED:
                    assert event.action == "decide"  # out of a dispute only by the arbiter
                continue
            if not isinstance(event, EscrowMovement):
                continue
            m = self.models[event.escrow_id]
            legs = {(owner, purpose): value for owner, purpose, value in event.legs}
            into_escrow, to_buyer = legs.get(_ESCROW, 0), legs.get(_BUYER, 0)
            if event.kind is MovementKind.FUNDED:
                assert event.action_id not in m.fund_refused  # a rejected hold is never committed
                m.funded += into_escrow
                continue
            if event.kind not in _PAYOUT:
                continue
            # resolution at most once: nothing pays out of an emptied escrow (so funds voided
            # back to the buyer are never released)
            assert not m.emptied
            if sent is not None and sent[1] is EscrowState.DISPUTED:
                assert sent[0] == "decide"  # a disputed escrow pays out only by the decision
            if sent is None:
                m.expired += to_buyer
            else:
                m.voided += to_buyer
            m.posted += -into_escrow - to_buyer

    def _check_escrow(self, escrow_id: str, view: EscrowView | None) -> None:
        m = self.models[escrow_id]
        if view is None:
            assert m.funded == 0
            return
        assert view.state is m.state
        m.view = view
        remaining = view.remaining_minor
        assert m.funded == m.posted + m.voided + m.expired + remaining  # conservation
        assert remaining >= 0  # so no two payouts (refund, decision, release) share funds
        assert (m.funded, m.posted, m.voided + m.expired) == (
            view.funded_minor,
            view.released_minor,
            view.refunded_minor,
        )
        if m.funded and remaining == 0:
            m.emptied = True
        if view.state.terminal or view.state in (EscrowState.RELEASED, EscrowState.CHARGEBACK):
            # terminal (or paid out) records report nothing pending
            assert remaining == 0 and view.where.escrow == 0
            assert view.fund_deadline_ms is None and view.inspection_deadline_ms is None

    def _check_books(self) -> None:
        """Zero trial balance per asset and no pending entry (the escrow plan posts at once)."""
        posted, debits, credits = self.ledger.balances()
        rows = self._asset_rows(len(posted))
        for index in rows.values():
            assert int(posted[index].sum()) == 0
        assert not debits.any() and not credits.any()
        self.book.check_invariants()

    def _asset_rows(self, n: int) -> dict[str, np.ndarray]:
        if sum(len(index) for index in self.asset_rows.values()) != n:
            by_asset: dict[str, list[int]] = {}
            for i in range(n):
                by_asset.setdefault(self.ledger.account_key(i).asset, []).append(i)
            self.asset_rows = {asset: np.array(index) for asset, index in by_asset.items()}
        return self.asset_rows

    def teardown(self) -> None:
        """The ledger's full check, and replay gives the same state, byte for byte."""
        self.ledger.check_invariants()
        ledger = Ledger()
        book = new_book(ledger)
        for action, at in self.log:
            if action is None:
                book.advance(at)
            else:
                book.apply(action, at)
        assert book.digest() == self.book.digest()
        assert ledger.state_digest() == self.ledger.state_digest()


EscrowMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    database=None,
    # generate only: no example database to replay and no explain phase; a failure still
    # shrinks (the shrink phase) to a short sequence.
    phases=(Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEscrowMachine = EscrowMachine.TestCase
