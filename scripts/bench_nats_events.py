"""How fast ``serve --nats`` turns public events into JetStream messages (adapters/nats/events_out.py).

Starts its own nats-server, feeds a bare EventBus steps of ``trade.cleared`` events (a synthetic
column table, ``--per-step`` trades each) and measures, through the real publisher thread:
events published per second end to end (materialise, JSON, pipelined publish, acks awaited), and
the time the bus listener — the only part on the clearing thread — takes per step.

    .venv/bin/python scripts/bench_nats_events.py --events 200000 --per-step 2000
"""

from __future__ import annotations

import argparse
import time

import pyarrow as pa

from clearlane.adapters.nats.events_out import NatsEventPublisher, PublisherOptions
from clearlane.node.events import EventBus, TradeEvents
from clearlane.testing.devserver import NatsServer


def _table(start: int, n: int) -> pa.Table:
    ids = [f"T{start + i:09d}" for i in range(n)]
    return pa.table(
        {
            "trade_id": ids,
            "kind": pa.array([0] * n, pa.int8()),
            "buyer": ["MM-ALPHA"] * n,
            "seller": ["BRK-NORTH"] * n,
            "lane": ["L2"] * n,
            "pool": ["fast"] * n,
            "batch_id": ["fast-000001"] * n,
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--per-step", type=int, default=2_000)
    args = ap.parse_args()
    server = NatsServer().start()
    bus = EventBus()
    publisher = NatsEventPublisher(
        bus, server.url, PublisherOptions(types=frozenset({"trade.cleared"}), max_pending=10_000_000)
    )
    publisher.start()
    while not publisher.connected:
        time.sleep(0.01)
    steps = [
        TradeEvents("trade.cleared", s, 1_800_000_000_000, _table(s * args.per_step, args.per_step))
        for s in range(args.events // args.per_step)
    ]
    listener_s = 0.0
    started = time.perf_counter()
    for step in steps:
        t = time.perf_counter()
        bus.publish([step])
        listener_s += time.perf_counter() - t
    while publisher.pending:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    publisher.stop()
    server.stop()
    n = publisher.published
    print(
        f"{n:,} events in {elapsed:.2f} s: {n / elapsed:,.0f} events/s published and acked; "
        f"bus listener {listener_s / len(steps) * 1e6:.1f} µs per step of {args.per_step:,}; "
        f"dropped {publisher.dropped}, failed {publisher.failed}"
    )


if __name__ == "__main__":
    main()
