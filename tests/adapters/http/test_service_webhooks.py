"""Webhooks against a real receiving HTTP server: signatures, retries with backoff, the
delivery log, and at-least-once across a restart (events re-derived from the log)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from clearlane.adapters.http.webhooks import (
    HEADER_ATTEMPT,
    HEADER_ID,
    HEADER_SIGNATURE,
    WebhookOptions,
    verify_signature,
)
from clearlane.adapters.sql.store import Store
from tests.service_support import Service, make_service, trade_row, wait_for


class Receiver:
    """A real HTTP server recording webhook calls; fails the first ``fail_first`` attempts."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.calls.append(({k: v for k, v in self.headers.items()}, body))
                    attempt = int(self.headers.get(HEADER_ATTEMPT, "1"))
                status = 500 if attempt <= receiver.fail_first else 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(b) for _, b in self.calls]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# The receivers listen on loopback over plain http: allowed only because the allow-list says so.
LOCAL = ("127.0.0.1",)
FAST = WebhookOptions(backoff_base_s=0.05, backoff_max_s=0.2, max_attempts=5, poll_s=0.02, allow=LOCAL)


def _register(s: Service, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    r = s.client.post("/v1/webhooks", json={"url": url, "events": events, **extra}, headers=s.h())
    assert r.status_code == 201, r.text
    return r.json()


def test_signed_deliveries_of_distinct_events(tmp_path: Path, receiver: Receiver) -> None:
    with make_service(tmp_path, webhook_options=FAST) as s:
        ep = _register(
            s,
            receiver.url,
            ["batch.cleared", "batch.final", "trade.cleared", "trade.final"],
            participant="MM-ALPHA",
        )
        assert ep["secret"].startswith("whsec_")
        assert s.client.get(f"/v1/webhooks/{ep['id']}", headers=s.h()).json()["secret"] is None
        s.client.post(
            "/v1/trades/batch",
            json={"trades": [trade_row(1), trade_row(2, buyer="RTL-0001", seller="RTL-0002")]},
            headers=s.h(),
        )
        wait_for(lambda: {"batch.final", "trade.final"} <= {e["type"] for e in receiver.events()})
        # Due deliveries go out in parallel (no arrival order is promised: docs/API.md): the
        # order that holds is the engine clock's.
        at = {e["type"]: e["engine_time"] for e in receiver.events()}
        assert at["trade.cleared"] < at["trade.final"]
        cleared = [e for e in receiver.events() if e["type"] == "trade.cleared"]
        assert [e["data"]["trade_id"] for e in cleared] == ["T1"]  # the participant filter
        for headers, body in receiver.calls:
            assert verify_signature(ep["secret"], headers, body)
            assert headers[HEADER_ID] == json.loads(body)["id"]
            assert not verify_signature(ep["secret"], headers, body + b" ")
            assert not verify_signature("whsec_other", headers, body)
            assert headers[HEADER_SIGNATURE].startswith("v1=")

        # The receiver answers before the attempt is recorded: wait for the log to catch up.
        def settled() -> list[dict[str, Any]] | None:
            items = s.client.get(f"/v1/webhooks/{ep['id']}/deliveries", headers=s.h()).json()["items"]
            return items if items and all(d["status"] != "pending" for d in items) else None

        log = wait_for(settled)
        assert log and all(d["status"] == "delivered" and d["attempts"] == 1 for d in log)


def test_retries_with_backoff_until_delivered(tmp_path: Path) -> None:
    flaky = Receiver(fail_first=2)
    try:
        with make_service(tmp_path, webhook_options=FAST) as s:
            ep = _register(s, flaky.url, ["batch.cleared"])
            s.client.post("/v1/trades", json=trade_row(1), headers=s.h())

            def delivered() -> list[dict[str, Any]]:
                items = s.client.get(f"/v1/webhooks/{ep['id']}/deliveries", headers=s.h()).json()["items"]
                return [d for d in items if d["status"] == "delivered"]

            done = wait_for(delivered)[0]
            assert done["attempts"] == 3 and done["last_status"] == 204
            ids = [h[HEADER_ID] for h, _ in flaky.calls]
            assert len(ids) == 3 and len(set(ids)) == 1  # same idempotency id on every retry
            attempts = s.runtime.store.rows("SELECT status FROM webhook_attempts ORDER BY id")
            assert [a["status"] for a in attempts] == [500, 500, 204]
    finally:
        flaky.close()


def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    dead = Receiver(fail_first=99)
    try:
        with make_service(
            tmp_path,
            webhook_options=WebhookOptions(backoff_base_s=0.01, max_attempts=3, poll_s=0.02, allow=LOCAL),
        ) as s:
            ep = _register(s, dead.url, ["batch.cleared"])
            s.client.post("/v1/trades", json=trade_row(1), headers=s.h())
            failed = wait_for(
                lambda: s.client.get(
                    f"/v1/webhooks/{ep['id']}/deliveries", params={"status": "failed"}, headers=s.h()
                ).json()["items"]
            )
            assert failed[0]["attempts"] == 3 and failed[0]["last_error"] == "HTTP 500"
    finally:
        dead.close()


def test_at_least_once_across_restart(tmp_path: Path, receiver: Receiver) -> None:
    with make_service(tmp_path, webhook_options=FAST) as s:
        ep = _register(s, receiver.url, ["batch.cleared"])
        s.client.post("/v1/trades/batch", json={"trades": [trade_row(i) for i in range(3)]}, headers=s.h())
        wait_for(lambda: receiver.events())
        first = [e["id"] for e in receiver.events()]
        db = s.db
    # Simulate a crash after the steps' commits but before their deliveries were written: done
    # once the service has stopped, so no later step can move the high-water mark again.
    store = Store.open(db, create=False)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM webhook_deliveries"))
            conn.execute(sa.text("UPDATE meta SET value = '0' WHERE key = 'webhooks_seq'"))
    finally:
        store.close()
    receiver.calls.clear()
    with make_service(tmp_path, webhook_options=FAST) as s:
        wait_for(lambda: receiver.events())
        assert [e["id"] for e in receiver.events()] == first  # re-derived with the same ids
        rows = s.runtime.store.rows(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE endpoint_id = :e", e=ep["id"]
        )
        assert rows[0]["n"] == len(first)
