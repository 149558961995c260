"""The base layer as clearlane sees it: a deterministic simulated chain behind the node's port.

`clearlane.node.ports.BaseLayer` defines what the node may ask of a chain (submit
transactions, advance time, snapshot and restore); ``clearlane.core.model.chain`` defines the
events a chain reports (`BlockProduced`, `ChainReorg`) with their JSON encoding for the input
log. ``simulated`` is the built-in adapter: blocks on a fixed slot grid, FIFO inclusion up to a
capacity, and a seeded `FaultSchedule` of dropped and delayed transactions, reorgs and outages,
reproducible byte for byte from the same seed and the same calls. The clearing engine never
imports a chain; only the node does.
"""

from clearlane.adapters.chain.simulated import ChainParams, FaultSchedule, SimulatedChain, TxStatus
from clearlane.core.model.chain import (
    HASH_LEN_BYTES,
    BlockProduced,
    ChainEvent,
    ChainReorg,
    TxKind,
    TxSubmission,
    event_from_dict,
    event_to_dict,
    tx_submission_from_dict,
    tx_submission_to_dict,
)
from clearlane.node.ports import BaseLayer

__all__ = [
    "HASH_LEN_BYTES",
    "BaseLayer",
    "BlockProduced",
    "ChainEvent",
    "ChainParams",
    "ChainReorg",
    "FaultSchedule",
    "SimulatedChain",
    "TxKind",
    "TxStatus",
    "TxSubmission",
    "event_from_dict",
    "event_to_dict",
    "tx_submission_from_dict",
    "tx_submission_to_dict",
]
