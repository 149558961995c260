"""alerts: the alert workflow over HTTP (issue 15, docs/MONITORING.md "Alerts").

Operators and auditors read alerts (open, acknowledged, snoozed, silenced, with their age and
trail) and silences; operators act on them (acknowledge with a note and a TTL, snooze, unsnooze,
resolve, reopen, note, assign) and create or expire silences. ``GET /v1/alerts/alertmanager``
answers in Alertmanager's API v2 ``gettableAlert`` shape. A refused action is a problem with the
workflow's stable code in ``error`` (409 for a state or version conflict, 422 for bad input) and
changes nothing. Participants see no alerts (they may name other participants' flows).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from clearlane.adapters.http.auth import Principal
from clearlane.adapters.http.common import READERS, Operator, Reader, json_body, problem_doc, roles_doc
from clearlane.adapters.http.problems import Problem, ServiceCode, bad_parameter
from clearlane.core.cases import CaseError
from clearlane.node.alerts import AlertService
from clearlane.node.runtime import Runtime

router = APIRouter(tags=["alerts"])
STATUSES = ("open", "acknowledged", "snoozed", "silenced", "resolved")
_CONFLICTS = {"CASE_TRANSITION_INVALID", "CASE_VERSION_CONFLICT", "CASE_ACK_NOT_LAPSED", "SILENCE_EXPIRED"}
_build_lock = threading.Lock()


def build_service(runtime: Runtime) -> AlertService:
    """The node's alert service over its store (SQL: the ``cases`` and ``silences`` tables;
    memory otherwise), fed by the bus's ``alert.raised`` and publishing ``alert.*`` on it."""
    from clearlane.adapters.sql.store import Store

    if isinstance(runtime.store, Store):
        from clearlane.adapters.sql.alerts import SqlSilenceStore
        from clearlane.adapters.sql.recon import SqlReconStore

        cases: Any = SqlReconStore(runtime.store)
        silences: Any = SqlSilenceStore(runtime.store)
    else:
        from clearlane.adapters.memory.alerts import MemorySilenceStore
        from clearlane.adapters.memory.recon import MemoryReconStore

        cases, silences = MemoryReconStore(), MemorySilenceStore()

    def figures() -> dict[str, float]:
        with runtime.lock:
            return {k: float(v) for k, v in runtime.queue_lengths().items()}

    service = AlertService(
        cases,
        silences,
        now=lambda: max(runtime.clock.now_ms(), runtime.queries.engine_time_ms()),
        publish=runtime.bus.publish,
        seq=lambda: runtime.rm.applied_seq,
        figures=figures,
    )
    runtime.bus.add_listener(service.on_groups)
    return service


def alerts_of(request: Request) -> AlertService:
    """The app's alert service (``app.state.alerts``, set by ``serve``; built on first use for
    an app made without it — then no timer runs and reads apply what time made due)."""
    state = request.app.state
    with _build_lock:
        if getattr(state, "alerts", None) is None:
            state.alerts = build_service(state.runtime)
    return state.alerts  # type: ignore[no-any-return]


Alerts = Annotated[AlertService, Depends(alerts_of)]


def _actor(principal: Principal) -> str:
    return principal.label or principal.key_id


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a service call off the event loop; a refused action becomes its problem."""
    try:
        return await asyncio.to_thread(fn, *args)
    except CaseError as exc:
        field, _, reason = str(exc).partition(": ")
        raise Problem(
            409 if exc.code in _CONFLICTS else 422,
            "Alert action refused",
            code=int(ServiceCode.INVALID_INPUT),
            error=exc.code.lower(),
            detail=str(exc),
            field=field if reason else None,
            reason=reason or None,
        ) from None


def _json(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


_ACT_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: problem_doc("The alert's state or version does not allow the action (nothing changed)"),
    422: problem_doc("A missing note or TTL, a bad time or matcher (field named)"),
}


@router.get("/v1/alerts", openapi_extra=roles_doc(*READERS))
async def list_alerts(
    principal: Reader,
    alerts: Alerts,
    status: str | None = Query(
        default=None, description="open, acknowledged, snoozed, silenced or resolved."
    ),
    include_resolved: bool = Query(default=False, description="Also the resolved alerts (history)."),
) -> Response:
    """Alerts, newest first, with status, age and the silences muting them; ``counts`` by status."""
    if status is not None and status not in STATUSES:
        raise bad_parameter("status", f"one of {', '.join(STATUSES)}")
    items = await _call(lambda: alerts.alerts(active_only=not include_resolved and status != "resolved"))
    counts = {s: sum(1 for i in items if i["status"] == s) for s in STATUSES}
    chosen = [i for i in items if status is None or i["status"] == status]
    return _json({"items": chosen, "total": len(chosen), "counts": counts})


@router.get("/v1/alerts/alertmanager", openapi_extra=roles_doc(*READERS))
async def alertmanager_alerts(
    request: Request,
    principal: Reader,
    alerts: Alerts,
    include_resolved: bool = Query(default=False, description="Also resolved alerts (endsAt in the past)."),
) -> Response:
    """The alerts as Alertmanager API v2 ``gettableAlert`` objects (what ``GET /api/v2/alerts``
    returns): labels, annotations, startsAt, endsAt, updatedAt, generatorURL, fingerprint,
    receivers and status {state, silencedBy, inhibitedBy}."""
    base = str(request.base_url)
    return _json(await _call(lambda: alerts.alertmanager(base, active_only=not include_resolved)))


@router.post("/v1/alerts/alertmanager", openapi_extra=roles_doc("operator"), responses=_ACT_RESPONSES)
async def receive_alertmanager(request: Request, principal: Operator, alerts: Alerts) -> Response:
    """An Alertmanager webhook receiver: point a ``webhook_configs`` url here (with an operator
    key as its bearer credentials) and Prometheus' alerts become alerts with a workflow —
    firing opens or recurs, resolved resolves. Answers ``{firing, resolved}`` counts."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise Problem.service(
            ServiceCode.BAD_BODY, 422, "body must be a JSON object", field="-", reason="not an object"
        )
    return _json(await _call(alerts.receive_alertmanager, body))


@router.get("/v1/alerts/silences", openapi_extra=roles_doc(*READERS))
async def list_silences(principal: Reader, alerts: Alerts) -> Response:
    """Silences, newest first, in Alertmanager's ``gettableSilence`` shape (state pending,
    active or expired)."""
    return _json({"items": await _call(alerts.list_silences)})


@router.post(
    "/v1/alerts/silences", status_code=201, openapi_extra=roles_doc("operator"), responses=_ACT_RESPONSES
)
async def create_silence(request: Request, principal: Operator, alerts: Alerts) -> Response:
    """``{matchers: [{name, value, isRegex, isEqual}], ends_at_ms | ttl_ms, starts_at_ms?,
    comment}``: mutes every alert whose labels match all matchers while it is active."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise Problem.service(
            ServiceCode.BAD_BODY, 422, "body must be a JSON object", field="-", reason="not an object"
        )
    created = await _call(alerts.create_silence, body, _actor(principal))
    return JSONResponse(
        created, status_code=201, headers={"Location": f"/v1/alerts/silences/{created['id']}"}
    )


@router.get("/v1/alerts/silences/{silence_id}", openapi_extra=roles_doc(*READERS))
async def get_silence(silence_id: str, principal: Reader, alerts: Alerts) -> Response:
    return _json(await _call(alerts.silence, silence_id))


@router.delete(
    "/v1/alerts/silences/{silence_id}", openapi_extra=roles_doc("operator"), responses=_ACT_RESPONSES
)
async def expire_silence(silence_id: str, principal: Operator, alerts: Alerts) -> Response:
    """Expire a silence now (it is kept, with its end moved to now)."""
    return _json(await _call(alerts.expire_silence, silence_id))


@router.get("/v1/alerts/{alert_id}", openapi_extra=roles_doc(*READERS))
async def get_alert(alert_id: str, principal: Reader, alerts: Alerts) -> Response:
    """One alert with its hash-chained trail (every action: who, when, note)."""
    return _json(await _call(alerts.get, alert_id))


@router.post("/v1/alerts/{alert_id}/actions", openapi_extra=roles_doc("operator"), responses=_ACT_RESPONSES)
async def act_on_alert(alert_id: str, request: Request, principal: Operator, alerts: Alerts) -> Response:
    """``{action, note?, ttl_ms?, until_ms?, owner?, version?}``: acknowledge (note and TTL
    required; the ack lapses then and the alert notifies again), snooze (until), unsnooze,
    resolve (note), reopen (note), note, assign (owner)."""
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("action"), str):
        raise Problem.service(
            ServiceCode.BAD_BODY, 422, "body must be {action, ...}", field="action", reason="missing"
        )
    return _json(await _call(alerts.act, alert_id, body["action"], _actor(principal), body))
