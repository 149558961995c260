"""Alerts (issue 15): cases of kind ``alert`` on the one case workflow (core/cases), opened from
the engine's ``alert.raised`` events and from the node's own rule evaluations, driven by
operators (acknowledge with a note and a TTL, snooze, resolve, reopen, note) and muted by
Alertmanager-style silences — each action an event in the case's hash-chained trail.

One alert is one *episode*: a firing (rule, labels) with no active case opens a case whose
period is its start time; while that case is active the same firing recurs on it; a resolved
alert that fires again opens a new case (the old one stays as history). Timed transitions —
a snooze ending, an acknowledgement lapsing (the alert is open again and notifies again), a
silence starting or ending — are applied by :meth:`AlertService.sweep`, which the service runs
on a timer and before every read; the engine's alerts are handed off by the bus listener and
recorded there too, so the runtime thread never waits on the alert store. Every change is published as an ``alert.*`` event
(node/events.py: SSE, operator webhooks); silences are their own object, listed and expired
through the service, never a case state.

:meth:`AlertService.alertmanager` renders the alerts in Alertmanager's API v2 ``gettableAlert``
shape so Alertmanager-aware tooling (karma, amtool-style scripts, Grafana) can read them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from clearlane.core.cases import (
    Action,
    Case,
    CaseError,
    CaseEvent,
    CaseKind,
    CaseState,
    CaseSubject,
    Resolution,
    Severity,
    act,
    case_row,
    due_actions,
    event_row,
    open_case,
)
from clearlane.core.cases.silences import (
    Silence,
    alert_labels,
    expire_silence,
    format_labels,
    matcher,
    new_silence,
    silencing,
)
from clearlane.core.errors import NotFound
from clearlane.node.events import ALERT, ALERT_CASE_EVENTS, EventFilter, EventGroup, case_event_type, iso
from clearlane.node.ports import SilenceStore

log = logging.getLogger("clearlane.alerts")

MINUTE_MS = 60_000
RESOLVE_TIMEOUT_MS = 5 * MINUTE_MS  # Alertmanager's default: an active alert's endsAt is now + this
MAX_TTL_MS = 30 * 24 * 60 * MINUTE_MS
# Operator actions the API and CLI take (silences are their own resource, timed ones the sweep's).
OPERATOR_ACTIONS = {
    a.value: a
    for a in (
        Action.ACKNOWLEDGE, Action.SNOOZE, Action.UNSNOOZE, Action.RESOLVE, Action.REOPEN, Action.NOTE, Action.ASSIGN,
    )
}  # fmt: skip


class CaseStore(Protocol):
    """The part of :class:`~clearlane.node.ports.ReconStore` that keeps cases."""

    def case(self, case_id: str) -> Case | None: ...
    def cases(self, *, active_only: bool = False, kind: str | None = None) -> list[Case]: ...
    def save_case(self, case: Case, event: CaseEvent) -> None: ...
    def case_events(self, case_id: str) -> list[CaseEvent]: ...


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A node-side rule: fires while ``figure`` is above ``above`` (for ``for_ms`` at least)."""

    name: str
    figure: str
    above: float
    severity: Severity
    summary: str
    for_ms: int = 0


# The node's own rules over figures it has without Prometheus (queue lengths); the fuller set,
# with rates and absent-data checks, ships as Prometheus rules (deploy/prometheus).
DEFAULT_RULES = (
    AlertRule("AnchorBacklogHigh", "anchor_backlog", 20, Severity.HIGH, "cleared batches waiting for an anchor", 60_000),
    AlertRule("L1PendingHigh", "l1_pending", 5_000, Severity.MEDIUM, "L1 trades submitted, not yet included", 300_000),
    AlertRule("IntakeQueueHigh", "intake_rows", 200_000, Severity.MEDIUM, "rows queued for intake", 30_000),
)  # fmt: skip


def status_of(case: Case, silenced_by: Sequence[str]) -> str:
    """What the page shows: resolved, silenced, snoozed, acknowledged or open."""
    if not case.state.active:
        return "resolved"
    if silenced_by:
        return "silenced"
    if case.state is CaseState.SNOOZED:
        return "snoozed"
    return "acknowledged" if case.state is CaseState.IN_REVIEW else "open"


def alert_fingerprint(labels: Mapping[str, str]) -> str:
    """16 hex digits over the full label set (Alertmanager's fingerprint is one per label set)."""
    return hashlib.sha256(format_labels(labels).encode()).hexdigest()[:16]


class AlertCaseEvent(EventGroup):
    """One alert action as a public event; never shown to a participant-bound subscriber."""

    def __init__(self, type_: str, seq: int, at_ms: int, data: dict[str, Any]) -> None:
        self.type = type_
        self.seq = seq
        self.at_ms = at_ms
        self.data = data

    def events(self, flt: EventFilter) -> list[dict[str, Any]]:
        if flt.participant is not None or flt.pool is not None:
            return []
        subject = f"{self.data['alert_id']}:{self.data['version']}"
        return [{"id": f"{self.seq}:{self.type}:{subject}", "type": self.type, "at_ms": self.at_ms,
                 "at": iso(self.at_ms), "data": self.data}]  # fmt: skip


def _ms(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CaseError("ALERT_ACTION_INVALID", f"{field}: a non-negative integer of milliseconds")
    return value


MAX_RECEIVED = 1000
_SEVERITY_OF = {"critical": Severity.CRITICAL, "page": Severity.CRITICAL, "high": Severity.HIGH,
                "error": Severity.HIGH, "warning": Severity.MEDIUM, "medium": Severity.MEDIUM}  # fmt: skip


def _received(index: int, alert: Any) -> tuple[str, dict[str, str], str, Severity, bool]:
    """One alert of an Alertmanager notification, checked: (rule, labels, summary, severity, firing)."""
    where = f"alerts[{index}]"
    if not isinstance(alert, dict) or alert.get("status") not in ("firing", "resolved"):
        raise CaseError("ALERTMANAGER_PAYLOAD_INVALID", f"{where}.status: firing or resolved")
    labels, notes = alert.get("labels"), alert.get("annotations") or {}
    if not isinstance(labels, dict) or not isinstance(notes, dict) or len(labels) > 64:
        raise CaseError("ALERTMANAGER_PAYLOAD_INVALID", f"{where}.labels: an object of at most 64 labels")
    if not all(isinstance(v, str) for v in (*labels.values(), *notes.values())):
        raise CaseError("ALERTMANAGER_PAYLOAD_INVALID", f"{where}.labels: string values")
    rule = labels.get("alertname")
    if not isinstance(rule, str) or not rule:
        raise CaseError("ALERTMANAGER_PAYLOAD_INVALID", f"{where}.labels.alertname: required")
    kept = {k: v for k, v in labels.items() if k != "alertname"}
    format_labels(kept)  # label names checked here, before anything changes
    summary = str(notes.get("summary") or notes.get("description") or rule)
    severity = _SEVERITY_OF.get(kept.get("severity", ""), Severity.MEDIUM)
    return rule, kept, summary, severity, alert["status"] == "firing"


class AlertService:
    """Alerts over a case store and a silence store; thread-safe (one lock)."""

    def __init__(
        self,
        cases: CaseStore,
        silences: SilenceStore,
        *,
        now: Callable[[], int],
        publish: Callable[[list[EventGroup]], None] | None = None,
        seq: Callable[[], int] = lambda: 0,
        figures: Callable[[], Mapping[str, float]] | None = None,
        rules: Sequence[AlertRule] = DEFAULT_RULES,
        interval_s: float = 5.0,
    ) -> None:
        self.cases, self.silences = cases, silences
        self.now, self._publish, self._seq = now, publish, seq
        self.figures, self.rules, self.interval_s = figures, tuple(rules), interval_s
        self.lock = threading.RLock()
        self._pending: dict[str, int] = {}  # rule -> when it first breached (its ``for`` clock)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # Engine alerts handed off by the bus listener (the runtime thread never waits on the
        # alert store): (at_ms, kind, message), recorded by the timer thread or the next read.
        self._inbox: deque[tuple[int, str, str]] = deque()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="clearlane-alerts", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.tick()
            except Exception:  # keep alerting alive; the next tick tries again
                log.exception("alert tick failed")

    def tick(self, at_ms: int | None = None) -> None:
        at = self.now() if at_ms is None else at_ms
        self.drain()
        self.evaluate(at)
        self.sweep(at)

    # ------------------------------------------------------------------ writing
    def _save(self, case: Case, event: CaseEvent) -> Case:
        self.cases.save_case(case, event)
        if self._publish is not None:
            type_ = case_event_type(case.kind.value, event.action.value)
            if type_ is not None:
                data = self.view(case, self._active_silences(event.at_ms), event.at_ms)
                data["action"] = event.action.value
                data["actor"], data["note"] = event.actor, event.note
                self._publish([AlertCaseEvent(type_, self._seq(), event.at_ms, data)])
        return case

    def _active(self, fingerprint: str) -> Case | None:
        found = [
            c
            for c in self.cases.cases(active_only=True, kind=CaseKind.ALERT.value)
            if c.fingerprint == fingerprint
        ]
        return found[-1] if found else None

    def raise_alert(
        self, rule: str, labels: Mapping[str, str], summary: str, severity: Severity, at_ms: int, actor: str
    ) -> Case:
        """Open the alert (rule, labels), or count one more occurrence on its open case."""
        full = {**labels, "alertname": rule}
        fp = alert_fingerprint(full)
        with self.lock:
            current = self._active(fp)
            if current is not None:
                return self._save(*act(current, Action.RECUR, actor=actor, at_ms=at_ms))
            what = CaseSubject(
                CaseKind.ALERT, rule, fp, str(at_ms), format_labels(labels), 0, summary[:500], "", 0, severity
            )
            return self._save(*open_case(what, actor=actor, at_ms=at_ms))

    def clear(self, rule: str, labels: Mapping[str, str], at_ms: int, actor: str) -> Case | None:
        """The condition no longer holds: resolve its open alert (resolution ``auto``)."""
        with self.lock:
            current = self._active(alert_fingerprint({**labels, "alertname": rule}))
            if current is None:
                return None
            moved = act(current, Action.RESOLVE, actor=actor, at_ms=at_ms, note="condition cleared",
                        resolution=Resolution.AUTO)  # fmt: skip
            return self._save(*moved)

    def on_groups(self, groups: Iterable[EventGroup]) -> None:
        """Bus listener (the runtime thread, right after a commit): hand each ``alert.raised``
        off to be recorded; never block the engine on the alert store."""
        found = False
        for group in groups:
            if group.type == ALERT:
                data: dict[str, Any] = getattr(group, "data", {})
                self._inbox.append(
                    (group.at_ms, str(data.get("kind", "alert")), str(data.get("message", "")))
                )
                found = True
        if found:
            self._wake.set()

    def drain(self) -> None:
        """Record the engine alerts handed off so far: each opens (or recurs on) an alert."""
        with self.lock:  # in the order the engine raised them
            while self._inbox:
                at_ms, kind, message = self._inbox.popleft()
                severity = Severity.CRITICAL if ("unwound" in message or kind != "alert") else Severity.HIGH
                ref = hashlib.sha256(message.encode()).hexdigest()[:12]
                try:
                    self.raise_alert(
                        "EngineAlert", {"kind": kind, "ref": ref}, message, severity, at_ms, "engine"
                    )
                except Exception:  # a store fault: logged; the engine's own record stays (alert.raised)
                    log.exception("could not record engine alert %s", ref)

    def receive_alertmanager(self, payload: Mapping[str, Any]) -> dict[str, int]:
        """An Alertmanager webhook notification (``version`` 4): each firing alert opens (or
        recurs on) the alert of its labels, each resolved one resolves it; ``alertname`` is the
        rule, the other labels are kept, ``annotations.summary`` (or ``description``) is the
        summary. Checked whole before anything changes."""
        raw = payload.get("alerts")
        if not isinstance(raw, list) or len(raw) > MAX_RECEIVED:
            raise CaseError("ALERTMANAGER_PAYLOAD_INVALID", f"alerts: a list of at most {MAX_RECEIVED}")
        parsed = [_received(i, a) for i, a in enumerate(raw)]
        done = {"firing": 0, "resolved": 0}
        with self.lock:
            at = self.now()
            for rule, labels, summary, severity, firing in parsed:
                if firing:
                    self.raise_alert(rule, labels, summary, severity, at, "alertmanager")
                else:
                    self.clear(rule, labels, at, "alertmanager")
                done["firing" if firing else "resolved"] += 1
        return done

    def evaluate(self, at_ms: int) -> None:
        """The node's rules over its current figures: open what fires, resolve what stopped."""
        if self.figures is None:
            return
        figures = self.figures()
        for rule in self.rules:
            value = figures.get(rule.figure)
            if value is None:
                continue
            labels = {"figure": rule.figure}
            if value > rule.above:
                since = self._pending.setdefault(rule.name, at_ms)
                if at_ms - since >= rule.for_ms:
                    summary = f"{rule.summary}: {value:g} > {rule.above:g}"
                    with self.lock:
                        if self._active(alert_fingerprint({**labels, "alertname": rule.name})) is None:
                            self.raise_alert(rule.name, labels, summary, rule.severity, at_ms, "rules")
            else:
                self._pending.pop(rule.name, None)
                self.clear(rule.name, labels, at_ms, "rules")

    def sweep(self, at_ms: int) -> None:
        """Apply what time made due: snoozes ending, acks lapsing, silences starting or ending."""
        with self.lock:
            silences = self._active_silences(at_ms)
            for case in self.cases.cases(active_only=True, kind=CaseKind.ALERT.value):
                for action in due_actions(case, at_ms):
                    case = self._save(*act(case, action, actor="alerts", at_ms=at_ms))
                ids = silencing(silences, alert_labels(case), at_ms)
                if ids and ",".join(ids) != case.silenced_by:
                    self._save(*act(case, Action.SILENCE, actor="alerts", at_ms=at_ms, silences=ids))
                elif not ids and case.silenced_by is not None:
                    self._save(*act(case, Action.UNSILENCE, actor="alerts", at_ms=at_ms))

    def act(self, alert_id: str, action: str, actor: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """An operator's action: ``acknowledge`` (note, ``ttl_ms`` or ``until_ms``), ``snooze``
        (``until_ms`` or ``ttl_ms``), ``unsnooze``, ``resolve``, ``reopen``, ``note`` (note),
        ``assign`` (owner); ``version`` makes it conditional. Refusals change nothing."""
        chosen = OPERATOR_ACTIONS.get(action)
        if chosen is None:
            raise CaseError("ALERT_ACTION_INVALID", f"action: one of {', '.join(sorted(OPERATOR_ACTIONS))}")
        note, owner = body.get("note"), body.get("owner")
        if not isinstance(note, str | None) or not isinstance(owner, str | None):
            raise CaseError("ALERT_ACTION_INVALID", "note/owner: strings")
        with self.lock:
            at = self.now()
            self.sweep(at)
            case = self._case(alert_id)
            until = _ms(body.get("until_ms"), "until_ms")
            ttl = _ms(body.get("ttl_ms"), "ttl_ms")
            if until is None and ttl is not None:
                until = at + ttl
            if until is not None and until - at > MAX_TTL_MS:
                raise CaseError("ALERT_ACTION_INVALID", "until_ms: at most 30 days ahead")
            resolution = Resolution.FALSE_POSITIVE if body.get("false_positive") is True else None
            moved = act(case, chosen, actor=actor, at_ms=at, note=note, owner=owner, until_ms=until,
                        resolution=resolution, expected_version=_ms(body.get("version"), "version"))  # fmt: skip
            saved = self._save(*moved)
            return self.view(saved, self._active_silences(at), at)

    # ------------------------------------------------------------------ silences
    def _active_silences(self, at_ms: int) -> list[Silence]:
        return [s for s in self.silences.silences() if s.ends_at_ms > at_ms]

    def create_silence(self, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """A silence from Alertmanager's postable shape, in ms: ``matchers``, ``starts_at_ms``
        (default now), ``ends_at_ms`` or ``ttl_ms``, ``comment``; ``created_by`` is the caller."""
        raw = body.get("matchers")
        if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
            raise CaseError("SILENCE_INVALID", "matchers: a list of {name, value, isRegex, isEqual}")
        with self.lock:
            at = self.now()
            starts = _ms(body.get("starts_at_ms"), "starts_at_ms") or at
            ends = _ms(body.get("ends_at_ms"), "ends_at_ms")
            ttl = _ms(body.get("ttl_ms"), "ttl_ms")
            if ends is None:
                if ttl is None:
                    raise CaseError("SILENCE_INVALID", "ends_at_ms: or ttl_ms, required")
                ends = starts + ttl
            comment = body.get("comment")
            silence = new_silence(
                [matcher(m) for m in raw], starts_at_ms=starts, ends_at_ms=ends, created_by=actor,
                comment=comment if isinstance(comment, str) else "", at_ms=at,
            )  # fmt: skip
            self.silences.save_silence(silence)
            self.sweep(at)
            return self.silence_view(silence, at)

    def expire_silence(self, silence_id: str) -> dict[str, Any]:
        with self.lock:
            at = self.now()
            found = self.silences.silence(silence_id)
            if found is None:
                raise NotFound(f"silence {silence_id!r}")
            ended = expire_silence(found, at)
            self.silences.save_silence(ended)
            self.sweep(at)
            return self.silence_view(ended, at)

    def list_silences(self) -> list[dict[str, Any]]:
        at = self.now()
        return [self.silence_view(s, at) for s in reversed(self.silences.silences())]

    def silence(self, silence_id: str) -> dict[str, Any]:
        found = self.silences.silence(silence_id)
        if found is None:
            raise NotFound(f"silence {silence_id!r}")
        return self.silence_view(found, self.now())

    @staticmethod
    def silence_view(s: Silence, at_ms: int) -> dict[str, Any]:
        """A silence in Alertmanager's ``gettableSilence`` shape, plus the times in ms."""
        return {
            "id": s.silence_id, "status": {"state": s.state(at_ms).value},
            "matchers": [m.to_dict() for m in s.matchers], "startsAt": iso(s.starts_at_ms),
            "endsAt": iso(s.ends_at_ms), "updatedAt": iso(s.updated_at_ms), "createdBy": s.created_by,
            "comment": s.comment, "starts_at_ms": s.starts_at_ms, "ends_at_ms": s.ends_at_ms,
        }  # fmt: skip

    # ------------------------------------------------------------------ reading
    def _case(self, alert_id: str) -> Case:
        case = self.cases.case(alert_id)
        if case is None or case.kind is not CaseKind.ALERT:
            raise NotFound(f"alert {alert_id!r}")
        return case

    def view(self, case: Case, silences: Sequence[Silence], at_ms: int) -> dict[str, Any]:
        """An alert as the API shows it: the case, its labels, status, age and silences."""
        row = case_row(case)
        labels = alert_labels(case)
        silenced_by = list(silencing(silences, labels, at_ms)) if case.state.active else []
        end = at_ms if case.state.active else case.updated_at_ms
        return {
            "alert_id": case.case_id, **{k: row[k] for k in ("rule", "severity", "state", "owner", "occurrences",
            "version", "opened_at_ms", "updated_at_ms", "snoozed_until_ms", "ack_until_ms", "resolution")},
            "summary": case.reason, "labels": labels, "fingerprint": case.fingerprint,
            "status": status_of(case, silenced_by), "silenced_by": silenced_by, "age_ms": max(0, end - case.opened_at_ms),
            "opened_at": iso(case.opened_at_ms), "updated_at": iso(case.updated_at_ms),
            "ack_until": iso(case.ack_until_ms), "snoozed_until": iso(case.snoozed_until_ms),
        }  # fmt: skip

    def alerts(self, *, status: str | None = None, active_only: bool = True) -> list[dict[str, Any]]:
        self.drain()
        at = self.now()
        self.sweep(at)
        silences = self._active_silences(at)
        found = self.cases.cases(active_only=active_only, kind=CaseKind.ALERT.value)
        views = [self.view(c, silences, at) for c in reversed(found)]
        return [v for v in views if status is None or v["status"] == status]

    def get(self, alert_id: str) -> dict[str, Any]:
        self.drain()
        at = self.now()
        self.sweep(at)
        case = self._case(alert_id)
        out = self.view(case, self._active_silences(at), at)
        out["events"] = [{**event_row(e), "at": iso(e.at_ms)} for e in self.cases.case_events(alert_id)]
        return out

    def alertmanager(self, base_url: str, *, active_only: bool = True) -> list[dict[str, Any]]:
        """The alerts as Alertmanager API v2 ``gettableAlert`` objects (GET /api/v2/alerts)."""
        at = self.now()
        out = []
        for v in self.alerts(active_only=active_only):
            resolved = v["status"] == "resolved"
            annotations = {
                "summary": v["summary"],
                "clearlane_status": v["status"],
                "clearlane_alert_id": v["alert_id"],
            }
            if v["ack_until"]:
                annotations["clearlane_ack_until"] = v["ack_until"]
            out.append({
                "labels": v["labels"], "annotations": annotations, "fingerprint": v["fingerprint"],
                "startsAt": v["opened_at"], "updatedAt": v["updated_at"],
                "endsAt": iso(v["updated_at_ms"] if resolved else at + RESOLVE_TIMEOUT_MS),
                "generatorURL": f"{base_url.rstrip('/')}/ui/#alerts/{v['alert_id']}",
                "receivers": [{"name": "clearlane"}],
                "status": {"state": "suppressed" if v["silenced_by"] else "active",
                           "silencedBy": v["silenced_by"], "inhibitedBy": []},
            })  # fmt: skip
        return out


__all__ = [
    "ALERT_CASE_EVENTS",
    "DEFAULT_RULES",
    "OPERATOR_ACTIONS",
    "AlertCaseEvent",
    "AlertRule",
    "AlertService",
    "CaseStore",
    "alert_fingerprint",
    "status_of",
]
