"""batches: L2 micro-batches (list, one batch) and their net settlement instructions."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from clearlane.adapters.http import schemas as sc
from clearlane.adapters.http import views
from clearlane.adapters.http.common import (
    ALL_ROLES,
    IMMUTABLE,
    REVALIDATE,
    AnyRole,
    Cursor,
    Limit,
    RuntimeDep,
    cached,
    roles_doc,
)
from clearlane.adapters.http.problems import not_found
from clearlane.core.model.states import BatchState

router = APIRouter(tags=["batches"])


@router.get("/v1/batches", response_model=sc.BatchPage, openapi_extra=roles_doc(*ALL_ROLES))
async def list_batches(
    request: Request,
    principal: AnyRole,
    runtime: RuntimeDep,
    limit: Limit = 100,
    cursor: Cursor = None,
    pool: str | None = None,
    state: str | None = None,
) -> Response:
    page = await asyncio.to_thread(
        views.batch_page, runtime, limit=limit, cursor=cursor, pool=pool, state=state
    )
    return cached(request, sc.BatchPage, page, cache_control=REVALIDATE)


@router.get("/v1/batches/{batch_id}", response_model=sc.BatchOut, openapi_extra=roles_doc(*ALL_ROLES))
async def get_batch(request: Request, batch_id: str, principal: AnyRole, runtime: RuntimeDep) -> Response:
    out = await asyncio.to_thread(views.batch_detail, runtime, batch_id)
    if out is None:
        raise not_found(f"batch {batch_id!r}")
    done = BatchState.of_label(out["state"]).terminal
    return cached(request, sc.BatchOut, out, cache_control=IMMUTABLE if done else REVALIDATE)


@router.get("/v1/net-instructions", response_model=sc.NetInstructionPage, openapi_extra=roles_doc(*ALL_ROLES))
async def list_net(
    request: Request,
    principal: AnyRole,
    runtime: RuntimeDep,
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
