"""The HTTP API in-process (TestClient): submissions, idempotency, lifecycles with both
finalities, lists with cursors, positions, the dashboard aggregates, caching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.service_support import Service, svc, trade_row, wait_for

__all__ = ["svc"]


def _final(s: Service, trade_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = s.client.get(f"/v1/trades/{trade_id}", headers=s.h()).json()
        return body if body.get("state") == "final" else None

    return wait_for(check)


def test_submit_batch_then_lifecycle_reaches_both_finalities(svc: Service) -> None:
    rows = [trade_row(i) for i in range(5)] + [trade_row("L1-A", buyer="CUST-VAULT")]
    r = svc.client.post("/v1/trades/batch", json={"trades": rows}, headers=svc.h())
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 6 and body["duplicates"] == 0
    assert {i["lane"] for i in body["items"]} == {"L1", "L2"}
    assert body["items"][0]["batch_id"] == "fast-00000001" and body["items"][0]["state"] == "batched"
    life = _final(svc, "T1")
    assert life["l2_cleared_at"] and life["l1_final_at"]
    assert life["badge"].startswith("Settled on Layer-2 — soft-final at 2026-")
    assert "UTC" in life["badge"] and "; base-layer final at 2026-" in life["badge"]
    assert [t["state"] for t in life["transitions"]][:4] == ["received", "routed", "batched", "cleared"]
    assert life["quantity"] == "0.05000000" and life["quote_amount"] == "3250.01"
    l1 = _final(svc, "L1-A")
    assert l1["lane"] == "L1" and l1["badge"].startswith("Settled on Layer-1")


def test_resubmission_returns_existing_record_and_conflict_is_409(svc: Service) -> None:
    first = svc.client.post("/v1/trades", json=trade_row(1), headers=svc.h())
    assert first.status_code == 201 and first.headers["location"] == "/v1/trades/T1"
    again = svc.client.post("/v1/trades", json=trade_row(1), headers=svc.h())
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    applied = svc.runtime.rm.applied_seq
    clash = svc.client.post("/v1/trades", json=trade_row(1, price="1.00"), headers=svc.h())
    assert clash.status_code == 409
    assert clash.json()["error"] == "id_conflict" and clash.json()["code"] == 116
    assert svc.runtime.rm.activity.counts[:, 0].sum() == 1
    assert svc.runtime.rm.applied_seq <= applied + 3  # only clock/chain steps, no second trade step


def test_bad_rows_refuse_the_whole_batch_with_core_codes(svc: Service) -> None:
    rows = [
        trade_row(1),
        trade_row(2, price="1.2.3"),
        trade_row(3, buyer="NOBODY"),
        trade_row(4, quantity=0.5),
    ]
    r = svc.client.post("/v1/trades/batch", json={"trades": rows}, headers=svc.h())
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    p = r.json()
    assert (p["code"], p["error"], p["field"]) == (106, "bad_decimal", "trades[1].price")
    assert {(e["index"], e["error"]) for e in p["errors"]} == {
        (1, "bad_decimal"),
        (2, "unknown_participant"),
        (3, "bad_decimal"),
    }
    assert svc.client.get("/v1/trades/T1", headers=svc.h()).status_code == 404


def test_a_deeply_nested_value_is_refused_and_the_runtime_keeps_running(svc: Service) -> None:
    row = trade_row(1)
    body = orjson.dumps(row).decode()
    deep = '{"x":' * 1000 + "1" + "}" * 1000
    body = body.replace(orjson.dumps(row["quantity"]).decode(), deep, 1)
    r = svc.client.post("/v1/trades", content=body, headers={**svc.h(), "content-type": "application/json"})
    assert r.status_code == 422
    # Refused at the edge by the body's depth bound (32), naming where it nests too deeply.
    assert r.json()["error"] == "bad_json" and r.json()["field"].startswith("quantity.x.x")
    assert r.json()["reason"] == "nested too deeply"
    assert svc.client.get("/healthz").json()["status"] == "ok"
    r = svc.client.post("/v1/trades", json=trade_row(2), headers=svc.h())
    assert r.status_code == 201


def test_single_trade_error_names_the_plain_field(svc: Service) -> None:
    r = svc.client.post("/v1/trades", json=trade_row(1, symbol="BTC/XYZ"), headers=svc.h())
    assert r.status_code == 422 and r.json()["field"] == "symbol" and r.json()["code"] == 103
    r = svc.client.post(
        "/v1/trades", content=b"{not json", headers={**svc.h(), "content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"] == "bad_json"


def test_lists_paginate_by_cursor(svc: Service) -> None:
    rows = [trade_row(i) for i in range(7)]
    assert svc.client.post("/v1/trades/batch", json={"trades": rows}, headers=svc.h()).status_code == 200
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = svc.client.get("/v1/trades", params=params, headers=svc.h()).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"T{i}" for i in reversed(range(7))]
    bad = svc.client.get("/v1/trades", params={"cursor": "garbage!"}, headers=svc.h())
    assert bad.status_code == 400 and bad.json()["error"] == "bad_parameter"


def test_positions_batches_net_and_stats(svc: Service) -> None:
    svc.client.post("/v1/trades/batch", json={"trades": [trade_row(i) for i in range(4)]}, headers=svc.h())
    _final(svc, "T3")
    batches = svc.client.get("/v1/batches", headers=svc.h()).json()["items"]
    assert batches[0]["batch_id"] == "fast-00000001" and batches[0]["state"] == "final"
    detail = svc.client.get("/v1/batches/fast-00000001", headers=svc.h())
    assert detail.json()["root"] and [e["event"] for e in detail.json()["events"]][:2] == [
        "cleared",
        "anchored",
    ]
    assert "immutable" in detail.headers["cache-control"]
    net = svc.client.get(
        "/v1/net-instructions", params={"batch_id": "fast-00000001"}, headers=svc.h()
    ).json()["items"]
    assert sum(n["net_minor"] for n in net if n["asset"] == "BTC") == 0
    pos = svc.client.get("/v1/participants/MM-ALPHA/positions", headers=svc.h("participant"))
    assert pos.status_code == 200 and pos.headers["cache-control"] == "private, max-age=1"
    btc = [p for p in pos.json()["positions"] if p["asset"] == "BTC" and p["lane"] == "L2:fast"]
    assert btc[0]["final"] == "0.20000000"
    ov = svc.client.get("/v1/stats/overview", headers=svc.h()).json()
    fast = ov["lanes"][0]
    assert fast["pool"] == "fast" and fast["trades"]["final"] == 4 and fast["finality_latency_ms"]["n"] == 4
    lat = svc.client.get("/v1/stats/latency", headers=svc.h()).json()
    hops = {(s["pool"], s["hop"]) for s in lat["series"] if s["total"]["n"]}
    assert ("fast", "batched_cleared") in hops and ("fast", "received_routed") in hops
    sav = svc.client.get("/v1/stats/savings", headers=svc.h()).json()
    assert sav["totals"]["gross_usd"] > 0 and sav["buckets"]


def test_etag_and_304(svc: Service) -> None:
    svc.client.post("/v1/trades", json=trade_row(1), headers=svc.h())
    life = _final(svc, "T1")
    assert life["final"] is True
    r = svc.client.get("/v1/trades", headers=svc.h())
    etag = r.headers["etag"]
    again = svc.client.get("/v1/trades", headers={**svc.h(), "If-None-Match": f'"other", {etag}'})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    r = svc.client.get("/v1/trades/T1", headers=svc.h())
    assert r.headers["cache-control"] == "private, max-age=31536000, immutable"


def test_policy_rejection_is_logged_not_an_error(tmp_path: Path) -> None:
    from tests.service_support import EXAMPLE, make_service

    config = tmp_path / "reject.toml"
    config.write_text(
        EXAMPLE.read_text().replace('liquidity_breach = "route_l1"', 'liquidity_breach = "reject"')
    )
    with make_service(tmp_path, config=config) as s:
        big = trade_row("BIG", buyer="RTL-0001", seller="RTL-0002", quantity="1.00000000", price="65000")
        r = s.client.post("/v1/trades", json=big, headers=s.h())
        assert r.status_code == 201
        receipt = r.json()
        assert receipt["status"] == "rejected" and receipt["reject"]["error"] == "liquidity_exceeded"
        assert receipt["reject"]["code"] == 201 and receipt["reject"]["reason"].startswith(
            "projected L2 net debit"
        )
        life = s.client.get("/v1/trades/BIG", headers=s.h()).json()
        assert (
            life["state"] == "rejected"
            and life["final"]
            and life["reject"]["reason"].startswith("projected L2 net debit")
        )
        assert s.client.get("/v1/stats/overview", headers=s.h()).json()["rejects_by_code"] == {
            "liquidity_exceeded": 1
        }
        metrics = s.client.get("/metrics", headers=s.h("auditor")).text
        assert 'clearlane_rejects_total{code="201",error="liquidity_exceeded",source="engine"} 1.0' in metrics
        # The loop's step durations: one trade step so far (its bucket is whatever it took).
        assert 'clearlane_runtime_step_seconds_count{kind="trades"} 1.0' in metrics
        assert 'clearlane_runtime_step_seconds_bucket{kind="trades",le="+Inf"} 1.0' in metrics


def test_payments_and_collateral(svc: Service) -> None:
    dep = svc.client.post(
        "/v1/collateral/deposits",
        json={"deposit_id": "D1", "participant": "RTL-0001", "asset": "USD", "amount": "500.00"},
        headers=svc.h(),
    )
    assert dep.status_code == 201
    again = svc.client.post(
        "/v1/collateral/deposits",
        json={"deposit_id": "D1", "participant": "RTL-0001", "asset": "USD", "amount": "500.00"},
        headers=svc.h(),
    )
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    bad = svc.client.post(
        "/v1/collateral/deposits",
        json={"deposit_id": "D2", "participant": "RTL-0001", "asset": "USD", "amount": "1.001"},
        headers=svc.h(),
    )
    assert (
        bad.status_code == 422
        and bad.json()["error"] == "precision_exceeded"
        and bad.json()["field"] == "amount"
    )
    too_much = svc.client.post(
        "/v1/collateral/withdrawals",
        json={"withdrawal_id": "W1", "participant": "RTL-0001", "asset": "USD", "amount": "600.00"},
        headers=svc.h("retail"),
    )
    assert too_much.status_code == 422 and too_much.json()["code"] == 401
    ok = svc.client.post(
        "/v1/collateral/withdrawals",
        json={"withdrawal_id": "W1", "participant": "RTL-0001", "asset": "USD", "amount": "100.00"},
        headers=svc.h("retail"),
    )
    assert ok.status_code == 201  # the refused attempt did not consume the id
    pay = svc.client.post(
        "/v1/payments/batch",
        json={
            "payments": [
                {
                    "payment_id": "P1",
                    "payer": "RTL-0001",
                    "payee": "RTL-0002",
                    "asset": "USD",
                    "amount": "10.00",
                },
                {
                    "payment_id": "P2",
                    "payer": "RTL-0002",
                    "payee": "RTL-0001",
                    "asset": "USD",
                    "amount": "4.00",
                },
            ]
        },
        headers=svc.h(),
    )
    assert pay.status_code == 200 and pay.json()["accepted"] == 2
    life = wait_for(
        lambda: (b := svc.client.get("/v1/payments/P1", headers=svc.h()).json()).get("state") == "final" and b
    )
    assert life["kind"] == "payment" and life["quantity"] == "10.00"
    liq = svc.client.get("/v1/participants/RTL-0001/positions", headers=svc.h("retail")).json()
    usd = next(b for b in liq["balances"] if b["asset"] == "USD")
    assert usd["collateral"] == "400.00"


def test_a_store_the_service_creates_has_small_pages(svc: Service) -> None:
    """``serve`` creates its store with SERVICE_PAGE_SIZE pages (a step's small commits), where a
    bulk clear's store has BULK_PAGE_SIZE pages (Store.open)."""
    from sqlalchemy import text

    from clearlane.adapters.sql.store import SERVICE_PAGE_SIZE

    with svc.runtime.store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA page_size")).scalar_one() == SERVICE_PAGE_SIZE
