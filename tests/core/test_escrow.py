"""The escrow rules, one scenario at a time (the property tests are in test_escrow_properties.py)."""

from __future__ import annotations

from typing import Any

import pytest

from clearlane.core.escrow import EscrowBook, EscrowPolicy, Outcome
from clearlane.core.escrow.rules import arbiter_split, clawback, release_split
from clearlane.core.ledger import HOUSE_OWNER, AccountKey, JournalEntry, Ledger, Purpose
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import EscrowMovement, EscrowTransition
from clearlane.core.model.inputs import escrow_action
from clearlane.core.model.states import EscrowState, MovementKind

SCALES = {"USD": 2}
PARTIES = {"buyer": "B", "seller": "S", "platform": "P", "arbiter": "A"}


class Desk:
    """A book on its own ledger, the buyer with 1,000.00 USD deposited, and a counter for ids."""

    def __init__(self, policy: EscrowPolicy | None = None, deposit: int = 100_000) -> None:
        self.ledger = Ledger()
        self.book = EscrowBook(self.ledger, SCALES, policy)
        self.n = 0
        self.now = 1_000
        source = self.book.accounts.source("B", "USD")
        external = self.book.accounts.external("USD")
        self.ledger.post_or_raise(
            JournalEntry.from_legs("dep", "deposit", 0, [(external, -deposit), (source, deposit)])
        )

    def act(self, action: str, actor: str, escrow: str = "e1", **fields: Any) -> Outcome:
        self.n += 1
        raw = {"action": action, "action_id": f"a{self.n}", "escrow_id": escrow, "actor": actor, **fields}
        outcome = self.book.apply(escrow_action(raw), self.now)
        self.book.check_invariants()
        self.ledger.check_invariants()
        return outcome

    def open(self, escrow: str = "e1", **terms: Any) -> Outcome:
        base: dict[str, Any] = {"asset": "USD", "amount": "500.00", **PARTIES}
        return self.act("open", "P", escrow, terms={**base, **terms})

    def funded(self, escrow: str = "e1", **terms: Any) -> None:
        self.open(escrow, **terms)
        self.act("agree", "B", escrow)
        self.act("agree", "S", escrow)
        assert self.act("fund", "B", escrow).applied

    def state(self, escrow: str = "e1") -> EscrowState:
        view = self.book.view(escrow)
        assert view is not None
        return view.state

    def balance(self, key: AccountKey) -> int:
        index = self.ledger.find_account(key)
        return 0 if index is None else self.ledger.balance(index).posted_minor


def code(outcome: Outcome) -> RejectCode | None:
    return None if outcome.reject is None else outcome.reject.code


INSPECTED = [
    {"condition_id": "delivered", "kind": "delivery_confirmed", "role": "buyer"},
    {"condition_id": "title", "kind": "title_transferred", "role": "platform"},
    {"condition_id": "inspected", "kind": "inspection_passed", "role": "buyer"},
]


def test_a_car_deal_walks_agree_fund_conditions_inspection_release() -> None:
    d = Desk()
    d.funded(conditions=INSPECTED, inspection_period_ms=3_600_000, fee_bps=250, reserve_bps=1_000)
    available = d.ledger.balance(d.book.accounts.source("B", "USD")).available_minor
    assert available == 50_000  # the hold reduced the buyer's available balance at once
    assert d.state() is EscrowState.FUNDED
    assert code(d.act("satisfy", "S", condition_id="delivered")) is RejectCode.ESCROW_ROLE_NOT_ALLOWED
    d.act("satisfy", "B", condition_id="delivered")
    d.act("satisfy", "P", condition_id="title")
    assert d.state() is EscrowState.INSPECTION
    outcome = d.act("satisfy", "B", condition_id="inspected")
    assert d.state() is EscrowState.RELEASED  # auto-release once every condition is met
    moved = [e for e in outcome.events if isinstance(e, EscrowMovement)]
    assert [m.kind for m in moved] == [MovementKind.RELEASED]
    # 500.00: fee 2.5 % = 12.50; reserve 10 % of 487.50 = 48.75; the seller 438.75
    assert d.balance(AccountKey("S", "USD", Purpose.PAYABLE)) == 43_875
    assert d.balance(AccountKey("S", "USD", Purpose.RESERVE)) == 4_875
    assert d.balance(AccountKey(HOUSE_OWNER, "USD", Purpose.FEES, "escrow")) == 1_250
    view = d.book.view("e1")
    assert view is not None
    assert (view.where.escrow, view.where.clearing, view.where.final) == (0, 43_875, 6_125)


def test_every_transition_names_from_to_actor_reason_and_time() -> None:
    d = Desk()
    d.open()
    outcome = d.act("agree", "B")
    (event,) = outcome.events
    assert isinstance(event, EscrowTransition)
    assert (event.from_state, event.to_state, event.actor, event.role) == (
        EscrowState.DRAFT,
        EscrowState.DRAFT,
        "B",
        "buyer",
    )
    assert event.reason == "buyer agreed" and event.at_ms == d.now and event.version == 2


def test_partial_releases_without_limit_until_nothing_remains() -> None:
    d = Desk()
    d.funded(auto_release=False)
    for _ in range(9):
        assert d.act("release", "P", amount="50.00").applied
        assert d.state() is EscrowState.RELEASABLE
    assert code(d.act("release", "P", amount="50.01")) is RejectCode.ESCROW_AMOUNT_EXCEEDS_REMAINING
    d.act("release", "P")  # the remainder
    assert d.state() is EscrowState.RELEASED
    assert d.balance(AccountKey("S", "USD", Purpose.PAYABLE)) == 50_000


def test_multi_payee_split_and_fee_post_in_one_entry() -> None:
    d = Desk()
    payees = [{"party": "S", "share_bps": 7_000}, {"party": "BROKER", "share_bps": 3_000}]
    d.open(payees=payees, fee_bps=100)
    d.act("agree", "B")
    d.act("agree", "S")
    outcome = d.act("fund", "B")
    released = [
        e for e in outcome.events if isinstance(e, EscrowMovement) and e.kind is MovementKind.RELEASED
    ]
    (movement,) = released
    assert sorted(movement.legs) == sorted(
        [
            ("HOUSE", "escrow", -50_000),
            ("HOUSE", "fees", 500),
            ("S", "payable", 34_650),
            ("BROKER", "payable", 14_850),
        ]
    )


def test_a_hold_that_would_overdraw_is_refused_and_changes_nothing() -> None:
    d = Desk(deposit=40_000)
    d.open()
    d.act("agree", "B")
    d.act("agree", "S")
    before = d.ledger.state_digest()
    outcome = d.act("fund", "B")
    assert code(outcome) is RejectCode.ESCROW_FUNDS_INSUFFICIENT
    assert d.state() is EscrowState.AGREED
    assert d.ledger.state_digest() == before


def test_a_refused_action_id_answers_the_same_refusal_and_never_succeeds_later() -> None:
    d = Desk(deposit=40_000)
    d.open()
    d.act("agree", "B")
    d.act("agree", "S")
    raw = {"action": "fund", "action_id": "fund-1", "escrow_id": "e1", "actor": "B"}
    first = d.book.apply(escrow_action(raw), 5)
    source = d.book.accounts.source("B", "USD")
    external = d.book.accounts.external("USD")
    d.ledger.post_or_raise(
        JournalEntry.from_legs("top-up", "deposit", 6, [(external, -20_000), (source, 20_000)])
    )
    again = d.book.apply(escrow_action(raw), 7)
    assert again.duplicate and again.reject == first.reject and d.state() is EscrowState.AGREED
    other = d.book.apply(escrow_action({**raw, "actor": "S"}), 8)
    assert code(other) is RejectCode.ID_CONFLICT


def test_dispute_blocks_release_and_refund_until_the_arbiter_splits() -> None:
    d = Desk()
    d.funded(auto_release=False)
    d.act("dispute", "B", reason="not as described")
    assert code(d.act("release", "P")) is RejectCode.ESCROW_DISPUTED
    assert code(d.act("refund", "P")) is RejectCode.ESCROW_DISPUTED
    assert code(d.act("decide", "P", buyer_share_bps=5_000)) is RejectCode.ESCROW_ROLE_NOT_ALLOWED
    d.act("decide", "A", buyer_share_bps=3_333)
    view = d.book.view("e1")
    assert view is not None and view.state is EscrowState.RELEASED
    # 3,333 bps of 50,000 = 16,665 back to the buyer (rounded down); 33,335 released
    assert (view.refunded_minor, view.released_minor) == (16_665, 33_335)


def test_inspection_lapse_fires_once_from_the_engine_clock() -> None:
    for lapse, final in (
        ("accept", EscrowState.RELEASED),
        ("refund", EscrowState.REFUNDED),
        ("escalate", EscrowState.DISPUTED),
    ):
        d = Desk()
        d.funded(conditions=INSPECTED[2:], inspection_period_ms=1_000, lapse_action=lapse)
        assert d.state() is EscrowState.INSPECTION
        assert d.book.advance(d.now + 999) == []
        (fired,) = d.book.advance(d.now + 1_000)
        transitions = [e for e in fired.events if isinstance(e, EscrowTransition)]
        assert transitions and all(t.actor == "engine" for t in transitions)
        assert d.state() is final
        assert d.book.advance(d.now + 10_000) == []
        d.book.check_invariants()


def test_fund_timeout_cancels_and_cancel_refunds_a_funded_escrow() -> None:
    d = Desk()
    d.open(fund_timeout_ms=500)
    d.act("agree", "B")
    d.act("agree", "S")
    d.book.advance(d.now + 500)
    assert d.state() is EscrowState.CANCELLED
    assert code(d.act("fund", "B")) is RejectCode.ESCROW_WRONG_STATE
    d.funded("e2", conditions=INSPECTED[:1])
    assert code(d.act("cancel", "B", "e2")) is RejectCode.ESCROW_ROLE_NOT_ALLOWED
    d.act("cancel", "P", "e2")
    assert d.state("e2") is EscrowState.CANCELLED
    assert d.ledger.balance(d.book.accounts.source("B", "USD")).posted_minor == 100_000


def test_high_value_release_waits_for_the_platform_approval() -> None:
    d = Desk(EscrowPolicy(approval_over_minor={"USD": 10_000}))
    d.funded()
    assert d.state() is EscrowState.RELEASABLE  # auto-release held back
    assert code(d.act("release", "B")) is RejectCode.ESCROW_APPROVAL_REQUIRED
    assert d.act("release", "B", amount="100.00").applied  # under the threshold
    d.act("approve", "P", amount="500.00")  # the approval releases the rest at once
    assert d.state() is EscrowState.RELEASED


def test_chargeback_claws_back_payable_then_reserve_then_platform_loss() -> None:
    d = Desk(EscrowPolicy(reserve_overdraft_minor={"USD": 1_000}))
    d.funded(reserve_bps=1_000)  # released at once: payable 45,000, reserve 5,000
    d.act("settle", "P")  # paid out: nothing left payable
    d.act("chargeback", "P", amount="300.00")
    assert d.state() is EscrowState.CHARGEBACK
    assert d.balance(AccountKey("S", "USD", Purpose.RESERVE)) == 5_000 - 30_000 + 24_000  # down to -1,000
    assert d.balance(AccountKey(HOUSE_OWNER, "USD", Purpose.LOSS, "escrow")) == -24_000
    assert d.book.negative_reserves() == [("S", "USD", -1_000)]
    d.act("chargeback_resolve", "P", won=True)
    assert d.state() is EscrowState.RELEASED
    assert d.balance(AccountKey(HOUSE_OWNER, "USD", Purpose.LOSS, "escrow")) == 0
    d.act("chargeback", "P")
    d.act("chargeback_resolve", "P", won=False)
    assert d.state() is EscrowState.CLOSED


def test_refunded_funds_cannot_also_be_charged_back() -> None:
    d = Desk()
    d.funded(auto_release=False)
    d.act("refund", "S", amount="200.00")
    d.act("release", "P")
    assert code(d.act("chargeback", "P", amount="300.01")) is RejectCode.ESCROW_AMOUNT_EXCEEDS_REMAINING


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"asset": "EUR"}, "terms.asset"),
        ({"amount": "1.001"}, "terms.amount"),
        ({"arbiter": "B"}, "terms"),
        ({"payees": [{"party": "S", "share_bps": 9_000}]}, "terms.payees"),
    ],
)
def test_bad_terms_name_the_field(terms: dict[str, Any], field: str) -> None:
    d = Desk()
    outcome = d.open(**terms)
    assert outcome.reject is not None and outcome.reject.field == field
    assert d.book.view("e1") is None


def test_rounding_rules() -> None:
    split = release_split(1_001, 250, 1_000, (("S", 6_667), ("X", 3_333)))
    assert (split.fee, split.reserve, split.total) == (25, 97, 1_001)
    assert split.payees == (("S", 587), ("X", 292))
    assert arbiter_split(7, 5_000) == (3, 4)
    taken = clawback(100, 30, 20, 10)
    assert (taken.payable, taken.reserve, taken.loss) == (30, 30, 40)


def test_the_seller_reserve_is_released_after_its_hold_by_the_engine_clock() -> None:
    d = Desk()
    d.funded(reserve_bps=1_000, reserve_hold_ms=5_000)  # released at once: reserve 5,000
    reserve = AccountKey("S", "USD", Purpose.RESERVE)
    payable = AccountKey("S", "USD", Purpose.PAYABLE)
    assert (d.balance(reserve), d.balance(payable)) == (5_000, 45_000)
    assert d.book.advance(d.now + 4_999) == []  # not yet
    (fired,) = d.book.advance(d.now + 5_000)
    moved = [e for e in fired.events if isinstance(e, EscrowMovement)]
    assert [(m.kind, m.amount_minor) for m in moved] == [(MovementKind.RESERVE_RELEASED, 5_000)]
    assert (d.balance(reserve), d.balance(payable)) == (0, 50_000)
    view = d.book.view("e1")
    assert view is not None and view.reserved_minor == 0 and view.where.clearing == 50_000
    assert d.book.advance(d.now + 10_000) == []  # exactly once
    d.book.check_invariants()
    d.ledger.check_invariants()


def test_a_reserve_drawn_by_a_chargeback_is_not_released_twice() -> None:
    d = Desk()
    d.funded(reserve_bps=1_000, reserve_hold_ms=5_000)
    d.act("settle", "P")  # the payable leaves: a chargeback now draws on the reserve
    assert d.act("chargeback", "P", amount="30.00").applied  # 3,000 of the 5,000 reserve
    (fired,) = d.book.advance(d.now + 5_000)
    moved = [e for e in fired.events if isinstance(e, EscrowMovement)]
    assert [m.amount_minor for m in moved] == [2_000]
    d.book.check_invariants()
