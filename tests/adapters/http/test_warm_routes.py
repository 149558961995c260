"""The serve process sends one request through its app at start (app._warm_routes), so that
its first real requests do not build the middleware stack and the route tables."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fastapi.testclient import TestClient

from clearlane.adapters.http import app as app_module
from tests.service_support import EXAMPLE, build


def test_the_warm_up_request_is_answered_404_and_leaves_the_api_as_it_was(tmp_path: Path) -> None:
    app = build(tmp_path / "w.db", EXAMPLE, clock="accelerated", speed=50.0)
    answered: list[int] = []
    original = app.build_middleware_stack

    def counted():  # type: ignore[no-untyped-def]
        stack = original()

        async def recording(scope, receive, send):  # type: ignore[no-untyped-def]
            async def capture(message):  # type: ignore[no-untyped-def]
                if message["type"] == "http.response.start":
                    answered.append(message["status"])
                await send(message)

            await stack(scope, receive, capture)

        return recording

    app.build_middleware_stack = counted  # type: ignore[method-assign]
    started = time.perf_counter()
    asyncio.run(app_module._warm_routes(app))
    assert answered == [404]
    assert time.perf_counter() - started < 5
    with TestClient(app) as client:  # the app serves as before
        token = app.state.keys.create("operator")[1]
        r = client.get("/v1/batches", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert (
            client.get(app_module.WARM_PATH, headers={"Authorization": f"Bearer {token}"}).status_code == 404
        )
