"""``clearlane worker``: consume one partition's subjects from JetStream, exactly once.

A *partition* is a named group of pools (``--pools fast,retail`` → partition ``fast_retail``).
On PostgreSQL each partition is its own schema (``clearlane_<partition>``: its own input log,
engine state, batches, ledger) and a session-level advisory lock makes one worker its owner; a
second worker for the same partition waits as a standby and takes over when the owner's session
ends (a killed worker's connection closes, and PostgreSQL releases the lock). On SQLite the
database file is the partition and a file lock beside it plays the advisory lock's part.

Exactly once, step by step:

1. The owner replays the partition's log (``Runner.open``: same state root or refuse).
2. Its cursor is the highest JetStream stream sequence in the log's source ids
   (``nats:<stream>:<seq>:<pool>#<part>``). It (re)creates the partition's durable pull consumer
   to deliver from that sequence, filtered on ``clearlane.trades.<pool>`` and
   ``clearlane.input.<pool>`` of its pools, so delivery order is stream order.
3. Each message is validated and becomes one log entry per part (a trade chunk, followed by a
   base-layer observation; or small events). Every entry carries the message's source id, so
   re-delivering a message applies only the parts not yet committed — none after a full commit.
   Trade ids dedup again inside the engine.
4. Only after a fetch's messages are committed is the last one acked (``AckPolicy.ALL``).
5. Lifecycle events are read back from the committed store (``batch_events``, engine rejects)
   after a published-up-to cursor kept in ``meta`` and published with ``Nats-Msg-Id`` — a crash
   between commit and publish re-publishes, and JetStream drops the copy.

Fencing: a worker that lost its lock but still runs cannot corrupt the partition: the input
log's sequence is the primary key, so of two writers of entry N the second fails and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clearlane.bus.messages import (
    EVENTS_STREAM,
    FORMAT_HEADER,
    MSG_ID_HEADER,
    STREAM,
    BusError,
    check_token,
    decode,
    ensure_streams,
    event_subject,
    input_subject,
    trades_subject,
)
from clearlane.ingest.validate import TradeValidator
from clearlane.runner import Runner
from clearlane.store.sql import Store, database_url, is_url

_SOURCE_RE = re.compile(r"^nats:([A-Za-z0-9_-]+):(\d+):([A-Za-z0-9_-]+)#")
PUBLISHED_META = "bus_events_published_seq"
PUBLISHED_REJECTS_META = "bus_rejects_published_id"


class LockLost(RuntimeError):
    """The partition lock's session ended: another worker may own the partition now."""


def partition_name(pools: list[str], name: str | None = None) -> str:
    if not pools:
        raise BusError("--pools needs at least one pool id (or L1)")
    for pool in pools:
        check_token(pool)
    out = name or "_".join(sorted(p.lower() for p in pools))
    if not re.fullmatch(r"[a-z0-9_]{1,40}", out):
        raise BusError(f"partition {out!r}: use lower-case letters, digits and '_' (1-40 characters)")
    return out


def lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"clearlane.partition:{name}".encode()).digest()[:8], "big", signed=True)


class PartitionLock:
    """PostgreSQL: ``pg_try_advisory_lock`` on a dedicated session. SQLite: ``flock`` on a file."""

    def __init__(self, db: str, name: str) -> None:
        self.db = db
        self.name = name
        self.key = lock_key(name)
        self._conn: Any = None
        self._file: Any = None
        self.postgres = is_url(db) and database_url(db).startswith("postgresql")

    def try_acquire(self) -> bool:
        if self.postgres:
            import psycopg
            from sqlalchemy.engine import make_url

            if self._conn is None:
                url = make_url(database_url(self.db)).set(drivername="postgresql")
                self._conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True,
                                             application_name=f"clearlane-worker-{self.name}")
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            return bool(row and row[0])
        if is_url(self.db):
            raise BusError(f"{self.db.split('://')[0]}: the worker runs on PostgreSQL or a SQLite file")
        import fcntl

        if self._file is None:
            self._file = Path(f"{self.db}.worker.lock").open("a+")  # noqa: SIM115 - held for the worker's life
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def check(self) -> None:
        if not self.postgres:
            return
        try:
            self._conn.execute("SELECT 1").fetchone()
        except Exception as exc:
            raise LockLost(f"partition {self.name}: lock session lost ({exc})") from exc

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class WorkerOptions:
    db: str
    nats_url: str
    pools: list[str]
    config: Path | None = None
    partition: str | None = None
    fetch_batch: int = 32
    fetch_timeout_s: float = 0.5
    idle_advance_ms: int = 1000  # observe the base layer this often while no input arrives (0: never)
    idle_exit_s: float = 0.0  # exit after this long without input (0: run until stopped)
    lock_poll_s: float = 0.2
    publish_events: bool = True


@dataclass
class WorkerStats:
    messages: int = 0
    skipped: int = 0  # already committed (redelivered)
    trades: int = 0
    rejects: int = 0
    events_published: int = 0
    steps: int = 0
    busy_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    busy_cpu_s: float = 0.0  # this process's CPU time while busy (excludes start-up and replay)
    first_input_at: float = 0.0  # wall clock (epoch s) of the first message, for benchmarks
    last_commit_at: float = 0.0


def stream_cursor(store: Store) -> int:
    """The highest stream sequence logged in this partition (0 if none)."""
    row = store.scalar("SELECT source_id FROM input_log WHERE source_id LIKE 'nats:%' ORDER BY seq DESC LIMIT 1")
    if row is None:
        return 0
    match = _SOURCE_RE.match(str(row))
    return int(match.group(2)) if match else 0


class Worker:
    def __init__(self, options: WorkerOptions, log: Callable[[str], None] = print) -> None:
        self.o = options
        self.log = log
        self.name = partition_name(options.pools, options.partition)
        self.schema = f"clearlane_{self.name}" if is_url(options.db) else None
        self.lock = PartitionLock(options.db, self.name)
        self.runner: Runner | None = None
        self.stats = WorkerStats()
        self.stop = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    async def acquire(self) -> None:
        announced = False
        while not self.lock.try_acquire():
            if not announced:
                self.log(f"partition {self.name}: standby, another worker owns it")
                announced = True
            await asyncio.sleep(self.o.lock_poll_s)
        self.log(f"partition {self.name}: owned by pid {os.getpid()}")

    async def run(self) -> WorkerStats:
        import nats

        await self.acquire()
        try:
            self.runner = Runner.open(self.o.db, self.o.config, schema=self.schema)
            nc = await nats.connect(self.o.nats_url, connect_timeout=5, max_reconnect_attempts=-1)
            try:
                js = nc.jetstream(timeout=30)
                await ensure_streams(js)
                await self._loop(js)
            finally:
                with contextlib.suppress(Exception):
                    await nc.close()  # every publish was awaited; nothing left to drain
        finally:
            if self.runner is not None:
                with contextlib.suppress(Exception):
                    self.runner.checkpoint()
                self.runner.close()
            self.lock.release()
        return self.stats

    async def _consumer(self, js: Any, cursor: int) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        durable = f"clearlane_{self.name}"
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(STREAM, durable)
        subjects = [s for p in self.o.pools for s in (trades_subject(p), input_subject(p))]
        config = ConsumerConfig(
            durable_name=durable,
            filter_subjects=subjects,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if cursor else DeliverPolicy.ALL,
            opt_start_seq=cursor or None,  # the cursor's own message again: its missing parts, if any
            ack_policy=AckPolicy.ALL,
            ack_wait=120,
            max_ack_pending=10_000,
        )
        await js.add_consumer(STREAM, config)
        return await js.pull_subscribe_bind(durable=durable, stream=STREAM)

    async def _loop(self, js: Any) -> None:
        from nats.errors import TimeoutError as NatsTimeout

        runner = self.runner
        assert runner is not None
        cursor = stream_cursor(runner.store)
        self.log(f"partition {self.name}: log at entry {runner.engine.applied_seq}, stream cursor {cursor}")
        sub = await self._consumer(js, cursor)
        validator = TradeValidator(runner.config)
        await self._publish_events(js)
        last_input = time.monotonic()
        last_advance = last_input
        while not self.stop.is_set():
            self.lock.check()
            try:
                msgs = await sub.fetch(self.o.fetch_batch, timeout=self.o.fetch_timeout_s)
            except (TimeoutError, NatsTimeout):
                msgs = []
            now = time.monotonic()
            if not msgs:
                if self.o.idle_advance_ms and runner.chain is not None and (now - last_advance) * 1000 >= self.o.idle_advance_ms:
                    # No input: time still passes for the base layer (batches close, finality arrives).
                    elapsed = int((now - last_advance) * 1000)
                    runner.advance_chain(max(runner.engine.now_ms, runner.engine.chain_seen_ms) + elapsed)
                    last_advance = now
                    await self._publish_events(js)
                if self.o.idle_exit_s and now - last_input >= self.o.idle_exit_s:
                    self.log(f"partition {self.name}: idle for {self.o.idle_exit_s:g} s, exiting")
                    return
                continue
            started, cpu_started = time.perf_counter(), time.process_time()
            self.stats.first_input_at = self.stats.first_input_at or time.time()
            for msg in msgs:
                cursor = self._apply(msg, validator, cursor)
            await msgs[-1].ack()  # AckPolicy.ALL: everything up to here is committed
            self.stats.busy_s += time.perf_counter() - started
            self.stats.busy_cpu_s += time.process_time() - cpu_started
            self.stats.last_commit_at = time.time()
            last_input = last_advance = time.monotonic()
            await self._publish_events(js)

    # ------------------------------------------------------------------ one message
    def _apply(self, msg: Any, validator: TradeValidator, cursor: int) -> int:
        runner = self.runner
        assert runner is not None
        seq = int(msg.metadata.sequence.stream)
        if seq < cursor:
            self.stats.skipped += 1
            return cursor
        pool = msg.subject.rsplit(".", 1)[1]
        source = f"nats:{STREAM}:{seq}:{pool}"
        fmt = (msg.headers or {}).get(FORMAT_HEADER)
        edge_rejects = []
        for part, batch in enumerate(decode(msg.data, fmt, validator)):
            edge_rejects.extend(batch.rejects)
            if batch.trades is not None and batch.trades.table.num_rows:
                table = batch.trades.table
                at_ms = max(int(table.column("received_at_ms")[0].as_py()), runner.engine.now_ms)
                fx = runner.submit("trades", table, at_ms, f"{source}#{part}")
                if fx is not None:
                    self.stats.trades += table.num_rows
                    self.stats.steps += 1
                runner.advance_chain(runner.engine.now_ms, f"{source}#{part}.chain")
            for n, event in enumerate(batch.events):
                data = event.model_dump(mode="json")
                kind = data.pop("type")
                data.pop("v", None)
                runner.submit(kind, data, runner.engine.now_ms, f"{source}#{part}.{n}")
        if edge_rejects:
            runner.store.replace_rejects(source, edge_rejects)
            self.stats.rejects += len(edge_rejects)
        self.stats.messages += 1
        return seq

    # ------------------------------------------------------------------ events out
    async def _publish_events(self, js: Any) -> None:
        runner = self.runner
        if runner is None or not self.o.publish_events:
            return
        store = runner.store
        done = int(store.get_meta(PUBLISHED_META) or 0)
        upto = runner.engine.applied_seq
        out: list[tuple[str, str, dict[str, Any]]] = []
        for r in store.rows(
            "SELECT e.batch_id, b.pool, e.event, e.at_ms, e.detail, e.log_seq FROM batch_events e "
            "JOIN batches b ON b.batch_id = e.batch_id WHERE e.log_seq > :a AND e.log_seq <= :b ORDER BY e.id",
            a=done, b=upto,
        ):
            body = {"v": 1, "type": f"batch.{r['event']}", "partition": self.name, "pool": r["pool"],
                    "batch_id": r["batch_id"], "at_ms": int(r["at_ms"]), "detail": r["detail"], "log_seq": int(r["log_seq"])}
            out.append((event_subject(r["pool"], body["type"]),
                        f"{self.name}:{r['batch_id']}:{r['event']}:{int(r['at_ms'])}", body))
        rejects_done = int(store.get_meta(PUBLISHED_REJECTS_META) or 0)
        rejects_upto = rejects_done
        for r in store.rows(
            "SELECT r.id, r.log_seq, r.source, r.row, r.input_id, r.code, r.error, r.field, r.reason, l.source_id "
            "FROM rejects r LEFT JOIN input_log l ON l.seq = r.log_seq WHERE r.id > :a ORDER BY r.id",
            a=rejects_done,
        ):
            # Engine rejects point at their log entry, edge rejects carry the message's source.
            origin = str(r["source_id"] if r["log_seq"] is not None else r["source"])
            match = _SOURCE_RE.match(origin + "#")
            pool = match.group(3) if match else self.o.pools[0]
            body = {"v": 1, "type": "trade.rejected", "partition": self.name, "pool": pool, "id": r["input_id"],
                    "row": r["row"], "code": int(r["code"]), "error": r["error"], "field": r["field"],
                    "reason": r["reason"], "log_seq": r["log_seq"], "source": origin.split("#")[0]}
            key = f"{r['log_seq']}" if r["log_seq"] is not None else f"{r['source']}:{r['row']}"
            out.append((event_subject(pool, "trade.rejected"), f"{self.name}:reject:{key}:{r['input_id']}", body))
            rejects_upto = int(r["id"])
        if not out and upto == done:
            return
        futures = []
        for subject, msg_id, body in out:
            payload = json.dumps(body, separators=(",", ":")).encode()
            futures.append(await js.publish_async(subject, payload, headers={MSG_ID_HEADER: msg_id}, stream=EVENTS_STREAM))
        for fut in futures:
            await fut
        store.set_meta(PUBLISHED_META, str(upto))
        store.set_meta(PUBLISHED_REJECTS_META, str(rejects_upto))
        self.stats.events_published += len(out)


def run_worker(options: WorkerOptions, log: Callable[[str], None] = print) -> WorkerStats:
    worker = Worker(options, log)
    return asyncio.run(worker.run())
