"""The pipelined step writer: commits engine steps on a second thread.

On the bulk path (``Node.clear_batches``) the engine applies step N + 1 while this thread
chains step N into the audit log (the node's ``seal`` callback: transition, audit records,
state root, checkpoint signature) and commits it: SQLite executes, hashing and LZ4/Arrow IPC
encoding release the GIL, so the two overlap on the second core. Nothing about what is committed changes — every step is still one log entry with
all its effects and its state root, written by :meth:`Store.commit_steps`, in log order. Steps
that queue up while a transaction runs are committed together in the next transaction (group
commit): a crash leaves a prefix of the log committed, never part of a step.

What pipelining changes is *when* a committed step's transactions reach the base layer: only
after its commit, which the node learns from :meth:`StepWriter.wait_committed` (the outbox
rule), and only at a chain observation (see ``Node.advance``), which records in its log
entry how far the base layer had been fed, so recovery reproduces it exactly.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from clearlane.core.engine.core import Engine, LogEntry
from clearlane.core.errors import Unavailable
from clearlane.core.model.events import Step
from clearlane.node.auditor import Auditor, AuditStep
from clearlane.node.ports import Store

# Steps queued but not yet committed, by weight: the engine stalls when the writer is this far
# behind, which bounds the memory held by uncommitted effects. A step carrying trade records
# (a chunk: tens of thousands of rows) weighs BIG_STEP, any other step 1 — so six chunks, or up
# to MAX_IN_FLIGHT small steps (deposits, chain observations), which the writer then commits
# together. (A count of 6 whatever the size made the day's 1,999 deposits 1,999 transactions of
# one to six steps each.)
BIG_STEP = 16
MAX_IN_FLIGHT = 6 * BIG_STEP
# Steps committed in one transaction at most (group commit of small steps such as deposits).
MAX_GROUP = 256


@dataclass
class PendingStep:
    """Everything :meth:`Store.commit_steps` needs for one applied log entry."""

    entry: LogEntry
    payload: bytes
    source_id: str | None
    step: Step
    state_root: str
    now_ms: int
    audit: AuditStep | None
    meta: dict[str, str] = field(default_factory=dict)
    # Pipelined: the engine's pre-root and chain tip at this step; the writer's ``seal`` callback
    # chains the audit entry and fills ``audit`` and ``state_root`` before the commit.
    pre_root: bytes = b""
    tip_height: int = 0


def seal_pending(auditor: Auditor, pending: PendingStep) -> None:
    """Chain a pipelined step's audit entry and seal its state root, in log order, before its
    commit: on the writer thread, or in the writer process (``node/writer_process.py``)."""
    entry = pending.entry
    audit = auditor.step(
        entry.seq, entry.at_ms, entry.kind, entry.payload, pending.payload, pending.step, pending.source_id
    )
    pending.state_root = Engine.seal_root(pending.pre_root, audit.head)
    auditor.seal(audit, pending.state_root, pending.now_ms, pending.tip_height)
    pending.audit = audit


def step_weight(step: PendingStep) -> int:
    """How much of the in-flight budget a queued step takes (see ``MAX_IN_FLIGHT``)."""
    return BIG_STEP if step.step.trade_records else 1


class WriterError(Unavailable, RuntimeError, code="WRITER_FAILED"):
    """The writer thread failed; the steps it had not committed are not in the database."""


class StepQueue:
    """The node's side of a pipelined writer, on a thread or in a process: the queue, the
    in-flight budget (``MAX_IN_FLIGHT``), the last committed step and the writer's failure."""

    _failed = "step writer failed"

    def __init__(self, committed_seq: int) -> None:
        self._queue: queue.Queue[PendingStep | None] = queue.Queue()
        self._cond = threading.Condition()
        self._in_flight = 0  # the weight of the steps put and not yet committed (under _cond)
        self._committed_seq = committed_seq
        self._error: BaseException | None = None
        # What the writer did, for the node's stage timer and benchmarks.
        self.busy_seconds = 0.0  # sealing and committing, wall
        self.seal_seconds = 0.0  # of which sealing
        self.cpu_seconds = 0.0  # the writer's CPU, set when it ends
        self.transactions = 0
        self.steps = 0  # committed, in ``transactions`` transactions (group commit)
        self.committed_at = 0.0  # wall clock (epoch s) of the last commit

    def put(self, step: PendingStep) -> None:
        weight = step_weight(step)
        with self._cond:
            # A step heavier than the whole budget still goes when nothing else is in flight.
            while self._in_flight and self._in_flight + weight > MAX_IN_FLIGHT and self._error is None:
                self._cond.wait(0.5)
            self._raise_if_failed()
            self._in_flight += weight
            self._queued(step, weight)
        self._queue.put(step)

    def _queued(self, step: PendingStep, weight: int) -> None:
        """Called under the lock for each step put (the process writer remembers its weight)."""

    def _next_group(self) -> tuple[list[PendingStep], bool]:
        """The writer's side: the next steps to commit together (waiting for the first; then
        whatever queued up, at most ``MAX_GROUP``), and whether the end was queued behind them."""
        first = self._queue.get()
        if first is None:
            return [], True
        group = [first]
        while len(group) < MAX_GROUP:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return group, True
            group.append(more)
        return group, False

    @property
    def committed_seq(self) -> int:
        with self._cond:
            return self._committed_seq

    def wait_committed(self, seq: int) -> None:
        """Block until every step up to ``seq`` is committed (or raise the writer's error)."""
        with self._cond:
            while self._committed_seq < seq and self._error is None:
                self._cond.wait(0.5)
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise WriterError(f"{self._failed}: {self._error!r}") from self._error

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = error
            self._cond.notify_all()


class StepWriter(StepQueue):
    """A single background thread that commits queued steps in order."""

    def __init__(
        self, store: Store, committed_seq: int, seal: Callable[[PendingStep], None] | None = None
    ) -> None:
        """``committed_seq``: the last step already committed when the writer starts; ``seal``
        completes a step without an audit step (on this thread, in log order) before its commit."""
        super().__init__(committed_seq)
        self.store = store
        self._seal = seal
        self._thread = threading.Thread(target=self._run, name="clearlane-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Commit everything queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise_if_failed()

    # -- consumer side (the writer thread) ---------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self.cpu_seconds = time.thread_time()

    def _loop(self) -> None:
        stop = False
        while not stop:
            group, stop = self._next_group()
            if not group:
                break
            started = time.perf_counter()
            try:
                if self._seal is not None:
                    for step in group:
                        if step.audit is None:
                            self._seal(step)
                    self.seal_seconds += time.perf_counter() - started
                self.store.commit_steps(group)
            except BaseException as exc:  # surfaced to the node's thread by put/wait/close
                self._fail(exc)
                self._drain()
                return
            self.busy_seconds += time.perf_counter() - started
            self.transactions += 1
            self.steps += len(group)
            with self._cond:
                self._committed_seq = group[-1].entry.seq
                self.committed_at = time.time()
                self._in_flight -= sum(map(step_weight, group))
                self._cond.notify_all()

    def _drain(self) -> None:
        # Unblock a producer waiting on a full queue after a failure.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
