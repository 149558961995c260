"""The per-trade event columns of Layer-1 flows (a new L1 group's view) take a short path: the
same null pool and batch columns the general path gives an L1 row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from clearlane.node.projections.readmodel import _trade_columns


def _table(seqs: list[int]) -> pa.Table:
    n = len(seqs)
    return pa.table(
        {
            "flow_id": pa.array([f"T{i}" for i in range(n)]),
            "kind": pa.array([0] * n, pa.int8()),
            "buyer": pa.array(["B"] * n),
            "seller": pa.array(["S"] * n),
            "batch_seq": pa.array(seqs, pa.int64()),
        }
    )


def test_layer1_rows_get_the_columns_the_general_path_gives_them() -> None:
    pools = ["fast", "retail"]
    mixed = _trade_columns(_table([3, -1, 7]), pa.array(["L2", "L1", "L2"]), pools, np.array([0, -1, 1]))
    only_l1 = _trade_columns(_table([-1, -1]), pa.array(["L1", "L1"]), pools, np.array([-1, -1]))
    assert mixed.column("batch_id").to_pylist() == ["fast-00000003", None, "retail-00000007"]
    assert mixed.column("pool").to_pylist() == ["fast", None, "retail"]
    assert only_l1.schema == mixed.schema
    assert only_l1.column("pool").to_pylist() == only_l1.column("batch_id").to_pylist() == [None, None]
    assert only_l1.slice(0, 1).column("pool").equals(mixed.slice(1, 1).column("pool"))
    assert only_l1.slice(0, 1).column("batch_id").equals(mixed.slice(1, 1).column("batch_id"))
