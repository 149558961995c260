"""intake: a gateway's decoded submission (``decoded_batch``) is judged exactly as its JSON rows.

Whatever mix of decoded and JSON submissions one tick holds, each submission gets the errors
it would get as JSON rows, and each accepted submission's slice of the table holds the same
rows (the decoded ones come first in the table: ``Intake.trades``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.config.model import load_config
from clearlane.node.intake.rows import DECODED_SCHEMA, Intake, IntakeInvariantError, decoded_batch
from tests.service_support import EXAMPLE, trade_row

AT = int(datetime.fromisoformat("2026-11-20T14:03:07.250+00:00").timestamp() * 1000)
INTAKE = Intake(load_config(EXAMPLE))


def _row(i: int, flaw: str) -> dict[str, Any]:
    row = trade_row(i, executed_at=AT + i)
    if flaw == "quantity":
        row["quantity"] = "-1"
    elif flaw == "number":
        row["price"] = 65000.12  # a JSON number where a decimal string is required
    elif flaw == "party":
        row["seller"] = "NOBODY"
    elif flaw == "symbol":
        row["symbol"] = "BTCUSD"
    elif flaw == "missing":
        del row["venue"]
    elif flaw == "ahead":
        row["executed_at"] = AT + 10**9
    elif flaw == "iso":
        row["executed_at"] = "2026-11-20T14:03:07.250Z"
    elif flaw == "hint":
        row["lane_hint"] = "retail"
    elif flaw == "batch":
        row["exch_batch_id"] = "X-1"
    elif flaw == "null":
        row["exch_batch_id"] = None
    elif flaw == "float time":
        row["executed_at"] = float(AT)  # Arrow would take 2.0 for an int64: not decoded
    elif flaw == "bool time":
        row["executed_at"] = True
    elif flaw == "int venue":
        row["venue"] = 3
    elif flaw == "list venue":
        row["venue"] = ["XCL"]
    elif flaw == "extra":
        row["note"] = "an unknown key: ignored on every path"
    return row


FLAWS = [
    "",
    "",
    "",
    "quantity",
    "number",
    "party",
    "symbol",
    "missing",
    "ahead",
    "iso",
    "hint",
    "batch",
    "null",
]


@st.composite
def _submissions(draw: st.DrawFn) -> list[tuple[list[dict[str, Any]], bool]]:
    count = draw(st.integers(1, 5))
    out = []
    n = 0
    for _ in range(count):
        size = draw(st.integers(1, 4))
        rows = [_row(n + i, draw(st.sampled_from(FLAWS))) for i in range(size)]
        n += size
        out.append((rows, draw(st.booleans())))
    return out


@settings(max_examples=150, deadline=None)
@given(_submissions())
def test_decoded_submissions_are_judged_as_their_rows(subs: list[tuple[list[dict[str, Any]], bool]]) -> None:
    as_rows = [(rows, AT, "trades") for rows, _ in subs]
    mixed: list[tuple[Any, int, str]] = []
    for rows, decode in subs:
        batch = decoded_batch(rows) if decode else None
        mixed.append((batch if batch is not None else rows, AT, "trades"))
    table_a, errors_a, slices_a = INTAKE.trades(as_rows)
    table_b, errors_b, slices_b = INTAKE.trades(mixed)
    assert errors_b == errors_a
    assert table_b.num_rows == table_a.num_rows
    for (sa, na), (sb, nb) in zip(slices_a, slices_b, strict=True):
        assert na == nb
        assert table_b.slice(sb, nb).to_pylist() == table_a.slice(sa, na).to_pylist()


def test_decoded_batch_only_for_rows_the_fast_columns_take() -> None:
    good = [_row(1, ""), _row(2, "hint"), _row(3, "null")]
    batch = decoded_batch(good)
    assert batch is not None and batch.schema.equals(DECODED_SCHEMA) and batch.num_rows == 3
    assert batch.column("executed_at").to_pylist() == [AT + 1, AT + 2, AT + 3]
    assert batch.column("lane_hint").to_pylist() == [None, "retail", None]
    # Anything the careful path must judge (and name) is left as JSON.
    assert decoded_batch([_row(1, ""), _row(2, "number")]) is None
    assert decoded_batch([_row(1, ""), _row(2, "iso")]) is None
    assert decoded_batch([_row(1, ""), "not an object"]) is None
    assert decoded_batch([{k: v for k, v in _row(1, "").items() if k != "executed_at"}]) is None
    assert decoded_batch([_row(1, "") | {"executed_at": 1 << 70}]) is None


def test_a_decoded_submission_of_another_schema_is_a_bug_not_a_refusal() -> None:
    other = pa.RecordBatch.from_pylist([{"trade_id": "T1"}])
    with pytest.raises(IntakeInvariantError):
        INTAKE.trades([(other, AT, "trades")])
