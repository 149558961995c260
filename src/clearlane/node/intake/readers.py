"""File readers: CSV, Parquet and JSON lines → :class:`IngestBatch` (valid trade chunks,
small events and rejects), in file order.

Input columns are ``INPUT_TRADE_COLUMNS`` (required) and ``INPUT_TRADE_OPTIONAL``
(``exch_batch_id``, ``lane_hint``); any other column is ignored — venues add their own fields
and clearlane must not fail on them. An empty value counts as missing.

Row numbers in rejects are 1-based data rows:

* CSV: the line number minus one (the header is line 1, so the first data line is row 1).
  Blank lines are skipped silently but keep their number, and a line with the wrong number of
  fields is rejected as UNREADABLE_ROW without shifting the rows after it. Line breaks inside
  quoted fields are not supported (they shift the numbering and may split the record).
* Parquet: the row's position in the file, from 1.
* JSON lines: the line number; blank lines are skipped but counted.

Types: CSV columns are always read as strings (``"0010"`` must not become 10). Parquet
``quantity``/``price`` may be string, decimal128/256 (converted to text exactly at the column's
scale) or integer; ``executed_at`` may be a timestamp, integer epoch ms or RFC 3339 string.
A float quantity or price column is refused as a whole (BAD_COLUMN_TYPE): its values have
already lost precision.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from clearlane.core.config.model import MARK_SCALE, ClearingConfig
from clearlane.core.errors import InputError
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.ids import INPUT_ID_RULE
from clearlane.core.model.inputs import (
    ID_RE,
    INPUT_TRADE_COLUMNS,
    INPUT_TRADE_OPTIONAL,
    CollateralDeposit,
    CollateralWithdrawal,
    ConfigChange,
    Payment,
    PriceMark,
    SmallEvent,
)
from clearlane.core.money import DecimalError, parse_decimal
from clearlane.node.intake.validate import TradeValidator, event_amount_reason, quote, text_lengths

I64 = npt.NDArray[np.int64]

_ALL_COLUMNS = INPUT_TRADE_COLUMNS + INPUT_TRADE_OPTIONAL
_DICTIONARY_COLUMNS = ("venue", "symbol", "buyer", "seller", "lane_hint")
_TEXT_COLUMNS = ("trade_id", "venue", "symbol", "buyer", "seller", "exch_batch_id", "lane_hint")


class IngestError(InputError, code="FILE_UNUSABLE"):
    """A file that cannot be read at all (as opposed to bad rows, which become rejects).

    ``code`` is stable: FILE_NOT_FOUND, UNSUPPORTED_FORMAT, MISSING_COLUMN (``column`` names
    it), BAD_COLUMN_TYPE (``column`` names it), UNREADABLE_FILE.
    """

    FILE_NOT_FOUND = "FILE_NOT_FOUND"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    MISSING_COLUMN = "MISSING_COLUMN"
    BAD_COLUMN_TYPE = "BAD_COLUMN_TYPE"
    UNREADABLE_FILE = "UNREADABLE_FILE"

    def __init__(self, code: str, message: str, *, column: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.column = column


@dataclass
class TradeChunk:
    """Valid trades of one chunk of input rows.

    ``table`` is exactly ``TRADE_CHUNK_SCHEMA`` (valid rows only, possibly none);
    ``first_row`` is the row number of the chunk's first input row and ``rows_read`` the number
    of input rows the chunk covered (valid + rejected).
    """

    table: pa.Table
    first_row: int
    rows_read: int
    # The input row number of each row of ``table`` (None: rows first_row, first_row + 1, …).
    valid_rows: I64 | None = None

    def located(self, rejects: Iterable[Reject]) -> list[Reject]:
        """Rejects the engine made for rows of ``table`` (``row`` = index in the table: id
        conflicts) with ``row`` turned into the input row number, as edge rejects carry it."""
        out = []
        for r in rejects:
            row = r.row
            if row is not None:
                row = int(self.valid_rows[row]) if self.valid_rows is not None else self.first_row + row
            out.append(dataclasses.replace(r, row=row))
        return out


def valid_rows_of(rows: I64, rejects: list[Reject]) -> I64:
    """The input row numbers of the rows that passed (a validator keeps rows in order)."""
    bad = np.fromiter((r.row for r in rejects if r.row is not None), dtype=np.int64)
    return rows[~np.isin(rows, bad)] if len(bad) else rows


@dataclass
class IngestBatch:
    """One step of a file, in file order: either a trade chunk or a run of small events
    (never both, so interleaving in JSON lines is preserved), plus the rejects met on the way."""

    trades: TradeChunk | None
    events: list[SmallEvent] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def iter_input(
    path: Path,
    config: ClearingConfig,
    *,
    chunk_rows: int = 65_536,
    received_at_ms: int | None = None,
) -> Iterator[IngestBatch]:
    """Read ``path`` (format by suffix: .csv, .csv.gz, .parquet, .jsonl, .ndjson, .jsonl.gz,
    .ndjson.gz) in chunks of at most ``chunk_rows`` input rows.

    A missing file, unknown suffix, missing column or unusable column type raises
    :class:`IngestError` from this call; an unreadable byte further in raises it from the
    iteration. Bad rows never raise: they come back as rejects.

    ``received_at_ms`` stamps every trade; without it a trade's received time is its execution
    time (event-time clearing of a file).
    """
    path = Path(path)
    if chunk_rows <= 0:
        raise ValueError("chunk_rows must be positive")
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        reader = _iter_csv
    elif name.endswith(".parquet"):
        reader = _iter_parquet
    elif name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
        reader = _iter_jsonl
    else:
        raise IngestError(
            IngestError.UNSUPPORTED_FORMAT,
            f"{path}: unknown file type (expected .csv, .parquet, .jsonl or .ndjson, optionally .gz)",
        )
    if not path.exists():
        raise IngestError(IngestError.FILE_NOT_FOUND, f"{path}: no such file")
    if not path.is_file():
        raise IngestError(IngestError.UNREADABLE_FILE, f"{path}: not a regular file")
    return reader(path, TradeValidator(config), chunk_rows, received_at_ms)


def write_rejects(path: Path, rejects: Iterable[Reject]) -> int:
    """Append rejects to ``path`` as JSON lines (``Reject.to_dict()``); returns how many."""
    count = 0
    with Path(path).open("a", encoding="utf-8") as out:
        for reject in rejects:
            out.write(json.dumps(reject.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    return count


# ---------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------


def _require_columns(path: Path, names: list[str]) -> list[str]:
    duplicates = sorted({n for n in names if names.count(n) > 1 and n in _ALL_COLUMNS})
    if duplicates:
        raise IngestError(
            IngestError.UNREADABLE_FILE, f"{path}: duplicate column {duplicates[0]!r}", column=duplicates[0]
        )
    missing = [c for c in INPUT_TRADE_COLUMNS if c not in names]
    if missing:
        raise IngestError(
            IngestError.MISSING_COLUMN,
            f"{path}: missing required column {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            column=missing[0],
        )
    return [c for c in _ALL_COLUMNS if c in names]


def _rechunk(batches: Iterable[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.Table]:
    """Regroup record batches into tables of exactly ``chunk_rows`` rows (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(chunk_rows - count, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            count += take
            offset += take
            if count == chunk_rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)


def _trade_batch(
    validator: TradeValidator,
    table: pa.Table,
    rows: I64,
    received_at_ms: int | None,
    extra_rejects: list[Reject],
) -> IngestBatch:
    columns = {name: table.column(name) for name in table.column_names}
    valid, rejects = validator.validate(columns, rows, received_at_ms=received_at_ms)
    chunk = TradeChunk(
        table=valid,
        first_row=int(rows[0]) if len(rows) else 0,
        rows_read=len(rows),
        valid_rows=valid_rows_of(rows, rejects),
    )
    return IngestBatch(trades=chunk, rejects=extra_rejects + rejects)


# ---------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------


def _open_binary(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _csv_header(path: Path) -> list[str]:
    try:
        with _open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
            header = next(csv.reader(text), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise IngestError(IngestError.UNREADABLE_FILE, f"{path}: cannot read the CSV header: {exc}") from None
    if not header:
        raise IngestError(IngestError.UNREADABLE_FILE, f"{path}: empty file, expected a header line")
    return header


class _CsvLines:
    """Maps the n-th parsed CSV record to its data-row number despite skipped lines.

    pyarrow drops a line with the wrong field count (via our handler) without a trace in the
    batches; with the handler's physical line numbers we shift later rows back into place.
    """

    def __init__(self) -> None:
        self.skipped: list[int] = []  # data-row numbers of dropped lines, sorted
        self.rejects: list[Reject] = []

    def on_invalid(self, row: Any) -> str:
        number = int(row.number) - 1 if row.number is not None and row.number > 0 else None
        if number is not None:
            bisect.insort(self.skipped, number)
        self.rejects.append(
            Reject(
                code=RejectCode.UNREADABLE_ROW,
                field="-",
                reason=f"expected {row.expected_columns} fields, got {row.actual_columns}: {quote(row.text)}",
                row=number,
            )
        )
        return "skip"

    def rows(self, first_ordinal: int, count: int) -> I64:
        ordinal = np.arange(first_ordinal, first_ordinal + count, dtype=np.int64)
        if not self.skipped:
            return ordinal
        skipped = np.asarray(self.skipped, dtype=np.int64)
        records_before = skipped - np.arange(1, len(skipped) + 1, dtype=np.int64)
        shifted: I64 = ordinal + np.searchsorted(records_before, ordinal, side="left")
        return shifted

    def take_rejects(self) -> list[Reject]:
        taken, self.rejects = self.rejects, []
        return taken


def _iter_csv(
    path: Path, validator: TradeValidator, chunk_rows: int, received_at_ms: int | None
) -> Iterator[IngestBatch]:
    # Header problems raise here, when iter_input is called, not at the first batch.
    header = _csv_header(path)
    wanted = _require_columns(path, header)
    return _csv_batches(path, header, wanted, validator, chunk_rows, received_at_ms)


def _csv_batches(
    path: Path,
    header: list[str],
    wanted: list[str],
    validator: TradeValidator,
    chunk_rows: int,
    received_at_ms: int | None,
) -> Iterator[IngestBatch]:
    lines = _CsvLines()
    try:
        reader = pacsv.open_csv(
            path,
            # Serial parsing: the invalid-row handler only gets line numbers without threads.
            read_options=pacsv.ReadOptions(
                use_threads=False, block_size=min(max(chunk_rows * 128, 1 << 20), 1 << 26)
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=lines.on_invalid, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                include_columns=wanted,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        ordinal = 1
        for table in _rechunk(reader, chunk_rows):
            rows = lines.rows(ordinal, table.num_rows)
            ordinal += table.num_rows
            # A blank line arrives as a record of empty strings; it is not a trade.
            blank = np.ones(table.num_rows, dtype=np.bool_)
            for name in wanted:
                blank &= text_lengths(table.column(name)) == 0
            if blank.any():
                keep = np.flatnonzero(~blank)
                table, rows = table.take(pa.array(keep, type=pa.int64())), rows[keep]
                if table.num_rows == 0:
                    continue
            yield _trade_batch(validator, table, rows, received_at_ms, lines.take_rejects())
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise IngestError(IngestError.UNREADABLE_FILE, f"{path}: {exc}") from None
    leftover = lines.take_rejects()
    if leftover:
        yield IngestBatch(trades=None, rejects=leftover)


# ---------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind))


def _check_parquet_types(path: Path, schema: pa.Schema, wanted: list[str]) -> None:
    for name in wanted:
        kind = schema.field(name).type
        if name in ("quantity", "price"):
            ok = _is_text(kind) or pa.types.is_decimal(kind) or pa.types.is_integer(kind)
            expected = "a decimal string, decimal128 or integer column"
        elif name == "executed_at":
            ok = _is_text(kind) or pa.types.is_integer(kind) or pa.types.is_timestamp(kind)
            expected = "a timestamp, integer epoch-ms or RFC 3339 string column"
        else:
            ok = _is_text(kind)
            expected = "a string column"
        if not ok:
            raise IngestError(
                IngestError.BAD_COLUMN_TYPE,
                f"{path}: column {name!r} is {kind}, expected {expected}",
                column=name,
            )


def _iter_parquet(
    path: Path, validator: TradeValidator, chunk_rows: int, received_at_ms: int | None
) -> Iterator[IngestBatch]:
    # Schema problems raise here, when iter_input is called, not at the first batch.
    try:
        schema = pq.ParquetFile(path).schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(IngestError.UNREADABLE_FILE, f"{path}: {exc}") from None
    wanted = _require_columns(path, schema.names)
    _check_parquet_types(path, schema, wanted)
    return _parquet_batches(path, schema, wanted, validator, chunk_rows, received_at_ms)


def _parquet_batches(
    path: Path,
    schema: pa.Schema,
    wanted: list[str],
    validator: TradeValidator,
    chunk_rows: int,
    received_at_ms: int | None,
) -> Iterator[IngestBatch]:
    try:
        # Reading low-cardinality columns as dictionaries skips materialising and re-hashing
        # millions of strings: the validator checks each distinct value once.
        as_dictionary = [c for c in _DICTIONARY_COLUMNS if c in wanted and _is_text(schema.field(c).type)]
        source = pq.ParquetFile(path, read_dictionary=as_dictionary)
        first = 1
        for table in _rechunk(source.iter_batches(batch_size=chunk_rows, columns=wanted), chunk_rows):
            rows = np.arange(first, first + table.num_rows, dtype=np.int64)
            first += table.num_rows
            yield _trade_batch(validator, table, rows, received_at_ms, [])
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(IngestError.UNREADABLE_FILE, f"{path}: {exc}") from None


# ---------------------------------------------------------------------------------------
# JSON lines
# ---------------------------------------------------------------------------------------

_EVENT_MODELS: dict[str, type[BaseModel]] = {
    "payment": Payment,
    "collateral_deposit": CollateralDeposit,
    "collateral_withdrawal": CollateralWithdrawal,
    "price_mark": PriceMark,
    "config_change": ConfigChange,
}
_EVENT_ID_FIELD = {
    "payment": "payment_id",
    "collateral_deposit": "deposit_id",
    "collateral_withdrawal": "withdrawal_id",
    "price_mark": "mark_id",
    "config_change": "change_id",
}
_FIELD_CODES = {
    "v": RejectCode.BAD_SCHEMA_VERSION,
    "amount": RejectCode.BAD_DECIMAL,
    "mark_usd": RejectCode.BAD_DECIMAL,
    "asset": RejectCode.UNKNOWN_ASSET,
    "lane_hint": RejectCode.BAD_LANE_HINT,
    **dict.fromkeys(
        (
            "payment_id",
            "deposit_id",
            "withdrawal_id",
            "mark_id",
            "change_id",
            "payer",
            "payee",
            "participant",
        ),
        RejectCode.BAD_ID,
    ),
}
_DECIMAL_ERRORS = {
    "syntax": RejectCode.BAD_DECIMAL,
    "precision": RejectCode.PRECISION_EXCEEDED,
    "zero": RejectCode.NON_POSITIVE,
    "overflow": RejectCode.AMOUNT_OVERFLOW,
}


class _TradeRows:
    """Trade lines collected column-wise until the chunk is flushed."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.values: dict[str, list[str | None]] = {}
        self.wrong_type: dict[str, list[bool]] = {}
        self.clear()

    def clear(self) -> None:
        self.rows = []
        self.values = {name: [] for name in _ALL_COLUMNS}
        self.wrong_type = {name: [] for name in _ALL_COLUMNS}

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, line: int, obj: dict[str, Any]) -> None:
        self.rows.append(line)
        if "executed_at" not in obj and "executed_at_ms" in obj:
            # The single-message form (TradeExecuted) names the field executed_at_ms.
            obj = {**obj, "executed_at": obj["executed_at_ms"]}
        for name in _ALL_COLUMNS:
            value = obj.get(name)
            wrong = False
            if value is None or isinstance(value, str):
                text = value
            elif name == "executed_at" and isinstance(value, int) and not isinstance(value, bool):
                text = str(value)
            else:
                # Keep the JSON text for the reason; the field fails its check regardless.
                text, wrong = _json_text(value), True
            self.values[name].append(text)
            self.wrong_type[name].append(wrong)

    def flush(
        self, validator: TradeValidator, received_at_ms: int | None, rejects: list[Reject]
    ) -> IngestBatch:
        columns = {name: pa.array(values, type=pa.string()) for name, values in self.values.items()}
        type_errors = {
            name: np.asarray(flags, dtype=np.bool_) for name, flags in self.wrong_type.items() if any(flags)
        }
        rows = np.asarray(self.rows, dtype=np.int64)
        valid, found = validator.validate(
            columns, rows, received_at_ms=received_at_ms, type_errors=type_errors
        )
        self.clear()
        chunk = TradeChunk(
            table=valid, first_row=int(rows[0]), rows_read=len(rows), valid_rows=valid_rows_of(rows, found)
        )
        return IngestBatch(trades=chunk, rejects=rejects + found)


def _event_reject(kind: str, line: int, obj: dict[str, Any], exc: ValidationError) -> Reject:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    field_name = ".".join(loc) or "-"
    if error["type"] == "missing":
        code = RejectCode.MISSING_FIELD
    elif error["type"] == "extra_forbidden":
        code = RejectCode.UNREADABLE_ROW
    else:
        code = _FIELD_CODES.get(loc[0] if loc else "", RejectCode.UNREADABLE_ROW)
    value = obj.get(loc[0]) if loc else None
    shown = f" (got {quote(value)})" if value is not None and error["type"] != "missing" else ""
    message = str(error["msg"])
    if code == RejectCode.BAD_ID and error["type"] == "string_pattern_mismatch":
        message = f"{field_name} is not {INPUT_ID_RULE}"
    input_id = obj.get(_EVENT_ID_FIELD[kind])
    return Reject(
        code=code,
        field=field_name,
        reason=f"{kind}: {message}{shown}",
        row=line,
        input_id=input_id if isinstance(input_id, str) and ID_RE.match(input_id) else None,
    )


class _EventChecker:
    """Reference-data checks pydantic cannot do: known assets and participants, amounts at
    the asset's scale, lane hints — so nothing invalid reaches the log."""

    def __init__(self, config: ClearingConfig) -> None:
        self.scales = {a.code: a.scale for a in config.assets}
        self.participants = set(config.participant_index())
        self.house = config.house
        self.lanes = {"L1", "L2", *(p.id for p in config.pools)}
        self.fee_cbps = dict(zip(config.participant_ids, config.fee_cbps().tolist(), strict=True))

    def check(self, event: BaseModel, line: int, input_id: str) -> Reject | None:
        def reject(code: RejectCode, name: str, reason: str) -> Reject:
            return Reject(code=code, field=name, reason=reason, row=line, input_id=input_id)

        fields = event.model_dump()
        for name in ("payer", "payee", "participant"):
            if name in fields and fields[name] not in self.participants:
                what = (
                    "is the clearing house, not a participant"
                    if fields[name] == self.house
                    else "is not a configured participant"
                )
                return reject(RejectCode.UNKNOWN_PARTICIPANT, name, f"{name} {quote(fields[name])} {what}")
        if "payer" in fields and fields["payer"] == fields["payee"]:
            return reject(
                RejectCode.SELF_TRADE, "payee", f"payer and payee are both {quote(fields['payer'])}"
            )
        asset = fields.get("asset")
        if asset is not None and asset not in self.scales:
            return reject(RejectCode.UNKNOWN_ASSET, "asset", f"asset {quote(asset)} is not configured")
        for name, scale in (("amount", self.scales.get(asset or "", 0)), ("mark_usd", MARK_SCALE)):
            if name in fields:
                try:
                    minor = parse_decimal(fields[name], scale)
                except DecimalError as exc:
                    return reject(
                        _DECIMAL_ERRORS.get(exc.reason, RejectCode.BAD_DECIMAL),
                        name,
                        f"{name} {quote(fields[name])}: {exc}",
                    )
                over = event_amount_reason(fields, minor, self.fee_cbps) if name == "amount" else None
                if over is not None:
                    return reject(RejectCode.AMOUNT_OVERFLOW, name, over)
        hint = fields.get("lane_hint")
        if hint is not None and hint not in self.lanes:
            return reject(
                RejectCode.BAD_LANE_HINT,
                "lane_hint",
                f"lane_hint {quote(hint)} is not L1, L2 or a configured pool",
            )
        return None


def _iter_jsonl(
    path: Path, validator: TradeValidator, chunk_rows: int, received_at_ms: int | None
) -> Iterator[IngestBatch]:
    try:
        with _open_binary(path) as raw:
            yield from jsonl_batches(raw, validator, chunk_rows, received_at_ms)
    except OSError as exc:
        raise IngestError(IngestError.UNREADABLE_FILE, f"{path}: {exc}") from None


def jsonl_batches(
    lines: Iterable[bytes], validator: TradeValidator, chunk_rows: int, received_at_ms: int | None
) -> Iterator[IngestBatch]:
    """JSON lines (a file's or a bus message's) → batches in line order; lines count from 1."""
    checker = _EventChecker(validator.config)
    trades = _TradeRows()
    events: list[SmallEvent] = []
    rejects: list[Reject] = []

    def flush_events() -> IngestBatch:
        nonlocal events, rejects
        batch = IngestBatch(trades=None, events=events, rejects=rejects)
        events, rejects = [], []
        return batch

    def flush_trades() -> IngestBatch:
        nonlocal rejects
        batch = trades.flush(validator, received_at_ms, rejects)
        rejects = []
        return batch

    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if _SURROGATE_ESCAPE.search(line):
                _no_lone_surrogate(obj)
        except ValueError as exc:  # JSONDecodeError, invalid UTF-8 and a lone surrogate alike
            rejects.append(Reject(RejectCode.BAD_JSON, "-", f"not valid JSON: {exc}", row=line_number))
            continue
        if not isinstance(obj, dict):
            rejects.append(_not_an_object(line, line_number))
            continue
        kind = obj.get("type", "trade")
        if kind == "trade":
            if events:
                yield flush_events()
            version = obj.get("v", 1)
            if type(version) is not int or version != 1:
                rejects.append(_bad_version(version, obj, line_number))
                continue
            trades.add(line_number, obj)
            if len(trades) >= chunk_rows:
                yield flush_trades()
            continue
        if not isinstance(kind, str) or kind not in _EVENT_MODELS:
            rejects.append(
                Reject(
                    RejectCode.UNKNOWN_EVENT_TYPE,
                    "type",
                    f"unknown event type {quote(kind)}",
                    row=line_number,
                )
            )
            continue
        if len(trades):
            yield flush_trades()
        event = _event(kind, obj, line_number, checker)
        if isinstance(event, Reject):
            rejects.append(event)
            continue
        events.append(event)
        if len(events) >= chunk_rows:
            yield flush_events()
    if len(trades):
        yield flush_trades()
    if events or rejects:
        yield flush_events()


# A \u escape of a UTF-16 surrogate: json.loads turns one that is not half of a pair into a
# string no column can hold (UTF-8 has no encoding for it), so the line is checked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _no_lone_surrogate(obj: Any) -> None:
    """Raise ``ValueError`` if a string in ``obj`` holds a lone surrogate (``"\\ud800"`` alone
    in a JSON line: valid JSON syntax, but no character); a surrogate pair is one character."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a \\u escape names a lone surrogate, which is not a character") from None


def _not_an_object(line: bytes, line_number: int) -> Reject:
    text = line.decode("utf-8", "replace").strip()
    return Reject(RejectCode.BAD_JSON, "-", f"not a JSON object: {quote(text)}", row=line_number)


def _bad_version(version: object, obj: dict[str, Any], line_number: int) -> Reject:
    """A trade line of a schema version other than 1 (named by its trade id when that is one)."""
    trade_id = obj.get("trade_id")
    return Reject(
        RejectCode.BAD_SCHEMA_VERSION,
        "v",
        f"schema version {quote(version)} is not supported (expected 1)",
        row=line_number,
        input_id=trade_id if isinstance(trade_id, str) and ID_RE.match(trade_id) else None,
    )


def _event(kind: str, obj: dict[str, Any], line_number: int, checker: _EventChecker) -> SmallEvent | Reject:
    """A small event line parsed by its model and checked against the configuration."""
    try:
        event = _EVENT_MODELS[kind].model_validate(obj)
    except ValidationError as exc:
        return _event_reject(kind, line_number, obj, exc)
    event_id = str(getattr(event, _EVENT_ID_FIELD[kind]))
    problem = checker.check(event, line_number, event_id)
    if problem is not None:
        return problem
    return event  # type: ignore[return-value]


def file_digest(path: Path) -> str:
    """Content hash (SHA-256, hex) of an input file: the same bytes cleared twice are one input."""
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _json_text(value: Any) -> str:
    """A wrong-typed value's JSON text, for its reject reason. A value nested too deeply to
    encode (a hostile body: an object 1,000 levels deep) is named instead of encoded; the row is
    refused either way, and the loop that validates it must not stop on it."""
    try:
        return json.dumps(value)
    except RecursionError:
        return f"<a JSON {type(value).__name__} nested too deeply>"
