"""positions: positions per participant, lane and asset, and liquidity headroom."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from clearlane.adapters.http import schemas as sc
from clearlane.adapters.http import views
from clearlane.adapters.http.common import (
    ALL_ROLES,
    POSITION_CACHE,
    AnyRole,
    Cursor,
    Limit,
    RuntimeDep,
    cached,
    roles_doc,
)
from clearlane.adapters.http.problems import not_found

router = APIRouter(tags=["positions"])


@router.get("/v1/positions", response_model=sc.PositionPage, openapi_extra=roles_doc(*ALL_ROLES))
async def list_positions(
    request: Request,
    principal: AnyRole,
    runtime: RuntimeDep,
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
    return cached(request, sc.PositionPage, page, cache_control=POSITION_CACHE)


@router.get(
    "/v1/participants/{participant}/positions",
    response_model=sc.ParticipantPositions,
    openapi_extra=roles_doc(*ALL_ROLES),
)
async def get_positions(
    request: Request, participant: str, principal: AnyRole, runtime: RuntimeDep
) -> Response:
    if not principal.may_see(participant):
        raise not_found(f"participant {participant!r}")
    out = await asyncio.to_thread(views.participant_positions, runtime, participant)
    if out is None:
        raise not_found(f"participant {participant!r}")
    return cached(request, sc.ParticipantPositions, out, cache_control=POSITION_CACHE)


@router.get("/v1/liquidity", response_model=sc.LiquidityPage, openapi_extra=roles_doc(*ALL_ROLES))
async def list_liquidity(
    request: Request,
    principal: AnyRole,
    runtime: RuntimeDep,
    limit: Limit = 100,
    cursor: Cursor = None,
    participant: str | None = None,
) -> Response:
    page = await asyncio.to_thread(
        views.liquidity_page, runtime, principal, limit=limit, cursor=cursor, participant=participant
    )
    return cached(request, sc.LiquidityPage, page, cache_control=POSITION_CACHE)
