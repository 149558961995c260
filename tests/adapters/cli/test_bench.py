"""``clearlane bench`` on both stores: the same node clears the same generated day to the same
state root on SQLite and in memory (the bench measures the store, not a different engine), and
``--floor`` re-does the same work at its floor in the same run (roots checked equal)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from clearlane.adapters.cli.main import app


def _bench(tmp_path: Path, store: str, *extra: str) -> str:
    args = ["bench", "--trades", "2000", "--participants", "30", "--assets", "3", "--workdir", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--store", store, *extra])
    assert result.exit_code == 0, result.output
    assert f"{store} store" in result.output and "trades/s end to end" in result.output
    # The engine thread's wall, accounted: on CPU, waiting for the writer and the reader, the rest.
    wall = re.search(
        r"main thread's wall: ([0-9.]+) s on CPU, ([0-9.]+) s waiting for\s+the writer", result.output
    )
    assert wall is not None and "wait for reader" in result.output, result.output
    found = re.search(r"state root: ([0-9a-f]{64})", result.output)
    assert found is not None, result.output
    if "--floor" in extra:
        # The floor re-did the same work: its roots were checked against the run's (else an error).
        assert "roots equal" in result.output and "floor" in result.output
        assert "best of three" in " ".join(result.output.split())  # each part's fastest run
        ratio = re.search(r"end to end ÷ floor: ([0-9.]+)×", result.output)
        assert ratio is not None and float(ratio.group(1)) > 1.0, result.output
        assert ("write (memory store: none)" in result.output) == (store == "memory")
    return found.group(1)


def test_bench_clears_the_same_day_to_the_same_root_on_sqlite_and_in_memory(tmp_path: Path) -> None:
    assert _bench(tmp_path, "memory", "--floor") == _bench(tmp_path, "sqlite", "--floor")


def test_bench_names_an_unknown_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "--trades", "10", "--workdir", str(tmp_path), "--store", "disk"]
    )
    assert result.exit_code == 2 and "--store" in result.output


def test_bench_writer_process_clears_to_the_same_root(tmp_path: Path) -> None:
    """``--writer process``: the steps sealed and committed in the writer process, same root."""
    args = ["bench", "--trades", "2000", "--participants", "30", "--assets", "3", "--workdir", str(tmp_path)]
    runs = {}
    for writer in ("thread", "process"):
        result = CliRunner().invoke(app, [*args, "--writer", writer])
        assert result.exit_code == 0, result.output
        assert f"writer: {writer}" in result.output
        found = re.search(r"state root: ([0-9a-f]{64})", result.output)
        assert found is not None, result.output
        runs[writer] = found.group(1)
    assert runs["process"] == runs["thread"]
