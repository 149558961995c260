"""The case queue for every driver (HTTP, CLI, dashboard): filters, the JSON view of a case
(ageing bucket, SLA, overdue), its verified trail, one action with its event, and the public
``<kind>.<action done>`` event of every case event (node/events.py's vocabulary).

Generic over :class:`~clearlane.core.cases.CaseKind`: it serves whatever kind the store holds —
reconciliation exceptions, monitoring alerts, escrow disputes — and leaves the workflow's rules
to ``core.cases``. Who may see a case is the driver's decision (docs/RECONCILIATION.md §7: a
break may name any participant, so cases are for operators and auditors only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from clearlane.core.cases import (
    AGEING_BUCKETS,
    Action,
    Case,
    CaseEvent,
    CaseKind,
    CaseState,
    Resolution,
    Severity,
    act,
    ageing_bucket,
    verify_events,
)
from clearlane.core.errors import InputError, NotFound
from clearlane.core.money import format_minor
from clearlane.core.recon.amounts import currency_scale
from clearlane.node.events import EventFilter, EventGroup, case_event_type, iso
from clearlane.node.ports import ReconStore

BUCKETS = (*(name for name, _ in AGEING_BUCKETS), ">30d")
# What an operator may do through a driver; open and recur are the runs' own.
OPERATOR_ACTIONS = (
    Action.ASSIGN,
    Action.ACKNOWLEDGE,
    Action.SNOOZE,
    Action.UNSNOOZE,
    Action.NOTE,
    Action.RESOLVE,
    Action.ACCEPT,
    Action.REOPEN,
)


class CaseQueryError(InputError, ValueError, code="CASE_QUERY_INVALID"):
    """A case filter or action argument that names no known value (the field is named)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _one_of(field: str, value: str | None, allowed: Iterable[str]) -> str | None:
    names = tuple(allowed)
    if value is not None and value not in names:
        raise CaseQueryError(field, f"{value!r} is not one of {', '.join(names)}")
    return value


@dataclass(frozen=True)
class CaseQuery:
    """Which cases: every field None means any. ``state`` is a state, ``active`` or ``closed``."""

    kind: str | None = None
    state: str | None = None
    owner: str | None = None
    severity: str | None = None
    ageing: str | None = None
    overdue: bool | None = None

    def checked(self) -> CaseQuery:
        """The query itself, or a :class:`CaseQueryError` naming the first bad filter. The kind
        is not checked against :class:`CaseKind`: a store may hold kinds added later."""
        _one_of("state", self.state, (*(s.value for s in CaseState), "active", "closed"))
        _one_of("severity", self.severity, (s.value for s in Severity))
        _one_of("ageing", self.ageing, BUCKETS)
        return self

    def admits(self, case: Case, now_ms: int) -> bool:
        if self.state == "active" and not case.state.active:
            return False
        if self.state == "closed" and case.state.active:
            return False
        if self.state not in (None, "active", "closed") and case.state.value != self.state:
            return False
        if self.owner is not None and case.owner != self.owner:
            return False
        if self.severity is not None and case.severity.value != self.severity:
            return False
        if self.ageing is not None and ageing_bucket(case.opened_at_ms, now_ms) != self.ageing:
            return False
        return self.overdue is None or case.overdue(now_ms) == self.overdue


def _amount(case: Case, scales: Mapping[str, int]) -> str | None:
    if not case.asset:
        return None
    return format_minor(case.amount_minor, scales.get(case.asset, currency_scale(case.asset)))


def case_view(case: Case, now_ms: int, scales: Mapping[str, int] | None = None) -> dict[str, Any]:
    """A case as JSON: every stored field, its amount as a decimal, ageing bucket, age, SLA."""
    view: dict[str, Any] = {
        "case_id": case.case_id, "kind": case.kind.value, "rule": case.rule, "fingerprint": case.fingerprint,
        "period": case.period, "subject": case.subject, "reason_code": case.reason_code, "reason": case.reason,
        "severity": case.severity.value, "asset": case.asset or None, "amount_minor": case.amount_minor,
        "amount": _amount(case, scales or {}), "state": case.state.value, "owner": case.owner,
        "opened_at_ms": case.opened_at_ms, "opened_at": iso(case.opened_at_ms), "due_at_ms": case.due_at_ms,
        "due_at": iso(case.due_at_ms), "updated_at_ms": case.updated_at_ms,
        "snoozed_until_ms": case.snoozed_until_ms, "resolution": None if case.resolution is None else case.resolution.value,
        "occurrences": case.occurrences, "version": case.version, "head": case.head,
    }  # fmt: skip
    view["age_ms"] = max(0, now_ms - case.opened_at_ms)
    view["ageing"] = ageing_bucket(case.opened_at_ms, now_ms)
    view["overdue"] = case.overdue(now_ms)
    view["due_in_ms"] = case.due_at_ms - now_ms if case.state.active else None
    return view


def event_view(event: CaseEvent) -> dict[str, Any]:
    return {
        "version": event.version, "action": event.action.value,
        "prev_state": None if event.prev_state is None else event.prev_state.value,
        "new_state": event.new_state.value, "actor": event.actor, "at_ms": event.at_ms, "at": iso(event.at_ms),
        "note": event.note, "detail": event.detail, "prev_hash": event.prev_hash, "hash": event.hash,
    }  # fmt: skip


def list_cases(
    store: ReconStore, query: CaseQuery, now_ms: int, scales: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """The cases ``query`` admits, oldest first, as views."""
    query = query.checked()
    active_only = query.state == "active"
    cases = store.cases(active_only=active_only, kind=query.kind)
    return [case_view(c, now_ms, scales) for c in cases if query.admits(c, now_ms)]


def queue_summary(views: list[dict[str, Any]]) -> dict[str, Any]:
    """What the queue's header shows: active cases per ageing bucket, severity and state, overdue."""
    active = [v for v in views if v["state"] not in (CaseState.RESOLVED.value, CaseState.ACCEPTED.value)]
    buckets = Counter(v["ageing"] for v in active)
    return {
        "active": len(active),
        "overdue": sum(1 for v in active if v["overdue"]),
        "ageing": {name: buckets.get(name, 0) for name in BUCKETS},
        "severity": dict(sorted(Counter(v["severity"] for v in active).items())),
        "state": dict(sorted(Counter(v["state"] for v in views).items())),
    }


def case_detail(
    store: ReconStore, cid: str, now_ms: int, scales: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """One case, its event trail and whether the trail's hash chain verifies up to the head."""
    case = store.case(cid)
    if case is None:
        raise NotFound(f"case {cid}: no such case")
    events = store.case_events(cid)
    ok = verify_events(events) and bool(events) and events[-1].hash == case.head
    return {
        "case": case_view(case, now_ms, scales),
        "events": [event_view(e) for e in events],
        "chain_ok": ok,
    }


@dataclass(frozen=True)
class CaseCommand:
    """One operator action as a driver received it (strings; checked by :func:`parse_command`)."""

    action: Action
    note: str | None = None
    owner: str | None = None
    until_ms: int | None = None
    resolution: Resolution | None = None
    expected_version: int | None = None


def parse_command(
    action: str, *, note: Any = None, owner: Any = None, until_ms: Any = None, resolution: Any = None,
    expected_version: Any = None,
) -> CaseCommand:  # fmt: skip
    """A command from loosely typed fields (an HTTP body), each refused with its field named."""
    _one_of("action", action, (a.value for a in OPERATOR_ACTIONS))
    for field, value in (("note", note), ("owner", owner)):
        if value is not None and not isinstance(value, str):
            raise CaseQueryError(field, "must be a string")
    for field, value in (("until_ms", until_ms), ("expected_version", expected_version)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise CaseQueryError(field, "must be a non-negative integer")
    if resolution is not None and not isinstance(resolution, str):
        raise CaseQueryError("resolution", "must be a string")
    _one_of("resolution", resolution, (r.value for r in Resolution if r is not Resolution.AUTO))
    return CaseCommand(
        Action(action), note, owner, until_ms, None if resolution is None else Resolution(resolution),
        expected_version,
    )  # fmt: skip


def apply_command(
    store: ReconStore, cid: str, command: CaseCommand, *, actor: str, now_ms: int
) -> tuple[Case, CaseEvent]:
    """One operator action on any case: the workflow judges it (``CaseError`` changes
    nothing), the store writes it only from the version it was read at."""
    case = store.case(cid)
    if case is None:
        raise NotFound(f"case {cid}: no such case")
    moved, event = act(
        case, command.action, actor=actor, at_ms=now_ms, note=command.note, owner=command.owner,
        until_ms=command.until_ms, resolution=command.resolution, expected_version=command.expected_version,
    )  # fmt: skip
    store.save_case(moved, event)
    return moved, event


def check_command(store: ReconStore, cid: str, command: CaseCommand, *, actor: str, now_ms: int) -> None:
    """Judge an action without saving it (``CaseError`` / ``NotFound`` if it would be refused):
    a resolve that books an adjustment is checked before the entry is posted."""
    case = store.case(cid)
    if case is None:
        raise NotFound(f"case {cid}: no such case")
    act(
        case, command.action, actor=actor, at_ms=now_ms, note=command.note, owner=command.owner,
        until_ms=command.until_ms, resolution=command.resolution, expected_version=command.expected_version,
    )  # fmt: skip


def adjustment_input(cid: str, command: CaseCommand, raw: Any, *, actor: str) -> dict[str, Any]:
    """The ``ledger_adjustment`` input of a resolve that books one (docs/RECONCILIATION.md §8):
    ``raw`` is ``{adjustment_id, legs, reason?}``; the case id and the operator come from the
    request, the reason defaults to the resolve's note. Only a resolve ``fixed_by_booking``
    books an adjustment; the legs are judged by the engine."""
    if command.action is not Action.RESOLVE or command.resolution is not Resolution.FIXED_BY_BOOKING:
        raise CaseQueryError(
            "adjustment", "only a resolve with resolution fixed_by_booking books an adjustment"
        )
    if not isinstance(raw, dict):
        raise CaseQueryError("adjustment", "must be an object {adjustment_id, legs, reason?}")
    extra = sorted(set(raw) - {"adjustment_id", "legs", "reason"})
    if extra:
        raise CaseQueryError(f"adjustment.{extra[0]}", "unknown field")
    return {
        "adjustment_id": raw.get("adjustment_id"),
        "case_id": cid,
        "operator": actor,
        "reason": raw.get("reason") or command.note,
        "legs": raw.get("legs"),
    }


def with_adjustment_note(command: CaseCommand, receipt: Mapping[str, Any]) -> CaseCommand:
    """The resolve's note with the adjustment it booked, so the case trail names the entry."""
    entry = f"adjust:{receipt['id']}"
    booked = f"[ledger adjustment {receipt['id']} posted as entry {entry}, log seq {receipt['log_seq']}]"
    note = f"{command.note} {booked}" if command.note else booked
    return replace(command, note=note)


class CaseEventGroup(EventGroup):
    """One case action as a public event. Case actions are not log steps: ``seq`` is 0, so a
    webhook high-water mark never moves for them; the id is ``case:<case id>:<version>``."""

    def __init__(self, type_: str, case: Case, event: CaseEvent, scales: Mapping[str, int]) -> None:
        self.type = type_
        self.seq = 0
        self.at_ms = event.at_ms
        self.case = case
        self.event = event
        self.scales = scales

    def events(self, flt: EventFilter) -> list[dict[str, Any]]:
        if flt.participant is not None:
            return []
        data = event_view(self.event) | {"case": case_view(self.case, self.at_ms, self.scales)}
        return [
            {
                "id": f"case:{self.case.case_id}:{self.event.version}",
                "type": self.type,
                "at_ms": self.at_ms,
                "at": iso(self.at_ms),
                "data": data,
            }
        ]


def case_event_groups(
    changes: Iterable[tuple[Case, CaseEvent]], scales: Mapping[str, int] | None = None
) -> list[EventGroup]:
    """The public events of case changes, in order; kinds the vocabulary does not name (yet)
    publish nothing. Alert cases publish nothing here: ``alert.*`` events carry the alert's own
    view and are published by the alert service (node/alerts.py), once."""
    out: list[EventGroup] = []
    for case, event in changes:
        if case.kind is CaseKind.ALERT:
            continue
        type_ = case_event_type(case.kind.value, event.action.value)
        if type_ is not None:
            out.append(CaseEventGroup(type_, case, event, scales or {}))
    return out


__all__ = [
    "BUCKETS",
    "OPERATOR_ACTIONS",
    "CaseCommand",
    "CaseEventGroup",
    "CaseKind",
    "CaseQuery",
    "CaseQueryError",
    "apply_command",
    "case_detail",
    "case_event_groups",
    "case_view",
    "event_view",
    "list_cases",
    "parse_command",
    "queue_summary",
]
