"""Reconciliation's use cases on both ReconStores: imports are idempotent, a complete run
auto-resolves what it no longer sees, an incomplete one resolves nothing, a resolved break seen
again reopens, and the flood guard caps new cases per rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clearlane.adapters.memory.recon import MemoryReconStore
from clearlane.adapters.sql.recon import SqlReconStore
from clearlane.adapters.sql.store import Store
from clearlane.core.cases import Action, CaseError, CaseState, Resolution, verify_events
from clearlane.core.recon.matching import MatchRules
from clearlane.core.recon.records import ReconRecord, date_ms
from clearlane.node.ports import ImportRecord, ReconStore
from clearlane.node.recon.service import act_on_case, import_file, run

DAY = "2026-11-20"
T = date_ms(DAY) or 0
RULES = MatchRules()


def _line(i: int, amount: int, ref: str) -> ReconRecord:
    return ReconRecord(f"x:{i}", "statement_line", "USD", amount, T, ref, "", f"S{i}")


def _import(store: ReconStore, name: str, lines: list[ReconRecord], gap: int | None = 0) -> None:
    record = ImportRecord(name, "statement", "camt.053", name, "0" * 64, name, name, DAY, T, len(lines), gap)
    store.add_import(record, lines, [])


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReconStore]:
    if request.param == "memory":
        yield MemoryReconStore()
        return
    sql = Store.open(tmp_path / "r.db")
    yield SqlReconStore(sql)
    sql.close()


def test_import_is_idempotent(store: ReconStore, shared: Path) -> None:
    path = shared / "realdata/mt940/cmxl_mt940.sta"
    first = import_file(store, path, fmt=None, now_ms=T)
    again = import_file(store, path, fmt="mt940", now_ms=T + 1)
    assert len(first.imported) == 3 and again.imported == [] and len(again.duplicates) == 3
    assert len(store.external_records(None)) == 16 and len(store.imports(None)) == 3


def test_cases_follow_the_breaks(store: ReconStore) -> None:
    _import(store, "s1", [_line(1, 500, "R1"), _line(2, 700, "R2")])
    first = run(store, period=DAY, rules=RULES, now_ms=T + 10)
    assert first.run.status == "completed" and first.opened == 2
    (case_r1,) = [c for c in store.cases() if c.subject == "external:x:1"]
    act_on_case(store, case_r1.case_id, Action.RESOLVE, actor="ops", now_ms=T + 11, note="booked it")
    with pytest.raises(CaseError):  # optimistic version: a stale writer is refused
        act_on_case(
            store, case_r1.case_id, Action.NOTE, actor="ops", now_ms=T + 12, note="x", expected_version=1
        )
    second = run(store, period=DAY, rules=RULES, now_ms=T + 20)
    assert (second.recurred, second.reopened, second.opened) == (1, 1, 0)
    reopened = store.case(case_r1.case_id)
    assert reopened is not None and reopened.state is CaseState.OPEN and reopened.occurrences == 1
    assert verify_events(store.case_events(case_r1.case_id))
    # the internal side catches up: a complete run resolves both, automatically
    if isinstance(store, MemoryReconStore):
        store.internal = [ReconRecord("net:a", "net_instruction", "USD", 500, T, "R1"),
                          ReconRecord("net:b", "net_instruction", "USD", 700, T, "R2")]  # fmt: skip
        third = run(store, period=DAY, rules=RULES, now_ms=T + 30)
        assert third.auto_resolved == 2 and store.cases(active_only=True) == []
        assert all(c.resolution is Resolution.AUTO for c in store.cases())


def test_incomplete_run_resolves_nothing(store: ReconStore) -> None:
    _import(store, "s1", [_line(1, 500, "R1")])
    run(store, period=DAY, rules=RULES, now_ms=T + 10)
    _import(store, "s2", [], gap=42)  # a statement whose balances do not add up
    later = run(store, period=DAY, rules=RULES, now_ms=T + 20)
    assert later.run.status == "incomplete" and later.auto_resolved == 0
    assert {c.reason for c in store.cases(active_only=True)} == {"UNMATCHED_EXTERNAL", "STATEMENT_UNBALANCED"}


def test_flood_guard_opens_one_case(store: ReconStore) -> None:
    _import(store, "s1", [_line(i, 100 + i, f"R{i}") for i in range(12)])
    report = run(store, period=DAY, rules=RULES, now_ms=T + 10, flood_max=10)
    assert report.flooded == {"recon.match/1": 12} and report.opened == 1
    (case,) = store.cases()
    assert case.reason == "FLOOD_GUARD"
