"""The alert service on memory stores: engine alerts and rule evaluations open alerts, an ack
lapses and re-notifies, a silence mutes and is recorded in the trail, every action publishes an
``alert.*`` event, and the Alertmanager v2 export has the gettableAlert shape."""

from __future__ import annotations

import time
from typing import Any

import pytest

from clearlane.adapters.memory.alerts import MemorySilenceStore
from clearlane.adapters.memory.recon import MemoryReconStore
from clearlane.core.cases import CaseError, Severity, verify_events
from clearlane.core.cases.workflow import HOUR_MS
from clearlane.core.errors import NotFound
from clearlane.node.alerts import AlertRule, AlertService
from clearlane.node.events import ALERT, AlertEvent, EventFilter, EventGroup

T0 = 1_763_700_000_000


class Harness:
    def __init__(self) -> None:
        self.now = T0
        self.figures: dict[str, float] = {}
        self.published: list[EventGroup] = []
        self.store = MemoryReconStore()
        self.svc = AlertService(
            self.store, MemorySilenceStore(), now=lambda: self.now, publish=self.published.extend,
            figures=lambda: self.figures,
            rules=[AlertRule("AnchorBacklogHigh", "anchor_backlog", 20, Severity.HIGH, "backlog", for_ms=1000)],
        )  # fmt: skip

    def types(self) -> list[str]:
        return [g.type for g in self.published]


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_engine_alert_opens_recurs_and_publishes(h: Harness) -> None:
    raised = AlertEvent(7, T0, 1, "alert", "batch b-1 unwound: anchor reorged")
    h.svc.on_groups([raised])
    h.svc.on_groups([raised])
    [alert] = h.svc.alerts()
    assert alert["rule"] == "EngineAlert" and alert["occurrences"] == 2 and alert["severity"] == "critical"
    assert alert["status"] == "open" and alert["labels"]["kind"] == "alert"
    assert h.types() == ["alert.opened"]
    event = h.published[0].events(EventFilter(types=frozenset([ALERT])))[0]
    assert event["data"]["alert_id"] == alert["alert_id"] and event["data"]["actor"] == "engine"
    assert h.published[0].events(EventFilter(participant="P1")) == []


def test_rule_fires_after_for_and_resolves_itself(h: Harness) -> None:
    h.figures["anchor_backlog"] = 40
    h.svc.tick(T0)
    assert h.svc.alerts() == []  # pending: not yet breached for 1 s
    h.svc.tick(T0 + 1000)
    [alert] = h.svc.alerts()
    assert alert["summary"] == "backlog: 40 > 20" and alert["labels"] == {
        "figure": "anchor_backlog", "alertname": "AnchorBacklogHigh", "severity": "high",
    }  # fmt: skip
    h.svc.tick(T0 + 2000)  # still firing: one alert
    h.figures["anchor_backlog"] = 3
    h.svc.tick(T0 + 3000)
    assert h.svc.alerts() == [] and h.types() == ["alert.opened", "alert.resolved"]
    [done] = h.svc.alerts(active_only=False)
    assert done["resolution"] == "auto" and done["age_ms"] == 2000


def test_ack_with_ttl_lapses_and_renotifies(h: Harness) -> None:
    h.svc.on_groups([AlertEvent(1, T0, 1, "ledger_refused", "ledger_refused: over limit")])
    [alert] = h.svc.alerts()
    with pytest.raises(CaseError) as info:
        h.svc.act(alert["alert_id"], "acknowledge", "ops", {"ttl_ms": HOUR_MS})
    assert info.value.code == "CASE_NOTE_REQUIRED"
    acked = h.svc.act(alert["alert_id"], "acknowledge", "ops", {"note": "looking", "ttl_ms": HOUR_MS})
    assert acked["status"] == "acknowledged" and acked["ack_until_ms"] == T0 + HOUR_MS
    h.now = T0 + HOUR_MS
    [again] = h.svc.alerts()
    assert again["status"] == "open" and again["ack_until_ms"] is None
    assert h.types() == ["alert.opened", "alert.acknowledged", "alert.renotified"]
    detail = h.svc.get(alert["alert_id"])
    assert [e["action"] for e in detail["events"]] == ["open", "acknowledge", "ack_lapse"]
    assert verify_events(h.store.case_events(alert["alert_id"]))


def test_silence_mutes_is_audited_and_expires(h: Harness) -> None:
    h.svc.on_groups([AlertEvent(1, T0, 1, "alert", "batch b-9 unwound")])
    [alert] = h.svc.alerts()
    body: dict[str, Any] = {
        "matchers": [{"name": "alertname", "value": "EngineAlert", "isRegex": False}],
        "ttl_ms": HOUR_MS, "comment": "known incident",
    }  # fmt: skip
    silence = h.svc.create_silence(body, "ops")
    assert silence["status"]["state"] == "active" and silence["createdBy"] == "ops"
    [muted] = h.svc.alerts()
    assert muted["status"] == "silenced" and muted["silenced_by"] == [silence["id"]]
    [exported] = h.svc.alertmanager("http://node:8080")
    assert exported["status"] == {"state": "suppressed", "silencedBy": [silence["id"]], "inhibitedBy": []}
    assert set(exported) >= {"labels", "annotations", "startsAt", "endsAt", "updatedAt", "generatorURL",
                             "fingerprint", "receivers", "status"}  # fmt: skip
    assert exported["generatorURL"] == f"http://node:8080/ui/#alerts/{alert['alert_id']}"
    h.now += 5
    assert h.svc.expire_silence(silence["id"])["status"]["state"] == "expired"
    with pytest.raises(CaseError):
        h.svc.expire_silence(silence["id"])
    with pytest.raises(NotFound):
        h.svc.expire_silence("sil-none")
    assert h.svc.alerts()[0]["status"] == "open"
    assert [e["action"] for e in h.svc.get(alert["alert_id"])["events"]] == ["open", "silence", "unsilence"]
    assert h.types() == ["alert.opened", "alert.silenced", "alert.unsilenced"]


def test_snooze_resolve_and_refusals(h: Harness) -> None:
    h.svc.on_groups([AlertEvent(1, T0, 1, "alert", "x")])
    alert_id = h.svc.alerts()[0]["alert_id"]
    snoozed = h.svc.act(alert_id, "snooze", "ops", {"ttl_ms": 1000, "note": "after deploy"})
    assert snoozed["status"] == "snoozed"
    for action, body in (("silence", {}), ("resolve", {}), ("acknowledge", {"note": "x", "ttl_ms": -1})):
        with pytest.raises(CaseError):
            h.svc.act(alert_id, action, "ops", body)
    with pytest.raises(CaseError) as info:
        h.svc.act(alert_id, "note", "ops", {"note": "x", "version": 1})
    assert info.value.code == "CASE_VERSION_CONFLICT"
    h.now = T0 + 1000
    assert h.svc.alerts()[0]["status"] == "open"
    done = h.svc.act(alert_id, "resolve", "ops", {"note": "fixed"})
    assert done["status"] == "resolved" and h.svc.alerts() == []
    with pytest.raises(NotFound):
        h.svc.get("case-nope")


def test_alertmanager_webhook_opens_and_resolves(h: Harness) -> None:
    alert = {
        "status": "firing",
        "labels": {"alertname": "ClearlaneAnchorBacklog", "severity": "warning", "instance": "n1", "queue": "anchor_backlog"},
        "annotations": {"summary": "30 cleared batches waiting"},
    }  # fmt: skip
    assert h.svc.receive_alertmanager({"version": "4", "alerts": [alert, alert]}) == {
        "firing": 2,
        "resolved": 0,
    }
    [opened] = h.svc.alerts()
    assert (
        opened["rule"] == "ClearlaneAnchorBacklog"
        and opened["occurrences"] == 2
        and opened["severity"] == "medium"
    )
    assert opened["labels"]["severity"] == "warning" and opened["summary"] == "30 cleared batches waiting"
    bad = {**alert, "labels": {**alert["labels"], "bad-name": "x"}}
    with pytest.raises(CaseError):
        h.svc.receive_alertmanager({"alerts": [{**alert, "status": "resolved"}, bad]})
    assert h.svc.alerts()[0]["status"] == "open"  # checked whole: nothing resolved
    h.svc.receive_alertmanager({"alerts": [{**alert, "status": "resolved"}]})
    assert h.svc.alerts() == []


def test_timer_records_handed_off_engine_alerts(h: Harness) -> None:
    """The listener only hands off; the timer thread, woken at once, records the alert."""
    h.svc.interval_s = 60.0  # so only the wake-up can have done it
    h.svc.start()
    try:
        h.svc.on_groups([AlertEvent(1, T0, 1, "alert", "batch b-2 unwound")])
        deadline = time.monotonic() + 10
        while not h.store.cases() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        h.svc.stop()
    [case] = h.store.cases()
    assert case.rule == "EngineAlert" and h.types() == ["alert.opened"]
