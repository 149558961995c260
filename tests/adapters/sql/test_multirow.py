"""SQLite's multi-row INSERT (adapters/sql/multirow.py) writes what executemany writes."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.adapters.sql.multirow import insert_rows

_TABLE = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a BIGINT, b TEXT, c BLOB, d REAL, "
    "e BIGINT NOT NULL, UNIQUE (e))"
)
_INSERT = "INSERT INTO t (a, b, c, d, e) VALUES (?, ?, ?, ?, ?)"

_values = st.tuples(
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.booleans()),
    st.one_of(st.none(), st.text(max_size=12)),
    st.one_of(st.none(), st.binary(max_size=12)),
    st.one_of(st.none(), st.floats(allow_nan=False)),
)


def _db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(_TABLE)
    return conn


def _rows_of(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, a, b, c, d, e, typeof(a), typeof(b), typeof(c), typeof(d) FROM t"
    ).fetchall()


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(_values, max_size=40),
    max_variables=st.sampled_from([5, 9, 12, 999, 32766]),
)
def test_same_table_as_executemany(values: list[tuple[Any, ...]], max_variables: int) -> None:
    rows = [(*v, i) for i, v in enumerate(values)]
    one, many = _db(), _db()
    one.execute("INSERT INTO t (a, b, c, d, e) VALUES (1, 'before', NULL, NULL, -1)")  # ids go on from 2
    many.execute("INSERT INTO t (a, b, c, d, e) VALUES (1, 'before', NULL, NULL, -1)")
    one.executemany(_INSERT, rows)
    assert insert_rows(many.cursor(), _INSERT, rows, max_variables) is True
    assert _rows_of(many) == _rows_of(one)


def test_statements_of_many_rows() -> None:
    """1,234 rows of 5 values go in as statements of at most 500 rows (and of the binds allowed)."""
    seen: list[int] = []

    class Counting:
        def __init__(self, cursor: sqlite3.Cursor) -> None:
            self.cursor = cursor

        def execute(self, sql: str, params: list[Any]) -> None:
            seen.append(len(params) // 5)
            self.cursor.execute(sql, params)

    conn = _db()
    rows = [(i, str(i), None, None, i) for i in range(1234)]
    assert insert_rows(Counting(conn.cursor()), _INSERT, rows, 32766)
    assert seen == [500, 500, 234]
    seen.clear()
    conn2 = _db()
    assert insert_rows(Counting(conn2.cursor()), _INSERT, rows[:10], 12)  # 12 binds: 2 rows a statement
    assert seen == [2, 2, 2, 2, 2]
    assert conn.execute("SELECT count(*), min(id), max(id) FROM t").fetchone() == (1234, 1, 1234)


def test_a_failing_row_fails_like_executemany() -> None:
    """A constraint error raises (the caller's transaction then rolls back everything)."""
    rows = [(1, "x", None, None, 7), (2, "y", None, None, 7)]
    with pytest.raises(sqlite3.IntegrityError):
        _db().executemany(_INSERT, rows)
    with pytest.raises(sqlite3.IntegrityError):
        insert_rows(_db().cursor(), _INSERT, rows, 32766)


def test_wrong_width_refused_before_writing() -> None:
    conn = _db()
    with pytest.raises(ValueError, match="5 columns"):
        insert_rows(conn.cursor(), _INSERT, [(1, "x", None, None, 1), (2, "y", None, 2)], 32766)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE t SET a = ? WHERE e = ?",
        "DELETE FROM t WHERE e = ?",
        "INSERT INTO t (a, e) VALUES (1, ?)",
        "INSERT INTO t (a, e) SELECT ?, ?",
    ],
)
def test_other_statements_left_to_executemany(sql: str) -> None:
    conn = _db()
    assert insert_rows(conn.cursor(), sql, [(1, 2), (3, 4)], 32766) is False
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
