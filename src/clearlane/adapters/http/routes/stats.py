"""stats: the dashboard's aggregates (overview, latency per hop, L2 savings), for readers."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from clearlane.adapters.http import schemas as sc
from clearlane.adapters.http import views
from clearlane.adapters.http.common import READERS, STATS_CACHE, Reader, RuntimeDep, cached, roles_doc

router = APIRouter(tags=["stats"])
SinceMs = Annotated[int | None, Query(ge=0, le=2**62)]
BucketS = Annotated[int | None, Query(ge=1, le=86_400)]


@router.get("/v1/stats/overview", response_model=sc.StatsOverview, openapi_extra=roles_doc(*READERS))
async def stats_overview(request: Request, principal: Reader, runtime: RuntimeDep) -> Response:
    def build() -> dict[str, Any]:
        with runtime.lock:
            return views.overview(runtime)

    return cached(request, sc.StatsOverview, await asyncio.to_thread(build), cache_control=STATS_CACHE)


@router.get("/v1/stats/latency", response_model=sc.StatsLatency, openapi_extra=roles_doc(*READERS))
async def stats_latency(
    request: Request,
    principal: Reader,
    runtime: RuntimeDep,
    since_ms: SinceMs = None,
    bucket_s: BucketS = None,
    pool: str | None = None,
    hop: str | None = None,
) -> Response:
    def build() -> dict[str, Any]:
        with runtime.lock:
            return views.latency(runtime, since_ms=since_ms, bucket_s=bucket_s, pool=pool, hop=hop)

    return cached(request, sc.StatsLatency, await asyncio.to_thread(build), cache_control=STATS_CACHE)


@router.get("/v1/stats/savings", response_model=sc.StatsSavings, openapi_extra=roles_doc(*READERS))
async def stats_savings(
    request: Request,
    principal: Reader,
    runtime: RuntimeDep,
    since_ms: SinceMs = None,
    bucket_s: BucketS = None,
) -> Response:
    def build() -> dict[str, Any]:
        with runtime.lock:
            return views.savings(runtime, since_ms=since_ms, bucket_s=bucket_s)

    return cached(request, sc.StatsSavings, await asyncio.to_thread(build), cache_control=STATS_CACHE)
