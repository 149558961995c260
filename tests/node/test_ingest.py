"""Ingest: CSV / Parquet / JSON lines → validated trade chunks and rejects with stable codes."""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.config import ClearingConfig, parse_config
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.inputs import INPUT_TRADE_COLUMNS, TRADE_CHUNK_SCHEMA, Payment, PriceMark
from clearlane.node.intake import IngestBatch, IngestError, iter_input, write_rejects
from tests.conftest import example_raw

COLUMNS = (*INPUT_TRADE_COLUMNS, "exch_batch_id", "lane_hint")
FORMATS = ("csv", "parquet", "jsonl")
T_TEXT = "2026-11-20T09:30:00.125Z"
T_MS = 1_795_167_000_125
R = RejectCode


def good(i: int = 1, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trade_id": f"T{i:05d}",
        "venue": "XCL",
        "symbol": "BTC/USD",
        "buyer": "MM-ALPHA",
        "seller": "RTL-0001",
        "quantity": "0.5",
        "price": "65000.12",
        "executed_at": T_TEXT,
        "exch_batch_id": "EB-1",
        "lane_hint": "",
    }
    row.update(changes)
    return row


def write(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> Path:
    """Write rows in the format named by the suffix; "" and None mean absent."""
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            for row in rows:
                writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    elif path.suffix == ".parquet":
        table = pa.table(
            {c: pa.array([row.get(c) or None for row in rows], type=pa.string()) for c in columns}
        )
        pq.write_table(table, path)
    else:
        with path.open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(
                    json.dumps({c: v for c, v in row.items() if c in columns and v not in ("", None)}) + "\n"
                )
    return path


def read(
    path: Path, config: ClearingConfig, **kwargs: Any
) -> tuple[pa.Table, list[Reject], list[IngestBatch]]:
    batches = list(iter_input(path, config, **kwargs))
    tables = [b.trades.table for b in batches if b.trades is not None]
    for table in tables:
        assert table.schema.equals(TRADE_CHUNK_SCHEMA, check_metadata=False)
    rejects = [r for b in batches for r in b.rejects]
    table = pa.concat_tables(tables) if tables else TRADE_CHUNK_SCHEMA.empty_table()
    return table, rejects, batches


def decimal_of(mantissa: int, exp: int) -> Decimal:
    return Decimal(mantissa).scaleb(-exp)


# ---------------------------------------------------------------------------------------
# valid rows
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_rows_pass_through_exactly(tmp_path: Path, config: ClearingConfig, fmt: str) -> None:
    rows = [
        good(1),
        good(2, quantity="1.50", price="3200", symbol="ETH/BTC", lane_hint="fast", exch_batch_id=""),
        good(3, quantity="12", price="0.049230770000", symbol="ETH/BTC", executed_at="1795167000999"),
        good(
            4,
            quantity="100.01",
            price="1.08",
            symbol="EUR/USD",
            buyer="RTL-0002",
            seller="BRK-NORTH",
            lane_hint="L1",
        ),
    ]
    table, rejects, _ = read(write(tmp_path / f"t.{fmt}", rows), config)
    assert rejects == []
    got = table.to_pylist()
    assert [r["trade_id"] for r in got] == ["T00001", "T00002", "T00003", "T00004"]
    assert [(r["qty_mantissa"], r["qty_exp"]) for r in got] == [(5, 1), (150, 2), (12, 0), (10001, 2)]
    assert [(r["price_mantissa"], r["price_exp"]) for r in got] == [
        (6500012, 2),
        (3200, 0),
        (49230770000, 12),
        (108, 2),
    ]
    assert [r["executed_at_ms"] for r in got] == [T_MS, T_MS, 1_795_167_000_999, T_MS]
    assert [r["received_at_ms"] for r in got] == [r["executed_at_ms"] for r in got]
    assert [r["lane_hint"] for r in got] == [None, "fast", None, "L1"]
    assert [r["exch_batch_id"] for r in got] == ["EB-1", None, "EB-1", "EB-1"]
    assert got[3]["buyer"] == "RTL-0002" and got[3]["symbol"] == "EUR/USD"


def test_received_at_argument_stamps_every_trade(tmp_path: Path, config: ClearingConfig) -> None:
    table, _, _ = read(write(tmp_path / "t.csv", [good(1), good(2)]), config, received_at_ms=42)
    assert table.column("received_at_ms").to_pylist() == [42, 42]
    assert table.column("executed_at_ms").to_pylist() == [T_MS, T_MS]


# ---------------------------------------------------------------------------------------
# every reject code, every format
# ---------------------------------------------------------------------------------------

# (changes to a good row, expected code, expected field, text the reason must contain)
BAD_ROWS: list[tuple[dict[str, Any], RejectCode, str, str]] = [
    ({"trade_id": ""}, R.MISSING_FIELD, "trade_id", "trade_id"),
    ({"buyer": ""}, R.MISSING_FIELD, "buyer", "buyer"),
    ({"quantity": ""}, R.MISSING_FIELD, "quantity", "quantity"),
    ({"executed_at": ""}, R.MISSING_FIELD, "executed_at", "executed_at"),
    ({"trade_id": "has space"}, R.BAD_ID, "trade_id", "'has space'"),
    ({"venue": "V" * 65}, R.BAD_ID, "venue", "'VVVV"),
    ({"exch_batch_id": "eb 1"}, R.BAD_ID, "exch_batch_id", "'eb 1'"),
    ({"symbol": "DOGE/USD"}, R.UNKNOWN_SYMBOL, "symbol", "unknown base asset 'DOGE'"),
    ({"symbol": "BTC/XYZ"}, R.UNKNOWN_SYMBOL, "symbol", "unknown quote asset 'XYZ'"),
    ({"symbol": "BTCUSD"}, R.UNKNOWN_SYMBOL, "symbol", "'BTCUSD'"),
    ({"symbol": "BTC/BTC"}, R.UNKNOWN_SYMBOL, "symbol", "same base and quote"),
    ({"buyer": "NOBODY"}, R.UNKNOWN_PARTICIPANT, "buyer", "'NOBODY'"),
    ({"seller": "HOUSE"}, R.UNKNOWN_PARTICIPANT, "seller", "clearing house"),
    ({"seller": "MM-ALPHA"}, R.SELF_TRADE, "seller", "'MM-ALPHA'"),
    ({"quantity": "1e3"}, R.BAD_DECIMAL, "quantity", "'1e3'"),
    ({"price": "abc"}, R.BAD_DECIMAL, "price", "'abc'"),
    ({"quantity": "0.000000001"}, R.PRECISION_EXCEEDED, "quantity", "more than 8 decimal places"),
    ({"symbol": "EUR/USD", "quantity": "1.001"}, R.PRECISION_EXCEEDED, "quantity", "scale of EUR"),
    ({"price": "1.1234567890123"}, R.PRECISION_EXCEEDED, "price", "12 decimal places"),
    ({"quantity": "0"}, R.NON_POSITIVE, "quantity", "'0'"),
    ({"quantity": "-1.5"}, R.NON_POSITIVE, "quantity", "'-1.5'"),
    ({"price": "0.000"}, R.NON_POSITIVE, "price", "'0.000'"),
    ({"quantity": "100000000000"}, R.AMOUNT_OVERFLOW, "quantity", "64-bit"),
    ({"price": "1234567890123456789"}, R.AMOUNT_OVERFLOW, "price", "18 significant digits"),
    ({"executed_at": "2026-11-20T09:30:00.1234Z"}, R.BAD_TIMESTAMP, "executed_at", "millisecond precision"),
    ({"executed_at": "yesterday"}, R.BAD_TIMESTAMP, "executed_at", "'yesterday'"),
    ({"executed_at": "2026-02-30T00:00:00Z"}, R.BAD_TIMESTAMP, "executed_at", "calendar"),
    ({"executed_at": "2026-11-20T09:30:00"}, R.BAD_TIMESTAMP, "executed_at", "zone"),
    ({"lane_hint": "L3"}, R.BAD_LANE_HINT, "lane_hint", "'L3'"),
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_reject_code(tmp_path: Path, config: ClearingConfig, fmt: str) -> None:
    rows = [good(0)]
    for i, (changes, *_rest) in enumerate(BAD_ROWS, start=1):
        rows += [good(i, **changes), good(1000 + i)]
    table, rejects, _ = read(write(tmp_path / f"t.{fmt}", rows), config)
    assert table.column("trade_id").to_pylist() == ["T00000"] + [
        f"T{1000 + i:05d}" for i in range(1, len(BAD_ROWS) + 1)
    ]
    by_row = {r.row: r for r in rejects}
    assert len(by_row) == len(BAD_ROWS) == len(rejects)
    for i, (changes, code, field, text) in enumerate(BAD_ROWS, start=1):
        reject = by_row[2 * i]  # the good first row is row 1; bad rows are every other row after it
        assert (reject.code, reject.field) == (code, field), (changes, reject)
        assert text in reject.reason, (changes, reject.reason)
        expected_id = None if field == "trade_id" else f"T{i:05d}"
        assert reject.input_id == expected_id


def test_reason_truncates_long_values(tmp_path: Path, config: ClearingConfig) -> None:
    _, rejects, _ = read(write(tmp_path / "t.csv", [good(1, buyer="X" * 60)]), config)
    assert rejects[0].code is R.UNKNOWN_PARTICIPANT
    assert "'" + "X" * 40 + "'…" in rejects[0].reason and "X" * 41 not in rejects[0].reason


# ---------------------------------------------------------------------------------------
# precedence and strictness
# ---------------------------------------------------------------------------------------

PRECEDENCE: list[tuple[dict[str, Any], RejectCode, str]] = [
    ({"buyer": "", "quantity": "x", "executed_at": "never"}, R.MISSING_FIELD, "buyer"),
    ({"trade_id": "a b", "symbol": "NOPE"}, R.BAD_ID, "trade_id"),
    ({"symbol": "DOGE/USD", "seller": "MM-ALPHA"}, R.UNKNOWN_SYMBOL, "symbol"),
    ({"buyer": "NOBODY", "seller": "NOBODY"}, R.UNKNOWN_PARTICIPANT, "buyer"),
    ({"seller": "MM-ALPHA", "quantity": "x"}, R.SELF_TRADE, "seller"),
    ({"quantity": "0.000000001", "price": "x"}, R.BAD_DECIMAL, "price"),  # 106 before 107
    ({"quantity": "0", "price": "1.1234567890123"}, R.PRECISION_EXCEEDED, "price"),
    ({"quantity": "x", "price": "y"}, R.BAD_DECIMAL, "quantity"),
    ({"quantity": "0.0000000000000000001"}, R.PRECISION_EXCEEDED, "quantity"),  # too many digits too
    ({"price": "0", "executed_at": "x", "lane_hint": "L9"}, R.NON_POSITIVE, "price"),
    ({"executed_at": "x", "lane_hint": "L9"}, R.BAD_TIMESTAMP, "executed_at"),
]


@pytest.mark.parametrize(("changes", "code", "field"), PRECEDENCE)
def test_first_failure_wins(
    tmp_path: Path, config: ClearingConfig, changes: dict[str, Any], code: RejectCode, field: str
) -> None:
    _, rejects, _ = read(write(tmp_path / "t.csv", [good(1, **changes)]), config)
    assert [(r.code, r.field, r.row) for r in rejects] == [(code, field, 1)]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1.", R.BAD_DECIMAL),
        (".5", R.BAD_DECIMAL),
        ("+1", R.BAD_DECIMAL),
        ("1e3", R.BAD_DECIMAL),
        (" 1", R.BAD_DECIMAL),
        ("1 ", R.BAD_DECIMAL),
        ("1,5", R.BAD_DECIMAL),
        ("0010", R.BAD_DECIMAL),
        ("０", R.BAD_DECIMAL),
        ("１.5", R.BAD_DECIMAL),
        ("NaN", R.BAD_DECIMAL),
        ("0x10", R.BAD_DECIMAL),
        ("0.000000001", R.PRECISION_EXCEEDED),
        ("0.00000000", R.NON_POSITIVE),
    ],
)
def test_decimal_strictness(tmp_path: Path, config: ClearingConfig, text: str, code: RejectCode) -> None:
    _, rejects, _ = read(write(tmp_path / "t.csv", [good(1, quantity=text)]), config)
    assert [(r.code, r.field) for r in rejects] == [(code, "quantity")]


# ---------------------------------------------------------------------------------------
# timestamps
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T09:30:00Z", "2026-11-20T09:30:00+00:00"),
        ("2026-11-20T11:30:00+02:00", "2026-11-20T09:30:00+00:00"),
        ("2026-11-20T04:00:00.5-05:30", "2026-11-20T09:30:00.500+00:00"),
        ("2026-11-20T09:30:00.125Z", "2026-11-20T09:30:00.125+00:00"),
        ("2026-11-20t09:30:00.12z", "2026-11-20T09:30:00.120+00:00"),
        ("2024-02-29T23:59:59.999Z", "2024-02-29T23:59:59.999+00:00"),
        ("1795167000125", "2026-11-20T09:30:00.125+00:00"),
        ("946684800000", "2000-01-01T00:00:00+00:00"),
    ],
)
def test_timestamps_parse_to_utc_ms(tmp_path: Path, config: ClearingConfig, text: str, expected: str) -> None:
    table, rejects, _ = read(write(tmp_path / "t.csv", [good(1, executed_at=text)]), config)
    assert rejects == []
    assert table.column("executed_at_ms")[0].as_py() == int(
        datetime.fromisoformat(expected).timestamp() * 1000
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-11-20T09:30:00.1234Z", "millisecond precision"),
        ("2026-11-20T09:30:00.000001+00:00", "millisecond precision"),
        ("2026-11-20 09:30:00Z", "RFC 3339"),
        ("2026-11-20T09:30Z", "RFC 3339"),
        ("2026-11-20", "RFC 3339"),
        ("garbage", "RFC 3339"),
        ("-5", "RFC 3339"),
        ("1795167000125.5", "RFC 3339"),
        ("2023-02-29T00:00:00Z", "calendar"),
        ("2026-11-20T24:00:00Z", "calendar"),
        ("2026-11-20T23:59:60Z", "calendar"),
        ("2026-13-01T00:00:00Z", "calendar"),
        ("2026-11-20T09:30:00+24:00", "calendar"),
        ("1969-12-31T23:59:59Z", "outside"),
        ("999999999999999999", "outside"),
        ("0", "outside the accepted range 2000-01-01T00:00:00.000Z .. 2100-01-01T00:00:00.000Z"),
        ("1999-12-31T23:59:59.999Z", "outside the accepted range"),
        ("9999-12-31T23:59:59Z", "outside the accepted range"),
        ("2100-01-01T00:00:00Z", "outside the accepted range"),
    ],
)
def test_bad_timestamps(tmp_path: Path, config: ClearingConfig, text: str, why: str) -> None:
    _, rejects, _ = read(write(tmp_path / "t.csv", [good(1, executed_at=text)]), config)
    assert [(r.code, r.field) for r in rejects] == [(R.BAD_TIMESTAMP, "executed_at")]
    assert why in rejects[0].reason


def test_parquet_typed_columns(tmp_path: Path, config: ClearingConfig) -> None:
    """decimal128 quantity/price keep their scale; timestamp and int64 executed_at work."""
    n = 4
    table = pa.table(
        {
            "trade_id": [f"P{i}" for i in range(n)],
            "venue": ["XCL"] * n,
            "symbol": ["BTC/USD", "BTC/USD", "EUR/USD", "BTC/USD"],
            "buyer": ["MM-ALPHA"] * n,
            "seller": ["RTL-0001"] * n,
            "quantity": pa.array(
                [Decimal("1.5"), Decimal("0.00000001"), Decimal("2"), Decimal("-1")],
                type=pa.decimal128(18, 8),
            ),
            "price": pa.array(
                [Decimal("65000.12"), Decimal("1"), Decimal("1.08"), Decimal("5")], type=pa.decimal128(20, 2)
            ),
            "executed_at": pa.array(
                [T_MS * 1000, T_MS * 1000 + 1000, T_MS * 1000, T_MS * 1000 + 1],
                type=pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    pq.write_table(table, tmp_path / "typed.parquet")
    got, rejects, _ = read(tmp_path / "typed.parquet", config)
    rows = got.to_pylist()
    assert [(r["qty_mantissa"], r["qty_exp"], r["price_mantissa"], r["price_exp"]) for r in rows] == [
        (150_000_000, 8, 6_500_012, 2),
        (1, 8, 100, 2),
    ]
    assert [r["executed_at_ms"] for r in rows] == [T_MS, T_MS + 1]
    # EUR has scale 2: "2.00000000" carries 8 decimals and is refused, never silently rounded.
    assert [(r.row, r.code) for r in rejects] == [(3, R.PRECISION_EXCEEDED), (4, R.NON_POSITIVE)]

    ints = table.set_column(7, "executed_at", pa.array([T_MS] * n, type=pa.int64())).slice(0, 2)
    pq.write_table(ints, tmp_path / "ints.parquet")
    got, rejects, _ = read(tmp_path / "ints.parquet", config)
    assert rejects == [] and got.column("executed_at_ms").to_pylist() == [T_MS, T_MS]


def test_parquet_float_columns_are_refused(tmp_path: Path, config: ClearingConfig) -> None:
    table = pa.table({c: [good()[c]] for c in INPUT_TRADE_COLUMNS}).set_column(5, "quantity", pa.array([0.5]))
    pq.write_table(table, tmp_path / "f.parquet")
    with pytest.raises(IngestError) as err:
        iter_input(tmp_path / "f.parquet", config)
    assert err.value.code == "BAD_COLUMN_TYPE" and err.value.column == "quantity"


# ---------------------------------------------------------------------------------------
# row numbers, chunking, file errors
# ---------------------------------------------------------------------------------------


def test_csv_row_numbers_survive_blank_and_malformed_lines(tmp_path: Path, config: ClearingConfig) -> None:
    path = write(tmp_path / "t.csv", [good(1), good(2), good(3, buyer="NOBODY"), good(4)])
    lines = path.read_text().splitlines()
    # header, row 1, row 2 (malformed), row 3 (blank), row 4 (NOBODY), row 5
    lines[2] = "T00002,XCL,BTC/USD"
    lines.insert(3, "")
    path.write_text("\n".join(lines) + "\n\n")
    table, rejects, _ = read(path, config, chunk_rows=2)
    assert table.column("trade_id").to_pylist() == ["T00001", "T00004"]
    assert sorted((r.row, r.code) for r in rejects) == [(2, R.UNREADABLE_ROW), (4, R.UNKNOWN_PARTICIPANT)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_chunking(tmp_path: Path, config: ClearingConfig, fmt: str) -> None:
    rows = [good(i) for i in range(1, 11)]
    rows[4]["quantity"] = "bad"
    _, rejects, batches = read(write(tmp_path / f"t.{fmt}", rows), config, chunk_rows=3)
    chunks = [b.trades for b in batches if b.trades is not None]
    assert [(c.first_row, c.rows_read, c.table.num_rows) for c in chunks] == [
        (1, 3, 3),
        (4, 3, 2),
        (7, 3, 3),
        (10, 1, 1),
    ]
    assert [(r.row, r.input_id) for r in rejects] == [(5, "T00005")]


def test_jsonl_mixed_events_keep_file_order(tmp_path: Path, config: ClearingConfig) -> None:
    lines: list[Any] = [
        {
            "type": "collateral_deposit",
            "deposit_id": "D1",
            "participant": "MM-ALPHA",
            "asset": "USD",
            "amount": "1000",
        },
        good(1),
        {"type": "trade", **good(2)},
        {
            "type": "payment",
            "payment_id": "P1",
            "payer": "RTL-0001",
            "payee": "BRK-NORTH",
            "asset": "USD",
            "amount": "12.50",
        },
        {"type": "price_mark", "mark_id": "M1", "asset": "BTC", "mark_usd": "66000"},
        good(3),
        "not json {",
        {
            "type": "config_change",
            "change_id": "C1",
            "changes": {"participants": {"RTL-0001": {"credit_limit_usd": "1"}}},
        },
        {
            "type": "collateral_withdrawal",
            "withdrawal_id": "W1",
            "participant": "MM-ALPHA",
            "asset": "USD",
            "amount": "1",
        },
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    _, rejects, batches = read(path, config)
    shape = [
        ("trades", b.trades.table.column("trade_id").to_pylist())
        if b.trades
        else ("events", [type(e).__name__ for e in b.events])
        for b in batches
    ]
    assert shape == [
        ("events", ["CollateralDeposit"]),
        ("trades", ["T00001", "T00002"]),
        ("events", ["Payment", "PriceMark"]),
        ("trades", ["T00003"]),
        ("events", ["ConfigChange", "CollateralWithdrawal"]),
    ]
    assert [(r.row, r.code) for r in rejects] == [(7, R.BAD_JSON)]
    assert batches[1].trades is not None and batches[1].trades.first_row == 2
    event = batches[2].events[0]
    assert isinstance(event, Payment) and event.amount == "12.50"
    assert isinstance(batches[2].events[1], PriceMark)


@pytest.mark.parametrize(
    ("line", "code", "field"),
    [
        ({**good(1), "quantity": 0.5}, R.BAD_DECIMAL, "quantity"),
        ({**good(1), "price": 65000}, R.BAD_DECIMAL, "price"),
        ({**good(1), "buyer": 7}, R.BAD_ID, "buyer"),
        ({**good(1), "executed_at": 1.5}, R.BAD_TIMESTAMP, "executed_at"),
        ({**good(1), "executed_at": True}, R.BAD_TIMESTAMP, "executed_at"),
        ({**good(1), "v": 2}, R.BAD_SCHEMA_VERSION, "v"),
        ({"type": "refund", "id": "X"}, R.UNKNOWN_EVENT_TYPE, "type"),
        ([1, 2], R.BAD_JSON, "-"),
        (
            {
                "type": "payment",
                "payment_id": "P1",
                "payer": "RTL-0001",
                "payee": "BRK-NORTH",
                "asset": "USD",
                "amount": 5,
            },
            R.BAD_DECIMAL,
            "amount",
        ),
        (
            {
                "type": "payment",
                "payment_id": "P1",
                "payer": "RTL-0001",
                "payee": "BRK-NORTH",
                "asset": "USD",
                "amount": "1.005",
            },
            R.PRECISION_EXCEEDED,
            "amount",
        ),
        (
            {
                "type": "payment",
                "payment_id": "P1",
                "payer": "RTL-0001",
                "payee": "RTL-0001",
                "asset": "USD",
                "amount": "1",
            },
            R.SELF_TRADE,
            "payee",
        ),
        (
            {
                "type": "payment",
                "payment_id": "P1",
                "payer": "RTL-0001",
                "payee": "BRK-NORTH",
                "asset": "DOGE",
                "amount": "1",
            },
            R.UNKNOWN_ASSET,
            "asset",
        ),
        (
            {
                "type": "payment",
                "payment_id": "P1",
                "payer": "RTL-0001",
                "payee": "BRK-NORTH",
                "asset": "USD",
                "amount": "1",
                "lane_hint": "L7",
            },
            R.BAD_LANE_HINT,
            "lane_hint",
        ),
        (
            {"type": "payment", "payment_id": "P1", "payer": "RTL-0001", "asset": "USD", "amount": "1"},
            R.MISSING_FIELD,
            "payee",
        ),
        (
            {
                "type": "collateral_deposit",
                "deposit_id": "D 1",
                "participant": "MM-ALPHA",
                "asset": "USD",
                "amount": "1",
            },
            R.BAD_ID,
            "deposit_id",
        ),
        (
            {
                "type": "collateral_deposit",
                "deposit_id": "D1",
                "participant": "HOUSE",
                "asset": "USD",
                "amount": "1",
            },
            R.UNKNOWN_PARTICIPANT,
            "participant",
        ),
        (
            {
                "type": "collateral_deposit",
                "deposit_id": "D1",
                "participant": "MM-ALPHA",
                "asset": "USD",
                "amount": "0",
            },
            R.NON_POSITIVE,
            "amount",
        ),
        (
            {"type": "price_mark", "mark_id": "M1", "asset": "BTC", "mark_usd": "66000", "extra": 1},
            R.UNREADABLE_ROW,
            "extra",
        ),
        (
            {"type": "price_mark", "mark_id": "M1", "asset": "BTC", "mark_usd": "66000", "v": 3},
            R.BAD_SCHEMA_VERSION,
            "v",
        ),
    ],
)
def test_jsonl_rejects(
    tmp_path: Path, config: ClearingConfig, line: Any, code: RejectCode, field: str
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(good(9)) + "\n" + json.dumps(line) + "\n")
    table, rejects, _ = read(path, config)
    assert table.column("trade_id").to_pylist() == ["T00009"]
    assert [(r.row, r.code, r.field) for r in rejects] == [(2, code, field)]
    if code is R.BAD_DECIMAL and field == "quantity":
        assert "must be a decimal string" in rejects[0].reason


def test_file_errors(tmp_path: Path, config: ClearingConfig) -> None:
    with pytest.raises(IngestError) as err:
        iter_input(tmp_path / "missing.csv", config)
    assert err.value.code == "FILE_NOT_FOUND"
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(IngestError) as err:
        iter_input(tmp_path / "t.xlsx", config)
    assert err.value.code == "UNSUPPORTED_FORMAT"
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(IngestError) as err:
        iter_input(tmp_path / "empty.csv", config)
    assert err.value.code == "UNREADABLE_FILE"
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(IngestError) as err:
        iter_input(tmp_path / "junk.parquet", config)
    assert err.value.code == "UNREADABLE_FILE"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_missing_column_is_named(tmp_path: Path, config: ClearingConfig, fmt: str) -> None:
    columns = (*(c for c in COLUMNS if c != "price"), "venue_extra")
    path = write(tmp_path / f"t.{fmt}", [good(1)], columns=columns)
    with pytest.raises(IngestError) as err:
        iter_input(path, config)  # raised before the first batch
    assert err.value.code == "MISSING_COLUMN" and err.value.column == "price" and "'price'" in str(err.value)


def test_extra_columns_are_ignored_and_gzip_is_read(tmp_path: Path, config: ClearingConfig) -> None:
    import gzip

    columns = (*COLUMNS, "fee_note", "maker_order_id")
    rows = [good(1, fee_note="anything, really", maker_order_id="0010")]
    plain = write(tmp_path / "t.csv", rows, columns=columns)
    zipped = tmp_path / "t.csv.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, zipped):
        table, rejects, _ = read(path, config)
        assert rejects == [] and table.column_names == TRADE_CHUNK_SCHEMA.names


def test_write_rejects_appends_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "rejects.jsonl"
    first = [Reject(R.BAD_ID, "trade_id", "bad", row=3, input_id=None)]
    second = [
        Reject(R.SELF_TRADE, "seller", "same", row=9, input_id="T9"),
        Reject(R.BAD_JSON, "-", "x", row=10),
    ]
    assert write_rejects(out, first) == 1
    assert write_rejects(out, second) == 2
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [r.to_dict() for r in first + second]
    assert lines[1] == {
        "row": 9,
        "id": "T9",
        "code": 105,
        "error": "self_trade",
        "field": "seller",
        "reason": "same",
    }


# ---------------------------------------------------------------------------------------
# the real trade tape
# ---------------------------------------------------------------------------------------

TAPE = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "trades"


def tape_config() -> ClearingConfig:
    raw = example_raw()
    raw["assets"] = [
        {"code": "USD", "scale": 2, "mark_usd": "1"},
        {"code": "XRP", "scale": 8, "mark_usd": "0.27"},
        {"code": "ETH", "scale": 8, "mark_usd": "190"},
    ]
    return parse_config(raw, source="tape-test")


def test_real_binance_tape_is_accepted_exactly(tmp_path: Path) -> None:
    source = TAPE / "binance_XRPETH_aggtrades_2019-10-11_to_2019-10-13.csv"
    if not source.exists():
        pytest.fail(f"real trade tape missing: {source}")
    text = dict.fromkeys(
        ["agg_trade_id", "timestamp_ms", "price_eth", "amount_xrp", "taker_side"], pa.string()
    )
    tape = pacsv.read_csv(source, convert_options=pacsv.ConvertOptions(column_types=text))
    taker_buys = pc.equal(tape["taker_side"], "buy")
    converted = pa.table(
        {
            "trade_id": pc.binary_join_element_wise("BN-", tape["agg_trade_id"], ""),
            "venue": pa.array(["BINANCE"] * tape.num_rows),
            "symbol": pa.array(["XRP/ETH"] * tape.num_rows),
            "buyer": pc.if_else(taker_buys, "RTL-0001", "MM-ALPHA"),
            "seller": pc.if_else(taker_buys, "MM-ALPHA", "RTL-0001"),
            "quantity": tape["amount_xrp"],
            "price": tape["price_eth"],
            "executed_at": tape["timestamp_ms"],
        }
    )
    path = tmp_path / "tape.csv"
    pacsv.write_csv(converted, path)
    table, rejects, _ = read(path, tape_config())
    assert rejects == []
    assert table.num_rows == 12_477
    qty = [
        decimal_of(m, e)
        for m, e in zip(table["qty_mantissa"].to_pylist(), table["qty_exp"].to_pylist(), strict=True)
    ]
    price = [
        decimal_of(m, e)
        for m, e in zip(table["price_mantissa"].to_pylist(), table["price_exp"].to_pylist(), strict=True)
    ]
    assert sum(qty) == Decimal("5545735")
    assert sum(p * q for p, q in zip(price, qty, strict=True)) == Decimal("8182.56026789")
    assert table["executed_at_ms"][0].as_py() == 1_570_752_011_620
    assert table["executed_at_ms"][-1].as_py() == 1_570_965_568_844
    assert pc.sum(pc.equal(table["buyer"].cast(pa.string()), "RTL-0001")).as_py() == 6_524


# ---------------------------------------------------------------------------------------
# property: any quantity text parses exactly or is rejected, never crashes
# ---------------------------------------------------------------------------------------

QUANTITY_TEXT = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789.-+eE ,_０", max_size=24),
    st.from_regex(r"(0|[1-9][0-9]{0,20})(\.[0-9]{0,12})?", fullmatch=True),
    st.decimals(min_value=0, max_value=10**12, places=8, allow_nan=False).map(str),
)


def check_quantities(
    texts: list[str], config: ClearingConfig, writer: Callable[[Path, list[dict[str, Any]]], Path]
) -> None:
    rows = [good(i, quantity=text) for i, text in enumerate(texts, start=1)]
    with tempfile.TemporaryDirectory() as tmp:
        table, rejects, _ = read(writer(Path(tmp) / "q.parquet", rows), config)
    rejected = {r.row for r in rejects}
    assert len(rejected) == len(rejects)
    accepted = table.to_pylist()
    assert len(accepted) + len(rejected) == len(texts)
    kept = [i for i in range(1, len(texts) + 1) if i not in rejected]
    for row, out in zip(kept, accepted, strict=True):
        text = texts[row - 1]
        value = decimal_of(out["qty_mantissa"], out["qty_exp"])
        assert str(value) == text or format(value, "f") == text, (text, value)
        assert value > 0 and out["qty_exp"] <= 8
    assert all(r.field == "quantity" for r in rejects), rejects


@settings(max_examples=60, deadline=None)
@given(st.lists(QUANTITY_TEXT, min_size=1, max_size=50))
def test_random_quantities_parse_exactly_or_reject(texts: list[str]) -> None:
    config = parse_config(example_raw(), source="property")
    check_quantities(texts, config, write)


# ---------------------------------------------------------------------------------------
# fast paths agree with the slow ones
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dictionary", [False, True])
def test_repeated_values_parse_once_per_value_and_scale(
    tmp_path: Path, config: ClearingConfig, dictionary: bool
) -> None:
    """Big chunks of repeating text take the deduplicated path (plain strings via sampling,
    Parquet dictionaries directly); the same text under assets of different scales must still
    be judged per row."""
    n = 12_000
    symbols = ["BTC/USD", "EUR/USD", "ETH/BTC"] * (n // 3)
    quantities = ["1.001", "2", "0.5", "x", "0"] * (n // 5)
    prices = ["65000.12", "1.08", "0.05", "1.5"] * (n // 4)
    columns = {
        "trade_id": [f"T{i}" for i in range(n)],
        "venue": ["XCL"] * n,
        "symbol": symbols,
        "buyer": ["MM-ALPHA"] * n,
        "seller": ["RTL-0001"] * n,
        "quantity": quantities,
        "price": prices,
        "executed_at": [T_TEXT] * n,
        "exch_batch_id": [f"EB-{i // 100}" for i in range(n)],
    }
    table = pa.table(
        {
            k: pa.array(v).dictionary_encode()
            if dictionary and k not in ("trade_id", "executed_at")
            else pa.array(v)
            for k, v in columns.items()
        }
    )
    pq.write_table(table, tmp_path / "rep.parquet")
    got, rejects, _ = read(tmp_path / "rep.parquet", config, chunk_rows=n)
    expected_rejects = {}
    for i in range(n):
        q, sym = quantities[i], symbols[i]
        if q == "x":
            expected_rejects[i + 1] = R.BAD_DECIMAL
        elif q == "1.001" and sym == "EUR/USD":
            expected_rejects[i + 1] = R.PRECISION_EXCEEDED
        elif q == "0":
            expected_rejects[i + 1] = R.NON_POSITIVE
    assert {r.row: r.code for r in rejects} == expected_rejects
    kept = [i for i in range(n) if i + 1 not in expected_rejects]
    assert got.column("trade_id").to_pylist() == [f"T{i}" for i in kept]
    assert [
        decimal_of(m, e)
        for m, e in zip(got["qty_mantissa"].to_pylist(), got["qty_exp"].to_pylist(), strict=True)
    ] == [Decimal(quantities[i]) for i in kept]
    exact = {"65000.12": (6500012, 2), "1.08": (108, 2), "0.05": (5, 2), "1.5": (15, 1)}
    assert list(zip(got["price_mantissa"].to_pylist(), got["price_exp"].to_pylist(), strict=True)) == [
        exact[prices[i]] for i in kept
    ]
    assert got.column("exch_batch_id").to_pylist() == [f"EB-{i // 100}" for i in kept]
    assert len(got.column("symbol").chunk(0).dictionary) <= 3


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.text(max_size=70), st.text(alphabet=" !~\x7f\x20\x21abc", max_size=66)),
        min_size=1,
        max_size=30,
    )
)
def test_fast_id_check_matches_id_pattern(values: list[str | None]) -> None:
    from clearlane.core.model.inputs import ID_PATTERN
    from clearlane.node.intake.validate import to_mask, valid_ids

    array = pa.array(values, type=pa.string())
    for part in (array, array.slice(1)):
        assert (valid_ids(part) == to_mask(pc.match_substring_regex(part, ID_PATTERN))).all()


def test_jsonl_accepts_the_single_message_field_name(tmp_path: Path, config: ClearingConfig) -> None:
    line = {k: v for k, v in good(1).items() if k != "executed_at"} | {
        "type": "trade",
        "v": 1,
        "executed_at_ms": T_MS,
    }
    (tmp_path / "t.ndjson").write_text(json.dumps(line) + "\n")
    table, rejects, _ = read(tmp_path / "t.ndjson", config)
    assert rejects == [] and table.column("executed_at_ms").to_pylist() == [T_MS]


# ---------------------------------------------------------------------------------------
# the id grammar (core/model/ids.py): every id is one path segment of every route
# ---------------------------------------------------------------------------------------
OUTSIDE_THE_GRAMMAR = [
    "a/b",
    "a?b",
    "a#b",
    "a%2F",
    "a\\b",
    'a"b',
    "a<b",
    "a{b",
    "a|b",
    "a^b",
    "a`b",
    "é1",
    "a[b",
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_ids_outside_the_grammar_are_bad_ids(tmp_path: Path, config: ClearingConfig, fmt: str) -> None:
    rows = [good(0, trade_id="A-._~!$&'()*+,;=:@z")]
    rows += [good(i, trade_id=bad) for i, bad in enumerate(OUTSIDE_THE_GRAMMAR, start=1)]
    rows += [good(99, venue="X/CL"), good(98, exch_batch_id="EB/1")]
    table, rejects, _ = read(write(tmp_path / f"t.{fmt}", rows), config)
    assert table.column("trade_id").to_pylist() == ["A-._~!$&'()*+,;=:@z"]
    assert [(r.row, r.code, r.field) for r in rejects] == [
        *[(i + 1, R.BAD_ID, "trade_id") for i in range(1, len(OUTSIDE_THE_GRAMMAR) + 1)],
        (len(OUTSIDE_THE_GRAMMAR) + 2, R.BAD_ID, "venue"),
        (len(OUTSIDE_THE_GRAMMAR) + 3, R.BAD_ID, "exch_batch_id"),
    ]
    assert "characters of A-Z a-z 0-9" in rejects[0].reason


def test_small_event_ids_outside_the_grammar_are_bad_ids(tmp_path: Path, config: ClearingConfig) -> None:
    lines = [
        {
            "type": "payment",
            "payment_id": "P/1",
            "payer": "RTL-0001",
            "payee": "BRK-NORTH",
            "asset": "USD",
            "amount": "1",
        },
        {
            "type": "collateral_deposit",
            "deposit_id": "D?1",
            "participant": "RTL-0001",
            "asset": "USD",
            "amount": "1",
        },
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    _, rejects, _ = read(path, config)
    assert [(r.code, r.field) for r in rejects] == [(R.BAD_ID, "payment_id"), (R.BAD_ID, "deposit_id")]
    assert all("characters of A-Z a-z 0-9" in r.reason for r in rejects)


@given(st.text(max_size=70))
def test_the_input_id_grammar_and_the_fast_edge_check_agree(text: str) -> None:
    from clearlane.core.model import ids
    from clearlane.node.intake.validate import valid_ids

    assert bool(valid_ids(pa.array([text], pa.string()))[0]) == ids.is_input_id(text)


def test_a_file_is_held_to_a_span_around_its_first_trade(tmp_path: Path) -> None:
    """A recorded day replays whole, whatever its date; a stray time far from the file's first
    in-range trade is refused (it would move the engine clock); the span is configurable."""
    raw = example_raw()
    raw["intake"] = {"executed_at_file_span_ms": 86_400_000}
    config = parse_config(raw)
    rows = [
        good(1, executed_at="2003-05-01T00:00:00Z"),  # an old recorded day: the anchor
        good(2, executed_at="2003-05-01T23:59:59Z"),
        good(3, executed_at="2003-04-30T00:00:00Z"),  # one day before: still inside
        good(4, executed_at="2003-05-02T00:00:00.001Z"),  # just past the span
        good(5, executed_at="2099-01-01T00:00:00Z"),
    ]
    table, rejects, _ = read(write(tmp_path / "t.csv", rows), config, chunk_rows=2)
    assert table.column("trade_id").to_pylist() == ["T00001", "T00002", "T00003"]
    assert [(r.row, r.code) for r in rejects] == [(4, R.BAD_TIMESTAMP), (5, R.BAD_TIMESTAMP)]
    assert (
        "more than 86400000 ms from this input's first trade (2003-05-01T00:00:00.000Z)" in rejects[0].reason
    )


def test_a_lone_surrogate_in_a_json_line_is_refused_as_bad_json(
    tmp_path: Path, config: ClearingConfig
) -> None:
    """``"\\ud800"`` alone is valid JSON syntax but no character: no text column can hold it
    (UTF-8 has no encoding for it), so its line is refused as bad JSON, naming the reason, and
    the other lines go on (it stopped `clearlane clear` with a UnicodeEncodeError). A surrogate
    pair is one character and is read."""
    lone = json.dumps(good(2)).replace('"T00002"', '"T0000\\ud8002"')
    pair = json.dumps(good(3)).replace('"XCL"', '"XCL\\ud83d\\ude00"')
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([json.dumps(good(1)), lone, pair]) + "\n")
    table, rejects, _ = read(path, config)
    bad_json = [r for r in rejects if r.code == R.BAD_JSON]
    assert [(r.row, r.field) for r in bad_json] == [(2, "-")]
    assert "lone surrogate" in bad_json[0].reason
    assert "T00001" in table.column("trade_id").to_pylist()
    assert all(r.row != 3 or r.code != R.BAD_JSON for r in rejects)
