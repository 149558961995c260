"""The case queue is generic: a case of any kind in the store is listed, filtered, shown with its
verified trail and acted on; only kinds the event vocabulary names publish events."""

from __future__ import annotations

import pytest

from clearlane.adapters.memory.recon import MemoryReconStore
from clearlane.core.cases import CaseKind, CaseSubject, Severity, open_case
from clearlane.core.cases.workflow import DAY_MS
from clearlane.node.events import EventFilter
from clearlane.node.recon import cases as case_app


def _subject(kind: CaseKind, fingerprint: str, severity: Severity = Severity.LOW) -> CaseSubject:
    return CaseSubject(
        kind, "r/1", fingerprint, "2026-11-20", "s", 202, "UNMATCHED_EXTERNAL", "USD", 12_345, severity
    )


def test_every_kind_is_served_and_only_named_kinds_publish() -> None:
    store = MemoryReconStore()
    alert = open_case(_subject(CaseKind.ALERT, "a"), actor="monitor", at_ms=0)
    exception = open_case(
        _subject(CaseKind.EXCEPTION, "e", Severity.CRITICAL), actor="recon", at_ms=2 * DAY_MS
    )
    for change in (alert, exception):
        store.save_case(*change)
    every = case_app.list_cases(store, case_app.CaseQuery(), now_ms=7 * DAY_MS // 2)
    assert [v["kind"] for v in every] == ["alert", "exception"]
    assert [v["ageing"] for v in every] == ["3-7d", "1-3d"] and every[0]["amount"] == "123.45"
    assert every[1]["overdue"] is True and every[0]["overdue"] is False  # critical: 24 h
    only = case_app.list_cases(store, case_app.CaseQuery(kind="alert", severity="low"), now_ms=0)
    assert [v["case_id"] for v in only] == [alert[0].case_id]
    summary = case_app.queue_summary(every)
    assert summary["overdue"] == 1 and summary["ageing"]["3-7d"] == 1 and summary["active"] == 2
    with pytest.raises(case_app.CaseQueryError, match="ageing"):
        case_app.CaseQuery(ageing="2d").checked()
    moved = case_app.apply_command(
        store, alert[0].case_id, case_app.parse_command("assign", owner="sre"), actor="ops", now_ms=5
    )
    assert case_app.case_detail(store, alert[0].case_id, now_ms=5)["chain_ok"] is True
    groups = case_app.case_event_groups([exception, moved])
    assert [g.type for g in groups] == ["exception.opened"]  # alert.* comes from the alert service
    assert groups[0].events(EventFilter(participant="MM-ALPHA")) == []
    (event,) = groups[0].events(EventFilter())
    assert event["id"] == f"case:{exception[0].case_id}:1" and event["data"]["case"]["severity"] == "critical"
