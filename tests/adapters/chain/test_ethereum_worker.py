"""``clearlane worker --chain ethereum``: trades from NATS JetStream are cleared into a partition
that anchors on a live-timed anvil (a block a second), and the batches go final with one anchor
each on the chain."""

from __future__ import annotations

import json
import time
from pathlib import Path

from clearlane.adapters.chain.ethkeys import EthKeyStore
from clearlane.adapters.embedded import ChainChoice, open_node
from clearlane.adapters.nats.worker import WorkerOptions, run_worker
from clearlane.testing.devserver import AnvilServer, NatsServer
from tests.adapters.chain.test_ethereum_node import anchors_on_chain
from tests.adapters.nats.test_bus import ALL_POOLS, input_rows, publish, write_jsonl
from tests.conftest import EXAMPLE_CONFIG


def test_the_worker_anchors_on_a_live_chain(tmp_path: Path) -> None:
    nats, anvil = NatsServer().start(), AnvilServer(block_time_s=1).start()
    try:
        address = EthKeyStore(tmp_path / "w.keys").ensure_active().address  # the db's key dir
        anvil.fund(address)
        rows = input_rows(60, step_ms=20)
        now_ms = int(time.time() * 1000) - 1_500
        for i, row in enumerate(rows):
            row["executed_at"] = now_ms + 20 * i
        publish(nats.url, write_jsonl(tmp_path / "live.jsonl", rows), chunk_rows=30)
        db = str(tmp_path / "w.db")
        choice = ChainChoice("ethereum", anvil.url)
        options = WorkerOptions(
            db=db,
            nats_url=nats.url,
            pools=ALL_POOLS,
            config=EXAMPLE_CONFIG,
            idle_advance_ms=500,
            idle_exit_s=20.0,
            fetch_timeout_s=0.2,
            chain=choice,
        )
        stats = run_worker(options, log=lambda _m: None)
        assert stats.trades == 60
        node = open_node(db, chain=choice)
        batches = node.store.rows("SELECT batch_id, state, anchor_tx FROM batches")
        assert batches and {r["state"] for r in batches} == {"final"}, json.dumps(batches, default=str)
        refs = [ref for ref, _ in anchors_on_chain(anvil, address) if not ref.startswith("T")]
        assert sorted(refs) == sorted(r["batch_id"] for r in batches)
        node.close()
    finally:
        anvil.stop()
        nats.stop()
