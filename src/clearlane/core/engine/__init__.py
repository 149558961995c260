"""engine owns the deterministic clearing core: lane routing, the liquidity check, micro-batch
assignment, multilateral netting, batch commitment, lifecycle, finality, re-submission and
unwind, and the ledger's per-flow limits (``limits``: the rule the edge checks too, and what the
engine does with a ledger refusal input still causes — data, never an exception). It is a pure function of the ordered input log (time is an input) and imports nothing
from ``store``, ``service``, ``ingest`` or the CLI; the base layer is seen only through logged
chain events."""

from clearlane.core.engine.core import Engine, EngineError, EngineOptions, LogEntry
from clearlane.core.model.events import Step

__all__ = ["Engine", "EngineError", "EngineOptions", "LogEntry", "Step"]
