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
from typing import Annotated, Any, Literal, TypeAlias, cast

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
    # Logged by the runner when the base layer had not yet been handed every earlier step's
    # transactions (pipelined clearing): the last step whose transactions it had. Recovery feeds
    # the replayed chain exactly that far.
    submitted_through: int | None = None


class ConfigChange(_Event):
    """Reference-data change: ``{"participants": {id: {field: value}}, "assets": {...}}``."""

    type: Literal["config_change"] = "config_change"
    change_id: Id
    changes: dict[str, Any]


SmallEvent = (
    Payment | CollateralDeposit | CollateralWithdrawal | PriceMark | ClockTick | ChainEvents | ConfigChange
)

# ---------------------------------------------------------------------- log payloads
# A key rotation stays the JSON object it was logged as: the engine only sees time pass, and the
# auditor checks its fields one by one (it distrusts the shape of what it verifies).
KeyRotationPayload: TypeAlias = dict[str, Any]

LogPayload: TypeAlias = (
    pa.Table
    | Payment
    | CollateralDeposit
    | CollateralWithdrawal
    | PriceMark
    | ClockTick
    | ChainEvents
    | ConfigChange
    | KeyRotationPayload
)
"""What a log entry carries: a trade chunk (Arrow, ``TRADE_CHUNK_SCHEMA``) or one small input."""

_LOG_RECORDS: dict[str, type[_Event]] = {
    "payment": Payment,
    "collateral_deposit": CollateralDeposit,
    "collateral_withdrawal": CollateralWithdrawal,
    "price_mark": PriceMark,
    "tick": ClockTick,
    "chain": ChainEvents,
    "config_change": ConfigChange,
}


def log_payload(kind: str, raw: Any) -> LogPayload:
    """The typed payload of a log entry of ``kind`` from its decoded JSON object (a trade chunk,
    a key rotation or an unknown kind is returned as it is).

    Not validated, on purpose: the log is the record of what was accepted (the edge validated it
    before it was logged), and a replay must apply every entry exactly as it was applied then.
    The log's bytes are always those of the JSON object, never re-encoded from the record.
    """
    model = _LOG_RECORDS.get(kind)
    if model is None or not isinstance(raw, dict):
        result: LogPayload = raw
        return result
    # The table above maps each kind to a member of LogPayload.
    return cast(LogPayload, model.model_construct(**raw))
