"""Same id, different content over HTTP: 409 ``id_conflict`` (116) for trades, payments,
deposits and withdrawals, nothing applied; exact re-sends (values, not spellings) are 200
duplicates; a bulk request is all or nothing and names every failing item."""

from __future__ import annotations

from typing import Any

from tests.service_support import Service, svc, trade_row

__all__ = ["svc"]


def _trade_steps(s: Service) -> int:
    return int(s.runtime.counters.trade_steps)


def _trade_count(s: Service) -> int:
    return int(s.runtime.rm.activity.counts[:, 0].sum())


def test_a_respelled_trade_is_a_duplicate_and_a_changed_one_a_conflict(svc: Service) -> None:
    first = svc.client.post("/v1/trades", json=trade_row(1, quantity="0.050"), headers=svc.h())
    assert first.status_code == 201
    same = trade_row(1, quantity="0.05", price="65000.120", executed_at="2026-11-20T14:03:07.25+00:00")
    again = svc.client.post("/v1/trades", json=same, headers=svc.h())
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    steps = _trade_steps(svc)
    for change in ({"quantity": "0.06"}, {"executed_at": "2026-11-20T14:03:08Z"}, {"venue": "XB"}):
        clash = svc.client.post("/v1/trades", json=trade_row(1, **change), headers=svc.h())
        assert clash.status_code == 409, change
        body = clash.json()
        assert (body["code"], body["error"], body["field"]) == (116, "id_conflict", "trade_id")
    assert _trade_steps(svc) == steps and _trade_count(svc) == 1


def test_a_bulk_request_with_a_conflict_applies_none_of_its_items(svc: Service) -> None:
    assert svc.client.post("/v1/trades", json=trade_row(1), headers=svc.h()).status_code == 201
    assert svc.client.post("/v1/trades", json=trade_row(2), headers=svc.h()).status_code == 201
    rows = [trade_row(3), trade_row(1, price="1"), trade_row(4), trade_row(2, quantity="0.5")]
    r = svc.client.post("/v1/trades/batch", json={"trades": rows}, headers=svc.h())
    assert r.status_code == 409
    errors = r.json()["errors"]
    assert [(e["index"], e["code"], e["field"], e["id"]) for e in errors] == [
        (1, 116, "trades[1].trade_id", "T1"),
        (3, 116, "trades[3].trade_id", "T2"),
    ]
    for new in ("T3", "T4"):
        assert svc.client.get(f"/v1/trades/{new}", headers=svc.h()).status_code == 404
    assert _trade_count(svc) == 2


def test_one_id_twice_in_a_bulk_request(svc: Service) -> None:
    same = [trade_row(1), trade_row(1, quantity="0.0500")]
    r = svc.client.post("/v1/trades/batch", json={"trades": same}, headers=svc.h())
    assert r.status_code == 200
    assert [i["status"] for i in r.json()["items"]] == ["accepted", "duplicate"]
    changed = [trade_row(2), trade_row(2, price="1")]
    r = svc.client.post("/v1/trades/batch", json={"trades": changed}, headers=svc.h())
    assert r.status_code == 409 and [e["index"] for e in r.json()["errors"]] == [1]
    assert svc.client.get("/v1/trades/T2", headers=svc.h()).status_code == 404


def _post(s: Service, path: str, body: dict[str, Any]) -> Any:
    return s.client.post(path, json=body, headers=s.h())


def test_payments_deposits_and_withdrawals_refuse_changed_content(svc: Service) -> None:
    dep = {"deposit_id": "D1", "participant": "RTL-0001", "asset": "USD", "amount": "80.0"}
    assert _post(svc, "/v1/collateral/deposits", dep).status_code == 201
    assert _post(svc, "/v1/collateral/deposits", {**dep, "amount": "80.00"}).status_code == 200
    clash = _post(svc, "/v1/collateral/deposits", {**dep, "amount": "81"})
    assert clash.status_code == 409 and clash.json()["field"] == "deposit_id"
    collateral = svc.runtime.node.engine.collateral.copy()

    wd = {"withdrawal_id": "W1", "participant": "RTL-0001", "asset": "USD", "amount": "10"}
    assert _post(svc, "/v1/collateral/withdrawals", wd).status_code == 201
    assert _post(svc, "/v1/collateral/withdrawals", {**wd, "amount": "10.0"}).status_code == 200
    clash = _post(svc, "/v1/collateral/withdrawals", {**wd, "amount": "11"})
    assert clash.status_code == 409 and clash.json()["code"] == 116
    assert int((collateral - svc.runtime.node.engine.collateral).sum()) == 1000

    pay = {"payment_id": "P1", "payer": "RTL-0001", "payee": "BRK-NORTH", "asset": "USD", "amount": "1.50"}
    assert _post(svc, "/v1/payments", pay).status_code == 201
    assert _post(svc, "/v1/payments", {**pay, "amount": "1.5"}).status_code == 200
    clash = _post(svc, "/v1/payments", {**pay, "amount": "1.51"})
    assert clash.status_code == 409 and clash.json()["field"] == "payment_id"
    bulk = {"payments": [{**pay, "payment_id": "P2"}, {**pay, "payee": "MM-BETA"}]}
    r = _post(svc, "/v1/payments/batch", bulk)
    assert r.status_code == 409 and [e["field"] for e in r.json()["errors"]] == ["items[1].payment_id"]
    assert svc.client.get("/v1/payments/P2", headers=svc.h()).status_code == 404


def test_ids_every_route_can_address(svc: Service) -> None:
    for bad in ("T/1", "T?1", "T%2F1", "T#1"):
        r = svc.client.post("/v1/trades", json=trade_row(bad), headers=svc.h())
        assert r.status_code == 422, bad
        assert (r.json()["code"], r.json()["field"]) == (102, "trade_id")
    pay = {"payment_id": "P/1", "payer": "RTL-0001", "payee": "BRK-NORTH", "asset": "USD", "amount": "1"}
    r = _post(svc, "/v1/payments", pay)
    assert r.status_code == 422 and (r.json()["code"], r.json()["field"]) == (102, "payment_id")
    odd = "T-._~!$&'()*+,;=:@"
    assert svc.client.post("/v1/trades", json=trade_row(odd), headers=svc.h()).status_code == 201
    assert svc.client.get(f"/v1/trades/{odd}", headers=svc.h()).json()["id"] == odd
