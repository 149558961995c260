"""Auth and roles for every route of the API, parametrised over the route table the app
publishes (each operation's ``x-roles`` in /openapi.json): no key -> 401, a role not listed ->
403, a listed role -> neither. Plus the participant scoping rules (another participant's trade
is a 404, never a 403) and key storage."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clearlane.adapters.http.app import ServiceOptions
from clearlane.adapters.http.auth import KeyStore
from clearlane.adapters.http.webhooks import WebhookOptions
from tests.service_support import Service, make_service, trade_row, wait_for

ROLES = ("operator", "auditor", "participant")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, dict[str, str]]]:
    with make_service(
        tmp_path_factory.mktemp("auth"),
        service_options=ServiceOptions(keepalive_s=0.1),
        webhook_options=WebhookOptions(allow=("127.0.0.1",)),  # the endpoints below are loopback
    ) as s:
        s.client.post("/v1/trades", json=trade_row(1), headers=s.h())  # MM-ALPHA / BRK-NORTH
        s.client.post("/v1/trades", json=trade_row(2, buyer="RTL-0001", seller="RTL-0002"), headers=s.h())
        s.client.post(
            "/v1/payments",
            json={
                "payment_id": "P1",
                "payer": "RTL-0001",
                "payee": "MM-ALPHA",
                "asset": "USD",
                "amount": "1.00",
            },
            headers=s.h(),
        )
        hook = s.client.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["batch.cleared"]}, headers=s.h()
        )
        wait_for(lambda: s.client.get("/v1/batches/fast-00000001", headers=s.h()).status_code == 200)
        values = {
            "trade_id": "T1",
            "payment_id": "P1",
            "batch_id": "fast-00000001",
            "participant": "MM-ALPHA",
            "endpoint_id": hook.json()["id"],
            "escrow_id": "AUTH-E",
            "delivery_id": "1",
            "case_id": "case-none",
            "run_id": "run-none",
            "alert_id": "case-none",
            "silence_id": "sil-none",
        }
        yield s, values


def _routes() -> list[tuple[str, str, tuple[str, ...]]]:
    import tempfile

    with make_service(Path(tempfile.mkdtemp())) as s:
        spec = s.client.get("/openapi.json").json()
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            out.append((method.upper(), path, tuple(op["x-roles"])))
    return sorted(out)


ROUTES = _routes()

BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/trades"): trade_row("AUTH-1"),
    ("POST", "/v1/trades/batch"): {"trades": [trade_row("AUTH-2")]},
    ("POST", "/v1/payments"): {
        "payment_id": "AUTH-P",
        "payer": "MM-ALPHA",
        "payee": "BRK-NORTH",
        "asset": "USD",
        "amount": "1.00",
    },
    ("POST", "/v1/payments/batch"): {
        "payments": [
            {
                "payment_id": "AUTH-PB",
                "payer": "MM-ALPHA",
                "payee": "BRK-NORTH",
                "asset": "USD",
                "amount": "1.00",
            }
        ]
    },
    ("POST", "/v1/collateral/deposits"): {
        "deposit_id": "AUTH-D",
        "participant": "MM-ALPHA",
        "asset": "USD",
        "amount": "5.00",
    },
    ("POST", "/v1/collateral/withdrawals"): {
        "withdrawal_id": "AUTH-W",
        "participant": "MM-ALPHA",
        "asset": "USD",
        "amount": "1.00",
    },
    ("POST", "/v1/webhooks"): {"url": "http://127.0.0.1:9/y", "events": ["batch.final"]},
}


def _call(s: Service, method: str, path: str, values: dict[str, str], headers: dict[str, str]) -> int:
    url = path.format(**values)
    if path == "/v1/stream":
        with s.client.stream(
            "GET", url, headers=headers, params={"max_events": 1, "types": "batch.cleared"}
        ) as r:
            return r.status_code
    if method == "DELETE":
        # Delete a fresh endpoint so that the shared one survives for the other cases.
        fresh = s.client.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/z", "events": ["batch.cleared"]}, headers=s.h()
        )
        url = path.format(**{**values, "endpoint_id": fresh.json()["id"]})
    return s.client.request(method, url, headers=headers, json=BODIES.get((method, path))).status_code


def test_route_table_is_complete() -> None:
    paths = {p for _, p, _ in ROUTES}
    for expected in (
        "/v1/trades",
        "/v1/trades/{trade_id}",
        "/v1/trades/batch",
        "/v1/stream",
        "/v1/stats/overview",
        "/v1/webhooks/{endpoint_id}/deliveries",
        "/v1/participants/{participant}/positions",
        "/metrics",
    ):
        assert expected in paths


@pytest.mark.parametrize(("method", "path", "roles"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_route_roles(
    world: tuple[Service, dict[str, str]], method: str, path: str, roles: tuple[str, ...]
) -> None:
    s, values = world
    anonymous = _call(s, method, path, values, {})
    if not roles:
        assert anonymous not in (401, 403)
        return
    assert anonymous == 401
    assert _call(s, method, path, values, {"Authorization": "Bearer cl_000000000000_wrong"}) == 401
    for role in ROLES:
        status = _call(s, method, path, values, s.h(role))
        if role in roles:
            assert status not in (401, 403), (role, status)
        else:
            assert status == 403, (role, status)


def test_participant_sees_only_its_own(world: tuple[Service, dict[str, str]]) -> None:
    s, _ = world
    mine = s.client.get("/v1/trades/T1", headers=s.h("participant"))
    assert mine.status_code == 200
    theirs = s.client.get("/v1/trades/T2", headers=s.h("participant"))
    assert theirs.status_code == 404 and theirs.json()["error"] == "not_found"
    nope = s.client.get("/v1/trades/NOPE", headers=s.h("participant")).json()
    assert nope.pop("request_id") != theirs.json()["request_id"]  # each response its own
    assert nope == {
        **{k: v for k, v in theirs.json().items() if k != "request_id"},
        "detail": "trade 'NOPE' not found",
        "instance": "/v1/trades/NOPE",
    }
    assert s.client.get("/v1/trades/T2", headers=s.h("auditor")).status_code == 200
    ids = {t["id"] for t in s.client.get("/v1/trades", headers=s.h("participant")).json()["items"]}
    assert "T1" in ids and "T2" not in ids
    other = s.client.get("/v1/trades", params={"participant": "RTL-0001"}, headers=s.h("participant")).json()
    assert other["items"] == []
    assert s.client.get("/v1/participants/BRK-NORTH/positions", headers=s.h("participant")).status_code == 404
    pos = s.client.get("/v1/positions", headers=s.h("participant")).json()["items"]
    assert {p["participant"] for p in pos} <= {"MM-ALPHA"}
    liq = s.client.get("/v1/liquidity", headers=s.h("participant")).json()["items"]
    assert [x["participant"] for x in liq] == ["MM-ALPHA"]
    assert s.client.get("/v1/payments/P1", headers=s.h("participant")).status_code == 200  # payee
    assert s.client.get("/v1/payments/P1", headers=s.h("other")).status_code == 404


def test_participant_submits_only_its_own(world: tuple[Service, dict[str, str]]) -> None:
    s, _ = world
    foreign = s.client.post(
        "/v1/trades", json=trade_row("F1", buyer="RTL-0001", seller="RTL-0002"), headers=s.h("participant")
    )
    assert foreign.status_code == 403 and foreign.json()["field"] == "buyer"
    batch = s.client.post(
        "/v1/trades/batch",
        json={"trades": [trade_row("F2"), trade_row("F3", buyer="RTL-0001", seller="RTL-0002")]},
        headers=s.h("participant"),
    )
    assert batch.status_code == 403 and batch.json()["field"] == "trades[1].buyer"
    assert s.client.get("/v1/trades/F2", headers=s.h()).status_code == 404  # nothing of it applied
    w = s.client.post(
        "/v1/collateral/withdrawals",
        json={"withdrawal_id": "W9", "participant": "BRK-NORTH", "asset": "USD", "amount": "1.00"},
        headers=s.h("participant"),
    )
    assert w.status_code == 403


def test_keys_are_stored_hashed_and_revocable(world: tuple[Service, dict[str, str]]) -> None:
    s, _ = world
    store = s.runtime.store
    keys = KeyStore(store)
    principal, token = keys.create("auditor", label="t")
    secret = token.split("_", 2)[2]
    row = store.rows("SELECT * FROM api_keys WHERE key_id = :k", k=principal.key_id)[0]
    assert bytes(row["secret_sha256"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in str(row)
    assert s.client.get("/v1/me", headers={"X-API-Key": token}).json()["role"] == "auditor"
    # Revoked through another KeyStore (as `clearlane apikey revoke` does from its own process):
    # the server's cache holds the key, and still the very next request is refused.
    assert keys.revoke(principal.key_id)
    assert s.client.get("/v1/me", headers={"X-API-Key": token}).status_code == 401
    with pytest.raises(ValueError, match="needs --participant"):
        keys.create("participant")
    with pytest.raises(ValueError, match="not configured"):
        KeyStore(store, {"MM-ALPHA"}).create("participant", "NOBODY")
