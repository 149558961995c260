"""`clearlane escrow`: act on a store through the node, read escrows back after recovery,
refusals exit 1, the in-process bench runs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clearlane.adapters.cli.main import app
from tests.conftest import EXAMPLE_CONFIG

node = CliRunner()
AT = "1767225600000"
TERMS = {
    "asset": "USD",
    "amount": "1200.00",
    "buyer": "RTL-0001",
    "seller": "BRK-NORTH",
    "platform": "MARKET",
    "arbiter": "ARB",
    "conditions": [{"condition_id": "title", "kind": "title_transferred", "role": "platform"}],
}


def _action(action: str, action_id: str, actor: str, **fields: object) -> str:
    return json.dumps(
        {"action": action, "action_id": action_id, "escrow_id": "car-1", "actor": actor, **fields}
    )


def test_act_show_list_and_a_refusal(tmp_path: Path) -> None:
    db = str(tmp_path / "e.db")
    deposit = tmp_path / "dep.jsonl"
    deposit.write_text(
        json.dumps(
            {
                "type": "collateral_deposit",
                "deposit_id": "d1",
                "participant": "RTL-0001",
                "asset": "USD",
                "amount": "5000",
            }
        )
        + "\n"
    )
    cleared = node.invoke(app, ["clear", str(deposit), "--db", db, "--config", str(EXAMPLE_CONFIG)])
    assert cleared.exit_code == 0, cleared.output
    actions = [
        _action("open", "o1", "MARKET", terms=TERMS),
        _action("agree", "a1", "RTL-0001"),
        _action("agree", "a2", "BRK-NORTH"),
        _action("fund", "f1", "RTL-0001"),
    ]
    acted = node.invoke(app, ["escrow", "act", "--db", db, "--at-ms", AT, *actions])
    assert acted.exit_code == 0, acted.output
    refused = node.invoke(
        app,
        [
            "escrow",
            "act",
            "--db",
            db,
            "--at-ms",
            AT,
            _action("satisfy", "s1", "RTL-0001", condition_id="title"),
        ],
    )
    assert refused.exit_code == 1 and "escrow_role_not_allowed" in refused.output
    done = node.invoke(
        app,
        [
            "escrow",
            "act",
            "--db",
            db,
            "--at-ms",
            AT,
            _action("satisfy", "s2", "MARKET", condition_id="title"),
        ],
    )
    assert done.exit_code == 0, done.output
    shown = node.invoke(app, ["escrow", "show", "car-1", "--db", db])
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.output)
    assert view["state"] == "released" and view["where"]["clearing"] == 120_000
    listed = node.invoke(app, ["escrow", "list", "--db", db])
    assert listed.exit_code == 0 and "car-1" in listed.output
    missing = node.invoke(app, ["escrow", "show", "nope", "--db", db])
    assert missing.exit_code == 1
    # the store walk accepts the accounts escrow made on first use, and their balances
    verified = node.invoke(app, ["verify", "--db", db])
    assert verified.exit_code == 0, verified.output


def test_bench_runs_in_process() -> None:
    result = node.invoke(app, ["escrow", "bench", "--escrows", "16"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["escrows"] == 16 and figures["actions"] == 82 and figures["ledger_entries"] > 32
