"""Golden state root: the re-layer (and every refactor after it) must not change behaviour.

``GOLDEN_ROOT`` was recorded by clearing the same generated day with the code as it stood before
the re-layer (commit 7045a76, ``clearlane clear --json``). Any change to what the engine does,
what it hashes or how it tags its hashes (the ledger's domain tags were once renamed by a
search-and-replace and changed every root) fails this test. A deliberate change of behaviour
records a new root here and says why in the commit.

The replay test runs the same log in two processes with different ``PYTHONHASHSEED``: nothing
that reaches the state may depend on ``hash()`` of a string (set iteration order, dict order
from a set).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearlane.adapters.cli.main import app
from clearlane.sim.generator import generate_day

GOLDEN_DAY = {"trades": 5000, "participants": 100, "assets": 6, "seed": 11}
GOLDEN_ROOT = "efa07b69d2ced0792464b6402ca5886e790cbf3b464100ca2f9345a89ebe38d5"


@pytest.fixture(scope="module")
def golden_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("golden")
    paths = generate_day(**GOLDEN_DAY).write(work / "day")
    db = work / "golden.db"
    result = CliRunner().invoke(
        app,
        [
            "clear",
            str(paths.trades),
            "--db",
            str(db),
            "--config",
            str(paths.config),
            "--keys",
            str(work / "keys"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return db, json.loads(result.output)["state_root"]


def test_clearing_the_golden_day_gives_the_recorded_root(golden_db: tuple[Path, str]) -> None:
    _, root = golden_db
    assert root == GOLDEN_ROOT


@pytest.mark.slow
def test_replay_in_two_processes_with_different_hash_seeds_gives_the_same_root(
    golden_db: tuple[Path, str], tmp_path: Path
) -> None:
    db, _ = golden_db
    outputs = []
    for hash_seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from clearlane.adapters.cli.main import app; app()",
                "replay",
                "--db",
                str(db),
                "--into",
                str(tmp_path / f"replay-{hash_seed}.db"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout)
    for out in outputs:
        assert GOLDEN_ROOT in out and "identical" in out, out
