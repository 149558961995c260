"""The canonical, versioned event model.

Every input the engine sees is one of these, written to the input log before it is applied.
Trades travel in columnar chunks (an Arrow table per log entry); everything else is a small
JSON object. Every event carries an id that is its idempotency key: a trade id, a payment id,
a deposit id, ... Applying an id twice is a no-op.

Schema version 1 — trade chunk columns (``TRADE_CHUNK_SCHEMA``):

============== ================ ==========================================================
column         type             meaning
============== ================ ==========================================================
trade_id       string           venue-unique id, idempotency key (``ids.INPUT_ID_PATTERN``)
venue          dict<string>     where it executed
symbol         dict<string>     ``BASE/QUOTE`` asset codes
buyer          dict<string>     participant id receiving the base asset
seller         dict<string>     participant id receiving the quote asset
qty_mantissa   int64            quantity digits; quantity = mantissa / 10**qty_exp
qty_exp        int8             digits after the decimal point as received
price_mantissa int64            price digits; price = mantissa / 10**price_exp
price_exp      int8             digits after the decimal point as received
executed_at_ms int64            venue execution time, ms since the Unix epoch (UTC)
received_at_ms int64            engine time the trade entered clearlane (the clock input)
exch_batch_id  string, null     the exchange's batch id, carried through every record
lane_hint      dict<string>,nul ``L1``, ``L2`` or a pool id suggested by the venue
============== ================ ==========================================================

(mantissa, exponent) is lossless: the strict decimal grammar admits exactly one string per pair,
so ``1.50`` (150, 2) and ``1.5`` (15, 1) stay distinguishable and the original text can be
re-derived for audit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias, cast

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, model_validator

from clearlane.core.model.chain import ChainEvent, event_from_dict
from clearlane.core.model.ids import INPUT_ID_PATTERN

SCHEMA_VERSION = 1

# The input id grammar (core/model/ids.py): one path segment of any route, as it is.
ID_PATTERN = INPUT_ID_PATTERN
ID_RE = re.compile(ID_PATTERN)
SYMBOL_PATTERN = r"^[A-Z][A-Z0-9]{1,11}/[A-Z][A-Z0-9]{1,11}$"

_dict = pa.dictionary(pa.int32(), pa.string())

TRADE_CHUNK_SCHEMA = pa.schema(
    [
        pa.field("trade_id", pa.string(), nullable=False),
        pa.field("venue", _dict, nullable=False),
        pa.field("symbol", _dict, nullable=False),
        pa.field("buyer", _dict, nullable=False),
        pa.field("seller", _dict, nullable=False),
        pa.field("qty_mantissa", pa.int64(), nullable=False),
        pa.field("qty_exp", pa.int8(), nullable=False),
        pa.field("price_mantissa", pa.int64(), nullable=False),
        pa.field("price_exp", pa.int8(), nullable=False),
        pa.field("executed_at_ms", pa.int64(), nullable=False),
        pa.field("received_at_ms", pa.int64(), nullable=False),
        pa.field("exch_batch_id", pa.string(), nullable=True),
        pa.field("lane_hint", _dict, nullable=True),
    ],
    metadata={"clearlane.schema": "trade_chunk", "clearlane.version": str(SCHEMA_VERSION)},
)

# Columns accepted in input files (CSV / Parquet / JSON lines). Decimal fields are strings.
INPUT_TRADE_COLUMNS = (
    "trade_id",
    "venue",
    "symbol",
    "buyer",
    "seller",
    "quantity",
    "price",
    "executed_at",
)
INPUT_TRADE_OPTIONAL = ("exch_batch_id", "lane_hint")

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
DecimalText = Annotated[str, StringConstraints(pattern=r"^(0|[1-9][0-9]*)(\.[0-9]+)?$")]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = 1


class TradeExecuted(_Event):
    """One trade as a venue reports it (the single-message form of a chunk row)."""

    type: Literal["trade"] = "trade"
    trade_id: Id
    venue: Id
    symbol: Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN)]
    buyer: Id
    seller: Id
    quantity: DecimalText
    price: DecimalText
    executed_at_ms: int = Field(ge=0)
    exch_batch_id: Id | None = None
    lane_hint: Id | None = None


class Payment(_Event):
    """A payment obligation: ``payer`` owes ``payee`` ``amount`` of ``asset``."""

    type: Literal["payment"] = "payment"
    payment_id: Id
    payer: Id
    payee: Id
    asset: str
    amount: DecimalText
    lane_hint: Id | None = None


class CollateralDeposit(_Event):
    type: Literal["collateral_deposit"] = "collateral_deposit"
    deposit_id: Id
    participant: Id
    asset: str
    amount: DecimalText


class CollateralWithdrawal(_Event):
    type: Literal["collateral_withdrawal"] = "collateral_withdrawal"
    withdrawal_id: Id
    participant: Id
    asset: str
    amount: DecimalText


class PriceMark(_Event):
    """A new USD mark per whole unit of ``asset`` (used for risk valuation only)."""

    type: Literal["price_mark"] = "price_mark"
    mark_id: Id
    asset: str
    mark_usd: DecimalText


class ClockTick(_Event):
    """Time passes: closes due batches, expires holds, checks finality and deadlines."""

    type: Literal["tick"] = "tick"


class ChainEvents(_Event):
    """Events observed on the base layer (blocks, reorgs), in chain order."""

    type: Literal["chain"] = "chain"
    events: list[dict[str, Any]]
    # Logged by the node when the base layer had not yet been handed every earlier step's
    # transactions (pipelined clearing): the last step whose transactions it had. Recovery feeds
    # the replayed chain exactly that far.
    submitted_through: int | None = None
    # The node's own decoded events when it logs an observation (``with_decoded``): exactly what
    # ``event_from_dict`` gives for each of ``events`` (the two round-trip; property test), so the
    # engine applies the same values whether the entry is live or replayed from the log's bytes.
    _decoded: tuple[ChainEvent, ...] | None = PrivateAttr(default=None)

    def with_decoded(self, events: tuple[ChainEvent, ...]) -> ChainEvents:
        """This record carrying ``events``, the decoded form of its ``events`` dicts."""
        if len(events) != len(self.events):
            raise ValueError("decoded chain events do not match the logged ones")
        self._decoded = events
        return self

    def decoded(self) -> tuple[ChainEvent, ...]:
        """The logged events as values (decoded and checked here when replayed from the log)."""
        if self._decoded is None:
            self._decoded = tuple(event_from_dict(raw) for raw in self.events)
        return self._decoded


class ConfigChange(_Event):
    """Reference-data change: ``{"participants": {id: {field: value}}, "assets": {...}}``."""

    type: Literal["config_change"] = "config_change"
    change_id: Id
    changes: dict[str, Any]


# ---------------------------------------------------------------------- escrow (issue 12)
# One log kind, "escrow", whose payload is one of the actions below (discriminated by
# ``action``). Amounts are decimal strings in the escrow's asset, parsed by the escrow rules at
# the asset's scale; whether the actor may act is judged there too, not here.

EscrowRoleText = Literal["buyer", "seller", "platform", "arbiter"]
ESCROW_KIND = "escrow"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EscrowCondition(_Frozen):
    """A condition of release and the one role allowed to satisfy it."""

    condition_id: Id
    kind: Literal["delivery_confirmed", "title_transferred", "inspection_passed", "custom"]
    role: EscrowRoleText


class EscrowPayee(_Frozen):
    """A payee's share (basis points) of what is released after the fee and the reserve."""

    party: Id
    share_bps: int = Field(ge=1, le=10_000)


class EscrowTerms(_Frozen):
    """What buyer and seller agree to. ``payees`` empty = the seller takes everything;
    ``fund_timeout_ms`` 0 = no fund deadline; ``inspection_period_ms`` counts from the moment
    every other condition is met."""

    asset: str
    amount: DecimalText
    buyer: Id
    seller: Id
    platform: Id
    arbiter: Id
    payees: tuple[EscrowPayee, ...] = ()
    fee_bps: int = Field(default=0, ge=0, le=10_000)
    reserve_bps: int = Field(default=0, ge=0, le=10_000)
    conditions: tuple[EscrowCondition, ...] = ()
    inspection_period_ms: int = Field(default=0, ge=0, le=10**13)
    lapse_action: Literal["accept", "refund", "escalate"] = "accept"
    fund_timeout_ms: int = Field(default=0, ge=0, le=10**13)
    auto_release: bool = True
    order_ref: Id | None = None
    reserve_hold_ms: int = Field(default=0, ge=0, le=10**13)
    """How long the seller reserve a release takes is held back; then the engine clock releases
    what is left of it to the seller's payable. 0: held until an operator decides (no timer)."""


class _EscrowInput(_Event):
    type: Literal["escrow"] = "escrow"
    action_id: Id
    """The idempotency key: the same id again is a no-op that answers the first result."""
    escrow_id: Id
    actor: Id


class EscrowOpen(_EscrowInput):
    action: Literal["open"] = "open"
    terms: EscrowTerms


class EscrowAgree(_EscrowInput):
    action: Literal["agree"] = "agree"


class EscrowFund(_EscrowInput):
    action: Literal["fund"] = "fund"


class EscrowSatisfy(_EscrowInput):
    action: Literal["satisfy"] = "satisfy"
    condition_id: Id


class EscrowReject(_EscrowInput):
    """The buyer rejects the goods during inspection: the escrow goes to the arbiter."""

    action: Literal["reject"] = "reject"
    reason: str = Field(default="", max_length=500)


class EscrowRelease(_EscrowInput):
    """Release ``amount`` (None: all that remains) to the payees, fee and reserve included."""

    action: Literal["release"] = "release"
    amount: DecimalText | None = None


class EscrowApprove(_EscrowInput):
    """The platform's second approval (custody / compliance) for releases above the policy's
    threshold, up to ``amount`` in total."""

    action: Literal["approve"] = "approve"
    amount: DecimalText


class EscrowRefund(_EscrowInput):
    action: Literal["refund"] = "refund"
    amount: DecimalText | None = None


class EscrowCancel(_EscrowInput):
    action: Literal["cancel"] = "cancel"
    reason: str = Field(default="", max_length=500)


class EscrowDispute(_EscrowInput):
    action: Literal["dispute"] = "dispute"
    reason: str = Field(default="", max_length=500)


class EscrowDecide(_EscrowInput):
    """The arbiter's split of what remains: the buyer's share back, the rest released."""

    action: Literal["decide"] = "decide"
    buyer_share_bps: int = Field(ge=0, le=10_000)


class EscrowSettle(_EscrowInput):
    """Released money moves from the payees' payable accounts to their available accounts."""

    action: Literal["settle"] = "settle"


class EscrowChargeback(_EscrowInput):
    """The buyer's funding was reversed by its bank after release: claw ``amount`` back."""

    action: Literal["chargeback"] = "chargeback"
    amount: DecimalText | None = None
    reason: str = Field(default="", max_length=500)


class EscrowChargebackResolve(_EscrowInput):
    action: Literal["chargeback_resolve"] = "chargeback_resolve"
    won: bool


EscrowAction: TypeAlias = (
    EscrowOpen
    | EscrowAgree
    | EscrowFund
    | EscrowSatisfy
    | EscrowReject
    | EscrowRelease
    | EscrowApprove
    | EscrowRefund
    | EscrowCancel
    | EscrowDispute
    | EscrowDecide
    | EscrowSettle
    | EscrowChargeback
    | EscrowChargebackResolve
)
ESCROW_ACTIONS: dict[str, type[_EscrowInput]] = {
    cls.model_fields["action"].default: cls
    for cls in (
        EscrowOpen,
        EscrowAgree,
        EscrowFund,
        EscrowSatisfy,
        EscrowReject,
        EscrowRelease,
        EscrowApprove,
        EscrowRefund,
        EscrowCancel,
        EscrowDispute,
        EscrowDecide,
        EscrowSettle,
        EscrowChargeback,
        EscrowChargebackResolve,
    )
}
"""Action name → its input record (the edge validates a body with it)."""


def escrow_action(raw: dict[str, Any]) -> EscrowAction:
    """The validated record of an escrow action (pydantic ``ValidationError`` if it is none)."""
    model = ESCROW_ACTIONS.get(str(raw.get("action")))
    if model is None:
        raise ValueError(f"unknown escrow action {raw.get('action')!r}")
    return cast(EscrowAction, model.model_validate(raw))


# ---------------------------------------------------------------------- manual settlement (issue 17)
MANUAL_SETTLEMENT_KIND = "manual_settlement"


class ManualSettlement(_Event):
    """An operator's record that an L1 obligation (``flow_id``: a trade or payment routed to
    Layer-1, or an unwound batch's flow) was settled off-system, with the evidence: a reference
    (a wire or SWIFT reference, a ticket) and the SHA-256 of the evidence document. The engine
    posts the obligation's gross settlement and stops waiting for its base-layer transaction
    (docs/MANUAL_SETTLEMENT.md). ``settlement_id`` is the idempotency key."""

    type: Literal["manual_settlement"] = "manual_settlement"
    settlement_id: Id
    flow_id: Id
    operator: Id
    evidence_ref: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    evidence_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


# ---------------------------------------------------------------------- ledger adjustment (issue 13)
LEDGER_ADJUSTMENT_KIND = "ledger_adjustment"
ADJUSTMENT_MAX_LEGS = 64
"""The most legs one adjustment may carry (an adjustment corrects a break, it is not a batch)."""


class AdjustmentLeg(BaseModel):
    """One leg of an adjustment: a participant's available account (``participant``) or a house
    account (``house``: ``fees`` or ``external``) — exactly one of the two — in ``asset``, by a
    signed decimal ``amount`` (``-12.50`` debits, ``12.50`` credits) in the asset's scale."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    participant: Id | None = None
    house: Literal["fees", "external"] | None = None
    asset: Id
    amount: Annotated[str, StringConstraints(pattern=r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$", max_length=40)]

    @model_validator(mode="after")
    def _one_account(self) -> AdjustmentLeg:
        if (self.participant is None) == (self.house is None):
            raise ValueError("a leg names exactly one of participant or house")
        return self


class LedgerAdjustment(_Event):
    """An operator's adjusting journal entry (issue 13, docs/RECONCILIATION.md §8): balanced legs
    per asset, posted as one ledger entry of kind ``adjustment``, tied to the reconciliation case
    it resolves. ``adjustment_id`` is the idempotency key."""

    type: Literal["ledger_adjustment"] = "ledger_adjustment"
    adjustment_id: Id
    case_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    operator: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    legs: Annotated[tuple[AdjustmentLeg, ...], Field(min_length=2, max_length=ADJUSTMENT_MAX_LEGS)]


SmallEvent = (
    Payment | CollateralDeposit | CollateralWithdrawal | PriceMark | ClockTick | ChainEvents | ConfigChange
)

# ---------------------------------------------------------------------- log payloads
# A key rotation stays the JSON object it was logged as: the engine only sees time pass, and the
# auditor checks its fields one by one (it distrusts the shape of what it verifies).
KeyRotationPayload: TypeAlias = dict[str, Any]

EVENTS_KIND = "events"
"""A run of small inputs logged as one entry (one step): ``{"events": [{"type": kind, ...}]}``."""

EVENT_RUN_KINDS: frozenset[str] = frozenset(
    {"payment", "collateral_deposit", "collateral_withdrawal", "price_mark"}
)
"""The kinds a run may hold: each is applied alone by its own rule, at the run's time. A config
change, a tick, chain events and operator actions stay entries of their own."""

EVENT_RUN_MAX = 8_192
"""At most this many inputs in one run (a file's longer run is logged as several)."""


@dataclass(frozen=True)
class EventRun:
    """A file's run of small inputs applied in order in one step (``EVENTS_KIND``).

    Each member is applied exactly as it would be as an entry of its own at the same time: the
    same checks, ids, journal entries and rejects (per member, by its own id). What the run
    saves is the per-step work — one state root, one commit, one audit link — for what a
    funding file or a payments file brings in bulk."""

    items: tuple[tuple[str, LogPayload], ...]


LogPayload: TypeAlias = (
    pa.Table
    | Payment
    | CollateralDeposit
    | CollateralWithdrawal
    | PriceMark
    | ClockTick
    | ChainEvents
    | ConfigChange
    | EscrowAction
    | ManualSettlement
    | LedgerAdjustment
    | KeyRotationPayload
    | EventRun
)
"""What a log entry carries: a trade chunk (Arrow, ``TRADE_CHUNK_SCHEMA``), one small input, or
a run of small inputs (:class:`EventRun`)."""

_LOG_RECORDS: dict[str, type[_Event]] = {
    "payment": Payment,
    "collateral_deposit": CollateralDeposit,
    "collateral_withdrawal": CollateralWithdrawal,
    "price_mark": PriceMark,
    "tick": ClockTick,
    "chain": ChainEvents,
    "config_change": ConfigChange,
    MANUAL_SETTLEMENT_KIND: ManualSettlement,
}


def log_payload(kind: str, raw: Any) -> LogPayload:
    """The typed payload of a log entry of ``kind`` from its decoded JSON object (a trade chunk,
    a key rotation or an unknown kind is returned as it is).

    Not validated, on purpose: the log is the record of what was accepted (the edge validated it
    before it was logged), and a replay must apply every entry exactly as it was applied then.
    The log's bytes are always those of the JSON object, never re-encoded from the record.
    """
    if kind == ESCROW_KIND and isinstance(raw, dict):
        # Validated, unlike the flat records: model_construct would leave the nested terms a
        # dict. Validation is a pure function of the bytes, so a replay decides the same.
        return escrow_action(raw)
    if kind == EVENTS_KIND and isinstance(raw, dict) and isinstance(raw.get("events"), list):
        return EventRun(tuple(_run_member(item) for item in raw["events"]))
    if kind == LEDGER_ADJUSTMENT_KIND and isinstance(raw, dict):
        return LedgerAdjustment.model_validate(raw)  # nested legs: validated, as escrow above
    model = _LOG_RECORDS.get(kind)
    if model is None or not isinstance(raw, dict):
        result: LogPayload = raw
        return result
    # The table above maps each kind to a member of LogPayload.
    return cast(LogPayload, model.model_construct(**raw))


def _run_member(item: Any) -> tuple[str, LogPayload]:
    """One member of a logged :class:`EventRun`: its kind and typed record (a member of a kind
    a run may not hold comes back as the raw object; the engine refuses it as a corrupt log)."""
    if not isinstance(item, dict):
        return "", item
    fields = dict(item)
    kind = str(fields.pop("type", ""))
    model = _LOG_RECORDS.get(kind)
    if kind not in EVENT_RUN_KINDS or model is None:
        return kind, item
    return kind, cast(LogPayload, model.model_construct(**fields))


def event_run_payload(members: list[dict[str, Any]]) -> dict[str, Any]:
    """The logged JSON object of a run of small inputs (each ``{"type": kind, ...fields}``)."""
    return {"events": members}
