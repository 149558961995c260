"""``clearlane clear --chain ethereum --rpc-url URL`` against a live-timed anvil (a block every
second, wall-clock timestamps): a file of trades stamped now is cleared, anchored and settled to
final on the real node; and the chain options are checked before anything opens."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from clearlane.adapters.chain.ethkeys import EthKeyStore
from clearlane.adapters.cli.main import app
from clearlane.testing.devserver import AnvilServer
from tests.conftest import EXAMPLE_CONFIG

COLUMNS = ("trade_id", "venue", "symbol", "buyer", "seller", "quantity", "price", "executed_at")


def write_trades(path: Path, count: int) -> Path:
    start = datetime.now(UTC) - timedelta(seconds=2)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for i in range(count):
            at = (start + timedelta(milliseconds=50 * i)).isoformat(timespec="milliseconds")
            buyer, seller = ("MM-ALPHA", "BRK-NORTH") if i % 2 else ("RTL-0001", "MM-BETA")
            writer.writerow(
                [f"T{i:05d}", "XCL", "BTC/USD", buyer, seller, "0.01", "65000", at.replace("+00:00", "Z")]
            )
    return path


def test_clear_on_a_live_anvil_anchors_and_settles_to_final(tmp_path: Path) -> None:
    anvil = AnvilServer(block_time_s=1).start()
    try:
        keys = tmp_path / "keys"
        anvil.fund(EthKeyStore(keys).ensure_active().address)
        trades = write_trades(tmp_path / "trades.csv", 20)
        args = ["clear", str(trades), "--db", str(tmp_path / "eth.db"), "--config", str(EXAMPLE_CONFIG)]
        args += ["--keys", str(keys), "--chain", "ethereum", "--rpc-url", anvil.url, "--json"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        batches = summary["batches"]
        assert batches["cleared"] >= 1 and batches["final"] == batches["cleared"]
        assert batches["unwound"] == 0 and batches["pending"] == 0
    finally:
        anvil.stop()


def test_the_chain_options_are_checked_first(tmp_path: Path) -> None:
    node = CliRunner()
    trades = write_trades(tmp_path / "t.csv", 1)
    db = ["--db", str(tmp_path / "x.db"), "--config", str(EXAMPLE_CONFIG)]
    for extra, message in (
        (["--chain", "ethereum"], "needs --rpc-url"),
        (["--chain", "solana"], "simulated or ethereum"),
        (["--rpc-url", "http://127.0.0.1:1"], "need --chain ethereum"),
    ):
        result = node.invoke(app, ["clear", str(trades), *db, *extra])
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "x.db").exists()


def test_keys_chain_shows_rotates_and_imports_the_account(tmp_path: Path) -> None:
    node = CliRunner()
    keys = ["--keys", str(tmp_path / "k")]
    first = node.invoke(app, ["keys", "chain", *keys])
    assert first.exit_code == 0 and "base-layer account 0x" in first.stdout
    assert node.invoke(app, ["keys", "chain", *keys]).stdout == first.stdout
    rotated = node.invoke(app, ["keys", "chain", *keys, "--rotate"])
    assert rotated.exit_code == 0 and rotated.stdout != first.stdout
    funded = tmp_path / "funded.key"
    funded.write_text("0x" + "11" * 32)
    funded.chmod(0o644)
    refused = node.invoke(app, ["keys", "chain", *keys, "--import", str(funded)])
    assert refused.exit_code == 2 and "chmod 600" in refused.output
    funded.chmod(0o600)
    imported = node.invoke(app, ["keys", "chain", *keys, "--import", str(funded)])
    assert imported.exit_code == 0 and "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A" in imported.stdout
