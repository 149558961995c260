"""receipts: the column-wise step receipts are exactly the one-row builder's receipts."""

from __future__ import annotations

from pathlib import Path

from clearlane.adapters.embedded import open_node
from clearlane.node import receipts
from tests.conftest import EXAMPLE_CONFIG, T0, chunk, trade


def test_step_receipts_equal_flow_receipt_row_by_row(tmp_path: Path) -> None:
    node = open_node(tmp_path / "r.db", EXAMPLE_CONFIG)
    rows = [
        trade(0),  # routed by the rules to a pool
        trade(1, "RTL-0001", "MM-BETA"),
        trade(2, hint="L1"),
        trade(3, hint="fast"),
        trade(4, hint="retail"),
        trade(5, qty=(9_000_000_000_000_000, 0)),  # far past every limit: refused by the engine
        trade(6, "MM-BETA", "RTL-0002", hint="retail"),
    ]
    fx = node.submit("trades", chunk(rows), T0 + 100)
    assert fx is not None
    built = receipts.step_receipts(fx)
    why = {r.input_id: r for r in fx.rejects()}
    expected = {}
    for table in fx.tables():
        for row in table.to_pylist():
            code = int(row["reject_code"] or 0)
            r = why.get(row["flow_id"]) if code else None
            expected[row["flow_id"]] = receipts.flow_receipt(
                row["flow_id"],
                kind=int(row["kind"]),
                state=int(row["state"]),
                lane=row["lane"],
                pool=row["pool"],
                seq=int(row["batch_seq"]),
                received_ms=int(row["received_ms"]),
                code=code,
                field=r.field if r else None,
                reason=r.reason if r else None,
            )
    node.close()
    assert built == expected
    assert [list(v) for v in built.values()] == [list(v) for v in expected.values()]  # key order too
    statuses = {v["status"] for v in built.values()}
    assert "rejected" in statuses and "accepted" in statuses
    assert any(v["batch_id"] for v in built.values()) and any(v["batch_id"] is None for v in built.values())
    # The same receipts as columns (a gateway renders them): the same dicts, in the step's order,
    # whole or sliced anywhere.
    table = receipts.step_receipt_table(fx)
    assert table.schema.equals(receipts.RECEIPT_SCHEMA)
    assert receipts.receipt_dicts(table) == list(built.values())
    assert [list(d) for d in receipts.receipt_dicts(table)] == [list(v) for v in built.values()]
    for start in range(table.num_rows):
        for n in range(table.num_rows - start + 1):
            assert receipts.receipt_dicts(table.slice(start, n)) == list(built.values())[start : start + n]
