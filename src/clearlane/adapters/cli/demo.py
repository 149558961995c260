"""Serving the dashboard over a live simulated market: what ``clearlane demo`` runs.

:func:`start_live` builds the clearing service exactly as ``clearlane serve`` does
(:func:`clearlane.adapters.http.server.build`: runtime, read models, API, dashboard) but on an
accelerated clock that starts at a chosen instant of a generated day, serves it with uvicorn from
a background thread (on a socket bound here, so ``port=0`` picks a free port), posts the opening
collateral through the runtime and starts a :class:`~clearlane.sim.feed.RuntimeFeed` that
submits the day's trades as they fall due on that clock. :class:`LiveDemo` stops everything.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from clearlane.sim.feed import RuntimeFeed


@dataclass
class LiveDemo:
    app: Any
    runtime: Any
    feed: RuntimeFeed
    http: HttpServer
    url: str

    def stop(self) -> None:
        self.feed.stop()
        self.http.stop()


class HttpServer:
    """uvicorn on a socket we bound ourselves, served from a daemon thread."""

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, on_stopping: Callable[[], None] | None = None
    ) -> None:
        self.on_stopping = on_stopping
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])
        self.host = host
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="clearlane-http", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop serving. ``on_stopping`` runs first: the demo ends its event streams there, as
        ``clearlane serve`` does (an open dashboard's SSE stream never ends on its own, so the
        stop would wait out the grace period and then cancel it with an error on the console)."""
        if self.on_stopping is not None:
            self.on_stopping()
        self.server.should_exit = True
        self.thread.join(10)


def _car_marketplace(runtime: Any) -> None:
    """The demo's used-car deals in escrow (node/escrow_demo.py; docs/ESCROW.md)."""
    from clearlane.node.escrow_demo import car_marketplace
    from clearlane.node.runtime import SubmissionRefused

    deposits, actions = car_marketplace(runtime.config)
    runtime.submit_events("collateral_deposit", deposits).result(timeout=120)
    for body in actions:
        try:
            runtime.submit_events("escrow", [body]).result(timeout=120)
        except SubmissionRefused:  # shown on the escrow's page; the demo goes on
            continue


def start_live(
    directory: Path,
    config_path: Path,
    trades: Any,
    deposits: list[Any],
    *,
    speed: float,
    start_ms: int | None,
    host: str,
    port: int,
    bad_share: float = 0.001,
    tick_s: float = 0.1,
    nats: Any = None,
) -> LiveDemo:
    """Build the service on ``directory/clearlane.db`` with an accelerated clock, serve it, feed it."""
    from clearlane.adapters.http.app import ServiceOptions
    from clearlane.adapters.http.server import build
    from clearlane.node.runtime import AcceleratedClock

    first_ms = int(trades.column("executed_at")[0].as_py()) if trades.num_rows else 0
    begin = start_ms if start_ms is not None else first_ms
    # A local demo: no API keys (every request acts as an operator), loopback by default.
    app = build(
        directory / "clearlane.db",
        config_path,
        clock=AcceleratedClock(speed, begin),
        service_options=ServiceOptions(auth=False),
        webhooks=False,
        nats=nats,  # (url, PublisherOptions): demo --serve --nats
    )
    runtime = app.state.runtime
    http = HttpServer(app, host, port, on_stopping=runtime.bus.end_streams)
    http.start()
    if not runtime.healthy:
        http.stop()
        raise RuntimeError("the clearing runtime did not start")
    payloads = []
    for deposit in deposits:
        data = deposit.model_dump(mode="json")
        data.pop("type", None)
        data.pop("v", None)
        payloads.append(data)
    for i in range(0, len(payloads), 500):
        runtime.submit_events("collateral_deposit", payloads[i : i + 500]).result(timeout=120)
    _car_marketplace(runtime)
    feed = RuntimeFeed(runtime, trades, tick_s=tick_s, bad_share=bad_share, on_rejects=runtime.tally.edge)
    feed.start()
    return LiveDemo(app, runtime, feed, http, http.url)
