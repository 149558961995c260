"""Idempotency-Key on POSTs and a request id on every response (issue 17)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from clearlane.adapters.http.idempotency import IdempotencyKeys, MemoryKeyStore, RequestIdLogFilter
from clearlane.adapters.http.problems import REQUEST_ID
from clearlane.adapters.http.webhooks import WebhookOptions
from tests.service_support import Service, make_service

LOCAL = WebhookOptions(allow=("127.0.0.1",))
HOOK = {"url": "http://127.0.0.1:9/hook", "events": ["batch.final"]}


def test_idempotency_key_replays_refuses_and_survives_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with make_service(tmp_path, webhook_options=LOCAL) as s:
        _request_ids(s, caplog)
        key = {**s.h(), "Idempotency-Key": "reg-1"}
        first = s.client.post("/v1/webhooks", json=HOOK, headers=key)
        again = s.client.post("/v1/webhooks", json=HOOK, headers=key)
        assert first.status_code == again.status_code == 201
        assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["x-request-id"] != first.headers["x-request-id"]
        assert len(s.client.get("/v1/webhooks", headers=s.h()).json()["items"]) == 1
        other = s.client.post("/v1/webhooks", json={**HOOK, "description": "x"}, headers=key)
        assert other.status_code == 422 and other.json()["code"] == 614
        assert (
            other.json()["error"] == "idempotency_key_reused" and other.json()["field"] == "Idempotency-Key"
        )
        # another credential has its own keys
        s.keys["operator2"] = s.app.state.keys.create("operator")[1]
        theirs = s.client.post(
            "/v1/webhooks", json=HOOK, headers={**s.h("operator2"), "Idempotency-Key": "reg-1"}
        )
        assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
        # a refused request is not kept: fixed, it runs under the same key
        bad = s.client.post(
            "/v1/webhooks", json={"url": "ftp://x"}, headers={**s.h(), "Idempotency-Key": "k2"}
        )
        assert bad.status_code == 422
        fixed = s.client.post("/v1/webhooks", json=HOOK, headers={**s.h(), "Idempotency-Key": "k2"})
        assert fixed.status_code == 201 and "idempotent-replayed" not in fixed.headers
        blank = s.client.post("/v1/webhooks", json=HOOK, headers={**s.h(), "Idempotency-Key": "a b"})
        assert blank.status_code == 400 and blank.json()["field"] == "Idempotency-Key"
        operator = s.keys["operator"]
    with make_service(tmp_path, webhook_options=LOCAL) as s:  # the same database, restarted
        replay = s.client.post(
            "/v1/webhooks",
            json=HOOK,
            headers={"Authorization": f"Bearer {operator}", "Idempotency-Key": "reg-1"},
        )
        assert replay.status_code == 201 and replay.content == first.content


def _request_ids(s: Service, caplog: pytest.LogCaptureFixture) -> None:
    """A request id on every response: echoed if sane, in problem bodies, the access log and
    the OpenAPI document."""
    with caplog.at_level(logging.INFO, logger="clearlane.http.access"):
        mine = s.client.get("/v1/trades/NOPE", headers={**s.h(), "X-Request-Id": "trace-42"})
    assert mine.headers["x-request-id"] == "trace-42" and mine.json()["request_id"] == "trace-42"
    assert any(r.getMessage().startswith("trace-42 GET /v1/trades/NOPE -> 404") for r in caplog.records)
    insane = s.client.get("/healthz", headers={"X-Request-Id": "no spaces allowed " * 3})
    assert insane.status_code == 200 and insane.headers["x-request-id"].startswith("req_")
    anonymous = s.client.get("/v1/trades")
    assert anonymous.status_code == 401
    assert anonymous.json()["request_id"] == anonymous.headers["x-request-id"]
    spec = s.client.get("/openapi.json").json()
    post = spec["paths"]["/v1/trades"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert "X-Request-Id" in post["responses"]["201"]["headers"]
    too_big = s.client.post("/v1/trades", content=b"x", headers={**s.h(), "content-length": "999999999999"})
    assert too_big.status_code == 413 and too_big.json()["request_id"] == too_big.headers["x-request-id"]


def test_a_key_in_flight_is_a_409_and_expired_keys_are_gone() -> None:
    release = asyncio.Event()
    calls: list[int] = []

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(1)
        await receive()
        await release.wait()
        await send(
            {"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"made"})

    store = MemoryKeyStore()
    guard = IdempotencyKeys(slow, store=store, ttl_s=3600)

    async def call() -> list[Message]:
        sent: list[Message] = []
        done = False

        async def receive() -> Message:
            nonlocal done
            if done:
                await asyncio.sleep(3600)
            done = True
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope: dict[str, Any] = {
            "type": "http",
            "method": "POST",
            "path": "/x",
            "query_string": b"",
            "headers": [(b"idempotency-key", b"k")],
        }
        await guard(scope, receive, send)
        return sent

    async def scenario() -> tuple[list[Message], list[Message], list[Message]]:
        first = asyncio.create_task(call())
        await asyncio.sleep(0.01)
        second = await call()
        release.set()
        return await first, second, await call()

    first, second, third = asyncio.run(scenario())
    assert first[0]["status"] == 201 and third[0]["status"] == 201 and third[1]["body"] == b"made"
    assert second[0]["status"] == 409 and json.loads(second[1]["body"])["code"] == 615
    assert calls == [1]  # the first request ran once; the in-flight one and the replay did not
    row = store.get(next(iter(store._rows))[0], "k", 0)
    assert row is not None and store.get(row["scope"], "k", row["expires_ms"]) is None


def test_log_lines_name_their_request() -> None:
    record = logging.LogRecord("clearlane.x", logging.WARNING, __file__, 1, "m", None, None)
    token = REQUEST_ID.set("req_abc")
    try:
        assert RequestIdLogFilter().filter(record) and record.request_id == "req_abc"
    finally:
        REQUEST_ID.reset(token)
    RequestIdLogFilter().filter(record)
    assert record.request_id == "-"
