"""The one case workflow: reconciliation exceptions today, monitoring alerts and escrow disputes
next (they share it by ``CaseKind``). A pure state machine over frozen records — open →
assigned → in review → resolved / accepted (written off), snooze, reopen within the period —
with owner, severity, SLA due time, ageing buckets, resolution codes, optimistic versions and
an append-only, hash-chained event per action. Time and actors are inputs; no I/O.
Alerts add an acknowledgement TTL and Alertmanager-style silences (``silences``).
"""

from clearlane.core.cases.workflow import (
    AGEING_BUCKETS,
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
    ageing_bucket,
    case_from_row,
    case_id,
    case_row,
    due_actions,
    event_from_row,
    event_row,
    open_case,
    severity_for,
    verify_events,
)

__all__ = [
    "AGEING_BUCKETS",
    "Action",
    "Case",
    "CaseError",
    "CaseEvent",
    "CaseKind",
    "CaseState",
    "CaseSubject",
    "Resolution",
    "Severity",
    "act",
    "ageing_bucket",
    "case_from_row",
    "case_id",
    "case_row",
    "due_actions",
    "event_from_row",
    "event_row",
    "open_case",
    "severity_for",
    "verify_events",
]
