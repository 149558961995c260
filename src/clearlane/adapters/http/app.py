"""The HTTP API (FastAPI): the application factory :func:`create_app`.

Routes are listed in docs/API.md; each carries its allowed roles in the OpenAPI document
(``x-roles``), which the auth tests iterate over. Every error is RFC 9457 problem+json
(:mod:`clearlane.adapters.http.problems`); every GET carries an ETag and a Cache-Control suited to how
fast the resource changes, and answers ``If-None-Match`` with 304.

Submissions are parsed from the raw body (the documented schema is in the OpenAPI document) so
that a wrong JSON type gets the same stable code as in a file — a number where a decimal string
is required is ``bad_decimal``, not a framework error.
"""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from clearlane.adapters.http import schemas as sc
from clearlane.adapters.http import views
from clearlane.adapters.http.auth import AUDITOR, OPERATOR, PARTICIPANT, KeyStore, Principal, token_from
from clearlane.adapters.http.problems import Problem, ServiceCode, bad_parameter, not_found, problem_for
from clearlane.core.errors import ClearlaneError
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.states import BatchState
from clearlane.node.events import DEFAULT_STREAM_TYPES, EVENT_TYPES, EventFilter, canonical_event_types, iso
from clearlane.node.runtime import Runtime

ALL_ROLES = (PARTICIPANT, OPERATOR, AUDITOR)
READERS = (OPERATOR, AUDITOR)
SUBMITTERS = (PARTICIPANT, OPERATOR)
PROBLEM_MEDIA = "application/problem+json"
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"
POSITION_MAX_AGE = 1
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass
class ServiceOptions:
    auth: bool = True  # False: every request acts as an operator (local development only)
    stream_queue: int = 10_000
    keepalive_s: float = 15.0  # SSE comment line when idle (also how soon a gone client is noticed)


def _problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_MEDIA, headers=problem.headers
    )


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


def _problem_doc(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}},
    }


def _roles(*roles: str) -> dict[str, Any]:
    return {"x-roles": list(roles)}


def cached(
    request: Request, model: type[BaseModel], payload: dict[str, Any], *, cache_control: str
) -> Response:
    """Render ``payload`` through ``model`` with an ETag; 304 if the client has it already."""
    body = model.model_validate(payload).model_dump_json().encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Authorization, X-API-Key"}
    match = request.headers.get("if-none-match")
    if match is not None:
        offered = [t.strip().removeprefix("W/") for t in match.split(",")]
        if "*" in offered or etag in offered:
            return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


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
    opts = options or ServiceOptions()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            runtime.start()
            hooks = getattr(app.state, "webhooks", None)
            if hooks is not None:
                hooks.start()
        try:
            yield
        finally:
            if manage_runtime:
                hooks = getattr(app.state, "webhooks", None)
                if hooks is not None:
                    hooks.stop()
                runtime.stop()

    app = FastAPI(
        title="clearlane",
        version="1",
        summary="Layer-2 clearing and settlement: submit trades, follow both finalities, watch the lanes.",
        description="See docs/API.md for roles, errors, caching and webhook signing.",
        lifespan=lifespan,
        responses=_PROBLEM_RESPONSES,
    )
    app.state.runtime = runtime
    app.state.keys = keys
    app.state.options = opts

    # ------------------------------------------------------------------ errors
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return _problem_response(exc, request.url.path)

    @app.exception_handler(ClearlaneError)
    async def _clearlane(request: Request, exc: ClearlaneError) -> JSONResponse:
        return _problem_response(problem_for(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("-",), "msg": "invalid", "type": "value_error"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        name = ".".join(loc) or "-"
        where = first.get("loc", ("-",))[0]
        if first.get("type") == "json_invalid":
            problem = Problem(
                422,
                "Invalid input",
                code=int(RejectCode.BAD_JSON),
                error=RejectCode.BAD_JSON.slug,
                detail=f"body is not valid JSON: {first.get('msg')}",
                field="-",
                reason=str(first.get("msg")),
            )
        elif where in ("query", "path", "header"):
            problem = bad_parameter(name, str(first.get("msg")))
        elif first.get("type") == "missing":
            problem = Problem(
                422,
                "Invalid input",
                code=int(RejectCode.MISSING_FIELD),
                error=RejectCode.MISSING_FIELD.slug,
                detail=f"required field {name!r} is missing",
                field=name,
                reason=str(first.get("msg")),
            )
        else:
            problem = Problem.service(
                ServiceCode.BAD_BODY,
                422,
                f"{name}: {first.get('msg')}",
                field=name,
                reason=str(first.get("msg")),
            )
        return _problem_response(problem, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            problem = not_found(f"route {request.url.path}")
        elif exc.status_code == 405:
            problem = Problem.service(
                ServiceCode.METHOD_NOT_ALLOWED, 405, f"{request.method} not allowed here"
            )
        else:
            problem = Problem(
                exc.status_code,
                str(exc.detail),
                code=int(ServiceCode.BAD_PARAMETER),
                error=ServiceCode.BAD_PARAMETER.slug,
                detail=str(exc.detail),
            )
        return _problem_response(problem, request.url.path)

    # ------------------------------------------------------------------ auth
    async def authenticate(
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
        x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Principal:
        if not opts.auth:
            return Principal("dev", OPERATOR, None, "auth disabled")
        token = token_from(authorization, x_api_key)
        principal = keys.verify(token) if token else None
        if principal is None:
            raise Problem.service(
                ServiceCode.UNAUTHORIZED,
                401,
                "a valid API key is required (Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": 'Bearer realm="clearlane"'},
            )
        return principal

    def allow(*roles: str) -> Callable[..., Any]:
        async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
            if principal.role not in roles:
                raise Problem.service(ServiceCode.FORBIDDEN, 403, f"role {principal.role!r} may not do this")
            return principal

        return check

    app.state.allow = lambda *roles: Annotated[Principal, Depends(allow(*roles))]
    Any_ = Annotated[Principal, Depends(allow(*ALL_ROLES))]
    Reader = Annotated[Principal, Depends(allow(*READERS))]
    Submitter = Annotated[Principal, Depends(allow(*SUBMITTERS))]
    Operator = Annotated[Principal, Depends(allow(OPERATOR))]
    Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
    Cursor = Annotated[str | None, Query(max_length=200, description="From the previous page's next_cursor.")]

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise Problem.service(ServiceCode.TOO_LARGE, 413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            return orjson.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Problem(
                422,
                "Invalid input",
                code=int(RejectCode.BAD_JSON),
                error=RejectCode.BAD_JSON.slug,
                detail=f"body is not valid JSON: {exc}",
                field="-",
                reason=str(exc),
            ) from None

    def body_doc(model: type[BaseModel]) -> dict[str, Any]:
        return {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
                },
            }
        }

    async def run(future: Any) -> list[dict[str, Any]]:
        # A refusal (SubmissionRefused, RuntimeUnavailable) is a ClearlaneError: _clearlane answers it.
        result: list[dict[str, Any]] = await asyncio.wrap_future(future)
        return result

    def forbid_foreign(principal: Principal, rows: list[Any], sides: tuple[str, str], prefix: str) -> None:
        if principal.reads_all:
            return
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or principal.participant not in (
                row.get(sides[0]),
                row.get(sides[1]),
            ):
                field = f"{prefix}[{i}].{sides[0]}" if prefix else sides[0]
                raise Problem.service(
                    ServiceCode.FORBIDDEN,
                    403,
                    f"a participant key submits only its own {prefix or 'item'}s: "
                    f"{principal.participant} is neither {sides[0]} nor {sides[1]}",
                    field=field,
                    reason="not a party",
                )

    def items_of(data: Any, key: str, limit: int) -> list[Any]:
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise Problem(
                422,
                "Invalid input",
                code=int(RejectCode.MISSING_FIELD),
                error=RejectCode.MISSING_FIELD.slug,
                detail=f"body must be an object with a {key!r} list",
                field=key,
                reason="missing or not a list",
            )
        extra = sorted(set(data) - {key})
        if extra:
            raise Problem.service(
                ServiceCode.BAD_BODY,
                422,
                f"unknown field {extra[0]!r}",
                field=extra[0],
                reason="unknown field",
            )
        items: list[Any] = data[key]
        if not items:
            raise Problem.service(
                ServiceCode.BAD_BODY, 422, f"{key} is empty", field=key, reason="at least one item"
            )
        if len(items) > limit:
            raise Problem.service(
                ServiceCode.TOO_LARGE,
                422,
                f"at most {limit} {key} per request",
                field=key,
                reason=f"more than {limit} items",
            )
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise Problem(
                    422,
                    "Invalid input",
                    code=int(RejectCode.BAD_JSON),
                    error=RejectCode.BAD_JSON.slug,
                    detail=f"{key}[{i}] is not a JSON object",
                    field=f"{key}[{i}]",
                    reason="not an object",
                )
        return items

    def summary(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "accepted": sum(1 for r in items if r["status"] == "accepted"),
            "duplicates": sum(1 for r in items if r["status"] == "duplicate"),
            "rejected": sum(1 for r in items if r["status"] == "rejected"),
            "items": items,
        }

    # ------------------------------------------------------------------ meta
    @app.get("/healthz", response_model=sc.Health, tags=["meta"], openapi_extra=_roles())
    async def healthz() -> Response:
        status = "ok" if runtime.healthy else ("failed" if runtime.failed is not None else "stopped")
        body = {
            "status": status,
            "applied_seq": runtime.rm.applied_seq,
            "engine_time_ms": runtime.runner.engine.now_ms,
            "clock": runtime.clock.mode,
        }
        return JSONResponse(
            body, status_code=200 if status == "ok" else 503, headers={"Cache-Control": "no-store"}
        )

    @app.get("/v1/me", response_model=sc.Me, tags=["meta"], openapi_extra=_roles(*ALL_ROLES))
    async def me(request: Request, principal: Any_) -> Response:
        return cached(
            request,
            sc.Me,
            {"key_id": principal.key_id, "role": principal.role, "participant": principal.participant},
            cache_control=REVALIDATE,
        )

    # ------------------------------------------------------------------ submissions
    @app.post(
        "/v1/trades",
        response_model=sc.Receipt,
        status_code=201,
        tags=["trades"],
        openapi_extra={**_roles(*SUBMITTERS), **body_doc(sc.TradeIn)},
        responses={
            200: {"model": sc.Receipt, "description": "The id was submitted before: its current record"},
            409: _problem_doc("Same id, different content (id_conflict)"),
        },
    )
    async def submit_trade(request: Request, principal: Submitter) -> Response:
        data = await json_body(request)
        if not isinstance(data, dict):
            raise Problem(
                422,
                "Invalid input",
                code=int(RejectCode.BAD_JSON),
                error=RejectCode.BAD_JSON.slug,
                detail="body must be a JSON object",
                field="-",
                reason="not an object",
            )
        forbid_foreign(principal, [data], ("buyer", "seller"), "")
        future = runtime.submit_trades([data], single=True)
        result = (await run(future))[0]
        status = 200 if result["status"] == "duplicate" else 201
        return JSONResponse(result, status_code=status, headers={"Location": f"/v1/trades/{result['id']}"})

    @app.post(
        "/v1/trades/batch",
        response_model=sc.BatchReceipt,
        tags=["trades"],
        openapi_extra={**_roles(*SUBMITTERS), **body_doc(sc.TradeBatchIn)},
        responses={413: _problem_doc("Body larger than 16 MiB")},
    )
    async def submit_trades(request: Request, principal: Submitter) -> Response:
        rows = items_of(await json_body(request), "trades", 10_000)
        forbid_foreign(principal, rows, ("buyer", "seller"), "trades")
        return Response(
            orjson.dumps(summary(await run(runtime.submit_trades(rows)))), media_type="application/json"
        )

    @app.post(
        "/v1/payments",
        response_model=sc.Receipt,
        status_code=201,
        tags=["payments"],
        openapi_extra={**_roles(*SUBMITTERS), **body_doc(sc.PaymentIn)},
    )
    async def submit_payment(request: Request, principal: Submitter) -> Response:
        data = await json_body(request)
        forbid_foreign(principal, [data], ("payer", "payee"), "")
        result = (await run(runtime.submit_events("payment", [data])))[0]
        return JSONResponse(
            result,
            status_code=200 if result["status"] == "duplicate" else 201,
            headers={"Location": f"/v1/payments/{result['id']}"},
        )

    @app.post(
        "/v1/payments/batch",
        response_model=sc.BatchReceipt,
        tags=["payments"],
        openapi_extra={**_roles(*SUBMITTERS), **body_doc(sc.PaymentBatchIn)},
    )
    async def submit_payments(request: Request, principal: Submitter) -> Response:
        rows = items_of(await json_body(request), "payments", 1_000)
        forbid_foreign(principal, rows, ("payer", "payee"), "payments")
        return JSONResponse(summary(await run(runtime.submit_events("payment", rows))))

    @app.post(
        "/v1/collateral/deposits",
        response_model=sc.Receipt,
        status_code=201,
        tags=["collateral"],
        openapi_extra={**_roles(OPERATOR), **body_doc(sc.DepositIn)},
    )
    async def deposit(request: Request, principal: Operator) -> Response:
        data = await json_body(request)
        result = (await run(runtime.submit_events("collateral_deposit", [data])))[0]
        return JSONResponse(result, status_code=200 if result["status"] == "duplicate" else 201)

    @app.post(
        "/v1/collateral/withdrawals",
        response_model=sc.Receipt,
        status_code=201,
        tags=["collateral"],
        openapi_extra={**_roles(*SUBMITTERS), **body_doc(sc.WithdrawalIn)},
    )
    async def withdraw(request: Request, principal: Submitter) -> Response:
        data = await json_body(request)
        if not principal.reads_all and (
            not isinstance(data, dict) or data.get("participant") != principal.participant
        ):
            raise Problem.service(
                ServiceCode.FORBIDDEN,
                403,
                "a participant key withdraws only its own collateral",
                field="participant",
                reason="not yours",
            )
        result = (await run(runtime.submit_events("collateral_withdrawal", [data])))[0]
        return JSONResponse(result, status_code=200 if result["status"] == "duplicate" else 201)

    # ------------------------------------------------------------------ trades
    def life_response(request: Request, life: dict[str, Any] | None, what: str) -> Response:
        if life is None:
            raise not_found(what)
        return cached(
            request, sc.TradeLifecycle, life, cache_control=IMMUTABLE if life["final"] else REVALIDATE
        )

    @app.get(
        "/v1/trades/{trade_id}",
        response_model=sc.TradeLifecycle,
        tags=["trades"],
        openapi_extra=_roles(*ALL_ROLES),
    )
    async def get_trade(request: Request, trade_id: str, principal: Any_) -> Response:
        return life_response(
            request,
            await asyncio.to_thread(views.lifecycle, runtime, trade_id, principal, 0),
            f"trade {trade_id!r}",
        )

    @app.get(
        "/v1/payments/{payment_id}",
        response_model=sc.TradeLifecycle,
        tags=["payments"],
        openapi_extra=_roles(*ALL_ROLES),
    )
    async def get_payment(request: Request, payment_id: str, principal: Any_) -> Response:
        return life_response(
            request,
            await asyncio.to_thread(views.lifecycle, runtime, payment_id, principal, 1),
            f"payment {payment_id!r}",
        )

    @app.get("/v1/trades", response_model=sc.TradePage, tags=["trades"], openapi_extra=_roles(*ALL_ROLES))
    async def list_trades(
        request: Request,
        principal: Any_,
        limit: Limit = 100,
        cursor: Cursor = None,
        participant: str | None = None,
        lane: str | None = None,
        pool: str | None = None,
        state: str | None = None,
        batch_id: str | None = None,
        kind: str | None = None,
    ) -> Response:
        page = await asyncio.to_thread(
            views.trade_page,
            runtime,
            principal,
            limit=limit,
            cursor=cursor,
            participant=participant,
            lane=lane,
            pool=pool,
            state=state,
            batch_id=batch_id,
            kind=kind,
        )
        return cached(request, sc.TradePage, page, cache_control=REVALIDATE)

    # ------------------------------------------------------------------ batches
    @app.get("/v1/batches", response_model=sc.BatchPage, tags=["batches"], openapi_extra=_roles(*ALL_ROLES))
    async def list_batches(
        request: Request,
        principal: Any_,
        limit: Limit = 100,
        cursor: Cursor = None,
        pool: str | None = None,
        state: str | None = None,
    ) -> Response:
        page = await asyncio.to_thread(
            views.batch_page, runtime, limit=limit, cursor=cursor, pool=pool, state=state
        )
        return cached(request, sc.BatchPage, page, cache_control=REVALIDATE)

    @app.get(
        "/v1/batches/{batch_id}",
        response_model=sc.BatchOut,
        tags=["batches"],
        openapi_extra=_roles(*ALL_ROLES),
    )
    async def get_batch(request: Request, batch_id: str, principal: Any_) -> Response:
        out = await asyncio.to_thread(views.batch_detail, runtime, batch_id)
        if out is None:
            raise not_found(f"batch {batch_id!r}")
        done = BatchState.of_label(out["state"]).terminal
        return cached(request, sc.BatchOut, out, cache_control=IMMUTABLE if done else REVALIDATE)

    @app.get(
        "/v1/net-instructions",
        response_model=sc.NetInstructionPage,
        tags=["batches"],
        openapi_extra=_roles(*ALL_ROLES),
    )
    async def list_net(
        request: Request,
        principal: Any_,
        limit: Limit = 100,
        cursor: Cursor = None,
        batch_id: str | None = None,
        participant: str | None = None,
        pool: str | None = None,
    ) -> Response:
        page = await asyncio.to_thread(
            views.net_instruction_page,
            runtime,
            principal,
            limit=limit,
            cursor=cursor,
            batch_id=batch_id,
            participant=participant,
            pool=pool,
        )
        return cached(request, sc.NetInstructionPage, page, cache_control=REVALIDATE)

    # ------------------------------------------------------------------ positions, liquidity
    position_cc = f"private, max-age={POSITION_MAX_AGE}"

    @app.get(
        "/v1/positions", response_model=sc.PositionPage, tags=["positions"], openapi_extra=_roles(*ALL_ROLES)
    )
    async def list_positions(
        request: Request,
        principal: Any_,
        limit: Limit = 100,
        cursor: Cursor = None,
        participant: str | None = None,
        lane: str | None = None,
        asset: str | None = None,
    ) -> Response:
        page = await asyncio.to_thread(
            views.position_page,
            runtime,
            principal,
            limit=limit,
            cursor=cursor,
            participant=participant,
            lane=lane,
            asset=asset,
        )
        return cached(request, sc.PositionPage, page, cache_control=position_cc)

    @app.get(
        "/v1/participants/{participant}/positions",
        response_model=sc.ParticipantPositions,
        tags=["positions"],
        openapi_extra=_roles(*ALL_ROLES),
    )
    async def get_positions(request: Request, participant: str, principal: Any_) -> Response:
        if not principal.may_see(participant):
            raise not_found(f"participant {participant!r}")
        out = await asyncio.to_thread(views.participant_positions, runtime, participant)
        if out is None:
            raise not_found(f"participant {participant!r}")
        return cached(request, sc.ParticipantPositions, out, cache_control=position_cc)

    @app.get(
        "/v1/liquidity", response_model=sc.LiquidityPage, tags=["positions"], openapi_extra=_roles(*ALL_ROLES)
    )
    async def list_liquidity(
        request: Request,
        principal: Any_,
        limit: Limit = 100,
        cursor: Cursor = None,
        participant: str | None = None,
    ) -> Response:
        page = await asyncio.to_thread(
            views.liquidity_page, runtime, principal, limit=limit, cursor=cursor, participant=participant
        )
        return cached(request, sc.LiquidityPage, page, cache_control=position_cc)

    # ------------------------------------------------------------------ dashboard aggregates
    stats_cc = "private, max-age=1"

    @app.get(
        "/v1/stats/overview", response_model=sc.StatsOverview, tags=["stats"], openapi_extra=_roles(*READERS)
    )
    async def stats_overview(request: Request, principal: Reader) -> Response:
        def build() -> dict[str, Any]:
            with runtime.lock:
                return views.overview(runtime)

        return cached(request, sc.StatsOverview, await asyncio.to_thread(build), cache_control=stats_cc)

    @app.get(
        "/v1/stats/latency", response_model=sc.StatsLatency, tags=["stats"], openapi_extra=_roles(*READERS)
    )
    async def stats_latency(
        request: Request,
        principal: Reader,
        since_ms: Annotated[int | None, Query(ge=0, le=2**62)] = None,
        bucket_s: Annotated[int | None, Query(ge=1, le=86_400)] = None,
        pool: str | None = None,
        hop: str | None = None,
    ) -> Response:
        def build() -> dict[str, Any]:
            with runtime.lock:
                return views.latency(runtime, since_ms=since_ms, bucket_s=bucket_s, pool=pool, hop=hop)

        return cached(request, sc.StatsLatency, await asyncio.to_thread(build), cache_control=stats_cc)

    @app.get(
        "/v1/stats/savings", response_model=sc.StatsSavings, tags=["stats"], openapi_extra=_roles(*READERS)
    )
    async def stats_savings(
        request: Request,
        principal: Reader,
        since_ms: Annotated[int | None, Query(ge=0, le=2**62)] = None,
        bucket_s: Annotated[int | None, Query(ge=1, le=86_400)] = None,
    ) -> Response:
        def build() -> dict[str, Any]:
            with runtime.lock:
                return views.savings(runtime, since_ms=since_ms, bucket_s=bucket_s)

        return cached(request, sc.StatsSavings, await asyncio.to_thread(build), cache_control=stats_cc)

    # ------------------------------------------------------------------ live stream
    @app.get(
        "/v1/stream",
        tags=["stream"],
        openapi_extra=_roles(*ALL_ROLES),
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "Server-Sent Events: lifecycle events and coalesced stats",
            }
        },
        response_class=StreamingResponse,
    )
    async def stream(
        request: Request,
        principal: Any_,
        types: Annotated[
            str | None, Query(max_length=500, description="Comma-separated event types.")
        ] = None,
        participant: str | None = None,
        pool: str | None = None,
        max_events: Annotated[
            int | None, Query(ge=1, le=1_000_000, description="Close after this many events.")
        ] = None,
    ) -> StreamingResponse:
        wanted = DEFAULT_STREAM_TYPES
        if types is not None:
            names = canonical_event_types(t.strip() for t in types.split(",") if t.strip())
            unknown = sorted(names - set(EVENT_TYPES))
            if unknown or not names:
                raise bad_parameter("types", f"unknown event type {unknown[0]!r}" if unknown else "empty")
            wanted = names
        if not principal.reads_all:
            if participant is not None and participant != principal.participant:
                raise not_found(f"participant {participant!r}")
            participant = principal.participant
            wanted = wanted - {"stats"}
        sub = runtime.bus.subscribe(
            EventFilter(wanted, participant, pool), asyncio.get_running_loop(), opts.stream_queue
        )
        first = None
        if "stats" in wanted and runtime.stats_builder is not None:

            def snapshot() -> dict[str, Any]:
                with runtime.lock:
                    return runtime.stats_builder() if runtime.stats_builder else {}

            data = await asyncio.to_thread(snapshot)
            first = {
                "id": model_ids.event_id(runtime.rm.applied_seq, "stats", "snapshot"),
                "type": "stats",
                "at_ms": runtime.rm.now_ms,
                "at": iso(runtime.rm.now_ms),
                "data": data,
            }

        def frame(event: dict[str, Any]) -> str:
            return f"id: {event['id']}\nevent: {event['type']}\ndata: {orjson.dumps(event).decode()}\n\n"

        async def events() -> AsyncIterator[str]:
            sent = 0
            try:
                yield "retry: 2000\n: connected\n\n"
                if first is not None:
                    yield frame(first)
                    sent += 1
                while max_events is None or sent < max_events:
                    try:
                        event = await asyncio.wait_for(sub.queue.get(), timeout=opts.keepalive_s)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": keep-alive\n\n"
                        continue
                    yield frame(event)
                    sent += 1
            finally:
                runtime.bus.unsubscribe(sub)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    for add in extra_routers:
        add(app)

    # documented request bodies (parsed from the raw body, see the module docstring)
    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (
            sc.TradeIn,
            sc.TradeBatchIn,
            sc.PaymentIn,
            sc.PaymentBatchIn,
            sc.DepositIn,
            sc.WithdrawalIn,
            sc.ProblemOut,
        ):
            defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in defs.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = defs
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
