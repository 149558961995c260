"""link: the service's end of a gateway's link, in process — frames in, frames out.

A decoded batch whose handling fails unexpectedly is still answered (500, logged), never left
waiting; a handed-over request is run through the app whole; a streamed response comes back
chunk by chunk and ends when the gateway says its client left."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from clearlane.adapters.http.common import ServiceOptions
from clearlane.adapters.http.gateway import LinkClient
from clearlane.adapters.http.link import (
    BODY,
    END,
    REQUEST,
    RESPONSE,
    START,
    TRADES,
    LinkServer,
    encode_batch,
    split_meta,
    with_meta,
)
from clearlane.node.intake.rows import decoded_batch


class _Failing:
    def submit_decoded(self, batch: pa.RecordBatch) -> Any:
        raise RuntimeError("boom")


def _app() -> FastAPI:
    app = FastAPI()
    app.state.options = ServiceOptions(auth=False)
    app.state.runtime = _Failing()

    @app.get("/hello")
    async def hello(name: str = "x") -> dict[str, str]:
        return {"hello": name}

    @app.get("/ticks")
    async def ticks() -> StreamingResponse:
        async def gen() -> Any:
            n = 0
            while True:
                yield f"tick {n}\n".encode()
                n += 1
                await asyncio.sleep(0.01)

        return StreamingResponse(gen(), media_type="text/plain")

    return app


def _meta(path: str, query: str = "") -> dict[str, Any]:
    return {
        "method": "GET",
        "path": path,
        "query": query,
        "headers": [["host", "x"]],
        "client": ["127.0.0.1", 1],
    }


def test_link_frames_in_process() -> None:
    async def main() -> None:
        path = str(Path(tempfile.mkdtemp()) / "l.sock")
        server = LinkServer(_app(), path)
        await server.start()
        client = LinkClient(path)
        await client.connect()
        try:
            # A decoded batch the service fails on unexpectedly: a 500, not a request left waiting.
            row = {
                "trade_id": "T1",
                "venue": "V",
                "symbol": "BTC/USD",
                "buyer": "A",
                "seller": "B",
                "quantity": "1",
                "price": "2",
                "executed_at": 5,
            }
            batch = decoded_batch([row])
            assert batch is not None
            _, queue = client.open(TRADES, *with_meta(_meta("/v1/trades/batch"), encode_batch(batch)))
            kind, payload = await asyncio.wait_for(queue.get(), 10)
            meta, body = split_meta(payload)
            assert kind == RESPONSE and meta["status"] == 500 and bytes(body) == b"Internal Server Error"
            # A request handed over whole: the app's route, its query string.
            _, queue = client.open(REQUEST, *with_meta(_meta("/hello", "name=gw")))
            kinds, chunks = [], []
            while not kinds or kinds[-1] != END:
                kind, payload = await asyncio.wait_for(queue.get(), 10)
                kinds.append(kind)
                if kind == BODY:
                    chunks.append(payload)
            assert kinds[0] == START and b"".join(chunks) == b'{"hello":"gw"}'
            # A stream: chunks as they come, ended when the client leaves.
            stream, queue = client.open(REQUEST, *with_meta(_meta("/ticks")))
            kind, _ = await asyncio.wait_for(queue.get(), 10)
            assert kind == START
            got = [await asyncio.wait_for(queue.get(), 10) for _ in range(3)]
            assert [k for k, _ in got] == [BODY] * 3 and got[0][1] == b"tick 0\n"
            client.cancel(stream)
            while True:  # chunks already sent may still arrive; then nothing more
                try:
                    kind, _ = await asyncio.wait_for(queue.get(), 0.5)
                except TimeoutError:
                    break
                assert kind == BODY
            assert server.counts == {"decoded": 1, "forwarded": 2}
        finally:
            await client.close()
            await server.close()

    asyncio.run(main())
