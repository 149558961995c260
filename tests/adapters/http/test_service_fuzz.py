"""Schemathesis fuzz of the API from its own /openapi.json (bounded: a fixed number of examples
per operation): no 5xx, responses as documented, and a rejected request (4xx) changes nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from clearlane.adapters.http.app import ServiceOptions
from clearlane.adapters.http.server import build
from clearlane.adapters.http.webhooks import WebhookOptions
from tests.service_support import EXAMPLE

EXAMPLES = 15


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    app = build(
        db,
        EXAMPLE,
        clock="accelerated",
        speed=50,
        service_options=ServiceOptions(keepalive_s=0.1),
        webhook_options=WebhookOptions(timeout_s=0.2, max_attempts=1),
    )
    app.state.runtime.start()
    app.state.webhooks.start()
    app.state.token = app.state.keys.create("operator")[1]
    yield app
    app.state.webhooks.stop()
    app.state.runtime.stop()


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Any) -> Any:
    # The stream never ends on its own: it is covered by the server and auth tests.
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app).exclude(path="/v1/stream")


def _state(app: Any) -> tuple[Any, ...]:
    rt = app.state.runtime
    with rt.lock:
        engine = rt.node.engine
        return (
            rt.rm.records.trades_received,
            len(engine.seen_flow_ids),
            len(engine.seen_event_ids),
            int(engine.collateral.sum()),
            len(app.state.webhooks.endpoints()),
            app.state.keys.count_active(),
        )


def _fuzzer(app: Any, operation: Any, calls: dict[str, int], mode: GenerationMode) -> Any:
    label = f"{operation.method.upper()} {operation.path} ({mode.value})"
    headers = {"Authorization": f"Bearer {app.state.token}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        before = _state(app)
        # Schema-valid is not always acceptable: participants, symbols and scales are reference
        # data the schema cannot state, so "positive data accepted" is not a check here.
        response = case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
        if mode is GenerationMode.NEGATIVE:
            assert response.status_code >= 400 or response.status_code in (200, 201, 204, 304), label
        assert response.status_code < 500, f"{label}: {response.status_code} {response.text}"
        if response.status_code >= 400:
            assert _state(app) == before, f"{label} -> {response.status_code} changed state"
        calls[label] = calls.get(label, 0) + 1

    return run


def test_api_fuzz(api_schema: Any, fuzz_app: Any) -> None:
    calls: dict[str, int] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        _fuzzer(fuzz_app, operation, calls, GenerationMode.POSITIVE)()
        # Invalid requests: only where the schema constrains something (a body or a query);
        # an unconstrained string path parameter has no invalid value.
        if operation.method.upper() == "POST" or any(True for _ in operation.query):
            with contextlib.suppress(Unsatisfiable):
                _fuzzer(fuzz_app, operation, calls, GenerationMode.NEGATIVE)()
    labels = {label.rsplit(" (", 1)[0] for label in calls}
    assert {"POST /v1/trades/batch", "GET /v1/trades/{trade_id}", "POST /v1/webhooks"} <= labels
    assert len(labels) >= 20
