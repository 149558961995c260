"""Cases: identity, states, actions, SLA and the hash-chained event trail (see the package doc).

Identity is ``(kind, rule, fingerprint, period)`` (Formance's alert model): the same break seen
again in the same period is a new *occurrence* of the open case, not a new case; a new period
opens a fresh case and never touches the old one. Every action returns the new case and the
event that records it; an action that is not allowed changes nothing and raises
:class:`CaseError` with a stable code.

Alerts (``CaseKind.ALERT``) add three things to the same machine. An acknowledgement carries a
note and a TTL (``ack_until_ms``): when it lapses (:func:`due_actions` says so, the node applies
``ack_lapse``) the alert is open again and notifies again — an ack is "I am on it", not "never
tell me again". ``silence`` / ``unsilence`` record in the trail that an Alertmanager-style
silence (core/cases/silences.py, its own object) started or stopped covering the case; they do
not change its state, so an acked alert stays acked while silenced. Snooze expiry is
``unsnooze``, also named by :func:`due_actions`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from clearlane.core.errors import InputError, IntegrityError
from clearlane.core.proofs.canonical import canonical_json

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
GENESIS = "0" * 64


class CaseKind(StrEnum):
    EXCEPTION = "exception"
    ALERT = "alert"
    DISPUTE = "dispute"


class CaseState(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_REVIEW = "in_review"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    ACCEPTED = "accepted"

    @property
    def active(self) -> bool:
        return self not in (CaseState.RESOLVED, CaseState.ACCEPTED)


class Action(StrEnum):
    OPEN = "open"
    RECUR = "recur"
    ASSIGN = "assign"
    ACKNOWLEDGE = "acknowledge"
    SNOOZE = "snooze"
    UNSNOOZE = "unsnooze"
    NOTE = "note"
    RESOLVE = "resolve"
    ACCEPT = "accept"
    REOPEN = "reopen"
    ACK_LAPSE = "ack_lapse"
    SILENCE = "silence"
    UNSILENCE = "unsilence"


class Resolution(StrEnum):
    """Why a case was closed: fixed by a booking, cleared by a later complete run, a business
    acceptance (written off, evidence frozen), a duplicate or a false positive."""

    FIXED_BY_BOOKING = "fixed_by_booking"
    AUTO = "auto"
    WRITTEN_OFF = "written_off"
    DUPLICATE = "duplicate"
    FALSE_POSITIVE = "false_positive"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


# Time to resolve per severity (Lerian Matcher's defaults): 24 h, 72 h, 120 h, 168 h.
SLA_MS = {
    Severity.CRITICAL: 24 * HOUR_MS,
    Severity.HIGH: 72 * HOUR_MS,
    Severity.MEDIUM: 120 * HOUR_MS,
    Severity.LOW: 168 * HOUR_MS,
}
AGEING_BUCKETS = (("0-1d", DAY_MS), ("1-3d", 3 * DAY_MS), ("3-7d", 7 * DAY_MS), ("7-30d", 30 * DAY_MS))

_ACTIVE = (CaseState.OPEN, CaseState.ASSIGNED, CaseState.IN_REVIEW, CaseState.SNOOZED)
_CLOSED = (CaseState.RESOLVED, CaseState.ACCEPTED)
# (action, from state) -> to state; None = the state does not change.
_TRANSITIONS: dict[Action, dict[CaseState, CaseState | None]] = {
    Action.RECUR: dict.fromkeys(_ACTIVE),
    Action.NOTE: dict.fromkeys((*_ACTIVE, *_CLOSED)),
    Action.ASSIGN: {s: (CaseState.ASSIGNED if s is CaseState.OPEN else None) for s in _ACTIVE},
    Action.ACKNOWLEDGE: {s: CaseState.IN_REVIEW for s in (CaseState.OPEN, CaseState.ASSIGNED)},
    Action.SNOOZE: {s: CaseState.SNOOZED for s in (CaseState.OPEN, CaseState.ASSIGNED, CaseState.IN_REVIEW)},
    Action.UNSNOOZE: {CaseState.SNOOZED: CaseState.OPEN},
    Action.RESOLVE: dict.fromkeys(_ACTIVE, CaseState.RESOLVED),
    Action.ACCEPT: dict.fromkeys(_ACTIVE, CaseState.ACCEPTED),
    Action.REOPEN: dict.fromkeys(_CLOSED, CaseState.OPEN),
    Action.ACK_LAPSE: {CaseState.IN_REVIEW: CaseState.OPEN},
    Action.SILENCE: dict.fromkeys(_ACTIVE),
    Action.UNSILENCE: dict.fromkeys((*_ACTIVE, *_CLOSED)),
}
_NOTE_REQUIRED = (Action.RESOLVE, Action.ACCEPT, Action.REOPEN, Action.NOTE)


class CaseError(InputError, ValueError, code="CASE_ACTION_INVALID"):
    """An action the case's state, version or arguments do not allow; nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Case:
    case_id: str
    kind: CaseKind
    rule: str
    fingerprint: str
    period: str
    subject: str
    reason_code: int
    reason: str
    severity: Severity
    asset: str
    amount_minor: int
    state: CaseState
    owner: str | None
    opened_at_ms: int
    due_at_ms: int
    updated_at_ms: int
    snoozed_until_ms: int | None
    resolution: Resolution | None
    occurrences: int
    version: int
    head: str
    # Alerts: when an acknowledgement lapses, and the silences (ids, comma-joined) covering it.
    ack_until_ms: int | None = None
    silenced_by: str | None = None

    def overdue(self, now_ms: int) -> bool:
        return self.state.active and now_ms > self.due_at_ms


@dataclass(frozen=True, slots=True)
class CaseEvent:
    case_id: str
    version: int
    action: Action
    prev_state: CaseState | None
    new_state: CaseState
    actor: str
    at_ms: int
    note: str | None
    detail: str
    prev_hash: str
    hash: str

    def body(self) -> bytes:
        return canonical_json(
            {
                "case_id": self.case_id, "version": self.version, "action": self.action.value,
                "prev_state": None if self.prev_state is None else self.prev_state.value,
                "new_state": self.new_state.value, "actor": self.actor, "at_ms": self.at_ms,
                "note": self.note, "detail": self.detail, "prev_hash": self.prev_hash,
            }
        )  # fmt: skip


def case_id(kind: CaseKind, rule: str, fingerprint: str, period: str) -> str:
    text = "\x1f".join((kind.value, rule, fingerprint, period))
    return "case-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def severity_for(amount_minor: int, scale: int) -> Severity:
    """Severity by the whole units at stake (Matcher's amount bands: 100k, 10k, 1k)."""
    whole = abs(amount_minor) // 10**scale
    if whole >= 100_000:
        return Severity.CRITICAL
    if whole >= 10_000:
        return Severity.HIGH
    if whole >= 1_000:
        return Severity.MEDIUM
    return Severity.LOW


def ageing_bucket(opened_at_ms: int, now_ms: int) -> str:
    age = max(0, now_ms - opened_at_ms)
    for name, upper in AGEING_BUCKETS:
        if age < upper:
            return name
    return ">30d"


def _event(
    case: Case, action: Action, prev: CaseState | None, actor: str, at_ms: int, note: str | None, detail: str
) -> CaseEvent:
    draft = CaseEvent(
        case.case_id, case.version, action, prev, case.state, actor, at_ms, note, detail, case.head, ""
    )
    return replace(draft, hash=hashlib.sha256(draft.body()).hexdigest())


@dataclass(frozen=True, slots=True)
class CaseSubject:
    """What a new case is about (the break it stands for)."""

    kind: CaseKind
    rule: str
    fingerprint: str
    period: str
    subject: str
    reason_code: int
    reason: str
    asset: str
    amount_minor: int
    severity: Severity


def open_case(what: CaseSubject, *, actor: str, at_ms: int, detail: str = "") -> tuple[Case, CaseEvent]:
    case = Case(
        case_id(what.kind, what.rule, what.fingerprint, what.period), what.kind, what.rule, what.fingerprint,
        what.period, what.subject, what.reason_code, what.reason, what.severity, what.asset, what.amount_minor,
        CaseState.OPEN, None, at_ms, at_ms + SLA_MS[what.severity], at_ms, None, None, 1, 1, GENESIS,
    )  # fmt: skip
    event = _event(case, Action.OPEN, None, actor, at_ms, None, detail)
    return replace(case, head=event.hash), event


def _check(case: Case, action: Action, note: str | None, expected_version: int | None) -> CaseState | None:
    allowed = _TRANSITIONS.get(action)
    if allowed is None or case.state not in allowed:
        raise CaseError(
            "CASE_TRANSITION_INVALID", f"action: cannot {action.value} a case that is {case.state.value}"
        )
    if expected_version is not None and expected_version != case.version:
        raise CaseError(
            "CASE_VERSION_CONFLICT", f"version: case is at {case.version}, not {expected_version}"
        )
    if action in _NOTE_REQUIRED and not (note and note.strip()):
        raise CaseError("CASE_NOTE_REQUIRED", f"note: required to {action.value} a case")
    return allowed[case.state]


def act(
    case: Case,
    action: Action,
    *,
    actor: str,
    at_ms: int,
    note: str | None = None,
    owner: str | None = None,
    until_ms: int | None = None,
    resolution: Resolution | None = None,
    expected_version: int | None = None,
    silences: tuple[str, ...] = (),
) -> tuple[Case, CaseEvent]:
    """Apply one action; returns the new case and its event, or raises and changes nothing.
    ``until_ms`` is a snooze's end or an acknowledgement's lapse time; ``silences`` the ids of
    the silences a ``silence`` action records."""
    target = _check(case, action, note, expected_version)
    changes: dict[str, object] = {"version": case.version + 1, "updated_at_ms": at_ms}
    if target is not None:
        changes["state"] = target
    if target is not None and target is not CaseState.IN_REVIEW:
        changes["ack_until_ms"] = None  # an ack lasts while the case is in review, no longer
    if target is not None and target is not CaseState.SNOOZED:
        changes["snoozed_until_ms"] = None  # likewise a snooze while snoozed
    detail = _apply(case, action, changes, at_ms, owner, until_ms, resolution, silences, note)
    moved = replace(case, **changes)  # type: ignore[arg-type]
    _check_invariants(moved)
    event = _event(moved, action, case.state, actor, at_ms, note, detail)
    return replace(moved, head=event.hash), event


def _apply(
    case: Case,
    action: Action,
    changes: dict[str, object],
    at_ms: int,
    owner: str | None,
    until_ms: int | None,
    resolution: Resolution | None,
    silences: tuple[str, ...],
    note: str | None,
) -> str:
    """The action's own field changes (into ``changes``); returns the event's detail."""
    if action is Action.ASSIGN:
        if not owner:
            raise CaseError("CASE_OWNER_REQUIRED", "owner: required to assign a case")
        changes["owner"] = owner
        return owner
    if action is Action.SNOOZE:
        if until_ms is None or until_ms <= at_ms:
            raise CaseError("CASE_SNOOZE_INVALID", "until: a snooze needs a time after now")
        changes["snoozed_until_ms"] = until_ms
        return str(until_ms)
    if action is Action.ACKNOWLEDGE:
        return _acknowledge(case, changes, at_ms, until_ms, note)
    if action is Action.ACK_LAPSE:
        if case.ack_until_ms is None or at_ms < case.ack_until_ms:
            raise CaseError("CASE_ACK_NOT_LAPSED", "at: the acknowledgement has not lapsed")
        return str(case.ack_until_ms)
    if action is Action.SILENCE:
        if case.kind is not CaseKind.ALERT:
            raise CaseError("CASE_SILENCE_INVALID", "kind: only alerts are silenced")
        if not silences:
            raise CaseError("CASE_SILENCE_INVALID", "silences: name the silences that cover the case")
        changes["silenced_by"] = ",".join(sorted(silences))
        return str(changes["silenced_by"])
    if action is Action.UNSILENCE:
        if case.silenced_by is None:
            raise CaseError("CASE_SILENCE_INVALID", "silences: the case is not silenced")
        changes["silenced_by"] = None
        return case.silenced_by
    if action is Action.UNSNOOZE:
        changes["snoozed_until_ms"] = None
    elif action is Action.RECUR:
        changes["occurrences"] = case.occurrences + 1
    elif action in (Action.RESOLVE, Action.ACCEPT):
        default = Resolution.WRITTEN_OFF if action is Action.ACCEPT else Resolution.FIXED_BY_BOOKING
        changes["resolution"] = resolution or default
        return str(changes["resolution"])
    elif action is Action.REOPEN:
        changes["resolution"] = None
    return ""


def _check_invariants(case: Case) -> None:
    """What every case after an action satisfies (a broken one is a bug, never stored): closed
    iff it has a resolution; snoozed iff it has a snooze end; an ack time only while in review,
    and always for an alert in review (its ack must lapse); silences only on alerts."""
    broken = (
        (case.resolution is not None) == case.state.active
        or (case.snoozed_until_ms is not None) != (case.state is CaseState.SNOOZED)
        or (case.ack_until_ms is not None and case.state is not CaseState.IN_REVIEW)
        or (case.kind is CaseKind.ALERT and case.state is CaseState.IN_REVIEW and case.ack_until_ms is None)
        or (case.silenced_by is not None and case.kind is not CaseKind.ALERT)
    )
    if broken:
        raise IntegrityError(f"case {case.case_id}: invariant broken at version {case.version}")


def _acknowledge(
    case: Case, changes: dict[str, object], at_ms: int, until_ms: int | None, note: str | None
) -> str:
    """An alert's ack needs a note and a TTL (its lapse time); other kinds may give either."""
    if case.kind is CaseKind.ALERT:
        if not (note and note.strip()):
            raise CaseError("CASE_NOTE_REQUIRED", "note: required to acknowledge an alert")
        if until_ms is None:
            raise CaseError("CASE_ACK_INVALID", "until: an alert's acknowledgement needs a TTL")
    if until_ms is not None and until_ms <= at_ms:
        raise CaseError("CASE_ACK_INVALID", "until: an acknowledgement lapses after now")
    changes["ack_until_ms"] = until_ms
    return "" if until_ms is None else str(until_ms)


def due_actions(case: Case, now_ms: int) -> list[Action]:
    """The timed actions due on a case at ``now_ms``: a snooze ended (``unsnooze``), an
    acknowledgement lapsed (``ack_lapse``). The node applies them; time stays an input."""
    if (
        case.state is CaseState.SNOOZED
        and case.snoozed_until_ms is not None
        and now_ms >= case.snoozed_until_ms
    ):
        return [Action.UNSNOOZE]
    if case.state is CaseState.IN_REVIEW and case.ack_until_ms is not None and now_ms >= case.ack_until_ms:
        return [Action.ACK_LAPSE]
    return []


def verify_events(events: list[CaseEvent]) -> bool:
    """Recompute one case's chain: each event's hash over its body, linked to the previous."""
    prev = GENESIS
    for event in events:
        if event.prev_hash != prev or hashlib.sha256(event.body()).hexdigest() != event.hash:
            return False
        prev = event.hash
    return True


def case_row(case: Case) -> dict[str, object]:
    """The case as a flat row (enums as their values), what every store keeps."""
    row = {name: getattr(case, name) for name in Case.__slots__}
    return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in row.items()}


def case_from_row(row: dict[str, Any]) -> Case:
    values = dict(row)
    values["kind"] = CaseKind(values["kind"])
    values["state"] = CaseState(values["state"])
    values["severity"] = Severity(values["severity"])
    values["resolution"] = None if values["resolution"] is None else Resolution(values["resolution"])
    return Case(**values)


def event_row(event: CaseEvent) -> dict[str, object]:
    row = {name: getattr(event, name) for name in CaseEvent.__slots__}
    return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in row.items()}


def event_from_row(row: dict[str, Any]) -> CaseEvent:
    values = dict(row)
    values["action"] = Action(values["action"])
    values["prev_state"] = None if values["prev_state"] is None else CaseState(values["prev_state"])
    values["new_state"] = CaseState(values["new_state"])
    return CaseEvent(**values)
