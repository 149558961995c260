"""idempotency owns two things every request meets at the edge: its **request id** and, for a
POST or PATCH that carries one, its **Idempotency-Key**.

Request id (:class:`RequestIds`, the outermost middleware): every response carries
``X-Request-Id`` — the client's own if it sent a sane one (1-128 characters of
``A-Z a-z 0-9 . _ : - @ / + =``), else a generated ``req_<24 hex>``. The id is in every problem
body (``request_id``) and in the log lines written while the request runs
(:class:`RequestIdLogFilter`, installed by ``clearlane serve``), and one access line per request
goes to the ``clearlane.http.access`` logger.

Idempotency-Key (:class:`IdempotencyKeys`): a client that cannot tell whether a POST was applied
(a timeout, a dropped connection) sends it again with the same key. The first **2xx** response to
a key is kept for :data:`TTL_S` (24 h; ``ServiceOptions.idempotency_ttl_s``) in the service's
database (``idempotency_keys``, migration 0011: a restart keeps them) and:

* the same key with the same request (method, path, query and body bytes) → that response again,
  status, headers and body byte for byte, with ``Idempotent-Replayed: true``;
* the same key with a different request → 422, code 614 ``idempotency_key_reused``; nothing runs;
* the same key while the first request still runs → 409, code 615 ``idempotency_key_in_flight``,
  ``Retry-After: 1``.

Keys are scoped to the credential that sent them (a digest of the API key: two clients cannot
see each other's responses). A response that is not 2xx is not kept: the request had no effect,
and the client may fix it and send it again under the same key. Routes with a natural id (a
trade's ``trade_id``, an escrow action's ``action_id``) are idempotent without it; the header
matters where there is none (``POST /v1/webhooks``, secret rotation, test pings, redelivery).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import secrets
import threading
import time
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearlane.adapters.http.guard import EdgeRefusal
from clearlane.adapters.http.problems import REQUEST_ID, Problem, ServiceCode, bad_parameter

# Request ids correlate logs; they are not secrets. A generator seeded once from the OS, not
# os.urandom per request: that system call drops the GIL, and under load the HTTP thread then
# waits for the clearing loop to hand it back (seen in py-spy at 20,000 trades/s).
_IDS = random.Random(secrets.randbits(128))
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_SANE_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces
TTL_S = 24 * 3600
METHODS = frozenset(("POST", "PATCH"))
_KEPT_HEADERS_SKIP = frozenset((b"content-length", b"x-request-id", b"date", b"server"))
access_log = logging.getLogger("clearlane.http.access")


def request_id() -> str | None:
    """The id of the request being answered (None outside one)."""
    return REQUEST_ID.get()


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` (or ``-``) to every record, for a format with ``%(request_id)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestIds:
    """ASGI middleware: a request id for every HTTP request, on its response and in its logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, b"x-request-id")
        rid = (
            offered
            if offered is not None and _SANE_ID.fullmatch(offered)
            else f"req_{_IDS.getrandbits(96):024x}"
        )
        token = REQUEST_ID.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "%s %s %s -> %d in %.1f ms",
                rid,
                scope.get("method"),
                scope.get("path"),
                status,
                (time.perf_counter() - started) * 1000,
            )
            REQUEST_ID.reset(token)


class ResponseStore(Protocol):
    """Where first responses are kept (SQL: adapters/sql/idempotency.py; tests: in memory)."""

    def get(self, scope: str, key: str, now_ms: int) -> dict[str, Any] | None: ...

    def put(self, row: dict[str, Any]) -> bool: ...


class MemoryKeyStore:
    """First responses in memory (a store without SQL: tests, the in-memory demo)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, scope: str, key: str, now_ms: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._rows.get((scope, key))
        return row if row is not None and row["expires_ms"] > now_ms else None

    def put(self, row: dict[str, Any]) -> bool:
        with self._lock:
            now = row["created_ms"]
            self._rows = {k: v for k, v in self._rows.items() if v["expires_ms"] > now}
            if (row["scope"], row["key"]) in self._rows:
                return False
            self._rows[(row["scope"], row["key"])] = row
        return True


def _scope_of(scope: Scope) -> str:
    """Whose key this is: a digest of the credential the request presents."""
    credential = _header(scope, b"authorization") or _header(scope, b"x-api-key") or ""
    return hashlib.sha256(credential.encode()).hexdigest()[:32]


def _fingerprint(scope: Scope, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (scope["method"], scope["path"], bytes(scope.get("query_string", b"")).decode("latin-1")):
        h.update(part.encode() + b"\0")
    h.update(body)
    return h.hexdigest()


async def _answer(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
    from clearlane.adapters.http.handlers import problem_response

    await problem_response(problem, scope.get("path"))(scope, receive, send)


def reused(key: str) -> Problem:
    return Problem.service(
        ServiceCode.IDEMPOTENCY_KEY_REUSED,
        422,
        f"Idempotency-Key {key!r} was used for a different request",
        field="Idempotency-Key",
        reason="used for a different request",
    )


def in_flight(key: str) -> Problem:
    return Problem.service(
        ServiceCode.IDEMPOTENCY_KEY_IN_FLIGHT,
        409,
        f"a request with Idempotency-Key {key!r} is still running",
        field="Idempotency-Key",
        reason="still running",
        headers={"Retry-After": "1"},
    )


class IdempotencyKeys:
    """ASGI middleware: the first 2xx response to an ``Idempotency-Key``, replayed (module doc)."""

    def __init__(self, app: ASGIApp, *, store: ResponseStore, ttl_s: int = TTL_S) -> None:
        self.app = app
        self.store = store
        self.ttl_s = ttl_s
        self._running: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        if not _SANE_KEY.fullmatch(key):
            await _answer(
                bad_parameter("Idempotency-Key", "1-255 printable ASCII characters"), scope, receive, send
            )
            return
        try:
            body = await _read_body(receive)
        except EdgeRefusal as exc:  # too large or too slow: answered as the guard would
            await _answer(exc.problem, scope, receive, send)
            return
        owner, fingerprint = _scope_of(scope), _fingerprint(scope, body)
        kept = self.store.get(owner, key, int(time.time() * 1000))
        if kept is not None:
            if kept["fingerprint"] != fingerprint:
                await _answer(reused(key), scope, receive, send)
            else:
                await _replay(kept, send)
            return
        with self._lock:
            busy = (owner, key) in self._running
            self._running.add((owner, key))
        if busy:
            await _answer(in_flight(key), scope, receive, send)
            return
        try:
            await self._first(scope, receive, body, send, (owner, key, fingerprint))
        finally:
            with self._lock:
                self._running.discard((owner, key))

    async def _first(
        self, scope: Scope, receive: Receive, body: bytes, send: Send, ident: tuple[str, str, str]
    ) -> None:
        """Run the request once, passing its response on and keeping a copy of a 2xx one."""
        owner, key, fingerprint = ident
        start: dict[str, Any] = {}
        chunks: list[bytes] = []
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if sent:  # after the body: the client's own messages (a disconnect)
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
            await send(message)

        await self.app(scope, replay_body, capture)
        status = int(start.get("status", 500))
        if not 200 <= status < 300:
            return
        headers = [
            [bytes(k).decode("latin-1"), bytes(v).decode("latin-1")]
            for k, v in start.get("headers", ())
            if bytes(k).lower() not in _KEPT_HEADERS_SKIP
        ]
        now = int(time.time() * 1000)
        self.store.put(
            {
                "scope": owner,
                "key": key,
                "fingerprint": fingerprint,
                "status": status,
                "headers": json.dumps(headers),
                "body": b"".join(chunks),
                "created_ms": now,
                "expires_ms": now + self.ttl_s * 1000,
            }
        )


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _replay(kept: dict[str, Any], send: Send) -> None:
    body = bytes(kept["body"])
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in json.loads(kept["headers"])]
    headers += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    await send({"type": "http.response.start", "status": int(kept["status"]), "headers": headers})
    await send({"type": "http.response.body", "body": body})
