"""embedded owns wiring the node on the embedded defaults, for every driver (CLI, HTTP, the NATS
worker, benchmarks, tests): a SQL store opened by path or URL (SQLite WAL by default, PostgreSQL
by URL), the simulated base layer made from the configuration, and the SQL flow-id archive. The
node itself (:meth:`clearlane.node.runner.Runner.start`) only sees the ports; this is the one
place that picks their implementations.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from clearlane.adapters.chain.simulated import ChainParams, FaultSchedule, SimulatedChain
from clearlane.adapters.memory import MemoryStore
from clearlane.adapters.sql.flowids import FlowIdArchive
from clearlane.adapters.sql.store import Store
from clearlane.core.config.model import ClearingConfig, load_config, parse_config
from clearlane.node.runner import ProgressCallback, Runner, StepObserver, default_key_dir


def simulated_chain(config: ClearingConfig, genesis_ms: int) -> SimulatedChain:
    """The configured simulated base layer (blocks, capacity, fees, seeded fault schedule)."""
    chain = dict(config.chain)
    params = ChainParams(
        genesis_ms=genesis_ms,
        block_time_ms=int(chain["block_time_ms"]),
        txs_per_block_max=int(chain["txs_per_block_max"]),
        fee_per_tx_minor=int(chain["fee_per_tx_minor"]),
        seed=int(chain["seed"]),
    )
    return SimulatedChain(params, FaultSchedule.from_dict(dict(chain.get("faults") or {})))


def _sql_archive(store: Any, options: dict[str, int]) -> FlowIdArchive:
    if not isinstance(store, Store):
        raise TypeError("the flow-id archive lives in the SQL store")
    return FlowIdArchive.open(store, **options)


def open_runner(
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
    flow_ids: bool | dict[str, int] = False,
) -> Runner[Store]:
    """Open (or create) a database (a SQLite path or a URL; ``schema``: a PostgreSQL schema of
    its own) and start the node on it, rebuilding engine and chain from its log.

    ``keys`` is the signing-key directory (default :func:`~clearlane.node.runner.default_key_dir`);
    a store without a key gets the directory's active key (created on first use).
    ``signing=False`` opens without loading a private key (read-mostly commands).
    """
    store = Store.open(db, create=create, durable=durable, schema=schema)
    key_dir = (keys if keys is not None else default_key_dir(db)) if signing else None
    return Runner.start(
        store,
        config_path,
        label=str(db),
        chain_factory=simulated_chain,
        archive_factory=_sql_archive,
        progress=progress,
        keys=key_dir,
        observer=observer,
        flow_ids=flow_ids,
    )


def open_memory_runner(
    config_path: str | Path, *, keys: str | Path | None = None, observer: StepObserver | None = None
) -> Runner[MemoryStore]:
    """Start the node on a fresh in-memory store (the bench's and tests' choice: the same node,
    log, audit chain and checkpoints, nothing on disk but the signing keys in ``keys``)."""
    return Runner.start(
        MemoryStore.open(),
        config_path,
        label="memory",
        chain_factory=simulated_chain,
        keys=keys,
        observer=observer,
    )


def resolve_config(
    db: str | Path, config_path: str | Path | None
) -> tuple[ClearingConfig | None, int | None]:
    """The configuration :func:`open_runner` will use (the stored one wins), and the webhook
    high-water mark (None without webhook endpoints), read before the log is replayed."""
    path = Path(str(db))
    if "://" not in str(db) and not path.exists():
        return (load_config(config_path) if config_path is not None else None), None
    store = Store.open(db, create=False)
    try:
        stored = store.get_meta("config_toml")
        mark = store.get_meta("webhooks_seq")
    finally:
        store.close()
    hwm = None if mark is None else int(mark)
    if stored is not None:
        return parse_config(tomllib.loads(stored), source=f"{db} (stored config)"), hwm
    return (load_config(config_path) if config_path is not None else None), hwm


class Embedded:
    """The embedded defaults as the runtime's opener (:class:`clearlane.node.runtime.Opener`)."""

    def resolve_config(
        self, db: str | Path, config_path: str | Path | None
    ) -> tuple[ClearingConfig | None, int | None]:
        return resolve_config(db, config_path)

    def open_runner(self, db: str | Path, config_path: str | Path | None, **options: Any) -> Runner[Store]:
        return open_runner(db, config_path, **options)


EMBEDDED = Embedded()
