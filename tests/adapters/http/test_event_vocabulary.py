"""One public event vocabulary (node/events.py) for SSE, webhooks and NATS; ``batch.closed`` is
still accepted in input filters as a deprecated alias of ``batch.cleared``."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from clearlane.adapters.http import schemas
from clearlane.adapters.http.webhooks import WebhookOptions, WebhookService
from clearlane.core.model.states import BatchState
from clearlane.node import events as ev
from tests.service_support import make_service, svc

__all__ = ["svc"]


def test_batch_events_are_named_after_the_state_they_enter() -> None:
    assert tuple(f"batch.{s.label}" for s in BatchState if s != BatchState.OPEN) == ev.BATCH_EVENTS
    assert ev.batch_event_type(BatchState.CLEARED.label) == ev.BATCH_CLEARED == "batch.cleared"
    assert (ev.batch_event_type("reorged"), ev.batch_event_type("resubmitted")) == ev.BATCH_RETRY_EVENTS
    assert set(ev.WEBHOOK_EVENTS) <= set(ev.EVENT_TYPES)


def test_deprecated_alias_maps_to_the_current_name() -> None:
    assert ev.canonical_event_types(["batch.closed", "trade.final"]) == {"batch.cleared", "trade.final"}
    assert ev.canonical_event_types(["batch.cleared"]) == {"batch.cleared"}
    assert set(ev.DEPRECATED_ALIASES.values()) <= set(ev.EVENT_TYPES)
    assert not set(ev.DEPRECATED_ALIASES) & set(ev.EVENT_TYPES)


def test_webhook_schema_accepts_the_vocabulary_and_its_aliases() -> None:
    (item,) = get_args(schemas.WebhookIn.model_fields["events"].annotation)
    assert set(get_args(item)) == {*ev.WEBHOOK_EVENTS, *ev.DEPRECATED_ALIASES}


def test_webhook_subscription_by_alias_is_stored_as_the_current_name(tmp_path: Path) -> None:
    with make_service(tmp_path, webhook_options=WebhookOptions(allow=("127.0.0.1",))) as svc:
        r = svc.client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/old-client", "events": ["batch.closed", "batch.final"]},
            headers=svc.h(),
        )
        assert r.status_code == 201, r.text
        assert r.json()["events"] == ["batch.cleared", "batch.final"]
        listed = svc.client.get("/v1/webhooks", headers=svc.h()).json()["items"]
        assert [e["events"] for e in listed] == [["batch.cleared", "batch.final"]]


def test_stored_subscription_naming_the_alias_still_matches() -> None:
    row = {
        "endpoint_id": "wh_1",
        "url": "http://127.0.0.1:9/x",
        "secret": "whsec_x",
        "events": '["batch.closed"]',
        "participant": None,
        "pool": None,
        "description": "",
        "active": 1,
        "created_ms": 0,
    }
    assert WebhookService._endpoint(row).events == {"batch.cleared"}


def test_stream_types_accept_the_alias(tmp_path: Path) -> None:
    with make_service(tmp_path) as s:
        for types, status in (("batch.closed", 200), ("batch.closed,stats", 200), ("batch.shut", 400)):
            with s.client.stream(
                "GET", "/v1/stream", headers=s.h(), params={"max_events": 1, "types": types}
            ) as r:
                assert r.status_code == status, types
