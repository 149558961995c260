"""cases: the one case queue for every kind the store holds (reconciliation exceptions today;
monitoring alerts and escrow disputes share it) — list with filters, one case with its
hash-chained trail, and the operator's actions (docs/RECONCILIATION.md §7).

Who: operators act, auditors read; a participant key gets 403 — a case may name any
participant (a net instruction, a bank line, an exchange batch), and cases carry no party list
a participant could be matched against. Every action publishes ``<kind>.<action done>`` (e.g.
``exception.assigned``) on the event bus (SSE, webhooks), to operators and auditors only.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from clearlane.adapters.http.auth import Principal
from clearlane.adapters.http.common import (
    READERS,
    Limit,
    Operator,
    Reader,
    RuntimeDep,
    json_body,
    problem_doc,
    roles_doc,
    run,
)
from clearlane.adapters.http.problems import Problem, ServiceCode
from clearlane.core.cases import CaseError
from clearlane.core.model.inputs import LEDGER_ADJUSTMENT_KIND
from clearlane.node.ports import ReconStore
from clearlane.node.recon import cases as case_app
from clearlane.node.runtime import Runtime

router = APIRouter(tags=["cases"])

_ACTION_FIELDS = frozenset(
    ("action", "note", "owner", "until", "until_ms", "resolution", "expected_version", "adjustment")
)
_CONFLICTS = ("CASE_VERSION_CONFLICT", "CASE_TRANSITION_INVALID")


def recon_store(request: Request) -> ReconStore:
    """The app's reconciliation store: ``app.state.recon`` if a driver set one (tests: the memory
    store), else the SQL one on the runtime's database, made once."""
    store: ReconStore | None = getattr(request.app.state, "recon", None)
    if store is None:
        from clearlane.adapters.sql.recon import SqlReconStore

        store = SqlReconStore(request.app.state.runtime.store)
        request.app.state.recon = store
    return store


def now_ms(request: Request) -> int:
    """Wall time: SLAs and ageing are about people's hours, not the engine's clock
    (``app.state.case_clock`` replaces it in tests)."""
    clock = getattr(request.app.state, "case_clock", None)
    return int(clock()) if clock is not None else int(time.time() * 1000)


def scales(runtime: Runtime) -> dict[str, int]:
    return {a.code: a.scale for a in runtime.config.assets}


ReconDep = Annotated[ReconStore, Depends(recon_store)]
NowDep = Annotated[int, Depends(now_ms)]


def input_problem(exc: Exception) -> Problem:
    """A case refusal as a problem naming its stable code and the field (409 for a version or
    state conflict, else 422)."""
    code = str(getattr(exc, "code", "CASE_ACTION_INVALID"))
    text = str(exc)
    field, _, reason = text.partition(": ")
    status = 409 if code in _CONFLICTS else 422
    return Problem(
        status,
        "Conflict" if status == 409 else "Invalid input",
        code=int(ServiceCode.INVALID_INPUT),
        error=code.lower(),
        detail=text,
        field=getattr(exc, "field", field),
        reason=getattr(exc, "reason", reason or text),
    )


@router.get("/v1/cases", openapi_extra=roles_doc(*READERS))
async def list_cases(
    principal: Reader,
    runtime: RuntimeDep,
    store: ReconDep,
    now: NowDep,
    limit: Limit = 100,
    kind: str | None = Query(default=None, max_length=64, description="exception, alert, dispute, ..."),
    state: str | None = Query(default=None, description="A case state, or active / closed."),
    owner: str | None = Query(default=None, max_length=200),
    severity: str | None = Query(default=None, description="low, medium, high, critical"),
    ageing: str | None = Query(default=None, description="0-1d, 1-3d, 3-7d, 7-30d, >30d"),
    overdue: bool | None = Query(default=None, description="Only cases past (or within) their SLA."),
) -> Response:
    """The queue, oldest first, with a summary (active per ageing bucket, overdue, severity)."""
    query = case_app.CaseQuery(kind, state, owner, severity, ageing, overdue)
    try:
        items = await asyncio.to_thread(case_app.list_cases, store, query, now, scales(runtime))
    except case_app.CaseQueryError as exc:
        raise Problem.service(
            ServiceCode.BAD_PARAMETER, 400, str(exc), field=exc.field, reason=exc.reason
        ) from None
    body = {
        "items": items[:limit],
        "total": len(items),
        "summary": case_app.queue_summary(items),
        "now_ms": now,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/v1/cases/{case_id}", openapi_extra=roles_doc(*READERS))
async def get_case(
    case_id: str, principal: Reader, runtime: RuntimeDep, store: ReconDep, now: NowDep
) -> Response:
    """One case, its event trail, and ``chain_ok``: the trail's hash chain verifies to the head."""
    found = await asyncio.to_thread(case_app.case_detail, store, case_id, now, scales(runtime))
    return JSONResponse(found, headers={"Cache-Control": "no-store"})


def _time_ms(text: Any) -> int:
    """An RFC 3339 time with its offset (``Z`` or ``+hh:mm``) in ms since the epoch."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise case_app.CaseQueryError("until", "not an RFC 3339 time with an offset (…Z)")
    return int(moment.timestamp() * 1000)


def _command(data: Any) -> case_app.CaseCommand:
    if not isinstance(data, dict):
        raise Problem.service(
            ServiceCode.BAD_BODY, 422, "body must be a JSON object", field="-", reason="not an object"
        )
    extra = sorted(set(data) - _ACTION_FIELDS)
    if extra:
        raise Problem.service(
            ServiceCode.BAD_BODY, 422, f"unknown field {extra[0]!r}", field=extra[0], reason="unknown field"
        )
    until_ms = data.get("until_ms")
    if data.get("until") is not None:
        until_ms = _time_ms(data["until"])
    if not isinstance(data.get("action"), str):
        raise case_app.CaseQueryError(
            "action", "required: " + ", ".join(a.value for a in case_app.OPERATOR_ACTIONS)
        )
    return case_app.parse_command(
        data["action"], note=data.get("note"), owner=data.get("owner"), until_ms=until_ms,
        resolution=data.get("resolution"), expected_version=data.get("expected_version"),
    )  # fmt: skip


def actor_of(principal: Principal) -> str:
    return principal.label or f"key:{principal.key_id}"


@router.post(
    "/v1/cases/{case_id}/actions",
    openapi_extra=roles_doc("operator"),
    responses={
        409: problem_doc("The case's state or version does not allow it (case_transition_invalid, case_version_conflict)"),
        422: problem_doc("A bad or missing argument (case_note_required, case_owner_required, case_query_invalid, ...)"),
    },
)  # fmt: skip
async def act_on_case(
    case_id: str, request: Request, principal: Operator, runtime: RuntimeDep, store: ReconDep, now: NowDep
) -> Response:
    """``{action, note?, owner?, until? | until_ms?, resolution?, expected_version?,
    adjustment?}``: assign, acknowledge, snooze, unsnooze, note, resolve, accept, reopen. A note
    is required to resolve, accept, reopen and note; ``expected_version`` refuses the action
    (409) if the case moved. A resolve ``fixed_by_booking`` may carry ``adjustment:
    {adjustment_id, legs: [{participant | house, asset, amount}], reason?}``: the adjusting
    journal entry is posted through the engine first (refused: 409/422 with its code, the case
    unchanged), then the case is resolved with the entry named in its note
    (docs/RECONCILIATION.md §8)."""
    data = await json_body(request)
    actor = actor_of(principal)
    receipt = None
    try:
        command = _command(data)
        if isinstance(data, dict) and data.get("adjustment") is not None:
            payload = case_app.adjustment_input(case_id, command, data["adjustment"], actor=actor)
            await asyncio.to_thread(case_app.check_command, store, case_id, command, actor=actor, now_ms=now)
            receipt = (await run(runtime.submit_events(LEDGER_ADJUSTMENT_KIND, [payload])))[0]
            command = case_app.with_adjustment_note(command, receipt)
        case, event = await asyncio.to_thread(
            case_app.apply_command, store, case_id, command, actor=actor, now_ms=now
        )
    except (CaseError, case_app.CaseQueryError) as exc:
        raise input_problem(exc) from None
    runtime.bus.publish(case_app.case_event_groups([(case, event)], scales(runtime)))
    body = {"case": case_app.case_view(case, now, scales(runtime)), "event": case_app.event_view(event)}
    if receipt is not None:
        body["adjustment"] = receipt
    return JSONResponse(body, headers={"Location": f"/v1/cases/{case_id}"})


__all__ = ["ReconDep", "input_problem", "now_ms", "recon_store", "router", "scales"]
