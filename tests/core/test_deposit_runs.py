"""A run of deposits in one EventRun (collateral.apply_deposits: one ledger call) has exactly the
outcome of applying its members one by one (collateral.apply_deposit each: a run of one, posted
with Ledger.post)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearlane.core.engine import collateral
from clearlane.core.engine.limits import TRANSFER_MAX_MINOR
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.inputs import event_run_payload
from clearlane.testing.harness import Harness
from tests.conftest import T0, config_with

_PARTICIPANTS = ["MM-ALPHA", "MM-BETA", "BRK-NORTH", "NOBODY"]  # NOBODY: not configured
_AMOUNTS = st.one_of(
    st.integers(1, 10**9).map(lambda m: f"{m // 100}.{m % 100:02d}"),
    st.just(str(TRANSFER_MAX_MINOR // 100)),  # three of these overflow a balance: refused
    st.sampled_from(["1.234", "abc", "-5", str(TRANSFER_MAX_MINOR)]),  # precision, bad, too big
)
_MEMBER = st.tuples(
    st.sampled_from(["collateral_deposit", "collateral_deposit", "collateral_deposit", "price_mark"]),
    st.integers(0, 12),  # small id range: repeats are duplicates or id conflicts
    st.sampled_from(_PARTICIPANTS),
    st.sampled_from(["USD", "USD", "EUR", "XXX"]),
    _AMOUNTS,
)


def _members(spec: list[tuple[str, int, str, str, str]]) -> list[dict[str, Any]]:
    members = []
    for kind, n, participant, asset, amount in spec:
        if kind == "price_mark":
            members.append({"type": kind, "mark_id": f"M{n}", "asset": "EUR", "mark_usd": "1.08"})
        else:
            members.append(
                {
                    "type": kind,
                    "deposit_id": f"D{n}",
                    "participant": participant,
                    "asset": asset,
                    "amount": amount,
                }
            )
    return members


def _outcome(h: Harness) -> tuple[Any, ...]:
    step = h.steps[-1]
    engine = h.engine
    return (
        [repr(e) for e in step.events],
        [repr(r) for r in step.rejects()],
        [repr(r) for r in step.conflicts],
        step.duplicates,
        engine.ledger.state_digest(),
        engine.collateral.tobytes(),
        engine.collateral_digest.digest(),
        dict(engine.seen_event_ids),
        list(engine.stats.alerts),
        dict(engine.stats.rejects_by_code),
        engine.stats.ledger_refused,
        engine.state_root(),
    )


def _apply(
    members: list[dict[str, Any]], one_by_one: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, ...]:
    with monkeypatch.context() as patch:
        if one_by_one:
            run = collateral.apply_deposits
            patch.setattr(
                collateral,
                "apply_deposits",
                lambda engine, entries, out: [run(engine, [e], out) for e in entries],
            )
        h = Harness(config_with(), T0)
        h.apply(
            "collateral_deposit",
            {"deposit_id": "D0", "participant": "MM-ALPHA", "asset": "USD", "amount": "5"},
            T0,
        )
        h.apply("events", event_run_payload(members), T0 + 1000)
        return _outcome(h)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.lists(_MEMBER, min_size=1, max_size=24))
def test_a_deposit_run_is_its_members_one_by_one(
    spec: list[tuple[str, int, str, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    members = _members(spec)
    assert _apply(members, False, monkeypatch) == _apply(members, True, monkeypatch)


def test_a_refusal_keeps_its_place_among_the_rejects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The third deposit overflows the balance and is refused by the ledger, the fourth names no
    participant, the fifth is posted: the rejects stay in member order."""
    big = str(TRANSFER_MAX_MINOR // 100)
    members = _members(
        [("collateral_deposit", k, "MM-BETA", "USD", big) for k in range(1, 4)]
        + [
            ("collateral_deposit", 9, "NOBODY", "USD", "1.00"),
            ("collateral_deposit", 10, "MM-BETA", "USD", "1.00"),
        ]
    )
    batched = _apply(members, False, monkeypatch)
    assert batched == _apply(members, True, monkeypatch)
    h = Harness(config_with(), T0)
    h.apply("events", event_run_payload(members), T0)
    rejects = h.steps[-1].rejects()
    assert [(r.code, r.input_id) for r in rejects] == [
        (RejectCode.LEDGER_REFUSED, "D3"),
        (RejectCode.UNKNOWN_PARTICIPANT, "D9"),
    ]
