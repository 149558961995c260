"""The node: the I/O loop around the pure engine.

For every input it (1) assigns the next log sequence number, (2) lets the engine apply it,
(3) commits the log entry and the effects in one transaction, and only then (4) hands the
committed transaction submissions to the base layer (an outbox: a crash can re-send, never
invent or lose). Chain events are inputs too: ``advance`` asks the base layer what happened
up to a time and logs that as a ``chain`` entry.

Restart: the engine is rebuilt by replaying the log, and the simulated chain is rebuilt by
replaying the same calls it got the first time (each chain entry's ``advance(at_ms)`` — through
``replay``, where a real chain adopts the logged events instead — each step's submissions) —
both are deterministic, so after a ``kill -9`` at any instant the process
resumes exactly after the last committed step, with nothing lost and nothing applied twice.

Pipelining (the bulk path, :meth:`Node.pipelined`): steps are committed by a writer thread
(``store/writer.py``) while the engine applies the next one. A step's submissions still reach
the base layer only after its commit (the node waits for it), and only at a chain observation.
``clear_batches`` logs each chunk's chain observation after the next chunk (T1, T2, C1, T3, C2,
...) and hands over, before observation ``M``, the submissions of every step up to ``M - 2`` but
not those of step ``M - 1``, the next chunk, whose commit may still be running: the chunk is
observed up to 1 ms before its last trade and the next chunk's transactions are all later than
that, so no transaction reaches a block later than unpipelined. How far the
base layer had been fed is recorded in the chain entry (``submitted_through``, omitted when it is
``M - 1``, the unpipelined rule), so recovery replays exactly the same submit / advance calls.

Audit: every step also goes through the :class:`~clearlane.node.auditor.Auditor`, which extends
the hash chain (input + transition entry; the head is sealed into the engine's state root) and
the checkpoint tree, and signs a checkpoint with the store's current key (a key directory next
to the database by default, created on first use). Recovery recomputes the chain, the
transitions and the audit records from the log and refuses a store whose stored ones differ.
"""

from __future__ import annotations

import gc
import os
import secrets
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import tomli_w

from clearlane.core.config.model import ClearingConfig, ConfigError, load_config, parse_config
from clearlane.core.engine.core import Engine, EngineOptions, LogEntry
from clearlane.core.model.chain import ChainEvent, TxSubmission, observation_payload
from clearlane.core.model.events import Step
from clearlane.core.model.inputs import (
    EVENT_RUN_KINDS,
    EVENT_RUN_MAX,
    EVENTS_KIND,
    ChainEvents,
    event_run_payload,
    log_payload,
)
from clearlane.core.proofs.codec import encode_payload
from clearlane.core.proofs.hashchain import input_hash
from clearlane.core.proofs.merkle import backend_name as merkle_backend
from clearlane.node.allocator import tune_allocators
from clearlane.node.auditor import AuditError, Auditor, KeyRecord
from clearlane.node.feed import ChainFeed, PendingObservation
from clearlane.node.ports import BaseLayer, FlowIdArchive, Store, StoredEntry, StoreError
from clearlane.node.queries import NodeQueries
from clearlane.node.signing import KeyStore, KeyStoreError
from clearlane.node.warm import load_cached_kernels, warm_compiler
from clearlane.node.writer import PendingStep, StepWriter, seal_pending
from clearlane.node.writer_process import ProcessStepWriter, WriterProcess

ProgressCallback = Callable[[int, int], None]
StepObserver = Callable[[LogEntry, Step], None]


KEYS_ENV = "CLEARLANE_KEYS"


def default_key_dir(db: str | Path) -> Path:
    """Where a database's signing keys live unless ``--keys`` says otherwise: ``<db stem>.keys``
    beside a SQLite file; for a database URL ``$CLEARLANE_KEYS``, else ``./clearlane.keys`` (every
    worker that may own a partition needs the same directory, so set it in deployments)."""
    text = str(db)
    if "://" in text:
        return Path(os.environ.get(KEYS_ENV) or "clearlane.keys")
    path = Path(text)
    return path.with_name(path.stem + ".keys")


@dataclass
class StageTimer:
    """Wall-clock and CPU seconds per node stage (for the benchmark; never part of state).

    CPU is the calling thread's (``time.thread_time``) from the last :meth:`start` or
    :meth:`add` on that thread; wall is from the ``started`` value passed in.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    _cpu_mark: float = 0.0

    def start(self) -> float:
        self._cpu_mark = time.thread_time()
        return time.perf_counter()

    def add(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        cpu_now = time.thread_time()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - started
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu_now - self._cpu_mark
        self._cpu_mark = cpu_now
        return now


ChainFactory = Callable[[ClearingConfig, int], BaseLayer]
"""Makes the base layer for a configuration, from its genesis time (ms)."""
ArchiveFactory = Callable[[Store, dict[str, int]], FlowIdArchive]
"""Opens the store's flow-id archive with its options."""


def _store_config(store: Store, given: ClearingConfig | str | Path | None, label: str) -> ClearingConfig:
    """The store's configuration: a new store takes ``given`` (a TOML file, or a compiled
    configuration, stored as TOML); an existing one keeps its own and refuses a different one."""
    stored_toml = store.get_meta("config_toml")
    if stored_toml is None:
        if given is None:
            raise StoreError(f"{label}: new database needs --config")
        if isinstance(given, ClearingConfig):
            config, text = given, tomli_w.dumps(given.raw)
        else:
            config, text = load_config(given), Path(given).read_text(encoding="utf-8")
        store.set_meta("config_toml", text)
        store.set_meta("config_digest", config.digest)
        return config
    config = parse_config(tomllib.loads(stored_toml), source=f"{label} (stored config)")
    if given is not None:
        digest = given.digest if isinstance(given, ClearingConfig) else load_config(given).digest
        if digest != config.digest:
            raise ConfigError(
                str(getattr(given, "source", given)),
                "-",
                f"differs from the configuration {label} was created with; use a new --db",
            )
    return config


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """How :meth:`Node.open` opens a store, given once (DESIGN.md: options at construction)."""

    label: str
    """Names the store in errors (its path, URL or ``memory``)."""
    config: ClearingConfig | str | Path | None = None
    """A new store's configuration (a TOML path or a compiled one); an existing store keeps its
    own and refuses a different one."""
    keys: str | Path | None = None
    """The signing-key directory; None opens without a private key (nothing is signed)."""
    progress: ProgressCallback | None = None
    """Called as ``(seq, total)`` while the log is replayed."""
    observer: StepObserver | None = None
    """Sees every committed (and every replayed) step, in log order."""
    flow_ids: bool | dict[str, int] = False
    """Keep accepted flow ids in the store's id runs (the service), with the archive's options."""
    archive_factory: ArchiveFactory | None = None
    """Opens the store's flow-id archive when ``flow_ids`` is set."""
    writer_store: Callable[[], Store] | None = None
    """Opens this store from another process (picklable; ``Store.reopener``): given, the node
    spawns a writer process at open, and bulk clears (:meth:`Node.clear_batches`) seal and
    commit their steps there instead of on a writer thread (``node/writer_process.py``)."""


StoreT = TypeVar("StoreT", bound=Store)


class Node(Generic[StoreT]):
    """Owns one store, one engine and one base-layer adapter."""

    def __init__(
        self,
        store: StoreT,
        config: ClearingConfig,
        engine: Engine,
        chain_factory: ChainFactory,
        auditor: Auditor | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.engine = engine
        self.queries = NodeQueries(self)
        # The base layer is created when the first transaction is handed over (its genesis is
        # that moment), or on open from the stored genesis; the driver says which adapter.
        self.chain_factory = chain_factory
        self.chain: BaseLayer | None = None
        self.auditor = auditor or Auditor(config, store.get_meta("store_id") or "0" * 32, [])
        self.timer = StageTimer()
        self.last_step: Step | None = None
        self.writer: StepWriter | ProcessStepWriter | None = None
        # The writer process (NodeOptions.writer_store), spawned at open, stopped by close().
        self.writer_process: WriterProcess | None = None
        # Submissions of committed (or, pipelined, queued) steps not yet handed to the base layer,
        # in log order, and the highest step whose submissions have all been handed over.
        self._unsubmitted: deque[tuple[int, Sequence[TxSubmission]]] = deque()
        self._submitted_through = 0
        self._inflight_sources: set[str] = set()
        # clear_batches loads the source ids under its prefix once instead of one query a step.
        self._known_sources: tuple[str, set[str]] | None = None
        # Called with every applied step after it is durable (and for every step replayed on
        # open), so read models and event publishers see exactly the committed history. Pipelined,
        # steps wait here until the writer has committed them (always called on this thread).
        self.observer: StepObserver | None = None
        self._unobserved: deque[tuple[LogEntry, Step]] = deque()
        # The store's flow-id runs (NodeOptions.flow_ids): fed every committed step.
        self.flow_archive: Any = None

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, store: StoreT, base_layer: ChainFactory, options: NodeOptions) -> Node[StoreT]:
        """Open the node on an open ``store``: take or check its configuration, rebuild engine and
        base layer (made by ``base_layer``) from its log, verifying every hash, then load the
        signing key from ``options.keys`` (None: open without a private key, no checkpoint is
        signed; read-mostly commands).

        With ``options.flow_ids`` (the service) the accepted flow ids live in the store's id runs
        (``options.archive_factory``) and only a bounded hot tier of them in memory; the log is
        replayed with every id in memory, then the ids are handed to the archive. The node has no
        clock of its own: every input carries its time, and drivers that need wall time (the
        service's runtime) submit ``tick`` inputs. Drivers open a store by path with
        :func:`clearlane.adapters.embedded.open_node`.
        """
        warm_compiler()
        tune_allocators()
        label = options.label
        config = _store_config(store, options.config, label)
        store_id = store.get_meta("store_id")
        if store_id is None:
            store_id = secrets.token_hex(16)
            store.set_meta("store_id", store_id)
        stored_keys = store.audit_keys()
        auditor = Auditor(config, store_id, [k for k in stored_keys if k.action == "init"])
        engine = Engine(config, _engine_options(bool(options.flow_ids)))
        node = cls(store, config, engine, base_layer, auditor)
        node.observer = options.observer
        if options.flow_ids and options.archive_factory is not None:
            flow_ids = options.flow_ids
            node.flow_archive = options.archive_factory(store, flow_ids if isinstance(flow_ids, dict) else {})
        genesis = store.get_meta("chain_genesis_ms")
        if genesis is not None:
            node.chain = node._new_chain(int(genesis))
        node._recover(options.progress)
        if node.flow_archive is not None:
            node.engine.seen_flow_ids.attach(node.flow_archive)
        if [k.key_id for k in auditor.keys] != [k.key_id for k in stored_keys]:
            raise StoreError(f"{label}: audit_keys does not match the key rotations in the log")
        if options.keys is not None:
            node._load_signer(KeyStore(options.keys))
        if node.engine.applied_seq:
            node.checkpoint()
        else:
            # A fresh store: the accounts the configuration made with the engine are
            # materialised now, at zero, as they are created — so the first clear's checkpoint
            # writes only the accounts it moved (on the reference day ~2,000 of 96,112, not a
            # full rewrite inside the clear: issue 18).
            store.write_balances(node.engine.ledger, 0)
        if options.writer_store is not None:
            node.writer_process = WriterProcess(options.writer_store, options.keys)
        return node

    def _load_signer(self, keystore: KeyStore) -> None:
        auditor = self.auditor
        try:
            if auditor.current_key_id is None:
                record = auditor.init_record(keystore.ensure_active(), self.engine.now_ms)
                self.store.add_audit_key(record)
            else:
                auditor.signer = keystore.load(auditor.current_key_id)
        except KeyStoreError as exc:
            raise StoreError(str(exc)) from None

    def rotate_key(self, keystore: KeyStore) -> KeyRecord:
        """Replace the signing key: a ``key_rotation`` log entry signed by the old and the new key.

        The old key's private file is deleted once the rotation is committed; its public key
        stays in the store and still verifies the checkpoints it signed.
        """
        old = self.auditor.signer
        if old is None:
            raise AuditError("no signing key loaded: open the store with its key directory")
        new = keystore.create()
        seq, at_ms = self.engine.applied_seq + 1, self.engine.now_ms
        payload = self.auditor.rotation_payload(new, seq, at_ms)
        self.auditor.pending_signer = new
        self.submit("key_rotation", payload, at_ms, f"key-rotation:{new.key_id}")
        keystore.set_active(new.key_id)
        keystore.retire(old.key_id)
        self.checkpoint()
        return self.auditor.keys[-1]

    def warm(self) -> None:
        """Pay the one-time costs of a first step now, before a service answers requests
        (node/warm.py): the compiled kernels' cached machine code, the Merkle backend's
        self-test, the flow-id archive's filter paged in. 0.36 s went into a service's first
        trade step; every request queued behind it waited for them."""
        load_cached_kernels()
        merkle_backend()
        if self.flow_archive is not None:
            self.flow_archive.warm()

    def checkpoint(self) -> None:
        """Materialise derived views (ledger balances) from the engine's current state, and sign
        a checkpoint of the log head if one was committed since the last checkpoint."""
        started = self.timer.start()
        if isinstance(self.writer, ProcessStepWriter):
            raise RuntimeError("a checkpoint inside a writer-process session: the audit chain is there")
        if self.writer is not None:
            self.writer.wait_committed(self.engine.applied_seq)
            self.engine.seal(self.auditor.head)
            self._deliver()
        self.store.write_balances(self.engine.ledger, self.engine.applied_seq)
        auditor = self.auditor
        if auditor.signer is not None and auditor.seq > max(auditor.last_checkpoint_seq, 0):
            cp = auditor.checkpoint(self.engine.state_root(), self.engine.now_ms, self.engine.tip_height)
            self.store.add_checkpoint(cp)
        self.timer.add("persist", started)

    def _new_chain(self, genesis_ms: int) -> BaseLayer:
        return self.chain_factory(self.config, genesis_ms)

    def _recover(self, progress: ProgressCallback | None) -> None:
        state = self.store.engine_state()
        if state is None:
            return
        total = int(state["applied_seq"])
        transitions = self.store.iter_transitions(0, total)
        record_hashes = self.store.audit_record_hashes()
        for stored in self.store.iter_log(0, total):
            entry = stored.entry
            expected = input_hash(self.auditor.head, entry.seq, entry.at_ms, entry.kind, stored.payload)
            if stored.prev_hash != self.auditor.head or stored.hash != expected:
                raise StoreError(f"input log entry {entry.seq} does not match its hash chain")
            if entry.kind == "chain" and self.chain is not None:
                self._hand_over(_submitted_through(entry))
                # The log is the truth about the chain: a real chain adopts it (ports.BaseLayer).
                self.chain.replay(entry.at_ms, _logged_events(entry))
            fx = self.engine.apply(entry)
            try:
                step = self.auditor.step(
                    entry.seq, entry.at_ms, entry.kind, entry.payload, stored.payload, fx, stored.source_id
                )
            except AuditError as exc:
                raise StoreError(str(exc)) from None
            row = next(transitions, None)
            if (
                row is None
                or int(row.seq) != entry.seq
                or bytes(row.hash) != step.head
                or bytes(row.body) != step.body
            ):
                raise StoreError(f"transition entry {entry.seq} differs from the replay of its input")
            for index, _, digest in step.records:
                if index >= len(record_hashes) or record_hashes[index] != digest:
                    raise StoreError(f"audit record {index} differs from the replay of log entry {entry.seq}")
            self.engine.seal(step.head)
            if fx.submissions:
                self._unsubmitted.append((entry.seq, fx.submissions))
            self._committed(entry, fx)
            if progress is not None:
                progress(entry.seq, total)
        if self.engine.applied_seq != total:
            raise StoreError(f"log ends at {self.engine.applied_seq}, engine state says {total}")
        root = self.engine.state_root()
        if root != state["state_root"]:
            raise StoreError(f"replayed state root {root} differs from the stored {state['state_root']}")
        latest = self.store.latest_checkpoint()
        self.auditor.last_checkpoint_seq = -1 if latest is None else latest.log_seq

    # ------------------------------------------------------------------ steps
    @contextmanager
    def pipelined(self, *, process: bool = False) -> Iterator[None]:
        """Commit steps on a writer thread while the engine applies the next (the bulk path).

        On leaving, everything queued is committed (or the writer's error is raised). Steps
        applied inside return before their commit: callers that acknowledge inputs to a client
        must not run in this mode. ``process``: seal and commit in the node's writer process
        instead, when it has one that can take the session (``node/writer_process.py``); the
        audit chain is the process's until the session ends, so nothing inside may read it.
        """
        if self.writer is not None:
            yield
            return
        host = self.writer_process
        writer: StepWriter | ProcessStepWriter
        if process and host is not None and host.can_serve(self.auditor):
            writer = host.session(self.auditor, self.engine.applied_seq)
        else:
            writer = StepWriter(self.store, self.engine.applied_seq, self._seal_pending)
        self.writer = writer
        try:
            yield
        finally:
            self.writer = None
            started = self.timer.start()
            try:
                writer.close()
                self.writer = writer  # deliver what it committed, then leave pipelined mode
                self._deliver()
            finally:
                self.writer = None
                self._unobserved.clear()  # not committed: the writer failed
                self.engine.seal(self.auditor.head)
                self._inflight_sources.clear()
                self.timer.add("wait for writer", started)
                for table, value in (
                    (self.timer.seconds, writer.busy_seconds),
                    (self.timer.cpu, writer.cpu_seconds),
                ):
                    table["persist (writer thread)"] = table.get("persist (writer thread)", 0.0) + value
                self.timer.seconds["  of which audit chain + root"] = (
                    self.timer.seconds.get("  of which audit chain + root", 0.0) + writer.seal_seconds
                )

    def _genesis_for(self, submissions: Sequence[TxSubmission]) -> int:
        # The chain starts at the first transaction, so an input logged without a meaningful
        # time (a deposit at 0) cannot put its genesis decades back.
        block_ms = int(self.config.chain["block_time_ms"])
        return (min(tx.submitted_at_ms for tx in submissions) // block_ms) * block_ms

    def _has_source(self, source_id: str) -> bool:
        if source_id in self._inflight_sources:
            return True
        known = self._known_sources
        if known is not None and source_id.startswith(known[0]):
            return source_id in known[1]
        return self.store.has_source(source_id)

    def assume_sources(self, prefix: str, logged: set[str]) -> None:
        """Answer "already logged?" for source ids under ``prefix`` from ``logged`` (plus the steps
        of this session) instead of a query per step. The caller guarantees that ``logged`` holds
        every logged id under ``prefix`` it will ask about (the bus worker: the entries of the
        messages from its resume point)."""
        self._known_sources = (prefix, set(logged))

    def forget_inflight_sources(self) -> None:
        """Forget the source ids of this session's pipelined steps. For a caller that never
        offers the same source id twice in a session (the bus worker skips a message delivered
        again before its ack), so a long pipelined session keeps bounded memory."""
        self._inflight_sources.clear()

    def _hand_over(self, through: int) -> None:
        """Hand the submissions of every step up to ``through`` to the base layer, in log order,
        once those steps are committed (the outbox rule)."""
        queue = self._unsubmitted
        if queue and queue[0][0] <= through:
            last = max(seq for seq, _ in queue if seq <= through)
            if self.writer is not None:
                started = self.timer.start()
                self.writer.wait_committed(last)
                self.timer.add("wait for writer", started)
                self._deliver()
            if self.chain is None:  # a store from before genesis was committed with its step
                self.chain = self._new_chain(self._genesis_for(queue[0][1]))
            while queue and queue[0][0] <= through:
                self.chain.submit(queue.popleft()[1])
        self._submitted_through = max(self._submitted_through, through)

    def submit(
        self,
        kind: str,
        payload: Any,
        at_ms: int,
        source_id: str | None = None,
        *,
        payload_bytes: bytes | None = None,
    ) -> Step | None:
        """Log and apply one input; ``None`` if ``source_id`` was already logged (a no-op).

        ``payload_bytes``: ``encode_payload(kind, payload)`` when the caller has it already
        (``clear_batches`` encodes the next chunk on its reader thread)."""
        if source_id is not None and self._has_source(source_id):
            return None
        started = self.timer.start()
        if payload_bytes is None:
            payload_bytes = encode_payload(kind, payload)
        started = self.timer.add("log encode", started)
        # The log holds ``payload_bytes`` (from ``payload`` as given); the engine gets the record.
        entry = LogEntry(self.engine.applied_seq + 1, at_ms, kind, log_payload(kind, payload))
        fx = self.engine.apply(entry)
        self.timer.add("engine apply", started)
        meta: dict[str, str] = {}
        if fx.submissions:
            if self.chain is None:
                # Its genesis is committed with the step that needs it.
                genesis = self._genesis_for(fx.submissions)
                meta["chain_genesis_ms"] = str(genesis)
                self.chain = self._new_chain(genesis)
            self._unsubmitted.append((entry.seq, fx.submissions))
        self._commit(entry, payload_bytes, source_id, fx, meta)
        if self.writer is None:
            started = self.timer.start()
            self._hand_over(entry.seq)
            self.timer.add("chain submit", started)
        self.last_step = fx
        if self.observer is not None or self.flow_archive is not None:
            if self.writer is None:
                self._committed(entry, fx)
            else:
                self._unobserved.append((entry, fx))
                self._deliver()
        return fx

    def _committed(self, entry: LogEntry, fx: Step) -> None:
        """A step is durable (or replayed): the flow-id archive, then the observer, see it."""
        if self.flow_archive is not None:
            self.flow_archive.feed(entry.seq, fx)
        if self.observer is not None:
            self.observer(entry, fx)

    def _deliver(self) -> None:
        """Hand committed steps to the observer, in log order (pipelined: as the writer commits)."""
        committed = self.engine.applied_seq if self.writer is None else self.writer.committed_seq
        queue = self._unobserved
        while queue and queue[0][0].seq <= committed:
            entry, fx = queue.popleft()
            self._committed(entry, fx)

    def _commit(
        self,
        entry: LogEntry,
        payload_bytes: bytes,
        source_id: str | None,
        fx: Step,
        meta: dict[str, str] | None = None,
    ) -> None:
        """Chain the applied entry, seal its head into the state root, then commit everything at
        once. Pipelined, only the engine's pre-root is taken here; the writer thread chains and
        seals the step (:meth:`_seal_pending`) before committing it."""
        started = self.timer.start()
        engine = self.engine
        if self.writer is not None:
            pre_root = engine.pre_root()
            started = self.timer.add("state root", started)
            pending = PendingStep(
                entry,
                payload_bytes,
                source_id,
                fx,
                "",
                engine.now_ms,
                None,
                dict(meta or {}),
                pre_root,
                engine.tip_height,
            )
            self.writer.put(pending)
            if source_id is not None:
                self._inflight_sources.add(source_id)
            self.timer.add("queue for writer", started)
            return
        audit = self.auditor.step(
            entry.seq, entry.at_ms, entry.kind, entry.payload, payload_bytes, fx, source_id
        )
        engine.seal(audit.head)
        started = self.timer.add("audit chain", started)
        root = engine.state_root()
        started = self.timer.add("state root", started)
        self.auditor.seal(audit, root, engine.now_ms, engine.tip_height)
        started = self.timer.add("audit chain", started)
        self.store.commit_steps(
            [PendingStep(entry, payload_bytes, source_id, fx, root, engine.now_ms, audit, dict(meta or {}))]
        )
        self.timer.add("persist", started)

    def _seal_pending(self, pending: PendingStep) -> None:
        """On the writer thread, in log order: chain the step's audit entry and seal the state
        root — exactly what :meth:`_commit` does inline (the auditor is the writer's while
        pipelined; the engine's own chain head is brought up to date when the pipeline ends)."""
        seal_pending(self.auditor, pending)

    def replay_entry(self, stored: StoredEntry) -> Step:
        """Apply and commit an entry read from another store's log (``clearlane replay``)."""
        fx = self.engine.apply(stored.entry)
        self._commit(stored.entry, stored.payload, stored.source_id, fx)
        return fx

    def advance(self, to_ms: int, source_id: str | None = None, *, overlap: bool = False) -> Step | None:
        """Observe the base layer up to ``to_ms`` and log what happened (even nothing).

        Every earlier step's submissions are handed over first (waiting for their commit), except
        with ``overlap`` while pipelined: then the step just before keeps committing and its
        submissions wait for the next observation — for callers whose last step can only hold
        transactions later than ``to_ms`` (``clear_batches``). The entry records how far the
        base layer was fed (module docstring).
        """
        if self.chain is None:
            return None
        if source_id is not None and self._has_source(source_id):
            return None
        seq = self.engine.applied_seq + 1
        self._hand_over(seq - 2 if overlap and self.writer is not None else seq - 1)
        started = self.timer.start()
        events = tuple(self.chain.advance(to_ms))
        through = self._submitted_through if self._submitted_through != seq - 1 else None
        payload, data = observation_payload(events, through)
        # The engine applies the events as they are, not decoded again from the dicts (equal).
        record = ChainEvents.model_construct(**payload).with_decoded(events)
        self.timer.add("chain advance", started)
        return self.submit("chain", record, to_ms, source_id, payload_bytes=data)

    def settle_until_quiet(self, *, step_ms: int | None = None, limit_ms: int = 6 * 3_600_000) -> int:
        """Advance the chain until every batch and L1 transaction is final (or unwound)."""
        step = step_ms or int(self.config.chain["block_time_ms"])
        now = max(self.engine.now_ms, self.engine.chain_seen_ms)
        start = now
        with _survivors_frozen() as survived:
            while self.engine.has_pending_work() and now - start < limit_ms:
                survived()
                now += step
                self.advance(now)
            survived()
            self.checkpoint()
        return now

    def clear_batches(
        self,
        batches: Iterable[Any],
        *,
        source: str,
        rejects: list[Any] | None = None,
        progress: Callable[[int], None] | None = None,
        events_at_ms: int | None = None,
    ) -> None:
        """Apply ingest batches (trade chunks and small events) in file order, pipelined.

        Each trade chunk is followed by a chain observation up to its last trade, logged after
        the next chunk (see the module docstring). Small events carry no time of their own: they
        are logged at ``events_at_ms`` if given, else at the engine's current time.
        """
        prefix = f"{source}#"
        # '#' + 1 == '$': every id that starts with the prefix sorts in [prefix, upper).
        upper = prefix[:-1] + "$"
        known = self.store.source_ids_between(prefix, upper)
        self._known_sources = (prefix, known)
        try:
            with _survivors_frozen() as survived:
                with self.pipelined(process=True):
                    self._clear_pipelined(
                        _prefetched(_with_payload_bytes(batches), timer=self.timer),
                        source,
                        rejects,
                        progress,
                        events_at_ms,
                        survived,
                    )
                # The checkpoint too: unfrozen, its row building set off full collections
                # over everything the clear kept (~0.1 s each on the 1M day).
                survived()
                self.checkpoint()
        finally:
            self._known_sources = None

    def _clear_pipelined(
        self,
        batches: Iterable[Any],
        source: str,
        rejects: list[Any] | None,
        progress: Callable[[int], None] | None,
        events_at_ms: int | None,
        survived: Callable[[], None],
    ) -> None:
        feed = ChainFeed()
        for index, (batch, encoded) in enumerate(batches):
            survived()
            if rejects is not None:
                rejects.extend(batch.rejects)
            if batch.trades is not None and batch.trades.table.num_rows:
                table = batch.trades.table
                at_ms = int(table.column("received_at_ms")[0].as_py())
                chunk_source = f"{source}#{index}"
                step = self.submit(
                    "trades", table, max(at_ms, self.engine.now_ms), chunk_source, payload_bytes=encoded
                )
                if rejects is not None:
                    # Id conflicts (116); a chunk logged by an earlier run is asked again.
                    conflicts = step.conflicts if step is not None else self.engine.id_conflicts(table)
                    rejects.extend(step.rejects() if step is not None else [])
                    rejects.extend(batch.trades.located(conflicts))
                due = feed.after_trades(table, chunk_source)
                if due is not None:
                    self.observe(due, overlap=True)
                if progress is not None:
                    progress(table.num_rows)
            # A file's small events stay in file order behind the pending observation (node/feed.py);
            # a run of them is one step (an EventRun), any other small event a step of its own.
            for n, kind, data in _event_steps(batch.events):
                at_ms = max(self.engine.now_ms, events_at_ms or 0)
                step = self.submit(kind, data, at_ms, f"{source}#{index}.{n}")
                if step is not None and rejects is not None:
                    rejects.extend(step.rejects())
                    rejects.extend(step.conflicts)
        last = feed.take()
        if last is not None:
            self.observe(last, overlap=False)

    def observe(self, due: PendingObservation, *, overlap: bool) -> None:
        """Log a trade chunk's base-layer observation in its place (the rule: node/feed.py)."""
        self.advance(due.to_ms(self.engine.chain_seen_ms, overlap=overlap), due.source_id, overlap=overlap)

    def close(self) -> None:
        if self.writer_process is not None:
            self.writer_process.close()
            self.writer_process = None
        if self.flow_archive is not None:
            self.flow_archive.close()
        self.store.close()


_END = object()


@contextmanager
def _survivors_frozen() -> Iterator[Callable[[], None]]:
    """During a bulk clear, what survived the steps so far is frozen (``gc.freeze``) before
    each input batch, and unfrozen at the end. The node's state only grows during a clear
    (ledger records, ids, blocks, L1 transactions), and each of the cyclic collector's full
    collections re-scanned all of it: 9 of them, ~0.7 s of the 1M-trade day (issue 18).
    Frozen objects are still freed by reference counting, and the young generations still
    collect cycles made and dropped within a batch; a cycle among survivors waits for the
    collection after the clear. The clear's checkpoint runs frozen too (unfrozen, building its
    balance rows set off full collections over everything kept), and so does
    :meth:`Node.settle_until_quiet`. The young generation's threshold is raised to 50,000
    allocations meanwhile (700 by default: ~1,450 young collections on the 1M-trade day, most
    of their objects still alive when scanned), and restored. A caller that manages the
    collector itself (it froze, or disabled collection) is left alone."""
    if gc.get_freeze_count() or not gc.isenabled():
        yield lambda: None
        return
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
    try:
        yield gc.freeze
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _event_steps(events: Sequence[Any]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """A file's small events as steps, in order: (index of the step's first event, kind, logged
    object). Consecutive events of the kinds a run may hold (``EVENT_RUN_KINDS``) are one
    ``events`` entry of at most ``EVENT_RUN_MAX``; a lone one, or any other kind, is its own
    entry as before. The step's source id is the file's chunk and its first event's index, so a
    restarted run skips what was logged (the index of a step's first event never moves)."""
    run: list[dict[str, Any]] = []
    first = 0
    for n, event in enumerate(events):
        data = event.model_dump(mode="json")
        data.pop("v", None)
        if data["type"] not in EVENT_RUN_KINDS:
            if run:
                yield _run_step(first, run)
                run = []
            kind = data.pop("type")
            yield n, kind, data
            continue
        if len(run) == EVENT_RUN_MAX:
            yield _run_step(first, run)
            run = []
        if not run:
            first = n
        run.append(data)
    if run:
        yield _run_step(first, run)


def _run_step(first: int, run: list[dict[str, Any]]) -> tuple[int, str, dict[str, Any]]:
    if len(run) == 1:
        data = dict(run[0])
        return first, data.pop("type"), data
    return first, EVENTS_KIND, event_run_payload(run)


def _with_payload_bytes(batches: Iterable[Any]) -> Iterator[tuple[Any, bytes | None]]:
    """Each ingest batch with its trade chunk's log payload encoded (on the reader thread)."""
    for batch in batches:
        table = batch.trades.table if batch.trades is not None else None
        yield batch, (encode_payload("trades", table) if table is not None and table.num_rows else None)


def _prefetched(items: Iterable[Any], depth: int = 2, timer: StageTimer | None = None) -> Iterator[Any]:
    """``items`` in order, produced by a reader thread up to ``depth`` ahead of the consumer
    (Parquet decoding and validation of chunk N + 1 overlap the engine's work on chunk N).
    An exception raised by ``items`` is re-raised here, in order. With a ``timer``, the
    consumer's waits for the next item are its stage ``wait for reader``."""
    import queue
    import threading

    buffer: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((_END, None))
        except BaseException as exc:  # handed to the consumer
            buffer.put((_END, exc))

    reader = threading.Thread(target=produce, name="clearlane-reader", daemon=True)
    reader.start()
    try:
        while True:
            started = timer.start() if timer is not None else 0.0
            item, error = buffer.get()
            if timer is not None:
                timer.add("wait for reader", started)
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()


def _engine_options(service: bool) -> EngineOptions:
    """The service (a store with flow-id runs) keeps bounded memory: no per-flow figures of the
    bulk summary, and final journal entries live in the store only."""
    return EngineOptions(keep_latencies=False, retain_final=False) if service else EngineOptions()


def _logged_events(entry: LogEntry) -> list[ChainEvent]:
    """The base-layer events chain entry ``entry`` logged."""
    payload = entry.payload
    return list(payload.decoded()) if isinstance(payload, ChainEvents) else []


def _submitted_through(entry: LogEntry) -> int:
    """How far the base layer had been fed when chain entry ``entry`` was logged."""
    payload = entry.payload
    through = payload.submitted_through if isinstance(payload, ChainEvents) else None
    return entry.seq - 1 if through is None else int(through)
