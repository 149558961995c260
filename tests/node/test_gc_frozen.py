"""A bulk clear freezes what survived its steps for the cyclic collector and unfreezes it at
the end (node._survivors_frozen, issue 18); a caller that manages the collector is left alone."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from clearlane.adapters.embedded import open_memory_node
from clearlane.node import node as node_module
from clearlane.node.intake import iter_input
from clearlane.sim.generator import generate_day


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return generate_day(trades=300, participants=6, assets=3, seed=5).write(
        tmp_path_factory.mktemp("gc") / "day"
    )


def _clear(day: Any, tmp_path: Path, calls: list[int], monkeypatch: pytest.MonkeyPatch) -> Any:
    freeze = gc.freeze

    def counted() -> None:
        calls.append(1)
        freeze()

    monkeypatch.setattr(node_module.gc, "freeze", counted)
    node = open_memory_node(day.config, keys=tmp_path / "keys")
    node.clear_batches(iter_input(Path(day.trades), node.config, chunk_rows=100), source="t")
    return node


def test_a_bulk_clear_freezes_survivors_and_unfreezes_them(
    day: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    frozen_before = gc.get_freeze_count()
    thresholds = gc.get_threshold()
    node = _clear(day, tmp_path, calls, monkeypatch)
    assert gc.get_threshold() == thresholds  # the bulk clear's young threshold is restored
    if frozen_before:  # someone froze before (not this suite): the clear leaves it alone
        assert calls == [] and gc.get_freeze_count() >= frozen_before
    else:
        assert len(calls) >= 3  # one per input batch (chunks of 100 trades)
        assert gc.get_freeze_count() == 0 and gc.isenabled()
    # Settling freezes and unfreezes the same way, through its checkpoint.
    before = len(calls)
    node.settle_until_quiet()
    if not frozen_before:
        assert len(calls) > before and gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


def test_a_caller_that_disabled_the_collector_is_left_alone(
    day: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    gc.disable()
    try:
        _clear(day, tmp_path, calls, monkeypatch)
        assert calls == [] and not gc.isenabled()
    finally:
        gc.enable()
