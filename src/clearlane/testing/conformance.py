"""Static proof that every adapter satisfies its port in :mod:`clearlane.node.ports`.

Nothing here runs: mypy (strict, over the whole package) checks each assignment, so an adapter
that drifts from its port fails the type check, not a test at run time. The behaviour behind
the ``Store`` port is checked by :mod:`clearlane.testing.store_contract`, behind ``BaseLayer`` by
:mod:`clearlane.testing.chain_contract`.
"""

from __future__ import annotations

from clearlane.adapters.chain.ethereum import EthereumChain
from clearlane.adapters.chain.simulated import SimulatedChain
from clearlane.adapters.memory import MemoryStore
from clearlane.adapters.memory.recon import MemoryReconStore
from clearlane.adapters.sql.flowids import FlowIdArchive
from clearlane.adapters.sql.recon import SqlReconStore
from clearlane.adapters.sql.store import Store as SqlStore
from clearlane.node import ports
from clearlane.node.events import EventBus
from clearlane.node.runtime import AcceleratedClock, RealtimeClock
from clearlane.node.writer import PendingStep


def sql_store(store: SqlStore) -> ports.Store:
    return store


def memory_store(store: MemoryStore) -> ports.Store:
    return store


def pending_step(step: PendingStep) -> ports.StepToCommit:
    return step


def simulated_chain(chain: SimulatedChain) -> ports.BaseLayer:
    return chain


def ethereum_chain(chain: EthereumChain) -> ports.BaseLayer:
    return chain


def flow_id_archive(archive: FlowIdArchive) -> ports.FlowIdArchive:
    return archive


def realtime_clock(clock: RealtimeClock) -> ports.Clock:
    return clock


def accelerated_clock(clock: AcceleratedClock) -> ports.Clock:
    return clock


def event_bus(bus: EventBus) -> ports.EventSink:
    return bus


def sql_recon_store(store: SqlReconStore) -> ports.ReconStore:
    return store


def memory_recon_store(store: MemoryReconStore) -> ports.ReconStore:
    return store
