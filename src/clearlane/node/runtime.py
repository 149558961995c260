"""The clearing runtime: one :class:`~clearlane.node.node.Node`, a clock, a submission queue and a
single loop thread.

HTTP handlers validate nothing themselves: they enqueue a submission and wait. The loop thread,
at once when no batch is open and otherwise when the earliest batch window ends (at most a tick
after a submission arrived; submissions that arrive meanwhile share the step — ``_step_wait``):

1. validates all queued trade submissions in one columnar pass (a submission with a bad row is
   refused whole with the core's reject code, field and reason — nothing of it is logged);
2. answers re-submitted ids from the read model (same values: the existing record, a
   duplicate) without logging them again, and refuses whole any submission holding an id
   known — or claimed earlier in the tick — with different values (409 ``id_conflict``, 116,
   every conflicting item named; content compared by the engine's digests, engine/dedup.py);
3. logs and applies the rest as ONE ``trades`` step (``node.submit``: one transaction), then
   small events (payments, collateral) as their own steps;
4. closes the windows that have ended with a ``tick`` step if no trade step did, then polls
   the base layer when a poll is due and something is waiting for it (right after a close:
   ``_poll_due``);
5. only then — the step is committed — answers the waiting submissions and publishes the
   step's lifecycle events. An acknowledged submission is in the log: it is never lost, and a
   crash before the commit leaves nothing half-applied (restart replays the log).

Time comes from a :class:`Clock`: wall time for ``serve``, or an accelerated clock (``speed``
engine milliseconds per wall millisecond) for demos and tests. Engine time never goes back.
"""

from __future__ import annotations

import bisect
import ctypes
import gc
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine.core import LogEntry
from clearlane.core.engine.dedup import collateral_digest, payment_digest, trade_digests
from clearlane.core.errors import InputError, Unavailable
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import Step
from clearlane.core.model.inputs import (
    ESCROW_KIND,
    LEDGER_ADJUSTMENT_KIND,
    MANUAL_SETTLEMENT_KIND,
    TRADE_CHUNK_SCHEMA,
    CollateralDeposit,
    CollateralWithdrawal,
    Payment,
    log_payload,
)
from clearlane.core.proofs.codec import decode_payload
from clearlane.node import adjust as adjust_app
from clearlane.node import escrow as escrow_app
from clearlane.node import manual as manual_app
from clearlane.node import receipts
from clearlane.node.events import WEBHOOK_EVENTS, EventBus, EventGroup, StatsEvent
from clearlane.node.intake.rows import DECODED_SCHEMA, Intake, RowError, Rows
from clearlane.node.node import Node
from clearlane.node.projections.common import S, lookup
from clearlane.node.projections.readmodel import ReadModel
from clearlane.node.projections.records import CACHE_ROWS
from clearlane.node.queries import NodeQueries
from clearlane.node.report import summary as report_summary

log = logging.getLogger("clearlane.adapters.http")


# ---------------------------------------------------------------------- clocks
class Clock(Protocol):
    mode: str
    speed: float

    def now_ms(self) -> int: ...


class RealtimeClock:
    mode = "realtime"
    speed = 1.0

    def now_ms(self) -> int:
        return int(time.time() * 1000)


LEAD_TICKS = 5
"""How far (in runtime ticks of engine time) a paced accelerated clock may run ahead of what the
runtime has applied: a few ticks of slack, far below any anchor deadline."""


class AcceleratedClock:
    """Engine time runs ``speed`` times faster than wall time, from ``start_ms`` — paced to the
    engine: it never runs more than ``lead_ms`` ahead of the engine time the runtime last caught
    up to (:meth:`caught_up`).

    Without pacing, a busy machine (a slow step, a descheduled process) let the clock race ahead
    — at 60x a 2 s stall is 120 s of engine time, the whole anchor deadline — so a batch closed
    late was judged against a chain already observed far past it, and unwound. Paced, the clock
    waits for the engine instead: engine time lost to a stall is skipped (``slipped_ms``), never
    compressed into deadlines, and the first clamp of each episode is logged (``behind``, shown on
    the dashboard's clock and in the demo's summary). ``monotonic`` is injectable so tests drive
    the clock without sleeping.
    """

    mode = "accelerated"
    LOG_EVERY_S = 30.0

    def __init__(
        self,
        speed: float,
        start_ms: int | None = None,
        *,
        lead_ms: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._base_ms = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self._t0 = monotonic()
        self.lead_ms = int(lead_ms) if lead_ms is not None else max(1000, int(LEAD_TICKS * 50 * self.speed))
        self._limit_ms: int | None = None  # None until a runtime paces the clock
        self.slipped_ms = 0
        self.behind = False
        self.episodes = 0
        self._logged_at: float | None = None

    @property
    def start_ms(self) -> int:
        return self._base_ms

    @start_ms.setter
    def start_ms(self, value: int) -> None:
        """Restart the clock at ``value`` now (a runtime resuming a store that is further on)."""
        with self._lock:
            self._base_ms, self._t0 = int(value), self._monotonic()
            if self._limit_ms is not None:
                self._limit_ms = max(self._limit_ms, self._base_ms + self.lead_ms)

    def now_ms(self) -> int:
        with self._lock:
            free = self._base_ms + int((self._monotonic() - self._t0) * 1000 * self.speed)
            limit = self._limit_ms
            if limit is None or free <= limit:
                return free
            # Hold at the limit and restart from it: the time the engine could not keep up with
            # is skipped, so the clock resumes at its pace once the engine catches up.
            self.slipped_ms += free - limit
            self._base_ms, self._t0 = limit, self._monotonic()
            if not self.behind:
                self.behind = True
                self.episodes += 1
                self._log_hold(limit)
            return limit

    def _log_hold(self, limit: int) -> None:
        """The first hold, then at most one line per ``LOG_EVERY_S`` of wall time (a busy machine
        holds the clock every few ticks; one line each would drown the log)."""
        wall = self._monotonic()
        if self._logged_at is not None and wall - self._logged_at < self.LOG_EVERY_S:
            return
        self._logged_at = wall
        log.warning(
            "accelerated clock held at %d: the engine is more than %d ms of engine time behind "
            "(a busy machine); the clock waits for it (%d holds, %d ms of engine time skipped so far)",
            limit,
            self.lead_ms,
            self.episodes,
            self.slipped_ms,
        )

    def caught_up(self, engine_ms: int) -> None:
        """The runtime has applied everything up to ``engine_ms``: let the clock run to
        ``engine_ms + lead_ms``. A clock that had been held is no longer behind."""
        with self._lock:
            limit = int(engine_ms) + self.lead_ms
            self._limit_ms = limit if self._limit_ms is None else max(self._limit_ms, limit)
            free = self._base_ms + int((self._monotonic() - self._t0) * 1000 * self.speed)
            if self.behind and free < self._limit_ms:
                self.behind = False

    def status(self) -> dict[str, Any]:
        """What the dashboard shows: paced, held now, engine time skipped, held episodes."""
        return {
            "paced": self._limit_ms is not None,
            "behind": self.behind,
            "slipped_ms": self.slipped_ms,
            "held_episodes": self.episodes,
            "lead_ms": self.lead_ms,
        }


# ---------------------------------------------------------------------- submissions
class SubmissionRefused(InputError, code="SUBMISSION_REFUSED"):
    """Edge validation failed: nothing was logged. ``errors`` name row, field, code, reason."""

    def __init__(self, errors: list[RowError], status: int = 422) -> None:
        super().__init__(errors[0].reason if errors else "refused")
        self.errors = errors
        self.status = status


class RuntimeUnavailable(Unavailable, code="RUNTIME_UNAVAILABLE"):
    """The runtime is stopped or failed; the submission was not applied."""


@dataclass
class _TradeJob:
    rows: Rows
    received_ms: int
    wall: float
    future: Future[Any]  # receipts: dicts, or columns for a decoded submission (_answer_trades)
    prefix: str = "trades"


@dataclass
class _EventJob:
    kind: str
    payloads: list[dict[str, Any]]
    received_ms: int
    wall: float
    future: Future[list[dict[str, Any]]]


@dataclass
class RuntimeOptions:
    tick_ms: float = 50.0
    chain_poll_ms: int | None = None  # engine ms between base-layer polls (default: block time / 2)
    stats_interval_ms: float = 250.0  # wall ms between coalesced ``stats`` events
    durable: bool = False
    cache_rows: int = CACHE_ROWS
    bucket_ms: int = 10_000
    max_queue_rows: int = 200_000
    # The serve process (``clearlane serve`` sets it): after the log is replayed and the app
    # built, move every object alive into the collector's permanent generation (gc.freeze) and
    # collect the young generation less often — a full collection then walks only what was
    # allocated since, not the replayed/imported heap.
    tune_process: bool = False
    trim_interval_s: float = 10.0  # with tune_process: malloc_trim every this many seconds
    close_on_time: bool = True  # step when a batch window ends, not a tick later
    hot_ids: int = 1 << 18  # ids per in-memory generation (engine dedup and read-model index)
    flow_id_run_ids: int = 1 << 18  # ids per run written to the store's flow-id archive
    flow_id_bloom_bits: int = 1 << 28  # the archive's fixed Bloom filter (32 MiB)
    flow_id_background: bool = True  # merge id runs on a thread of their own (tests: inline)


STEP_SECONDS_EDGES = (
    0.005,
    0.01,
    0.015,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
)
"""Upper bounds (s) of the loop's step-duration histogram: sub-second windows live in 5-100 ms."""


@dataclass
class StepTimes:
    """Wall seconds of the loop's steps by kind — ``trades``, ``tick`` (windows closing),
    ``poll`` (the base layer: a new block's work) and ``event`` — as a histogram
    (``STEP_SECONDS_EDGES``, then +Inf): every window that ends while a step runs waits for it,
    so these set the submit → cleared tail (``/metrics``: ``clearlane_runtime_step_seconds``)."""

    counts: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)

    def observe(self, kind: str, seconds: float) -> None:
        counts = self.counts.get(kind)
        if counts is None:
            counts = self.counts[kind] = [0] * (len(STEP_SECONDS_EDGES) + 1)
        counts[bisect.bisect_left(STEP_SECONDS_EDGES, seconds)] += 1
        self.sums[kind] = self.sums.get(kind, 0.0) + seconds


@dataclass
class RuntimeCounters:
    steps: int = 0
    trade_steps: int = 0
    trades_accepted: int = 0
    trades_refused: int = 0
    duplicates: int = 0
    loop_busy_s: float = 0.0  # wall time inside loop iterations
    trim_s: float = 0.0  # wall time in malloc_trim (tune_process)
    loop_cpu_s: float = 0.0  # CPU time of the loop thread inside them (busy >> cpu: starved or GIL-bound)
    edge_rejects: dict[str, int] = field(default_factory=dict)
    engine_rejects: dict[str, int] = field(default_factory=dict)
    step_seconds: StepTimes = field(default_factory=StepTimes)


class Opener(Protocol):
    """How the runtime gets its store and node (the driver decides:
    :data:`clearlane.adapters.embedded.EMBEDDED` for the embedded defaults)."""

    def resolve_config(
        self, db: str | Path, config_path: str | Path | None
    ) -> tuple[ClearingConfig | None, int | None]: ...

    def open_node(self, db: str | Path, config_path: str | Path | None, **options: Any) -> Node[Any]: ...


class Runtime:
    """Owns the node, the read model, the bus and the loop thread. Use :meth:`start` /
    :meth:`stop`; submit with :meth:`submit_trades` / :meth:`submit_events` (thread-safe)."""

    def __init__(
        self,
        db: str | Path,
        config_path: str | Path | None = None,
        *,
        clock: Clock | None = None,
        options: RuntimeOptions | None = None,
        keys: str | Path | None = None,
        opener: Opener,
    ) -> None:
        self.options = options or RuntimeOptions()
        self.bus = EventBus()
        self.lock = threading.RLock()
        self.counters = RuntimeCounters()
        self._opener = opener
        config, self._webhook_mark = opener.resolve_config(db, config_path)
        # Events of steps past the webhook high-water mark, derived again while replaying: the
        # webhook service persists them on start (at-least-once across a crash).
        self.replay_tail: list[tuple[int, list[EventGroup]]] = []
        self.readmodel: ReadModel | None = None
        self.step_listeners: list[Callable[[LogEntry, Step], None]] = []
        if config is not None:
            self.readmodel = ReadModel(
                config,
                None,  # type: ignore[arg-type]
                cache_rows=self.options.cache_rows,
                bucket_ms=self.options.bucket_ms,
                bounded=True,
                hot_ids=self.options.hot_ids,
            )
        self._live = False
        self.node = self._open_node(db, config_path, keys)
        if self.readmodel is None:  # pragma: no cover - resolve_config mirrors open_node
            raise RuntimeError("configuration could not be resolved")
        self.readmodel.records.store = self.node.store
        self.readmodel.archive = self.node.flow_archive
        self.config = self.node.config
        self.store = self.node.store
        self.intake = Intake(self.config)
        engine = self.node.engine
        self.clock: Clock = clock or RealtimeClock()
        if isinstance(self.clock, AcceleratedClock) and engine.now_ms > self.clock.start_ms:
            self.clock.start_ms = max(engine.now_ms, engine.chain_seen_ms)
        block = int(self.config.chain["block_time_ms"])
        self.chain_poll_ms = self.options.chain_poll_ms or max(1, block // 2)
        self._last_chain_ms = max(engine.chain_seen_ms, 0)
        self._init_loop_state()

    def _open_node(
        self, db: str | Path, config_path: str | Path | None, keys: str | Path | None
    ) -> Node[Any]:
        """Open the store and replay its log, the read model observing every replayed step."""
        node = self._opener.open_node(
            db,
            config_path,
            durable=self.options.durable,
            keys=keys,
            observer=self._observe,
            flow_ids={
                "run_ids": self.options.flow_id_run_ids,
                "bloom_bits": self.options.flow_id_bloom_bits,
                "background": self.options.flow_id_background,
            },
        )
        node.engine.seen_flow_ids.hot_ids = self.options.hot_ids
        return node

    def _init_loop_state(self) -> None:
        """The submission queues, the loop thread's controls and the stats/trim timers."""
        self._trades: list[_TradeJob] = []
        self._events: list[_EventJob] = []
        self._queued_rows = 0
        self._qlock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inflight: list[Future[list[dict[str, Any]]]] = []  # taken by the current iteration
        self.failed: BaseException | None = None
        self._last_stats_wall = 0.0
        self._stats_seq = -1
        self.stats_builder: Callable[[], dict[str, Any]] | None = None
        self.started_wall = time.time()
        self._step_groups: list[EventGroup] = []
        self.extra_queues: dict[str, Callable[[], int]] = {}
        # Called on the loop thread after every iteration with the engine time it advanced to
        # (node/monitor: canaries, divergence): they may submit like any client.
        self.hooks: list[Callable[[int], None]] = []
        self._trim: Callable[[int], int] | None = None
        self._last_trim = time.perf_counter()

    def summary(self) -> dict[str, Any]:
        """The figures ``demo`` prints (node/report.py) of this node; call with the lock held."""
        return report_summary(self.node)

    @property
    def queries(self) -> NodeQueries:
        """The engine's live figures as snapshots (open batches, balances, liquidity, tip)."""
        return self.node.queries

    @property
    def rm(self) -> ReadModel:
        if self.readmodel is None:  # pragma: no cover
            raise RuntimeError("read model not ready")
        return self.readmodel

    # ------------------------------------------------------------------ observer
    def _observe(self, entry: LogEntry, fx: Step) -> None:
        rm = self.readmodel
        if rm is None:
            return
        groups = rm.apply(entry, fx)
        for listen in self.step_listeners:  # node/monitor: flows per exchange batch
            listen(entry, fx)
        if fx.escrow_events():
            groups += escrow_app.escrow_groups(entry.seq, fx, self.node.engine.escrow)
        if not self._live:
            if self._webhook_mark is not None and entry.seq > self._webhook_mark:
                wanted = [g for g in groups if g.type in WEBHOOK_EVENTS]
                if wanted:
                    self.replay_tail.append((entry.seq, wanted))
            return
        self._step_groups.extend(groups)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self._live = True
        self._step_groups = []
        if self.options.tune_process:
            # A first step's one-time costs, before the freeze (what they load is frozen too).
            self.node.warm()
            self.intake.warm(self.clock.now_ms())
            gc.collect()
            gc.freeze()
            gc.set_threshold(20_000, 20, 20)
            try:
                self._trim = ctypes.CDLL("libc.so.6").malloc_trim
            except (OSError, AttributeError):  # pragma: no cover - not glibc
                self._trim = None
        self._thread = threading.Thread(target=self._run, name="clearlane-runtime", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        gone = True
        if self._thread is not None:
            self._thread.join(timeout)
            gone = not self._thread.is_alive()
            self._thread = None
        self._fail_pending(RuntimeUnavailable("runtime stopped"), inflight=gone)
        with self.lock:
            if self.failed is None:
                try:
                    self.node.checkpoint()
                except Exception:  # pragma: no cover - best effort on shutdown
                    log.exception("checkpoint on stop failed")
            self.node.close()

    @property
    def healthy(self) -> bool:
        return self.failed is None and self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ submit (any thread)
    def submit_trades(
        self, rows: list[dict[str, Any]], *, single: bool = False
    ) -> Future[list[dict[str, Any]]]:
        """Queue trades; the future gets one receipt per row, or raises SubmissionRefused."""
        future: Future[list[dict[str, Any]]] = Future()
        job = _TradeJob(rows, self.clock.now_ms(), time.perf_counter(), future, "" if single else "trades")
        self._enqueue(future, trades=job)
        return future

    def submit_decoded(self, batch: pa.RecordBatch) -> Future[list[dict[str, Any]]]:
        """Queue a bulk submission a gateway decoded (``intake.rows.decoded_batch``): judged and
        answered exactly as the same rows given to :meth:`submit_trades` (``trades[i].field``)."""
        if not batch.schema.equals(DECODED_SCHEMA):
            raise ValueError("a decoded submission must be of intake.rows.DECODED_SCHEMA")
        future: Future[list[dict[str, Any]]] = Future()
        job = _TradeJob(batch, self.clock.now_ms(), time.perf_counter(), future, "trades")
        self._enqueue(future, trades=job)
        return future

    def submit_events(self, kind: str, payloads: list[dict[str, Any]]) -> Future[list[dict[str, Any]]]:
        """Queue small events of one kind (payment, collateral_deposit, collateral_withdrawal)."""
        future: Future[list[dict[str, Any]]] = Future()
        self._enqueue(
            future, events=_EventJob(kind, payloads, self.clock.now_ms(), time.perf_counter(), future)
        )
        return future

    def _enqueue(
        self,
        future: Future[list[dict[str, Any]]],
        trades: _TradeJob | None = None,
        events: _EventJob | None = None,
    ) -> None:
        if self.failed is not None or self._stop.is_set() or self._thread is None:
            future.set_exception(RuntimeUnavailable("the clearing runtime is not running"))
            return
        with self._qlock:
            rows = len(trades.rows) if trades else len(events.payloads) if events else 0
            if self._queued_rows + rows > self.options.max_queue_rows:
                future.set_exception(RuntimeUnavailable("submission queue is full; retry later"))
                return
            self._queued_rows += rows
            if trades is not None:
                self._trades.append(trades)
            if events is not None:
                self._events.append(events)
        self._wake.set()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self._wait_seconds())
                self._wake.clear()
                if self._stop.is_set():
                    break
                if not self._due_now():
                    continue
                started = time.perf_counter()
                cpu = time.thread_time()
                self._iteration()
                self.counters.loop_busy_s += time.perf_counter() - started
                self.counters.loop_cpu_s += time.thread_time() - cpu
        except BaseException as exc:  # the engine may be half-applied: stop taking input
            self.failed = exc
            log.exception("clearing runtime failed: %s: %s", type(exc).__name__, exc)
            # Every waiting submission is answered (503), also those the failed iteration had
            # taken: a request left waiting would hold its connection, and a server's stop, for ever.
            self._fail_pending(RuntimeUnavailable(f"clearing runtime failed: {exc}"), inflight=True)

    def _due_now(self) -> bool:
        """Whether an iteration is due now; else the loop waits again (``_wait_seconds``)."""
        if self._events or not self._trades:
            return True  # small events are stepped at once; with nothing queued, time may be due
        return self._step_wait() <= 0.0

    def _step_wait(self) -> float:
        """Seconds to wait before stepping the queued trades. A trade's batch window starts when
        the trade is stepped (the step's time is its time), and a step's cost is mostly fixed
        (docs/PERFORMANCE.md). So with close_on_time: at once when no batch is open — the trades
        start a window now — and otherwise at the earliest open window's end, in the step that
        closes it (the trades start the next window there): one step a window under load. A
        queued trade never waits more than ``tick_ms`` (long windows: it joins the open batch)."""
        try:
            oldest = self._trades[0]
        except IndexError:
            return 0.0
        wait = self.options.tick_ms / 1000 - (time.perf_counter() - oldest.wall)
        if self.options.close_on_time:
            due = self._batch_due_ms()
            if due is None:
                return 0.0
            wait = min(wait, (due - self.clock.now_ms()) / self.clock.speed / 1000)
        return max(0.0, wait)

    def _wait_seconds(self) -> float:
        """How long the loop may sleep: until the queued trades' step (``_step_wait``), the next
        batch window's end (close_on_time: at its end, so a quiet pool's batch is cleared when its
        window ends, not a tick later), the next chain poll, or the next stats event."""
        if self._events:
            return 0.0
        if self._trades:
            return self._step_wait()
        speed = self.clock.speed
        now = self.clock.now_ms()
        waits = [self.options.stats_interval_ms / 1000]
        due = self._batch_due_ms()
        if due is not None:
            late = 0.0 if self.options.close_on_time else self.options.tick_ms / 1000
            waits.append(max(0.0, (due - now) / speed / 1000 + late))
        if self._has_pending_work():
            poll_at = self._last_chain_ms + self.chain_poll_ms
            if due is not None and self.options.close_on_time:  # taken after the next close (_poll_due)
                poll_at = max(poll_at, min(due, poll_at + int(self.options.tick_ms * speed)))
            waits.append(max(0.0, (poll_at - now) / speed / 1000))
        return min(waits)

    def _batch_due_ms(self) -> int | None:
        engine = self.node.engine
        open_at = engine.open_at
        live = open_at >= 0
        if not live.any():
            return None
        return int((open_at[live] + engine.window_ms[live]).min())

    def _has_pending_work(self) -> bool:
        engine = self.node.engine
        # Escrow deadlines (fund timeouts, inspection lapses) are fired by the engine clock too.
        return engine.has_pending_work() or engine.next_escrow_deadline_ms() is not None

    def _iteration(self) -> None:
        with self._qlock:
            trades, self._trades = self._trades, []
            events, self._events = self._events, []
            self._queued_rows = 0
            self._inflight = [j.future for j in trades] + [j.future for j in events]
        now = self.clock.now_ms()
        due = self._batch_due_ms()
        closing = bool(trades) and due is not None and now >= due  # the trade step closes a window
        if trades:
            self._apply_trades(trades, now)
        for job in events:
            if job.kind == ESCROW_KIND:
                self._apply_escrow(job, now)
            elif job.kind == MANUAL_SETTLEMENT_KIND:
                self._apply_operator_input(job, now, manual_app.parse, manual_app.submit)
            elif job.kind == LEDGER_ADJUSTMENT_KIND:
                self._apply_operator_input(job, now, adjust_app.parse, adjust_app.submit)
            else:
                self._apply_events(job, now)
        advanced_to = self.clock.now_ms()
        self._advance(advanced_to, closing)
        if isinstance(self.clock, AcceleratedClock):
            # Everything due by ``advanced_to`` is applied (a batch still to close waits at most
            # a tick more): the clock may run on from there, and no further (the class docstring).
            self.clock.caught_up(advanced_to)
        for hook in self.hooks:
            hook(advanced_to)
        self._maybe_stats()

    def _publish(self) -> None:
        groups, self._step_groups = self._step_groups, []
        if groups:
            self.bus.publish(groups)

    def _at(self, now: int) -> int:
        engine = self.node.engine
        return max(now, engine.now_ms)

    # -- trades ------------------------------------------------------------------------------
    def _apply_trades(self, jobs: list[_TradeJob], now: int) -> None:
        table, errors, slices = self.intake.trades([(j.rows, j.received_ms, j.prefix) for j in jobs])
        for job, errs in zip(jobs, errors, strict=True):
            if errs:
                self._refuse(job.future, errs, len(job.rows))
        # Ids already known are answered from the read model, not logged again; a submission
        # holding any id re-sent with different content is refused whole (nothing of it logged).
        existing = self._existing_mask(table)
        ids = table.column("trade_id")
        distinct = pc.count_distinct(ids).as_py() == table.num_rows
        conflicts = self._conflicts(jobs, errors, slices, table, existing, distinct)
        keep = ~existing
        for (start, n), clash in zip(slices, conflicts, strict=True):
            if clash:
                keep[start : start + n] = False
        fresh = table.filter(pa.array(keep)) if not keep.all() else table
        answers = receipts.RECEIPT_SCHEMA.empty_table()
        fx: Step | None = None
        if fresh.num_rows:
            started = time.perf_counter()
            with self.lock:
                fx = self.node.submit("trades", fresh, self._at(now))
                if fx is not None:
                    answers = receipts.step_receipt_table(fx)
            self.counters.step_seconds.observe("trades", time.perf_counter() - started)
            self.counters.trade_steps += 1
            self.counters.steps += 1
        self._publish()
        self._answer_trades(jobs, errors, slices, conflicts, table, answers, distinct)
        for r in fx.rejects() if fx is not None else []:
            self.counters.engine_rejects[r.code.slug] = self.counters.engine_rejects.get(r.code.slug, 0) + 1

    def _refuse(self, future: Future[list[dict[str, Any]]], errs: list[RowError], rows: int) -> None:
        self.counters.trades_refused += rows
        for e in errs:
            self.counters.edge_rejects[e.error] = self.counters.edge_rejects.get(e.error, 0) + 1
        conflict = any(e.code == int(RejectCode.ID_CONFLICT) for e in errs)
        future.set_exception(SubmissionRefused(errs, status=409 if conflict else 422))

    def _answer_trades(
        self,
        jobs: list[_TradeJob],
        errors: list[list[RowError]],
        slices: list[tuple[int, int]],
        conflicts: list[list[RowError]],
        table: pa.Table,
        answers: pa.Table,
        distinct: bool,
    ) -> None:
        """Resolve each valid submission's future: a receipt per row (applied now, or the
        record of the id applied before), or the conflicts that refused it. ``answers``: the
        step's receipts as columns (``receipts.step_receipt_table``). A submission whose rows
        were all applied now, each id once in the tick (the usual case), takes its slice of
        them in its own order — as columns for a gateway's decoded submission (it renders them
        in its own process), else as dicts. ``distinct``: every id of ``table`` is there once.
        The receipts come in the order of the rows applied, so when every row was applied they
        are already in the submissions' order (checked: the ids equal) and are taken as they are."""
        ids = table.column("trade_id")
        commit_wall = time.perf_counter()
        fast_pools: list[pa.Array] = []
        slow_pools: list[str | None] = []
        latencies: list[tuple[float, int]] = []
        taken: set[str] = set()
        if answers.num_rows == table.num_rows > 0 and answers.column("id").equals(ids):
            present = np.ones(table.num_rows, dtype=np.bool_)
            ordered = _one_batch(answers)
        elif answers.num_rows and table.num_rows:
            at = pc.index_in(ids, value_set=answers.column("id"))
            present = at.is_valid().to_numpy(zero_copy_only=False)
            ordered = _one_batch(answers.take(pc.fill_null(at, 0)))
        else:
            present = np.zeros(table.num_rows, dtype=np.bool_)
            ordered = _one_batch(answers)
        by_id: dict[str, dict[str, Any]] | None = None
        id_list: list[str] | None = None
        for job, errs, (start, n), clash in zip(jobs, errors, slices, conflicts, strict=True):
            if errs:
                continue
            if clash:
                self._refuse(job.future, clash, n)
                continue
            wait_ms = (commit_wall - job.wall) * 1000
            if distinct and n and present[start : start + n].all():  # every row applied now
                part = ordered.slice(start, n)
                fast_pools.append(part.column("pool"))
                latencies.append((wait_ms, n))
                self.counters.trades_accepted += n
                job.future.set_result(
                    part if isinstance(job.rows, pa.RecordBatch) else receipts.receipt_dicts(part)
                )
                continue
            if by_id is None:
                by_id = {d["id"]: d for d in receipts.receipt_dicts(answers)}
                id_list = ids.to_pylist()
            out: list[dict[str, Any]] = []
            for i in range(start, start + n):
                trade_id = id_list[i]  # type: ignore[index]
                hit = by_id.get(trade_id)
                if hit is not None and trade_id not in taken:
                    taken.add(trade_id)
                    out.append(hit)
                    slow_pools.append(hit["pool"])
                    latencies.append((wait_ms, 1))
                    self.counters.trades_accepted += 1
                else:
                    out.append(self._existing_receipt(trade_id, kind=0))
                    self.counters.duplicates += 1
            job.future.set_result(out)
        if latencies and self.readmodel is not None:
            # Each receipt's lane as the read model keys it: its pool, or Layer-1 (no pool).
            pools = pa.concat_arrays([*fast_pools, pa.array(slow_pools, pa.string())])
            keys = lookup(pools, self.rm.pool_lookup, self.rm.l1).astype(np.int64)
            waits = np.repeat([w for w, _ in latencies], [k for _, k in latencies])
            with self.lock:
                self.readmodel.activity.observe_api(keys, waits, self._at(self.clock.now_ms()))

    def _conflicts(
        self,
        jobs: list[_TradeJob],
        errors: list[list[RowError]],
        slices: list[tuple[int, int]],
        table: pa.Table,
        existing: np.ndarray[Any, np.dtype[np.bool_]],
        distinct: bool,
    ) -> list[list[RowError]]:
        """Per submission, its rows whose id is known with different content (code 116): known
        to the store (compared with the logged input) or claimed earlier in this tick by a
        submission that is applied. Content is compared as values (engine/dedup.py digests).
        ``distinct``: every id of ``table`` is there once."""
        out: list[list[RowError]] = [[] for _ in jobs]
        if table.num_rows == 0:
            return out
        ids = table.column("trade_id")
        if distinct and not existing.any():
            return out  # every id new and distinct: nothing can conflict
        digests = trade_digests(table)
        stored = self._stored_digests(table, existing)
        id_list = ids.to_pylist()
        claimed: dict[str, int] = {}
        for k, (job, errs, (start, n)) in enumerate(zip(jobs, errors, slices, strict=True)):
            if errs:
                continue
            mine: dict[str, int] = {}
            for i in range(start, start + n):
                trade_id, digest = id_list[i], int(digests[i])
                known = stored.get(i) if existing[i] else claimed.get(trade_id, mine.get(trade_id))
                if known is None:
                    mine[trade_id] = digest
                elif known != digest:
                    name = f"{job.prefix}[{i - start}].trade_id" if job.prefix else "trade_id"
                    out[k].append(_conflict(i - start, name, "trade_id", trade_id))
            if not out[k]:
                claimed.update(mine)
        return out

    def _stored_digests(
        self, table: pa.Table, existing: np.ndarray[Any, np.dtype[np.bool_]]
    ) -> dict[int, int]:
        """Per row of ``table`` whose id is known: the content digest of the input that applied
        it, read back from the log (one decode per log entry)."""
        out: dict[int, int] = {}
        rows = np.flatnonzero(existing).tolist()
        if not rows:
            return out
        ids = table.column("trade_id").to_pylist()
        logged: dict[int, tuple[dict[str, int], npt.NDArray[np.uint64]]] = {}
        for i in rows:
            hit = self._find(ids[i], kind=0)
            if hit is None:
                continue
            seq = hit[1]
            if seq not in logged:
                original = self._logged_trades(seq)
                index = {t: j for j, t in enumerate(original.column("trade_id").to_pylist())}
                logged[seq] = (index, trade_digests(original))
            index, digests = logged[seq]
            j = index.get(ids[i])
            if j is not None:
                out[i] = int(digests[j])
        return out

    def _logged_trades(self, seq: int) -> pa.Table:
        payload = self.store.log_payload(seq)
        if payload is None or payload[0] != "trades":
            return TRADE_CHUNK_SCHEMA.empty_table()
        table: pa.Table = decode_payload("trades", payload[1])
        return table

    def _find(self, flow_id: str, kind: int) -> tuple[tuple[Any, int], int] | None:
        """``((chunk, row), log seq)`` of an applied flow's record in the read model."""
        rm = self.rm
        with self.lock:
            hit = rm.find(flow_id, kind=kind)
            if hit is None:
                return None
            return hit, int(rm.chunk_seq[hit[0]])

    def _existing_mask(self, table: pa.Table) -> np.ndarray[Any, np.dtype[np.bool_]]:
        rm = self.readmodel
        if rm is None or table.num_rows == 0:
            return np.zeros(table.num_rows, dtype=np.bool_)
        with self.lock:
            maybe = rm.maybe_known(table.column("trade_id"))
            if not maybe.any():
                return maybe
            ids = table.column("trade_id").to_pylist()
            for i in np.flatnonzero(maybe).tolist():
                maybe[i] = rm.find(ids[i], kind=0) is not None
        return maybe

    def _existing_receipt(self, flow_id: str, kind: int = 0) -> dict[str, Any]:
        """The receipt (status ``duplicate``) of an id already applied."""
        rm = self.rm
        with self.lock:
            hit = rm.find(flow_id, kind=kind)
            if hit is None:
                raise LookupError(flow_id)
            chunk, row = hit
            table = rm.chunk_table(chunk)
            record = table.slice(row, 1).to_pylist()[0]
            state = int(rm.current_states(table.slice(row, 1))[0])
        return receipts.record_receipt(record, state)

    # -- small events --------------------------------------------------------------------------
    def _apply_events(self, job: _EventJob, now: int) -> None:
        """Small events of one request, all or nothing: any invalid item, any id re-sent with
        different content (409, code 116) or any withdrawal the engine would refuse refuses the
        whole request before anything is logged; then each item is its own step."""
        validated: list[dict[str, Any]] = []
        errs: list[RowError] = []
        prefix = "items" if len(job.payloads) > 1 else ""
        for i, obj in enumerate(job.payloads):
            data, err = self.intake.event(job.kind, obj, i, prefix)
            if err is not None:
                errs.append(err)
            elif data is not None:
                validated.append(data)
        if not errs:
            errs = self._event_conflicts(job.kind, validated, prefix)
        if not errs and job.kind == "collateral_withdrawal":
            errs = [e for i, d in enumerate(validated) if (e := self._withdrawal_refused(d, i, prefix))]
        if errs:
            for e in errs:
                self.counters.edge_rejects[e.error] = self.counters.edge_rejects.get(e.error, 0) + 1
            conflict = any(e.code == int(RejectCode.ID_CONFLICT) for e in errs)
            job.future.set_exception(SubmissionRefused(errs, status=409 if conflict else 422))
            return
        results: list[dict[str, Any]] = []
        engine_errors: list[RowError] = []
        for i, data in enumerate(validated):
            receipt, rejects = self._apply_event(job.kind, data, now)
            engine_errors.extend(RowError.of(i, r, prefix) for r in rejects)
            results.append(receipt)
        if engine_errors and job.kind != "payment":
            job.future.set_exception(SubmissionRefused(engine_errors))
        else:
            job.future.set_result(results)

    def _apply_operator_input(
        self,
        job: _EventJob,
        now: int,
        parse: Callable[[Any], tuple[Any, RowError | None]],
        submit: Callable[[Any, Any, int], tuple[dict[str, Any], Any]],
    ) -> None:
        """One operator input — a manual settlement (node/manual.py) or a ledger adjustment
        (node/adjust.py): refused at the edge (422, nothing logged), or logged and judged by the
        engine (a refusal is answered 409 with its stable code)."""
        record, err = parse(job.payloads[0] if job.payloads else None)
        if record is None or err is not None:
            job.future.set_exception(SubmissionRefused([err] if err else []))
            return
        with self.lock:
            receipt, reject = submit(self.node, record, self._at(now))
            self.counters.steps += 1
        self._publish()
        if reject is not None:
            job.future.set_exception(SubmissionRefused([RowError.of(0, reject)], status=409))
        else:
            job.future.set_result([receipt])

    def _apply_escrow(self, job: _EventJob, now: int) -> None:
        """One escrow action (node/escrow.py): refused at the edge (nothing logged, 422), or
        logged and judged by the engine (a refusal is answered 409 with its stable code)."""
        action, err = escrow_app.parse_action(job.payloads[0] if job.payloads else None)
        if action is None or err is not None:
            job.future.set_exception(SubmissionRefused([err] if err else []))
            return
        with self.lock:
            receipt = escrow_app.submit(self.node, action, self._at(now))
            self.counters.steps += 1
        self._publish()
        refused = receipt.error()
        if refused is not None:
            job.future.set_exception(SubmissionRefused([refused], status=409))
        else:
            job.future.set_result([receipt.to_dict()])

    def _apply_event(self, kind: str, data: dict[str, Any], now: int) -> tuple[dict[str, Any], list[Any]]:
        """Log and apply one small event (an exact re-send is answered, not logged)."""
        event_id = str(data[_EVENT_ID_FIELD[kind]])
        if self._event_known(kind, data) is not None:
            if kind == "payment":
                return self._existing_receipt(event_id, kind=1), []
            return receipts.event_receipt(event_id, kind, "duplicate"), []
        started = time.perf_counter()
        with self.lock:
            fx = self.node.submit(kind, data, self._at(now))
            receipt = receipts.event_receipt(event_id, kind)
            rejects = [] if fx is None else fx.rejects()
            if fx is not None and kind == "payment":
                receipt = receipts.step_receipts(fx).get(event_id, receipt)
            for r in rejects:
                self.counters.engine_rejects[r.code.slug] = (
                    self.counters.engine_rejects.get(r.code.slug, 0) + 1
                )
            self.counters.steps += 1
        self.counters.step_seconds.observe("event", time.perf_counter() - started)
        self._publish()
        return receipt, rejects

    def _event_conflicts(self, kind: str, items: list[dict[str, Any]], prefix: str) -> list[RowError]:
        """Items whose id was applied (or is earlier in this request) with different content."""
        id_field = _EVENT_ID_FIELD[kind]
        out: list[RowError] = []
        earlier: dict[str, int] = {}
        for i, data in enumerate(items):
            event_id = str(data[id_field])
            digest = _event_digest(kind, data)
            clash = self._event_known(kind, data)
            if clash is None and event_id in earlier:
                clash = earlier[event_id] != digest
            earlier.setdefault(event_id, digest)
            if clash:
                name = f"{prefix}[{i}].{id_field}" if prefix else id_field
                out.append(_conflict(i, name, id_field, event_id))
        return out

    def _event_known(self, kind: str, data: dict[str, Any]) -> bool | None:
        """``None``: the id is new; ``False``: applied with the same content; ``True``: applied
        with different content (compared as values: engine/dedup.py)."""
        record = log_payload(kind, data)
        if isinstance(record, CollateralDeposit | CollateralWithdrawal):
            with self.lock:
                return self.node.engine.event_conflict(record)
        if not isinstance(record, Payment) or not self._payment_exists(record.payment_id):
            return None
        hit = self._find(record.payment_id, kind=1)
        logged = None if hit is None else self.store.log_payload(hit[1])
        if logged is None or logged[0] != "payment":
            return False  # applied, its input out of reach: answered as the duplicate it may be
        original = log_payload("payment", decode_payload("payment", logged[1]))
        return not isinstance(original, Payment) or payment_digest(original) != payment_digest(record)

    def _withdrawal_refused(self, data: dict[str, Any], index: int, prefix: str) -> RowError | None:
        """The engine's own collateral check (:meth:`Engine.withdrawal_allowed`, asked, not
        re-computed), run before logging: a withdrawal it would refuse is answered 422 and never logged (the loop thread is the only writer, so the state it sees
        is the state the engine would apply it to)."""
        engine = self.node.engine
        p = engine.participant_lookup[str(data["participant"])]
        a = engine.asset_lookup[str(data["asset"])]
        from clearlane.core.money import parse_decimal

        amount = parse_decimal(str(data["amount"]), int(engine.scales[a]))
        with self.lock:
            if (
                model_ids.event_key(model_ids.WITHDRAWAL_KIND, str(data["withdrawal_id"]))
                in engine.seen_event_ids
            ):
                return None
            if engine.withdrawal_allowed(p, a, amount):
                return None
        name = f"{prefix}[{index}].amount" if prefix else "amount"
        code = RejectCode.COLLATERAL_INSUFFICIENT
        return RowError(
            index,
            int(code),
            code.slug,
            name,
            "withdrawal would leave open L2 exposure uncovered or exceeds posted collateral",
            str(data["withdrawal_id"]),
        )

    def _payment_exists(self, payment_id: str) -> bool:
        with self.lock:
            return model_ids.payment_key(payment_id) in self.node.engine.seen_flow_ids

    # -- time ------------------------------------------------------------------------------------
    def _advance(self, now: int, closed: bool = False) -> None:
        """Step time alone: a ``tick`` that closes the windows that have ended (close_on_time: at
        once; otherwise a tick later) when no trades are queued — their own step closes them —
        or before a poll; then, when it is due, a base-layer poll. So a poll never closes a
        window itself: a batch is cleared (and published) before the poll's block work, and its
        anchor is handed to the base layer before the chain is observed past its close.
        ``closed``: this iteration's trade step closed a window."""
        due = self._batch_due_ms()
        late = 0.0 if self.options.close_on_time else self.options.tick_ms * self.clock.speed
        ended = due is not None and now >= due + late
        poll = self._poll_due(now, closed or ended)
        if ended and (poll or not self._trades):
            self._step_time(now, poll=False)
        if poll:
            self._step_time(now, poll=True)

    def _poll_due(self, now: int, closed: bool) -> bool:
        """Whether to poll the base layer now. A poll that sees a new block carries the block's
        work (finality, L1 settlement: tens of ms), and every window ending while it runs waits
        for it; so a due poll is taken right after a window closed — the open windows are then
        at their youngest — or when none is open, and at most a tick late."""
        if not self._has_pending_work() or now - self._last_chain_ms < self.chain_poll_ms:
            return False
        overdue = now - self._last_chain_ms >= self.chain_poll_ms + self.options.tick_ms * self.clock.speed
        return closed or overdue or not self.options.close_on_time or self._batch_due_ms() is None

    def _step_time(self, now: int, *, poll: bool) -> None:
        """One step of time alone: a base-layer poll (``node.advance``), or a ``tick`` that closes
        the windows that have ended (no base-layer traffic: a close needs none)."""
        engine = self.node.engine
        at = max(now, engine.now_ms, engine.chain_seen_ms)
        started = time.perf_counter()
        with self.lock:
            if poll and self.node.chain is not None:
                self.node.advance(at)
            else:
                self.node.submit("tick", {}, at)
            self.counters.steps += 1
        self.counters.step_seconds.observe("poll" if poll else "tick", time.perf_counter() - started)
        if poll:
            self._last_chain_ms = at
        self._publish()

    def _maybe_trim(self, wall: float) -> None:
        """tune_process: every ``trim_interval_s``, hand the allocator's free pages back to the
        OS (glibc ``malloc_trim``): freed memory otherwise stays in RSS — per-request objects of
        the HTTP side, the compaction thread's arena."""
        if self._trim is None or wall - self._last_trim < self.options.trim_interval_s:
            return
        self._last_trim = wall
        started = time.perf_counter()
        self._trim(0)
        self.counters.trim_s += time.perf_counter() - started

    def _maybe_stats(self) -> None:
        wall = time.perf_counter()
        if (wall - self._last_stats_wall) * 1000 < self.options.stats_interval_ms:
            return
        self._last_stats_wall = wall
        self._maybe_trim(wall)
        rm = self.readmodel
        if rm is None:
            return
        rm.activity.sample_queues(self._at(self.clock.now_ms()), self.queue_lengths())
        if self.bus.subscribers == 0 or self.stats_builder is None or rm.applied_seq == self._stats_seq:
            return
        self._stats_seq = rm.applied_seq
        with self.lock:
            data = self.stats_builder()
        self.bus.publish([StatsEvent(rm.applied_seq, rm.now_ms, data)])

    def queue_lengths(self) -> dict[str, int]:
        engine = self.node.engine
        rm = self.readmodel
        out = {"intake_rows": self._queued_rows}
        for k, pool in enumerate(self.config.pools):
            out[f"open_batch:{pool.id}"] = int(engine.count[k]) if engine.open_at[k] >= 0 else 0
        if rm is not None:
            out["anchor_backlog"] = int(rm.batches.counts[:, 1].sum())
            out["l1_pending"] = int(rm.activity.counts[rm.l1, S["submitted"]])
        lengths = self.bus.queue_lengths()
        out["stream_queue_max"] = max(lengths) if lengths else 0
        for name, fn in self.extra_queues.items():
            out[name] = fn()
        return out

    def _fail_pending(self, exc: BaseException, *, inflight: bool = False) -> None:
        """Answer every queued submission with ``exc`` and, with ``inflight`` (the loop is gone:
        it failed, or stopped), also those it had taken into its last iteration."""
        with self._qlock:
            trades, self._trades = self._trades, []
            events, self._events = self._events, []
            self._queued_rows = 0
            taken, self._inflight = (self._inflight, []) if inflight else ([], self._inflight)
        futures = taken + [j.future for j in trades] + [j.future for j in events]
        for future in futures:
            if not future.done():
                future.set_exception(exc)


_EVENT_ID_FIELD = {
    "payment": "payment_id",
    "collateral_deposit": "deposit_id",
    "collateral_withdrawal": "withdrawal_id",
}


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    """A table as one record batch (its slices are then views, sent to a gateway without
    copying columns: link.encode_batch)."""
    return pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], schema=table.schema)


def _event_digest(kind: str, data: dict[str, Any]) -> int:
    record = log_payload(kind, data)
    if isinstance(record, Payment):
        return payment_digest(record)
    if isinstance(record, CollateralDeposit | CollateralWithdrawal):
        return collateral_digest(record)
    raise TypeError(f"{kind} has no content digest")


def _conflict(index: int, name: str, id_field: str, flow_id: str) -> RowError:
    code = RejectCode.ID_CONFLICT
    reason = f"{id_field} {flow_id!r} was already submitted with different content"
    return RowError(index, int(code), code.slug, name, reason, flow_id)
