"""Ledger adjustments (issue 13, docs/RECONCILIATION.md §8): an operator's balanced journal entry,
posted once as kind ``adjustment``, refused with a stable code and no change otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clearlane.core.config import ClearingConfig, load_config
from clearlane.core.engine import Engine, LogEntry
from clearlane.core.engine.adjust import entry_id
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.inputs import LedgerAdjustment, log_payload
from clearlane.core.money import format_minor
from clearlane.testing.harness import Harness
from tests.conftest import EXAMPLE_CONFIG, T0


def adjustment(adjustment_id: str, *legs: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "adjustment_id": adjustment_id,
        "case_id": "exc-1",
        "operator": "ops-alice",
        "reason": "bank fee booked twice",
        "legs": list(legs),
        **extra,
    }


REFUND = (
    {"house": "fees", "asset": "USD", "amount": "-12.50"},
    {"participant": "MM-ALPHA", "asset": "USD", "amount": "12.50"},
)


def test_balanced_adjustment_posts_once(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    before = h.engine.ledger.n_entries
    step = h.apply("ledger_adjustment", adjustment("adj-1", *REFUND), T0 + 1)
    (event,) = step.adjustments()
    assert event.entry_id == entry_id("adj-1") and event.case_id == "exc-1"
    assert [m for _, _, m in event.legs] == [-1250, 1250]
    record = h.engine.ledger.record(event.entry_id)
    assert record is not None and record.entry.kind == "adjustment" and record.entry.ref == "exc-1"
    assert h.engine.ledger.n_entries == before + 1
    assert h.engine.ledger.trial_balance(T0 + 1).balanced
    h.engine.ledger.check_invariants()
    again = h.apply("ledger_adjustment", adjustment("adj-1", *REFUND), T0 + 2)
    assert not again.adjustments() and again.duplicates == 1 and not again.conflicts
    clash = h.apply("ledger_adjustment", adjustment("adj-1", *REFUND, reason="other"), T0 + 3)
    assert [c.code for c in clash.conflicts] == [RejectCode.ID_CONFLICT]
    assert h.engine.ledger.n_entries == before + 1


@pytest.mark.parametrize(
    ("legs", "code", "field"),
    [
        (({"house": "fees", "asset": "USD", "amount": "-12.50"}, {"participant": "MM-ALPHA", "asset": "USD", "amount": "12.49"}), RejectCode.ADJUSTMENT_UNBALANCED, "legs"),
        (({"house": "fees", "asset": "USD", "amount": "-1"}, {"participant": "MM-ALPHA", "asset": "EUR", "amount": "1"}), RejectCode.ADJUSTMENT_UNBALANCED, "legs"),
        (({"house": "fees", "asset": "USD", "amount": "0"}, {"participant": "MM-ALPHA", "asset": "USD", "amount": "0"}), RejectCode.ADJUSTMENT_UNBALANCED, "legs.0.amount"),
        (({"house": "fees", "asset": "USD", "amount": "-1.001"}, {"participant": "MM-ALPHA", "asset": "USD", "amount": "1.001"}), RejectCode.PRECISION_EXCEEDED, "legs.0.amount"),
        (({"house": "fees", "asset": "USD", "amount": "-1"}, {"participant": "NOBODY", "asset": "USD", "amount": "1"}), RejectCode.UNKNOWN_PARTICIPANT, "legs.1.participant"),
        (({"house": "fees", "asset": "XYZ", "amount": "-1"}, {"participant": "MM-ALPHA", "asset": "XYZ", "amount": "1"}), RejectCode.UNKNOWN_ASSET, "legs.0.asset"),
    ],
)  # fmt: skip
def test_refused_adjustment_changes_nothing(
    config: ClearingConfig, legs: tuple[dict[str, str], ...], code: RejectCode, field: str
) -> None:
    h = Harness(config, T0)
    root, before = h.engine.ledger.state_digest(), h.engine.ledger.n_entries
    step = h.apply("ledger_adjustment", adjustment("adj-x", *legs), T0 + 1)
    (reject,) = step.rejects()
    assert reject.code is code and reject.field == field and reject.input_id == "adj-x"
    assert not step.adjustments() and not step.ledger.new_entries
    assert h.engine.ledger.n_entries == before and h.engine.ledger.state_digest() == root
    # the id was not consumed: a corrected adjustment may reuse it
    assert h.apply("ledger_adjustment", adjustment("adj-x", *REFUND), T0 + 2).adjustments()


def test_edge_refuses_malformed_legs() -> None:
    for legs in (
        [{"asset": "USD", "amount": "1"}, {"house": "fees", "asset": "USD", "amount": "-1"}],  # no account
        [
            {"house": "collateral", "asset": "USD", "amount": "1"},
            {"house": "fees", "asset": "USD", "amount": "-1"},
        ],
        [
            {"house": "fees", "asset": "USD", "amount": "1e3"},
            {"house": "fees", "asset": "USD", "amount": "-1"},
        ],
        [{"house": "fees", "asset": "USD", "amount": "1"}] * 65,
    ):
        with pytest.raises(ValidationError):
            LedgerAdjustment.model_validate(adjustment("adj-1", *legs))


def test_replay_gives_the_same_state_root(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    h.apply("ledger_adjustment", adjustment("adj-1", *REFUND), T0 + 5)
    unbalanced = (REFUND[0], {"participant": "MM-ALPHA", "asset": "USD", "amount": "1"})
    assert h.apply("ledger_adjustment", adjustment("adj-2", *unbalanced), T0 + 6).rejects()
    again = Engine(config)
    for entry in h.log:
        payload = entry.payload
        raw = payload.model_dump(mode="json") if hasattr(payload, "model_dump") else payload
        again.apply(LogEntry(entry.seq, entry.at_ms, entry.kind, log_payload(entry.kind, raw)))
    assert again.pre_root() == h.engine.pre_root()  # the node also seals its chain head


ACCOUNTS = (
    {"house": "fees"},
    {"house": "external"},
    {"participant": "MM-ALPHA"},
    {"participant": "RTL-0001"},
)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3), st.sampled_from(["USD", "BTC"]), st.integers(-(10**9), 10**9).filter(bool)
        ),
        min_size=2,
        max_size=8,
    )
)
def test_posted_iff_balanced_per_asset_and_the_books_close(legs: list[tuple[int, str, int]]) -> None:
    config = load_config(EXAMPLE_CONFIG)
    h = Harness(config, T0)
    scales = {"USD": 2, "BTC": 8}
    body = [
        {**ACCOUNTS[i], "asset": asset, "amount": format_minor(amount, scales[asset])}
        for i, asset, amount in legs
    ]
    step = h.apply("ledger_adjustment", adjustment("adj-p", *body), T0 + 1)
    balanced = all(sum(m for _, a, m in legs if a == asset) == 0 for asset in scales)
    assert bool(step.adjustments()) == balanced
    if not balanced:
        assert [r.code for r in step.rejects()] == [RejectCode.ADJUSTMENT_UNBALANCED]
    assert h.engine.ledger.trial_balance(T0 + 1).balanced
    h.engine.ledger.check_invariants()
