"""The deterministic clearing engine: ``apply(log entry) -> Step`` (typed, frozen events).

The engine is a pure function of the ordered input log. It never reads a clock, a random
source, the network or the database: time is ``LogEntry.at_ms`` and the rows' own timestamps;
the base layer is seen only through logged chain events. Two engines fed the same log end in
the same state with the same :meth:`Engine.state_root`, byte for byte.

Per log entry it: routes flows to lanes, checks L2 liquidity, assigns micro-batches (closing on
window or size), nets closed batches, commits them with an RFC 9162 Merkle root, places the
ledger's two-phase holds, emits anchor / L1 transactions to submit, reacts to blocks and reorgs
(anchored → final after N confirmations and the challenge window), re-submits lost
transactions and unwinds batches that miss their anchor deadline to L1 gross settlement.

This module is the door: :class:`Engine` is the state (state.py) plus ``apply``, which looks the
entry's kind up in ``_HANDLERS`` (kind → stage function), then lets time pass
(:func:`~clearlane.core.engine.chain.on_time`) and folds the step into the effects head; and
the read-only snapshots drivers ask for. The work is in the stage modules.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine import adjust, chain, collateral, l1, manual, outcomes, stateroot, trades
from clearlane.core.engine.dedup import collateral_digest, trade_digests
from clearlane.core.engine.escrows import EscrowStage, escrow_action_of
from clearlane.core.engine.flows import Flows
from clearlane.core.engine.state import (
    HOUSE_LANE,
    I64,
    AccountBalances,
    BatchState,
    EngineError,
    EngineOptions,
    EngineState,
    L1Group,
    Liquidity,
    LogEntry,
    OpenBatches,
    Stats,
    install_config,
    payload_of,
)
from clearlane.core.engine.step import StepBuilder, fold_effects
from clearlane.core.escrow import EscrowView
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.events import Step
from clearlane.core.model.inputs import (
    EVENT_RUN_KINDS,
    EVENTS_KIND,
    LEDGER_ADJUSTMENT_KIND,
    MANUAL_SETTLEMENT_KIND,
    CollateralDeposit,
    CollateralWithdrawal,
    ConfigChange,
    EventRun,
    LedgerAdjustment,
    ManualSettlement,
)

# Moved to state.py with the split; named here too so ``clearlane.core.engine.core`` keeps
# offering what it always did.
__all__ = [
    "HOUSE_LANE",
    "AccountBalances",
    "BatchState",
    "Engine",
    "EngineError",
    "EngineOptions",
    "L1Group",
    "Liquidity",
    "LogEntry",
    "OpenBatches",
    "Stats",
]


class Engine(EngineState):
    """The clearing state machine. Construct with a config (and options); feed log entries in
    order. The state is :class:`~clearlane.core.engine.state.EngineState`; each kind of entry
    is applied by its stage's function (``_HANDLERS``)."""

    def __init__(self, config: ClearingConfig, options: EngineOptions | None = None) -> None:
        super().__init__(config, options)
        # Built here, not in EngineState: the stage calls back into the collateral policy. It
        # places no ledger entry when built, so the ledger's history is as before.
        self.escrows = EscrowStage(
            self.ledger, config, self.withdrawal_allowed, partial(collateral.moved, self)
        )

    # ------------------------------------------------------------------ entry point
    def apply(self, entry: LogEntry) -> Step:
        """Apply one log entry. Entries must come in ``seq`` order, each exactly once."""
        if entry.seq != self.applied_seq + 1:
            raise EngineError(f"log entry {entry.seq} applied out of order (expected {self.applied_seq + 1})")
        self.now_ms = max(self.now_ms, entry.at_ms)
        out = StepBuilder(entry.seq, entry.at_ms)
        handler = _HANDLERS.get(entry.kind)
        if handler is None:
            raise EngineError(f"log entry {entry.seq} has unknown kind {entry.kind!r}")
        handler(self, entry, out)
        chain.on_time(self, out)
        self.escrows.observe(out)
        step = out.build(self.ledger.drain_changes())
        self.applied_seq = entry.seq
        self.effects_head = fold_effects(self.effects_head, step)
        return step

    # ------------------------------------------------------------------ read-only snapshots
    def liquidity(self) -> Liquidity:
        """The liquidity figures the policy judges by, at current marks (a read-only snapshot)."""
        return collateral.liquidity(self)

    def withdrawal_allowed(self, p: int, a: int, amount: int) -> bool:
        """The collateral policy for a withdrawal of ``amount`` minor units of asset ``a`` by
        participant ``p``: no more than is posted, and what remains (with credit) still covers
        the participant's projected net debit. The one formula (collateral.py); the runtime asks
        it before logging, and :meth:`apply` judges by it."""
        return collateral.withdrawal_allowed(self, p, a, amount)

    def l1_settle_legs(self, flows: Flows) -> tuple[I64, I64]:
        """The gross settlement of L1 flows, as (accounts, amounts): each payer's available →
        house L1 → each payee's available. One rule for a base-layer settlement and a manual one."""
        return l1.settle_legs(self, flows)

    def has_pending_work(self) -> bool:
        """Something is still to settle: an open batch, a batch or L1 group not final yet."""
        return bool(self.pending or self.l1_groups or (self.open_at >= 0).any())

    def open_batches(self) -> OpenBatches:
        """Each pool's open batch (a read-only snapshot)."""
        return OpenBatches(self.seq.copy(), self.open_at.copy(), self.count.copy())

    def open_positions(self) -> npt.NDArray[np.int64]:
        """Net positions of the open batches per pool, participant and asset, in minor units
        (a copy; shape (pools, participants, assets))."""
        out: npt.NDArray[np.int64] = self.pos.copy()
        return out

    def account_balances(self) -> AccountBalances:
        """Every participant's ledger balances per asset (a read-only snapshot)."""
        posted, pending_debits, _ = self.ledger.balances()
        return AccountBalances(
            available=posted[self.acct_available],
            collateral=posted[self.acct_collateral],
            in_flight=posted[self.acct_inflight],
            held=pending_debits[self.acct_available],
        )

    def escrow(self, escrow_id: str) -> EscrowView | None:
        """A snapshot of one escrow (read-only, like :meth:`liquidity`)."""
        return self.escrows.view(escrow_id)

    def escrow_views(self) -> list[EscrowView]:
        return list(self.escrows.book.views())

    def next_escrow_deadline_ms(self) -> int | None:
        """The earliest escrow deadline still to fire (the runtime ticks until it has)."""
        return self.escrows.book.next_deadline_ms()

    # ------------------------------------------------------------------ id look-ups
    def id_conflicts(self, table: pa.Table) -> list[Reject]:
        """The id conflicts (116) a trade chunk already in the log met when it was applied,
        answered again without applying it (a re-run of ``clear``, a re-delivered bus message):
        its rows whose id is now held with other content. Row = index in the chunk."""
        ids = table.column("trade_id").combine_chunks()
        clash = self.seen_flow_ids.conflicts("t:", ids, trade_digests(table))
        out = []
        for row in np.flatnonzero(clash).tolist():
            flow_id = str(ids[row].as_py())
            reason = f"trade_id {flow_id!r} was already applied with different content"
            out.append(Reject(RejectCode.ID_CONFLICT, "trade_id", reason, row, flow_id))
        return out

    def event_conflict(self, payload: CollateralDeposit | CollateralWithdrawal) -> bool | None:
        """Would this deposit or withdrawal be a no-op? ``None``: its id is new; ``False``: an
        exact re-send; ``True``: its id was applied with different content (code 116)."""
        kind = model_ids.DEPOSIT_KIND if isinstance(payload, CollateralDeposit) else model_ids.WITHDRAWAL_KIND
        event_id = payload.deposit_id if isinstance(payload, CollateralDeposit) else payload.withdrawal_id
        known = self.seen_event_ids.get(model_ids.event_key(kind, event_id))
        return None if known is None else known != collateral_digest(payload)

    # ------------------------------------------------------------------ state root (stateroot.py)
    def seal(self, chain_head: bytes) -> None:
        """Fold the audit chain head of the entry just applied into :meth:`state_root`."""
        stateroot.seal(self, chain_head)

    def state_root(self) -> str:
        """A digest of the whole engine state: equal roots ⇔ equal states (replay check).

        It is :meth:`seal_root` of :meth:`pre_root` (everything but the audit chain head) and the
        chain head, so a pipelined node can take the pre-root right after a step and seal it
        once the step's audit entry is chained (``node/writer.py``).
        """
        return stateroot.state_root(self)

    def pre_root(self) -> bytes:
        """Digest of the engine state without the audit chain head (see :meth:`state_root`)."""
        return stateroot.pre_root(self)

    @staticmethod
    def seal_root(pre_root: bytes, chain_head: bytes) -> str:
        """The state root from a :meth:`pre_root` and the audit chain head sealed after it."""
        return stateroot.seal_root(pre_root, chain_head)

    def check_invariants(self) -> None:
        """Explicit invariant checks (cheap ones; the ledger audits its own balances)."""
        stateroot.check_invariants(self)


def _apply_config(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    """A logged configuration change: compiled again; the chain epoch moves (batches and L1
    groups skipped as quiet are walked again)."""
    payload = payload_of(entry, ConfigChange)
    if not outcomes.event_id(engine, "config", str(payload.change_id), out):
        return
    engine.chain_epoch += 1
    install_config(engine, engine.config.with_changes(payload.changes))


def _apply_escrow(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    """An escrow action (clearlane.core.escrow judges it; engine/escrows.py wires it)."""
    action = escrow_action_of(entry.payload)
    if action is None:
        raise EngineError(f"log entry {entry.seq} (escrow) carries a {type(entry.payload).__name__}")
    outcome = engine.escrows.apply(action, engine.now_ms)
    if outcome.duplicate:
        out.duplicates += 1
        engine.stats.duplicates += 1
    elif outcome.reject is not None:
        engine.stats.bump(engine.stats.rejects_by_code, outcome.reject.code.slug)
        out.reject(outcome.reject)
    else:
        engine.escrows.emit(outcome, out)
        payouts = engine.escrows.payouts(outcome)
        if payouts:
            trades.clear_payouts(engine, payouts, out)


def _apply_manual(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    """An operator's off-system settlement of an L1 obligation (engine/manual.py)."""
    manual.apply_manual(engine, payload_of(entry, ManualSettlement), entry.at_ms, out)


def _apply_adjustment(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    """An operator's adjusting journal entry (engine/adjust.py)."""
    adjust.apply_adjustment(engine, payload_of(entry, LedgerAdjustment), entry.at_ms, out)


def _apply_events(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    """A run of small inputs (:class:`~clearlane.core.model.inputs.EventRun`): each member by
    its own kind's rule, in order, at the entry's time, into the one step."""
    run = payload_of(entry, EventRun)
    for kind, members in itertools.groupby(run.items, key=lambda item: item[0]):
        handler = _RUN_HANDLERS.get(kind)
        if handler is None:
            raise EngineError(f"log entry {entry.seq} (events) holds a member of kind {kind!r}")
        handler(engine, [LogEntry(entry.seq, entry.at_ms, kind, payload) for _, payload in members], out)


def _one_by_one(
    handler: Callable[[EngineState, LogEntry, StepBuilder], None],
    engine: EngineState,
    entries: list[LogEntry],
    out: StepBuilder,
) -> None:
    for member in entries:
        handler(engine, member, out)


def _apply_tick(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    """Nothing but time passing; :func:`~clearlane.core.engine.chain.on_time` does the work."""


# Kind → stage function. Every one takes (state, entry, step builder); ``apply`` runs on_time after.
_HANDLERS: dict[str, Callable[[EngineState, LogEntry, StepBuilder], None]] = {
    "trades": trades.apply_trades,
    "payment": trades.apply_payment,
    "collateral_deposit": collateral.apply_deposit,
    "collateral_withdrawal": collateral.apply_withdrawal,
    "price_mark": collateral.apply_mark,
    "config_change": _apply_config,
    "tick": _apply_tick,
    "chain": chain.apply_chain,
    "escrow": _apply_escrow,
    MANUAL_SETTLEMENT_KIND: _apply_manual,
    LEDGER_ADJUSTMENT_KIND: _apply_adjustment,
    # A signing-key rotation is logged for the audit trail (clearlane.node.auditor); the
    # clearing state only sees time pass.
    "key_rotation": _apply_tick,
    EVENTS_KIND: _apply_events,
}
# What a run of small inputs may hold (EVENT_RUN_KINDS), by the same rules as above, for each
# stretch of consecutive members of one kind: deposits together (collateral.apply_deposits: the
# same outcome as one by one, their entries posted in one ledger call), the rest one by one.
_RUN_HANDLERS: dict[str, Callable[[EngineState, list[LogEntry], StepBuilder], None]] = {
    kind: collateral.apply_deposits if kind == "collateral_deposit" else partial(_one_by_one, _HANDLERS[kind])
    for kind in sorted(EVENT_RUN_KINDS)
}
