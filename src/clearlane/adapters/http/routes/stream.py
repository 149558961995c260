"""stream: the live Server-Sent Events stream of lifecycle events and coalesced stats.

A participant key sees only its own trades, batch events without any volume figure (batch id,
pool, state and times: :data:`clearlane.node.events.PARTICIPANT_BATCH_KEYS`) and never the stats; a slow client never blocks the
engine (its queue drops and it receives an ``overflow`` event, see :mod:`clearlane.node.events`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from clearlane.adapters.http.auth import Principal
from clearlane.adapters.http.common import ALL_ROLES, AnyRole, RuntimeDep, ServiceOptions, roles_doc
from clearlane.adapters.http.problems import bad_parameter, not_found
from clearlane.core.model import ids as model_ids
from clearlane.node.events import (
    DEFAULT_STREAM_TYPES,
    EVENT_TYPES,
    EventFilter,
    Subscription,
    canonical_event_types,
    iso,
)
from clearlane.node.runtime import Runtime

router = APIRouter(tags=["stream"])
Types = Annotated[str | None, Query(max_length=500, description="Comma-separated event types.")]
MaxEvents = Annotated[int | None, Query(ge=1, le=1_000_000, description="Close after this many events.")]


def stream_filter(
    principal: Principal, types: str | None, participant: str | None, pool: str | None
) -> EventFilter:
    """What the caller may and wants to see: a participant key is pinned to itself, no stats."""
    wanted = DEFAULT_STREAM_TYPES
    if types is not None:
        names = canonical_event_types(t.strip() for t in types.split(",") if t.strip())
        unknown = sorted(names - set(EVENT_TYPES))
        if unknown or not names:
            raise bad_parameter("types", f"unknown event type {unknown[0]!r}" if unknown else "empty")
        wanted = names
    if not principal.reads_all:
        if participant is not None and participant != principal.participant:
            raise not_found(f"participant {participant!r}")
        wanted = wanted - {"stats"}
        # Its own trades, and batch events without the batch's volume (node/events.py).
        return EventFilter(wanted, principal.participant, pool, own_figures_only=True)
    return EventFilter(wanted, participant, pool)


async def stats_snapshot(runtime: Runtime) -> dict[str, Any]:
    """The first event of a stream that wants stats: the current figures."""

    def build() -> dict[str, Any]:
        with runtime.lock:
            return runtime.stats_builder() if runtime.stats_builder else {}

    return {
        "id": model_ids.event_id(runtime.rm.applied_seq, "stats", "snapshot"),
        "type": "stats",
        "at_ms": runtime.rm.now_ms,
        "at": iso(runtime.rm.now_ms),
        "data": await asyncio.to_thread(build),
    }


def frame(event: dict[str, Any]) -> str:
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {orjson.dumps(event).decode()}\n\n"


async def sse_frames(
    request: Request,
    runtime: Runtime,
    sub: Subscription,
    first: dict[str, Any] | None,
    max_events: int | None,
    keepalive_s: float,
) -> AsyncIterator[str]:
    """The stream's frames, keep-alive comments while idle; unsubscribes when it ends."""
    sent = 0
    try:
        yield "retry: 2000\n: connected\n\n"
        if first is not None:
            yield frame(first)
            sent += 1
        while max_events is None or sent < max_events:
            try:
                event = await asyncio.wait_for(sub.queue.get(), timeout=keepalive_s)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": keep-alive\n\n"
                continue
            if event is None:  # the server is stopping
                return
            yield frame(event)
            sent += 1
    finally:
        runtime.bus.unsubscribe(sub)


@router.get(
    "/v1/stream",
    openapi_extra=roles_doc(*ALL_ROLES),
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-Sent Events: lifecycle events and coalesced stats",
        }
    },
    response_class=StreamingResponse,
)
async def stream(
    request: Request,
    principal: AnyRole,
    runtime: RuntimeDep,
    types: Types = None,
    participant: str | None = None,
    pool: str | None = None,
    max_events: MaxEvents = None,
) -> StreamingResponse:
    options: ServiceOptions = request.app.state.options
    wanted = stream_filter(principal, types, participant, pool)
    sub = runtime.bus.subscribe(wanted, asyncio.get_running_loop(), options.stream_queue)
    first = None
    if "stats" in wanted.types and runtime.stats_builder is not None:
        first = await stats_snapshot(runtime)
    return StreamingResponse(
        sse_frames(request, runtime, sub, first, max_events, options.keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
