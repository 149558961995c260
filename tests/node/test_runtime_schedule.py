"""When the runtime loop steps queued trades (``Runtime._step_wait``): at the next tick, or —
close-on-time — at the next batch window's end if that comes first."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clearlane.node.runtime import Runtime, RuntimeOptions


def _loop(now_ms: int, due_ms: int | None, **options: object) -> SimpleNamespace:
    clock = SimpleNamespace(now_ms=lambda: now_ms, speed=1.0)
    return SimpleNamespace(
        options=RuntimeOptions(**options),  # type: ignore[arg-type]
        clock=clock,
        _batch_due_ms=lambda: due_ms,
    )


def wait(loop: SimpleNamespace, since_s: float) -> float:
    return float(Runtime._step_wait(loop, since_s))  # type: ignore[arg-type]


def test_a_tick_after_the_last_step_it_steps_at_once() -> None:
    assert wait(_loop(1_000, None, tick_ms=50), 0.05) == 0.0
    assert wait(_loop(1_000, 5_000, tick_ms=50), 0.07) == 0.0


def test_without_a_due_batch_it_waits_for_the_tick() -> None:
    assert wait(_loop(1_000, None, tick_ms=50), 0.01) == pytest.approx(0.04)


def test_a_window_end_before_the_tick_is_stepped_when_it_ends() -> None:
    # 30 ms since the last step, the window ends in 5 ms: step then, not at the tick.
    assert wait(_loop(1_000, 1_005, tick_ms=50), 0.03) == pytest.approx(0.005)
    # Already ended, even right after a step: now.
    assert wait(_loop(1_000, 990, tick_ms=50), 0.002) == 0.0
    # Ending after the tick: the tick.
    assert wait(_loop(1_000, 1_100, tick_ms=50), 0.03) == pytest.approx(0.02)


def test_without_close_on_time_only_the_tick_counts() -> None:
    assert wait(_loop(1_000, 1_001, tick_ms=50, close_on_time=False), 0.03) == pytest.approx(0.02)
