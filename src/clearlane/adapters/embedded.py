"""embedded owns wiring the node on the embedded defaults, for every driver (CLI, HTTP, the NATS
worker, benchmarks, tests): a SQL store opened by path or URL (SQLite WAL by default, PostgreSQL
by URL), the base layer (the simulated chain made from the configuration, or an Ethereum node by
JSON-RPC: :class:`ChainChoice`), and the SQL flow-id archive. The node itself
(:meth:`clearlane.node.node.Node.open`) only sees the ports; this is the one place that
picks their implementations.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from clearlane.adapters.chain.simulated import ChainParams, FaultSchedule, SimulatedChain
from clearlane.adapters.memory import MemoryStore
from clearlane.adapters.sql.flowids import FlowIdArchive
from clearlane.adapters.sql.store import BULK_PAGE_SIZE, Store, is_url
from clearlane.core.config.model import ClearingConfig, load_config, parse_config
from clearlane.core.errors import InputError
from clearlane.node.node import (
    ChainFactory,
    Node,
    NodeOptions,
    ProgressCallback,
    StepObserver,
    default_key_dir,
)
from clearlane.node.ports import BaseLayer, StoreError

BASE_LAYER_META = "base_layer"


@dataclass(frozen=True, slots=True)
class ChainChoice:
    """Which base layer a store anchors to (``--chain``, ``--rpc-url``, ``--chain-key``)."""

    kind: Literal["simulated", "ethereum"] = "simulated"
    rpc_url: str | None = None
    key_file: str | None = None
    """A hex private-key file (0600); None: the store's key directory (``ethereum/ACTIVE``)."""


SIMULATED = ChainChoice()


class ChainChoiceError(InputError, ValueError, code="CHAIN_OPTIONS_INVALID"):
    """``--chain`` options that cannot be used together (the message names the missing one)."""


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


def fee_wei_per_minor(config: ClearingConfig) -> int:
    """Wei per minor unit of the configured fee asset: exact for ETH itself, else by the marks."""
    scales = {a.code: a.scale for a in config.assets}
    marks = dict(zip((a.code for a in config.assets), config.marks_usd, strict=True))
    fee_asset = str(config.chain["fee_asset"])
    if fee_asset == "ETH":
        return int(10 ** max(18 - int(scales["ETH"]), 0))
    if "ETH" not in marks or marks["ETH"] <= 0:
        return 10**10
    usd_per_minor = marks[fee_asset] / 10 ** scales[fee_asset]
    return max(1, round(float(usd_per_minor) / (float(marks["ETH"]) / 10**18)))


def ethereum_factory(choice: ChainChoice, key_dir: str | Path | None) -> ChainFactory:
    """The Ethereum adapter on ``choice.rpc_url``, its key and send journal in ``key_dir``."""
    from clearlane.adapters.chain.ethereum import EthereumChain, EthereumOptions
    from clearlane.adapters.chain.ethkeys import EthKeyStore

    if not choice.rpc_url:
        raise ChainChoiceError("--chain ethereum needs --rpc-url")
    if key_dir is None and choice.key_file is None:
        raise ChainChoiceError("--chain ethereum needs a key directory or --chain-key")

    def make(config: ClearingConfig, genesis_ms: int) -> BaseLayer:
        options = EthereumOptions(
            rpc_url=str(choice.rpc_url),
            state_dir=str(key_dir if key_dir is not None else Path(str(choice.key_file)).parent),
            key_file=choice.key_file,
            fee_wei_per_minor=fee_wei_per_minor(config),
        )
        key = None if choice.key_file else EthKeyStore(str(key_dir)).ensure_active()
        return EthereumChain(options, genesis_ms, key)

    return make


def _check_base_layer(store: Store, choice: ChainChoice, label: str) -> None:
    """A store anchors to one kind of base layer for life: its log holds that chain's blocks."""
    stored = store.get_meta(BASE_LAYER_META)
    if stored is None:
        if store.engine_state() is not None and choice.kind != "simulated":
            raise StoreError(f"{label}: this store was cleared on the simulated chain, not {choice.kind}")
        store.set_meta(BASE_LAYER_META, choice.kind)
    elif stored != choice.kind:
        raise StoreError(f"{label}: this store anchors to the {stored} chain, not {choice.kind}")


def _sql_archive(store: Any, options: dict[str, int]) -> FlowIdArchive:
    if not isinstance(store, Store):
        raise TypeError("the flow-id archive lives in the SQL store")
    return FlowIdArchive.open(store, **options)


def open_node(
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
    chain: ChainChoice = SIMULATED,
    writer_process: bool = False,
    page_size: int = BULK_PAGE_SIZE,
) -> Node[Store]:
    """Open (or create) a database (a SQLite path or a URL; ``schema``: a PostgreSQL schema of
    its own) and start the node on it, rebuilding engine and chain from its log.

    ``keys`` is the signing-key directory (default :func:`~clearlane.node.node.default_key_dir`);
    a store without a key gets the directory's active key (created on first use).
    ``signing=False`` opens without loading a private key (read-mostly commands). ``chain``
    picks the base layer (the simulated one by default). ``writer_process``: bulk clears seal
    and commit in a process of their own, spawned now (``node/writer_process.py``), when the
    database can be opened from another process (not SQLite in memory). ``page_size``: a new
    SQLite file's page size (``Store.open``).
    """
    fresh = create and not is_url(db) and not Path(db).exists()
    if config_path is not None:
        load_config(config_path)  # a config error is raised before anything is created
    factory: ChainFactory = simulated_chain
    if chain.kind == "ethereum":  # its option errors too are raised before anything is created
        factory = ethereum_factory(chain, keys if keys is not None else default_key_dir(db))
    store = Store.open(db, create=create, durable=durable, schema=schema, page_size=page_size)
    key_dir = (keys if keys is not None else default_key_dir(db)) if signing else None
    try:
        if signing:  # read-mostly openers replay the log and never reach the chain
            _check_base_layer(store, chain, str(db))
        options = NodeOptions(
            label=str(db),
            config=config_path,
            keys=key_dir,
            progress=progress,
            observer=observer,
            flow_ids=flow_ids,
            archive_factory=_sql_archive,
            writer_store=store.reopener(durable) if writer_process else None,
        )
        return Node.open(store, factory, options)
    except BaseException:
        store.close()
        if fresh:  # a database this call created and could not start leaves nothing behind
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        raise


def open_memory_node(
    config_path: str | Path, *, keys: str | Path | None = None, observer: StepObserver | None = None
) -> Node[MemoryStore]:
    """Start the node on a fresh in-memory store (the bench's and tests' choice: the same node,
    log, audit chain and checkpoints, nothing on disk but the signing keys in ``keys``)."""
    options = NodeOptions(label="memory", config=config_path, keys=keys, observer=observer)
    return Node.open(MemoryStore.open(), simulated_chain, options)


def resolve_config(
    db: str | Path, config_path: str | Path | None
) -> tuple[ClearingConfig | None, int | None]:
    """The configuration :func:`open_node` will use (the stored one wins), and the webhook
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
    """The embedded defaults as the runtime's opener (:class:`clearlane.node.runtime.Opener`),
    on the base layer ``chain``; a SQLite store it creates gets pages of ``page_size`` bytes
    (a service's opener: ``SERVICE_PAGE_SIZE``)."""

    def __init__(self, chain: ChainChoice = SIMULATED, *, page_size: int = BULK_PAGE_SIZE) -> None:
        self.chain = chain
        self.page_size = page_size

    def resolve_config(
        self, db: str | Path, config_path: str | Path | None
    ) -> tuple[ClearingConfig | None, int | None]:
        return resolve_config(db, config_path)

    def open_node(self, db: str | Path, config_path: str | Path | None, **options: Any) -> Node[Store]:
        return open_node(db, config_path, chain=self.chain, page_size=self.page_size, **options)


EMBEDDED = Embedded()
