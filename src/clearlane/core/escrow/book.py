"""The escrow book: every escrow of an engine, the actions that move them, and their deadlines.

:meth:`EscrowBook.apply` takes one action record (``clearlane.core.model.inputs``) at an engine
time and answers an :class:`Outcome`: the transitions and movements it caused, or the one
reject that refused it (a stable :class:`~clearlane.core.model.codes.RejectCode` naming the
field and the reason). A refused action changes nothing. Checks, first failure wins: the
escrow exists (``open``: it does not), the actor is a party to it, its role may take the
action, the escrow is not disputed (for release, refund, cancel, satisfy, reject), the escrow's
state allows the action, then the action's own checks (amount, condition, funds, approval).

Idempotency: the action id is the key. The same id with the same content answers the first
outcome again (``duplicate``) and does nothing, whether that outcome was applied or refused —
so a refused action can never later succeed under its id; the same id with other content is
refused ``id_conflict``. :meth:`EscrowBook.advance` fires due deadlines (fund timeout,
inspection lapse) in deadline order, each exactly once, from the engine clock.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from clearlane.core.escrow import rules
from clearlane.core.escrow.accounts import EscrowAccounts
from clearlane.core.escrow.records import Condition, Escrow, EscrowPolicy, EscrowView, view_of, where_is_money
from clearlane.core.ledger import JournalEntry, Ledger, PostResult
from clearlane.core.model import ids
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.events import EscrowEvent, EscrowMovement, EscrowTransition, escrow_event_bytes
from clearlane.core.model.inputs import (
    EscrowAction,
    EscrowAgree,
    EscrowApprove,
    EscrowCancel,
    EscrowChargeback,
    EscrowChargebackResolve,
    EscrowDecide,
    EscrowDispute,
    EscrowFund,
    EscrowOpen,
    EscrowRefund,
    EscrowReject,
    EscrowRelease,
    EscrowSatisfy,
    EscrowSettle,
    EscrowTerms,
)
from clearlane.core.model.states import ConditionKind, EscrowRole, EscrowState, LapseAction, MovementKind
from clearlane.core.money import DecimalError, parse_decimal

FundsGate = Callable[[str, str, int], bool]
"""``(buyer, asset, amount) -> bool``: may the buyer's funds be held (the engine's collateral
policy); the ledger's floor is checked in any case."""

ENGINE_ACTOR = "engine"
"""The actor (and role) of what the engine clock does at a deadline."""

_St = EscrowState
_T = TypeVar("_T")


class EscrowInvariantError(Exception):
    """The escrow book contradicts itself or its ledger: a bug, never a user error."""


class _Refused(Exception):
    def __init__(self, code: RejectCode, field: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.field, self.reason = code, field, reason


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one action did: its events, or the reject that refused it."""

    action_id: str
    events: tuple[EscrowEvent, ...]
    reject: Reject | None = None
    duplicate: bool = False

    @property
    def applied(self) -> bool:
        return self.reject is None


@dataclass(frozen=True, slots=True)
class _Ctx:
    action_id: str
    action: str
    actor: str
    role: str
    at_ms: int


class EscrowBook:
    """Every escrow of one ledger (see the module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        scales: Mapping[str, int],
        policy: EscrowPolicy | None = None,
        gate: FundsGate | None = None,
        *,
        fold: bool = True,
        lanes: Callable[[str], bool] | None = None,
    ) -> None:
        self.ledger = ledger
        # fold=False: an owner that hashes every outcome's events and rejects itself (the
        # engine's effects head) need not pay for the same bytes twice.
        self._folds = fold
        # lanes(payee): whether a payee's settlement goes through the clearing lanes (the
        # engine: configured participants) — then it is final only when its lane says so.
        self._lanes = lanes
        self.accounts = EscrowAccounts(ledger)
        self.scales = dict(scales)
        self.policy = policy or EscrowPolicy()
        self.gate = gate
        self._escrows: dict[str, Escrow] = {}
        self._actions: dict[str, tuple[bytes, Outcome]] = {}
        self._timers: list[tuple[int, int, str, str]] = []
        self._timer_seq = 0
        self._reserves: set[tuple[str, str]] = set()
        self._head = hashlib.sha256(b"clearlane.escrow.v1").digest()

    # -- reading ------------------------------------------------------------------------------
    @property
    def used(self) -> bool:
        """Whether any escrow action was ever applied (the state root covers the book only then)."""
        return bool(self._actions)

    def view(self, escrow_id: str) -> EscrowView | None:
        e = self._escrows.get(escrow_id)
        return None if e is None else view_of(e)

    def views(self) -> Iterator[EscrowView]:
        return (view_of(e) for e in self._escrows.values())

    def __len__(self) -> int:
        return len(self._escrows)

    def negative_reserves(self) -> list[tuple[str, str, int]]:
        """``(seller, asset, balance)`` of every reserve a chargeback took below zero."""
        out = []
        for party, asset in sorted(self._reserves):
            balance = self.accounts.posted(self.accounts.reserve(party, asset))
            if balance < 0:
                out.append((party, asset, balance))
        return out

    def next_deadline_ms(self) -> int | None:
        return self._timers[0][0] if self._timers else None

    def digest(self) -> bytes:
        """Digest of every outcome so far (with the ledger's digest, the book's whole state)."""
        return hashlib.sha256(self._head + f"|{len(self._escrows)}|{len(self._actions)}".encode()).digest()

    def known(self, action: EscrowAction) -> Outcome | None:
        """What :meth:`apply` would answer for an action id seen before (its first outcome as
        a duplicate, or an ``id_conflict`` refusal), without changing anything; None if new."""
        seen = self._actions.get(action.action_id)
        if seen is None:
            return None
        if seen[0] == _fingerprint(action):
            return replace(seen[1], duplicate=True)
        reason = "this action id was used for a different action"
        return Outcome(action.action_id, (), _reject(RejectCode.ID_CONFLICT, "action_id", reason, action))

    def outcome(self, action_id: str) -> Outcome | None:
        """The first outcome of an action id (None if never seen)."""
        seen = self._actions.get(action_id)
        return None if seen is None else seen[1]

    # -- applying -----------------------------------------------------------------------------
    def apply(self, action: EscrowAction, at_ms: int) -> Outcome:
        fingerprint = _fingerprint(action)
        seen = self._actions.get(action.action_id)
        if seen is not None:
            if seen[0] == fingerprint:
                return replace(seen[1], duplicate=True)
            reason = "this action id was used for a different action"
            outcome = Outcome(
                action.action_id, (), _reject(RejectCode.ID_CONFLICT, "action_id", reason, action)
            )
            self._fold(outcome)
            return outcome
        try:
            events: list[EscrowEvent] = []
            self._dispatch(action, at_ms, events)
            outcome = Outcome(action.action_id, tuple(events))
        except _Refused as refused:
            outcome = Outcome(
                action.action_id, (), _reject(refused.code, refused.field, refused.reason, action)
            )
        self._actions[action.action_id] = (fingerprint, outcome)
        self._fold(outcome)
        return outcome

    def advance(self, now_ms: int) -> list[Outcome]:
        """Fire every deadline due at ``now_ms`` (deadline order, then creation order)."""
        fired = []
        while self._timers and self._timers[0][0] <= now_ms:
            deadline, _, escrow_id, kind = heapq.heappop(self._timers)
            e = self._escrows[escrow_id]
            events: list[EscrowEvent] = []
            ctx = _Ctx(
                ids.escrow_timer_action_id(escrow_id, kind, deadline),
                kind,
                ENGINE_ACTOR,
                ENGINE_ACTOR,
                now_ms,
            )
            if kind == "fund_timeout" and e.state is _St.AGREED and e.fund_deadline_ms == deadline:
                e.fund_deadline_ms = -1
                self._to(e, ctx, _St.CANCELLED, "not funded by the deadline", events)
            elif (
                kind == "inspection_lapse"
                and e.state is _St.INSPECTION
                and e.inspection_deadline_ms == deadline
            ):
                self._lapse(e, ctx, events)
            elif kind == "reserve_release" and e.reserve_due and e.reserve_due[0][0] <= deadline:
                self._release_reserve(e, ctx, deadline, events)
            else:
                continue  # stale: the escrow moved on before its deadline
            outcome = Outcome(ctx.action_id, tuple(events))
            self._fold(outcome)
            fired.append(outcome)
        return fired

    def _fold(self, outcome: Outcome) -> None:
        if not self._folds:
            return
        h = hashlib.sha256(self._head)
        h.update(outcome.action_id.encode())
        for event in outcome.events:
            h.update(escrow_event_bytes(event))
        if outcome.reject is not None:
            h.update(str(outcome.reject).encode())
        self._head = h.digest()

    def _dispatch(self, action: EscrowAction, at_ms: int, events: list[EscrowEvent]) -> None:
        if isinstance(action, EscrowOpen):
            self._open(action, at_ms, events)
            return
        e = self._escrows.get(action.escrow_id)
        if e is None:
            raise _Refused(RejectCode.ESCROW_NOT_FOUND, "escrow_id", "no escrow with this id")
        role = e.role_of(action.actor)
        if role is None:
            raise _Refused(RejectCode.ESCROW_ROLE_NOT_ALLOWED, "actor", "not a party to this escrow")
        name = action.action
        if name != "satisfy" and role not in rules.ACTION_ROLES[name]:
            raise _Refused(RejectCode.ESCROW_ROLE_NOT_ALLOWED, "actor", f"a {role.value} may not {name}")
        if e.state is _St.DISPUTED and name in rules.BLOCKED_BY_DISPUTE:
            raise _Refused(RejectCode.ESCROW_DISPUTED, "escrow_id", f"cannot {name} while disputed")
        if e.state not in rules.ACTION_STATES[name]:
            raise _Refused(RejectCode.ESCROW_WRONG_STATE, "action", f"cannot {name} in state {e.state.label}")
        ctx = _Ctx(action.action_id, name, action.actor, role.value, at_ms)
        _HANDLERS[type(action)](self, e, action, ctx, events)

    # -- transitions --------------------------------------------------------------------------
    def _to(self, e: Escrow, ctx: _Ctx, to: EscrowState, reason: str, events: list[EscrowEvent]) -> None:
        e.version += 1
        events.append(
            EscrowTransition(
                e.escrow_id,
                ctx.action_id,
                ctx.action,
                e.state,
                to,
                ctx.actor,
                ctx.role,
                reason,
                ctx.at_ms,
                e.version,
            )
        )
        e.state = to
        # A deadline belongs to its state: leaving it (by any path) means it will never fire.
        if to is not _St.INSPECTION:
            e.inspection_deadline_ms = -1
        if to is not _St.AGREED:
            e.fund_deadline_ms = -1

    def _timer(self, e: Escrow, kind: str, deadline: int) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, e.escrow_id, kind))

    def _amount(self, e: Escrow, text: str | None, field: str, default: int) -> int:
        if text is None:
            return default
        try:
            return parse_decimal(text, self.scales[e.asset])
        except DecimalError as exc:
            code = RejectCode.PRECISION_EXCEEDED if exc.reason == "precision" else RejectCode.BAD_DECIMAL
            raise _Refused(code, field, str(exc)) from exc

    def _post(
        self, e: Escrow, ctx: _Ctx, kind: MovementKind, amount: int, legs: list[tuple[int, int]]
    ) -> EscrowMovement:
        """Post one balanced entry (legs merged per account, zero legs dropped)."""
        merged: dict[int, int] = {}
        for account, value in legs:
            merged[account] = merged.get(account, 0) + value
        pairs = [(a, v) for a, v in merged.items() if v != 0]
        entry_id = ids.escrow_entry_id(e.escrow_id, ctx.action_id, kind.value)
        entry = JournalEntry.from_legs(entry_id, f"escrow_{kind.value}", ctx.at_ms, pairs, ref=e.escrow_id)
        result = self.ledger.post(entry)
        if result is PostResult.FLOOR_EXCEEDED and kind is MovementKind.FUNDED:
            raise _Refused(
                RejectCode.ESCROW_FUNDS_INSUFFICIENT, "actor", "the buyer's available funds are too low"
            )
        if result is not PostResult.OK:
            raise EscrowInvariantError(f"escrow entry {entry_id} refused by the ledger: {result.slug}")
        key = self.ledger.account_key
        described = tuple((key(a).owner, key(a).purpose.value, v) for a, v in pairs)
        return EscrowMovement(
            e.escrow_id, ctx.action_id, kind, e.asset, amount, entry_id, described, ctx.at_ms
        )

    # -- open, agree, fund, conditions --------------------------------------------------------
    def _open(self, action: EscrowOpen, at_ms: int, events: list[EscrowEvent]) -> None:
        if action.escrow_id in self._escrows:
            raise _Refused(RejectCode.ESCROW_EXISTS, "escrow_id", "an escrow with this id exists")
        terms = action.terms
        e = self._escrow_of(action.escrow_id, terms, at_ms)
        role = e.role_of(action.actor)
        if role is None or role not in rules.ACTION_ROLES["open"]:
            raise _Refused(
                RejectCode.ESCROW_ROLE_NOT_ALLOWED, "actor", "only the buyer, seller or platform may open"
            )
        self._escrows[e.escrow_id] = e
        ctx = _Ctx(action.action_id, "open", action.actor, role.value, at_ms)
        e.version = 1
        events.append(
            EscrowTransition(
                e.escrow_id,
                ctx.action_id,
                "open",
                _St.DRAFT,
                _St.DRAFT,
                ctx.actor,
                ctx.role,
                "opened",
                at_ms,
                1,
            )
        )

    def _escrow_of(self, escrow_id: str, terms: EscrowTerms, at_ms: int) -> Escrow:
        """The new escrow the terms describe, or a refusal naming the term at fault."""
        scale = self.scales.get(terms.asset)
        if scale is None:
            raise _Refused(RejectCode.UNKNOWN_ASSET, "terms.asset", "not a configured asset")
        try:
            amount = parse_decimal(terms.amount, scale)
        except DecimalError as exc:
            code = RejectCode.PRECISION_EXCEEDED if exc.reason == "precision" else RejectCode.BAD_DECIMAL
            raise _Refused(code, "terms.amount", str(exc)) from exc
        parties = {
            EscrowRole.BUYER: terms.buyer,
            EscrowRole.SELLER: terms.seller,
            EscrowRole.PLATFORM: terms.platform,
            EscrowRole.ARBITER: terms.arbiter,
        }
        if len(set(parties.values())) != len(parties):
            raise _Refused(
                RejectCode.ESCROW_BAD_TERMS, "terms", "buyer, seller, platform and arbiter must differ"
            )
        payees = tuple((p.party, p.share_bps) for p in terms.payees) or ((terms.seller, rules.BPS),)
        if sum(bps for _, bps in payees) != rules.BPS or len({p for p, _ in payees}) != len(payees):
            raise _Refused(
                RejectCode.ESCROW_BAD_TERMS, "terms.payees", "distinct payees whose shares sum to 10000 bps"
            )
        if terms.buyer in {p for p, _ in payees}:
            raise _Refused(RejectCode.ESCROW_BAD_TERMS, "terms.payees", "the buyer cannot be a payee")
        conditions = {
            c.condition_id: Condition(c.condition_id, ConditionKind(c.kind), EscrowRole(c.role))
            for c in terms.conditions
        }
        if len(conditions) != len(terms.conditions):
            raise _Refused(RejectCode.ESCROW_BAD_TERMS, "terms.conditions", "condition ids must be distinct")
        return Escrow(
            escrow_id=escrow_id,
            asset=terms.asset,
            amount=amount,
            parties=parties,
            payees=payees,
            fee_bps=terms.fee_bps,
            reserve_bps=terms.reserve_bps,
            conditions=conditions,
            inspection_period_ms=terms.inspection_period_ms,
            lapse_action=LapseAction(terms.lapse_action),
            fund_timeout_ms=terms.fund_timeout_ms,
            auto_release=terms.auto_release,
            order_ref=terms.order_ref,
            created_at_ms=at_ms,
            reserve_hold_ms=terms.reserve_hold_ms,
        )

    def _agree(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        role = EscrowRole(ctx.role)
        if role in e.agreed:
            raise _Refused(RejectCode.ESCROW_WRONG_STATE, "actor", f"the {role.value} has agreed already")
        e.agreed.add(role)
        if e.agreed != {EscrowRole.BUYER, EscrowRole.SELLER}:
            self._to(e, ctx, _St.DRAFT, f"{role.value} agreed", events)
            return
        if e.fund_timeout_ms > 0:
            e.fund_deadline_ms = ctx.at_ms + e.fund_timeout_ms
            self._timer(e, "fund_timeout", e.fund_deadline_ms)
        self._to(e, ctx, _St.AGREED, "buyer and seller agreed", events)

    def _fund(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        if self.gate is not None and not self.gate(e.buyer, e.asset, e.amount):
            raise _Refused(
                RejectCode.ESCROW_FUNDS_INSUFFICIENT, "actor", "the buyer's available funds are too low"
            )
        a = self.accounts
        source = a.funds_of(e.buyer, e.asset, e.amount)
        if source is None:  # checked before any account is made: a refusal changes nothing
            raise _Refused(
                RejectCode.ESCROW_FUNDS_INSUFFICIENT, "actor", "the buyer's available funds are too low"
            )
        legs = [(source, -e.amount), (a.escrow(e.asset), e.amount)]
        events.append(self._post(e, ctx, MovementKind.FUNDED, e.amount, legs))
        e.funded = e.amount
        e.fund_deadline_ms = -1
        self._to(e, ctx, _St.FUNDED, "the buyer's funds are held", events)
        self._progress(e, ctx, events)

    def _satisfy(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        condition = e.conditions.get(_of(action, EscrowSatisfy).condition_id)
        if condition is None:
            raise _Refused(
                RejectCode.ESCROW_CONDITION_UNKNOWN, "condition_id", "no such condition on this escrow"
            )
        if condition.met:
            raise _Refused(
                RejectCode.ESCROW_CONDITION_ALREADY_MET, "condition_id", "the condition is met already"
            )
        if EscrowRole(ctx.role) not in rules.condition_roles(condition.role, self.policy.delegate_accept):
            raise _Refused(
                RejectCode.ESCROW_ROLE_NOT_ALLOWED,
                "actor",
                f"only the {condition.role.value} may satisfy this",
            )
        self._meet(e, condition, ctx, events)

    def _meet(self, e: Escrow, condition: Condition, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        condition.satisfied_by, condition.satisfied_at_ms = ctx.actor, ctx.at_ms
        if condition.kind is ConditionKind.INSPECTION_PASSED:
            e.inspection_deadline_ms = -1
        self._to(e, ctx, e.state, f"{condition.kind.value} {condition.condition_id} met", events)
        self._progress(e, ctx, events)

    def _progress(self, e: Escrow, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        """After funding or a met condition: to inspection, to releasable, and auto-release."""
        unmet = [c for c in e.conditions.values() if not c.met]
        if unmet and e.state is _St.FUNDED and all(c.kind is ConditionKind.INSPECTION_PASSED for c in unmet):
            if e.inspection_period_ms > 0:
                e.inspection_deadline_ms = ctx.at_ms + e.inspection_period_ms
                self._timer(e, "inspection_lapse", e.inspection_deadline_ms)
            self._to(e, ctx, _St.INSPECTION, "inspection period started", events)
        elif not unmet:
            self._to(e, ctx, _St.RELEASABLE, "every condition met", events)
            self._auto_release(e, ctx, events)

    def _auto_release(self, e: Escrow, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        if e.auto_release and e.state is _St.RELEASABLE and self._approval_gap(e, e.remaining) == 0:
            self._release_amount(e, ctx, e.remaining, events)

    def _lapse(self, e: Escrow, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        e.inspection_deadline_ms = -1
        match e.lapse_action:
            case LapseAction.ACCEPT:
                for condition in e.conditions.values():
                    if condition.kind is ConditionKind.INSPECTION_PASSED and not condition.met:
                        condition.satisfied_by, condition.satisfied_at_ms = ctx.actor, ctx.at_ms
                self._to(e, ctx, e.state, "inspection period lapsed: accepted", events)
                self._progress(e, ctx, events)
            case LapseAction.REFUND:
                self._refund_amount(e, ctx, e.remaining, events)
            case LapseAction.ESCALATE:
                e.disputed_from, e.dispute_reason = e.state, "inspection period lapsed: escalated"
                self._to(e, ctx, _St.DISPUTED, e.dispute_reason, events)

    # -- release, approve, refund, cancel -----------------------------------------------------
    def _approval_gap(self, e: Escrow, amount: int) -> int:
        """How much of releasing ``amount`` more lacks the platform's approval (0: none)."""
        threshold = self.policy.approval_over_minor.get(e.asset)
        if threshold is None:
            return 0
        return max(0, e.released + amount - max(threshold, e.approved))

    def _release(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        amount = self._amount(e, _of(action, EscrowRelease).amount, "amount", e.remaining)
        if amount <= 0 or amount > e.remaining:
            raise _Refused(
                RejectCode.ESCROW_AMOUNT_EXCEEDS_REMAINING, "amount", f"must be 1..{e.remaining} minor units"
            )
        if self._approval_gap(e, amount) > 0:
            raise _Refused(
                RejectCode.ESCROW_APPROVAL_REQUIRED,
                "amount",
                "above the approval threshold: the platform must approve",
            )
        self._release_amount(e, ctx, amount, events)

    def _release_amount(self, e: Escrow, ctx: _Ctx, amount: int, events: list[EscrowEvent]) -> None:
        a = self.accounts
        split = rules.release_split(amount, e.fee_bps, e.reserve_bps, e.payees)
        legs = [(a.escrow(e.asset), -amount), (a.revenue(e.asset), split.fee)]
        legs.append((a.reserve(e.seller, e.asset), split.reserve))
        legs.extend((a.payable(party, e.asset), share) for party, share in split.payees)
        events.append(self._post(e, ctx, MovementKind.RELEASED, amount, legs))
        self._book_release(e, split, ctx.at_ms)
        self._after_payout(e, ctx, f"released {amount}", events)

    def _book_release(self, e: Escrow, split: rules.Split, at_ms: int) -> None:
        e.released += split.total
        e.fees += split.fee
        e.reserved += split.reserve
        if split.reserve and e.reserve_hold_ms > 0:
            e.reserve_due.append((at_ms + e.reserve_hold_ms, split.reserve))
            self._timer(e, "reserve_release", at_ms + e.reserve_hold_ms)
        self._reserves.add((e.seller, e.asset))
        for party, share in split.payees:
            e.to_payees += share
            e.unsettled[party] = e.unsettled.get(party, 0) + share

    def _after_payout(self, e: Escrow, ctx: _Ctx, reason: str, events: list[EscrowEvent]) -> None:
        """The state after money left escrow: emptied → released (or refunded), else as it was."""
        if e.remaining > 0:
            self._to(e, ctx, e.state, reason, events)
        elif e.released > 0:
            self._to(e, ctx, _St.RELEASED, reason, events)
        else:
            self._to(e, ctx, _St.REFUNDED, reason, events)

    def _approve(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        amount = self._amount(e, _of(action, EscrowApprove).amount, "amount", 0)
        if amount <= 0 or e.approved + amount > e.amount:
            raise _Refused(
                RejectCode.ESCROW_AMOUNT_EXCEEDS_REMAINING,
                "amount",
                f"approvals may total 1..{e.amount} minor units",
            )
        e.approved += amount
        self._to(e, ctx, e.state, f"releases approved up to {e.approved}", events)
        self._auto_release(e, ctx, events)

    def _refund(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        amount = self._amount(e, _of(action, EscrowRefund).amount, "amount", e.remaining)
        if amount <= 0 or amount > e.remaining:
            raise _Refused(
                RejectCode.ESCROW_AMOUNT_EXCEEDS_REMAINING, "amount", f"must be 1..{e.remaining} minor units"
            )
        self._refund_amount(e, ctx, amount, events)

    def _refund_amount(self, e: Escrow, ctx: _Ctx, amount: int, events: list[EscrowEvent]) -> None:
        a = self.accounts
        legs = [(a.escrow(e.asset), -amount), (a.source(e.buyer, e.asset), amount)]
        events.append(self._post(e, ctx, MovementKind.REFUNDED, amount, legs))
        e.refunded += amount
        self._after_payout(e, ctx, f"refunded {amount}", events)

    def _cancel(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        reason = _of(action, EscrowCancel).reason or "cancelled"
        if e.state is _St.FUNDED:
            if EscrowRole(ctx.role) not in rules.FUNDED_CANCEL_ROLES:
                raise _Refused(
                    RejectCode.ESCROW_ROLE_NOT_ALLOWED,
                    "actor",
                    "only the platform may cancel a funded escrow",
                )
            a = self.accounts
            legs = [(a.escrow(e.asset), -e.remaining), (a.source(e.buyer, e.asset), e.remaining)]
            events.append(self._post(e, ctx, MovementKind.REFUNDED, e.remaining, legs))
            e.refunded += e.remaining
        e.fund_deadline_ms = -1
        self._to(e, ctx, _St.CANCELLED, reason, events)

    # -- disputes ----------------------------------------------------------------------------
    def _reject_goods(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        e.inspection_deadline_ms = -1
        e.disputed_from = e.state
        e.dispute_reason = _of(action, EscrowReject).reason or "the buyer rejected the goods"
        self._to(e, ctx, _St.DISPUTED, e.dispute_reason, events)

    def _dispute(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        e.inspection_deadline_ms = -1
        e.disputed_from = e.state
        e.dispute_reason = _of(action, EscrowDispute).reason or f"disputed by the {ctx.role}"
        self._to(e, ctx, _St.DISPUTED, e.dispute_reason, events)

    def _decide(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        """The arbiter's split of what remains, posted as one entry (refund and release legs)."""
        bps = _of(action, EscrowDecide).buyer_share_bps
        remaining = e.remaining
        to_buyer, to_release = rules.arbiter_split(remaining, bps)
        a = self.accounts
        split = rules.release_split(to_release, e.fee_bps, e.reserve_bps, e.payees)
        legs = [(a.escrow(e.asset), -remaining), (a.source(e.buyer, e.asset), to_buyer)]
        if to_release:
            legs.extend([(a.revenue(e.asset), split.fee), (a.reserve(e.seller, e.asset), split.reserve)])
            legs.extend((a.payable(party, e.asset), share) for party, share in split.payees)
        kind = MovementKind.RELEASED if to_release else MovementKind.REFUNDED
        events.append(self._post(e, ctx, kind, remaining, legs))
        e.refunded += to_buyer
        if to_release:
            self._book_release(e, split, ctx.at_ms)
        e.disputed_from = None
        self._after_payout(e, ctx, f"decided: {to_buyer} to the buyer, {to_release} released", events)

    # -- settlement and chargebacks -----------------------------------------------------------
    def _settle(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        """Released money leaves the payable accounts: straight to the payee's available
        account (final at once), or to the house's transit account for a payee that settles
        through the lanes (final when :meth:`finalize` says its lane is)."""
        due = [(party, amount) for party, amount in e.unsettled.items() if amount > 0]
        total = sum(amount for _, amount in due)
        if total == 0:
            raise _Refused(RejectCode.ESCROW_WRONG_STATE, "action", "nothing released is waiting to settle")
        a = self.accounts
        legs = []
        via_lanes = 0
        for party, amount in due:
            lane = self._lanes is not None and self._lanes(party)
            target = a.transit(e.asset) if lane else a.settled(party, e.asset)
            via_lanes += amount if lane else 0
            legs += [(a.payable(party, e.asset), -amount), (target, amount)]
        events.append(self._post(e, ctx, MovementKind.SETTLED, total, legs))
        for party, amount in due:
            e.unsettled[party] -= amount
        e.settled += total
        e.in_lanes += via_lanes
        e.final_paid += total - via_lanes
        self._to(
            e,
            ctx,
            e.state,
            f"settled {total}" + (f", {via_lanes} through the lanes" if via_lanes else ""),
            events,
        )

    def _release_reserve(self, e: Escrow, ctx: _Ctx, deadline: int, events: list[EscrowEvent]) -> None:
        """The reserve held back from releases whose hold period ended by ``deadline`` goes to
        the seller's payable (then settles like any payout) — as much of it as the seller's
        reserve account still holds: what a chargeback drew from it is not paid out twice."""
        due = sum(amount for at, amount in e.reserve_due if at <= deadline)
        e.reserve_due = [(at, amount) for at, amount in e.reserve_due if at > deadline]
        a = self.accounts
        reserve = a.reserve(e.seller, e.asset)
        amount = min(due, max(a.posted(reserve), 0), e.reserved)
        if amount <= 0:
            self._to(e, ctx, e.state, f"reserve hold ended: nothing left to release of {due}", events)
            return
        legs = [(reserve, -amount), (a.payable(e.seller, e.asset), amount)]
        events.append(self._post(e, ctx, MovementKind.RESERVE_RELEASED, amount, legs))
        e.reserved -= amount
        e.to_payees += amount
        e.unsettled[e.seller] = e.unsettled.get(e.seller, 0) + amount
        self._to(e, ctx, e.state, f"reserve of {amount} released to the seller after its hold", events)

    def finalize(self, escrow_id: str, amount: int, at_ms: int, action_id: str, detail: str) -> Outcome:
        """A payout that settled through a lane is final (the engine calls this)."""
        e = self._escrows.get(escrow_id)
        if e is None or not 0 < amount <= e.in_lanes:
            raise EscrowInvariantError(
                f"escrow {escrow_id}: {amount} final but {e and e.in_lanes} in the lanes"
            )
        e.in_lanes -= amount
        e.final_paid += amount
        events: list[EscrowEvent] = []
        ctx = _Ctx(action_id, "final", ENGINE_ACTOR, ENGINE_ACTOR, at_ms)
        self._to(e, ctx, e.state, f"payout of {amount} final: {detail}", events)
        outcome = Outcome(action_id, tuple(events))
        self._fold(outcome)
        return outcome

    def _chargeback(self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]) -> None:
        """Claw a chargeback back: seller payable, then seller reserve, then platform loss."""
        record = _of(action, EscrowChargeback)
        chargeable = e.released - e.charged_back
        amount = self._amount(e, record.amount, "amount", chargeable)
        if amount <= 0 or amount > chargeable:
            raise _Refused(
                RejectCode.ESCROW_AMOUNT_EXCEEDS_REMAINING,
                "amount",
                f"must be 1..{chargeable} released minor units",
            )
        a = self.accounts
        reserve = a.reserve(e.seller, e.asset)
        taken = rules.clawback(
            amount,
            e.unsettled.get(e.seller, 0),
            a.posted(reserve),
            self.policy.reserve_overdraft_minor.get(e.asset, 0),
        )
        legs = [
            (a.external(e.asset), amount),
            (a.payable(e.seller, e.asset), -taken.payable),
            (reserve, -taken.reserve),
            (a.loss(e.asset), -taken.loss),
        ]
        events.append(self._post(e, ctx, MovementKind.CHARGED_BACK, amount, legs))
        e.unsettled[e.seller] = e.unsettled.get(e.seller, 0) - taken.payable
        e.clawed_payable += taken.payable
        e.charged_back += amount
        e.chargeback_open = (taken.payable, taken.reserve, taken.loss)
        reason = record.reason or "chargeback"
        self._to(e, ctx, _St.CHARGEBACK, f"{reason}: {amount} withdrawn", events)

    def _chargeback_resolve(
        self, e: Escrow, action: EscrowAction, ctx: _Ctx, events: list[EscrowEvent]
    ) -> None:
        opened = e.chargeback_open
        if opened is None:
            raise EscrowInvariantError(f"escrow {e.escrow_id} is in chargeback with no chargeback open")
        e.chargeback_open = None
        if not _of(action, EscrowChargebackResolve).won:
            self._to(e, ctx, _St.CLOSED, "chargeback lost", events)
            return
        from_payable, from_reserve, loss = opened
        amount = from_payable + from_reserve + loss
        a = self.accounts
        legs = [
            (a.external(e.asset), -amount),
            (a.payable(e.seller, e.asset), from_payable),
            (a.reserve(e.seller, e.asset), from_reserve),
            (a.loss(e.asset), loss),
        ]
        events.append(self._post(e, ctx, MovementKind.REINSTATED, amount, legs))
        e.unsettled[e.seller] = e.unsettled.get(e.seller, 0) + from_payable
        e.clawed_payable -= from_payable
        e.charged_back -= amount
        self._to(e, ctx, _St.RELEASED, "chargeback won: funds reinstated", events)

    # -- invariants ---------------------------------------------------------------------------
    def check_invariants(self) -> None:
        """Conservation per escrow and against the ledger; raises :class:`EscrowInvariantError`."""
        held: dict[str, int] = {}
        for e in self._escrows.values():
            _check_escrow(e)
            held[e.asset] = held.get(e.asset, 0) + e.remaining
        for asset in self.scales:
            in_ledger = self.accounts.escrow_balance(asset)
            if in_ledger != held.get(asset, 0):
                raise EscrowInvariantError(
                    f"{asset}: the escrow account holds {in_ledger} but escrows hold {held.get(asset, 0)}"
                )


def _check_escrow(e: Escrow) -> None:
    problems = []
    if e.remaining < 0:
        problems.append(f"remaining {e.remaining} < 0")
    if e.funded not in (0, e.amount):
        problems.append(f"funded {e.funded} is neither 0 nor the amount {e.amount}")
    if e.state.holds_funds != (e.remaining > 0):
        problems.append(f"state {e.state.label} with {e.remaining} remaining")
    if e.released != e.fees + e.reserved + e.to_payees:
        problems.append("released != fee + reserve + payees")
    if e.settled != e.in_lanes + e.final_paid or min(e.in_lanes, e.final_paid) < 0:
        problems.append("settled != in the lanes + final")
    if e.to_payees != e.settled + sum(e.unsettled.values()) + e.clawed_payable:
        problems.append("payees' shares != settled + unsettled + clawed back")
    if any(amount < 0 for amount in e.unsettled.values()):
        problems.append("negative unsettled payable")
    if not 0 <= e.charged_back <= e.released:
        problems.append(f"charged back {e.charged_back} outside 0..released {e.released}")
    if (e.state is _St.CHARGEBACK) != (e.chargeback_open is not None):
        problems.append("chargeback state and open chargeback disagree")
    w = where_is_money(e)
    if w.buyer + w.escrow + w.clearing + w.final + e.clawed_payable != e.amount:
        problems.append("buyer + escrow + clearing + final + clawed back != the amount")
    if problems:
        raise EscrowInvariantError(f"escrow {e.escrow_id}: " + "; ".join(problems))


def _of(action: EscrowAction, kind: type[_T]) -> _T:
    """The action as the record its handler takes (the handler table guarantees it)."""
    if not isinstance(action, kind):
        raise EscrowInvariantError(f"{type(action).__name__} given to the {kind.__name__} handler")
    return action


def _fingerprint(action: EscrowAction) -> bytes:
    return hashlib.sha256(action.model_dump_json().encode()).digest()


def _reject(code: RejectCode, field: str, reason: str, action: EscrowAction) -> Reject:
    return Reject(code, field, f"escrow {action.escrow_id}: {reason}", None, action.action_id)


_Handler = Callable[[EscrowBook, Escrow, EscrowAction, _Ctx, list[EscrowEvent]], None]
_HANDLERS: dict[type, _Handler] = {
    EscrowAgree: EscrowBook._agree,
    EscrowFund: EscrowBook._fund,
    EscrowSatisfy: EscrowBook._satisfy,
    EscrowReject: EscrowBook._reject_goods,
    EscrowRelease: EscrowBook._release,
    EscrowApprove: EscrowBook._approve,
    EscrowRefund: EscrowBook._refund,
    EscrowCancel: EscrowBook._cancel,
    EscrowDispute: EscrowBook._dispute,
    EscrowDecide: EscrowBook._decide,
    EscrowSettle: EscrowBook._settle,
    EscrowChargeback: EscrowBook._chargeback,
    EscrowChargebackResolve: EscrowBook._chargeback_resolve,
}
