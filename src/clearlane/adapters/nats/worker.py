"""``clearlane worker``: consume one partition's subjects from JetStream, exactly once.

A *partition* is a named group of pools (``--pools fast,retail`` → partition ``fast_retail``).
On PostgreSQL each partition is its own schema (``clearlane_<partition>``: its own input log,
engine state, batches, ledger) and a session-level advisory lock makes one worker its owner; a
second worker for the same partition waits as a standby and takes over when the owner's session
ends (a killed worker's connection closes, and PostgreSQL releases the lock). On SQLite the
database file is the partition and a file lock beside it plays the advisory lock's part.

Exactly once, step by step:

1. The owner replays the partition's log (``open_node`` → ``Node.open``: same state root or refuse).
2. Its cursor is the first message of the log not completely logged (:func:`resume_point`;
   source ids are ``nats:<stream>:<seq>:<pool>#<part>``). It (re)creates the partition's durable
   pull consumer to deliver from that sequence, filtered on ``clearlane.trades.<pool>`` and
   ``clearlane.input.<pool>`` of its pools, so delivery order is stream order.
3. Each message is validated and becomes log entries per part (a trade chunk and its base-layer
   observation, logged after the next trade chunk; or small events). Every entry carries the
   message's source id, so re-delivering a message applies only the parts not yet committed —
   none after a full commit. Trade ids dedup again inside the engine; a re-sent id with
   different content (code 116, ``id_conflict``) is recorded and published as a reject.
4. Pipelined (:class:`Worker`): a message is acked (``AckPolicy.ALL``) once its last entry is
   committed by the writer thread, never before.
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
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clearlane.adapters.embedded import SIMULATED, ChainChoice, open_node
from clearlane.adapters.nats.messages import (
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
from clearlane.adapters.sql.locks import AdvisoryLock
from clearlane.adapters.sql.store import Store, database_url, is_url
from clearlane.core.errors import Unavailable
from clearlane.core.model import ids as model_ids
from clearlane.core.proofs.codec import encode_payload
from clearlane.node.events import batch_event_type
from clearlane.node.feed import PendingObservation, observation_for
from clearlane.node.intake.validate import TradeValidator
from clearlane.node.node import Node

_SOURCE_RE = re.compile(r"^nats:([A-Za-z0-9_-]+):(\d+):([A-Za-z0-9_-]+)#")
PUBLISHED_META = "bus_events_published_seq"
PUBLISHED_REJECTS_META = "bus_rejects_published_id"


class LockLost(Unavailable, RuntimeError, code="PARTITION_LOCK_LOST"):
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
    return int.from_bytes(
        hashlib.sha256(f"clearlane.partition:{name}".encode()).digest()[:8], "big", signed=True
    )


class PartitionLock:
    """PostgreSQL: ``pg_try_advisory_lock`` on a dedicated session. SQLite: ``flock`` on a file."""

    def __init__(self, db: str, name: str) -> None:
        self.db = db
        self.name = name
        self.key = lock_key(name)
        self._session: AdvisoryLock | None = None
        self._file: Any = None
        self.postgres = is_url(db) and database_url(db).startswith("postgresql")

    def try_acquire(self) -> bool:
        if self.postgres:
            if self._session is None:
                self._session = AdvisoryLock(self.db, self.key, f"clearlane-worker-{self.name}")
            return self._session.try_acquire()
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
            if self._session is None:
                raise RuntimeError("no lock session")
            self._session.ping()
        except Exception as exc:
            raise LockLost(f"partition {self.name}: lock session lost ({exc})") from exc

    def release(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
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
    ack_wait_s: float = 120.0  # JetStream re-delivers a message not acked within this
    chain: ChainChoice = SIMULATED  # the base layer (--chain, --rpc-url, --chain-key)


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
    """The highest stream sequence logged in this partition (0 if none). The last entry may be
    the previous message's base-layer observation, logged right after the last message's
    trade part (see :class:`Worker`): the two last entries from the bus tell."""
    sources = store.last_source_ids("nats:%", 2)
    return max([0, *(s for s in (_stream_seq(source) for source in sources) if s is not None)])


def _stream_seq(source_id: str | None) -> int | None:
    match = _SOURCE_RE.match(source_id or "")
    return int(match.group(2)) if match else None


def resume_point(store: Store) -> tuple[int, dict[str, int]]:
    """Where to (re)start delivery, and the log entries (source id → log seq) of the messages
    from there on.

    A message is complete when every part of it is logged. A trade part's base-layer
    observation is logged right after the *next* trade part (see :class:`Worker`), so of the
    last two trade parts in the log either may still lack it: delivery restarts at the earliest
    such message, or else at the last logged message (its later parts may be missing). Re-delivered
    parts are then recognised from the returned entries, without a query per step.
    """
    known: dict[str, int] = {}
    chains: set[str] = set()
    start: int | None = None
    last: int | None = None
    incomplete: list[int] = []
    trade_parts = 0
    hi = 2**62
    while True:
        rows = store.sources_upto(hi, 512)
        for seq, source_id in rows:
            source = str(source_id)
            stream_seq = _stream_seq(source)
            if stream_seq is None:
                continue
            part = source.rsplit("#", 1)[1]
            if start is not None and stream_seq < start and not part.endswith(".chain"):
                return start, known  # everything logged before this belongs to earlier messages
            known[source] = seq
            last = stream_seq if last is None else last
            if part.endswith(".chain"):
                chains.add(source)
            elif "." not in part:  # a trade part
                trade_parts += 1
                if f"{source}.chain" not in chains:
                    incomplete.append(stream_seq)
                if trade_parts == 2:
                    start = min([last, *incomplete])
        if len(rows) < 512:
            break
        hi = rows[-1][0] - 1
    return (0 if last is None else min([last, *incomplete])), known


@dataclass
class _Part:
    """One validated part of a message: a trade chunk (with its log payload) or small events."""

    index: int
    table: Any = None  # pa.Table of valid trades, or None
    chunk: Any = None  # its TradeChunk (maps the engine's id conflicts back to message rows)
    payload: bytes | None = None
    events: list[Any] = field(default_factory=list)


@dataclass
class _Decoded:
    msg: Any
    seq: int
    source: str
    parts: list[_Part]
    rejects: list[Any]
    redelivered: bool = False


@dataclass
class _Inflight:
    """A message applied but not yet acked: ``last_seq`` is its last log entry (0: none; None: a
    part's base-layer observation is still to be logged)."""

    msg: Any
    seq: int
    last_seq: int | None = 0


class Worker:
    """Consumes one partition. The engine applies on its own thread while the event loop
    fetches and decodes the next messages, and the node's writer thread commits (pipelined):

    - each trade part is logged as ``<source>#<part>`` and its base-layer observation as
      ``<source>#<part>.chain`` *after the next trade part* (up to 1 ms before the part's last
      trade; the next part's transactions are all later, as on the bulk path), so the engine
      never waits for a commit before it can go on. The log is still a function of the stream
      alone: a restarted worker re-reads from the first message not completely logged
      (:func:`resume_point`) and writes the same entries in the same places.
    - a message is acked (``AckPolicy.ALL``: with everything before it) once all its entries
      are committed. The last trade part's observation waits for the next trade part; small
      events (collateral, marks, payments) and the idle clock log it first, in its own place
      right after its trade part (the unpipelined rule: they wait for that part's commit).
    """

    def __init__(self, options: WorkerOptions, log: Callable[[str], None] = print) -> None:
        self.o = options
        self.log = log
        self.name = partition_name(options.pools, options.partition)
        self.schema = f"clearlane_{self.name}" if is_url(options.db) else None
        self.lock = PartitionLock(options.db, self.name)
        self.node: Node[Store] | None = None
        self.stats = WorkerStats()
        self.stop = asyncio.Event()
        self._decoded_upto = 0  # highest stream sequence decoded this session (re-deliveries skip)
        self._inflight: deque[_Inflight] = deque()
        # A trade part's observation waiting for the next trade part (node/feed.py): the
        # observation, its message, the log seq after which it belongs if logged before anything
        # else. Unlike a file, a message's small events log it first (the unpipelined rule).
        self._pending: tuple[PendingObservation, _Inflight, int] | None = None
        self._busy: tuple[float, float] | None = None  # (wall, process CPU) when the current busy spell began
        self._committed_seen = 0
        self._known: dict[str, int] = {}  # source id → log seq of the entries logged before this session

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
            self.node = open_node(self.o.db, self.o.config, schema=self.schema, chain=self.o.chain)
            nc = await nats.connect(self.o.nats_url, connect_timeout=5, max_reconnect_attempts=-1)
            try:
                js = nc.jetstream(timeout=30)
                await ensure_streams(js)
                await self._loop(js)
            finally:
                with contextlib.suppress(Exception):
                    await nc.close()  # every publish was awaited; nothing left to drain
        finally:
            if self.node is not None:
                with contextlib.suppress(Exception):
                    self.node.checkpoint()
                self.node.close()
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
            ack_wait=self.o.ack_wait_s,
            max_ack_pending=10_000,
        )
        await js.add_consumer(STREAM, config)
        return await js.pull_subscribe_bind(durable=durable, stream=STREAM)

    async def _loop(self, js: Any) -> None:
        node = self.node
        assert node is not None
        cursor, self._known = resume_point(node.store)
        self.log(f"partition {self.name}: log at entry {node.queries.applied_seq()}, stream cursor {cursor}")
        node.assume_sources("nats:", set(self._known))
        self._decoded_upto = cursor - 1 if cursor else 0
        sub = await self._consumer(js, cursor)
        validator = TradeValidator(node.config)
        await self._publish_events(js)
        loop = asyncio.get_running_loop()
        with (
            ThreadPoolExecutor(1, "clearlane-decode") as decoder,
            ThreadPoolExecutor(1, "clearlane-apply") as applier,
        ):

            async def fetch() -> list[_Decoded]:
                from nats.errors import TimeoutError as NatsTimeout

                try:
                    msgs = await sub.fetch(self.o.fetch_batch, timeout=self.o.fetch_timeout_s)
                except (TimeoutError, NatsTimeout):
                    return []
                return await loop.run_in_executor(decoder, self._decode_all, msgs, validator)

            with node.pipelined():  # leaving it commits everything queued
                await self._consume(js, loop, applier, fetch)
            self._committed(node.queries.applied_seq())
            await self._ack()
            self._end_busy()
            await self._publish_events(js)

    async def _consume(
        self, js: Any, loop: asyncio.AbstractEventLoop, applier: ThreadPoolExecutor, fetch: Callable[[], Any]
    ) -> None:
        node = self.node
        assert node is not None
        last_input = time.monotonic()
        last_advance = last_input
        ahead: asyncio.Future[list[_Decoded]] = asyncio.ensure_future(fetch())
        try:
            while not self.stop.is_set():
                self.lock.check()
                batch = await ahead
                ahead = asyncio.ensure_future(fetch())  # the next fetch + decode overlaps this apply
                now = time.monotonic()
                if not batch:
                    await self._settle()
                    if (
                        self.o.idle_advance_ms
                        and node.chain is not None
                        and (now - last_advance) * 1000 >= self.o.idle_advance_ms
                    ):
                        # No input: time still passes for the base layer (batches close, finality arrives).
                        elapsed = int((now - last_advance) * 1000)
                        await loop.run_in_executor(applier, self._idle_advance, elapsed)
                        last_advance = now
                        await self._settle()
                    self._end_busy()
                    await self._publish_events(js)
                    if self.o.idle_exit_s and now - last_input >= self.o.idle_exit_s:
                        self.log(f"partition {self.name}: idle for {self.o.idle_exit_s:g} s, exiting")
                        return
                    continue
                fresh = not all(item.redelivered for item in batch)
                if fresh and self._busy is None:
                    self._busy = (time.perf_counter(), time.process_time())
                    self.stats.first_input_at = self.stats.first_input_at or time.time()
                await loop.run_in_executor(applier, self._apply_batch, batch)
                node.forget_inflight_sources()  # never offered twice (re-deliveries skip at decode)
                await self._ack()
                if fresh:  # a re-delivery (ack wait) is not input: idle time goes on
                    last_input = last_advance = time.monotonic()
                await self._publish_events(js)
        finally:
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead

    async def _settle(self) -> None:
        """Wait (off the event loop) until everything applied is committed, then ack."""
        node = self.node
        assert node is not None
        writer = node.writer
        if writer is not None and writer.committed_seq < node.queries.applied_seq():
            await asyncio.get_running_loop().run_in_executor(
                None, writer.wait_committed, node.queries.applied_seq()
            )
        await self._ack()

    def _committed(self, seq: int) -> None:
        if seq > self._committed_seen:
            self._committed_seen = seq
            writer = self.node.writer if self.node is not None else None
            self.stats.last_commit_at = (
                writer.committed_at if writer is not None and writer.committed_at else time.time()
            )

    async def _ack(self) -> None:
        """Ack the newest message such that it and every message before it is committed."""
        node = self.node
        assert node is not None
        committed = node.queries.applied_seq() if node.writer is None else node.writer.committed_seq
        self._committed(committed)
        last = None
        while self._inflight:
            head = self._inflight[0]
            if head.last_seq is None or head.last_seq > committed:
                break
            last = self._inflight.popleft()
        if last is not None:
            await last.msg.ack()  # AckPolicy.ALL: everything up to here is committed

    def _end_busy(self) -> None:
        """Close a busy spell (called once everything applied is committed)."""
        if self._busy is not None:
            wall, cpu = self._busy
            self.stats.busy_s += time.perf_counter() - wall
            self.stats.busy_cpu_s += time.process_time() - cpu
            self._busy = None

    # ------------------------------------------------------------------ decode (decoder thread)
    def _decode_all(self, msgs: list[Any], validator: TradeValidator) -> list[_Decoded]:
        return [self._decode(msg, validator) for msg in msgs]

    def _decode(self, msg: Any, validator: TradeValidator) -> _Decoded:
        seq = int(msg.metadata.sequence.stream)
        pool = msg.subject.rsplit(".", 1)[1]
        source = model_ids.nats_source(STREAM, seq, pool)
        if seq <= self._decoded_upto:  # delivered again this session (ack wait): already handled
            return _Decoded(msg, seq, source, [], [], redelivered=True)
        self._decoded_upto = seq
        fmt = (msg.headers or {}).get(FORMAT_HEADER)
        parts: list[_Part] = []
        rejects: list[Any] = []
        for index, batch in enumerate(decode(msg.data, fmt, validator)):
            rejects.extend(batch.rejects)
            part = _Part(index, events=list(batch.events))
            if batch.trades is not None and batch.trades.table.num_rows:
                part.table = batch.trades.table
                part.chunk = batch.trades
                part.payload = encode_payload("trades", part.table)
            parts.append(part)
        return _Decoded(msg, seq, source, parts, rejects)

    # ------------------------------------------------------------------ apply (engine thread)
    def _apply_batch(self, batch: list[_Decoded]) -> None:
        for item in batch:
            self._apply(item)

    def _apply(self, item: _Decoded) -> None:
        node = self.node
        assert node is not None
        if item.redelivered:
            self.stats.skipped += 1
            self._inflight.append(_Inflight(item.msg, item.seq, 0))
            return
        record = _Inflight(item.msg, item.seq)
        self._inflight.append(record)
        for part in item.parts:
            source = f"{item.source}#{part.index}"
            if part.table is not None:
                table = part.table
                at_ms = max(int(table.column("received_at_ms")[0].as_py()), node.queries.engine_time_ms())
                fx = node.submit("trades", table, at_ms, source, payload_bytes=part.payload)
                if fx is not None:
                    # A re-sent trade id with different content (116) is rejected like a bad row:
                    # stored under the message's source and published as trade.rejected.
                    item.rejects.extend(part.chunk.located(fx.conflicts))
                    self.stats.trades += table.num_rows
                    self.stats.steps += 1
                    logged_at = node.queries.applied_seq()
                else:  # logged before a restart: its id conflicts are asked again
                    item.rejects.extend(part.chunk.located(node.queries.id_conflicts(table)))
                    logged_at = self._known.get(source, -1)
                before = self._pending[0].source_id if self._pending is not None else ""
                last = logged_at == node.queries.applied_seq()
                self._observe_pending(after=logged_at, overlap=True)
                # This part's own observation belongs right after it and the observation logged
                # after it (as found in the log, when both were logged before a restart).
                slot = node.queries.applied_seq() if last else max(logged_at, self._known.get(before, -1))
                self._pending = (observation_for(table, source), record, slot)
            if part.events and self._pending is not None:
                # Small events never wait behind an observation: it is logged first (unpipelined rule).
                self._observe_pending(after=self._pending[2], overlap=False)
            for n, event in enumerate(part.events):
                data = event.model_dump(mode="json")
                kind = data.pop("type")
                data.pop("v", None)
                fx = node.submit(kind, data, node.queries.engine_time_ms(), f"{source}.{n}")
                if fx is not None:
                    item.rejects.extend(fx.conflicts)
        if item.rejects:
            # Edge rejects are outside the log; written once every step before them is committed,
            # so reject ids stay in commit order for the events publisher.
            if node.writer is not None:
                node.writer.wait_committed(node.queries.applied_seq())
            node.store.replace_rejects(item.source, item.rejects)
            self.stats.rejects += len(item.rejects)
        self.stats.messages += 1
        record.last_seq = (
            None if self._pending is not None and self._pending[1] is record else node.queries.applied_seq()
        )

    def _observe_pending(self, *, after: int, overlap: bool) -> None:
        """Log the pending trade part's base-layer observation (see the class docstring) in its
        place: right after log entry ``after`` (the next trade part, or its own trade part before
        small events or idle time). If the log already went on past that entry (entries logged
        before a restart), the observation is in the log already, or was a no-op there (no base
        layer yet): it is not logged again."""
        node = self.node
        assert node is not None
        if self._pending is None:
            return
        due, record, _ = self._pending
        self._pending = None
        if after == node.queries.applied_seq():
            node.observe(due, overlap=overlap)
        if record.last_seq is None:  # its message is complete now
            record.last_seq = node.queries.applied_seq()

    def _idle_advance(self, elapsed_ms: int) -> None:
        node = self.node
        assert node is not None
        if self._pending is not None:
            self._observe_pending(after=self._pending[2], overlap=False)
        node.advance(node.queries.clock_ms() + elapsed_ms)

    # ------------------------------------------------------------------ events out
    async def _publish_events(self, js: Any) -> None:
        node = self.node
        if node is None or not self.o.publish_events:
            return
        store = node.store
        done = int(store.get_meta(PUBLISHED_META) or 0)
        upto = node.queries.applied_seq() if node.writer is None else node.writer.committed_seq
        out: list[tuple[str, str, dict[str, Any]]] = []
        for r in store.batch_events_between(done, upto):
            body = {
                "v": 1,
                "type": batch_event_type(r["event"]),
                "partition": self.name,
                "pool": r["pool"],
                "batch_id": r["batch_id"],
                "at_ms": int(r["at_ms"]),
                "detail": r["detail"],
                "log_seq": int(r["log_seq"]),
            }
            out.append(
                (
                    event_subject(r["pool"], body["type"]),
                    f"{self.name}:{r['batch_id']}:{r['event']}:{int(r['at_ms'])}",
                    body,
                )
            )
        rejects_done = int(store.get_meta(PUBLISHED_REJECTS_META) or 0)
        rejects_upto = rejects_done
        for r in store.rejects_after(rejects_done):
            # Engine rejects point at their log entry, edge rejects carry the message's source.
            origin = str(r["source_id"] if r["log_seq"] is not None else r["source"])
            match = _SOURCE_RE.match(origin + "#")
            pool = match.group(3) if match else self.o.pools[0]
            body = {
                "v": 1,
                "type": "trade.rejected",
                "partition": self.name,
                "pool": pool,
                "id": r["input_id"],
                "row": r["row"],
                "code": int(r["code"]),
                "error": r["error"],
                "field": r["field"],
                "reason": r["reason"],
                "log_seq": r["log_seq"],
                "source": origin.split("#")[0],
            }
            key = f"{r['log_seq']}" if r["log_seq"] is not None else f"{r['source']}:{r['row']}"
            out.append(
                (event_subject(pool, "trade.rejected"), f"{self.name}:reject:{key}:{r['input_id']}", body)
            )
            rejects_upto = int(r["id"])
        if not out and upto == done:
            return
        futures = []
        for subject, msg_id, body in out:
            payload = json.dumps(body, separators=(",", ":")).encode()
            futures.append(
                await js.publish_async(
                    subject, payload, headers={MSG_ID_HEADER: msg_id}, stream=EVENTS_STREAM
                )
            )
        for fut in futures:
            await fut
        store.set_meta(PUBLISHED_META, str(upto))
        store.set_meta(PUBLISHED_REJECTS_META, str(rejects_upto))
        self.stats.events_published += len(out)


def run_worker(options: WorkerOptions, log: Callable[[str], None] = print) -> WorkerStats:
    worker = Worker(options, log)
    return asyncio.run(worker.run())
