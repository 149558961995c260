"""meta: liveness (``/healthz``) and who the caller is (``/v1/me``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from clearlane.adapters.http import schemas as sc
from clearlane.adapters.http.common import ALL_ROLES, REVALIDATE, AnyRole, RuntimeDep, cached, roles_doc

router = APIRouter(tags=["meta"])


@router.get("/healthz", response_model=sc.Health, openapi_extra=roles_doc())
async def healthz(runtime: RuntimeDep) -> Response:
    status = "ok" if runtime.healthy else ("failed" if runtime.failed is not None else "stopped")
    body = {
        "status": status,
        "applied_seq": runtime.rm.applied_seq,
        "engine_time_ms": runtime.queries.engine_time_ms(),
        "clock": runtime.clock.mode,
    }
    chain_health = runtime.queries.base_layer_health()
    if chain_health is not None:  # a real base layer: "unreachable" is alert-worthy, not fatal
        body["base_layer"] = chain_health
    return JSONResponse(
        body, status_code=200 if status == "ok" else 503, headers={"Cache-Control": "no-store"}
    )


@router.get("/v1/me", response_model=sc.Me, openapi_extra=roles_doc(*ALL_ROLES))
async def me(request: Request, principal: AnyRole) -> Response:
    return cached(
        request,
        sc.Me,
        {"key_id": principal.key_id, "role": principal.role, "participant": principal.participant},
        cache_control=REVALIDATE,
    )
