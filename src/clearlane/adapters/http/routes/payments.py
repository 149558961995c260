"""payments: submit one or many payment obligations, read a payment's lifecycle."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from clearlane.adapters.http import schemas as sc
from clearlane.adapters.http import views
from clearlane.adapters.http.common import (
    ALL_ROLES,
    SUBMITTERS,
    AnyRole,
    RuntimeDep,
    Submitter,
    body_doc,
    forbid_foreign,
    items_of,
    json_body,
    roles_doc,
    run,
    summary,
)
from clearlane.adapters.http.routes.trades import life_response

router = APIRouter(tags=["payments"])


@router.post(
    "/v1/payments",
    response_model=sc.Receipt,
    status_code=201,
    openapi_extra={**roles_doc(*SUBMITTERS), **body_doc(sc.PaymentIn)},
)
async def submit_payment(request: Request, principal: Submitter, runtime: RuntimeDep) -> Response:
    data = await json_body(request)
    forbid_foreign(principal, [data], ("payer", "payee"), "")
    result = (await run(runtime.submit_events("payment", [data])))[0]
    return JSONResponse(
        result,
        status_code=200 if result["status"] == "duplicate" else 201,
        headers={"Location": f"/v1/payments/{result['id']}"},
    )


@router.post(
    "/v1/payments/batch",
    response_model=sc.BatchReceipt,
    openapi_extra={**roles_doc(*SUBMITTERS), **body_doc(sc.PaymentBatchIn)},
)
async def submit_payments(request: Request, principal: Submitter, runtime: RuntimeDep) -> Response:
    rows = items_of(await json_body(request), "payments", 1_000)
    forbid_foreign(principal, rows, ("payer", "payee"), "payments")
    return JSONResponse(summary(await run(runtime.submit_events("payment", rows))))


@router.get(
    "/v1/payments/{payment_id}", response_model=sc.TradeLifecycle, openapi_extra=roles_doc(*ALL_ROLES)
)
async def get_payment(request: Request, payment_id: str, principal: AnyRole, runtime: RuntimeDep) -> Response:
    life = await asyncio.to_thread(views.lifecycle, runtime, payment_id, principal, 1)
    return life_response(request, life, f"payment {payment_id!r}")
