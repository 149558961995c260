"""trades: submit one or many trades, read a trade's lifecycle, list trades."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from clearlane.adapters.http import schemas as sc
from clearlane.adapters.http import views
from clearlane.adapters.http.common import (
    ALL_ROLES,
    IMMUTABLE,
    REVALIDATE,
    SUBMITTERS,
    AnyRole,
    Cursor,
    Limit,
    RuntimeDep,
    Submitter,
    authorize,
    body_doc,
    cached,
    forbid_foreign,
    forbid_foreign_columns,
    items_of,
    json_body,
    problem_doc,
    roles_doc,
    run,
    runtime_of,
    summary,
)
from clearlane.adapters.http.problems import Problem, not_found
from clearlane.core.model.codes import RejectCode
from clearlane.node.receipts import receipt_dicts

router = APIRouter(tags=["trades"])
BATCH_LIMIT = 10_000  # trades a bulk request may hold


@router.post(
    "/v1/trades",
    response_model=sc.Receipt,
    status_code=201,
    openapi_extra={**roles_doc(*SUBMITTERS), **body_doc(sc.TradeIn)},
    responses={
        200: {"model": sc.Receipt, "description": "The id was submitted before: its current record"},
        409: problem_doc("Same id, different content (id_conflict)"),
    },
)
async def submit_trade(request: Request, principal: Submitter, runtime: RuntimeDep) -> Response:
    data = await json_body(request)
    if not isinstance(data, dict):
        raise Problem.reject(RejectCode.BAD_JSON, "body must be a JSON object", "-", "not an object")
    forbid_foreign(principal, [data], ("buyer", "seller"), "")
    result = (await run(runtime.submit_trades([data], single=True)))[0]
    status = 200 if result["status"] == "duplicate" else 201
    return JSONResponse(result, status_code=status, headers={"Location": f"/v1/trades/{result['id']}"})


@router.post(
    "/v1/trades/batch",
    response_model=sc.BatchReceipt,
    openapi_extra={**roles_doc(*SUBMITTERS), **body_doc(sc.TradeBatchIn)},
    responses={413: problem_doc("Body larger than 16 MiB")},
)
async def submit_trades(request: Request) -> Response:
    # Served by fastpath.TradeBatchPath before routing; this route documents it (OpenAPI) and
    # answers it where the fast path is not installed.
    return await batch_response(request)


async def batch_response(request: Request) -> Response:
    """``POST /v1/trades/batch``: the receipts of a bulk submission (or raises the problem)."""
    # The roles as Submitter's, checked directly: no dependency solving on the hot path.
    principal = await authorize(request, SUBMITTERS)
    runtime = await runtime_of(request)
    rows = items_of(await json_body(request, batch_depth), "trades", BATCH_LIMIT)
    forbid_foreign(principal, rows, ("buyer", "seller"), "trades")
    receipts = await run(runtime.submit_trades(rows))
    return Response(orjson.dumps(summary(receipts)), media_type="application/json")


async def decoded_response(request: Request, batch: pa.RecordBatch) -> Response:
    """``POST /v1/trades/batch`` whose body a gateway process decoded (adapters/http/link.py):
    :func:`batch_response` from the roles on, the same refusals in the same order (the
    gateway sends its body as JSON instead whenever decoding it would refuse anything)."""
    principal = await authorize(request, SUBMITTERS)
    runtime = await runtime_of(request)
    forbid_foreign_columns(principal, batch, ("buyer", "seller"), "trades")
    receipts: Any = await asyncio.wrap_future(runtime.submit_decoded(batch))
    if isinstance(receipts, pa.RecordBatch):  # every row applied now: the gateway renders them
        return ReceiptColumns(receipts)
    return Response(orjson.dumps(summary(receipts)), media_type="application/json")


class ReceiptColumns(Response):
    """A bulk receipt still as the step's receipt columns (``node.receipts.RECEIPT_SCHEMA``):
    the link sends them to the gateway, which renders :func:`render_receipts` of them."""

    def __init__(self, receipts: pa.RecordBatch) -> None:
        super().__init__(b"", media_type="application/json")
        self.receipts = receipts


def render_receipts(table: pa.Table | pa.RecordBatch) -> Response:
    """The response :func:`batch_response` gives for these receipts (the same bytes)."""
    return Response(orjson.dumps(summary(receipt_dicts(table))), media_type="application/json")


def batch_depth(data: Any, raw: bytes) -> int | None:
    """The nesting depth of ``{"trades": [objects]}`` when its bytes hold no bracket beyond
    those containers (3; then no value can nest, and scanning the bytes for depth — costlier than
    parsing them — is skipped), else None. A bracket inside a string only costs the scan."""
    items = data.get("trades") if type(data) is dict else None
    if type(items) is not list or (items and set(map(type, items)) != {dict}):
        return None
    if raw.count(b"{") != len(items) + 1 or raw.count(b"[") != 1:
        return None
    return 3 if items else 2


def life_response(request: Request, life: dict[str, Any] | None, what: str) -> Response:
    """A trade's or payment's lifecycle; immutable once final."""
    if life is None:
        raise not_found(what)
    return cached(request, sc.TradeLifecycle, life, cache_control=IMMUTABLE if life["final"] else REVALIDATE)


@router.get("/v1/trades/{trade_id}", response_model=sc.TradeLifecycle, openapi_extra=roles_doc(*ALL_ROLES))
async def get_trade(request: Request, trade_id: str, principal: AnyRole, runtime: RuntimeDep) -> Response:
    life = await asyncio.to_thread(views.lifecycle, runtime, trade_id, principal, 0)
    return life_response(request, life, f"trade {trade_id!r}")


@router.get("/v1/trades", response_model=sc.TradePage, openapi_extra=roles_doc(*ALL_ROLES))
async def list_trades(
    request: Request,
    principal: AnyRole,
    runtime: RuntimeDep,
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
