"""protocol owns the limits a connection meets before the app sees a request: how long a client
may take to send a request's line and headers, and how many bytes they may take.

uvicorn bounds an idle keep-alive connection (``timeout_keep_alive``) but not a client that
connects and never sends, or sends its headers a byte at a time (slowloris): each would hold a
connection and its buffers for ever. :func:`guarded_protocol` makes uvicorn's httptools protocol
with a header timer, armed when a connection opens and when a request begins and disarmed when
its headers are complete, and a cap on the bytes received before they are. A client over either
limit gets a 408 or 431 problem and the connection is closed; the server goes on serving the
others. (Body limits are the app's: :mod:`clearlane.adapters.http.guard`.)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from clearlane.adapters.http.problems import PROBLEM_TYPE, ServiceCode

_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}


def _refusal(status: int, code: ServiceCode, detail: str) -> bytes:
    """A whole problem+json response, written by the protocol itself (no app runs)."""
    body = json.dumps(
        {
            "type": PROBLEM_TYPE + code.slug,
            "title": _REASONS[status],
            "status": status,
            "detail": detail,
            "code": int(code),
            "error": code.slug,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout and a header size cap."""

    header_timeout_s = 10.0
    max_header_bytes = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        # True from the end of a message (or the connection's start) to the end of the next
        # message's headers: the bytes received then are request line and headers, not a body.
        self._awaiting_headers = True
        self._tail = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Between requests or inside a request's headers, the bytes up to the blank line that
        # ends the headers count against the cap — checked before the parser buffers them.
        if self._awaiting_headers:
            # The blank line may straddle two chunks: look for it from the last chunk's tail.
            end = (self._tail + data).find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else max(0, end - len(self._tail))
            if self._header_bytes > self.max_header_bytes:
                detail = f"request line and headers longer than {self.max_header_bytes} bytes"
                self._refuse(_refusal(431, ServiceCode.TOO_LARGE, detail))
                return
            self._tail = (self._tail + data)[-3:]
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm(reset=False)  # this chunk's header bytes are counted already

    def on_headers_complete(self) -> None:
        self._disarm()
        self._awaiting_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = 0
        self._tail = b""
        super().on_message_complete()

    def _arm(self, reset: bool = True) -> None:
        self._disarm()
        if reset:
            self._header_bytes = 0
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        detail = f"the request's headers were not received within {self.header_timeout_s:g} s"
        self._refuse(_refusal(408, ServiceCode.REQUEST_TIMEOUT, detail))

    def _refuse(self, response: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()


def guarded_protocol(header_timeout_s: float, max_header_bytes: int) -> type[GuardedProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    return type(
        "ClearlaneHttpProtocol",
        (GuardedProtocol,),
        {"header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes},
    )
