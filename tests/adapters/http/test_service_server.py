"""``clearlane serve`` as a real uvicorn server in a subprocess: keys from the CLI, submissions,
the live stream (SSE) with filters, /metrics checked by promtool, a clean stop, and a restart
that rebuilds the read model from the log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clearlane.adapters.embedded import open_node
from tests.service_support import CLI, EXAMPLE, api_key, free_ports, healthy, trade_row, wait_for

SCRAPE_TOKEN = "scrape-token-for-the-tests-0123456789"


class Server:
    def __init__(self, db: Path) -> None:
        self.db = db
        (self.port,) = free_ports(1)
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                CLI,
                "serve",
                "--db",
                str(db),
                "--port",
                str(self.port),
                "--clock",
                "accelerated",
                "--speed",
                "50",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "CLEARLANE_METRICS_TOKEN": SCRAPE_TOKEN},
        )

        wait_for(lambda: healthy(self.proc, self.base), timeout=60, every=0.1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=30)  # waits and closes both pipes
        return self.proc.returncode


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    db = tmp_path / "served.db"
    open_node(db, EXAMPLE).close()
    keys = {
        "operator": api_key(db, "--role", "operator"),
        "participant": api_key(db, "--role", "participant", "--participant", "RTL-0001"),
    }
    server = Server(db)
    try:
        yield server, keys
    finally:
        if server.proc.poll() is None:
            server.stop()


def _sse(client: httpx.Client, params: dict[str, str], want: int, out: list[dict[str, object]]) -> None:
    with client.stream("GET", "/v1/stream", params={**params, "max_events": str(want)}, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))


def test_real_server_end_to_end(served: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    import threading

    server, keys = served
    op = httpx.Client(
        base_url=server.base, headers={"Authorization": f"Bearer {keys['operator']}"}, timeout=30
    )
    mine = httpx.Client(
        base_url=server.base, headers={"Authorization": f"Bearer {keys['participant']}"}, timeout=30
    )
    batches: list[dict[str, object]] = []
    trades: list[dict[str, object]] = []
    # An old client's filter: batch.closed is the deprecated alias of batch.cleared (asserted below).
    t1 = threading.Thread(
        target=_sse, args=(op, {"types": "batch.closed,batch.final", "pool": "retail"}, 2, batches)
    )
    t2 = threading.Thread(target=_sse, args=(mine, {"types": "trade.cleared,trade.final"}, 2, trades))
    t1.start()
    t2.start()
    time.sleep(0.5)
    rows = [trade_row(i) for i in range(20)] + [trade_row("R1", buyer="RTL-0001", seller="RTL-0002")]
    r = op.post("/v1/trades/batch", json={"trades": rows})
    assert r.status_code == 200 and r.json()["accepted"] == 21
    t1.join(30)
    t2.join(30)
    assert [e["type"] for e in batches] == ["batch.cleared", "batch.final"]
    assert all(e["data"]["pool"] == "retail" for e in batches)  # pool filter
    assert [(e["type"], e["data"]["trade_id"]) for e in trades] == [
        ("trade.cleared", "R1"),
        ("trade.final", "R1"),
    ]

    assert httpx.get(f"{server.base}/metrics", timeout=10).status_code == 401  # not public
    scrape = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}  # how Prometheus scrapes (docs/API.md)
    metrics = httpx.get(f"{server.base}/metrics", headers=scrape, timeout=10)
    assert metrics.status_code == 200 and "clearlane_hop_latency_seconds_bucket" in metrics.text
    path = tmp_path / "metrics.txt"
    path.write_text(metrics.text)
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=metrics.text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert 'clearlane_trades{lane="L2",pool="fast",state="received"} 20.0' in metrics.text

    spec = httpx.get(f"{server.base}/openapi.json", timeout=10).json()
    assert "/v1/trades/batch" in spec["paths"]
    before = op.get("/v1/stats/overview").json()["totals"]["trades"]
    op.close()
    mine.close()
    assert server.stop() == 0

    again = Server(server.db)
    try:
        op2 = httpx.Client(
            base_url=again.base, headers={"Authorization": f"Bearer {keys['operator']}"}, timeout=30
        )
        assert op2.get("/v1/stats/overview").json()["totals"]["trades"] == before
        life = op2.get("/v1/trades/R1").json()
        assert life["state"] == "final" and life["l2_cleared_at"] and life["l1_final_at"]
        dup = op2.post("/v1/trades", json=rows[0])
        assert dup.status_code == 200 and dup.json()["status"] == "duplicate"
        op2.close()
    finally:
        assert again.stop() == 0
