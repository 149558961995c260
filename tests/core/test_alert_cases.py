"""Alerts on the one case workflow: an acknowledgement with a note and a TTL that lapses (the
alert is open again), snooze expiry, silence recorded in the trail without a state change, and
Alertmanager's matcher and silence semantics."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.cases import (
    Action,
    CaseError,
    CaseKind,
    CaseState,
    CaseSubject,
    Severity,
    act,
    due_actions,
    open_case,
    verify_events,
)
from clearlane.core.cases.silences import (
    SilenceState,
    alert_labels,
    expire_silence,
    format_labels,
    matcher,
    new_silence,
    parse_labels,
    silence_from_row,
    silence_row,
    silencing,
)

T0 = 1_763_700_000_000
LABELS = {"pool": "P1", "queue": "anchor_backlog"}
ALERT = CaseSubject(
    CaseKind.ALERT, "AnchorBacklog", "fp", "2026-11-21", format_labels(LABELS), 0, "backlog 40 > 20", "", 0,
    Severity.HIGH,
)  # fmt: skip


def test_ack_needs_note_and_ttl_and_lapses_back_to_open() -> None:
    case, opened = open_case(ALERT, actor="rules", at_ms=T0)
    for kwargs, code in (
        ({"until_ms": T0 + 10}, "CASE_NOTE_REQUIRED"),
        ({"note": "on it"}, "CASE_ACK_INVALID"),
    ):
        with pytest.raises(CaseError) as info:
            act(case, Action.ACKNOWLEDGE, actor="ops", at_ms=T0, **kwargs)  # type: ignore[arg-type]
        assert info.value.code == code
    case, acked = act(case, Action.ACKNOWLEDGE, actor="ops", at_ms=T0, note="on it", until_ms=T0 + 100)
    assert case.state is CaseState.IN_REVIEW and case.ack_until_ms == T0 + 100
    assert due_actions(case, T0 + 99) == []
    with pytest.raises(CaseError) as info:
        act(case, Action.ACK_LAPSE, actor="alerts", at_ms=T0 + 99)
    assert info.value.code == "CASE_ACK_NOT_LAPSED"
    assert due_actions(case, T0 + 100) == [Action.ACK_LAPSE]
    case, lapsed = act(case, Action.ACK_LAPSE, actor="alerts", at_ms=T0 + 100)
    assert case.state is CaseState.OPEN and case.ack_until_ms is None
    assert verify_events([opened, acked, lapsed])


def test_snooze_expiry_and_resolve_clear_the_ack() -> None:
    case, _ = open_case(ALERT, actor="rules", at_ms=T0)
    case, _ = act(case, Action.ACKNOWLEDGE, actor="ops", at_ms=T0, note="n", until_ms=T0 + 100)
    case, _ = act(case, Action.SNOOZE, actor="ops", at_ms=T0 + 1, until_ms=T0 + 50)
    assert case.ack_until_ms is None and due_actions(case, T0 + 50) == [Action.UNSNOOZE]
    case, _ = act(case, Action.UNSNOOZE, actor="alerts", at_ms=T0 + 50)
    assert case.state is CaseState.OPEN


def test_silence_is_recorded_without_changing_state() -> None:
    case, _ = open_case(ALERT, actor="rules", at_ms=T0)
    case, _ = act(case, Action.ACKNOWLEDGE, actor="ops", at_ms=T0, note="n", until_ms=T0 + 100)
    with pytest.raises(CaseError):
        act(case, Action.SILENCE, actor="alerts", at_ms=T0 + 1)
    case, ev = act(case, Action.SILENCE, actor="alerts", at_ms=T0 + 1, silences=("sil-b", "sil-a"))
    assert (
        case.state is CaseState.IN_REVIEW and case.silenced_by == "sil-a,sil-b" and ev.detail == "sil-a,sil-b"
    )
    case, _ = act(case, Action.UNSILENCE, actor="alerts", at_ms=T0 + 2)
    assert case.silenced_by is None and case.ack_until_ms == T0 + 100
    with pytest.raises(CaseError):
        act(case, Action.UNSILENCE, actor="alerts", at_ms=T0 + 3)


def test_matchers_and_silence_window() -> None:
    m = [
        matcher({"name": "alertname", "value": "Anchor.*", "isRegex": True}),
        matcher({"name": "pool", "value": "P2", "isEqual": False}),
    ]
    s = new_silence(m, starts_at_ms=T0 + 10, ends_at_ms=T0 + 20, created_by="ops", comment="deploy", at_ms=T0)
    case, _ = open_case(ALERT, actor="rules", at_ms=T0)
    labels = alert_labels(case)
    assert labels == {**LABELS, "alertname": "AnchorBacklog", "severity": "high"}
    assert [s.state(t) for t in (T0, T0 + 10, T0 + 20)] == [
        SilenceState.PENDING, SilenceState.ACTIVE, SilenceState.EXPIRED,
    ]  # fmt: skip
    assert silencing([s], labels, T0 + 15) == (s.silence_id,)
    assert silencing([s], {**labels, "pool": "P2"}, T0 + 15) == ()
    assert silencing([s], {**labels, "alertname": "XAnchor"}, T0 + 15) == ()  # regexes are anchored
    ended = expire_silence(s, T0 + 12)
    assert ended.state(T0 + 12) is SilenceState.EXPIRED and silence_from_row(silence_row(ended)) == ended
    with pytest.raises(CaseError):
        expire_silence(ended, T0 + 13)


@pytest.mark.parametrize(
    ("matchers", "ends", "why"),
    [
        ([], T0 + 5, "1 to"),
        ([{"name": "pool", "value": ".*", "isRegex": True}], T0 + 5, "empty string"),
        ([{"name": "pool", "value": "P1"}], T0, "endsAt"),
        ([{"name": "bad-name", "value": "x"}], T0 + 5, "label name"),
        ([{"name": "pool", "value": "(", "isRegex": True}], T0 + 5, "bad regex"),
    ],
)
def test_bad_silences_are_refused(matchers: list[dict[str, object]], ends: int, why: str) -> None:
    with pytest.raises(CaseError) as info:
        new_silence(
            [matcher(m) for m in matchers],
            starts_at_ms=T0,
            ends_at_ms=ends,
            created_by="o",
            comment="c",
            at_ms=T0,
        )
    assert why in str(info.value)


def test_labels_round_trip_with_quotes() -> None:
    labels = {"a": 'say "hi"\\', "b": "line\nbreak"}
    assert parse_labels(format_labels(labels)) == labels


_ALERT_STEPS = st.lists(
    st.tuples(
        st.sampled_from(list(Action)[1:]),
        st.sampled_from([None, "a note"]),
        st.integers(0, 50),  # time passing before the action
        st.sampled_from([None, 5, 40]),  # until = at + this
        st.sampled_from([(), ("sil-a",), ("sil-a", "sil-b")]),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(_ALERT_STEPS, st.sampled_from([CaseKind.ALERT, CaseKind.EXCEPTION]))
def test_random_alert_sequences_keep_invariants(steps: list[tuple[Any, ...]], kind: CaseKind) -> None:
    """Any sequence of actions, timed actions included: refusals change nothing, every applied
    action keeps the invariants (act checks them and would raise IntegrityError), due_actions
    only names actions that apply, and the trail verifies."""
    case, event = open_case(replace(ALERT, kind=kind), actor="rules", at_ms=T0)
    events, at = [event], T0
    for action, note, wait, until, silences in steps:
        at += wait
        for due in due_actions(case, at):
            case, event = act(case, due, actor="alerts", at_ms=at)
            events.append(event)
        try:
            case, event = act(case, action, actor="ops", at_ms=at, note=note,
                              until_ms=None if until is None else at + until, silences=silences, owner="o")  # fmt: skip
        except CaseError:
            assert case.version == len(events)
            continue
        events.append(event)
        assert event.new_state is case.state and case.version == len(events)
    assert verify_events(events) and case.head == events[-1].hash
