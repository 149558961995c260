"""Escrow actions from the bus: ``clearlane serve --nats URL --nats-escrow-actions`` answers
NATS requests on ``clearlane.escrow.actions`` (queue group ``clearlane-serve``: one serve
answers each request).

A request's body is the JSON object ``POST /v1/escrows/{id}/actions`` takes, with
``escrow_id`` and ``actor`` in it (the bus has no API key: whoever may publish on the subject
acts for any party, as whoever may publish trades on ``clearlane.trades.*`` — restrict it with
NATS permissions). The reply is JSON:

- the receipt exactly as the API's 201/200 body (``"status": "accepted"`` or ``"duplicate"``:
  ``action_id`` is the idempotency key, a retry is answered with its first outcome);
- ``{"status": "refused", "http_status": 409|422, "errors": [{"code", "error", "field",
  "reason", ...}]}`` — the same stable codes as the API (7xx escrow codes, ``id_conflict``,
  a field named for a body that is not an action);
- ``{"status": "unavailable", "reason"}`` while the runtime is stopped or its queue is full.

Core request/reply, not a JetStream consumer: an action published while no serve listens gets
no reply (the client times out and retries with the same ``action_id``), never a silent loss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

import orjson

from clearlane.core.errors import Unavailable
from clearlane.core.model.codes import RejectCode
from clearlane.node.runtime import SubmissionRefused

ESCROW_ACTIONS_SUBJECT = "clearlane.escrow.actions"
QUEUE_GROUP = "clearlane-serve"

Submit = Callable[[str, list[dict[str, Any]]], "Future[list[dict[str, Any]]]"]


def _bad_json(reason: str) -> dict[str, Any]:
    code = RejectCode.BAD_JSON
    error = {"index": 0, "code": int(code), "error": code.slug, "field": "-", "reason": reason}
    return {"status": "refused", "http_status": 422, "errors": [error]}


async def answer(submit: Submit, data: bytes) -> dict[str, Any]:
    """One request body → its reply (see the module docstring); never raises for bad input."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _bad_json(f"not JSON: {exc}")
    if not isinstance(body, dict):
        return _bad_json("body must be a JSON object")
    try:
        (receipt,) = await asyncio.wrap_future(submit("escrow", [body]))
    except SubmissionRefused as refused:
        return {
            "status": "refused",
            "http_status": refused.status,
            "errors": [e.to_dict() for e in refused.errors],
        }
    except Unavailable as exc:
        return {"status": "unavailable", "reason": str(exc)}
    return dict(receipt)


def handler(submit: Submit) -> Callable[[Any], Awaitable[None]]:
    """The subscription callback: answer, and reply when the request asked for one."""

    async def on_message(msg: Any) -> None:
        reply = await answer(submit, msg.data)
        if msg.reply:
            await msg.respond(orjson.dumps(reply))

    return on_message
