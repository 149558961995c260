"""The alerts API on the real service (SQLite store with migration 0009, runtime, auth): an
engine alert becomes an alert case, an operator acknowledges it with a note and a TTL, a
refused action is a 409/422 problem with the workflow's code, a silence mutes it (Alertmanager
v2 export shows ``suppressed``), expiring the silence un-mutes it, and every action is an
``alert.*`` event on the bus."""

from __future__ import annotations

from typing import Any

from clearlane.node.events import ALERT_CASE_EVENTS, AlertEvent, EventFilter
from tests.service_support import Service, svc

__all__ = ["svc"]


def test_alert_workflow_over_http(svc: Service) -> None:
    seen: list[dict[str, Any]] = []
    flt = EventFilter(types=frozenset(ALERT_CASE_EVENTS))
    svc.runtime.bus.add_listener(
        lambda groups: seen.extend(e for g in groups if g.type in flt.types for e in g.events(flt))
    )
    now = svc.runtime.clock.now_ms()
    svc.runtime.bus.publish([AlertEvent(1, now, 1, "alert", "batch fast-00000009 unwound: test")])
    listed = svc.client.get("/v1/alerts", headers=svc.h("auditor"))
    assert listed.status_code == 200, listed.text
    [alert] = listed.json()["items"]
    assert alert["status"] == "open" and listed.json()["counts"]["open"] == 1
    assert svc.client.get("/v1/alerts", headers=svc.h("participant")).status_code == 403
    url = f"/v1/alerts/{alert['alert_id']}/actions"
    no_note = svc.client.post(url, json={"action": "acknowledge", "ttl_ms": 3_600_000}, headers=svc.h())
    assert no_note.status_code == 422 and no_note.json()["error"] == "case_note_required"
    acked = svc.client.post(
        url, json={"action": "acknowledge", "note": "on it", "ttl_ms": 3_600_000}, headers=svc.h()
    )
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    again = svc.client.post(url, json={"action": "acknowledge", "note": "x", "ttl_ms": 1000}, headers=svc.h())
    assert again.status_code == 409 and again.json()["error"] == "case_transition_invalid"
    matchers = [{"name": "kind", "value": "alert", "isRegex": False}]
    silence = svc.client.post(
        "/v1/alerts/silences",
        json={"matchers": matchers, "ttl_ms": 3_600_000, "comment": "drill"},
        headers=svc.h(),
    )
    assert silence.status_code == 201, silence.text
    sid = silence.json()["id"]
    [exported] = svc.client.get("/v1/alerts/alertmanager", headers=svc.h()).json()
    assert exported["status"] == {"state": "suppressed", "silencedBy": [sid], "inhibitedBy": []}
    assert exported["labels"]["alertname"] == "EngineAlert" and exported["startsAt"].endswith("Z")
    assert svc.client.get("/v1/alerts?status=silenced", headers=svc.h()).json()["total"] == 1
    assert (
        svc.client.delete(f"/v1/alerts/silences/{sid}", headers=svc.h()).json()["status"]["state"]
        == "expired"
    )
    assert svc.client.get(f"/v1/alerts/silences/{sid}", headers=svc.h("auditor")).status_code == 200
    assert svc.client.get("/v1/alerts/silences/sil-none", headers=svc.h()).status_code == 404
    detail = svc.client.get(f"/v1/alerts/{alert['alert_id']}", headers=svc.h()).json()
    assert [e["action"] for e in detail["events"]] == ["open", "acknowledge", "silence", "unsilence"]
    assert detail["status"] == "acknowledged" and detail["events"][1]["note"] == "on it"
    assert [e["type"] for e in seen] == [
        "alert.opened", "alert.acknowledged", "alert.silenced", "alert.unsilenced",
    ]  # fmt: skip
    _alertmanager_receiver(svc)


def _alertmanager_receiver(svc: Service) -> None:
    """Alertmanager's webhook: a firing Prometheus alert becomes an alert case (same service)."""
    alert = {"status": "firing", "labels": {"alertname": "ClearlaneScrapeDown", "severity": "critical"}}
    hook = svc.client.post(
        "/v1/alerts/alertmanager", json={"version": "4", "alerts": [alert]}, headers=svc.h()
    )
    assert hook.status_code == 200 and hook.json() == {"firing": 1, "resolved": 0}
    assert (
        svc.client.post(
            "/v1/alerts/alertmanager", json={"alerts": [alert]}, headers=svc.h("auditor")
        ).status_code
        == 403
    )
    bad = svc.client.post("/v1/alerts/alertmanager", json={"alerts": [{"status": "x"}]}, headers=svc.h())
    assert bad.status_code == 422 and bad.json()["error"] == "alertmanager_payload_invalid"
    item = svc.client.get("/v1/alerts", headers=svc.h()).json()["items"][0]
    assert item["rule"] == "ClearlaneScrapeDown" and item["severity"] == "critical"
