"""multirow owns SQLite's bulk insert: many rows in one ``INSERT ... VALUES (...), (...)``.

``sqlite3``'s ``executemany`` runs one ``sqlite3_step`` per row and lets go of the interpreter
lock around each; the writer thread then waits to take the lock back from the engine's thread
once per row. Measured on the 2-vCPU machine (``scripts/bench_sqlite_insert.py``: 54,000
outbox-like rows, one transaction): 0.38–0.44 s by ``executemany``, 0.20–0.21 s in statements of
500 rows; beside a thread running Python (``--contended``), 5,400 rows took 15.2 s against
0.10 s — the convoy the writer thread met on every row it wrote while the engine's thread ran
(issue 18, fifteenth session; docs/PERFORMANCE.md).

The rows go in, in order, with the same values bound the same way: the same table, the same
autoincrement ids, the same constraint errors (a statement is all or nothing, and a group's
transaction is anyway). Only plain ``INSERT INTO t (c1, ...) VALUES (?, ...)`` statements are
rewritten; anything else is left to ``executemany``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

ROWS_PER_STATEMENT = 500
"""At most this many rows a statement: 200–500 was fastest (1,000 and 4,000 slower: the
statement's text and its parse grow, and its cached plan is not reused)."""

_PLAIN_INSERT = re.compile(r"^(INSERT INTO \w+ \([\w, ]+\) VALUES )(\(\?(?:, \?)*\))$")


def insert_rows(cursor: Any, sql: str, rows: Sequence[Sequence[Any]], max_variables: int) -> bool:
    """Execute ``sql`` (a plain INSERT) for every row of ``rows``, many rows a statement; False
    (nothing executed) when ``sql`` is not a plain INSERT. A row of the wrong width raises as
    ``executemany`` would, before anything is written."""
    match = _PLAIN_INSERT.match(sql)
    if match is None:
        return False
    head, group = match.group(1), match.group(2)
    width = group.count("?")
    widths = set(map(len, rows))
    if widths - {width}:
        raise ValueError(f"{sql!r}: rows of {sorted(widths - {width})} values for {width} columns")
    per = max(1, min(ROWS_PER_STATEMENT, max_variables // width))
    full = head + ", ".join([group] * per)
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        text = full if len(chunk) == per else head + ", ".join([group] * len(chunk))
        cursor.execute(text, list(itertools.chain.from_iterable(chunk)))
    return True
