"""GET /v1/monitoring (canaries per path, divergence, trust), the pushed readings (operators
only, strict) and the gauges clearlane_canary_status / clearlane_trust_score on /metrics, on a
served node with a canary set (issue 15)."""

from __future__ import annotations

from pathlib import Path

from tests.node.test_monitor_canaries import canary_config
from tests.service_support import make_service, wait_for


def test_monitoring_routes_and_gauges(tmp_path: Path) -> None:
    with make_service(tmp_path, config=canary_config(tmp_path)) as svc:
        c = svc.client
        snap = wait_for(
            lambda: (r := c.get("/v1/monitoring", headers=svc.h())).status_code == 200 and r.json()
        )
        paths = {p["path"] for p in snap["canaries"]["paths"]}
        assert paths == {"L1", "L2:fast", "L2:retail", "payment", "escrow", "unwind"}
        ok = c.post(
            "/v1/monitoring/marks",
            json={"source": "feed-a", "asset": "BTC", "mark_usd": "65000"},
            headers=svc.h(),
        )
        assert ok.status_code == 202 and ok.json()["source"] == "feed-a"
        bad = c.post(
            "/v1/monitoring/marks",
            json={"source": "feed-a", "asset": "BTC", "mark_usd": "6.5e4"},
            headers=svc.h(),
        )
        assert bad.status_code == 422 and "mark_usd" in bad.json()["detail"]
        denied = c.post("/v1/monitoring/marks", json={}, headers=svc.h("participant"))
        assert denied.status_code == 403
        assert c.get("/v1/monitoring/trust", headers=svc.h("participant")).status_code == 403
        svc.app.state.monitor.evaluate(svc.runtime.clock.now_ms())
        trust = c.get("/v1/monitoring/trust", headers=svc.h("auditor")).json()
        assert trust["feed-a"]["1h"]["score"] == 1.0
        # Canaries run on the engine clock (50x): a first verdict per path within seconds.
        wait_for(lambda: len(svc.app.state.monitor.canaries.gauges()) == 5, timeout=30)
        assert set(svc.app.state.monitor.canaries.gauges().values()) == {1.0}
        text = c.get("/metrics", headers=svc.h()).text
        assert 'clearlane_canary_status{path="L2:fast"}' in text
        assert 'clearlane_trust_score{source="feed-a",window="1h"} 1.0' in text
        listed = c.get("/v1/dashboard/participants?limit=1000", headers=svc.h()).json()
        ids = {row["id"] for row in listed["items"]}
        assert "MM-ALPHA" in ids and not any(i.startswith("CANARY-") for i in ids)  # not clients
        # A monitor alert reaches the alert lifecycle (the Alerts page) through alert.raised.
        monitor = svc.app.state.monitor
        monitor.raise_alert("canary_failed", "critical", "canary L1 failed at final (test)", monitor.now_ms)
        found = wait_for(
            lambda: "canary L1 failed at final (test)" in c.get("/v1/alerts", headers=svc.h()).text
        )
        assert found
        div = c.get("/v1/monitoring/divergence", headers=svc.h()).json()
        assert {"findings", "marks", "counts", "base_layer", "l2_halted", "policy"} <= set(div)
