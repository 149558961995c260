"""The runner: the I/O loop around the pure engine.

For every input it (1) assigns the next log sequence number, (2) lets the engine apply it,
(3) commits the log entry and the effects in one transaction, and only then (4) hands the
committed transaction submissions to the base layer (an outbox: a crash can re-send, never
invent or lose). Chain events are inputs too: ``advance_chain`` asks the base layer what happened
up to a time and logs that as a ``chain`` entry.

Restart: the engine is rebuilt by replaying the log, and the simulated chain is rebuilt by
replaying the same calls it got the first time (each chain entry's ``advance(at_ms)``, each
step's submissions) — both are deterministic, so after a ``kill -9`` at any instant the process
resumes exactly after the last committed step, with nothing lost and nothing applied twice.

Audit: every step also goes through the :class:`~clearlane.audit.auditor.Auditor`, which extends
the hash chain (input + transition entry; the head is sealed into the engine's state root) and
the checkpoint tree, and signs a checkpoint with the store's current key (a key directory next
to the database by default, created on first use). Recovery recomputes the chain, the
transitions and the audit records from the log and refuses a store whose stored ones differ.
"""

from __future__ import annotations

import os
import secrets
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clearlane.audit.auditor import AuditError, Auditor, KeyRecord
from clearlane.audit.hashchain import input_hash
from clearlane.audit.keys import KeyStore, KeyStoreError
from clearlane.chain.port import event_to_dict
from clearlane.chain.simulated import ChainParams, FaultSchedule, SimulatedChain
from clearlane.config.model import ClearingConfig, ConfigError, load_config, parse_config
from clearlane.engine.core import Effects, Engine, LogEntry
from clearlane.store import audit_tables
from clearlane.store.codec import encode_payload
from clearlane.store.sql import Store, StoredEntry, StoreError

ProgressCallback = Callable[[int, int], None]
StepObserver = Callable[[LogEntry, Effects], None]


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
    """Wall-clock seconds per runner stage (for the benchmark; never part of state)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - started
        return now


class Runner:
    """Owns one store, one engine and one base-layer adapter."""

    def __init__(self, store: Store, config: ClearingConfig, engine: Engine, chain: SimulatedChain | None,
                 auditor: Auditor | None = None) -> None:
        self.store = store
        self.config = config
        self.engine = engine
        self.chain = chain
        self.auditor = auditor or Auditor(config, store.get_meta("store_id") or "0" * 32, [])
        self.timer = StageTimer()
        self.last_fx: Effects | None = None
        # Called with every applied step after it is durable (and for every step replayed on
        # open), so read models and event publishers see exactly the committed history.
        self.observer: StepObserver | None = None

    # ------------------------------------------------------------------ open
    @classmethod
    def open(
        cls,
        db: str | Path,
        config_path: str | Path | None = None,
        *,
        create: bool = True,
        progress: ProgressCallback | None = None,
        durable: bool = False,
        schema: str | None = None,
        keys: str | Path | None = None,
        signing: bool = True,
        observer: StepObserver | None = None,
    ) -> Runner:
        """Open (or create) a database (a SQLite path or a URL; ``schema``: a PostgreSQL
        schema of its own); rebuild engine and chain from its log.

        ``keys`` is the signing-key directory (default :func:`default_key_dir`); a store without
        a key gets the directory's active key (created on first use). ``signing=False`` opens
        without loading a private key (read-mostly commands); no checkpoint is signed then.
        """
        store = Store.open(db, create=create, durable=durable, schema=schema)
        stored_toml = store.get_meta("config_toml")
        if stored_toml is None:
            if config_path is None:
                raise StoreError(f"{db}: new database needs --config")
            config = load_config(config_path)
            store.set_meta("config_toml", Path(config_path).read_text(encoding="utf-8"))
            store.set_meta("config_digest", config.digest)
        else:
            config = parse_config(tomllib.loads(stored_toml), source=f"{db} (stored config)")
            if config_path is not None:
                offered = load_config(config_path)
                if offered.digest != config.digest:
                    raise ConfigError(
                        str(config_path), "-",
                        f"differs from the configuration {db} was created with; use a new --db",
                    )
        store_id = store.get_meta("store_id")
        if store_id is None:
            store_id = secrets.token_hex(16)
            store.set_meta("store_id", store_id)
        stored_keys = audit_tables.read_keys(store.engine)
        auditor = Auditor(config, store_id, [k for k in stored_keys if k.action == "init"])
        runner = cls(store, config, Engine(config), None, auditor)
        runner.observer = observer
        genesis = store.get_meta("chain_genesis_ms")
        if genesis is not None:
            runner.chain = runner._new_chain(int(genesis))
        runner._recover(progress)
        if [k.key_id for k in auditor.keys] != [k.key_id for k in stored_keys]:
            raise StoreError(f"{db}: audit_keys does not match the key rotations in the log")
        if signing:
            runner._load_signer(KeyStore(keys if keys is not None else default_key_dir(db)))
        if runner.engine.applied_seq:
            runner.checkpoint()
        return runner

    def _load_signer(self, keystore: KeyStore) -> None:
        auditor = self.auditor
        try:
            if auditor.current_key_id is None:
                record = auditor.init_record(keystore.ensure_active(), self.engine.now_ms)
                with self.store.engine.begin() as conn:
                    audit_tables.write_key(conn, record)
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

    def checkpoint(self) -> None:
        """Materialise derived views (ledger balances) from the engine's current state, and sign
        a checkpoint of the log head if one was committed since the last checkpoint."""
        started = time.perf_counter()
        self.store.write_balances(self.engine.ledger, self.engine.applied_seq)
        auditor = self.auditor
        if auditor.signer is not None and auditor.seq > max(auditor.last_checkpoint_seq, 0):
            cp = auditor.checkpoint(self.engine.state_root(), self.engine.now_ms, self.engine.tip_height)
            with self.store.engine.begin() as conn:
                audit_tables.write_checkpoint(conn, cp)
        self.timer.add("persist", started)

    def _new_chain(self, genesis_ms: int) -> SimulatedChain:
        chain = dict(self.config.chain)
        params = ChainParams(
            genesis_ms=genesis_ms,
            block_time_ms=int(chain["block_time_ms"]),
            txs_per_block_max=int(chain["txs_per_block_max"]),
            fee_per_tx_minor=int(chain["fee_per_tx_minor"]),
            seed=int(chain["seed"]),
        )
        faults = FaultSchedule.from_dict(dict(chain.get("faults") or {}))
        return SimulatedChain(params, faults)

    def _recover(self, progress: ProgressCallback | None) -> None:
        state = self.store.engine_state()
        if state is None:
            return
        total = int(state["applied_seq"])
        transitions = audit_tables.iter_transitions(self.store.engine, 0, total)
        record_hashes = audit_tables.read_record_hashes(self.store.engine)
        for stored in self.store.iter_log(0, total):
            entry = stored.entry
            expected = input_hash(self.auditor.head, entry.seq, entry.at_ms, entry.kind, stored.payload)
            if stored.prev_hash != self.auditor.head or stored.hash != expected:
                raise StoreError(f"input log entry {entry.seq} does not match its hash chain")
            if entry.kind == "chain" and self.chain is not None:
                self.chain.advance(entry.at_ms)
            fx = self.engine.apply(entry)
            try:
                step = self.auditor.step(entry.seq, entry.at_ms, entry.kind, entry.payload, stored.payload, fx,
                                         stored.source_id)
            except AuditError as exc:
                raise StoreError(str(exc)) from None
            row = next(transitions, None)
            if row is None or int(row.seq) != entry.seq or bytes(row.hash) != step.head or bytes(row.body) != step.body:
                raise StoreError(f"transition entry {entry.seq} differs from the replay of its input")
            for index, _, digest in step.records:
                if index >= len(record_hashes) or record_hashes[index] != digest:
                    raise StoreError(f"audit record {index} differs from the replay of log entry {entry.seq}")
            self.engine.seal(step.head)
            if self.chain is not None and fx.submissions:
                self.chain.submit(fx.submissions)
            if self.observer is not None:
                self.observer(entry, fx)
            if progress is not None:
                progress(entry.seq, total)
        if self.engine.applied_seq != total:
            raise StoreError(f"log ends at {self.engine.applied_seq}, engine state says {total}")
        root = self.engine.state_root()
        if root != state["state_root"]:
            raise StoreError(f"replayed state root {root} differs from the stored {state['state_root']}")
        latest = audit_tables.latest_checkpoint(self.store.engine)
        self.auditor.last_checkpoint_seq = -1 if latest is None else latest[1].log_seq

    # ------------------------------------------------------------------ steps
    def submit(self, kind: str, payload: Any, at_ms: int, source_id: str | None = None) -> Effects | None:
        """Log and apply one input; ``None`` if ``source_id`` was already logged (a no-op)."""
        if source_id is not None and self.store.has_source(source_id):
            return None
        started = time.perf_counter()
        payload_bytes = encode_payload(kind, payload)
        started = self.timer.add("log encode", started)
        entry = LogEntry(self.engine.applied_seq + 1, at_ms, kind, payload)
        fx = self.engine.apply(entry)
        started = self.timer.add("engine apply", started)
        self._commit(entry, payload_bytes, source_id, fx)
        started = time.perf_counter()
        if fx.submissions:
            if self.chain is None:
                # The chain starts at the first transaction, so an input logged without a
                # meaningful time (a deposit at 0) cannot put its genesis decades back.
                block_ms = int(self.config.chain["block_time_ms"])
                first_ms = min(tx.submitted_at_ms for tx in fx.submissions)
                genesis = (first_ms // block_ms) * block_ms
                self.store.set_meta("chain_genesis_ms", str(genesis))
                self.chain = self._new_chain(genesis)
            self.chain.submit(fx.submissions)
        self.timer.add("chain submit", started)
        self.last_fx = fx
        if self.observer is not None:
            self.observer(entry, fx)
        return fx

    def _commit(self, entry: LogEntry, payload_bytes: bytes, source_id: str | None, fx: Effects) -> None:
        """Chain the applied entry, seal its head into the state root, commit everything at once."""
        started = time.perf_counter()
        engine = self.engine
        step = self.auditor.step(entry.seq, entry.at_ms, entry.kind, entry.payload, payload_bytes, fx, source_id)
        engine.seal(step.head)
        started = self.timer.add("audit chain", started)
        root = engine.state_root()
        started = self.timer.add("state root", started)
        self.auditor.seal(step, root, engine.now_ms, engine.tip_height)
        started = self.timer.add("audit chain", started)
        self.store.commit_step(entry, payload_bytes, source_id, fx, root, engine.now_ms, step)
        self.timer.add("persist", started)

    def replay_entry(self, stored: StoredEntry) -> Effects:
        """Apply and commit an entry read from another store's log (``clearlane replay``)."""
        fx = self.engine.apply(stored.entry)
        self._commit(stored.entry, stored.payload, stored.source_id, fx)
        return fx

    def advance_chain(self, to_ms: int, source_id: str | None = None) -> Effects | None:
        """Observe the base layer up to ``to_ms`` and log what happened (even nothing)."""
        if self.chain is None:
            return None
        if source_id is not None and self.store.has_source(source_id):
            return None
        started = time.perf_counter()
        events = self.chain.advance(to_ms)
        self.timer.add("chain advance", started)
        return self.submit("chain", {"events": [event_to_dict(e) for e in events]}, to_ms, source_id)

    def settle_until_quiet(self, *, step_ms: int | None = None, limit_ms: int = 6 * 3_600_000) -> int:
        """Advance the chain until every batch and L1 transaction is final (or unwound)."""
        step = step_ms or int(self.config.chain["block_time_ms"])
        now = max(self.engine.now_ms, self.engine.chain_seen_ms)
        start = now
        while (self.engine.pending or self.engine.l1_groups or self.engine.open_at.max() >= 0) and now - start < limit_ms:
            now += step
            self.advance_chain(now)
        self.checkpoint()
        return now

    def clear_batches(self, batches: Iterable[Any], *, source: str, rejects: list[Any] | None = None,
                      progress: Callable[[int], None] | None = None, events_at_ms: int | None = None) -> None:
        """Apply ingest batches (trade chunks and small events) in file order.

        Small events carry no time of their own: they are logged at ``events_at_ms`` if given,
        else at the engine's current time.
        """
        for index, batch in enumerate(batches):
            if rejects is not None:
                rejects.extend(batch.rejects)
            if batch.trades is not None and batch.trades.table.num_rows:
                table = batch.trades.table
                at_ms = int(table.column("received_at_ms")[0].as_py())
                fx = self.submit("trades", table, max(at_ms, self.engine.now_ms), f"{source}#{index}")
                if fx is not None and rejects is not None:
                    rejects.extend(fx.rejects)
                last_ms = int(table.column("received_at_ms")[-1].as_py())
                self.advance_chain(max(last_ms, self.engine.now_ms), f"{source}#{index}.chain")
                if progress is not None:
                    progress(table.num_rows)
            for n, event in enumerate(batch.events):
                data = event.model_dump(mode="json")
                kind = data.pop("type")
                data.pop("v", None)
                at_ms = max(self.engine.now_ms, events_at_ms or 0)
                fx = self.submit(kind, data, at_ms, f"{source}#{index}.{n}")
                if fx is not None and rejects is not None:
                    rejects.extend(fx.rejects)
        self.checkpoint()

    def close(self) -> None:
        self.store.close()
