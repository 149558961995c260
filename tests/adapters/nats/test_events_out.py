"""``serve --nats``: the service's public events (escrow.*, exception.*, alert.*) on JetStream,
named ``clearlane.events.<scope>.<type>``, the SSE body, the event id as ``Nats-Msg-Id``; a
NATS that is down never stops clearing: events are counted as failed or dropped, an alert is
raised, and what was queued goes out once NATS is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from clearlane.adapters.nats.events_out import (
    DEFAULT_TYPES,
    NatsEventPublisher,
    PublisherOptions,
    event_types,
    messages_of,
    scope_of,
)
from clearlane.node.events import EVENT_TYPES, AlertEvent, EventBus, EventFilter
from clearlane.testing.devserver import NatsServer, free_port
from tests.service_support import Service, make_service

TERMS = {
    "asset": "USD",
    "amount": "10.00",
    "buyer": "RTL-0001",
    "seller": "BRK-NORTH",
    "platform": "MARKET",
    "arbiter": "ARBITER",
    "fee_bps": 0,
    "conditions": [],
}


def _until(check: Callable[[], bool], what: str, limit_s: float = 15.0) -> None:
    """Wait for a background thread's effect (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.02)


def _escrow(svc: Service, escrow_id: str) -> None:
    opened = svc.client.post(
        "/v1/escrows",
        json={"action_id": f"{escrow_id}-o", "escrow_id": escrow_id, "actor": "MARKET", "terms": TERMS},
        headers=svc.h(),
    )
    assert opened.status_code == 201, opened.text
    for who in ("retail", "other"):
        body = {"action": "agree", "action_id": f"{escrow_id}-{who}"}
        done = svc.client.post(f"/v1/escrows/{escrow_id}/actions", json=body, headers=svc.h(who))
        assert done.status_code == 201, done.text


def _fetch(url: str, subject: str) -> list[Any]:
    async def run() -> list[Any]:
        import nats

        from clearlane.adapters.nats.messages import EVENTS_STREAM

        nc = await nats.connect(url)
        try:
            sub = await nc.jetstream().pull_subscribe(subject, stream=EVENTS_STREAM)
            return list(await sub.fetch(200, timeout=2))
        finally:
            await nc.close()

    return asyncio.run(run())


def _requests(url: str, bodies: list[bytes]) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        import nats

        from clearlane.adapters.nats.escrow_in import ESCROW_ACTIONS_SUBJECT

        nc = await nats.connect(url)
        try:
            return [
                orjson.loads((await nc.request(ESCROW_ACTIONS_SUBJECT, body, timeout=10)).data)
                for body in bodies
            ]
        finally:
            await nc.close()

    return asyncio.run(run())


def _escrow_on_the_bus(svc: Service, url: str) -> None:
    """Escrow actions requested over NATS: applied once (the action id), refusals with codes."""
    opening = {
        "action": "open",
        "action_id": "bus-o",
        "escrow_id": "bus-car",
        "actor": "MARKET",
        "terms": TERMS,
    }
    wrong = {"action": "release", "action_id": "bus-r", "escrow_id": "bus-car", "actor": "RTL-0001"}
    _until(lambda: svc.app.state.nats_events.connected, "connected")
    opened, again, refused, bad = _requests(
        url, [orjson.dumps(opening), orjson.dumps(opening), orjson.dumps(wrong), b"[1]"]
    )
    assert opened["status"] != "duplicate" and again["status"] == "duplicate", (opened, again)
    assert refused["status"] == "refused" and refused["http_status"] == 409
    assert refused["errors"][0]["error"].startswith("escrow_"), refused
    assert bad["errors"][0]["error"] == "bad_json" and bad["http_status"] == 422
    assert svc.client.get("/v1/escrows/bus-car", headers=svc.h()).json()["state"] == "draft"


def test_escrow_and_exception_events_reach_nats(tmp_path: Path, shared: Path, nats_server: Any) -> None:
    nats = (nats_server.url, PublisherOptions(types=DEFAULT_TYPES, escrow_actions=True))
    with make_service(tmp_path, nats=nats) as svc:
        publisher = svc.app.state.nats_events
        sse: list[dict[str, Any]] = []
        svc.runtime.bus.add_listener(lambda gs: sse.extend(e for g in gs for e in g.events(EventFilter())))
        _escrow(svc, "nats-car")
        body = (shared / "realdata/mt940/cmxl_mt940.sta").read_bytes()
        imported = svc.client.post("/v1/recon/imports?file_name=cmxl.sta", content=body, headers=svc.h())
        assert imported.status_code == 201, imported.text
        ran = svc.client.post("/v1/recon/runs", json={"tolerance": {"EUR": "0.01"}}, headers=svc.h())
        assert ran.status_code == 201, ran.text
        _escrow_on_the_bus(svc, nats_server.url)
        _until(lambda: publisher.pending == 0 and publisher.published >= 20, "events published")
        metrics = svc.client.get("/metrics", headers=svc.h()).text
    assert 'clearlane_nats_events_total{outcome="published"}' in metrics
    escrow = [m for m in _fetch(nats_server.url, "clearlane.events.escrow.>") if b"nats-car" in m.data]
    assert [m.subject for m in escrow] == [
        "clearlane.events.escrow.escrow.opened",
        "clearlane.events.escrow.escrow.updated",
        "clearlane.events.escrow.escrow.agreed",
    ]
    by_id = {e["id"]: e for e in sse}
    for message in escrow:  # the SSE body, the event id as the JetStream message id
        event = orjson.loads(message.data)
        assert message.headers["Nats-Msg-Id"] == event["id"] and by_id[event["id"]] == event
    cases = _fetch(nats_server.url, "clearlane.events.cases.>")
    assert [m.subject for m in cases] == ["clearlane.events.cases.exception.opened"] * 16


def test_a_dead_nats_never_stops_clearing(tmp_path: Path) -> None:
    """NATS down: the escrow actions still clear, publishing fails and is counted, an
    ``alert.raised`` (nats_publish_failing) goes out on the bus; NATS up: the queue drains."""
    port = free_port()
    options = PublisherOptions(backoff_s=0.05, max_backoff_s=0.2, alert_after_s=0.1)
    alerts: list[dict[str, Any]] = []
    with make_service(tmp_path, nats=(f"nats://127.0.0.1:{port}", options)) as svc:
        publisher = svc.app.state.nats_events
        svc.runtime.bus.add_listener(
            lambda gs: alerts.extend(
                e for g in gs if isinstance(g, AlertEvent) for e in g.events(EventFilter())
            )
        )
        _escrow(svc, "dead-car")
        assert svc.client.get("/v1/escrows/dead-car", headers=svc.h()).json()["state"] == "agreed"
        _until(lambda: any(a["data"]["kind"] == "nats_publish_failing" for a in alerts), "the alert")
        assert publisher.failed >= 2
        assert publisher.published == 0 and publisher.pending >= 3
        server = NatsServer(port=port).start()
        try:
            _until(lambda: publisher.pending == 0, "the queue drained after NATS came up")
            assert publisher.failing_since is None
            got = [m.subject for m in _fetch(server.url, "clearlane.events.escrow.>")]
        finally:
            server.stop()
        # lost while connected: clearing goes on, and the publisher reconnects to a new server
        _until(lambda: not publisher.connected, "the loss noticed")
        _escrow(svc, "later-car")
        server = NatsServer(port=port).start()
        try:
            _until(lambda: publisher.pending == 0, "the queue drained after a reconnection")
            later = [m.subject for m in _fetch(server.url, "clearlane.events.escrow.>")]
        finally:
            server.stop()
    assert got[:3] == [f"clearlane.events.escrow.escrow.{t}" for t in ("opened", "updated", "agreed")]
    assert later[:3] == got[:3]  # the new server's stream holds the later escrow's events


def test_a_full_inbox_drops_and_counts() -> None:
    bus = EventBus()
    publisher = NatsEventPublisher(bus, "nats://127.0.0.1:1", PublisherOptions(max_pending=2))
    bus.add_listener(publisher.on_groups)  # no thread: nothing drains the inbox
    for i in range(4):
        bus.publish([AlertEvent(i, 0, i, "ledger_refused", "x")])
    assert publisher.pending == 2 and publisher.dropped == 2


def test_subjects_and_type_choice() -> None:
    alert = AlertEvent(3, 0, 1, "ledger_refused", "x")
    ((subject, msg_id, payload),) = messages_of([alert], DEFAULT_TYPES)
    assert subject == "clearlane.events.alerts.alert.raised" and msg_id == orjson.loads(payload)["id"]
    assert scope_of({"type": "trade.final", "data": {"lane": "L1", "pool": None}}) == "L1"
    assert scope_of({"type": "batch.final", "data": {"pool": "P1"}}) == "P1"
    assert scope_of({"type": "trade.rejected", "data": {"pool": None}}) == "none"
    assert event_types(["all"]) == frozenset(EVENT_TYPES)
    assert event_types(["escrow.funded,alert.raised"]) == {"escrow.funded", "alert.raised"}
    with pytest.raises(ValueError, match=r"escrow\.nope"):
        event_types(["escrow.nope"])


def test_serve_refuses_bad_nats_settings(tmp_path: Path) -> None:
    """A bad --nats setting fails before anything opens (no database is created)."""
    from typer.testing import CliRunner

    from clearlane.adapters.cli.main import app

    db = str(tmp_path / "never.db")
    for args, says in (
        (["--nats-types", "alert.raised"], "need --nats"),
        (["--nats-escrow-actions"], "need --nats"),
        (["--nats", "nats://127.0.0.1:1", "--nats-types", "escrow.nope"], "escrow.nope"),
        (["--nats", "nats://127.0.0.1:1", "--nats-alert-after", "0"], "positive"),
    ):
        result = CliRunner().invoke(app, ["serve", "--db", db, *args])
        assert result.exit_code != 0 and says in result.output, (args, result.output)
    assert not (tmp_path / "never.db").exists()
