"""The flow-id archive (``store/flowids.py``) and the bounded hot tier in front of it.

* contract on SQLite and PostgreSQL: runs are written, an archived (evicted) id is still a
  duplicate, its record is found, and a reopened store (replay) gives the same state root;
* a hypothesis property: an engine whose ids live in the archive (tiny hot tier, tiny runs, a
  Bloom filter small enough to give false positives) decides every duplicate exactly as the
  all-in-memory engine, and ends in the same state root;
* the service: a resubmitted old id is answered idempotently / refused as ``id_conflict``, and
  GET finds an old trade, after both in-memory tiers dropped it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import text

from clearlane.adapters.embedded import open_node
from clearlane.adapters.sql import flowids
from clearlane.adapters.sql.flowids import FlowIdArchive
from clearlane.node.node import Node
from clearlane.node.runtime import RuntimeOptions
from tests.conftest import EXAMPLE_CONFIG, T0, chunk, trade
from tests.service_support import make_service, trade_row

TINY = {"run_ids": 8, "block_ids": 4, "bloom_bits": 64}
PARTIES = ["MM-ALPHA", "MM-BETA", "BRK-NORTH", "RTL-0001"]


def _rows(ids: list[int], at: int) -> list[dict[str, Any]]:
    out = []
    for k, i in enumerate(ids):
        buyer, seller = PARTIES[i % 4], PARTIES[(i + 1) % 4]
        out.append(trade(i, buyer, seller, qty=(1 + i % 7, 4), at=at + k))
    return out


def _submit_steps(node: Node, steps: int, per_step: int) -> None:
    """``steps`` trade steps of ``per_step`` fresh ids each, a second apart (sources c0, c1, …)."""
    for s in range(steps):
        ids = list(range(s * per_step, (s + 1) * per_step))
        node.submit("trades", chunk(_rows(ids, T0 + s * 1000)), T0 + s * 1000, f"c{s}")


def _open(db: str, flow_ids: bool) -> Node:
    node = open_node(db, EXAMPLE_CONFIG, flow_ids=TINY if flow_ids else False)
    node.engine.seen_flow_ids.hot_ids = 4
    return node


def test_archive_contract(db_target: str) -> None:
    node = _open(db_target, True)
    archive = node.flow_archive
    steps = [list(range(s * 6, s * 6 + 6)) for s in range(6)]
    for s, ids in enumerate(steps):
        node.submit("trades", chunk(_rows(ids, T0 + s * 1000)), T0 + s * 1000, f"c{s}")
    assert archive.covered_through == node.engine.applied_seq
    assert int(node.store.scalar("SELECT count(*) FROM flow_id_runs")) >= 3
    assert node.engine.seen_flow_ids.nbytes() < 2 * 5 * 2**20  # the hot tier only
    # id 0 was accepted in the first step: evicted from memory, found in a run
    assert "T000000" not in node.engine.seen_flow_ids.index("t:")
    assert "t:T000000" in node.engine.seen_flow_ids and "t:T000999" not in node.engine.seen_flow_ids
    fx = node.submit("trades", chunk(_rows([0, 1, 500], T0 + 9000)), T0 + 9000, "again")
    assert fx is not None and fx.duplicates == 2
    assert [(seq, part) for seq, part, _ in archive.candidates("T000000", 0)] == [(1, 0)]
    root = node.engine.state_root()
    accepted = len(node.engine.seen_flow_ids)
    node.close()
    # replay on reopen (the archive already holds every id, later ones included)
    again = _open(db_target, True)
    assert again.engine.state_root() == root and len(again.engine.seen_flow_ids) == accepted
    fx = again.submit("trades", chunk(_rows([2, 501], T0 + 10_000)), T0 + 10_000, "again-2")
    assert fx is not None and fx.duplicates == 1
    again.close()
    plain = open_node(db_target, EXAMPLE_CONFIG)  # and without the archive (all in memory)
    assert plain.engine.seen_flow_ids.archive is None
    assert "t:T000002" in plain.engine.seen_flow_ids and "t:T000501" in plain.engine.seen_flow_ids
    plain.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=12), min_size=1, max_size=8))
def test_archive_and_memory_dedup_agree(tmp_path_factory: Any, steps: list[list[int]]) -> None:
    tmp = tmp_path_factory.mktemp("agree")
    mem = _open(str(tmp / "mem.db"), False)
    arc = _open(str(tmp / "arc.db"), True)
    for s, ids in enumerate(steps):
        at = T0 + s * 1000
        table = chunk(_rows(ids, at))
        a = mem.submit("trades", table, at, f"s{s}")
        b = arc.submit("trades", table, at, f"s{s}")
        assert a is not None and b is not None
        assert a.duplicates == b.duplicates
        ra = pa.concat_tables(a.tables()).select(["flow_id", "state"])
        rb = pa.concat_tables(b.tables()).select(["flow_id", "state"])
        assert ra.equals(rb)
        assert mem.engine.state_root() == arc.engine.state_root()
        # membership agrees too (hot tier, older generation, archive)
        probe = pa.array([f"T{i:06d}" for i in range(0, 41, 5)], type=pa.string())
        rows = np.arange(len(probe), dtype=np.int64)
        in_mem = [f"t:{x}" in mem.engine.seen_flow_ids for x in probe.to_pylist()]
        in_arc = [f"t:{x}" in arc.engine.seen_flow_ids for x in probe.to_pylist()]
        assert in_mem == in_arc
        assert arc.flow_archive.seen("t:", probe, rows, 1 << 40).tolist() == in_mem
    root = arc.engine.state_root()
    mem.close()
    arc.close()
    reopened = _open(str(tmp / "arc.db"), True)
    assert reopened.engine.state_root() == root
    reopened.close()


def test_bloom_false_positives_and_hash_hits_are_confirmed(tmp_path: Path) -> None:
    node = _open(str(tmp_path / "x.db"), True)
    _submit_steps(node, 4, 10)
    archive: FlowIdArchive = node.flow_archive
    fresh = pa.array([f"N{i}" for i in range(200)], type=pa.string())
    assert archive.maybe(archive.hashes(fresh, 0)).sum() > 50  # a 64-bit filter: many false positives
    assert not archive.seen("t:", fresh, np.arange(200, dtype=np.int64), 1 << 40).any()
    # a trade id is not a payment id
    assert not archive.seen("p:", pa.array(["T000003"]), np.zeros(1, dtype=np.int64), 1 << 40)[0]
    assert archive.seen("t:", pa.array(["T000003"]), np.zeros(1, dtype=np.int64), 1 << 40)[0]
    assert not archive.seen("t:", pa.array(["T000003"]), np.zeros(1, dtype=np.int64), 1)[
        0
    ]  # not before seq 1
    node.close()


def test_service_answers_old_ids_after_eviction(tmp_path: Path) -> None:
    options = RuntimeOptions(hot_ids=8, flow_id_run_ids=8, flow_id_bloom_bits=1 << 12)
    with make_service(tmp_path, runtime_options=options) as svc:
        for b in range(5):
            rows = [trade_row(b * 10 + i) for i in range(10)]
            r = svc.client.post("/v1/trades/batch", json={"trades": rows}, headers=svc.h())
            assert r.status_code == 200, r.text
        rt = svc.runtime
        assert rt.node.flow_archive.archived_through > 0
        assert rt.rm.records.older_index is not None and rt.rm.find("T0") is not None
        assert "T0" not in rt.node.engine.seen_flow_ids.index("t:")
        got = svc.client.get("/v1/trades/T0", headers=svc.h())
        assert got.status_code == 200 and got.json()["id"] == "T0"
        again = svc.client.post("/v1/trades", json=trade_row(0), headers=svc.h())
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        clash = svc.client.post("/v1/trades", json=trade_row(0, price="1.00"), headers=svc.h())
        assert clash.status_code == 409 and clash.json()["error"] == "id_conflict"
        assert svc.runtime.rm.activity.counts[:, 0].sum() == 50


@pytest.mark.parametrize("merge_ids", [1 << 16, 8])
def test_runs_are_compacted_and_every_id_stays_found(
    db_target: str, merge_ids: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flowids, "MERGE_IDS", merge_ids)  # 8: many hash ranges per merge
    node = _open(db_target, True)
    archive: FlowIdArchive = node.flow_archive
    accepted: list[int] = []
    for s in range(40):
        ids = list(range(s * 5, s * 5 + 5))
        accepted += ids
        node.submit("trades", chunk(_rows(ids, T0 + s * 1000)), T0 + s * 1000, f"c{s}")
    assert archive.compactions >= 2
    # 200 ids in runs of >= 8: without merging ~25 runs; tiered with fan-in 4: a few per level
    assert archive.run_count <= 2 * (archive.compact_fanin - 1) + 1
    probe = pa.array([f"T{i:06d}" for i in accepted], type=pa.string())
    everything = np.arange(len(probe), dtype=np.int64)
    assert archive.seen("t:", probe, everything, 1 << 40).all()
    runs = node.store.rows("SELECT run_id, ids FROM flow_id_runs")
    assert sum(int(r["ids"]) for r in runs) + archive._pending_n == len(accepted)
    blocks = {int(r["run_id"]) for r in node.store.rows("SELECT DISTINCT run_id FROM flow_id_blocks")}
    assert blocks == {int(r["run_id"]) for r in runs}
    root = node.engine.state_root()
    # a compaction cut short by a crash: blocks without a run row are dropped on open
    with node.store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO flow_id_blocks (run_id, block, first_hash, hashes, locs) "
                "VALUES (999, 0, 0, :h, :l)"
            ),
            {"h": b"\0" * 8, "l": b"\0" * 8},
        )
    node.close()
    again = _open(db_target, True)
    assert again.engine.state_root() == root
    assert again.store.scalar("SELECT count(*) FROM flow_id_blocks WHERE run_id = 999") == 0
    assert again.flow_archive.seen("t:", probe, everything, 1 << 40).all()
    fx = again.submit("trades", chunk(_rows([0, 77, 199, 900], T0 + 99_000)), T0 + 99_000, "late")
    assert fx is not None and fx.duplicates == 3
    again.close()


def test_warming_the_archive_keeps_its_filter(tmp_path: Path) -> None:
    node = _open(str(tmp_path / "w.db"), True)
    _submit_steps(node, 3, 8)
    archive: FlowIdArchive = node.flow_archive
    before = archive._bits.copy()
    assert before.any()
    archive.warm()
    assert np.array_equal(archive._bits, before)
    node.warm()  # the node's warm-up pages it in too, and changes nothing either
    assert np.array_equal(archive._bits, before)
    assert archive.seen("t:", pa.array(["T000003"]), np.zeros(1, dtype=np.int64), 1 << 40)[0]
    node.close()
