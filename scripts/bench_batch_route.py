"""CPU of the HTTP side of ``POST /v1/trades/batch`` alone, in process: the real app (auth,
middlewares, body guard, JSON parse, receipts' JSON), called as ASGI, with the runtime's
``submit_trades`` answering at once with canned receipts — so the figure is the HTTP path's own
CPU a request, without the clearing loop, the server's sockets or a client.

    .venv/bin/python scripts/bench_batch_route.py --requests 3000 --batch 100
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson

from clearlane.adapters.http.server import build

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "clearlane" / "core" / "config" / "example.toml"


def _rows(batch: int, start: int) -> list[dict[str, Any]]:
    return [
        {
            "trade_id": f"T{start + i}",
            "venue": "XCL",
            "symbol": "BTC/USD",
            "buyer": "MM-ALPHA",
            "seller": "BRK-NORTH",
            "quantity": "0.05",
            "price": "65000.12",
            "executed_at": 1_800_000_000_000,
        }
        for i in range(batch)
    ]


def _receipts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": r["trade_id"],
            "kind": "trade",
            "status": "accepted",
            "state": "batched",
            "lane": "L2",
            "pool": "fast",
            "batch_id": "fast-000000001",
            "received_at_ms": 1_800_000_000_000,
            "reject": None,
        }
        for r in rows
    ]


async def _drive(app: Any, bodies: list[bytes], token: str) -> tuple[float, float, int]:
    statuses: list[int] = []

    async def one(body: bytes) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/trades/batch",
            "raw_path": b"/v1/trades/batch",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(int(message["status"]))

        await app(scope, receive, send)

    for body in bodies[:50]:  # warm up
        await one(body)
    statuses.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    for body in bodies:
        await one(body)
    return time.process_time() - cpu, time.perf_counter() - wall, sum(1 for s in statuses if s != 200)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-route-"))
    app = build(work / "route.db", EXAMPLE, clock="accelerated", speed=1.0, webhooks=False, dashboard=False)
    _, token = app.state.keys.create("operator")
    runtime = app.state.runtime

    def submit_trades(rows: list[dict[str, Any]], *, single: bool = False) -> Future[list[dict[str, Any]]]:
        future: Future[list[dict[str, Any]]] = Future()
        future.set_result(_receipts(rows))
        return future

    runtime.submit_trades = submit_trades
    bodies = [orjson.dumps({"trades": _rows(args.batch, i * args.batch)}) for i in range(args.requests)]
    cpu, wall, failed = asyncio.run(_drive(app, bodies, token))
    print(
        f"{args.requests:,} requests of {args.batch} trades: {cpu / args.requests * 1e6:,.1f} µs CPU "
        f"a request ({cpu / args.requests / args.batch * 1e6:.2f} µs a trade), wall {wall:.2f} s, "
        f"{failed} not 200"
    )
    runtime.node.close()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
