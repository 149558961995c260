"""Stateful property tests of the escrow rules (hypothesis ``RuleBasedStateMachine``).

Random sequences of actions by random actors (parties or strangers, allowed or not), random
amounts (valid, too large, too precise), retries of earlier action ids and clock jumps, and
after every step: every escrow conserves its money, the ledger's trial balance is zero, the
escrow account holds exactly what the escrows hold, terminal escrows hold nothing, no money is
released from an escrow while it is disputed except by the arbiter's decision, a retried id
answers its first outcome and changes nothing, and a refused action changes nothing. At the end
the recorded inputs are replayed into a fresh book: same digests, byte for byte.

``CLEARLANE_ESCROW_EXAMPLES`` sets the number of sequences (CI default below; the 10,000-run
command is in docs/PERFORMANCE.md).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from clearlane.core.escrow import EscrowBook, EscrowPolicy, Outcome
from clearlane.core.ledger import JournalEntry, Ledger
from clearlane.core.model.events import EscrowMovement, EscrowTransition
from clearlane.core.model.inputs import EscrowAction, escrow_action
from clearlane.core.model.states import EscrowState, MovementKind

EXAMPLES = int(os.environ.get("CLEARLANE_ESCROW_EXAMPLES", "500"))
SCALES = {"USD": 2, "BTC": 8}
ACTORS = ["B", "S", "P", "A", "X", "engine"]
ACTIONS = [
    "agree",
    "fund",
    "satisfy",
    "reject",
    "release",
    "approve",
    "refund",
    "cancel",
    "dispute",
    "decide",
    "settle",
    "chargeback",
    "chargeback_resolve",
]
POLICY = EscrowPolicy(approval_over_minor={"USD": 40_000}, reserve_overdraft_minor={"USD": 5_000, "BTC": 50})

amounts = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=120_000).map(lambda m: f"{m // 100}.{m % 100:02d}"),
    st.sampled_from(["0", "0.001", "99999999999999999999"]),
)
conditions = st.lists(
    st.tuples(
        st.sampled_from(["delivery_confirmed", "title_transferred", "inspection_passed", "custom"]),
        st.sampled_from(["buyer", "seller", "platform", "arbiter"]),
    ),
    max_size=3,
)


def new_book(ledger: Ledger) -> EscrowBook:
    book = EscrowBook(ledger, SCALES, POLICY)
    for asset, amount in (("USD", 200_000), ("BTC", 10**8)):
        source, external = book.accounts.source("B", asset), book.accounts.external(asset)
        ledger.post_or_raise(
            JournalEntry.from_legs(f"dep-{asset}", "deposit", 0, [(external, -amount), (source, amount)])
        )
    return book


class EscrowMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        self.book = new_book(self.ledger)
        self.now = 0
        self.n = 0
        self.escrows: list[str] = []
        self.log: list[tuple[str, Any, int]] = []  # ("action", record, at) | ("advance", None, at)
        self.sent: list[EscrowAction] = []
        self.outcomes: dict[str, Outcome] = {}

    # -- rules ------------------------------------------------------------------------------
    @rule(
        asset=st.sampled_from(["USD", "USD", "BTC"]),
        minor=st.integers(min_value=1, max_value=90_000),
        conds=conditions,
        inspection=st.sampled_from([0, 1_000, 5_000]),
        lapse=st.sampled_from(["accept", "refund", "escalate"]),
        fund_timeout=st.sampled_from([0, 2_000]),
        fee=st.sampled_from([0, 250]),
        reserve=st.sampled_from([0, 1_000]),
        broker=st.booleans(),
        auto=st.booleans(),
    )
    def open(
        self,
        asset: str,
        minor: int,
        conds: list[tuple[str, str]],
        inspection: int,
        lapse: str,
        fund_timeout: int,
        fee: int,
        reserve: int,
        broker: bool,
        auto: bool,
    ) -> None:
        escrow_id = f"e{len(self.escrows)}"
        payees = [{"party": "S", "share_bps": 7_500}, {"party": "K", "share_bps": 2_500}] if broker else []
        terms = {
            "asset": asset,
            "amount": f"{minor // 100}.{minor % 100:02d}",
            "buyer": "B",
            "seller": "S",
            "platform": "P",
            "arbiter": "A",
            "payees": payees,
            "fee_bps": fee,
            "reserve_bps": reserve,
            "conditions": [{"condition_id": f"c{i}", "kind": k, "role": r} for i, (k, r) in enumerate(conds)],
            "inspection_period_ms": inspection,
            "lapse_action": lapse,
            "fund_timeout_ms": fund_timeout,
            "auto_release": auto,
        }
        self.escrows.append(escrow_id)
        self._send({"action": "open", "escrow_id": escrow_id, "actor": "P", "terms": terms})

    @precondition(lambda self: self.escrows)
    @rule(data=st.data(), action=st.sampled_from(ACTIONS), actor=st.sampled_from(ACTORS), amount=amounts)
    def act(self, data: st.DataObject, action: str, actor: str, amount: str | None) -> None:
        escrow_id = data.draw(st.sampled_from(self.escrows))
        raw: dict[str, Any] = {"action": action, "escrow_id": escrow_id, "actor": actor}
        if action in ("release", "refund", "chargeback"):
            raw["amount"] = amount
        elif action == "approve":
            raw["amount"] = amount or "1.00"
        elif action == "satisfy":
            raw["condition_id"] = f"c{data.draw(st.integers(0, 3))}"
        elif action == "decide":
            raw["buyer_share_bps"] = data.draw(st.integers(0, 10_000))
        elif action == "chargeback_resolve":
            raw["won"] = data.draw(st.booleans())
        self._send(raw)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """The same action id again: the first outcome, and nothing changes."""
        action = data.draw(st.sampled_from(self.sent))
        first = self.outcomes[action.action_id]
        before = (self.ledger.state_digest(), self.book.digest())
        again = self.book.apply(action, self.now)
        assert again.duplicate and again.events == first.events and again.reject == first.reject
        assert (self.ledger.state_digest(), self.book.digest()) == before
        self.log.append(("action", action, self.now))

    @rule(by=st.sampled_from([1, 500, 1_000, 3_000]))
    def tick(self, by: int) -> None:
        self.now += by
        for outcome in self.book.advance(self.now):
            self._check_outcome(outcome, None)
        self.log.append(("advance", None, self.now))

    # -- checks -----------------------------------------------------------------------------
    def _send(self, raw: dict[str, Any]) -> None:
        self.n += 1
        action = escrow_action({**raw, "action_id": f"a{self.n}"})
        view = self.book.view(action.escrow_id)
        before_state = None if view is None else view.state
        before = (self.ledger.state_digest(), self.book.digest())
        outcome = self.book.apply(action, self.now)
        self.outcomes[action.action_id] = outcome
        self.sent.append(action)
        self.log.append(("action", action, self.now))
        if outcome.reject is not None:
            assert not outcome.events
            assert self.ledger.state_digest() == before[0]  # a refusal changes nothing
        self._check_outcome(outcome, (action.action, before_state))

    def _check_outcome(self, outcome: Outcome, sent: tuple[str, EscrowState | None] | None) -> None:
        for event in outcome.events:
            paid = isinstance(event, EscrowMovement) and event.kind in (
                MovementKind.RELEASED,
                MovementKind.REFUNDED,
            )
            if paid and sent is not None and sent[1] is EscrowState.DISPUTED:
                assert sent[0] == "decide"  # out of a dispute only by the arbiter's decision
            if isinstance(event, EscrowTransition) and event.from_state is EscrowState.DISPUTED:
                assert event.action in ("decide", "approve", "settle")

    @invariant()
    def books_balance(self) -> None:
        # The book's own check covers per-escrow conservation, "terminal escrows hold nothing"
        # (holds_funds ⇔ remaining > 0) and the escrow account; the ledger's, the trial balance.
        self.book.check_invariants()
        self.ledger.check_invariants()

    def teardown(self) -> None:
        """Replay gives the same state, byte for byte."""
        ledger = Ledger()
        book = new_book(ledger)
        for kind, record, at in self.log:
            if kind == "action":
                book.apply(record, at)
            else:
                book.advance(at)
        assert book.digest() == self.book.digest()
        assert ledger.state_digest() == self.ledger.state_digest()


EscrowMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEscrowMachine = EscrowMachine.TestCase
