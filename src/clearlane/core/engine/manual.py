"""The engine's manual settlement stage (issue 17): an operator's record that an L1 obligation
was settled off-system, with evidence, applied like any other log entry.

An L1 obligation is a flow waiting in an L1 group for its base-layer transaction (a trade or
payment routed to Layer-1, or a flow of an unwound batch). A manual settlement of it:

- is refused, changing nothing, when no such obligation is waiting (``manual_no_open_obligation``,
  511) or when its transaction is already in a block (``manual_on_chain``, 512: it settles on
  chain, and recording it off-system too would pay twice); the same ``settlement_id`` again is
  a no-op (different content: ``id_conflict``, 116);
- posts the obligation's gross settlement (the same legs as a base-layer settlement, through
  the house's L1 account) as one entry ``manual:<settlement_id>`` of kind ``l1_manual`` — a
  ledger refusal (a balance out of range) is a ``ledger_refused`` reject and nothing else
  changes;
- marks the group's row final at engine time with ``included_height`` =
  :data:`~clearlane.core.model.ids.MANUAL_HEIGHT`, so the lifecycle says "settled manually",
  never "final on L1", and drops the row's transaction from those the engine waits for (a
  block that later includes it changes nothing in the books);
- emits :class:`~clearlane.core.model.events.L1SettledManually` with the evidence, which the
  effects head folds (so the state root and the audit hash chain cover it).

Pure: everything comes from the log entry and the engine's state.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.compute as pc

from clearlane.core.engine import l1, outcomes
from clearlane.core.engine.step import StepBuilder
from clearlane.core.ledger import JournalEntry
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import L1SettledManually
from clearlane.core.model.inputs import ManualSettlement

if TYPE_CHECKING:
    from clearlane.core.engine.state import EngineState, L1Group

ENTRY_KIND = "l1_manual"


def _digest(payload: ManualSettlement) -> int:
    """The content digest kept beside the settlement id (an id reused for other content: 116)."""
    raw = hashlib.sha256(payload.model_dump_json().encode()).digest()
    return int.from_bytes(raw[:8], "big", signed=True)


def find_open(engine: EngineState, flow_id: str) -> tuple[L1Group, int] | None:
    """The L1 group and row of ``flow_id`` while it waits to settle (not final), or None."""
    for group in engine.l1_groups.values():
        row = pc.index(group.flows.ids, flow_id).as_py()
        if row is not None and row >= 0 and group.final_ms[row] < 0:
            return group, int(row)
    return None


def apply_manual(engine: EngineState, payload: ManualSettlement, at_ms: int, out: StepBuilder) -> None:
    """Apply one manual settlement (see the module docstring)."""
    settlement_id = str(payload.settlement_id)
    if not outcomes.event_id(engine, "manual", settlement_id, out, _digest(payload)):
        return
    found = find_open(engine, str(payload.flow_id))
    if found is None:
        reason = "no L1 obligation with this id is waiting to settle (unknown, on Layer-2, or final)"
        outcomes.reject(engine, out, RejectCode.MANUAL_NO_OPEN_OBLIGATION, "flow_id", reason, settlement_id)
        return
    group, row = found
    height = int(group.included_height[row])
    if height >= 0:
        reason = f"its base-layer transaction is in block {height}: it settles on chain"
        outcomes.reject(engine, out, RejectCode.MANUAL_ON_CHAIN, "flow_id", reason, settlement_id)
        return
    entry_id = model_ids.manual_settle_entry_id(settlement_id)
    refused = outcomes.try_post(engine, _entry(engine, group, row, entry_id, at_ms))
    if refused is not None:
        reason = f"the ledger refused the settlement entry ({refused.name}): a balance out of range"
        outcomes.reject(engine, out, RejectCode.LEDGER_REFUSED, "flow_id", reason, settlement_id)
        outcomes.refused(engine, out, f"manual settlement {settlement_id}", refused, at_ms)
        return
    _mark_settled(engine, group, row, at_ms, out)
    out.emit(
        L1SettledManually(
            settlement_id,
            str(payload.flow_id),
            group.group_id,
            str(payload.operator),
            payload.evidence_ref,
            payload.evidence_sha256,
            payload.note or "",
            entry_id,
            at_ms,
        )
    )


def _entry(engine: EngineState, group: L1Group, row: int, entry_id: str, at_ms: int) -> JournalEntry:
    """The obligation's gross settlement: the legs a base-layer settlement posts, via house L1."""
    accounts, amounts = l1.settle_legs(engine, group.flows.take(np.array([row], dtype=np.int64)))
    return JournalEntry(entry_id, ENTRY_KIND, at_ms, accounts, amounts, False, None, group.group_id)


def _mark_settled(engine: EngineState, group: L1Group, row: int, at_ms: int, out: StepBuilder) -> None:
    """The row is final off-chain; its transaction is no longer awaited; a group with nothing
    left open is dropped (as a chain settlement of its last row would)."""
    engine.l1_txs.pop(group.tx_id(row), None)
    group.final_ms[row] = at_ms
    group.included_height[row] = model_ids.MANUAL_HEIGHT
    group.included_ms[row] = -1
    out.l1_group(group.group_id, group)
    if group.open_rows() == 0:
        for r in range(len(group.final_ms)):
            engine.l1_txs.pop(group.tx_id(r), None)
        del engine.l1_groups[group.group_id]
