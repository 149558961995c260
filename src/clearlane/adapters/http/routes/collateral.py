"""collateral: deposits (operators) and withdrawals (a participant's own, or an operator's)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from clearlane.adapters.http import schemas as sc
from clearlane.adapters.http.auth import OPERATOR
from clearlane.adapters.http.common import (
    SUBMITTERS,
    Operator,
    RuntimeDep,
    Submitter,
    body_doc,
    json_body,
    roles_doc,
    run,
)
from clearlane.adapters.http.problems import Problem, ServiceCode

router = APIRouter(tags=["collateral"])


@router.post(
    "/v1/collateral/deposits",
    response_model=sc.Receipt,
    status_code=201,
    openapi_extra={**roles_doc(OPERATOR), **body_doc(sc.DepositIn)},
)
async def deposit(request: Request, principal: Operator, runtime: RuntimeDep) -> Response:
    data = await json_body(request)
    result = (await run(runtime.submit_events("collateral_deposit", [data])))[0]
    return JSONResponse(result, status_code=200 if result["status"] == "duplicate" else 201)


@router.post(
    "/v1/collateral/withdrawals",
    response_model=sc.Receipt,
    status_code=201,
    openapi_extra={**roles_doc(*SUBMITTERS), **body_doc(sc.WithdrawalIn)},
)
async def withdraw(request: Request, principal: Submitter, runtime: RuntimeDep) -> Response:
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
