"""The stress API (routes/stress.py): the library, a run against the service's recorded day
(bounded: one at a time, a day-size cap), the report and its exports; readers only."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest

from clearlane.adapters.http.routes.stress import StressRun, desk_for
from tests.service_support import Service, make_service, trade_row, wait_for


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with make_service(tmp_path_factory.mktemp("stress")) as s:
        rows = [
            trade_row(i, buyer=b, seller=sl, executed_at=f"2026-11-20T14:0{i % 10}:07.250Z")
            for i, (b, sl) in enumerate([("MM-ALPHA", "BRK-NORTH"), ("RTL-0001", "RTL-0002")] * 20)
        ]
        s.client.post("/v1/trades/batch", json={"trades": rows}, headers=s.h())
        yield s


def _finished(s: Service, report_id: str) -> dict[str, object]:
    def done() -> dict[str, object] | None:
        out = s.client.get(f"/v1/stress/reports/{report_id}", headers=s.h("auditor")).json()
        return out if out["status"] != "running" else None

    result: dict[str, object] = wait_for(done, timeout=60, every=0.2)
    return result


def test_a_run_against_the_recorded_day_reports_and_exports(svc: Service) -> None:
    library = svc.client.get("/v1/stress/scenarios", headers=svc.h("auditor")).json()["items"]
    assert {"five-faults", "retail-unwind"} <= {s["id"] for s in library}
    started = svc.client.post("/v1/stress/runs", json={"scenario": "l1-outage", "seed": 5}, headers=svc.h())
    assert started.status_code == 202, started.text
    report_id = started.json()["report_id"]
    assert started.headers["Location"] == f"/v1/stress/reports/{report_id}"
    out = _finished(svc, report_id)
    assert out["status"] == "done", out
    report = out["report"]
    assert isinstance(report, dict) and report["scenario"]["seed"] == 5
    assert report["faults"]["base_layer_outage"]["configured"] == 1
    series = out["series"]
    assert isinstance(series, dict) and set(series) == {"baseline", "scenario"}
    listed = svc.client.get("/v1/stress/reports", headers=svc.h()).json()["items"]
    assert listed[0]["report_id"] == report_id and "summary" in listed[0]
    exported = svc.client.get(f"/v1/stress/reports/{report_id}/export/json", headers=svc.h())
    assert json.loads(exported.content) == report
    table = svc.client.get(f"/v1/stress/reports/{report_id}/export/csv", headers=svc.h()).text
    assert next(csv.reader(io.StringIO(table)))[0] == "participant"
    doc = svc.client.get(f"/v1/stress/reports/{report_id}/export/auth063", headers=svc.h()).json()
    assert "CCPLqdtyStrssTstgRsltRpt" in doc["Document"]
    xml = svc.client.get(f"/v1/stress/reports/{report_id}/export/auth063.xml", headers=svc.h())
    assert xml.headers["content-type"].startswith("application/xml") and b"LqdtyHrzn" in xml.content


def test_runs_are_bounded_and_refused_clearly(svc: Service) -> None:
    h = svc.h()
    assert svc.client.post("/v1/stress/runs", json={"scenario": "nope"}, headers=h).status_code == 404
    assert (
        svc.client.post("/v1/stress/runs", json={"scenario": "l1-outage", "seed": -1}, headers=h).status_code
        == 422
    )
    assert (
        svc.client.post(
            "/v1/stress/runs", json={"scenario": "l1-outage"}, headers=svc.h("participant")
        ).status_code
        == 403
    )
    desk = desk_for(svc.app)
    desk.runs["busy"] = StressRun("busy", "x", 1, 0, 0, 0)
    try:
        busy = svc.client.post("/v1/stress/runs", json={"scenario": "l1-outage"}, headers=h)
        assert busy.status_code == 503 and busy.headers["Retry-After"]
    finally:
        desk.runs.pop("busy").status = "done"
    desk.max_trades = 1
    try:
        big = svc.client.post("/v1/stress/runs", json={"scenario": "l1-outage"}, headers=h)
        assert big.status_code == 422 and "in-process" in big.json()["detail"]
    finally:
        desk.max_trades = 100_000
    assert svc.client.get("/v1/stress/reports/none", headers=h).status_code == 404
    desk.max_seconds = 0.0  # every run outlives it: stopped between two steps, kept as failed
    try:
        started = svc.client.post("/v1/stress/runs", json={"scenario": "l1-outage"}, headers=h)
        stopped = _finished(svc, started.json()["report_id"])
        assert stopped["status"] == "failed" and "longer than 0 s" in str(stopped["error"])
    finally:
        desk.max_seconds = 300.0
