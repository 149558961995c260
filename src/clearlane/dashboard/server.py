"""Serving the dashboard over a live simulated market: what ``clearlane demo`` runs.

:func:`start_live` opens a fresh database for a generated day, posts the opening collateral,
wires the dashboard model to the runner, starts the market feed and an HTTP server (uvicorn, in a
background thread, on an already bound socket so ``port=0`` picks a free port) and returns a
:class:`LiveDemo` handle to stop everything.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from clearlane.dashboard.api import ProofProvider, create_app
from clearlane.dashboard.feed import MarketFeed, ObservedRunner
from clearlane.dashboard.model import DashboardModel


@dataclass
class LiveDemo:
    runner: ObservedRunner
    model: DashboardModel
    feed: MarketFeed
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.feed.stop()
        self.server.should_exit = True
        self.thread.join(10)


class HttpServer:
    """uvicorn on a socket we bound ourselves, served from a daemon thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])
        self.host = host
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1)
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
        self.server.should_exit = True
        self.thread.join(10)


def start_live(directory: Path, config_path: Path, trades: Any, deposits: list[Any], *, speed: float, start_ms: int | None,
               host: str, port: int, bad_share: float = 0.001, proof: ProofProvider | None = None,
               info: dict[str, Any] | None = None) -> LiveDemo:
    """Open ``directory/clearlane.db``, post ``deposits``, start the feed and the HTTP server."""
    runner = ObservedRunner.open(directory / "clearlane.db", config_path)
    if not isinstance(runner, ObservedRunner):  # pragma: no cover - Runner.open builds cls
        raise TypeError("ObservedRunner.open returned a plain Runner")
    model = DashboardModel(runner.config)
    runner.observers = [model.observe]
    first_ms = int(trades.column("executed_at")[0].as_py()) if trades.num_rows else 0
    begin = start_ms if start_ms is not None else first_ms
    for deposit in deposits:
        data = deposit.model_dump(mode="json")
        data.pop("type")
        data.pop("v", None)
        runner.submit("collateral_deposit", data, begin, f"deposit:{deposit.deposit_id}")
    feed = MarketFeed(runner, trades, speed=speed, start_ms=begin, bad_share=bad_share,
                      on_rejects=model.observe_edge_rejects)
    app = create_app(model, info={"mode": "demo", "speed": speed, **(info or {})}, proof=proof)
    http = HttpServer(app, host, port)
    http.start()
    feed.start()
    return LiveDemo(runner, model, feed, http.server, http.thread, http.url)
