"""Shared helpers of the service tests: an app on a temporary database with an accelerated
clock, API keys of every role, trade rows, a poll-until helper, and for a real ``clearlane
serve`` subprocess: free ports, API keys from the CLI and its health probe."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from clearlane.adapters.http.server import build

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "src" / "clearlane" / "core" / "config" / "example.toml"
CLI = str(Path(sys.executable).with_name("clearlane"))


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free now (all held until each is known)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def api_key(db: Path, *args: str) -> str:
    """A new API key made by ``clearlane apikey create --db DB ARGS`` (its printed token)."""
    out = subprocess.run(
        [CLI, "apikey", "create", "--db", str(db), *args], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def healthy(proc: subprocess.Popen[bytes], base: str) -> bool:
    """Whether the server process answers ``/healthz`` at ``base``; an AssertionError with its
    stderr if it has exited."""
    if proc.poll() is not None:
        raise AssertionError(f"serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def trade_row(
    i: int | str, buyer: str = "MM-ALPHA", seller: str = "BRK-NORTH", **over: Any
) -> dict[str, Any]:
    row = {
        "trade_id": f"T{i}" if isinstance(i, int) else i,
        "venue": "XCL",
        "symbol": "BTC/USD",
        "buyer": buyer,
        "seller": seller,
        "quantity": "0.05",
        "price": "65000.12",
        "executed_at": "2026-11-20T14:03:07.250Z",
    }
    row.update(over)
    return row


def wait_for(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(every)


@dataclass
class Service:
    client: TestClient
    app: Any
    db: Path
    keys: dict[str, str]

    def h(self, who: str = "operator") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime


@contextmanager
def make_service(tmp: Path, *, speed: float = 50.0, config: Path = EXAMPLE, **kw: Any) -> Iterator[Service]:
    db = tmp / "svc.db"
    app = build(db, config, clock="accelerated", speed=speed, **kw)
    with TestClient(app) as client:
        ks = app.state.keys
        keys = {
            "operator": ks.create("operator")[1],
            "auditor": ks.create("auditor")[1],
            "participant": ks.create("participant", "MM-ALPHA")[1],
            "other": ks.create("participant", "BRK-NORTH")[1],
            "retail": ks.create("participant", "RTL-0001")[1],
        }
        yield Service(client, app, db, keys)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    with make_service(tmp_path) as s:
        yield s
