"""``clearlane bench`` on both stores: the same node clears the same generated day to the same
state root on SQLite and in memory (the bench measures the store, not a different engine)."""

from __future__ import annotations

import re
from pathlib import Path

from clearlane.adapters.cli.main import app
from typer.testing import CliRunner


def _bench(tmp_path: Path, store: str) -> str:
    args = ["bench", "--trades", "2000", "--participants", "30", "--assets", "3", "--workdir", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--store", store])
    assert result.exit_code == 0, result.output
    assert f"{store} store" in result.output and "trades/s end to end" in result.output
    found = re.search(r"state root: ([0-9a-f]{64})", result.output)
    assert found is not None, result.output
    return found.group(1)


def test_bench_clears_the_same_day_to_the_same_root_on_sqlite_and_in_memory(tmp_path: Path) -> None:
    assert _bench(tmp_path, "memory") == _bench(tmp_path, "sqlite")


def test_bench_names_an_unknown_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "--trades", "10", "--workdir", str(tmp_path), "--store", "disk"]
    )
    assert result.exit_code == 2 and "--store" in result.output
