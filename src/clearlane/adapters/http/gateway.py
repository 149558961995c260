"""gateway owns a gateway process of ``clearlane serve --gateways N``: an HTTP front that decodes
trade batches and hands everything else to the service unchanged (the link: link.py).

On ``POST /v1/trades/batch`` (no ``Idempotency-Key``) it parses the body and builds the rows'
columns (``intake.rows.decoded_batch``) — the work that held the service's interpreter for about
half its time at 40,000 trades/s — and sends them, with the request's headers, over the link;
the service authorizes, validates, applies and answers as for the same request on its own port.
A body whose decoding would refuse anything (not JSON, not the usual shape, a wrong JSON type,
``executed_at`` not an integer, too deep to prove cheaply) goes over whole, so every refusal is
the service's own. Every other request goes over whole too, an event stream included (its
chunks come back as they are sent; a client that leaves ends it). The gateway bounds bodies and
headers as the service does (guard.BodyGuard, protocol.guarded_protocol) and gives each request
its id (idempotency.RequestIds), which the service then uses.

A gateway holds no state: it reads nothing but its arguments, and exits when its link closes.
Run by :class:`clearlane.adapters.http.link.Gateways`; not a command of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
from typing import Any

import orjson
import pyarrow as pa
from starlette.types import Message, Receive, Scope, Send

from clearlane.adapters.http.common import _json_media
from clearlane.adapters.http.guard import BodyGuard, EdgeRefusal
from clearlane.adapters.http.handlers import problem_response
from clearlane.adapters.http.idempotency import RequestIds
from clearlane.adapters.http.link import (
    BODY,
    CANCEL,
    COLUMNS,
    END,
    HELLO,
    REQUEST,
    RESPONSE,
    START,
    TRADES,
    TRADES_PATH,
    decode_batch,
    encode_batch,
    frame,
    headers_in,
    headers_out,
    read_frame,
    split_meta,
    with_meta,
)
from clearlane.adapters.http.problems import Problem, ServiceCode
from clearlane.adapters.http.routes.trades import BATCH_LIMIT, batch_depth, render_receipts
from clearlane.node.intake.rows import decoded_batch
from clearlane.node.receipts import RECEIPT_SCHEMA

log = logging.getLogger("clearlane.gateway")

_GONE = -1  # a stream's queue item when the link closed


class LinkClient:
    """The gateway's end of the link: frames out, and each stream's frames to its queue."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ids = itertools.count(1)
        self._streams: dict[int, asyncio.Queue[tuple[int, bytes]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(self.path)
        self._writer.writelines(frame(HELLO, 0, orjson.dumps({"pid": os.getpid()})))
        self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                kind, stream, payload = await read_frame(reader)
                queue = self._streams.get(stream)
                if queue is not None:
                    queue.put_nowait((kind, payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            for queue in self._streams.values():
                queue.put_nowait((_GONE, b""))

    def open(self, kind: int, *parts: bytes) -> tuple[int, asyncio.Queue[tuple[int, bytes]]]:
        """Send a request frame on a new stream; its answer's frames arrive on the queue."""
        if self._writer is None or self.closed.is_set():
            raise ConnectionError("the gateway's link is closed")
        stream = next(self._ids)
        queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._streams[stream] = queue
        self._writer.writelines(frame(kind, stream, *parts))
        return stream, queue

    def cancel(self, stream: int) -> None:
        if self._writer is not None and not self.closed.is_set():
            self._writer.writelines(frame(CANCEL, stream))

    def done(self, stream: int) -> None:
        self._streams.pop(stream, None)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()


def _unavailable() -> Problem:
    return Problem.service(ServiceCode.UNAVAILABLE, 503, "the service behind this gateway is not reachable")


class GatewayCore:
    """The ASGI app behind the gateway's RequestIds and BodyGuard (module docstring)."""

    def __init__(self, link: LinkClient, max_json_depth: int) -> None:
        self.link = link
        self.max_json_depth = max_json_depth
        self.on_link_closed: Any = None
        self._watch: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # the service answers no websockets
            await send({"type": "websocket.close", "code": 1000})
            return
        try:
            body = await _read_body(receive)
        except EdgeRefusal as exc:
            await problem_response(exc.problem, scope.get("path"))(scope, receive, send)
            return
        meta = _meta(scope)
        batch = self._decoded(scope, body)
        try:
            if batch is not None:
                stream, queue = self.link.open(TRADES, *with_meta(meta, encode_batch(batch)))
            else:
                stream, queue = self.link.open(REQUEST, *with_meta(meta, body))
        except ConnectionError:
            await problem_response(_unavailable(), scope.get("path"))(scope, receive, send)
            return
        try:
            if batch is not None:  # one whole answer, soon: no watch for the client leaving
                kind, payload = await queue.get()
                await self._answer(kind, payload, scope, receive, send)
            else:
                await self._relay(stream, queue, receive, send, scope)
        finally:
            self.link.done(stream)

    async def _answer(self, kind: int, payload: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        if kind == COLUMNS:
            await render_receipts(decode_batch(payload, RECEIPT_SCHEMA))(scope, receive, send)
            return
        if kind != RESPONSE:  # the link closed under the request
            await problem_response(_unavailable(), scope.get("path"))(scope, receive, send)
            return
        meta, rest = split_meta(payload)
        await send(_start(meta))
        await send({"type": "http.response.body", "body": bytes(rest)})

    def _decoded(self, scope: Scope, body: bytes) -> pa.RecordBatch | None:
        """The batch's decoded rows, or None to hand the request over whole."""
        if scope["method"] != "POST" or scope["path"] != TRADES_PATH or scope.get("root_path"):
            return None
        media = None
        for key, value in scope["headers"]:
            if key == b"idempotency-key":
                return None  # its first response is kept by the service's middleware
            if key == b"content-type":
                media = value.decode("latin-1")
        if media is not None and not _json_media(media):
            return None
        try:
            data = orjson.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        depth = batch_depth(data, body)
        if depth is None or depth > self.max_json_depth or set(data) != {"trades"}:
            return None
        rows = data["trades"]
        if not 1 <= len(rows) <= BATCH_LIMIT:
            return None
        return decoded_batch(rows)

    async def _relay(
        self, stream: int, queue: asyncio.Queue[tuple[int, bytes]], receive: Receive, send: Send, scope: Scope
    ) -> None:
        watch = asyncio.create_task(_disconnected(receive))
        started = False
        try:
            while True:
                got = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({got, watch}, return_when=asyncio.FIRST_COMPLETED)
                if got not in done:
                    got.cancel()
                    self.link.cancel(stream)  # the client left: the service ends its response
                    return
                kind, payload = got.result()
                if kind == _GONE:  # the link closed: end a started response there, else a 503
                    if started:
                        await send({"type": "http.response.body", "body": b""})
                    else:
                        await problem_response(_unavailable(), scope.get("path"))(scope, receive, send)
                    return
                if kind == START:
                    started = True
                    await send(_start(split_meta(payload)[0]))
                elif kind == BODY:
                    await send({"type": "http.response.body", "body": payload, "more_body": True})
                elif kind == END:
                    await send({"type": "http.response.body", "body": b""})
                    return
        finally:
            watch.cancel()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.link.connect()
                except OSError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self.on_link_closed is not None:
                    self._watch = asyncio.create_task(_after(self.link.closed, self.on_link_closed))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.link.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _start(meta: dict[str, Any]) -> Message:
    """The ``http.response.start`` of a response the service sent over the link."""
    return {"type": "http.response.start", "status": meta["status"], "headers": headers_in(meta["headers"])}


async def _after(event: asyncio.Event, then: Any) -> None:
    await event.wait()
    then()


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _meta(scope: Scope) -> dict[str, Any]:
    state = scope.get("state") or {}
    return {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": (scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
        "query": scope.get("query_string", b"").decode("latin-1"),
        "headers": headers_out(_with_request_id(scope["headers"], state.get("request_id"))),
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
        "http_version": scope.get("http_version", "1.1"),
        "scheme": scope.get("scheme", "http"),
        "request_id": state.get("request_id"),
    }


def _with_request_id(headers: list[tuple[bytes, bytes]], rid: str | None) -> list[tuple[bytes, bytes]]:
    """The headers with the gateway's request id (the service keeps a sane one it is given)."""
    if rid is None:
        return list(headers)
    return [*(h for h in headers if h[0] != b"x-request-id"), (b"x-request-id", rid.encode("latin-1"))]


def build(link_path: str, *, max_body_bytes: int, body_timeout_s: float, max_json_depth: int) -> Any:
    core = GatewayCore(LinkClient(link_path), max_json_depth)
    app = RequestIds(BodyGuard(core, max_bytes=max_body_bytes, timeout_s=body_timeout_s))
    return app, core


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from clearlane.adapters.http.protocol import guarded_protocol

    parser = argparse.ArgumentParser(prog="python -m clearlane.adapters.http.gateway")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--link", required=True)
    parser.add_argument("--max-body-bytes", type=int, required=True)
    parser.add_argument("--body-timeout-s", type=float, required=True)
    parser.add_argument("--max-json-depth", type=int, required=True)
    parser.add_argument("--header-timeout-s", type=float, required=True)
    parser.add_argument("--max-header-bytes", type=int, required=True)
    parser.add_argument("--keep-alive-s", type=float, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s gateway %(process)d %(levelname)s %(message)s"
    )
    app, core = build(
        args.link,
        max_body_bytes=args.max_body_bytes,
        body_timeout_s=args.body_timeout_s,
        max_json_depth=args.max_json_depth,
    )
    config = uvicorn.Config(
        app,
        fd=args.fd,
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        http=guarded_protocol(args.header_timeout_s, args.max_header_bytes),
        timeout_keep_alive=max(1, round(args.keep_alive_s)),
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    def link_closed() -> None:
        log.warning("the service closed the link: stopping")
        server.should_exit = True

    core.on_link_closed = link_closed
    server.run()


if __name__ == "__main__":
    main()
