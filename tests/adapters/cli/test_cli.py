"""The `clearlane` command: every error path, and the happy paths users run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearlane.adapters.cli.main import app
from tests.conftest import EXAMPLE_CONFIG

node = CliRunner()

HEADER = "trade_id,venue,symbol,buyer,seller,quantity,price,executed_at,exch_batch_id,lane_hint\n"
GOOD = [
    "T1,XCL,BTC/USD,MM-ALPHA,BRK-NORTH,0.05,65000.12,2026-11-20T09:00:00.000Z,EB-1,",
    "T2,XCL,ETH/USD,RTL-0001,MM-BETA,0.5,3200,2026-11-20T09:00:00.250Z,EB-1,",
    "T3,XCL,BTC/USD,CUST-VAULT,MM-ALPHA,0.01,65010,2026-11-20T09:00:01.000Z,EB-1,",
]
BAD = [
    "T4,XCL,BTC/USD,NOBODY,BRK-NORTH,0.05,65000,2026-11-20T09:00:02.000Z,EB-1,",  # unknown participant
    "T5,XCL,BTC/USD,MM-ALPHA,BRK-NORTH,0.000000001,65000,2026-11-20T09:00:02.000Z,EB-1,",  # precision
    "T6,XCL,BTC/USD,MM-ALPHA,BRK-NORTH,1e3,65000,2026-11-20T09:00:02.000Z,EB-1,",  # bad decimal
    "T7,XCL,BTC/USD,MM-ALPHA,BRK-NORTH,1,65000,yesterday,EB-1,",  # bad timestamp
]


def _csv(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "trades.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


def _clear(tmp_path: Path, file: Path, *extra: str) -> object:
    return node.invoke(
        app, ["clear", str(file), "--db", str(tmp_path / "c.db"), "--config", str(EXAMPLE_CONFIG), *extra]
    )


def test_clear_applies_good_rows_and_writes_rejects(tmp_path: Path) -> None:
    file = _csv(tmp_path, GOOD + BAD)
    result = _clear(tmp_path, file, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert sum(summary["trades_by_lane"].values()) == 3
    assert summary["batches"]["final"] == 1  # T1 and T2 share a fast batch; T3 is L1
    rejects = [json.loads(line) for line in (tmp_path / "trades.csv.rejects.jsonl").read_text().splitlines()]
    assert [(r["row"], r["id"], r["error"], r["field"]) for r in rejects] == [
        (4, "T4", "unknown_participant", "buyer"),
        (5, "T5", "precision_exceeded", "quantity"),
        (6, "T6", "bad_decimal", "quantity"),
        (7, "T7", "bad_timestamp", "executed_at"),
    ]
    assert all(r["code"] and r["reason"] for r in rejects)
    # Clearing the same file again is a no-op: nothing is applied twice.
    again = _clear(tmp_path, file, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["trades_by_lane"] == summary["trades_by_lane"]


def test_status_shows_lifecycle_badge_and_two_finalities(tmp_path: Path) -> None:
    assert _clear(tmp_path, _csv(tmp_path, GOOD)).exit_code == 0
    db = str(tmp_path / "c.db")
    result = node.invoke(app, ["status", "T1", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    life = json.loads(result.output)
    assert life["lane"] == "L2" and life["pool"] == "fast" and life["state"] == "final"
    assert [t["state"] for t in life["transitions"]] == [
        "received",
        "routed",
        "batched",
        "cleared",
        "anchored",
        "final",
    ]
    assert life["l2_cleared_at"] and life["l1_final_at"]
    assert life["badge"].startswith("Settled on Layer-2 — soft-final at ")
    assert "; base-layer final at " in life["badge"] and " 09:00:" in life["badge"]
    l1 = json.loads(node.invoke(app, ["status", "T3", "--db", db, "--json"]).output)
    assert (
        l1["lane"] == "L1"
        and l1["state"] == "final"
        and l1["badge"].startswith("Settled on Layer-1 — final at")
    )
    human = node.invoke(app, ["status", "T1", "--db", db])
    assert "Settled on Layer-2" in human.output and "anchored" in human.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clear", "missing.csv", "--config", str(EXAMPLE_CONFIG)], "no such file"),
        (["status", "T1", "--db", "missing.db"], "no such database"),
        (["replay", "--db", "missing.db"], "no such database"),
    ],
)
def test_missing_inputs_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = node.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


def test_unknown_trade_exits_1(tmp_path: Path) -> None:
    assert _clear(tmp_path, _csv(tmp_path, GOOD)).exit_code == 0
    result = node.invoke(app, ["status", "NOPE", "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 1 and "not found" in result.output


def test_bad_config_names_file_key_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE_CONFIG.read_text().replace('kind = "broker"', 'kind = "whale"'))
    result = node.invoke(
        app, ["clear", str(_csv(tmp_path, GOOD)), "--db", str(tmp_path / "b.db"), "--config", str(bad)]
    )
    assert result.exit_code == 2
    assert "bad.toml" in result.output and "participants[2] (BRK-NORTH).kind" in result.output
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(EXAMPLE_CONFIG.read_text().replace("[clearing]", "[clearing]\nbatch_sise = 3"))
    result = node.invoke(
        app, ["clear", str(_csv(tmp_path, GOOD)), "--db", str(tmp_path / "u.db"), "--config", str(unknown)]
    )
    assert result.exit_code == 2 and "clearing.batch_sise" in result.output
    result = node.invoke(app, ["clear", str(_csv(tmp_path, GOOD)), "--db", str(tmp_path / "n.db")])
    assert result.exit_code == 2 and "needs --config" in result.output
    toml_error = tmp_path / "broken.toml"
    toml_error.write_text("[clearing\n")
    result = node.invoke(
        app, ["clear", str(_csv(tmp_path, GOOD)), "--db", str(tmp_path / "x.db"), "--config", str(toml_error)]
    )
    assert result.exit_code == 2 and "not valid TOML" in result.output


def test_unreadable_input_file_exit_2(tmp_path: Path) -> None:
    file = tmp_path / "trades.xlsx"
    file.write_text("nope")
    result = _clear(tmp_path, file)
    assert result.exit_code == 2 and "UNSUPPORTED_FORMAT" in result.output
    missing_column = tmp_path / "cols.csv"
    missing_column.write_text("trade_id,venue\nT1,XCL\n")
    result = _clear(tmp_path, missing_column)
    assert result.exit_code == 2 and "MISSING_COLUMN" in result.output


def test_close_prints_balanced_trial_balance(tmp_path: Path) -> None:
    assert _clear(tmp_path, _csv(tmp_path, GOOD)).exit_code == 0
    result = node.invoke(app, ["close", "--db", str(tmp_path / "c.db"), "--day", "2026-11-20"])
    assert result.exit_code == 0, result.output
    assert "Trial balance — 2026-11-20" in result.output and "L2:fast" in result.output


def test_demo_runs_small_day(tmp_path: Path) -> None:
    result = node.invoke(
        app,
        [
            "demo",
            "--trades",
            "3000",
            "--participants",
            "60",
            "--assets",
            "5",
            "--out",
            str(tmp_path / "demo"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "netting efficiency" in result.output and "latency L2 final" in result.output
    assert "Settled on Layer-2 — soft-final at" in result.output


def test_serve_refuses_an_id_filter_size_that_is_not_a_power_of_two(tmp_path: Path) -> None:
    result = node.invoke(
        app,
        ["serve", "--db", str(tmp_path / "x.db"), "--config", str(EXAMPLE_CONFIG), "--id-filter-mib", "3"],
    )
    assert result.exit_code != 0 and "power of two" in result.output
    assert not (tmp_path / "x.db").exists()


def test_clear_writes_a_changed_row_with_a_known_id_as_a_116_reject(tmp_path: Path) -> None:
    assert _clear(tmp_path, _csv(tmp_path, GOOD)).exit_code == 0
    again = [
        "T1,XCL,BTC/USD,MM-ALPHA,BRK-NORTH,0.050,65000.120,2026-11-20T09:00:00Z,EB-1,",  # same values
        "T2,XCL,ETH/USD,RTL-0001,MM-BETA,0.6,3200,2026-11-20T09:00:00.250Z,EB-1,",  # changed quantity
        "T8,XCL,ETH/USD,RTL-0001,MM-BETA,0.6,3200,2026-11-20T09:00:02.000Z,EB-1,",
        "T8,XCL,ETH/USD,RTL-0001,MM-BETA,0.7,3200,2026-11-20T09:00:02.000Z,EB-1,",  # changed in-file
    ]
    second = tmp_path / "again.csv"
    second.write_text(HEADER + "\n".join(again) + "\n")
    result = _clear(tmp_path, second, "--json")
    assert result.exit_code == 0, result.output
    assert sum(json.loads(result.output)["trades_by_lane"].values()) == 4  # T8 once
    rejects = [json.loads(line) for line in (tmp_path / "again.csv.rejects.jsonl").read_text().splitlines()]
    assert [(r["row"], r["id"], r["code"], r["error"], r["field"]) for r in rejects] == [
        (2, "T2", 116, "id_conflict", "trade_id"),
        (4, "T8", 116, "id_conflict", "trade_id"),
    ]
    # Clearing the same file again applies nothing and reports the same conflicts.
    assert _clear(tmp_path, second, "--json").exit_code == 0
    rerun = [json.loads(line) for line in (tmp_path / "again.csv.rejects.jsonl").read_text().splitlines()]
    assert rerun == rejects
    status = node.invoke(app, ["status", "T2", "--db", str(tmp_path / "c.db"), "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["qty_minor"] == 50_000_000  # 0.5 ETH: the first content


def test_clear_writes_changed_payments_deposits_and_withdrawals_as_116_rejects(tmp_path: Path) -> None:
    dep = {"type": "collateral_deposit", "deposit_id": "D1", "participant": "RTL-0001", "asset": "USD"}
    pay = {"type": "payment", "payment_id": "P1", "payer": "RTL-0001", "payee": "BRK-NORTH", "asset": "USD"}
    wd = {"type": "collateral_withdrawal", "withdrawal_id": "W1", "participant": "RTL-0001", "asset": "USD"}
    lines = [
        {**dep, "amount": "80.0"},
        {**pay, "amount": "1.50"},
        {**wd, "amount": "5"},
        {**dep, "amount": "80.00"},  # the same values: duplicates, not rejects
        {**pay, "amount": "1.5"},
        {**wd, "amount": "5.0"},
        {**dep, "amount": "81"},  # changed: conflicts
        {**pay, "amount": "2"},
        {**wd, "amount": "6"},
    ]
    file = tmp_path / "events.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = _clear(tmp_path, file, "--json")
    assert result.exit_code == 0, result.output
    rejects = [
        json.loads(line) for line in (tmp_path / "events.jsonl.rejects.jsonl").read_text().splitlines()
    ]
    assert [(r["id"], r["code"], r["field"]) for r in rejects] == [
        ("D1", 116, "deposit_id"),
        ("P1", 116, "payment_id"),
        ("W1", 116, "withdrawal_id"),
    ]
    status = node.invoke(app, ["status", "P1", "--db", str(tmp_path / "c.db"), "--json"])
    assert json.loads(status.output)["qty_minor"] == 150  # the first content
