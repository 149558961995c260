"""Opening a node pays numba's one-time set-up of its CPU target (node/warm.py warm_compiler, issue 18),
so that neither a bulk clear's first step nor a service's first requests pay it."""

from __future__ import annotations

from pathlib import Path

import pytest
from numba.core.registry import cpu_target

from clearlane.adapters.embedded import open_memory_node
from clearlane.node import warm as warm_module
from clearlane.sim.generator import generate_day


def test_opening_a_node_refreshes_the_compiler_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    refresh = cpu_target.target_context.refresh

    def counted() -> None:
        calls.append(1)
        refresh()

    monkeypatch.setattr(cpu_target.target_context, "refresh", counted)
    day = generate_day(trades=50, participants=6, assets=2, seed=3).write(tmp_path / "day")
    node = open_memory_node(day.config, keys=tmp_path / "keys")
    try:
        assert calls, "Node.open did not warm the compiler target"
    finally:
        node.close()


def test_warming_twice_is_cheap() -> None:
    warm_module.warm_compiler()
    warm_module.warm_compiler()  # idempotent: numba refreshes only what is new


_FRESH_INTERPRETER = """
import sys
import numpy as np
from clearlane.core.engine import kernel
from clearlane.node.warm import load_cached_kernels
first = kernel.gather_texts_many  # a kernel the engine uses at every step that closes batches
if sys.argv[1] == "call":
    first(np.frombuffer(b"ab", dtype=np.uint8), np.array([0, 1, 2]), np.array([1, 0]), np.array([0, 2]))
    print(len(first.overloads))
else:
    before = len(first.overloads)
    loaded = load_cached_kernels()
    print(before, len(first.overloads), loaded, load_cached_kernels())
"""


def test_cached_kernels_are_loaded_before_their_first_call() -> None:
    import subprocess
    import sys

    def run(mode: str) -> list[int]:
        out = subprocess.run(
            [sys.executable, "-c", _FRESH_INTERPRETER, mode], capture_output=True, text=True, check=True
        )
        return [int(x) for x in out.stdout.split()]

    assert run("call") == [1]  # the kernel's signature is now in numba's on-disk cache
    before, after, loaded, again = run("warm")
    assert before == 0 and after >= 1 and loaded >= 1
    assert again == 0  # what is loaded is not loaded twice


def test_an_unreadable_cache_index_loads_nothing_and_does_not_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    from numba.core.registry import CPUDispatcher

    from clearlane.core.engine import kernel
    from clearlane.node import warm

    dispatcher = kernel.gather_texts_many
    assert isinstance(dispatcher, CPUDispatcher)

    def broken() -> dict[object, str]:
        raise OSError("index unreadable")

    monkeypatch.setattr(dispatcher._cache._cache_file, "_load_index", broken)
    assert warm._load_cached(dispatcher) == 0


def test_intake_warm_up_validates_and_keeps_nothing(tmp_path: Path) -> None:
    from clearlane.core.config import load_config
    from clearlane.node.intake.rows import Intake

    day = generate_day(trades=50, participants=6, assets=2, seed=3).write(tmp_path / "day")
    intake = Intake(load_config(day.config))
    row = {
        "trade_id": "x-1",
        "venue": "v",
        "symbol": "ZZZ/USD",
        "buyer": "nobody",
        "seller": "nobody",
        "quantity": "1",
        "price": "1",
        "executed_at": 1,
    }
    before = intake.trades([([row], 2, "trades")])
    intake.warm(2)
    after = intake.trades([([row], 2, "trades")])
    assert before[1] == after[1] and before[0].equals(after[0])
