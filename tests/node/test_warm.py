"""Opening a node pays numba's one-time set-up of its CPU target (node._warm_compiler, issue 18),
so that neither a bulk clear's first step nor a service's first requests pay it."""

from __future__ import annotations

from pathlib import Path

import pytest
from numba.core.registry import cpu_target

from clearlane.adapters.embedded import open_memory_node
from clearlane.node import node as node_module
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
    node_module._warm_compiler()
    node_module._warm_compiler()  # idempotent: numba refreshes only what is new
