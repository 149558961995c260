"""SQLite's one-statement insert (``step_rows.bulk_insert``) stores what ``executemany`` stores:
the same values, of the same storage classes, in the same order (the same autoincrement ids)."""

from __future__ import annotations

import sqlite3
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.adapters.sql.step_rows import (
    BULK_MIN_ROWS,
    INSERTS,
    OUTBOX_SQL,
    REJECTS_SQL,
    bulk_insert,
)

int64 = st.integers(-(2**63), 2**63 - 1)
small = st.integers(-5, 5)
# Text as SQLite gets it from Python: any str without lone surrogates (which neither path binds).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
KINDS = {
    "int": int64 | small,
    "int?": int64 | st.none(),
    "bool": st.booleans(),
    "text": texts,
    "text?": texts | st.none(),
    "blob": st.binary(max_size=8),
    "blob?": st.binary(max_size=8) | st.none(),
    "null": st.none(),
}


def _table(con: sqlite3.Connection, name: str, width: int) -> None:
    columns = ", ".join(f"c{i}" for i in range(width))
    con.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY AUTOINCREMENT, {columns}, tag)")


def _dump(con: sqlite3.Connection, name: str, width: int) -> list[tuple[Any, ...]]:
    cols = ", ".join(f"typeof(c{i}), quote(c{i})" for i in range(width))
    return con.execute(f"SELECT id, {cols}, typeof(tag), tag FROM {name} ORDER BY id").fetchall()


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[tuple[Any, ...]]]:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=4))
    n = draw(st.integers(BULK_MIN_ROWS, BULK_MIN_ROWS + 40))
    rows = [tuple(draw(KINDS[k]) for k in kinds) for _ in range(n)]
    return kinds, rows


@settings(max_examples=150, deadline=None)
@given(tables(), st.booleans())
def test_bulk_insert_stores_what_executemany_stores(
    table: tuple[list[str], list[tuple[Any, ...]]], literal: bool
) -> None:
    kinds, rows = table
    width = len(kinds)
    con = sqlite3.connect(":memory:")
    _table(con, "a", width)
    _table(con, "b", width)
    con.execute("INSERT INTO a (c0, tag) VALUES (1, 'x')")  # ids continue after existing rows
    con.execute("INSERT INTO b (c0, tag) VALUES (1, 'x')")
    names = ", ".join(f"c{i}" for i in range(width))
    tag = ", 'engine'" if literal else ", ?"
    rows = [(*r, 7) for r in rows] if not literal else rows
    sql = f"INSERT INTO {{}} ({names}, tag) VALUES ({', '.join('?' * width)}{tag})"
    con.executemany(sql.format("a"), rows)
    bulk = bulk_insert(sql.format("b"), rows)
    assert bulk is not None
    con.execute(*bulk)
    assert _dump(con, "b", width) == _dump(con, "a", width)


def test_bulk_insert_leaves_what_it_does_not_cover_to_executemany() -> None:
    rows = [(1, "a", b"x")] * BULK_MIN_ROWS
    assert bulk_insert(OUTBOX_SQL, rows[:-1]) is None  # few rows
    assert bulk_insert(OUTBOX_SQL, [(1.5, "a", b"x")] * BULK_MIN_ROWS) is None  # a float
    assert bulk_insert(OUTBOX_SQL, [(2**63, "a", b"x")] * BULK_MIN_ROWS) is None  # beyond int64
    assert bulk_insert(OUTBOX_SQL, [(1, "a", bytearray(b"x"))] * BULK_MIN_ROWS) is None
    assert bulk_insert("UPDATE outbox SET kind = ? WHERE id = ?", [("a", 1)] * BULK_MIN_ROWS) is None
    assert bulk_insert(OUTBOX_SQL, rows) is not None
    # Every insert the store writes in bulk has a shape the rewrite understands.
    for sql, _ in INSERTS:
        assert sql == REJECTS_SQL or "VALUES (?" in sql
        width = sql.split("VALUES (")[1].count("?")
        assert bulk_insert(sql, [(1,) * width] * BULK_MIN_ROWS) is not None, sql
