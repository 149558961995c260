"""The CLI for scripts (issue 17): --json across the commands, --version, the exit-code table in
docs/CLI.md equal to the code's mapping, `close` readable at 80 columns, and `--db` help that
says what a command does with a missing database."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from clearlane import __version__
from clearlane.adapters.cli import main as cli
from clearlane.core.errors import ClearlaneError, InputError, IntegrityError, NotFound, Unavailable
from tests.adapters.cli.test_cli import GOOD, _clear, _csv

node = CliRunner()
DOC = Path(__file__).resolve().parents[3] / "docs" / "CLI.md"


def _json(args: list[str]) -> object:
    result = node.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_version() -> None:
    result = node.invoke(cli.app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"clearlane {__version__}"


def test_exit_code_table_matches_the_mapping() -> None:
    rows = re.findall(r"^\| (\d) \| [^|]+\| ([^|]+)\|", DOC.read_text(), flags=re.M)
    documented = {name.strip("` "): int(code) for code, names in rows for name in names.split(",")}
    categories: dict[str, type[ClearlaneError]] = {
        "InputError": InputError,
        "NotFound": NotFound,
        "IntegrityError": IntegrityError,
        "Unavailable": Unavailable,
    }
    assert {k: v for k, v in documented.items() if k in categories} == {
        name: cli.EXIT_CODES[cls] for name, cls in categories.items()
    }


def test_json_on_every_reading_command_and_close_at_80_columns(tmp_path: Path) -> None:
    assert _clear(tmp_path, _csv(tmp_path, GOOD)).exit_code == 0
    db = str(tmp_path / "c.db")
    closed = _json(["close", "--db", db, "--day", "2026-11-20", "--json"])
    assert isinstance(closed, dict) and closed["balanced"] is True and closed["day"] == "2026-11-20"
    fast = next(r for r in closed["rows"] if r["lane"] == "L2:fast" and r["asset"] == "USD")
    assert isinstance(fast["debit_minor"], int) and fast["debit"].count(".") == 1
    narrow = node.invoke(cli.app, ["close", "--db", db, "--day", "2026-11-20"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0 and "…" not in narrow.stdout
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    assert "(posted)" in narrow.stdout and "(pending)" in narrow.stdout and fast["debit"] in narrow.stdout
    replayed = _json(["replay", "--db", db, "--into", str(tmp_path / "r.db"), "--json"])
    assert isinstance(replayed, dict) and replayed["identical"] is True
    assert replayed["state_root"] == replayed["stored_root"]
    proof = _json(["proof", "T1", "--db", db, "--out", str(tmp_path / "p.json"), "--json"])
    assert proof == {
        "trade_id": "T1",
        "file": str(tmp_path / "p.json"),
        "bytes": (tmp_path / "p.json").stat().st_size,
    }
    bundle = _json(["dispute", "T1", "--db", db, "--out", str(tmp_path / "d.zip"), "--json"])
    assert isinstance(bundle, dict) and bundle["batch_id"] and bundle["file"] == str(tmp_path / "d.zip")
    made = node.invoke(cli.app, ["apikey", "create", "--db", db, "--role", "auditor", "--label", "ci"])
    assert made.exit_code == 0, made.output
    keys = _json(["apikey", "list", "--db", db, "--json"])
    assert isinstance(keys, list) and keys[0]["role"] == "auditor" and keys[0]["label"] == "ci"
    assert "secret" not in json.dumps(keys)


def test_reading_commands_refuse_a_missing_database_and_say_so(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.db")
    for args in (["status", "T1"], ["close"], ["replay"], ["proof", "T1"], ["apikey", "list"]):
        result = node.invoke(cli.app, [*args, "--db", missing])
        assert result.exit_code == 2 and "no such database" in result.output, args
        assert not Path(missing).exists()
    helped = node.invoke(cli.app, ["status", "--help"], env={"COLUMNS": "200"})
    assert "created if missing" not in helped.stdout and "missing one is an error" in helped.stdout


def test_demo_json_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--trades", "200", "--participants", "12", "--assets", "3", "--out", str(out), "--json"]
    summary = _json(args)
    assert isinstance(summary, dict) and summary["database"] == str(out / "clearlane.db")
    assert summary["run"]["rows_read"] >= 200 and summary["badges"]
    assert node.invoke(cli.app, [*args, "--serve"]).exit_code == 2
