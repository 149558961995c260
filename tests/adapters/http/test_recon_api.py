"""The reconciliation and case API on the real service (SQLite store, runtime, auth): import a
real MT940 file once, run, read runs and breaks, work the exception queue (filters, ageing, SLA,
every action, optimistic versions, required notes), the verified trail, and one ``exception.*``
event per case change — to operators, never to a participant's subscriber."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clearlane.core.cases.workflow import HOUR_MS
from clearlane.node.events import EXCEPTION_EVENTS, EventFilter
from tests.service_support import Service, svc

__all__ = ["svc"]

NOW = 1_800_000_000_000


def _listen(svc: Service, flt: EventFilter) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    svc.runtime.bus.add_listener(lambda groups: seen.extend(e for g in groups for e in g.events(flt)))
    return seen


def _setup(svc: Service, shared: Path) -> list[dict[str, Any]]:
    clock = {"now": NOW}
    svc.app.state.case_clock = lambda: clock["now"]
    svc.app.state.test_clock = clock
    body = (shared / "realdata/mt940/cmxl_mt940.sta").read_bytes()
    url = "/v1/recon/imports?file_name=cmxl.sta"
    assert svc.client.post(url, content=body, headers=svc.h("auditor")).status_code == 403
    first = svc.client.post(url, content=body, headers=svc.h())
    assert first.status_code == 201, first.text
    assert [i["records"] for i in first.json()["imported"]] == [11, 2, 3]
    again = svc.client.post(url, content=body, headers=svc.h())
    assert again.status_code == 200 and len(again.json()["duplicates"]) == 3
    statements = svc.client.get("/v1/recon/statements", headers=svc.h("auditor")).json()
    assert statements["total"] == 3 and all(s["balanced"] for s in statements["items"])
    return svc.client.get("/v1/recon/statements", headers=svc.h("participant")).json()  # type: ignore[no-any-return]


def test_recon_and_the_case_queue(svc: Service, shared: Path) -> None:
    ops = _listen(svc, EventFilter(types=frozenset(EXCEPTION_EVENTS)))
    mine = _listen(svc, EventFilter(types=frozenset(EXCEPTION_EVENTS), participant="MM-ALPHA"))
    refused = _setup(svc, shared)
    assert refused["status"] == 403
    for body, field in (
        ({"window_days": 99}, "window_days"),
        ({"period": "2026-13-99"}, "period"),
        ({"tolerance": []}, "tolerance"),
        ({"tolerance_bps": {"EUR": 10_000}}, "tolerance_bps.EUR"),
        ({"internal": ["x"]}, "internal"),
        ({"runs": 1}, "runs"),
    ):
        bad = svc.client.post("/v1/recon/runs", json=body, headers=svc.h())
        assert bad.status_code == 422 and bad.json()["field"] == field, bad.text
    ran = svc.client.post(
        "/v1/recon/runs", json={"tolerance": {"EUR": "0.01"}, "tolerance_bps": {"EUR": 5}}, headers=svc.h()
    )
    assert ran.status_code == 201, ran.text
    run = ran.json()
    assert run["status"] == "completed" and run["cases"]["opened"] == 16
    assert [e["type"] for e in ops] == ["exception.opened"] * 16 and mine == []
    runs = svc.client.get("/v1/recon/runs", headers=svc.h("auditor")).json()
    assert [r["run_id"] for r in runs["items"]] == [run["run_id"]]
    breaks = svc.client.get(f"/v1/recon/runs/{run['run_id']}/breaks", headers=svc.h("auditor")).json()
    assert breaks["total"] == 16 and {b["reason"] for b in breaks["items"]} == {"UNMATCHED_EXTERNAL"}
    assert breaks["items"][0]["amount"].count(".") == 1
    latest = svc.client.get("/v1/recon/breaks", headers=svc.h()).json()
    assert latest["total"] == 16

    assert svc.client.get("/v1/cases", headers=svc.h("participant")).status_code == 403
    assert svc.client.get("/v1/cases?state=bogus", headers=svc.h()).status_code == 400
    queue = svc.client.get("/v1/cases?kind=exception&state=open", headers=svc.h("auditor")).json()
    assert queue["total"] == 16 and queue["summary"]["ageing"]["0-1d"] == 16
    # an unmatched line carries its amount, so its severity: 6,800.00 DEM and up are not low
    assert all(c["asset"] and c["amount"] and c["amount_minor"] > 0 for c in queue["items"])
    assert {c["severity"] for c in queue["items"]} > {"low"}
    case_id = queue["items"][0]["case_id"]
    _work_one_case(svc, case_id)
    types = [e["type"] for e in ops[16:]]
    assert types == ["exception.assigned", "exception.acknowledged", "exception.resolved", "exception.reopened",
                     "exception.snoozed"]  # fmt: skip
    assert all(e["id"].startswith(f"case:{case_id}:") for e in ops[16:]) and mine == []


def _act(svc: Service, case_id: str, who: str = "operator", **body: Any) -> Any:
    return svc.client.post(f"/v1/cases/{case_id}/actions", json=body, headers=svc.h(who))


def _work_one_case(svc: Service, case_id: str) -> None:
    assert _act(svc, case_id, "auditor", action="assign", owner="ops-anna").status_code == 403
    assigned = _act(svc, case_id, action="assign", owner="ops-anna", expected_version=1)
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["case"]["state"] == "assigned" and assigned.json()["case"]["owner"] == "ops-anna"
    stale = _act(svc, case_id, action="acknowledge", expected_version=1)
    assert stale.status_code == 409 and stale.json()["error"] == "case_version_conflict"
    assert _act(svc, case_id, action="acknowledge", expected_version=2).status_code == 200
    no_note = _act(svc, case_id, action="resolve")
    assert no_note.status_code == 422 and no_note.json()["error"] == "case_note_required"
    assert no_note.json()["field"] == "note"
    assert _act(svc, case_id, action="explode").json()["field"] == "action"
    assert _act(svc, case_id, action="resolve", resolution="auto", note="x").json()["field"] == "resolution"
    done = _act(svc, case_id, action="resolve", note="booked", resolution="duplicate")
    assert done.json()["case"]["resolution"] == "duplicate"
    assert _act(svc, case_id, action="snooze", until="2030-01-01T00:00:00Z").status_code == 409
    assert _act(svc, case_id, action="reopen", note="not booked after all").json()["case"]["state"] == "open"
    assert _act(svc, case_id, action="snooze", until="yesterday").json()["field"] == "until"
    snoozed = _act(svc, case_id, action="snooze", until="2030-01-01T00:00:00Z")
    assert snoozed.json()["case"]["snoozed_until_ms"] == 1_893_456_000_000
    detail = svc.client.get(f"/v1/cases/{case_id}", headers=svc.h("auditor")).json()
    assert detail["chain_ok"] is True
    assert [e["action"] for e in detail["events"]] == [
        "open",
        "assign",
        "acknowledge",
        "resolve",
        "reopen",
        "snooze",
    ]
    assert svc.client.get("/v1/cases/case-nope", headers=svc.h()).status_code == 404
    # ageing and SLA follow the clock: two days on, every case is 1-3d; past its SLA, overdue
    svc.app.state.test_clock["now"] = NOW + 48 * HOUR_MS
    aged = svc.client.get("/v1/cases?ageing=1-3d", headers=svc.h()).json()
    assert aged["total"] == 16
    svc.app.state.test_clock["now"] = NOW + 200 * HOUR_MS
    late = svc.client.get("/v1/cases?overdue=true&state=active", headers=svc.h()).json()
    assert late["total"] == 16 and late["summary"]["overdue"] == 16 and late["items"][0]["overdue"] is True
    assert svc.client.get("/v1/cases?owner=ops-anna", headers=svc.h()).json()["total"] == 1
