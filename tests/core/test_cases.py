"""The generic case workflow: transitions, required notes, versions, SLA and ageing, and the
hash-chained trail; random action sequences keep every invariant."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.cases import (
    Action,
    CaseError,
    CaseKind,
    CaseState,
    CaseSubject,
    Resolution,
    Severity,
    act,
    ageing_bucket,
    case_id,
    open_case,
    severity_for,
    verify_events,
)
from clearlane.core.cases.workflow import DAY_MS, HOUR_MS

T0 = 1_763_700_000_000
SUBJECT = CaseSubject(
    CaseKind.EXCEPTION, "recon.v1", "fp1", "2026-11-20", "external:e1", 202, "UNMATCHED_EXTERNAL", "USD", 123_45,
    Severity.LOW,
)  # fmt: skip


def test_lifecycle_with_trail() -> None:
    case, opened = open_case(SUBJECT, actor="recon", at_ms=T0)
    assert case.case_id == case_id(CaseKind.EXCEPTION, "recon.v1", "fp1", "2026-11-20")
    assert case.state is CaseState.OPEN and case.due_at_ms == T0 + 168 * HOUR_MS
    events = [opened]
    for action, kwargs in [
        (Action.ASSIGN, {"owner": "ops-anna"}),
        (Action.ACKNOWLEDGE, {}),
        (Action.RECUR, {}),
        (Action.RESOLVE, {"note": "booked the missing fee", "resolution": Resolution.FIXED_BY_BOOKING}),
        (Action.REOPEN, {"note": "fee booked twice"}),
        (Action.ACCEPT, {"note": "below threshold, written off"}),
    ]:
        case, event = act(case, action, actor="ops-anna", at_ms=T0 + len(events), **kwargs)  # type: ignore[arg-type]
        events.append(event)
    assert case.state is CaseState.ACCEPTED and case.resolution is Resolution.WRITTEN_OFF
    assert case.owner == "ops-anna" and case.occurrences == 2 and case.version == 7
    assert [e.new_state for e in events][-3:] == [CaseState.RESOLVED, CaseState.OPEN, CaseState.ACCEPTED]
    assert verify_events(events) and case.head == events[-1].hash
    tampered = [*events[:3], replace(events[3], actor="mallory"), *events[4:]]
    assert not verify_events(tampered)


@pytest.mark.parametrize(
    ("action", "kwargs", "code"),
    [
        (Action.RESOLVE, {}, "CASE_NOTE_REQUIRED"),
        (Action.ACCEPT, {"note": "  "}, "CASE_NOTE_REQUIRED"),
        (Action.REOPEN, {"note": "x"}, "CASE_TRANSITION_INVALID"),
        (Action.UNSNOOZE, {}, "CASE_TRANSITION_INVALID"),
        (Action.ASSIGN, {}, "CASE_OWNER_REQUIRED"),
        (Action.SNOOZE, {"until_ms": T0}, "CASE_SNOOZE_INVALID"),
        (Action.NOTE, {"note": "x", "expected_version": 5}, "CASE_VERSION_CONFLICT"),
    ],
)
def test_refused_actions_change_nothing(action: Action, kwargs: dict[str, object], code: str) -> None:
    case, _ = open_case(SUBJECT, actor="recon", at_ms=T0)
    with pytest.raises(CaseError) as info:
        act(case, action, actor="ops", at_ms=T0 + 1, **kwargs)  # type: ignore[arg-type]
    assert info.value.code == code


def test_snooze_and_closed_cases() -> None:
    case, _ = open_case(SUBJECT, actor="recon", at_ms=T0)
    case, _ = act(case, Action.SNOOZE, actor="ops", at_ms=T0, until_ms=T0 + DAY_MS)
    assert case.state is CaseState.SNOOZED and case.snoozed_until_ms == T0 + DAY_MS
    case, _ = act(case, Action.UNSNOOZE, actor="recon", at_ms=T0 + DAY_MS)
    assert case.state is CaseState.OPEN and case.snoozed_until_ms is None
    case, _ = act(case, Action.RESOLVE, actor="recon", at_ms=T0 + 2, note="auto", resolution=Resolution.AUTO)
    with pytest.raises(CaseError):
        act(case, Action.RECUR, actor="recon", at_ms=T0 + 3)
    assert not case.overdue(T0 + 400 * DAY_MS)


def test_severity_sla_and_ageing() -> None:
    assert [severity_for(a, 2) for a in (99_999, 100_000, 1_000_000, 10_000_000)] == [
        Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL,
    ]  # fmt: skip
    big, _ = open_case(replace(SUBJECT, severity=Severity.CRITICAL), actor="r", at_ms=T0)
    assert big.due_at_ms == T0 + DAY_MS and big.overdue(T0 + DAY_MS + 1)
    ages = [0, DAY_MS, 3 * DAY_MS - 1, 3 * DAY_MS, 29 * DAY_MS, 31 * DAY_MS]
    assert [ageing_bucket(T0, T0 + a) for a in ages] == ["0-1d", "1-3d", "1-3d", "3-7d", "7-30d", ">30d"]


_steps = st.lists(
    st.tuples(
        st.sampled_from(list(Action)[1:]), st.sampled_from([None, "a note"]), st.sampled_from([None, "ops"])
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(_steps)
def test_random_sequences_keep_invariants(steps: list[tuple[Action, str | None, str | None]]) -> None:
    case, event = open_case(SUBJECT, actor="recon", at_ms=T0)
    events = [event]
    for i, (action, note, owner) in enumerate(steps):
        at = T0 + i + 1
        try:
            case, event = act(case, action, actor="x", at_ms=at, note=note, owner=owner, until_ms=at + 10)
        except CaseError:
            assert case.version == len(events)  # nothing changed
            continue
        events.append(event)
        assert case.version == len(events) and event.new_state is case.state
        assert (case.resolution is not None) == (not case.state.active)
    assert verify_events(events)
