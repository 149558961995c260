"""Our own fuzz of the service's edge, beside the schemathesis one (test_service_fuzz.py): what
a schema cannot generate — malformed JSON, deep nesting, huge numbers, unicode digits, invalid
UTF-8, oversize bodies, abusive headers, nasty ids on every route that takes one, slow clients —
sent to the real server (uvicorn with the ``serve`` protocol and limits, in a thread).

Every case must answer below 500, leave the runtime alive (``/healthz``) and, when refused,
change nothing (state root, applied sequence, trade and id counts). Deterministic: a fixed corpus
plus hypothesis with ``derandomize``; a few seconds in all.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearlane.adapters.http.app import ServiceOptions
from clearlane.adapters.http.server import ServerLimits, build, server_config
from tests.service_support import EXAMPLE, trade_row, wait_for

MAX_BODY = 64 * 1024
LIMITS = ServerLimits(header_timeout_s=0.5, max_header_bytes=16 * 1024, graceful_shutdown_s=1)
OPTIONS = ServiceOptions(max_body_bytes=MAX_BODY, body_timeout_s=0.5, keepalive_s=0.1)


class Live:
    """The app served by uvicorn on a free port, in a thread."""

    def __init__(self, db: Path) -> None:
        import uvicorn

        self.app = build(db, EXAMPLE, clock="accelerated", speed=50, service_options=OPTIONS)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.server = uvicorn.Server(server_config(self.app, "127.0.0.1", self.port, LIMITS))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=60)
        self.token = self.app.state.keys.create("operator")[1]
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def state(self) -> tuple[Any, ...]:
        rt = self.app.state.runtime
        with rt.lock:
            engine = rt.node.engine
            return (
                rt.rm.applied_seq,
                engine.state_root(),
                rt.rm.records.trades_received,
                len(engine.seen_flow_ids),
                len(self.app.state.webhooks.endpoints()),
            )

    def alive(self) -> bool:
        health = self.client.get("/healthz").json()
        rt = self.app.state.runtime
        assert health["status"] == "ok", (health, rt.failed)
        return True

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = Live(tmp_path_factory.mktemp("edge") / "edge.db")
    try:
        # Something to address: trades, a batch through to finality, a payment.
        r = server.client.post("/v1/trades/batch", json={"trades": [trade_row(i) for i in range(3)]})
        assert r.status_code == 200, r.text
        wait_for(lambda: server.client.get("/v1/trades/T2").json().get("state") == "final")
        settled = server.state()
        # Settled: the loop has nothing due, so the state holds still between requests.
        wait_for(lambda: server.state() == settled and time.sleep(0.3) is None and server.state() == settled)
        yield server
    finally:
        server.close()


def _refused(live: Live, method: str, url: str, **kw: Any) -> httpx.Response:
    """Send one request; it must be a 4xx that changed nothing, the runtime still up."""
    before = live.state()
    r = live.client.request(method, url, **kw)
    assert 400 <= r.status_code < 500, (method, url[:80], r.status_code, r.text[:300])
    if r.headers.get("content-type", "").startswith("application/"):
        assert r.json()["status"] == r.status_code
    assert live.state() == before, (method, url[:80], "changed state")
    return r


JSON_ROUTES = (
    "/v1/trades",
    "/v1/trades/batch",
    "/v1/payments",
    "/v1/payments/batch",
    "/v1/collateral/deposits",
    "/v1/collateral/withdrawals",
    "/v1/webhooks",
)
NASTY_BODIES = [
    b"",
    b"{",
    b'{"trade_id": }',
    b"[1, 2",
    b"nul",
    b"\x00",
    b"{'trade_id': 'T1'}",
    b'{"quantity": NaN}',
    b'{"quantity": Infinity}',
    b'{"quantity": 1e999}',
    b'{"quantity": -1e999}',
    b'{"quantity": ' + b"9" * 5000 + b"}",
    b'{"trades": [' + b"1e400," * 50 + b"1]}",
    b"[" * 100_000,
    b"[" * 2_000 + b"]" * 2_000,
    b'{"x":' * 40 + b"1" + b"}" * 40,
    b'{"trades": [' + b"[" * 40 + b"]" * 40 + b"]}",
    b'{"trade_id": "\xff\xfe"}',
    b'{"trade_id": "\xc0\xaf"}',
    b'{"trade_id": "\xed\xa0\x80"}',
    b'{"trade_id": "\\ud800"}',
    b"\xef\xbb\xbf{}",
    b'{"trades": {"0": {}}}',
    b'{"trades": []}',
    b'{"trades": null}',
    b'{"payments": [1, "x", null]}',
    b'{"url": "http://[::1", "events": ["batch.cleared"]}',
    b'{"url": "https://127.0.0.1/x", "events": ["batch.cleared"]}',
    b'{"url": "https://[::ffff:10.0.0.1]/x", "events": ["batch.cleared"]}',
    b'{"url": "https://169.254.169.254/latest/meta-data", "events": ["batch.cleared"]}',
    b'{"url": "https://0.0.0.0/x", "events": ["batch.cleared"]}',
    b'{"url": "https://224.0.0.1/x", "events": ["batch.cleared"]}',
    b'{"url": "http://93.184.215.14/x", "events": ["batch.cleared"]}',
    b'{"url": "https://user:pw@93.184.215.14/x", "events": ["batch.cleared"]}',
    b'{"url": "https://93.184.215.14:99999/x", "events": ["batch.cleared"]}',
]


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_malformed_bodies_are_4xx_and_change_nothing(live: Live, route: str) -> None:
    for body in NASTY_BODIES:
        _refused(live, "POST", route, content=body, headers={"content-type": "application/json"})
    assert live.alive()


def _foreign_trade(**over: Any) -> dict[str, Any]:
    """A trade the edge must refuse whatever else is in it (an unknown buyer), so that every
    fuzzed field goes through every column check and nothing may be applied."""
    return {**trade_row("FUZZ-1", buyer="NOBODY-FUZZ"), **over}


UNICODE_DIGITS = ["١٢٣", "٠.٥", "²", "１２", "65000.１", "۱", "߁", "𝟏", "1\u200b", "-1", "+1", " 1", "1 "]


def test_unicode_digits_are_not_numbers(live: Live) -> None:
    for text in UNICODE_DIGITS:
        for field in ("quantity", "price"):
            r = _refused(live, "POST", "/v1/trades", json=trade_row("UNI-1", **{field: text}))
            assert r.status_code == 422 and r.json()["field"] == field, (field, text, r.text)
        r = _refused(
            live,
            "POST",
            "/v1/collateral/deposits",
            json={"deposit_id": "UNI-D", "participant": "MM-ALPHA", "asset": "USD", "amount": text},
        )
        assert r.json()["field"] == "amount"


def test_oversize_bodies_are_413_declared_or_streamed(live: Live) -> None:
    big = orjson.dumps({"trades": [_foreign_trade() for _ in range(MAX_BODY // 100)]})
    assert len(big) > MAX_BODY
    for route in JSON_ROUTES:
        r = _refused(live, "POST", route, content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the guard counts as it reads
            for i in range(0, len(big), 8192):
                yield big[i : i + 8192]

        r = _refused(live, "POST", route, content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
    assert live.alive()


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "\x01garbage"},
        {"x-api-key": "x" * 8000},
        {"authorization": ("Bearer " + "é" * 100).encode()},  # not ASCII: sent as raw bytes
        {"authorization": "Basic Zm9vOmJhcg=="},
        {"x-api-key": "cl__"},
        {"x-api-key": "cl_" + "0" * 40 + "_x"},
    ],
    ids=lambda h: next(iter(h)),
)
def test_abusive_headers_are_4xx(live: Live, headers: dict[str, Any]) -> None:
    body = orjson.dumps(_foreign_trade())
    merged = {"content-type": "application/json", **headers}
    if "authorization" in headers or "x-api-key" in headers:
        # The operator key is a client default: send these without it.
        with httpx.Client(base_url=str(live.client.base_url), timeout=10) as bare:
            before = live.state()
            r = bare.post("/v1/trades", content=body, headers=merged)
            assert r.status_code == 401 and live.state() == before
        return
    _refused(live, "POST", "/v1/trades", content=body, headers=merged)
    assert live.alive()


def _raw(live: Live, request: bytes, *, pause_s: float = 0.0, rest: bytes = b"") -> bytes:
    """Send raw bytes (optionally in two parts with a pause) and read the answer until close."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(request)
        if pause_s:
            time.sleep(pause_s)
            with contextlib.suppress(OSError):  # the server closed first: that is the point
                s.sendall(rest)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
            if b"connection: close" in out.lower() and b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                length = [
                    int(v)
                    for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                    if k.strip().lower() == b"content-length"
                ]
                if length and len(body) >= length[0]:
                    break
        return out


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def test_raw_header_abuse(live: Live) -> None:
    auth = f"Authorization: Bearer {live.token}\r\n".encode()
    body = orjson.dumps(_foreign_trade())
    cases = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 32_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(3000)) + b"\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/trades HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Length: 5\r\nContent-Length: 7\r\n\r\n"
        + body,
        b"POST /v1/trades HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"POST /v1/trades HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /v1/trades HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: abc\r\n\r\n" + body,
        b"POST /v1/trades HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: -1\r\n\r\n" + body,
        b"POST /v1/trades HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 99999999999999999999\r\n\r\n",
        b"NOTAMETHOD / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ]
    for request in cases:
        before = live.state()
        answer = _raw(live, request)
        status = _status(answer)
        assert status == 0 or 400 <= status < 500, (request[:60], answer[:200])
        assert live.state() == before
    assert live.alive()


def test_headers_end_straddling_chunks_is_not_taken_for_more_headers(live: Live) -> None:
    """The blank line ending the headers split across two reads, a body larger than the header
    cap in the second: the body is a body (422 for its unknown buyer), not a 431."""
    body = orjson.dumps({"trades": [_foreign_trade() for _ in range(100)]})
    assert len(body) > LIMITS.max_header_bytes
    head = (
        f"POST /v1/trades/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {live.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    ).encode()
    before = live.state()
    answer = _raw(live, head, pause_s=0.2, rest=b"\r\n" + body)
    assert _status(answer) == 422 and b"unknown_participant" in answer, answer[:300]
    assert live.state() == before


def test_slow_clients_are_cut_off_and_others_served(live: Live) -> None:
    """Headers sent slowly (slowloris) get a 408 and the connection closed after the header
    timeout; so does a body that stalls; meanwhile the server answers everyone else."""
    results: dict[str, bytes] = {}

    def slow_headers() -> None:
        results["headers"] = _raw(
            live, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ", pause_s=1.5, rest=b"1\r\n\r\n"
        )

    def silent() -> None:  # connects and sends nothing at all
        results["silent"] = _raw(live, b"", pause_s=1.5, rest=b"")

    def slow_body() -> None:
        head = f"POST /v1/trades HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {live.token}\r\n"
        head += "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        results["body"] = _raw(live, head.encode() + b'{"trade_id"', pause_s=1.5, rest=b"x" * 89)

    threads = [threading.Thread(target=f) for f in (slow_headers, silent, slow_body)]
    before = live.state()
    for t in threads:
        t.start()
    time.sleep(0.1)
    assert live.alive()  # served while the slow ones hang
    for t in threads:
        t.join(30)
    assert _status(results["headers"]) == 408 and b"request_timeout" in results["headers"]
    assert _status(results["silent"]) == 408
    assert _status(results["body"]) == 408 and b"request_timeout" in results["body"]
    assert live.state() == before and live.alive()


NASTY_IDS = [
    "%C2%B2",
    "fast-0000000%C2%B2",
    "fast-%EF%BC%91",
    "fast-99999999999999999999999999",
    "fast--1",
    "%FF%FE",
    "%00",
    "%E2%80%AE",
    "%F0%9F%92%A5",
    "..",
    "%2E%2E",
    "T%2F1",
    "a" * 5000,
    "%25",
    "L1",
]


def _id_routes(live: Live) -> list[str]:
    spec = live.client.get("/openapi.json").json()
    return sorted(
        p for p, ops in spec["paths"].items() if "{" in p and "get" in ops and not p.endswith("/stream")
    )


def test_nasty_ids_on_every_route_that_takes_one(live: Live) -> None:
    routes = [*_id_routes(live), "/ui/static/{name}"]
    assert "/v1/batches/{batch_id}" in routes and "/v1/trades/{trade_id}" in routes
    for route in routes:
        for nasty in NASTY_IDS:
            path = route.split("{", 1)[0] + nasty + route.split("}", 1)[1]
            before = live.state()
            r = live.client.get(path)
            assert r.status_code < 500, (path[:80], r.status_code, r.text[:200])
            assert live.state() == before
    for param in ("batch_id", "participant", "pool", "cursor", "state", "lane", "trade_id"):
        for route in ("/v1/trades", "/v1/net-instructions", "/v1/batches", "/v1/positions", "/v1/payments"):
            for nasty in NASTY_IDS:
                r = live.client.get(f"{route}?{param}={nasty}")
                assert r.status_code < 500, (route, param, nasty[:40], r.status_code, r.text[:200])
    assert live.alive()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(UNICODE_DIGITS),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
TRADE_FIELDS = sorted(trade_row(0))


@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(field=st.sampled_from(TRADE_FIELDS), value=json_values, bulk=st.booleans())
def test_any_json_value_in_any_field_is_refused_cleanly(
    live: Live, field: str, value: Any, bulk: bool
) -> None:
    row = _foreign_trade(**{field: value})
    if field == "buyer":
        row["seller"] = "NOBODY-FUZZ"  # still nobody's trade
    body = {"trades": [row, _foreign_trade()]} if bulk else row
    _refused(live, "POST", "/v1/trades/batch" if bulk else "/v1/trades", json=body)
