"""Columnar validation of trade rows against the reference data.

Input is a set of Arrow columns named as in ``INPUT_TRADE_COLUMNS`` (+ the optional ones);
output is a table in exactly ``TRADE_CHUNK_SCHEMA`` holding the valid rows, and one
:class:`~clearlane.core.model.codes.Reject` per refused row.

Every check runs over whole columns. Columns with few distinct values (venue, symbol, buyer,
seller, lane_hint) are dictionary-encoded first, so regexes and reference-data lookups run
once per distinct value and reach the rows through the dictionary indices. Python code only
runs for rejected rows, to word their reasons.

Precedence (the first failure of a row wins): reject code first, in the numeric order of the
``1xx`` codes, then field order within a code —

1. MISSING_FIELD (null or empty) for trade_id, venue, symbol, buyer, seller, quantity, price,
   executed_at;
2. BAD_ID for trade_id, venue, buyer, seller, exch_batch_id (``ID_PATTERN``: the input id
   grammar of core/model/ids.py, so every id is one path segment of every route);
3. UNKNOWN_SYMBOL: not ``BASE/QUOTE`` of two different configured assets;
4. UNKNOWN_PARTICIPANT for buyer, then seller (the clearing house is not a trading participant);
5. SELF_TRADE: buyer == seller;
6. BAD_DECIMAL, 7. PRECISION_EXCEEDED, 8. NON_POSITIVE, 9. AMOUNT_OVERFLOW — each for quantity
   then price. Quantity may carry at most the base asset's scale in decimals and must fit
   int64 minor units; price at most 12 decimals and 18 digits. A negative number is refused
   as NON_POSITIVE rather than as bad syntax. Then AMOUNT_OVERFLOW once more for the ledger's
   per-trade limit (quantity + quote amount + undiscounted fees, docs/LIMITS.md), on quantity
   when the quantity alone exceeds it, else on price;
10. BAD_TIMESTAMP (see :mod:`clearlane.node.intake.timestamps`);
11. BAD_LANE_HINT: not ``L1``, ``L2`` or a configured pool id (empty means no hint).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine.limits import (
    FLOW_GROSS_MAX_MINOR,
    TRANSFER_MAX_MINOR,
    payment_over_limit,
    quote_amount,
    trade_over_limit,
)
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.ids import INPUT_ID_RULE
from clearlane.core.model.inputs import (
    ID_PATTERN,
    INPUT_TRADE_COLUMNS,
    SYMBOL_PATTERN,
    TRADE_CHUNK_SCHEMA,
)
from clearlane.core.money import (
    PARSE_OVERFLOW,
    PARSE_PRECISION,
    PARSE_SYNTAX,
    PARSE_ZERO,
    ParsedDecimals,
    parse_decimal_column,
)
from clearlane.core.textcols import arrow_strings, string_offsets
from clearlane.node.intake.timestamps import TS_NULL, TS_REASONS, ParsedTimes, to_epoch_ms

_T = TypeVar("_T", bound=np.generic)
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

PRICE_DECIMALS_MAX = 12
DEDUP_SAMPLE_ROWS = 4096
DEDUP_DISTINCT_MAX = 0.5
REASON_VALUE_CHARS = 40
_NEGATIVE_DECIMAL = r"^-(0|[1-9][0-9]*)(\.[0-9]+)?$"
_LANES = ("L1", "L2")
# Typed scalars: pyarrow infers the type of a bare Python scalar by trying optional imports
# (decimal, dateutil) on every call, which costs ~0.3 ms per kernel call.
_PLACEHOLDER_SYMBOL = pa.scalar("?/?", pa.string())
_NULL_TEXT = pa.scalar(None, pa.string())
_POINT = pa.scalar(".", pa.string())
_MINUS = pa.scalar("-", pa.string())
_EMPTY = pa.scalar("", pa.string())
_DIGITS_MAX = 18

_ID_FIELDS = ("trade_id", "venue", "buyer", "seller", "exch_batch_id")
_DICTIONARY_FIELDS = ("venue", "symbol", "buyer", "seller", "lane_hint")
_DECIMAL_FIELDS = ("quantity", "price")
_DECIMAL_CODES = {
    PARSE_SYNTAX: RejectCode.BAD_DECIMAL,
    PARSE_PRECISION: RejectCode.PRECISION_EXCEEDED,
    PARSE_ZERO: RejectCode.NON_POSITIVE,
    PARSE_OVERFLOW: RejectCode.AMOUNT_OVERFLOW,
}


def quote(value: object) -> str:
    """A bad value for a reason text, cut to 40 characters so a garbage field stays readable."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > REASON_VALUE_CHARS:
        return repr(text[:REASON_VALUE_CHARS]) + "…"
    return repr(text)


def filled(array: pa.Array | pa.ChunkedArray, fill: int | bool) -> npt.NDArray[np.generic]:
    """``pc.fill_null(array, fill)`` as a NumPy array, read from a boolean or integer array's
    own buffers (values, validity bitmap, offset). On the serve path a step validates a few
    hundred rows and calls this ~30 times: ``pc.fill_null`` cost ~20-25 µs a call there,
    mostly turning ``fill`` into an Arrow scalar, more than the rows (issue 18). Anything else
    (chunked arrays, other types) goes through ``pc.fill_null``; a property test holds the two
    equal, slices and nulls included."""
    if isinstance(array, pa.BooleanArray) and array.buffers()[1] is not None:
        n = len(array)
        if n == 0:
            return np.zeros(0, dtype=np.bool_)
        offset = array.offset
        values = _bits(array.buffers()[1], offset, n)
        if array.null_count:
            values = np.where(_bits(array.buffers()[0], offset, n), values, bool(fill))
        return values
    if isinstance(array, pa.Array) and pa.types.is_integer(array.type) and array.buffers()[1] is not None:
        dtype = np.dtype(array.type.to_pandas_dtype())
        if array.null_count == 0:
            return np.asarray(array.to_numpy(zero_copy_only=False), dtype=dtype)
        n, offset = len(array), array.offset
        raw = np.frombuffer(array.buffers()[1], dtype=dtype, count=offset + n)[offset:]
        return np.where(_bits(array.buffers()[0], offset, n), raw, np.asarray(fill, dtype=dtype))
    return np.asarray(pc.fill_null(array, fill).to_numpy(zero_copy_only=False))


def _bits(buffer: pa.Buffer, offset: int, n: int) -> Mask:
    """Bits ``offset .. offset + n`` of an Arrow bitmap (least significant bit first)."""
    unpacked = np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), count=offset + n, bitorder="little")
    return unpacked[offset:].astype(np.bool_)


def to_mask(array: pa.Array | pa.ChunkedArray, null: bool = False) -> Mask:
    return np.asarray(filled(array, null), dtype=np.bool_)


def _string_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A plain ``string`` array (dictionaries decoded, large_string narrowed, chunks joined)."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            column = column.chunk(0)
        elif pa.types.is_dictionary(column.type):
            column = pa.concat_arrays([chunk.cast(column.type.value_type) for chunk in column.chunks])
        else:
            column = column.combine_chunks()
    if not pa.types.is_string(column.type):
        column = column.cast(pa.string())
    return column


def _compact(values: pa.Array, codes: I64) -> tuple[pa.Array, I64]:
    """Drop dictionary values no row uses; ``len(values)`` stays the absent code."""
    size = len(values)
    used = np.zeros(size + 1, dtype=np.bool_)
    used[codes] = True
    keep = np.flatnonzero(used[:size])
    if len(keep) == size:
        return values, codes
    remap = np.full(size + 1, len(keep), dtype=np.int64)
    remap[keep] = np.arange(len(keep), dtype=np.int64)
    return values.take(pa.array(keep, type=pa.int64())), remap[codes]


@dataclass(frozen=True)
class Coded:
    """A string column as distinct ``values`` and per-row ``codes``; null rows get code
    ``len(values)`` so per-value lookup tables take one extra slot for "absent"."""

    values: pa.Array
    codes: I64

    @classmethod
    def encode(cls, column: pa.Array | pa.ChunkedArray) -> Coded:
        if isinstance(column, pa.ChunkedArray):
            if column.num_chunks == 1:
                column = column.chunk(0)
            elif pa.types.is_dictionary(column.type):
                # Parquet row groups carry separate dictionaries; re-encode across them.
                column = _string_array(column)
            else:
                column = column.combine_chunks()
        if pa.types.is_dictionary(column.type):
            values, indices = column.dictionary, column.indices
        else:
            encoded = pc.dictionary_encode(_string_array(column))
            values, indices = encoded.dictionary, encoded.indices
        if not pa.types.is_string(values.type):
            values = values.cast(pa.string())
        codes = np.asarray(filled(indices, len(values)), dtype=np.int64)
        if len(values) > len(codes):
            # A Parquet dictionary may span the whole file: keep only the values this chunk
            # uses, so per-value checks never cost more than the chunk itself.
            values, codes = _compact(values, codes)
        return cls(values=values, codes=codes)

    def per_row(self, per_value: npt.NDArray[_T], absent: object) -> npt.NDArray[_T]:
        table: npt.NDArray[_T] = np.append(per_value, np.asarray([absent], dtype=per_value.dtype))
        return table[self.codes]

    def decode(self) -> pa.Array:
        """Back to one string per row (null where absent)."""
        with_absent = pa.concat_arrays([self.values, pa.nulls(1, type=pa.string())])
        return with_absent.take(pa.array(self.codes, type=pa.int64()))

    def value(self, row: int) -> str | None:
        code = int(self.codes[row])
        return None if code >= len(self.values) else self.values[code].as_py()

    def dictionary(self, rows: I64 | None, absent: Mask | None = None) -> pa.DictionaryArray:
        """The selected rows as a dictionary array whose dictionary holds only values in use
        (a Parquet row-group dictionary or rejected rows may leave unused entries)."""
        codes = self.codes if rows is None else self.codes[rows]
        null_mask = codes == len(self.values)
        if absent is not None:
            null_mask |= absent if rows is None else absent[rows]
        values, indices = _compact(self.values, codes)
        index_array = pa.array(
            np.where(null_mask, 0, indices).astype(np.int32),
            type=pa.int32(),
            mask=null_mask if null_mask.any() else None,
        )
        return pa.DictionaryArray.from_arrays(index_array, values)


# ID_PATTERN as the kernels below evaluate it; if the grammar (core/model/ids.py) ever changes,
# the regex is used instead (see valid_ids).
_ID_PATTERN_FAST = r"^[A-Za-z0-9._~!$&'()*+,;=:@-]{1,64}$"
_ID_CHARS_MAX = 64
# Every byte outside the grammar (control bytes, space " # % / < > ? [ \ ] ^ ` { | }, DEL and
# every byte of a non-ASCII character): one lookup per byte of the Arrow string buffer.
_NOT_ID_BYTE = np.ones(256, dtype=np.bool_)
_NOT_ID_BYTE[
    [ord(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~!$&'()*+,;=:@-"]
] = False
# Distinct symbols checked with Python's compiled ``re`` up to this many values (a dictionary's
# few symbols); more (a file of unique garbage) go through one Arrow regex pass.
_SYMBOLS_BY_RE_MAX = 4096
_SYMBOL_MEMO_MAX = 4096  # distinct symbols a validator remembers its judgement of (valid or not)
_SYMBOL_RE = re.compile(SYMBOL_PATTERN)


def valid_ids(column: pa.Array) -> Mask:
    """Rows matching ``ID_PATTERN`` (null → False).

    1 to 64 bytes, every byte one of the id characters: a 256-entry byte-class lookup over the
    Arrow string buffer and a per-row count of bad bytes (a cumulative sum read at the offsets).
    The same decisions as the RE2 pattern (ASCII only: a multi-byte character fails on its
    first byte, and RE2's ``$`` is the end of the text, so a trailing newline fails too; a
    property test compares them) without its cost: Arrow compiled the pattern again on every
    call, ~190 µs, four calls a serve step (issue 18, serve7)."""
    if ID_PATTERN != _ID_PATTERN_FAST:
        return to_mask(pc.match_substring_regex(column, ID_PATTERN))
    # A null reads as empty (arrow_strings), which the length check refuses.
    data, offsets = arrow_strings(_string_array(column))
    lengths = np.diff(offsets)
    ok: Mask = (lengths >= 1) & (lengths <= _ID_CHARS_MAX)
    if len(lengths) and offsets[-1] > offsets[0]:
        bad = _NOT_ID_BYTE[data[offsets[0] : offsets[-1]]]
        if bad.any():
            seen = np.zeros(len(bad) + 1, dtype=np.int64)
            np.cumsum(bad, out=seen[1:])
            at = offsets - offsets[0]
            ok &= seen[at[1:]] == seen[at[:-1]]
    return ok


def valid_symbols(values: pa.Array) -> Mask:
    """Rows matching ``SYMBOL_PATTERN`` (null → False): the few distinct symbols of a chunk by
    Python's compiled ``re`` (``fullmatch``: no match before a trailing newline, as RE2's
    ``$``), many by one Arrow pass (which compiles the pattern per call)."""
    if len(values) > _SYMBOLS_BY_RE_MAX:
        return to_mask(pc.match_substring_regex(values, SYMBOL_PATTERN))
    match = _SYMBOL_RE.fullmatch
    return np.array([v is not None and match(v) is not None for v in values.to_pylist()], dtype=np.bool_)


def _iso_ms(ms: int) -> str:
    """An epoch-ms instant as RFC 3339 UTC (for reasons)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class _DecimalResult:
    parsed: ParsedDecimals
    code: npt.NDArray[np.int16]  # RejectCode value per row, 0 = ok
    text: Callable[[int], str | None]


def text_lengths(column: pa.Array | pa.ChunkedArray) -> I64:
    """Byte length per row, 0 for null."""
    if (
        isinstance(column, pa.Array)
        and (pa.types.is_string(column.type) or pa.types.is_binary(column.type))
        and column.buffers()[1] is not None
    ):
        # From the offsets: one subtraction, where binary_length + fill_null cost ~30 µs a
        # call on a few hundred rows (issue 18; the property test compares them).
        lengths: I64 = np.diff(string_offsets(column))
        if column.null_count:
            lengths[~_bits(column.buffers()[0], column.offset, len(column))] = 0
        return lengths
    return np.asarray(filled(pc.binary_length(column), 0), dtype=np.int64)


def _present(column: pa.Array) -> Mask:
    present: Mask = text_lengths(column) > 0
    return present


def _fraction_len(column: pa.Array) -> I64:
    """Characters after the first ``.`` (0 without one)."""
    dot = np.asarray(filled(pc.find_substring(column, "."), -1), dtype=np.int64)
    return np.where(dot < 0, 0, text_lengths(column) - dot - 1)


def _decimal_codes(parsed: ParsedDecimals, texts: pa.Array, scale: I64) -> npt.NDArray[np.int16]:
    """Map parse errors to reject codes, refining two cases on the failing rows only.

    ``parse_decimal_column`` reports too many digits (overflow) before too many decimals, but
    PRECISION_EXCEEDED (107) outranks AMOUNT_OVERFLOW (109); and ``-5`` is a syntax error
    there but NON_POSITIVE is the more useful answer here.
    """
    error = parsed.error
    code = np.zeros(len(error), dtype=np.int16)
    for parse_error, reject in _DECIMAL_CODES.items():
        code[error == parse_error] = int(reject)
    # File input allows at most 18 significant digits (money.py itself accepts all of int64).
    code[(error == 0) & (parsed.mantissa >= 10**18)] = int(RejectCode.AMOUNT_OVERFLOW)
    overflow = np.flatnonzero(error == PARSE_OVERFLOW)
    if overflow.size:
        picked = texts.take(pa.array(overflow, type=pa.int64()))
        too_precise = _fraction_len(picked) > scale[overflow]
        code[overflow[too_precise]] = int(RejectCode.PRECISION_EXCEEDED)
    syntax = np.flatnonzero(error == PARSE_SYNTAX)
    if syntax.size:
        picked = texts.take(pa.array(syntax, type=pa.int64()))
        negative = to_mask(pc.match_substring_regex(picked, _NEGATIVE_DECIMAL))
        code[syntax[negative]] = int(RejectCode.NON_POSITIVE)
    return code


def _parse_decimals(
    source: Coded | pa.Array, scale_of: Callable[[pa.Array], I64] | None, row_scale: I64 | None
) -> _DecimalResult:
    """Parse a decimal column with ``parse_decimal_column``.

    ``row_scale`` gives the scale per row, or ``scale_of`` derives it from each text. A
    dictionary column (Parquet) is parsed once per distinct (value, scale) pair: real tapes
    repeat prices and lot sizes, and the grammar regex is the costliest step of ingest.
    """
    if not isinstance(source, Coded):
        scale = row_scale if row_scale is not None else _require(scale_of)(source)
        parsed = parse_decimal_column(source, scale)
        code = _decimal_codes(parsed, source, scale)
        return _DecimalResult(parsed=parsed, code=code, text=lambda row: source[row].as_py())
    size = len(source.values)
    if row_scale is None:
        row_scale = source.per_row(_require(scale_of)(source.values), 0).astype(np.int64)
    distinct_scales, scale_slot = np.unique(row_scale, return_inverse=True)
    width = max(len(distinct_scales), 1)
    keys = source.codes * width + scale_slot.reshape(-1).astype(np.int64)
    used = np.zeros((size + 1) * width, dtype=np.bool_)
    used[keys] = True
    unique_keys = np.flatnonzero(used)
    position = np.zeros(len(used), dtype=np.int64)
    position[unique_keys] = np.arange(len(unique_keys), dtype=np.int64)
    row_position = position[keys]
    unique_scale = distinct_scales[unique_keys % width].astype(np.int64)
    with_absent = pa.concat_arrays([source.values, pa.nulls(1, type=pa.string())])
    texts = with_absent.take(pa.array(unique_keys // width, type=pa.int64()))
    unique = parse_decimal_column(texts, unique_scale)
    unique_code = _decimal_codes(unique, texts, unique_scale)
    parsed = ParsedDecimals(
        mantissa=unique.mantissa[row_position],
        fraction_digits=unique.fraction_digits[row_position],
        minor=unique.minor[row_position],
        error=unique.error[row_position],
    )
    return _DecimalResult(parsed=parsed, code=unique_code[row_position], text=source.value)


def _require(scale_of: Callable[[pa.Array], I64] | None) -> Callable[[pa.Array], I64]:
    if scale_of is None:
        raise ValueError("either a per-row scale or a scale function is required")
    return scale_of


def _decimal_source(column: pa.Array | pa.ChunkedArray) -> Coded | pa.Array:
    """Decimal text, as distinct values + codes when the source is already a dictionary.

    Decimal128 and integer columns become their exact text (``Decimal128(18,8)`` 23 →
    ``23.00000000``); floats never get here (the readers refuse them).
    """
    if pa.types.is_decimal(column.type):
        column = decimal_text(column)
    elif pa.types.is_integer(column.type):
        column = column.cast(pa.string())
    return text_source(column)


def decimal_text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Decimal128/256 values as plain text with exactly the column's scale.

    Arrow's own cast to string switches to exponent form for small values (``1E-8``), which
    the strict grammar would refuse; here ``Decimal128(18,8)`` 23 → ``23.00000000`` and
    1e-8 → ``0.00000001``. Values whose unscaled integer fits int64 (always, for precision
    <= 18) are formatted with Arrow kernels; wider ones — which have too many digits to be
    accepted anyway — in Python.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    fits = pa.types.is_decimal128(kind) and 0 <= kind.scale <= _DIGITS_MAX
    if fits and len(column):
        words = np.frombuffer(column.buffers()[1], dtype=np.int64)[
            2 * column.offset : 2 * (column.offset + len(column))
        ]
        low, high = words[0::2], words[1::2]
        present = to_mask(column.is_valid())
        unscaled = np.where(present, low, 0)
        # Two's complement over 128 bits: the value fits int64 iff the high word is the sign
        # extension of the low one (and it is not INT64_MIN, whose magnitude does not fit).
        fits = bool(np.all(((high == (low >> 63)) & (low != np.iinfo(np.int64).min)) | ~present))
    if not fits:
        return pa.array(
            [None if value is None else format(value, "f") for value in column.to_pylist()], type=pa.string()
        )
    scale = 10**kind.scale
    magnitude = np.abs(unscaled)
    whole = pc.cast(pa.array(magnitude // scale), pa.string())
    if kind.scale:
        # scale + remainder has exactly scale+1 digits: dropping the leading 1 zero-pads it.
        fraction = pc.utf8_slice_codeunits(pc.cast(pa.array(magnitude % scale + scale), pa.string()), 1)
        whole = pc.binary_join_element_wise(whole, fraction, _POINT)
    text = pc.if_else(pa.array(unscaled < 0), pc.binary_join_element_wise(_MINUS, whole, _EMPTY), whole)
    return pc.if_else(column.is_valid(), text, _NULL_TEXT)


def text_source(column: pa.Array | pa.ChunkedArray) -> Coded | pa.Array:
    """A text column as :class:`Coded` when it already is a dictionary or repeats a lot
    (see :func:`maybe_coded`), else as a plain string array."""
    if pa.types.is_dictionary(column.type):
        return Coded.encode(column)
    return maybe_coded(_string_array(column))


def maybe_coded(column: pa.Array) -> Coded | pa.Array:
    """Dictionary-encode a text column when a sample of it repeats a lot.

    Encoding costs a hash pass; it pays off when the expensive per-value work (regex parsing)
    then runs on far fewer values. Real tapes repeat prices, lot sizes and batch ids; a column
    of mostly distinct values is left alone.
    """
    if len(column) < 2 * DEDUP_SAMPLE_ROWS:
        return column
    distinct = pc.count_distinct(column.slice(0, DEDUP_SAMPLE_ROWS), mode="all").as_py()
    if distinct > DEDUP_SAMPLE_ROWS * DEDUP_DISTINCT_MAX:
        return column
    return Coded.encode(column)


def _price_scale(texts: pa.Array) -> I64:
    # Parse each price at its own decimals (capped at 12): prices have no minor unit, and a
    # fixed scale of 12 would refuse prices above ~9.2 million as int64 overflow.
    return np.minimum(_fraction_len(texts), PRICE_DECIMALS_MAX)


@dataclass
class _Check:
    code: RejectCode
    field: str
    mask: Mask
    reason: Callable[[int], str]


@dataclass
class _Chunk:
    """One chunk's columns as the checks read them (dictionary-coded where values repeat)."""

    columns: Mapping[str, pa.Array | pa.ChunkedArray]
    type_errors: Mapping[str, Mask]
    trade_id: pa.Array
    coded: dict[str, Coded]
    quantity: Coded | pa.Array
    price: Coded | pa.Array
    times: ParsedTimes
    exch_batch_id: pa.Array
    batch_present: Mask
    batch_ok: Mask
    id_ok: dict[str, Mask]

    @classmethod
    def of(
        cls, columns: Mapping[str, pa.Array | pa.ChunkedArray], type_errors: Mapping[str, Mask], n: int
    ) -> _Chunk:

        def column(name: str) -> pa.Array | pa.ChunkedArray:
            # Optional columns a file does not have are all-absent.
            return columns[name] if name in columns else pa.nulls(n, type=pa.string())

        trade_id = _string_array(column("trade_id"))
        # Exchange batch ids repeat (one per venue batch): check each distinct id once.
        batch_source = text_source(column("exch_batch_id"))
        if isinstance(batch_source, Coded):
            batch_present = batch_source.per_row(_present(batch_source.values), False)
            batch_ok = batch_source.per_row(valid_ids(batch_source.values), False)
            exch_batch_id = batch_source.decode()
        else:
            exch_batch_id = batch_source
            batch_present = _present(exch_batch_id)
            batch_ok = valid_ids(exch_batch_id)
        return cls(
            columns=columns,
            type_errors=type_errors,
            trade_id=trade_id,
            coded={name: Coded.encode(column(name)) for name in _DICTIONARY_FIELDS},
            quantity=_decimal_source(columns["quantity"]),
            price=_decimal_source(columns["price"]),
            times=to_epoch_ms(columns["executed_at"]),
            exch_batch_id=exch_batch_id,
            batch_present=batch_present,
            batch_ok=batch_ok,
            id_ok={"trade_id": valid_ids(trade_id)},
        )

    def wrong_type(self, name: str) -> Mask:
        mask = self.type_errors.get(name)
        return mask if mask is not None else np.zeros(len(self.trade_id), dtype=np.bool_)


def _first_failures(chunk: _Chunk, checks: list[_Check], rows: I64) -> tuple[I64 | None, list[Reject]]:
    """Each bad row's first failing check as a reject; the rows to keep (None: all)."""
    n = len(chunk.trade_id)
    failed = np.full(n, -1, dtype=np.int16)
    for k, check in enumerate(checks):
        failed[(failed < 0) & check.mask] = k
    bad_rows = np.flatnonzero(failed >= 0)
    id_usable = chunk.id_ok["trade_id"] & ~chunk.wrong_type("trade_id")
    rejects = []
    for row in bad_rows.tolist():
        check = checks[int(failed[row])]
        rejects.append(
            Reject(
                code=check.code,
                field=check.field,
                reason=check.reason(row),
                row=int(rows[row]),
                input_id=chunk.trade_id[row].as_py() if id_usable[row] else None,
            )
        )
    return (np.flatnonzero(failed < 0) if bad_rows.size else None), rejects


class TradeValidator:
    """Validates trade columns against one configuration (lookups are built once)."""

    def __init__(self, config: ClearingConfig, *, file_span: bool = True) -> None:
        """``file_span``: hold each input (file, bus message) to ``executed_at_file_span_ms``
        around its first in-range trade; the service (``Intake``) bounds times by the engine
        clock instead."""
        self.config = config
        self._span_ms = config.intake.executed_at_file_span_ms if file_span else None
        self._anchor_ms: int | None = None
        self._asset_codes = pa.array([a.code for a in config.assets], type=pa.string())
        self._asset_scales = config.asset_scales()
        self._participants = pa.array([p.id for p in config.participants], type=pa.string())
        self._lane_hints = pa.array(list(_LANES) + [p.id for p in config.pools], type=pa.string())
        self._house = config.house
        self._fee_cbps = config.fee_cbps()
        self._symbol_memo: dict[str | None, tuple[bool, int, int]] = {}

    # -- per-value lookups (run on dictionaries, not rows) ---------------------------------
    def _symbol_lookup(self, values: pa.Array) -> tuple[Mask, I64]:
        """Per distinct symbol: is it BASE/QUOTE of two different configured assets, and the
        base asset's scale (0 where invalid)."""
        ok, base_scale, _ = self._symbol_scales(values)
        return ok, base_scale

    def _symbol_scales(self, values: pa.Array) -> tuple[Mask, I64, I64]:
        """Per distinct symbol: valid, and the base and quote assets' scales (0 where invalid),
        as :meth:`judge_symbols` judges them. A symbol's judgement is remembered (up to
        ``_SYMBOL_MEMO_MAX`` symbols, valid or not): a service validates a few trades a step,
        always among the same symbols, and judging them took ~0.3 ms of Arrow calls a step,
        twice (issue 18). Many distinct values at once are judged in bulk, not remembered."""
        if len(values) > _SYMBOLS_BY_RE_MAX:
            return self.judge_symbols(values)
        keys = values.to_pylist()
        memo = self._symbol_memo
        judged: dict[str | None, tuple[bool, int, int]] = {}
        missing = [k for k in dict.fromkeys(keys) if k not in memo]
        if missing:
            ok, base, quote = self.judge_symbols(pa.array(missing, type=pa.string()))
            judged = dict(
                zip(missing, zip(ok.tolist(), base.tolist(), quote.tolist(), strict=True), strict=True)
            )
            if len(memo) + len(judged) <= _SYMBOL_MEMO_MAX:
                memo.update(judged)
        rows = [memo.get(k) or judged[k] for k in keys]  # a judgement is a non-empty tuple
        n = len(rows)
        return (
            np.fromiter((r[0] for r in rows), dtype=np.bool_, count=n),
            np.fromiter((r[1] for r in rows), dtype=np.int64, count=n),
            np.fromiter((r[2] for r in rows), dtype=np.int64, count=n),
        )

    def judge_symbols(self, values: pa.Array) -> tuple[Mask, I64, I64]:
        """Per value: is it BASE/QUOTE of two different configured assets (``SYMBOL_PATTERN``
        first), and the base and quote assets' scales (0 where invalid)."""
        shaped = valid_symbols(values)
        parts = pc.split_pattern(pc.if_else(pa.array(shaped), values, _PLACEHOLDER_SYMBOL), "/")
        base, quote_ = (
            np.asarray(
                filled(
                    pc.index_in(
                        pc.list_element(parts, pa.scalar(k, pa.int32())), value_set=self._asset_codes
                    ),
                    -1,
                ),
                dtype=np.int64,
            )
            for k in (0, 1)
        )
        ok = shaped & (base >= 0) & (quote_ >= 0) & (base != quote_)
        scales = self._asset_scales
        base_scale = np.where(ok, scales[np.maximum(base, 0)], 0).astype(np.int64)
        quote_scale = np.where(ok, scales[np.maximum(quote_, 0)], 0).astype(np.int64)
        return ok, base_scale, quote_scale

    def _symbol_reason(self, text: str | None) -> str:
        codes = {a.code for a in self.config.assets}
        base, _, quote_ = (text or "").partition("/")
        if text is None or not re.fullmatch(SYMBOL_PATTERN, text):
            why = "is not BASE/QUOTE of configured asset codes"
        elif base not in codes:
            why = f"has unknown base asset {base!r}"
        elif quote_ not in codes:
            why = f"has unknown quote asset {quote_!r}"
        else:
            why = "has the same base and quote asset"
        return f"symbol {quote(text)} {why}"

    # -- the whole chunk ---------------------------------------------------------------------
    def validate(
        self,
        columns: Mapping[str, pa.Array | pa.ChunkedArray],
        rows: I64,
        *,
        received_at_ms: int | None = None,
        type_errors: Mapping[str, Mask] | None = None,
    ) -> tuple[pa.Table, list[Reject]]:
        """Validate one chunk; ``rows`` holds each row's input row number (for rejects).

        ``type_errors`` marks values that had the wrong type in the source (a JSON number
        where a string is required); their text is shown in the reason, but they fail the
        field's own check whatever the text says: ids BAD_ID, symbol UNKNOWN_SYMBOL,
        quantity/price BAD_DECIMAL, executed_at BAD_TIMESTAMP, lane_hint BAD_LANE_HINT.

        Checks run in reject-code precedence order; a row's first failing check is its reject.
        """
        chunk = _Chunk.of(columns, type_errors or {}, len(rows))
        checks = self._missing_checks(chunk)
        checks += self._id_checks(chunk)
        base_scale = self._symbol_check(chunk, checks)
        checks += self._party_checks(chunk)
        decimals = {
            "quantity": _parse_decimals(chunk.quantity, None, base_scale),
            "price": _parse_decimals(chunk.price, _price_scale, None),
        }
        checks += self._decimal_checks(chunk, decimals, base_scale)
        checks += self._limit_checks(chunk, decimals, base_scale)
        checks.append(self._time_check(chunk))
        checks.append(self._time_bounds(chunk))
        lane_absent, lane_check = self._lane_check(chunk)
        checks.append(lane_check)
        keep, rejects = _first_failures(chunk, checks, rows)
        table = self._build(chunk, lane_absent, decimals, received_at_ms, keep)
        return table, rejects

    # -- the checks, in reject-code precedence order -----------------------------------------
    @staticmethod
    def _missing_checks(chunk: _Chunk) -> list[_Check]:
        """1. MISSING_FIELD: a required field absent, null or empty."""
        present: dict[str, Mask] = {"trade_id": _present(chunk.trade_id)}
        for name in ("venue", "symbol", "buyer", "seller"):
            c = chunk.coded[name]
            present[name] = c.per_row(_present(c.values), False)
        for name, source in (("quantity", chunk.quantity), ("price", chunk.price)):
            if isinstance(source, Coded):
                present[name] = source.per_row(_present(source.values), False)
            else:
                present[name] = _present(source)
        present["executed_at"] = chunk.times.error != TS_NULL
        for name, mask in chunk.type_errors.items():
            if name in present:
                present[name] = present[name] | mask

        def missing_reason(name: str) -> Callable[[int], str]:
            return lambda _row: f"required field {name!r} is missing or empty"

        return [
            _Check(RejectCode.MISSING_FIELD, name, ~present[name], missing_reason(name))
            for name in INPUT_TRADE_COLUMNS
        ]

    @staticmethod
    def _id_checks(chunk: _Chunk) -> list[_Check]:
        """2. BAD_ID: ids outside the id grammar (the exchange batch id only when present)."""
        id_ok = chunk.id_ok
        for name in ("venue", "buyer", "seller"):
            c = chunk.coded[name]
            id_ok[name] = c.per_row(valid_ids(c.values), False)
        id_ok["exch_batch_id"] = chunk.batch_ok | ~chunk.batch_present

        def id_reason(name: str) -> Callable[[int], str]:
            text: Callable[[int], str | None] = (
                chunk.coded[name].value
                if name in chunk.coded
                else _text_getter(chunk.trade_id if name == "trade_id" else chunk.exch_batch_id)
            )
            return lambda row: f"{name} {quote(text(row))} is not {INPUT_ID_RULE}"

        return [
            _Check(RejectCode.BAD_ID, name, ~id_ok[name] | chunk.wrong_type(name), id_reason(name))
            for name in _ID_FIELDS
        ]

    def _symbol_check(self, chunk: _Chunk, checks: list[_Check]) -> I64:
        """3. UNKNOWN_SYMBOL (appended to ``checks``); returns each row's base-asset scale."""
        symbol = chunk.coded["symbol"]
        symbol_ok, symbol_scale = self._symbol_lookup(symbol.values)
        row_symbol_ok = symbol.per_row(symbol_ok, False) & ~chunk.wrong_type("symbol")
        checks.append(
            _Check(
                RejectCode.UNKNOWN_SYMBOL,
                "symbol",
                ~row_symbol_ok,
                lambda row: self._symbol_reason(symbol.value(row)),
            )
        )
        return symbol.per_row(symbol_scale, 0).astype(np.int64)

    def _party_checks(self, chunk: _Chunk) -> list[_Check]:
        """4. UNKNOWN_PARTICIPANT per side, 5. SELF_TRADE."""
        coded = chunk.coded
        party_index: dict[str, I64] = {}
        checks = []
        for name in ("buyer", "seller"):
            c = coded[name]
            per_value = np.asarray(
                filled(pc.index_in(c.values, value_set=self._participants), -1),
                dtype=np.int64,
            )
            party_index[name] = c.per_row(per_value, -1).astype(np.int64)

            def party_reason(row: int, name: str = name) -> str:
                text = coded[name].value(row)
                if text == self._house:
                    return f"{name} {quote(text)} is the clearing house, not a trading participant"
                return f"{name} {quote(text)} is not a configured participant"

            checks.append(_Check(RejectCode.UNKNOWN_PARTICIPANT, name, party_index[name] < 0, party_reason))
        self_trade = (party_index["buyer"] == party_index["seller"]) & (party_index["buyer"] >= 0)
        checks.append(
            _Check(
                RejectCode.SELF_TRADE,
                "seller",
                self_trade,
                lambda row: f"buyer and seller are both {quote(coded['buyer'].value(row))}",
            )
        )
        return checks

    def _decimal_checks(
        self, chunk: _Chunk, decimals: dict[str, _DecimalResult], base_scale: I64
    ) -> list[_Check]:
        """6.-9. BAD_DECIMAL, PRECISION_EXCEEDED, NON_POSITIVE, AMOUNT_OVERFLOW (code-major)."""
        checks = []
        for code in (
            RejectCode.BAD_DECIMAL,
            RejectCode.PRECISION_EXCEEDED,
            RejectCode.NON_POSITIVE,
            RejectCode.AMOUNT_OVERFLOW,
        ):
            for name in _DECIMAL_FIELDS:
                result = decimals[name]
                mask = result.code == int(code)
                wrong_type = chunk.type_errors.get(name)
                if wrong_type is not None:
                    mask = (mask | wrong_type) if code is RejectCode.BAD_DECIMAL else (mask & ~wrong_type)
                reason = self._decimal_reason(
                    code, name, result, base_scale, chunk.coded["symbol"], wrong_type
                )
                checks.append(_Check(code, name, mask, reason))
        return checks

    def _limit_checks(
        self, chunk: _Chunk, decimals: dict[str, _DecimalResult], base_scale: I64
    ) -> list[_Check]:
        """9. AMOUNT_OVERFLOW, after the parse checks: the trade's own settlement must fit one
        ledger entry — quantity + quote amount (rounded half to even, as the engine books it) +
        both sides' undiscounted fees at most ``FLOW_GROSS_MAX_MINOR`` (docs/LIMITS.md). The
        engine checks the same rule with the same functions (:mod:`clearlane.core.engine.limits`).
        On ``quantity`` when the quantity alone is too big, else on ``price``."""
        qty_result, price_result = decimals["quantity"], decimals["price"]
        parsed_ok = (qty_result.code == 0) & (price_result.code == 0)
        symbol = chunk.coded["symbol"]
        _, quote_scale_of = self._quote_lookup(symbol.values)
        quote_scale = symbol.per_row(quote_scale_of, 0).astype(np.int64)
        qty = np.where(parsed_ok, qty_result.parsed.minor, 0)
        price = np.where(parsed_ok, price_result.parsed.mantissa, 0)
        price_exp = price_result.parsed.fraction_digits.astype(np.int64)
        quote_minor, too_big = quote_amount(qty, price, quote_scale - base_scale - price_exp)
        cbps = {name: self._fee_rates(chunk.coded[name]) for name in ("buyer", "seller")}
        over = trade_over_limit(qty, quote_minor, cbps["buyer"], cbps["seller"]) | too_big
        over &= parsed_ok
        qty_alone = qty > FLOW_GROSS_MAX_MINOR

        def reason(row: int) -> str:
            if qty_alone[row]:
                what = f"quantity {quote(qty_result.text(row))}"
            else:
                what = f"quantity x price ({quote(qty_result.text(row))} x {quote(price_result.text(row))})"
            return (
                f"{what} with fees exceeds the ledger's per-trade limit of "
                f"{FLOW_GROSS_MAX_MINOR} minor units (docs/LIMITS.md)"
            )

        return [
            _Check(RejectCode.AMOUNT_OVERFLOW, "quantity", over & qty_alone, reason),
            _Check(RejectCode.AMOUNT_OVERFLOW, "price", over & ~qty_alone, reason),
        ]

    def _quote_lookup(self, values: pa.Array) -> tuple[Mask, I64]:
        """Per distinct symbol: is it valid, and the quote asset's scale (0 where invalid)."""
        ok, _, quote_scale = self._symbol_scales(values)
        return ok, quote_scale

    def _fee_rates(self, coded: Coded) -> I64:
        """Each row's participant's undiscounted fee rate (hundredths of a bp; 0 if unknown)."""
        index = np.asarray(
            filled(pc.index_in(coded.values, value_set=self._participants), -1),
            dtype=np.int64,
        )
        rates = np.where(index >= 0, self._fee_cbps[np.maximum(index, 0)], 0).astype(np.int64)
        return coded.per_row(rates, 0).astype(np.int64)

    @staticmethod
    def _time_check(chunk: _Chunk) -> _Check:
        """10. BAD_TIMESTAMP: not RFC 3339 / epoch milliseconds, or of the wrong JSON type."""
        text = _text_getter(chunk.columns["executed_at"])
        times = chunk.times
        time_type = chunk.wrong_type("executed_at")

        def time_reason(row: int) -> str:
            if time_type[row]:
                return (
                    f"executed_at {quote(text(row))} must be an RFC 3339 string or integer epoch milliseconds"
                )
            return f"executed_at {quote(text(row))} {TS_REASONS[int(times.error[row])]}"

        return _Check(RejectCode.BAD_TIMESTAMP, "executed_at", (times.error != 0) | time_type, time_reason)

    def new_input(self) -> None:
        """The rows that follow are a new input: its first in-range trade anchors the span."""
        self._anchor_ms = None

    def _time_bounds(self, chunk: _Chunk) -> _Check:
        """10. BAD_TIMESTAMP, continued: a time outside ``[intake] executed_at_min`` ..
        ``executed_at_max`` (epoch 0, year 9999), or — files and bus messages — farther than
        ``executed_at_file_span_ms`` from the input's first in-range trade (a stray time in a
        recorded day would move the engine clock; a historical day is still accepted whole)."""
        limits = self.config.intake
        ms, parsed = chunk.times.ms, chunk.times.error == 0
        outside = parsed & ((ms < limits.executed_at_min_ms) | (ms >= limits.executed_at_max_ms))
        far = np.zeros(len(ms), dtype=np.bool_)
        span = self._span_ms
        if span is not None:
            inside = np.flatnonzero(parsed & ~outside)
            if self._anchor_ms is None and len(inside):
                self._anchor_ms = int(ms[inside[0]])
            if self._anchor_ms is not None:
                far = parsed & ~outside & (np.abs(ms - self._anchor_ms) > span)
        text = _text_getter(chunk.columns["executed_at"])
        anchor = self._anchor_ms

        def bounds_reason(row: int) -> str:
            if outside[row]:
                lo, hi = _iso_ms(limits.executed_at_min_ms), _iso_ms(limits.executed_at_max_ms)
                return f"executed_at {quote(text(row))} is outside the accepted range {lo} .. {hi}"
            return (
                f"executed_at {quote(text(row))} is more than {span} ms from this input's first trade "
                f"({_iso_ms(anchor or 0)})"
            )

        return _Check(RejectCode.BAD_TIMESTAMP, "executed_at", outside | far, bounds_reason)

    def _lane_check(self, chunk: _Chunk) -> tuple[Mask, _Check]:
        """11. BAD_LANE_HINT; also returns which rows have no hint."""
        lane = chunk.coded["lane_hint"]
        lane_empty = text_lengths(lane.values) == 0
        lane_ok_value = to_mask(pc.is_in(lane.values, value_set=self._lane_hints)) | lane_empty
        lane_absent = lane.per_row(lane_empty, True)
        lane_bad = ~lane.per_row(lane_ok_value, True) | chunk.wrong_type("lane_hint")
        pools = ", ".join(p.id for p in self.config.pools)
        check = _Check(
            RejectCode.BAD_LANE_HINT,
            "lane_hint",
            lane_bad,
            lambda row: f"lane_hint {quote(lane.value(row))} is not L1, L2 or a configured pool ({pools})",
        )
        return lane_absent, check

    @staticmethod
    def _decimal_reason(
        code: RejectCode,
        name: str,
        result: _DecimalResult,
        base_scale: I64,
        symbol: Coded,
        wrong_type: Mask | None,
    ) -> Callable[[int], str]:
        def reason(row: int) -> str:
            text = quote(result.text(row))
            if wrong_type is not None and wrong_type[row]:
                return f"{name} {text} must be a decimal string (a JSON number may have lost precision)"
            if code is RejectCode.BAD_DECIMAL:
                return f"{name} {text} is not a plain decimal like 12.50 (no sign, exponent, spaces, separators or bare points)"
            if code is RejectCode.NON_POSITIVE:
                return f"{name} {text} must be greater than zero"
            if code is RejectCode.PRECISION_EXCEEDED:
                if name == "price":
                    return f"price {text} has more than {PRICE_DECIMALS_MAX} decimal places"
                base = (symbol.value(row) or "").split("/")[0]
                return (
                    f"quantity {text} has more than {int(base_scale[row])} decimal places (scale of {base})"
                )
            if name == "price":
                return f"price {text} has more than 18 significant digits"
            return f"quantity {text} does not fit 64-bit minor units"

        return reason

    @staticmethod
    def _build(
        chunk: _Chunk,
        lane_absent: Mask,
        decimals: dict[str, _DecimalResult],
        received_at_ms: int | None,
        keep: I64 | None,
    ) -> pa.Table:
        """The chunk's valid rows (``keep``; all if None) in the canonical trade-chunk schema."""
        coded = chunk.coded

        def pick(values: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
            return values if keep is None else values[keep]

        keep_array = None if keep is None else pa.array(keep, type=pa.int64())

        def pick_arrow(values: pa.Array) -> pa.Array:
            return values if keep_array is None else values.take(keep_array)

        batch_ids = pc.if_else(pa.array(chunk.batch_present), chunk.exch_batch_id, _NULL_TEXT)
        executed = pick(chunk.times.ms).astype(np.int64)
        received = (
            executed if received_at_ms is None else np.full(len(executed), received_at_ms, dtype=np.int64)
        )
        quantity = decimals["quantity"].parsed
        price = decimals["price"].parsed
        arrays = [
            pick_arrow(chunk.trade_id),
            coded["venue"].dictionary(keep),
            coded["symbol"].dictionary(keep),
            coded["buyer"].dictionary(keep),
            coded["seller"].dictionary(keep),
            pa.array(pick(quantity.mantissa), type=pa.int64()),
            pa.array(pick(quantity.fraction_digits).astype(np.int8), type=pa.int8()),
            pa.array(pick(price.mantissa), type=pa.int64()),
            pa.array(pick(price.fraction_digits).astype(np.int8), type=pa.int8()),
            pa.array(executed, type=pa.int64()),
            pa.array(received, type=pa.int64()),
            pick_arrow(batch_ids),
            coded["lane_hint"].dictionary(keep, absent=lane_absent),
        ]
        table = pa.Table.from_arrays(arrays, schema=TRADE_CHUNK_SCHEMA)
        if not table.schema.equals(TRADE_CHUNK_SCHEMA, check_metadata=False):
            raise RuntimeError(f"internal error: trade chunk schema drifted: {table.schema}")
        return table


def event_amount_reason(
    fields: Mapping[str, object], amount_minor: int, fee_cbps: Mapping[str, int]
) -> str | None:
    """Why a small event's ``amount`` (already parsed to ``amount_minor``) exceeds the ledger's
    limit for it, or None (docs/LIMITS.md): a payment's amount plus the payer's undiscounted fee
    at most ``FLOW_GROSS_MAX_MINOR``; a deposit's or withdrawal's amount at most
    ``TRANSFER_MAX_MINOR`` (one two-leg entry). The engine checks the same rule."""
    amount = np.array([amount_minor], dtype=np.int64)
    if "payer" in fields:
        payer_rate = np.array([fee_cbps.get(str(fields["payer"]), 0)], dtype=np.int64)
        if payment_over_limit(amount, payer_rate).any():
            return (
                f"amount {quote(fields.get('amount'))} with the payer's fee exceeds the ledger's "
                f"per-flow limit of {FLOW_GROSS_MAX_MINOR} minor units (docs/LIMITS.md)"
            )
        return None
    if amount_minor > TRANSFER_MAX_MINOR:
        return (
            f"amount {quote(fields.get('amount'))} exceeds the ledger's per-entry limit of "
            f"{TRANSFER_MAX_MINOR} minor units (docs/LIMITS.md)"
        )
    return None


def _text_getter(column: pa.Array | pa.ChunkedArray) -> Callable[[int], str | None]:
    def text(row: int) -> str | None:
        value = column[row].as_py()
        return None if value is None else str(value)

    return text


__all__ = ["Coded", "TradeValidator", "event_amount_reason", "quote"]
