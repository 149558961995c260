"""Subjects and message formats on NATS JetStream (format version 1).

Subjects (one JetStream stream ``CLEARLANE`` holds the inputs, ``CLEARLANE_EVENTS`` the events):

=================================== =======================================================
``clearlane.trades.<pool>``         trades routed to a pool (``<pool>`` = a pool id or ``L1``)
``clearlane.input.<pool>``          small events (collateral, marks, payments) for the
                                    partition that owns ``<pool>``
``clearlane.events.<pool>.<type>``  lifecycle events published back by the workers, named
                                    in the one public vocabulary (node/events.py):
                                    ``batch.cleared``, ``batch.anchored``, ``batch.final``,
                                    ``batch.unwound``, ``batch.reorged``, ``batch.resubmitted``,
                                    ``trade.rejected``; ``serve --nats`` publishes the
                                    service's events on ``clearlane.events.<scope>.<type>``
                                    (scope ``escrow``, ``cases``, ``alerts`` or a pool:
                                    events_out.py)
``clearlane.escrow.actions``        escrow actions requested of ``serve --nats
                                    --nats-escrow-actions`` (core request/reply: escrow_in.py)
=================================== =======================================================

An input message is one of (header ``Clearlane-Format``):

- ``arrow`` — an Arrow IPC stream of trades in the input form of the canonical event model
  (``TradeExecuted``): ``trade_id, venue, symbol, buyer, seller`` (strings), ``quantity, price``
  (decimal strings), ``executed_at`` (integer ms since the epoch, or RFC 3339 text), optional
  ``exch_batch_id, lane_hint``. The bulk path: one message of up to a few ten thousand trades.
- ``jsonl`` — JSON lines exactly as in a ``.jsonl`` input file: trade objects and small events
  (``{"type": "collateral_deposit", ...}``), in order.

Every message is validated by the worker exactly like a file chunk (bad rows become rejects with
their stable code, row = line or row number inside the message, and change nothing). Publishers
set ``Nats-Msg-Id`` (JetStream drops a re-publish within the stream's duplicate window); the
worker's source ids (``nats:<stream>:<stream sequence>#<part>``) make a redelivered message a
no-op beyond that window, and trade ids make a re-published trade a no-op whatever its message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.errors import InputError
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.inputs import INPUT_TRADE_COLUMNS, INPUT_TRADE_OPTIONAL
from clearlane.node.intake.readers import IngestBatch, TradeChunk, jsonl_batches, valid_rows_of
from clearlane.node.intake.validate import TradeValidator

FORMAT_VERSION = 1
STREAM = "CLEARLANE"
EVENTS_STREAM = "CLEARLANE_EVENTS"
TRADES_PREFIX = "clearlane.trades"
INPUT_PREFIX = "clearlane.input"
EVENTS_PREFIX = "clearlane.events"
L1_TOKEN = "L1"
FORMAT_HEADER = "Clearlane-Format"
MSG_ID_HEADER = "Nats-Msg-Id"
ARROW = "arrow"
JSONL = "jsonl"
DUPLICATE_WINDOW_S = 120.0
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_IPC = pa.ipc.IpcWriteOptions(compression="lz4")
_TEXT = ("trade_id", "venue", "symbol", "buyer", "seller", "quantity", "price", "exch_batch_id", "lane_hint")


class BusError(InputError, ValueError, code="BUS_SETTING_INVALID"):
    """A bad subject token, partition or bus setting (raised before anything is sent)."""


def check_token(token: str, what: str = "pool") -> str:
    if not TOKEN_RE.match(token):
        raise BusError(f"{what} {token!r}: use letters, digits, '_' or '-' (1-64 characters)")
    return token


def trades_subject(pool: str) -> str:
    return f"{TRADES_PREFIX}.{check_token(pool)}"


def input_subject(pool: str) -> str:
    return f"{INPUT_PREFIX}.{check_token(pool)}"


def event_subject(pool: str, event_type: str) -> str:
    return f"{EVENTS_PREFIX}.{check_token(pool)}.{event_type}"


async def ensure_streams(js: Any) -> None:
    """Create the input and event streams if missing (idempotent; file storage, limits retention)."""
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    for name, subjects in (
        (STREAM, [f"{TRADES_PREFIX}.>", f"{INPUT_PREFIX}.>"]),
        (EVENTS_STREAM, [f"{EVENTS_PREFIX}.>"]),
    ):
        try:
            await js.stream_info(name)
            continue
        except NotFoundError:
            pass
        await js.add_stream(StreamConfig(name=name, subjects=subjects, duplicate_window=DUPLICATE_WINDOW_S))


# ---------------------------------------------------------------------- encoding
def _decimal_text(mantissa: np.ndarray[Any, Any], exp: np.ndarray[Any, Any]) -> pa.Array:
    """(mantissa, exponent) → the one strict decimal string of that pair ("1.50" for (150, 2))."""
    digits = pc.cast(pa.array(mantissa), pa.string())
    out = digits
    for e in np.unique(exp).tolist():
        if e <= 0:
            continue
        mask = pa.array(exp == e)
        padded = pc.utf8_lpad(digits, width=e + 1, padding="0")
        text = pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(padded, 0, -e), pc.utf8_slice_codeunits(padded, -e, 2**31 - 1), "."
        )
        out = pc.if_else(mask, text, out)
    return out


def input_form(chunk: pa.Table) -> pa.Table:
    """A canonical trade chunk (``TRADE_CHUNK_SCHEMA``) back in the input form a message carries."""

    def text(name: str) -> pa.Array:
        col = chunk.column(name).combine_chunks()
        return pc.cast(col, pa.string()) if pa.types.is_dictionary(col.type) else col

    return pa.table(
        {
            "trade_id": text("trade_id"),
            "venue": text("venue"),
            "symbol": text("symbol"),
            "buyer": text("buyer"),
            "seller": text("seller"),
            "quantity": _decimal_text(
                chunk.column("qty_mantissa").to_numpy(), chunk.column("qty_exp").to_numpy()
            ),
            "price": _decimal_text(
                chunk.column("price_mantissa").to_numpy(), chunk.column("price_exp").to_numpy()
            ),
            "executed_at": chunk.column("executed_at_ms").combine_chunks(),
            "exch_batch_id": text("exch_batch_id"),
            "lane_hint": text("lane_hint"),
        }
    )


def encode_arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


# ---------------------------------------------------------------------- decoding
def _message_reject(code: RejectCode, field: str, reason: str) -> IngestBatch:
    return IngestBatch(trades=None, rejects=[Reject(code, field, reason, row=None, input_id=None)])


def decode(
    data: bytes, fmt: str | None, validator: TradeValidator, *, chunk_rows: int = 1 << 20
) -> Iterator[IngestBatch]:
    """A message → validated batches in message order (rows counted from 1 inside the message).

    A message that cannot be read at all yields one batch holding a single reject (row None).
    """
    validator.new_input()  # each message is its own input for the executed_at span
    if fmt == JSONL:
        yield from jsonl_batches(data.splitlines(), validator, chunk_rows, None)
        return
    if fmt != ARROW:
        yield _message_reject(
            RejectCode.UNREADABLE_ROW, FORMAT_HEADER, f"message format {fmt!r} is not {ARROW!r} or {JSONL!r}"
        )
        return
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        yield _message_reject(RejectCode.UNREADABLE_ROW, "-", f"not an Arrow IPC stream: {exc}")
        return
    names = table.column_names
    missing = [c for c in INPUT_TRADE_COLUMNS if c not in names]
    if missing:
        yield _message_reject(RejectCode.MISSING_FIELD, missing[0], f"message has no column {missing[0]!r}")
        return
    columns: dict[str, pa.Array] = {}
    for name in INPUT_TRADE_COLUMNS + INPUT_TRADE_OPTIONAL:
        if name not in names:
            continue
        col = table.column(name).combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        if pa.types.is_large_string(col.type):
            col = pc.cast(col, pa.string())
        ok = (
            pa.types.is_string(col.type)
            or pa.types.is_null(col.type)
            or (name == "executed_at" and (pa.types.is_integer(col.type) or pa.types.is_timestamp(col.type)))
        )
        if not ok:
            yield _message_reject(
                RejectCode.UNREADABLE_ROW, name, f"column {name!r} has type {col.type}, expected text"
            )
            return
        if pa.types.is_null(col.type):
            col = pa.nulls(len(col), pa.string())
        columns[name] = col
    if not table.num_rows:
        return
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    valid, rejects = validator.validate(columns, rows)
    chunk = TradeChunk(
        table=valid, first_row=1, rows_read=table.num_rows, valid_rows=valid_rows_of(rows, rejects)
    )
    yield IngestBatch(trades=chunk, rejects=rejects)
