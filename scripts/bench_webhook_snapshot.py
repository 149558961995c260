"""The cost of the trade a webhook body carries (figures go to docs/PERFORMANCE.md, "Webhook
payloads").

    .venv/bin/python scripts/bench_webhook_snapshot.py [--trades 2000]

Starts the service in-process on a temporary database (accelerated clock), posts TRADES trades,
waits until the last is final, then builds ``webhooks.trade_snapshot`` for each with one shared
``SnapshotSource`` (as one enqueue round does) and prints wall and CPU ms per trade.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.service_support import make_service, trade_row, wait_for

from clearlane.adapters.http.webhooks import SnapshotSource, trade_snapshot


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=2000)
    args = parser.parse_args()
    with make_service(Path(tempfile.mkdtemp()), webhooks=False) as s:
        rows = [trade_row(i, buyer="RTL-0001", seller="RTL-0002") for i in range(args.trades)]
        s.client.post("/v1/trades/batch", json={"trades": rows}, headers=s.h())
        last = f"T{args.trades - 1}"
        wait_for(lambda: s.client.get(f"/v1/trades/{last}", headers=s.h()).json().get("final"), timeout=120)
        source = SnapshotSource(s.runtime)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(args.trades):
            trade_snapshot(s.runtime, f"T{i}", "trade", source)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{args.trades:,} snapshots: {wall / args.trades * 1000:.2f} ms wall, {cpu / args.trades * 1000:.2f} ms CPU per trade"
    )


if __name__ == "__main__":
    main()
