"""``POST /v1/trades/batch`` is answered by the lean ASGI path (fastpath.TradeBatchPath) with
exactly what the routed endpoint answers: the same statuses, headers and problem documents, for
good bodies and for every kind of refusal, behind the same edge middlewares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clearlane.adapters.http import app as app_module
from clearlane.adapters.http.fastpath import TradeBatchPath
from clearlane.adapters.http.routes import trades
from tests.service_support import Service, make_service, trade_row


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with make_service(Path(tmp_path_factory.mktemp("fastpath")), dashboard=False, webhooks=False) as s:
        yield s


def _routed(s: Service) -> TestClient:
    """The same app without the fast path: every request goes through the router."""
    app = app_module.create_app(s.runtime, s.app.state.keys, options=s.app.state.options)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not TradeBatchPath]
    return TestClient(app)


def _same(a: Any, b: Any) -> None:
    assert a.status_code == b.status_code
    skip = {"x-request-id", "date", "content-length"}
    assert {k: v for k, v in a.headers.items() if k not in skip} == {
        k: v for k, v in b.headers.items() if k not in skip
    }
    body_a, body_b = a.json(), b.json()
    for body in (body_a, body_b):
        if isinstance(body, dict):
            body.pop("request_id", None)
    assert body_a == body_b


def test_the_fast_path_answers_the_batch_route(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    answered: list[str] = []
    original = TradeBatchPath.__call__

    async def counted(self: TradeBatchPath, scope: Any, receive: Any, send: Any) -> None:
        answered.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(TradeBatchPath, "__call__", counted)
    monkeypatch.setattr(trades, "batch_response", None)  # the middleware holds its own reference
    r = svc.client.post("/v1/trades/batch", json={"trades": [trade_row("FP-1")]}, headers=svc.h())
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert r.headers["x-request-id"].startswith("req_")
    assert answered == ["/v1/trades/batch"]


def _deep(levels: int) -> Any:
    value: Any = "1"
    for _ in range(levels):
        value = [value]
    return value


REFUSALS: list[tuple[str, dict[str, Any]]] = [
    ("no key", {"json": {"trades": [trade_row("FQ-1")]}, "who": None}),
    ("auditor may not submit", {"json": {"trades": [trade_row("FQ-2")]}, "who": "auditor"}),
    (
        "foreign participant",
        {"json": {"trades": [trade_row("FQ-3", "MM-BETA", "BRK-SOUTH")]}, "who": "participant"},
    ),
    ("not JSON", {"content": b"{", "who": "operator"}),
    ("wrong media type", {"content": b"{}", "who": "operator", "type": "text/plain"}),
    ("unknown field", {"json": {"trades": [trade_row("FQ-4")], "x": 1}, "who": "operator"}),
    ("empty", {"json": {"trades": []}, "who": "operator"}),
    ("not an object", {"json": {"trades": [1]}, "who": "operator"}),
    ("too deep", {"json": {"trades": [trade_row("FQ-5", quantity=_deep(40))]}, "who": "operator"}),
    ("bad row", {"json": {"trades": [trade_row("FQ-6", quantity="-1")]}, "who": "operator"}),
    ("bad idempotency key", {"json": {"trades": [trade_row("FQ-7")]}, "who": "operator", "key": "a b"}),
]


@pytest.mark.parametrize("case", [c for _, c in REFUSALS], ids=[n for n, _ in REFUSALS])
def test_refusals_are_the_routed_ones(svc: Service, case: dict[str, Any]) -> None:
    headers = dict(svc.h(case["who"])) if case["who"] else {}
    if "type" in case:
        headers["Content-Type"] = case["type"]
    if "key" in case:
        headers["Idempotency-Key"] = case["key"]
    send: dict[str, Any] = {"headers": headers}
    if "json" in case:
        send["json"] = case["json"]
    else:
        send["content"] = case["content"]
    fast = svc.client.post("/v1/trades/batch", **send)
    routed = _routed(svc).post("/v1/trades/batch", **send)
    assert fast.status_code >= 400
    _same(fast, routed)


def test_good_bodies_and_replays_are_the_routed_ones(svc: Service) -> None:
    routed = _routed(svc)
    body = {"trades": [trade_row("FR-1"), trade_row("FR-2")]}
    first = svc.client.post("/v1/trades/batch", json=body, headers=svc.h())
    again = routed.post("/v1/trades/batch", json=body, headers=svc.h())  # duplicates now
    assert first.json()["accepted"] == 2 and again.json()["duplicates"] == 2
    assert first.headers["content-type"] == again.headers["content-type"] == "application/json"
    # Idempotency-Key: the first 2xx response is replayed byte for byte, by either path.
    keyed = {**svc.h(), "Idempotency-Key": "fastpath-1"}
    one = svc.client.post("/v1/trades/batch", json={"trades": [trade_row("FR-3")]}, headers=keyed)
    two = routed.post("/v1/trades/batch", json={"trades": [trade_row("FR-3")]}, headers=keyed)
    assert two.headers["idempotent-replayed"] == "true" and two.content == one.content


def test_other_methods_and_paths_are_routed(svc: Service) -> None:
    # GET /v1/trades/batch is the trade "batch" (not found), as before; a trailing slash is
    # redirected by the router, as before.
    assert svc.client.get("/v1/trades/batch", headers=svc.h()).status_code == 404
    body = {"trades": [trade_row("FS-1")]}
    fast = svc.client.post("/v1/trades/batch/", json=body, headers=svc.h(), follow_redirects=False)
    routed = _routed(svc).post("/v1/trades/batch/", json=body, headers=svc.h(), follow_redirects=False)
    assert fast.status_code == routed.status_code == 307
