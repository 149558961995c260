"""`clearlane recon resolve --adjust` (issue 13, docs/RECONCILIATION.md §8): the adjustment is
logged through the node, then the case resolves naming its ledger entry."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clearlane.adapters.cli.main import app
from clearlane.adapters.sql.recon import SqlReconStore
from clearlane.adapters.sql.store import Store
from clearlane.core.cases import CaseKind, CaseSubject, Severity, open_case
from clearlane.sim.generator import generate_day

node = CliRunner()


def test_resolve_with_adjust_posts_through_the_node(tmp_path: Path) -> None:
    day = generate_day(trades=20, participants=5, assets=2, seed=5, day="2026-11-20")
    paths = day.write(tmp_path)
    db = str(tmp_path / "day.db")
    assert (
        node.invoke(app, ["clear", str(paths.deposits), "--db", db, "--config", str(paths.config)]).exit_code
        == 0
    )
    store = SqlReconStore(Store.open(db, create=False))
    subject = CaseSubject(
        CaseKind.EXCEPTION, "recon.v1", "fp1", "2026-11-20", "fee line", 901, "fee booked twice",
        day.config.assets[0].code, 100, Severity.LOW,
    )  # fmt: skip
    case, event = open_case(subject, actor="recon", at_ms=1)
    store.save_case(case, event)
    store.store.close()
    who, asset = day.config.participants[0].id, day.config.assets[0].code
    base = [
        "recon",
        "resolve",
        case.case_id,
        "--note",
        "refund",
        "--db",
        db,
        "--resolution",
        "fixed_by_booking",
    ]
    bad = node.invoke(
        app,
        [
            *base,
            "--adjustment-id",
            "adj-1",
            "--adjust",
            f"house:fees:{asset}:-1",
            "--adjust",
            f"{who}:{asset}:2",
        ],
    )
    assert bad.exit_code == 1 and "adjustment_unbalanced" in bad.output
    ok = node.invoke(
        app,
        [
            *base,
            "--adjustment-id",
            "adj-1",
            "--adjust",
            f"house:fees:{asset}:-1",
            "--adjust",
            f"{who}:{asset}:1",
        ],
    )
    assert ok.exit_code == 0, ok.output
    trail = json.loads(node.invoke(app, ["recon", "case", case.case_id, "--db", db, "--json"]).output)
    assert trail["case"]["state"] == "resolved" and "adjust:adj-1" in trail["events"][-1]["note"]
    # the adjustment (and the refused one) is in the stored log: a replay reaches the same root
    replayed = node.invoke(app, ["replay", "--db", db, "--into", str(tmp_path / "r.db"), "--json"])
    assert replayed.exit_code == 0, replayed.output
