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
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine import (
    adjust,
    chain,
    collateral,
    l1,
    lanes,
    limits,
    manual,
    outcomes,
    stateroot,
)
from clearlane.core.engine.dedup import (
    collateral_digest,
    content_digest,
    payment_digest,
    trade_digests,
)
from clearlane.core.engine.escrows import EscrowStage, Payout, escrow_action_of
from clearlane.core.engine.flows import FLOW_PAYMENT, FLOW_TRADE, Flows
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
from clearlane.core.model.events import (
    Alert,
    Step,
)
from clearlane.core.model.inputs import (
    LEDGER_ADJUSTMENT_KIND,
    MANUAL_SETTLEMENT_KIND,
    CollateralDeposit,
    CollateralWithdrawal,
    ConfigChange,
    LedgerAdjustment,
    ManualSettlement,
    Payment,
)
from clearlane.core.money import DecimalError, parse_decimal

_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)
_INT64_MAX = np.iinfo(np.int64).max


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

    # ------------------------------------------------------------------ trades
    def _apply_trades(self, entry: LogEntry, out: StepBuilder) -> None:
        table = payload_of(entry, pa.Table)
        n = table.num_rows
        if n == 0:
            return
        reject = np.zeros(n, dtype=np.int16)
        reject_field = np.zeros(n, dtype=np.int8)

        buyer = self._participants(table.column("buyer"))
        seller = self._participants(table.column("seller"))
        base, quote = self._symbols(table.column("symbol"))
        _mark(reject, reject_field, buyer < 0, RejectCode.UNKNOWN_PARTICIPANT, 1)
        _mark(reject, reject_field, seller < 0, RejectCode.UNKNOWN_PARTICIPANT, 2)
        _mark(reject, reject_field, base < 0, RejectCode.UNKNOWN_SYMBOL, 3)
        _mark(reject, reject_field, (buyer == seller) & (buyer >= 0), RejectCode.SELF_TRADE, 2)
        ok_idx = (buyer >= 0) & (seller >= 0) & (base >= 0)
        safe_base = np.where(ok_idx, base, 0)
        safe_quote = np.where(ok_idx, quote, 0)
        base_scale = self.scales[safe_base]
        quote_scale = self.scales[safe_quote]

        qty_m = _col(table, "qty_mantissa")
        qty_e = _col(table, "qty_exp").astype(np.int64)
        price_m = _col(table, "price_mantissa")
        price_e = _col(table, "price_exp").astype(np.int64)
        _mark(reject, reject_field, (qty_e > base_scale) | (qty_m <= 0), RejectCode.PRECISION_EXCEEDED, 4)
        _mark(reject, reject_field, price_m <= 0, RejectCode.NON_POSITIVE, 5)
        shift = np.clip(base_scale - qty_e, 0, 18)
        # The edge refuses a quantity whose minor units do not fit int64; a logged one must not
        # wrap around here either.
        _mark(reject, reject_field, qty_m > _INT64_MAX // _POW10[shift], RejectCode.AMOUNT_OVERFLOW, 4)
        qty = np.where(reject == 0, qty_m, 0) * _POW10[shift]
        quote_amt, too_big = limits.quote_amount(qty, price_m, quote_scale - base_scale - price_e)
        _mark(reject, reject_field, too_big, RejectCode.AMOUNT_OVERFLOW, 5)
        _mark(reject, reject_field, quote_amt <= 0, RejectCode.NON_POSITIVE, 5)
        over_limit = self._mark_over_limit(reject, reject_field, qty, quote_amt, buyer, seller)
        received = np.maximum.accumulate(np.maximum(_col(table, "received_at_ms"), self.now_ms))

        ids = table.column("trade_id").combine_chunks()
        dup = outcomes.dedup_flows(self, ids, reject == 0, "t:", trade_digests(table), out)
        flows = Flows(
            ids=ids,
            kind=np.full(n, FLOW_TRADE, dtype=np.int8),
            buyer=np.where(ok_idx, buyer, 0).astype(np.int32),
            seller=np.where(ok_idx, seller, 0).astype(np.int32),
            base=safe_base.astype(np.int32),
            quote=safe_quote.astype(np.int32),
            qty=np.where(reject == 0, qty, 0),
            quote_amt=np.where(reject == 0, quote_amt, 0),
            fee_buyer=np.zeros(n, dtype=np.int64),
            fee_seller=np.zeros(n, dtype=np.int64),
            time_ms=received,
            executed_ms=_col(table, "executed_at_ms"),
            pool=np.full(n, -1, dtype=np.int32),
            batch_seq=np.full(n, -1, dtype=np.int64),
            exch_batch=table.column("exch_batch_id").combine_chunks(),
        )
        hints = table.column("lane_hint").combine_chunks()
        hint_values = (
            hints.dictionary_decode().to_numpy(zero_copy_only=False)
            if hints.null_count < n
            else np.full(n, None, dtype=object)
        )
        lanes.clear_flows(
            self,
            flows,
            reject,
            reject_field,
            dup,
            hint_values,
            out,
            field_names=_TRADE_FIELDS,
            reasons=dict.fromkeys(np.flatnonzero(over_limit).tolist(), _OVER_LIMIT_REASON),
        )
        self.now_ms = max(self.now_ms, int(received[-1]))

    def _mark_over_limit(
        self,
        reject: npt.NDArray[np.int16],
        reject_field: npt.NDArray[np.int8],
        qty: I64,
        quote_amt: I64,
        buyer: npt.NDArray[np.int32],
        seller: npt.NDArray[np.int32],
    ) -> npt.NDArray[np.bool_]:
        """AMOUNT_OVERFLOW for trades whose own settlement would not fit one ledger entry
        (:mod:`clearlane.core.engine.limits`, the rule the edge checks too): on ``quantity`` when
        the quantity alone is too big, else on ``price`` (quantity x price is)."""
        fresh: npt.NDArray[np.bool_] = reject == 0
        if not fresh.any():
            return fresh
        cbps = self.fee_cbps
        over = limits.trade_over_limit(
            np.where(fresh, qty, 0),
            np.where(fresh, quote_amt, 0),
            cbps[np.maximum(buyer, 0)],
            cbps[np.maximum(seller, 0)],
        )
        qty_alone = qty > limits.FLOW_GROSS_MAX_MINOR
        over &= fresh
        _mark(reject, reject_field, over & qty_alone, RejectCode.AMOUNT_OVERFLOW, 4)
        _mark(reject, reject_field, over, RejectCode.AMOUNT_OVERFLOW, 5)
        return over

    def _participants(self, column: pa.ChunkedArray) -> npt.NDArray[np.int32]:
        arr = column.combine_chunks()
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(arr)
        lookup = np.array(
            [self.participant_lookup.get(v, -1) for v in arr.dictionary.to_pylist()] + [-1], dtype=np.int32
        )
        codes = arr.indices.to_numpy(zero_copy_only=False)
        result: npt.NDArray[np.int32] = lookup[codes]
        return result

    def _symbols(self, column: pa.ChunkedArray) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        arr = column.combine_chunks()
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(arr)
        base_of, quote_of = [], []
        for symbol in arr.dictionary.to_pylist():
            b, _, q = str(symbol).partition("/")
            bi, qi = self.asset_lookup.get(b, -1), self.asset_lookup.get(q, -1)
            ok = bi >= 0 and qi >= 0 and bi != qi
            base_of.append(bi if ok else -1)
            quote_of.append(qi if ok else -1)
        codes = arr.indices.to_numpy(zero_copy_only=False)
        return (
            np.array([*base_of, -1], dtype=np.int32)[codes],
            np.array([*quote_of, -1], dtype=np.int32)[codes],
        )

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

    # ------------------------------------------------------------------ small events
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

    def _apply_payment(self, entry: LogEntry, out: StepBuilder) -> None:
        payload = payload_of(entry, Payment)
        payment_id = str(payload.payment_id)
        payer = self.participant_lookup.get(str(payload.payer), -1)
        payee = self.participant_lookup.get(str(payload.payee), -1)
        a = self.asset_lookup.get(str(payload.asset), -1)
        reject = np.zeros(1, dtype=np.int16)
        reject_field = np.zeros(1, dtype=np.int8)
        amount = 0
        if payer < 0:
            reject[0], reject_field[0] = RejectCode.UNKNOWN_PARTICIPANT, 1
        elif payee < 0:
            reject[0], reject_field[0] = RejectCode.UNKNOWN_PARTICIPANT, 2
        elif payer == payee:
            reject[0], reject_field[0] = RejectCode.SELF_TRADE, 2
        elif a < 0:
            reject[0], reject_field[0] = RejectCode.UNKNOWN_ASSET, 3
        else:
            try:
                amount = parse_decimal(str(payload.amount), int(self.scales[a]))
            except DecimalError as exc:
                reject[0] = (
                    RejectCode.PRECISION_EXCEEDED if exc.reason == "precision" else RejectCode.BAD_DECIMAL
                )
                reject_field[0] = 4
        reasons = None
        if (
            reject[0] == 0
            and limits.payment_over_limit(np.array([amount], dtype=np.int64), self.fee_cbps[[payer]]).any()
        ):
            reject[0], reject_field[0] = RejectCode.AMOUNT_OVERFLOW, 4
            reasons = {0: _OVER_LIMIT_REASON}
        ids = pa.array([payment_id], type=pa.string())
        digest = np.array([payment_digest(payload)], dtype=np.uint64)
        dup = outcomes.dedup_flows(self, ids, reject == 0, "p:", digest, out)
        now = np.array([self.now_ms], dtype=np.int64)
        flows = Flows(
            ids=ids,
            kind=np.array([FLOW_PAYMENT], dtype=np.int8),
            buyer=np.array([max(payee, 0)], dtype=np.int32),
            seller=np.array([max(payer, 0)], dtype=np.int32),
            base=np.array([max(a, 0)], dtype=np.int32),
            quote=np.array([max(a, 0)], dtype=np.int32),
            qty=np.array([amount], dtype=np.int64),
            quote_amt=np.zeros(1, dtype=np.int64),
            fee_buyer=np.zeros(1, dtype=np.int64),
            fee_seller=np.zeros(1, dtype=np.int64),
            time_ms=now,
            executed_ms=now.copy(),
            pool=np.full(1, -1, dtype=np.int32),
            batch_seq=np.full(1, -1, dtype=np.int64),
            exch_batch=pa.array([None], type=pa.string()),
        )
        hint = np.array([payload.lane_hint], dtype=object)
        lanes.clear_flows(
            self, flows, reject, reject_field, dup, hint, out, field_names=_PAYMENT_FIELDS, reasons=reasons
        )

    def _apply_config(self, entry: LogEntry, out: StepBuilder) -> None:
        payload = payload_of(entry, ConfigChange)
        if not outcomes.event_id(self, "config", str(payload.change_id), out):
            return
        self.chain_epoch += 1
        install_config(self, self.config.with_changes(payload.changes))

    def _apply_escrow(self, entry: LogEntry, out: StepBuilder) -> None:
        """An escrow action (clearlane.core.escrow judges it; engine/escrows.py wires it)."""
        action = escrow_action_of(entry.payload)
        if action is None:
            raise EngineError(f"log entry {entry.seq} (escrow) carries a {type(entry.payload).__name__}")
        outcome = self.escrows.apply(action, self.now_ms)
        if outcome.duplicate:
            out.duplicates += 1
            self.stats.duplicates += 1
        elif outcome.reject is not None:
            self.stats.bump(self.stats.rejects_by_code, outcome.reject.code.slug)
            out.reject(outcome.reject)
        else:
            self.escrows.emit(outcome, out)
            payouts = self.escrows.payouts(outcome)
            if payouts:
                self._clear_payouts(payouts, out)

    def _clear_payouts(self, payouts: list[Payout], out: StepBuilder) -> None:
        """Escrow payouts as payments from the house, cleared like any payment (routed, netted
        in an L2 pool or settled gross on L1); engine/escrows.py follows them to finality."""
        n = len(payouts)
        ids = pa.array([p.flow_id for p in payouts], type=pa.string())
        asset = np.array([p.asset for p in payouts], dtype=np.int32)
        reject = np.zeros(n, dtype=np.int16)
        # A payout's content is its payee, asset and amount (its id says which escrow and action).
        digests = np.array(
            [content_digest(str(p.payee), str(p.asset), str(p.amount)) for p in payouts], dtype=np.uint64
        )
        dup = outcomes.dedup_flows(self, ids, reject == 0, model_ids.PAYMENT_NAMESPACE, digests, out)
        if dup.any():
            out.emit(
                Alert(f"escrow payout ids already used by payments: {ids.filter(pa.array(dup))}", self.now_ms)
            )
        now = np.full(n, self.now_ms, dtype=np.int64)
        flows = Flows(
            ids=ids,
            kind=np.full(n, FLOW_PAYMENT, dtype=np.int8),
            buyer=np.array([p.payee for p in payouts], dtype=np.int32),
            seller=np.full(n, self.house, dtype=np.int32),
            base=asset,
            quote=asset.copy(),
            qty=np.array([p.amount for p in payouts], dtype=np.int64),
            quote_amt=np.zeros(n, dtype=np.int64),
            fee_buyer=np.zeros(n, dtype=np.int64),
            fee_seller=np.zeros(n, dtype=np.int64),
            time_ms=now,
            executed_ms=now.copy(),
            pool=np.full(n, -1, dtype=np.int32),
            batch_seq=np.full(n, -1, dtype=np.int64),
            exch_batch=pa.array([None] * n, type=pa.string()),
        )
        hints = np.full(n, None, dtype=object)
        fields = np.zeros(n, dtype=np.int8)
        lanes.clear_flows(self, flows, reject, fields, dup, hints, out, field_names=_PAYMENT_FIELDS)

    def _apply_manual(self, entry: LogEntry, out: StepBuilder) -> None:
        """An operator's off-system settlement of an L1 obligation (engine/manual.py)."""
        manual.apply_manual(self, payload_of(entry, ManualSettlement), entry.at_ms, out)

    def _apply_adjustment(self, entry: LogEntry, out: StepBuilder) -> None:
        """An operator's adjusting journal entry (engine/adjust.py)."""
        adjust.apply_adjustment(self, payload_of(entry, LedgerAdjustment), entry.at_ms, out)

    def _apply_tick(self, entry: LogEntry, out: StepBuilder) -> None:
        """Nothing but time passing; :meth:`_on_time` does the work."""

    # ------------------------------------------------------------------ state root (stateroot.py)
    def seal(self, chain_head: bytes) -> None:
        """Fold the audit chain head of the entry just applied into :meth:`state_root`."""
        stateroot.seal(self, chain_head)

    def state_root(self) -> str:
        """A digest of the whole engine state: equal roots ⇔ equal states (replay check).

        It is :meth:`seal_root` of :meth:`pre_root` (everything but the audit chain head) and the
        chain head, so a pipelined runner can take the pre-root right after a step and seal it
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

_HANDLERS: dict[str, Callable[[Engine, LogEntry, StepBuilder], None]] = {
    "trades": Engine._apply_trades,
    "payment": Engine._apply_payment,
    "collateral_deposit": collateral.apply_deposit,
    "collateral_withdrawal": collateral.apply_withdrawal,
    "price_mark": collateral.apply_mark,
    "config_change": Engine._apply_config,
    "tick": Engine._apply_tick,
    "chain": chain.apply_chain,
    "escrow": Engine._apply_escrow,
    MANUAL_SETTLEMENT_KIND: Engine._apply_manual,
    LEDGER_ADJUSTMENT_KIND: Engine._apply_adjustment,
    # A signing-key rotation is logged for the audit trail (clearlane.node.auditor); the
    # clearing state only sees time pass.
    "key_rotation": Engine._apply_tick,
}
_TRADE_FIELDS = ("-", "buyer", "seller", "symbol", "quantity", "price")
_PAYMENT_FIELDS = ("-", "payer", "payee", "asset", "amount", "amount")
_OVER_LIMIT_REASON = (
    "quantity + quote amount + fees exceed the ledger's per-flow limit "
    f"({limits.FLOW_GROSS_MAX_MINOR} minor units, docs/LIMITS.md)"
)


def _col(table: pa.Table, name: str) -> I64:
    values: I64 = table.column(name).to_numpy().astype(np.int64, copy=False)
    return values


def _mark(
    reject: npt.NDArray[np.int16],
    where: npt.NDArray[np.int8],
    mask: npt.NDArray[np.bool_],
    code: RejectCode,
    field_index: int,
) -> None:
    """Record ``code`` on rows that have no earlier failure (first failure wins)."""
    fresh = mask & (reject == 0)
    reject[fresh] = code
    where[fresh] = field_index
