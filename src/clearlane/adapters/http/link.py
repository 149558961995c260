"""link owns the channel between ``clearlane serve`` and its gateway processes, and the main
process's side of it.

A gateway (:mod:`clearlane.adapters.http.gateway`) is an HTTP front process: it accepts
connections on the gateway port, and for each request either decodes a trade batch itself or
hands the request over whole. One Unix-socket connection per gateway carries both, multiplexed
by stream id, in frames of ``length (u32) | kind (u8) | stream (u32) | payload``:

gateway → main
  ``H`` the gateway's process id, once, first (the service waits for every gateway's).
  ``T`` a decoded trade batch: the request's headers and client (JSON) and the rows as an Arrow
  IPC stream of ``intake.rows.DECODED_SCHEMA``. Answered by the batch route's own function from
  the roles on (:func:`clearlane.adapters.http.routes.trades.decoded_response`), under the app's
  exception handlers (``fastpath.respond``).
  ``Q`` any other request: method, path, query, headers, client (JSON) and its whole body (the
  gateway bounds it as the app would). Run through the main app's full ASGI stack, middlewares
  and all, as if it had arrived on the main port.
  ``X`` the client of stream ``n`` went away (an event stream ends).
main → gateway
  ``R`` a whole response: status and headers (JSON), then the body.
  ``C`` a trade batch's receipts as columns (``node.receipts.RECEIPT_SCHEMA``, an Arrow IPC
  record batch): every row was applied now, and the gateway renders the response
  (``routes.trades.render_receipts``, the bytes the service would have sent).
  ``S`` a response's start, ``B`` a chunk of its body, ``E`` its end (a streamed response).

So the node stays the only door (DESIGN.md): a gateway holds no state, authorizes nothing and
applies nothing; it takes the JSON parsing and column building of the hot route — about half the
service's interpreter time at 40,000 trades/s (docs/PERFORMANCE.md) — off the engine's process.
:class:`Gateways` runs the link's listener and the gateway processes in the app's lifespan, and
starts a gateway again if one exits while the service runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message

from clearlane.adapters.http.fastpath import respond
from clearlane.adapters.http.problems import REQUEST_ID
from clearlane.adapters.http.routes import trades
from clearlane.node.intake.rows import DECODED_SCHEMA

log = logging.getLogger("clearlane.gateway")

HEAD = struct.Struct("!IBI")  # payload length, kind, stream id
META = struct.Struct("!I")  # the length of a payload's JSON part
HELLO, TRADES, REQUEST, CANCEL = ord("H"), ord("T"), ord("Q"), ord("X")
RESPONSE, COLUMNS, START, BODY, END = ord("R"), ord("C"), ord("S"), ord("B"), ord("E")
MAX_FRAME = 1 << 30  # a frame's payload; the bodies in it are bounded far below (guard.BodyGuard)
TRADES_PATH = "/v1/trades/batch"


class LinkError(RuntimeError):
    """A frame the other side should not have sent (a bug, not a client's doing)."""


def frame(kind: int, stream: int, *parts: bytes) -> list[bytes]:
    """One frame as the buffers to write (``writelines``: one copy into the transport)."""
    return [HEAD.pack(sum(map(len, parts)), kind, stream), *parts]


def with_meta(meta: dict[str, Any], body: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """A payload of a JSON part and a binary rest."""
    head = orjson.dumps(meta)
    return META.pack(len(head)), head, body


def split_meta(payload: bytes) -> tuple[dict[str, Any], memoryview]:
    (n,) = META.unpack_from(payload)
    view = memoryview(payload)
    return orjson.loads(view[META.size : META.size + n]), view[META.size + n :]


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """The next frame (kind, stream, payload); ``IncompleteReadError`` at the end of the link."""
    length, kind, stream = HEAD.unpack(await reader.readexactly(HEAD.size))
    if length > MAX_FRAME:
        raise LinkError(f"a link frame of {length} bytes")
    return kind, stream, await reader.readexactly(length)


def encode_batch(data: pa.RecordBatch) -> bytes:
    """Rows of a schema both ends know, as one Arrow IPC record batch message (no schema)."""
    out: bytes = data.serialize().to_pybytes()
    return out


def decode_batch(data: memoryview | bytes, schema: pa.Schema) -> pa.RecordBatch:
    return pa.ipc.read_record_batch(pa.py_buffer(data), schema)


def headers_out(raw: list[tuple[bytes, bytes]]) -> list[list[str]]:
    return [[k.decode("latin-1"), v.decode("latin-1")] for k, v in raw]


def headers_in(pairs: list[list[str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


def http_scope(meta: dict[str, Any], app: Any = None) -> dict[str, Any]:
    """The ASGI scope of a request a gateway handed over, as uvicorn would have made it (with
    ``app`` as Starlette sets it, for a handler called without the app's stack)."""
    path = meta["path"]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": meta.get("http_version", "1.1"),
        "method": meta["method"],
        "scheme": meta.get("scheme", "http"),
        "path": path,
        "raw_path": meta.get("raw_path", path).encode("latin-1"),
        "query_string": meta.get("query", "").encode("latin-1"),
        "root_path": "",
        "headers": headers_in(meta["headers"]),
        "client": tuple(meta["client"]) if meta.get("client") else None,
        "server": tuple(meta["server"]) if meta.get("server") else None,
        "state": {},
    }
    if app is not None:
        scope["app"] = app
    return scope


class LinkServer:
    """The main process's end: answers the frames of every gateway connected to ``path``."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path
        self._server: asyncio.Server | None = None
        self.counts = {"decoded": 0, "forwarded": 0}
        self._peers: set[int] = set()

    def connected(self, pid: int) -> bool:
        return pid in self._peers

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._connection, path=self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        gone: dict[int, asyncio.Event] = {}
        tasks: set[asyncio.Task[None]] = set()
        pid = None
        try:
            while True:
                kind, stream, payload = await read_frame(reader)
                if kind == HELLO:
                    pid = int(orjson.loads(payload)["pid"])
                    self._peers.add(pid)
                    continue
                if kind == CANCEL:
                    event = gone.get(stream)
                    if event is not None:
                        event.set()
                    continue
                if kind == TRADES:
                    work: Coroutine[Any, Any, None] = self._trades(stream, payload, writer)
                elif kind == REQUEST:
                    gone[stream] = asyncio.Event()
                    work = self._request(stream, payload, writer, gone)
                else:
                    raise LinkError(f"a gateway sent a frame of kind {kind}")
                task = asyncio.create_task(work)
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the gateway stopped
        except LinkError:
            log.exception("gateway link closed")
        finally:
            self._peers.discard(pid or 0)
            for task in tasks:
                task.cancel()
            writer.close()

    async def _trades(self, stream: int, payload: bytes, writer: asyncio.StreamWriter) -> None:
        meta, rest = split_meta(payload)
        token = REQUEST_ID.set(meta.get("request_id"))
        try:
            batch = decode_batch(rest, DECODED_SCHEMA)
            request = Request(http_scope({**meta, "method": "POST", "path": TRADES_PATH}, self.app))
            response: Response = await respond(request, lambda r: trades.decoded_response(r, batch))
        except Exception:  # what the app's error middleware would answer: a 500, logged
            log.exception("a decoded trade batch through a gateway failed")
            response = PlainTextResponse("Internal Server Error", status_code=500)
        finally:
            REQUEST_ID.reset(token)
        self.counts["decoded"] += 1
        if isinstance(response, trades.ReceiptColumns):
            writer.writelines(frame(COLUMNS, stream, encode_batch(response.receipts)))
            return
        body = bytes(response.body)
        out = with_meta({"status": response.status_code, "headers": headers_out(response.raw_headers)}, body)
        writer.writelines(frame(RESPONSE, stream, *out))

    async def _request(
        self, stream: int, payload: bytes, writer: asyncio.StreamWriter, gone: dict[int, asyncio.Event]
    ) -> None:
        meta, body = split_meta(payload)
        left = gone[stream]
        scope = http_scope(meta)  # run through the whole app, which sets its own "app"
        pending: list[Message] = [{"type": "http.request", "body": bytes(body), "more_body": False}]
        state = {"started": False, "ended": False}

        async def receive() -> Message:
            if pending:
                return pending.pop()
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if left.is_set() or state["ended"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
                start = {
                    "status": message["status"],
                    "headers": headers_out(list(message.get("headers", ()))),
                }
                writer.writelines(frame(START, stream, *with_meta(start)))
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if chunk:
                    writer.writelines(frame(BODY, stream, chunk))
                if not message.get("more_body", False):
                    state["ended"] = True
                    writer.writelines(frame(END, stream))
                await writer.drain()

        self.counts["forwarded"] += 1
        try:
            await self.app(scope, receive, send)
        except Exception:  # answered 500 below, as the app's error middleware would
            log.exception("a request through a gateway failed: %s %s", meta.get("method"), meta.get("path"))
        finally:
            if not state["ended"] and not left.is_set() and not writer.is_closing():
                if not state["started"]:
                    writer.writelines(frame(START, stream, *with_meta({"status": 500, "headers": []})))
                writer.writelines(frame(END, stream))
            gone.pop(stream, None)


@dataclass(frozen=True)
class GatewayOptions:
    """``clearlane serve --gateways N --gateway-port P``: N front processes on port P."""

    count: int
    host: str
    port: int
    max_body_bytes: int
    body_timeout_s: float
    max_json_depth: int
    header_timeout_s: float
    max_header_bytes: int
    keep_alive_s: float
    log_level: str = "warning"


class Gateways:
    """The link's listener and the gateway processes, run by the app's lifespan
    (``app.state.gateways``). The gateway port is bound here, before any gateway starts, and
    shared by all of them (the kernel hands each connection to one); a gateway that exits while
    the service runs is started again after a second."""

    RESTART_S = 1.0

    def __init__(self, options: GatewayOptions) -> None:
        self.options = options
        self._dir = tempfile.TemporaryDirectory(prefix="clearlane-link-")
        self.link_path = str(Path(self._dir.name) / "link.sock")
        self._socket: socket.socket | None = None
        self._procs: list[subprocess.Popen[bytes] | None] = []
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self.server: LinkServer | None = None
        self.restarts = 0

    @property
    def port(self) -> int:
        if self._socket is None:
            return self.options.port
        return int(self._socket.getsockname()[1])

    def bind(self) -> None:
        """Bind the gateway port (a port in use fails here, before the service starts)."""
        if self._socket is not None:
            return
        family = socket.AF_INET6 if ":" in self.options.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.options.host, self.options.port))
        sock.listen(2048)
        sock.set_inheritable(True)
        self._socket = sock

    async def start(self, app: ASGIApp) -> None:
        self.bind()
        self.server = LinkServer(app, self.link_path)
        await self.server.start()
        self._procs = [self._spawn() for _ in range(self.options.count)]
        await asyncio.gather(*(self._ready(i) for i in range(len(self._procs))))
        self._watch = asyncio.create_task(self._watch_loop())

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self._socket is None:
            raise LinkError("the gateway port is not bound")
        o = self.options
        fd = self._socket.fileno()
        argv = [
            sys.executable,
            "-m",
            "clearlane.adapters.http.gateway",
            f"--fd={fd}",
            f"--link={self.link_path}",
            f"--max-body-bytes={o.max_body_bytes}",
            f"--body-timeout-s={o.body_timeout_s}",
            f"--max-json-depth={o.max_json_depth}",
            f"--header-timeout-s={o.header_timeout_s}",
            f"--max-header-bytes={o.max_header_bytes}",
            f"--keep-alive-s={o.keep_alive_s}",
            f"--log-level={o.log_level}",
        ]
        return subprocess.Popen(argv, pass_fds=(fd,), stdin=subprocess.DEVNULL)

    async def _ready(self, i: int, timeout_s: float = 60.0) -> None:
        """Wait until gateway ``i`` has connected its link (it then accepts connections)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        proc = self._procs[i]
        while proc is not None and proc.poll() is None and loop.time() < deadline:
            if self.server is not None and self.server.connected(proc.pid):
                return
            await asyncio.sleep(0.02)
        if proc is None or proc.poll() is not None:
            raise LinkError(f"gateway {i} exited at start (code {proc.returncode if proc else None})")
        raise LinkError(f"gateway {i} did not connect within {timeout_s} s")

    async def _watch_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.RESTART_S)
            for i, proc in enumerate(self._procs):
                if self._stopping or proc is None or proc.poll() is None:
                    continue
                log.error(
                    "gateway %d (pid %d) exited with code %s; starting it again", i, proc.pid, proc.returncode
                )
                self.restarts += 1
                self._procs[i] = self._spawn()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the gateways (each finishes its requests through the link), then the link."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
        live = [p for p in self._procs if p is not None and p.poll() is None]
        for proc in live:
            proc.terminate()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while any(p.poll() is None for p in live) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for proc in live:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if self.server is not None:
            await self.server.close()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._dir.cleanup()

    def status(self) -> dict[str, Any]:
        return {
            "count": self.options.count,
            "port": self.port,
            "alive": sum(1 for p in self._procs if p is not None and p.poll() is None),
            "restarts": self.restarts,
            **(self.server.counts if self.server is not None else {}),
        }
