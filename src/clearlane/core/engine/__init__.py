"""engine owns the deterministic clearing core: a pure function of the ordered input log (time
is an input) that imports nothing from the node or the adapters; the base layer is seen only
through logged chain events.

State + pure stage functions. ``state.py`` is :class:`EngineState` and its records;
:class:`Engine` (``core.py``) is that state plus ``apply`` (kind → stage function, then
``chain.on_time``) and the read-only snapshots drivers ask for. Each stage is plain functions
taking the state (and the step's ``StepBuilder``):

- ``trades`` — trade chunks, payments and escrow payouts into flows: participants, symbols,
  amounts, first-failure reject marking, the per-flow limit, id dedup;
- ``lanes`` — the shared path of a validated flow: route, fees, liquidity check + batch
  assignment (``kernel``), close-and-park, L1 groups, records and rejects;
- ``clearing`` — a closed batch: commitment, netting, the two-phase hold, the anchor, unwinding
  a batch the ledger cannot hold;
- ``batches`` — a cleared batch's finality, anchor re-submission, unwind at its deadline;
- ``l1`` — L1 groups: submit, follow to finality, re-submit, settle gross (``settle_legs``);
- ``chain`` — blocks, reorgs and ``on_time`` (what time passing does after every entry);
- ``collateral`` — deposits, withdrawals, marks and the liquidity policy's formulas (limits,
  finality-window margin, ``withdrawal_allowed``);
- ``outcomes`` — rejects, ledger refusals turned into data, event-id dedup;
- ``stateroot`` — the state root, its seal and the invariant checks.

Beside them: ``flows``, ``routing``, ``kernel`` (numba), ``netting``, ``commitment`` (Merkle
roots), ``dedup`` (+ ``idindex``, ``content`` digests), ``digest`` (cached block digests),
``escrows``, ``manual``, ``adjust``, ``limits`` (the per-flow rule the edge checks too; a
ledger refusal input still causes is data, never an exception), ``step`` (the effects head) and
``wakes`` (when a quiet pending batch or L1 group must be walked again).
"""

from clearlane.core.engine.core import Engine, EngineError, EngineOptions, LogEntry
from clearlane.core.model.events import Step

__all__ = ["Engine", "EngineError", "EngineOptions", "LogEntry", "Step"]
