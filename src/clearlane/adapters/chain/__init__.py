"""The base layer as clearlane sees it: the adapter port and a deterministic simulated chain.

``port`` defines what the runner may ask of a chain (`BaseLayer`: submit transactions,
advance time, snapshot and restore) and the events a chain reports (`BlockProduced`,
`ChainReorg`) with their JSON encoding for the input log. ``simulated`` is the built-in
adapter: blocks on a fixed slot grid, FIFO inclusion up to a capacity, and a seeded
`FaultSchedule` of dropped and delayed transactions, reorgs and outages, reproducible byte
for byte from the same seed and the same calls. The clearing engine never imports a chain;
only the runner does.
"""

from clearlane.adapters.chain.simulated import ChainParams, FaultSchedule, SimulatedChain, TxStatus
from clearlane.core.model.chain import (
    HASH_LEN_BYTES,
    BaseLayer,
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
