"""One enum per lifecycle: codes and labels are stored and served, so they never change."""

from __future__ import annotations

import pytest

from clearlane.core.model.states import BATCH_STATE_LABELS, BatchState, TradeState


def test_batch_state_codes_and_labels_are_stable() -> None:
    assert [(int(s), s.label) for s in BatchState] == [
        (0, "open"),
        (1, "cleared"),
        (2, "anchored"),
        (3, "final"),
        (4, "unwound"),
    ]
    assert BATCH_STATE_LABELS == ("open", "cleared", "anchored", "final", "unwound")


def test_trade_state_codes_and_labels_are_stable() -> None:
    assert {int(s): s.label for s in TradeState} == {
        0: "received",
        1: "routed",
        2: "batched",
        3: "submitted",
        4: "cleared",
        5: "anchored",
        6: "final",
        10: "rejected",
        11: "failed",
        12: "unwound",
    }


@pytest.mark.parametrize("state", list(BatchState))
def test_batch_state_label_round_trips(state: BatchState) -> None:
    assert BatchState.of_label(state.label) is state
    assert BatchState(int(state)) is state


@pytest.mark.parametrize("label", ["", "Open", "closed", "1"])
def test_not_a_batch_state(label: str) -> None:
    with pytest.raises(ValueError):
        BatchState.of_label(label)


def test_batch_state_derivations() -> None:
    assert [s for s in BatchState if s.terminal] == [BatchState.FINAL, BatchState.UNWOUND]
    assert BatchState.OPEN.trade_state is TradeState.BATCHED
    assert all(s.trade_state.label == s.label for s in BatchState if s != BatchState.OPEN)


def test_read_model_and_api_use_the_one_encoding() -> None:
    from typing import get_args

    from clearlane.adapters.http import schemas
    from clearlane.node.projections import common

    assert common.BATCH_STATE_NAMES == BATCH_STATE_LABELS
    assert (common.B_OPEN, common.B_FINAL) == (BatchState.OPEN, BatchState.FINAL)
    assert get_args(schemas.BatchOut.model_fields["state"].annotation) == BATCH_STATE_LABELS


def test_every_label_is_its_lower_case_name() -> None:
    """The labels are looked up per enum (members of different enums with equal codes compare
    equal as ints, so one table for all would mix them): each is its member's name, lower-cased."""
    from clearlane.core.model.states import EscrowState

    for enum in (TradeState, BatchState, EscrowState):
        for member in enum:
            assert member.label == member.name.lower(), member
    assert BatchState(1).label == "cleared" and TradeState(1).label != "cleared"
