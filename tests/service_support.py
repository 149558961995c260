"""Shared helpers of the service tests: an app on a temporary database with an accelerated
clock, API keys of every role, trade rows, and a poll-until helper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clearlane.adapters.http.server import build

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "src" / "clearlane" / "core" / "config" / "example.toml"


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
