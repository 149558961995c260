"""The HTTP API (FastAPI): the application factory :func:`create_app`.

Routes live one resource per module in :mod:`clearlane.adapters.http.routes` and are listed in
docs/API.md; each carries its allowed roles in the OpenAPI document (``x-roles``), which the auth
tests iterate over. Every error is RFC 9457 problem+json (:mod:`clearlane.adapters.http.handlers`);
every response carries an ``X-Request-Id`` and a POST or PATCH may carry an ``Idempotency-Key``
(:mod:`clearlane.adapters.http.idempotency`); every GET carries an ETag and a Cache-Control suited to how fast the resource changes, and answers
``If-None-Match`` with 304 (:func:`clearlane.adapters.http.common.cached`).

Submissions are parsed from the raw body (the documented schema is in the OpenAPI document) so
that a wrong JSON type gets the same stable code as in a file — a number where a decimal string
is required is ``bad_decimal``, not a framework error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from clearlane.adapters.http import handlers
from clearlane.adapters.http import schemas as sc
from clearlane.adapters.http.auth import KeyStore, Principal
from clearlane.adapters.http.common import (
    IMMUTABLE,
    PROBLEM_MEDIA,
    REVALIDATE,
    ServiceOptions,
    allow,
    cached,
)
from clearlane.adapters.http.fastpath import TradeBatchPath
from clearlane.adapters.http.guard import BodyGuard
from clearlane.adapters.http.idempotency import IdempotencyKeys, MemoryKeyStore, RequestIds, ResponseStore
from clearlane.adapters.http.routes import ROUTERS, trades
from clearlane.adapters.sql.idempotency import SqlIdempotencyStore
from clearlane.adapters.sql.store import Store as SqlStore
from clearlane.node.runtime import Runtime

__all__ = ["IMMUTABLE", "REVALIDATE", "ServiceOptions", "cached", "create_app"]

_PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "model": sc.ProblemOut,
        "content": {PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}},
        "description": text,
    }
    for status, text in (
        (400, "Bad parameter"),
        (401, "No or unknown API key"),
        (403, "Role not allowed"),
        (404, "Not found"),
        (422, "Invalid input (stable code, field, reason)"),
        (503, "Runtime unavailable"),
    )
}

# Bodies parsed from the raw request (see the module docstring), documented by hand.
_DOCUMENTED_BODIES = (
    sc.TradeIn,
    sc.TradeBatchIn,
    sc.PaymentIn,
    sc.PaymentBatchIn,
    sc.DepositIn,
    sc.WithdrawalIn,
    sc.ProblemOut,
)


def create_app(
    runtime: Runtime,
    keys: KeyStore,
    *,
    options: ServiceOptions | None = None,
    manage_runtime: bool = False,
    extra_routers: Sequence[Callable[[FastAPI], None]] = (),
) -> FastAPI:
    """The API over a runtime. With ``manage_runtime`` the app starts and stops it (and the
    webhook dispatcher, if one is attached as ``app.state.webhooks``) in its lifespan."""
    app = FastAPI(
        title="clearlane",
        version="1",
        summary="Layer-2 clearing and settlement: submit trades, follow both finalities, watch the lanes.",
        description="See docs/API.md for roles, errors, caching and webhook signing.",
        lifespan=_lifespan(runtime) if manage_runtime else None,
        responses=_PROBLEM_RESPONSES,
    )
    app.state.runtime = runtime
    app.state.keys = keys
    app.state.options = options or ServiceOptions()
    # Extra routers (dashboard, webhooks, proofs) ask for a role with app.state.allow(...).
    app.state.allow = lambda *roles: Annotated[Principal, Depends(allow(*roles))]
    handlers.install(app)
    # Innermost first: the trade batch's lean path (fastpath.py) behind all three;
    # Idempotency-Key sees a body the guard bounds; every response, the guard's refusals
    # included, gets its request id.
    app.state.idempotency = _key_store(runtime)
    app.add_middleware(TradeBatchPath, path="/v1/trades/batch", handler=trades.batch_response)
    app.add_middleware(
        IdempotencyKeys, store=app.state.idempotency, ttl_s=app.state.options.idempotency_ttl_s
    )
    app.add_middleware(
        BodyGuard, max_bytes=app.state.options.max_body_bytes, timeout_s=app.state.options.body_timeout_s
    )
    app.add_middleware(RequestIds)
    for router in ROUTERS:
        app.include_router(router)
    for add in extra_routers:
        add(app)
    _document_bodies(app)
    return app


def _key_store(runtime: Runtime) -> ResponseStore:
    """Idempotency keys beside the service's data (a restart keeps them); in memory for a store
    without SQL."""
    store = getattr(runtime, "store", None)
    if isinstance(store, SqlStore):
        return SqlIdempotencyStore(store)
    return MemoryKeyStore()


_IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Retry safely: the first 2xx response to this key is replayed for 24 h "
    "(a different request under it: 422 code 614; while it runs: 409 code 615). docs/API.md.",
}
_REQUEST_ID_HEADER = {
    "description": "The request's id (the client's X-Request-Id if sane, else generated).",
    "schema": {"type": "string"},
}


def _document_edge_headers(schema: dict[str, Any]) -> None:
    """The headers the middlewares add, on every operation of the OpenAPI document."""
    for ops in schema.get("paths", {}).values():
        for method, op in ops.items():
            if method in ("post", "patch"):
                op.setdefault("parameters", []).append(dict(_IDEMPOTENCY_PARAMETER))
            for response in op.get("responses", {}).values():
                response.setdefault("headers", {})["X-Request-Id"] = _REQUEST_ID_HEADER


WARM_PATH = "/v1/_warm-up"  # served by no route


async def _warm_routes(app: FastAPI) -> None:
    """One request through the whole app, to a path no route serves, answered 404 and dropped:
    the middleware stack and every router's route table are built now. A service's first
    request of any route other than the trade batch built them (85–215 ms, holding the
    interpreter lock, so the clearing loop waited too); issue 18, twelfth session."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": WARM_PATH,
        "raw_path": WARM_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    await app(scope, receive, send)


def _lifespan(runtime: Runtime) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nats_events = getattr(app.state, "nats_events", None)
        if nats_events is not None:  # serve --nats: listening before the first step
            nats_events.start()
        try:
            runtime.start()
        except BaseException:
            if nats_events is not None:
                nats_events.stop(timeout_s=0)
            raise
        if runtime.options.tune_process:  # the serve process: its first requests wait for none of it
            await _warm_routes(app)
        gateways = getattr(app.state, "gateways", None)
        if gateways is not None:  # serve --gateways: link.py
            try:
                await gateways.start(app)
            except BaseException:
                await gateways.stop(timeout_s=0)
                runtime.stop()
                raise
        hooks = getattr(app.state, "webhooks", None)
        if hooks is not None:
            hooks.start()
        alerts = getattr(app.state, "alerts", None)
        if alerts is not None:  # the alert timer (acks lapsing, rules): node/alerts.py
            alerts.start()
        try:
            yield
        finally:
            if gateways is not None:  # first: their requests still in flight reach the runtime
                await gateways.stop()
            if alerts is not None:
                alerts.stop()
            hooks = getattr(app.state, "webhooks", None)
            if hooks is not None:
                hooks.stop()
            app.state.keys.close()
            runtime.stop()
            if nats_events is not None:  # after the runtime: its last steps' events go out too
                nats_events.stop()

    return lifespan


def _document_bodies(app: FastAPI) -> None:
    """Add the hand-documented request bodies' schemas to the OpenAPI components."""
    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in _DOCUMENTED_BODIES:
            defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in defs.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = defs
        _document_edge_headers(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
