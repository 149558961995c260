"""escrows: open an escrow, act on it, read one or a list (issue 12, docs/ESCROW.md).

Who acts: a participant key acts as its own participant (the body's ``actor`` may be left out;
another actor is refused 403); an operator key acts for whoever the body names (the platform
and the arbiter are operators). Whether that actor's role may take the action is the engine's
judgement: a refusal is a 409 problem with the escrow reject code (7xx). A participant sees
only the escrows it is party to; for anyone else an escrow is 404.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from clearlane.adapters.http.auth import Principal
from clearlane.adapters.http.common import (
    ALL_ROLES,
    SUBMITTERS,
    AnyRole,
    Limit,
    RuntimeDep,
    Submitter,
    json_body,
    problem_doc,
    roles_doc,
    run,
)
from clearlane.adapters.http.problems import Problem, ServiceCode, bad_parameter, not_found
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.states import EscrowState
from clearlane.node import escrow as escrow_app
from clearlane.node.runtime import Runtime

router = APIRouter(tags=["escrows"])

_ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The action id was submitted before: its first outcome"},
    403: problem_doc("A participant key may act only as its own participant"),
    409: problem_doc("The escrow rules refused the action (7xx escrow codes, id_conflict)"),
    422: problem_doc("The body is not an escrow action (field named)"),
}


def _body(data: Any, principal: Principal, escrow_id: str | None, action: str | None) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Problem.reject(RejectCode.BAD_JSON, "body must be a JSON object", "-", "not an object")
    body = dict(data)
    if action is not None:
        body.setdefault("action", action)
    if escrow_id is not None and body.setdefault("escrow_id", escrow_id) != escrow_id:
        raise Problem.reject(
            RejectCode.BAD_ID, "escrow_id differs from the path", "escrow_id", "not this escrow"
        )
    if not principal.reads_all and body.setdefault("actor", principal.participant) != principal.participant:
        raise Problem.service(
            ServiceCode.FORBIDDEN,
            403,
            "a participant key acts only as itself",
            field="actor",
            reason="not you",
        )
    return body


async def _act(runtime: Runtime, body: dict[str, Any]) -> Response:
    result = (await run(runtime.submit_events("escrow", [body])))[0]
    escrow_id = body.get("escrow_id")
    return JSONResponse(
        result,
        status_code=200 if result["status"] == "duplicate" else 201,
        headers={"Location": f"/v1/escrows/{escrow_id}"},
    )


@router.post(
    "/v1/escrows", status_code=201, openapi_extra=roles_doc(*SUBMITTERS), responses=_ACTION_RESPONSES
)
async def open_escrow(request: Request, principal: Submitter, runtime: RuntimeDep) -> Response:
    """Open an escrow: ``{action_id, escrow_id, actor, terms}`` (the ``open`` action)."""
    return await _act(runtime, _body(await json_body(request), principal, None, "open"))


@router.patch(
    "/v1/escrows/{escrow_id}",
    status_code=201,
    openapi_extra=roles_doc(*SUBMITTERS),
    responses=_ACTION_RESPONSES,
)
@router.post(
    "/v1/escrows/{escrow_id}/actions",
    status_code=201,
    openapi_extra=roles_doc(*SUBMITTERS),
    responses=_ACTION_RESPONSES,
)
async def act(escrow_id: str, request: Request, principal: Submitter, runtime: RuntimeDep) -> Response:
    """Any escrow action: ``{action, action_id, actor, ...}`` (agree, fund, satisfy, reject,
    release, approve, refund, cancel, dispute, decide, settle, chargeback, chargeback_resolve)."""
    return await _act(runtime, _body(await json_body(request), principal, escrow_id, None))


def _visible(runtime: Runtime, principal: Principal) -> list[dict[str, Any]]:
    with runtime.lock:
        views = runtime.queries.escrow_views()
    who = None if principal.reads_all else principal.participant
    return [escrow_app.view_dict(v) for v in views if escrow_app.visible(v, who)]


@router.get("/v1/escrows", openapi_extra=roles_doc(*ALL_ROLES))
async def list_escrows(
    principal: AnyRole,
    runtime: RuntimeDep,
    limit: Limit = 100,
    state: str | None = Query(default=None, description="Only escrows in this state (label)."),
) -> Response:
    labels = {s.label for s in EscrowState}
    if state is not None and state not in labels:
        raise bad_parameter("state", f"one of {', '.join(sorted(labels))}")
    items = await asyncio.to_thread(_visible, runtime, principal)
    if state is not None:
        items = [i for i in items if i["state"] == state]
    return JSONResponse({"items": items[:limit], "total": len(items)}, headers={"Cache-Control": "no-store"})


@router.get("/v1/escrows/{escrow_id}", openapi_extra=roles_doc(*ALL_ROLES))
async def get_escrow(escrow_id: str, principal: AnyRole, runtime: RuntimeDep) -> Response:
    def one() -> dict[str, Any] | None:
        with runtime.lock:
            view = runtime.queries.escrow(escrow_id)
        who = None if principal.reads_all else principal.participant
        return escrow_app.view_dict(view) if view is not None and escrow_app.visible(view, who) else None

    found = await asyncio.to_thread(one)
    if found is None:
        raise not_found(f"escrow {escrow_id!r}")
    return JSONResponse(found, headers={"Cache-Control": "no-store"})
