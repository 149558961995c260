"""The demo's accelerated clock is paced to the engine: a busy machine slows the clock down
instead of compressing deadlines (issue 11, item 10). No sleeping: time is a fake monotonic."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from clearlane.adapters.embedded import EMBEDDED
from clearlane.node.runtime import AcceleratedClock, Runtime, RuntimeOptions
from tests.conftest import EXAMPLE_CONFIG, T0


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_clock_is_held_at_its_lead_and_resumes_without_a_jump() -> None:
    wall = FakeTime()
    clock = AcceleratedClock(60, T0, lead_ms=5_000, monotonic=wall)
    assert clock.now_ms() == T0  # not paced yet: free-running
    clock.caught_up(T0)
    wall.now += 10  # a 10 s stall = 600 s of engine time at 60x
    assert clock.now_ms() == T0 + 5_000
    assert clock.behind and clock.slipped_ms == 600_000 - 5_000
    assert clock.status()["held_episodes"] == 1
    wall.now += 1
    assert clock.now_ms() == T0 + 5_000  # still held: the engine has not caught up
    clock.caught_up(T0 + 5_000)
    assert not clock.behind
    wall.now += 0.0625
    assert clock.now_ms() == T0 + 5_000 + 3_750  # on at 60x from where it was held, no jump


def test_an_unpaced_clock_runs_free() -> None:
    wall = FakeTime()
    clock = AcceleratedClock(60, T0, monotonic=wall)
    wall.now += 10
    assert clock.now_ms() == T0 + 600_000
    assert clock.status() == {
        "paced": False,
        "behind": False,
        "slipped_ms": 0,
        "held_episodes": 0,
        "lead_ms": clock.lead_ms,
    }


def _slow_runtime(tmp_path: Path, wall: FakeTime, paced: bool) -> Runtime:
    """A runtime whose every engine step costs 4 s of (fake) wall time: a busy machine."""
    clock = AcceleratedClock(60, T0, monotonic=wall)
    runtime = Runtime(
        tmp_path / "c.db",
        EXAMPLE_CONFIG,
        clock=clock,
        options=RuntimeOptions(tune_process=False),
        opener=EMBEDDED,
    )
    node = runtime.node
    for name in ("submit", "advance"):
        real = getattr(node, name)

        def slow(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            wall.now += 4.0
            return _real(*args, **kwargs)

        setattr(node, name, slow)
    # The loop's iterations are driven by the test (no thread): the runtime takes submissions.
    runtime._live = True
    runtime._thread = threading.Thread(target=lambda: None)
    runtime._thread.start()
    if not paced:
        clock.caught_up = lambda engine_ms: None  # type: ignore[method-assign]
    return runtime


@pytest.mark.parametrize("paced", [True, False])
def test_a_slow_engine_does_not_make_batches_unwind(tmp_path: Path, paced: bool) -> None:
    """Market-maker trades every tick through a runtime whose steps take 4 s of wall time (240 s
    of engine time at 60x, twice the 120 s anchor deadline). Paced, no batch unwinds and the
    clock says it fell behind. Unpaced (the old clock) the engine jumps 240 s a step; batches
    unwound when a base-layer poll closed them (observing the chain past their deadline before
    their anchor was sent) — the runtime closes windows with a tick step before any poll now, so
    they do not, though the clock never says it fell behind."""
    wall = FakeTime()
    runtime = _slow_runtime(tmp_path, wall, paced)
    try:
        for i in range(40):
            row = {
                "trade_id": f"T{i:04d}",
                "venue": "XCL",
                "symbol": "BTC/USD",
                "buyer": "MM-ALPHA",
                "seller": "MM-BETA",
                "quantity": "0.01",
                "price": "65000",
                "executed_at": runtime.clock.now_ms(),
            }
            future = runtime.submit_trades([row])
            runtime._iteration()
            assert future.result(timeout=0)
            wall.now += 0.05
        engine = runtime.node.engine
        assert engine.stats.batches_cleared > 0
        clock = runtime.clock
        assert isinstance(clock, AcceleratedClock)
        if paced:
            assert engine.stats.batches_unwound == 0
            assert clock.status()["held_episodes"] >= 1 and clock.slipped_ms > 0
        else:
            assert engine.stats.batches_unwound == 0
            assert clock.status()["held_episodes"] == 0 and clock.slipped_ms == 0
    finally:
        runtime.stop()
