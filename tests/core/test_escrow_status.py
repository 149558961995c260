"""Dispute status mapping: every phase to each PSP and back keeps whether it is over and who
won (a split reads back as the buyer's win: each PSP names a partial loss ``lost``); every PSP
status means some phase."""

from __future__ import annotations

import pytest

from clearlane.core.escrow import status as st
from clearlane.core.escrow.status import DisputePhase


def _same_meaning(a: DisputePhase, b: DisputePhase) -> bool:
    split_as_loss = {a.outcome, b.outcome} == {"split", "buyer"}
    return (a.outcome is None) == (b.outcome is None) and (a.outcome == b.outcome or split_as_loss)


@pytest.mark.parametrize("phase", list(DisputePhase))
def test_round_trips_keep_the_terminal_meaning(phase: DisputePhase) -> None:
    assert _same_meaning(phase, st.FROM_STRIPE[st.STRIPE[phase]])
    assert _same_meaning(phase, st.from_mangopay(*st.MANGOPAY[phase]))
    assert _same_meaning(phase, st.from_hyperswitch(*st.HYPERSWITCH[phase]))


def test_every_psp_status_means_a_phase() -> None:
    assert len(st.FROM_STRIPE) == 8 and len(st.FROM_MANGOPAY) == 6 and len(st.FROM_HYPERSWITCH) == 7
    assert {s for s, _ in st.HYPERSWITCH.values()} <= set(st.FROM_HYPERSWITCH)
    assert {s for s, _ in st.HYPERSWITCH.values()} and {g for _, g in st.HYPERSWITCH.values()} <= set(
        st.HYPERSWITCH_STAGES
    )
    assert set(st.STRIPE.values()) <= set(st.FROM_STRIPE)
    assert {s for s, _ in st.MANGOPAY.values()} <= set(st.FROM_MANGOPAY)
