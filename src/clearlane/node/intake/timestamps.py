"""Vectorised ``executed_at`` parsing into int64 milliseconds since the Unix epoch (UTC).

Accepted forms:

* RFC 3339 with a zone: ``2026-11-20T09:30:00Z``, ``2026-11-20T11:30:00.125+02:00``. At most
  three fractional digits (milliseconds); a fourth digit is refused rather than truncated,
  because two trades that differ below a millisecond would otherwise silently collide.
  ``T``/``Z`` may be lower case (RFC 3339 §5.6). No zone, a space instead of ``T`` or a leap
  second (``:60``) are refused.
* a plain non-negative integer string: epoch milliseconds;
* Arrow integer columns (epoch ms) and timestamp columns of any unit (a zone-less timestamp is
  taken as UTC; sub-millisecond remainders are refused like a fourth fractional digit).

Instants must lie in 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z.

The grammar is checked with one RE2 pass; the fields are then read straight out of the Arrow
string buffer with NumPy gathers at fixed offsets, so no Python code runs per row and calendar
validity (month lengths, leap years) is checked exactly rather than normalised away as
``strptime`` does (it turns 30 February into 2 March).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

TS_OK = 0
TS_SYNTAX = 1
TS_PRECISION = 2
TS_CALENDAR = 3
TS_RANGE = 4
TS_NULL = 5

TS_REASONS = {
    TS_SYNTAX: "is not an RFC 3339 time with a zone (2026-11-20T09:30:00.125Z) or epoch milliseconds",
    TS_PRECISION: "has more than millisecond precision",
    TS_CALENDAR: "is not a valid calendar date and time of day",
    TS_RANGE: "is outside 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z",
    TS_NULL: "is missing",
}

MS_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_MS_PER_DAY = 86_400_000

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
# 18 digits cannot overflow int64; anything longer is out of range anyway.
EPOCH_MS_PATTERN = r"^(0|[1-9][0-9]{0,17})$"

_UNIT_MS = {"s": (1000, 1), "ms": (1, 1), "us": (1, 1000), "ns": (1, 1_000_000)}


@dataclass(frozen=True)
class ParsedTimes:
    """``ms`` is valid only where ``error == TS_OK``."""

    ms: I64
    error: I8


def _bool_numpy(mask: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    filled = pc.fill_null(mask, False)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _days_from_civil(year: I64, month: I64, day: I64) -> I64:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = np.where(month > 2, month - 3, month + 9)
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    result: I64 = era * 146_097 + doe - 719_468
    return result


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _rfc3339_to_ms(text: pa.StringArray, rows: I64) -> tuple[I64, I8]:
    """Convert rows (already matched by RFC3339_PATTERN) by reading digits at fixed offsets."""
    count = len(rows)
    error = np.zeros(count, dtype=np.int8)
    if count == 0:
        return np.zeros(0, dtype=np.int64), error
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + len(text) + 1]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)
    start = offsets[rows].astype(np.int64)
    end = offsets[rows + 1].astype(np.int64)

    def number(first: I64, width: int) -> I64:
        value = np.zeros(count, dtype=np.int64)
        for k in range(width):
            value = value * 10 + (data[first + k].astype(np.int64) - 48)
        return value

    year = number(start, 4)
    month = number(start + 5, 2)
    day = number(start + 8, 2)
    hour = number(start + 11, 2)
    minute = number(start + 14, 2)
    second = number(start + 17, 2)
    last = data[end - 1].astype(np.int64)
    is_zulu = (last == ord("Z")) | (last == ord("z"))
    zone_len = np.where(is_zulu, 1, 6)
    # Between the 19-character date-time and the zone sits an optional "." and the digits.
    fraction_digits = np.maximum(end - start - 19 - zone_len - 1, 0)
    fraction_ms = np.zeros(count, dtype=np.int64)
    for k in range(3):
        present = fraction_digits > k
        digit = data[np.where(present, start + 20 + k, start)].astype(np.int64) - 48
        fraction_ms += np.where(present, digit * 10 ** (2 - k), 0)
    zone_start = np.where(is_zulu, start, end - 6)
    zone_sign = np.where(data[zone_start] == ord("-"), -1, 1)
    zone_hour = np.where(is_zulu, 0, number(zone_start + 1, 2))
    zone_minute = np.where(is_zulu, 0, number(zone_start + 4, 2))

    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ok = (month >= 1) & (month <= 12)
    month_days = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    calendar_ok = (
        month_ok
        & (day >= 1)
        & (day <= month_days)
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
        & (zone_hour <= 23)
        & (zone_minute <= 59)
    )
    days = _days_from_civil(year, np.where(month_ok, month, 1), day)
    ms = (
        days * _MS_PER_DAY
        + hour * 3_600_000
        + minute * 60_000
        + second * 1000
        + fraction_ms
        - zone_sign * (zone_hour * 60 + zone_minute) * 60_000
    )
    error[fraction_digits > 3] = TS_PRECISION
    error[(error == 0) & ~calendar_ok] = TS_CALENDAR
    error[(error == 0) & ((ms < 0) | (ms > MS_MAX))] = TS_RANGE
    ms[error != 0] = 0
    return ms, error


def _strings_to_ms(column: pa.Array) -> ParsedTimes:
    if not pa.types.is_string(column.type):
        column = column.cast(pa.string())
    n = len(column)
    ms = np.zeros(n, dtype=np.int64)
    error = np.full(n, TS_SYNTAX, dtype=np.int8)
    present = np.asarray(pc.fill_null(pc.binary_length(column), 0).to_numpy(zero_copy_only=False)) > 0
    error[~present] = TS_NULL
    is_rfc = _bool_numpy(pc.match_substring_regex(column, RFC3339_PATTERN))
    rfc_rows = np.flatnonzero(is_rfc).astype(np.int64)
    rfc_ms, rfc_error = _rfc3339_to_ms(column, rfc_rows)
    ms[rfc_rows] = rfc_ms
    error[rfc_rows] = rfc_error
    is_int = _bool_numpy(pc.match_substring_regex(column, EPOCH_MS_PATTERN))
    if is_int.any():
        digits = pc.if_else(pa.array(is_int), column, pa.scalar("0", pa.string()))
        values = np.asarray(pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
        ms[is_int] = values[is_int]
        error[is_int] = np.where(values[is_int] > MS_MAX, TS_RANGE, TS_OK)
    ms[error != 0] = 0
    return ParsedTimes(ms=ms, error=error)


def _integers_to_ms(values: I64, nulls: npt.NDArray[np.bool_]) -> ParsedTimes:
    error = np.where((values < 0) | (values > MS_MAX), TS_RANGE, TS_OK).astype(np.int8)
    error[nulls] = TS_NULL
    ms = np.where(error == 0, values, 0).astype(np.int64)
    return ParsedTimes(ms=ms, error=error)


def to_epoch_ms(column: pa.Array | pa.ChunkedArray) -> ParsedTimes:
    """Parse an ``executed_at`` column of any accepted Arrow type (see the module docstring)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _strings_to_ms(column)
    nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)
    if pa.types.is_null(kind):
        return _integers_to_ms(np.zeros(len(column), dtype=np.int64), nulls)
    if pa.types.is_timestamp(kind):
        multiply, divide = _UNIT_MS[kind.unit]
        raw = np.asarray(
            pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), dtype=np.int64
        )
        parsed = _integers_to_ms(raw // divide * multiply, nulls)
        if divide > 1:
            error = parsed.error.copy()
            error[(raw % divide != 0) & ~nulls] = TS_PRECISION
            return ParsedTimes(ms=np.where(error == 0, parsed.ms, 0), error=error)
        return parsed
    if pa.types.is_integer(kind):
        if pa.types.is_unsigned_integer(kind):
            raw_u = np.asarray(pc.fill_null(column, 0).to_numpy(zero_copy_only=False), dtype=np.uint64)
            # Anything above int64 is far beyond MS_MAX: clamp so the range check catches it.
            raw = np.minimum(raw_u, np.uint64(MS_MAX + 1)).astype(np.int64)
        else:
            raw = np.asarray(pc.fill_null(column, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        return _integers_to_ms(raw, nulls)
    raise TypeError(f"executed_at of type {kind} is not a string, integer or timestamp column")
