"""``clearlane serve --gateways``: the gateway port is the same API as the main port.

A real ``clearlane serve --gateways 1`` in a subprocess. Every request below is sent to both
ports and must get the same answer (status, body, the headers that matter): trade batches the
gateway decodes (receipts rendered from the step's columns, engine refusals included), batches
it hands over whole (any refusal, ISO timestamps, Idempotency-Key), duplicates and conflicts,
reads with ETags, and the live stream. Then a gateway killed under the service is started
again, and a stop leaves no gateway behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from clearlane.adapters.embedded import open_node
from tests.service_support import CLI, EXAMPLE, api_key, free_ports, healthy, trade_row, wait_for

AT = int(datetime.fromisoformat("2026-11-20T14:03:07.250+00:00").timestamp() * 1000)


class Served:
    def __init__(self, db: Path) -> None:
        self.port, self.gateway_port = free_ports(2)
        self.main = f"http://127.0.0.1:{self.port}"
        self.gateway = f"http://127.0.0.1:{self.gateway_port}"
        self.proc = subprocess.Popen(
            [
                CLI,
                "serve",
                "--db",
                str(db),
                "--port",
                str(self.port),
                "--gateways",
                "1",
                "--gateway-port",
                str(self.gateway_port),
                "--clock",
                "accelerated",
                "--speed",
                "50",
                "--no-webhooks",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        # The gateways start in the service's lifespan, before its own port listens: wait for both.
        wait_for(
            lambda: healthy(self.proc, self.gateway) and healthy(self.proc, self.main), timeout=90, every=0.1
        )

    def gateways(self) -> list[psutil.Process]:
        return [
            p
            for p in psutil.Process(self.proc.pid).children(recursive=True)
            if "clearlane.adapters.http.gateway" in " ".join(p.cmdline())
        ]

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        return err.decode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, dict[str, str]]]:
    where = tmp_path_factory.mktemp("gateway")
    db = where / "served.db"
    config = where / "reject.toml"  # a trade past its participants' liquidity is refused, not sent to L1
    config.write_text(
        EXAMPLE.read_text().replace('liquidity_breach = "route_l1"', 'liquidity_breach = "reject"')
    )
    open_node(db, config).close()
    keys = {
        "operator": api_key(db, "--role", "operator"),
        "participant": api_key(db, "--role", "participant", "--participant", "RTL-0001"),
        "auditor": api_key(db, "--role", "auditor"),
    }
    server = Served(db)
    try:
        yield server, keys
    finally:
        if server.proc.poll() is None:
            server.stop()


def _both(
    server: Served, method: str, path: str, key: str | None, *, tag: bool = False, **kw: Any
) -> tuple[httpx.Response, httpx.Response]:
    """The same request to the main port and to the gateway port. With ``tag`` the body's
    trade ids get a per-port suffix (``{p}`` in them), so both are new."""
    out = []
    for base, suffix in ((server.main, "m"), (server.gateway, "g")):
        args = dict(kw)
        if tag and "content" in args:
            args["content"] = args["content"].replace(b"{p}", suffix.encode())
        headers = {**args.pop("headers", {}), **({"Authorization": f"Bearer {key}"} if key else {})}
        out.append(httpx.request(method, f"{base}{path}", headers=headers, timeout=30, **args))
    return out[0], out[1]


def _same_problem(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.headers["content-type"] == b.headers["content-type"]
    ja, jb = _unported(a.text), _unported(b.text)
    assert ja.pop("request_id") == a.headers["x-request-id"]
    assert jb.pop("request_id") == b.headers["x-request-id"]
    assert ja == jb
    assert b.headers.get_list("x-request-id") == [b.headers["x-request-id"]]  # one id, the gateway's


def _unported(text: str) -> Any:
    """A body with the per-port id suffixes (``_both``'s ``tag``) and the clock's readings made
    equal."""
    text = re.sub(r"engine clock \([0-9T:.Z-]+\)", "engine clock (now)", text)
    return json.loads(re.sub(r"-[mg]\b", "-P", text))


def _rows(n: int, *, start: int = 0, **over: Any) -> list[dict[str, Any]]:
    return [trade_row(f"G{start + i}-{{p}}", executed_at=AT + i, **over) for i in range(n)]


def _body(rows: list[Any], **extra: Any) -> bytes:
    return json.dumps({"trades": rows, **extra}).encode()


def _normal(receipts: dict[str, Any]) -> dict[str, Any]:
    """A bulk receipt without what differs between two fresh ids (the ids, batch and time)."""
    items = [
        {k: v for k, v in r.items() if k not in ("id", "batch_id", "received_at_ms")}
        for r in receipts["items"]
    ]
    return {**receipts, "items": items}


def test_decoded_batches_answer_as_the_main_port(served: tuple[Served, dict[str, str]]) -> None:
    server, keys = served
    big = trade_row(
        "G-big-{p}", buyer="RTL-0001", seller="RTL-0002", quantity="1", price="65000", executed_at=AT
    )
    rows = [*_rows(30), big]
    a, b = _both(server, "POST", "/v1/trades/batch", keys["operator"], tag=True, content=_body(rows))
    assert a.status_code == b.status_code == 200
    assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
    ra, rb = a.json(), b.json()
    assert [r["id"] for r in rb["items"]] == [r["trade_id"].replace("{p}", "g") for r in rows]
    assert _normal(ra) == _normal(rb)
    assert rb["accepted"] == 30 and rb["rejected"] == 1  # an engine refusal, rendered from columns
    assert rb["items"][-1]["reject"]["error"] == "liquidity_exceeded"
    # Sent again: duplicates, answered from the records (the service's dict path) on both ports.
    a2, b2 = _both(server, "POST", "/v1/trades/batch", keys["operator"], tag=True, content=_body(rows))
    assert a2.status_code == b2.status_code == 200
    assert b2.json()["duplicates"] == 31 and _normal(a2.json()) == _normal(b2.json())
    # The same ids with other content: 409 on both.
    other = [dict(r, price="1") for r in rows]
    a3, b3 = _both(server, "POST", "/v1/trades/batch", keys["operator"], tag=True, content=_body(other))
    _same_problem(a3, b3)
    assert b3.status_code == 409


@pytest.mark.parametrize(
    ("name", "body", "headers"),
    [
        ("not json", b'{"trades": [', {}),
        ("not an object", b"[1, 2]", {}),
        ("empty", _body([]), {}),
        ("unknown field", _body(_rows(1), extra=1), {}),
        ("a number for a decimal", _body(_rows(2, price=65000.12)), {}),
        ("bad quantity", _body(_rows(3, quantity="-1")), {}),
        ("unknown party", _body(_rows(2, seller="NOBODY")), {}),
        ("not an object row", _body([*_rows(1), "x"]), {}),
        ("executed ahead", _body([trade_row("G-ahead-{p}", executed_at=AT + 10**10)]), {}),
        ("media type", _body(_rows(1)), {"Content-Type": "text/plain"}),
        (
            "too deep",
            b'{"trades": [{"venue": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}',
            {},
        ),
    ],
)
def test_refusals_are_the_main_ports(
    served: tuple[Served, dict[str, str]], name: str, body: bytes, headers: dict[str, str]
) -> None:
    server, keys = served
    a, b = _both(
        server, "POST", "/v1/trades/batch", keys["operator"], tag=True, content=body, headers=headers
    )
    _same_problem(a, b)
    assert 400 <= b.status_code < 500, name


def test_roles_come_before_the_body_and_bind_the_rows(served: tuple[Served, dict[str, str]]) -> None:
    server, keys = served
    good = _body(_rows(2))
    _same_problem(*_both(server, "POST", "/v1/trades/batch", None, tag=True, content=good))
    _same_problem(*_both(server, "POST", "/v1/trades/batch", "not-a-key", tag=True, content=b"{oops"))
    _same_problem(*_both(server, "POST", "/v1/trades/batch", keys["auditor"], tag=True, content=good))
    # A participant key submits only its own trades: the decoded path names the first foreign row.
    mixed = _body(
        [
            trade_row("G-own-{p}", buyer="RTL-0001", seller="RTL-0002", executed_at=AT),
            trade_row("G-foreign-{p}", executed_at=AT),
        ]
    )
    a, b = _both(server, "POST", "/v1/trades/batch", keys["participant"], tag=True, content=mixed)
    _same_problem(a, b)
    assert b.status_code == 403 and b.json()["field"] == "trades[1].buyer"
    own = _body([trade_row("G-own2-{p}", buyer="RTL-0001", seller="RTL-0002", executed_at=AT)])
    a, b = _both(server, "POST", "/v1/trades/batch", keys["participant"], tag=True, content=own)
    assert a.status_code == b.status_code == 200 and _normal(a.json()) == _normal(b.json())


def test_handed_over_requests(served: tuple[Served, dict[str, str]]) -> None:
    server, keys = served
    op = {"Authorization": f"Bearer {keys['operator']}"}
    # ISO timestamps are valid but not decoded: the whole request goes over.
    iso = _body([trade_row("G-iso-{p}")])
    a, b = _both(server, "POST", "/v1/trades/batch", keys["operator"], tag=True, content=iso)
    assert a.status_code == b.status_code == 200 and _normal(a.json()) == _normal(b.json())
    # Idempotency-Key: the service's middleware keeps the first answer, on either port.
    body = _body([trade_row("G-idem", executed_at=AT)])
    first = httpx.post(
        f"{server.gateway}/v1/trades/batch", content=body, headers={**op, "Idempotency-Key": "k-1"}
    )
    again = httpx.post(
        f"{server.main}/v1/trades/batch", content=body, headers={**op, "Idempotency-Key": "k-1"}
    )
    assert first.status_code == again.status_code == 200
    assert again.headers.get("idempotent-replayed") == "true" and again.content == first.content
    # A read (once final: it no longer changes), its ETag and a 304, a sane client request id kept.
    wait_for(
        lambda: httpx.get(f"{server.main}/v1/trades/G-idem", headers=op, timeout=30).json()["final"],
        timeout=60,
    )
    a, b = _both(
        server, "GET", "/v1/trades/G-idem", keys["operator"], headers={"X-Request-Id": "client-id-42"}
    )
    assert a.status_code == b.status_code == 200 and a.json() == b.json()
    assert b.headers["etag"] == a.headers["etag"] and b.headers["x-request-id"] == "client-id-42"
    cached = httpx.get(
        f"{server.gateway}/v1/trades/G-idem", headers={**op, "If-None-Match": b.headers["etag"]}, timeout=30
    )
    assert cached.status_code == 304
    a, b = _both(server, "GET", "/v1/nothing-here", keys["operator"])
    _same_problem(a, b)
    assert httpx.get(f"{server.gateway}/openapi.json", timeout=30).json()["info"]["title"] == "clearlane"


def test_the_live_stream_through_the_gateway(served: tuple[Served, dict[str, str]]) -> None:
    import threading

    server, keys = served
    op = {"Authorization": f"Bearer {keys['operator']}"}
    events: list[dict[str, Any]] = []

    def listen() -> None:
        params = {"types": "trade.cleared", "max_events": "1"}
        with httpx.stream("GET", f"{server.gateway}/v1/stream", params=params, headers=op, timeout=60) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))

    def subscribers() -> float:
        text = httpx.get(f"{server.main}/metrics", headers=op, timeout=30).text
        line = next(x for x in text.splitlines() if x.startswith("clearlane_stream_subscribers "))
        return float(line.split()[-1])

    before = subscribers()
    t = threading.Thread(target=listen)
    t.start()
    wait_for(lambda: subscribers() > before, timeout=30, every=0.05)  # subscribed: no event missed
    r = httpx.post(
        f"{server.gateway}/v1/trades/batch", content=_body([trade_row("G-live", executed_at=AT)]), headers=op
    )
    assert r.status_code == 200
    t.join(60)
    assert not t.is_alive() and events and events[0]["type"] == "trade.cleared"


def test_a_gateway_that_dies_is_started_again_and_a_stop_ends_them(tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    open_node(db, EXAMPLE).close()
    key = api_key(db, "--role", "operator")
    server = Served(db)
    try:
        (first,) = server.gateways()
        first.kill()
        first.wait(10)
        wait_for(lambda: len(server.gateways()) == 1 and server.gateways()[0].pid != first.pid, timeout=30)
        wait_for(lambda: healthy(server.proc, server.gateway), timeout=60, every=0.1)  # the new one
        r = httpx.post(
            f"{server.gateway}/v1/trades/batch",
            content=_body([trade_row("G-after", executed_at=AT)]),
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1
        (second,) = server.gateways()
        metrics = httpx.get(
            f"{server.gateway}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30
        ).text
        assert 'clearlane_gateways{state="alive"} 1.0' in metrics
        assert "clearlane_gateway_restarts_total 1.0" in metrics
        assert 'clearlane_gateway_requests_total{kind="decoded"} 1.0' in metrics
    finally:
        err = server.stop()
    assert server.proc.returncode == 0, err
    assert not second.is_running() or second.status() == psutil.STATUS_ZOMBIE
    assert "starting it again" in err
