"""The node's ports: what the application needs from storage, the base layer, time, the flow-id
archive and event consumers, as ``typing.Protocol``s.

The node sees the outside world only through these (DESIGN.md: ``node`` sees storage, the base
layer and the clock only through ``node/ports.py``). Adapters implement them structurally, and
mypy checks that they do: ``adapters/sql`` (:class:`clearlane.adapters.sql.store.Store`,
:class:`clearlane.adapters.sql.flowids.FlowIdArchive`), ``adapters/memory``
(:class:`clearlane.adapters.memory.MemoryStore`), ``adapters/chain``
(:class:`clearlane.adapters.chain.simulated.SimulatedChain`). Every ``Store`` runs the one
contract suite in :mod:`clearlane.testing.store_contract`.

The records a store hands back (:class:`StoredEntry`, :class:`StoredTransition`) live here too,
so the node and every store speak the same types.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.cases import Case, CaseEvent
from clearlane.core.cases.silences import Silence
from clearlane.core.engine.core import LogEntry
from clearlane.core.errors import IntegrityError
from clearlane.core.model.chain import ChainEvent, TxSubmission
from clearlane.core.model.events import Step
from clearlane.core.recon.baselayer import BaseLayerRecords
from clearlane.core.recon.breaks import ExchangeBatchSummary
from clearlane.core.recon.eod import JournalLine
from clearlane.core.recon.matching import RecordOutcome
from clearlane.core.recon.records import BatchReport, ReconRecord
from clearlane.node.auditor import AuditStep, Checkpoint, KeyRecord

# What one applied step hands the store to commit: the engine's typed, frozen Step
# (core/model/events.py); this alias is the one place the ports name it.
StepOutput = Step


class StoreError(IntegrityError, RuntimeError, code="STORE_UNUSABLE"):
    """The database is missing, foreign, or inconsistent with its own log (any Store, and the
    node's recovery when a replay does not reproduce what the store holds)."""


@dataclass(frozen=True)
class StoredEntry:
    """One input-log entry as stored: decoded, with its encoded payload and hash-chain links."""

    entry: LogEntry
    source_id: str | None
    payload: bytes
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class StoredTransition:
    """One transition entry of the hash chain (its ``prev_hash`` is the step's input hash)."""

    seq: int
    body: bytes
    prev_hash: bytes
    hash: bytes
    state_root: str


class StepToCommit(Protocol):
    """One applied log entry queued for a group commit (``node/writer.PendingStep``)."""

    @property
    def entry(self) -> LogEntry: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def source_id(self) -> str | None: ...
    @property
    def step(self) -> StepOutput: ...
    @property
    def state_root(self) -> str: ...
    @property
    def now_ms(self) -> int: ...
    @property
    def audit(self) -> AuditStep | None: ...
    @property
    def meta(self) -> Mapping[str, str]: ...


class Store(Protocol):
    """Durable state: the hash-chained input log, each step's committed output, the read paths.

    Every step commits atomically (the entry, its output, its audit rows and the new engine
    state) or not at all; a source id is logged at most once. Opening is each adapter's own
    constructor (``adapters.sql.Store.open(target)``, ``adapters.memory.MemoryStore.open()``):
    what a store needs to open differs, what it does once open does not.
    """

    # -- lifecycle and meta
    def close(self) -> None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...

    # -- the log
    def engine_state(self) -> dict[str, Any] | None: ...
    def log_head(self) -> bytes | None: ...
    def has_source(self, source_id: str) -> bool: ...
    def source_ids_between(self, lo: str, hi: str) -> set[str]: ...
    def iter_log(self, after_seq: int = 0, upto_seq: int | None = None) -> Iterator[StoredEntry]: ...
    def log_payload(self, seq: int) -> tuple[str, bytes] | None: ...

    # -- commit
    def commit_step(
        self,
        entry: LogEntry,
        payload: bytes,
        source_id: str | None,
        step: StepOutput,
        state_root: str,
        now_ms: int,
        audit: AuditStep,
    ) -> bytes: ...
    # Any, not StepToCommit: the SQL store names its writer's concrete PendingStep.
    def commit_steps(self, steps: Sequence[Any]) -> bytes | None: ...
    def write_balances(self, ledger: Any, seq: int | None = None) -> None: ...
    def replace_rejects(self, source: str, rejects: list[Any]) -> None: ...

    # -- reads of committed output
    def outbox_after(self, seq: int) -> list[TxSubmission]: ...
    def find_trade(self, flow_id: str) -> dict[str, Any] | None: ...
    def trade_chunk(self, log_seq: int, part: int) -> pa.Table | None: ...
    def batch(self, batch_id: str) -> dict[str, Any] | None: ...
    def l1_group(self, group_id: str) -> dict[str, Any] | None: ...
    def l1_group_for_batch(self, batch_id: str) -> dict[str, Any] | None: ...
    def reject_reason(self, input_id: str, code: int) -> dict[str, Any] | None: ...
    def rejects_after(self, after_id: int) -> list[dict[str, Any]]: ...
    def balances(self) -> list[dict[str, Any]]: ...

    # -- the audit trail (written by the step's commit; keys and checkpoints also at start-up)
    def audit_keys(self) -> list[KeyRecord]: ...
    def add_audit_key(self, record: KeyRecord) -> None: ...
    def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...
    def latest_checkpoint(self) -> Checkpoint | None: ...
    def audit_record_hashes(self) -> list[bytes]: ...
    def iter_transitions(
        self, after_seq: int = 0, upto_seq: int | None = None
    ) -> Iterator[StoredTransition]: ...


class BaseLayer(Protocol):
    """A chain as the node sees it.

    The node logs what ``advance`` reports as engine inputs, so a replay reads the chain from
    the log: on recovery each logged observation goes to ``replay`` instead of ``advance``. A
    deterministic chain (the simulated one) re-runs ``advance`` there; a real chain
    (``adapters/chain/ethereum.py``) adopts the logged view and speaks to its node again only
    at the next ``advance``. The contract suite is :mod:`clearlane.testing.chain_contract`.
    """

    def submit(self, txs: Sequence[TxSubmission]) -> None:
        """Queue transactions; an id already pending or included is ignored."""
        ...

    def advance(self, to_ms: int) -> list[ChainEvent]:
        """Return, in order, everything that happens with block time <= ``to_ms``.

        A ``to_ms`` at or before the previous call's returns [] without changing state.
        """
        ...

    def replay(self, to_ms: int, logged: Sequence[ChainEvent]) -> None:
        """On recovery: become the adapter whose ``advance(to_ms)`` returned ``logged``."""
        ...

    def tip_height(self) -> int:
        """Height of the current best block; 0 before the first block."""
        ...

    def snapshot(self) -> bytes:
        """Canonical bytes of the whole adapter state, for `restore` after a crash."""
        ...

    @classmethod
    def restore(cls, data: bytes) -> Self:
        """Rebuild an adapter that behaves exactly like the one that produced ``data``."""
        ...


class Clock(Protocol):
    """Engine time for the service: wall time, or wall time sped up (``mode`` says which)."""

    mode: str
    speed: float

    def now_ms(self) -> int: ...


class FlowIdArchive(Protocol):
    """Accepted flow ids beyond the engine's hot tier, with where each was recorded."""

    @property
    def covered_through(self) -> int: ...
    def feed(self, seq: int, step: StepOutput) -> None: ...
    def warm(self) -> None: ...  # page in what the first feed would fault in (a service's start)
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def seen(self, namespace: str, ids: pa.Array, rows: Any, before_seq: int) -> npt.NDArray[np.bool_]: ...
    def hashes(self, ids: pa.Array, kind: int) -> Any: ...
    def maybe(self, hashes: Any) -> npt.NDArray[np.bool_]: ...
    def candidates(self, flow_id: str, kind: int) -> list[tuple[int, int, int]]: ...


class EventSink(Protocol):
    """Where the runtime publishes what committed steps caused (the in-process bus today)."""

    def publish(self, groups: Any) -> None: ...
    def add_listener(self, listener: Callable[[list[Any]], None]) -> None: ...
    def remove_listener(self, listener: Callable[[list[Any]], None]) -> None: ...


# -- reconciliation (issue 13): imported sources, runs and cases, beside the clearing store --


@dataclass(frozen=True)
class ImportRecord:
    """One imported statement or batch-report file, as the recon store keeps it."""

    import_id: str
    kind: str  # "statement" | "batch_report"
    format: str
    file_name: str
    file_sha256: str
    identity_key: str | None
    content_digest: str | None
    period: str
    imported_at_ms: int
    records: int
    balance_gap_minor: int | None


@dataclass(frozen=True)
class RunRecord:
    """One reconciliation run: its period, rule version, status and outcome counts."""

    run_id: str
    period: str
    rules_version: str
    status: str  # "completed" | "incomplete"
    at_ms: int
    counts: Mapping[str, int]
    breaks: int
    outcomes_sha256: str


class ReconStore(Protocol):
    """Reconciliation's storage: imports (external records, batch reports), runs with their
    per-record outcomes, and the generic cases with their hash-chained events. Also the read of
    the clearing store's own records the matcher compares with (the internal side)."""

    def find_import(self, identity_key: str | None, content_digest: str | None) -> str | None: ...
    def add_import(
        self, record: ImportRecord, external: Sequence[ReconRecord], reports: Sequence[BatchReport]
    ) -> None: ...
    def imports(self, period: str | None) -> list[ImportRecord]: ...
    def external_records(self, period: str | None) -> list[ReconRecord]: ...
    def batch_reports(self, period: str | None) -> list[BatchReport]: ...
    def internal_records(self, period: str | None, kinds: Collection[str] | None = None) -> list[ReconRecord]:
        """The clearing store's records of ``kinds`` (None: every kind): net instructions, L1
        transactions, and from the ledger journal collateral movements, escrow legs, entries."""
        ...

    def journal(self, until_ms: int | None = None) -> list[JournalLine]:
        """The ledger journal (entries made before ``until_ms``) with legs resolved to accounts."""
        ...

    def exchange_batches(self, period: str | None) -> dict[str, ExchangeBatchSummary]: ...
    def base_layer(self) -> BaseLayerRecords:
        """Clearlane's anchors and L1 settlements and the chain as the adapter reported it."""
        ...

    def asset_scales(self) -> dict[str, int]: ...
    def add_run(self, run: RunRecord, outcomes: Sequence[RecordOutcome]) -> None: ...
    def runs(self) -> list[RunRecord]: ...
    def run_outcomes(self, run_id: str, *, breaks_only: bool = False) -> list[RecordOutcome]:
        """A run's stored outcomes by (side, record id); ``breaks_only``: all but ``matched``."""
        ...

    def case(self, case_id: str) -> Case | None: ...
    def cases(self, *, active_only: bool = False, kind: str | None = None) -> list[Case]: ...
    def save_case(self, case: Case, event: CaseEvent) -> None:
        """Insert (version 1) or update from version - 1; another writer's change in between
        raises ``CaseError(CASE_VERSION_CONFLICT)`` and nothing is written."""
        ...

    def case_events(self, case_id: str) -> list[CaseEvent]: ...


class SilenceStore(Protocol):
    """Alert silences (core/cases/silences.py, migration 0009): saved whole by id, never
    deleted — an expired silence is kept with its end moved to when it was expired."""

    def save_silence(self, silence: Silence) -> None: ...
    def silence(self, silence_id: str) -> Silence | None: ...
    def silences(self) -> list[Silence]: ...
