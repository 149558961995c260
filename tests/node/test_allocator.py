"""Opening a node makes jemalloc (else the system allocator) Arrow's default memory pool and
stops NumPy's huge-page advice (node/allocator.py, issue 18), unless the operator chose with
ARROW_DEFAULT_MEMORY_POOL / NUMPY_MADVISE_HUGEPAGE. Both are process-wide, so each case runs in
a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

_OPEN_A_NODE = """
import sys
from pathlib import Path
import pyarrow as pa
from clearlane.adapters.embedded import open_memory_node
from clearlane.node.allocator import tune_allocators
from clearlane.sim.generator import generate_day

tmp = Path(sys.argv[1])
kept = pa.array(list(range(1000)))  # made by the pool in use before the switch
day = generate_day(trades=40, participants=5, assets=2, seed=7).write(tmp / "day")
node = open_memory_node(day.config, keys=tmp / "keys")
try:
    node.clear_batches([], source="test")
finally:
    node.close()
chosen = tune_allocators()  # the choice Node.open made, not a new one
print(pa.default_memory_pool().backend_name, chosen.arrow_pool, chosen.numpy_hugepages, kept.sum().as_py())
"""


def _run(code: str, *args: str, **chosen: str) -> list[str]:
    """``code`` in a fresh interpreter whose environment names no allocator but ``chosen``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ARROW_DEFAULT_MEMORY_POOL", "NUMPY_MADVISE_HUGEPAGE")
    }
    env.update(chosen)
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _jemalloc_built() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


def test_opening_a_node_tunes_the_allocators(tmp_path: Path) -> None:
    pool, chosen_pool, hugepages, kept = _run(_OPEN_A_NODE, str(tmp_path))
    assert pool == chosen_pool == ("jemalloc" if _jemalloc_built() else "system")
    assert hugepages == "False"
    assert kept == str(sum(range(1000)))  # a buffer of the old pool outlives the switch


def test_the_operators_choices_are_left_alone(tmp_path: Path) -> None:
    pool, chosen_pool, hugepages, _ = _run(
        _OPEN_A_NODE, str(tmp_path), ARROW_DEFAULT_MEMORY_POOL="system", NUMPY_MADVISE_HUGEPAGE="1"
    )
    assert pool == chosen_pool == "system"
    assert hugepages == "True"


_CLI_PROCESS = """
import os
import sys
import clearlane.adapters.cli  # the command's package: chooses before NumPy or pyarrow is imported
import pyarrow as pa
import pyarrow.parquet as pq
table = pa.table({"x": list(range(10000))})
pq.write_table(table, sys.argv[1])
assert pq.read_table(sys.argv[1]).num_rows == 10000  # Arrow's C++ code allocates
print(os.environ["ARROW_DEFAULT_MEMORY_POOL"], os.environ["NUMPY_MADVISE_HUGEPAGE"],
      pa.default_memory_pool().backend_name, pa.mimalloc_memory_pool().max_memory())
"""


def _cli_process(tmp_path: Path, **chosen: str) -> list[str]:
    return _run(_CLI_PROCESS, str(tmp_path / "t.parquet"), **chosen)


def test_the_command_chooses_before_the_libraries_are_imported(tmp_path: Path) -> None:
    # The process defaults are Linux's, where pyarrow's wheels carry jemalloc (CI runs there).
    pool_env, hugepage_env, pool, mimalloc_bytes = _cli_process(tmp_path)
    assert (pool_env, hugepage_env, pool) == ("jemalloc", "0", "jemalloc")
    assert mimalloc_bytes == "0"  # Arrow's C++ internals too, not only what pyarrow allocates


def test_the_command_keeps_the_operators_choices(tmp_path: Path) -> None:
    pool_env, hugepage_env, pool, _ = _cli_process(
        tmp_path, ARROW_DEFAULT_MEMORY_POOL="system", NUMPY_MADVISE_HUGEPAGE="1"
    )
    assert (pool_env, hugepage_env, pool) == ("system", "1", "system")
