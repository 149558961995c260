"""manual settlements (issue 17, docs/MANUAL_SETTLEMENT.md): an operator records that an L1
obligation was settled off-system, with evidence. Operator keys only: the engine posts the
obligation's gross settlement, logs it in the hash-chained input log and the audit chain, and
the trade's lifecycle then reads "settled manually" (never "final on L1"). A refusal is a 409
problem with its stable code (511, 512, 502, 116); a malformed body is 422."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from clearlane.adapters.http.auth import OPERATOR
from clearlane.adapters.http.common import (
    Operator,
    RuntimeDep,
    json_body,
    problem_doc,
    roles_doc,
    run,
)
from clearlane.core.model.inputs import MANUAL_SETTLEMENT_KIND

router = APIRouter(tags=["manual settlements"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The settlement id was applied before with the same content: nothing changed"},
    409: problem_doc("Refused: no open L1 obligation (511), already in a block (512), ledger (502), 116"),
    422: problem_doc("The body is not a manual settlement (field named)"),
}


@router.post(
    "/v1/manual-settlements", status_code=201, openapi_extra=roles_doc(OPERATOR), responses=_RESPONSES
)
async def record_manual_settlement(request: Request, principal: Operator, runtime: RuntimeDep) -> Response:
    """``{settlement_id, flow_id, operator, evidence_ref, evidence_sha256, note?}``: the L1
    obligation ``flow_id`` was settled off-system; ``evidence_sha256`` is the SHA-256 (hex) of
    the evidence document, ``evidence_ref`` its reference (a wire or SWIFT reference)."""
    body = await json_body(request)
    result = (await run(runtime.submit_events(MANUAL_SETTLEMENT_KIND, [body])))[0]
    return JSONResponse(
        result,
        status_code=200 if result["status"] == "duplicate" else 201,
        headers={"Location": f"/v1/trades/{result['settlement']['flow_id']}"}
        if result["settlement"]
        else None,
    )
