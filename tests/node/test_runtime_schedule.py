"""When the runtime loop steps queued trades (``Runtime._step_wait``) and how long it sleeps
(``Runtime._wait_seconds``): a trade's batch window starts at the step that applies it, so with
close-on-time queued trades are stepped at once when no batch is open and otherwise at the end
of the earliest open window (one step a window), never more than a tick after they arrived; an
idle loop wakes exactly at a window's end."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from clearlane.node.runtime import STEP_SECONDS_EDGES, Runtime, RuntimeOptions, StepTimes


def _loop(
    now_ms: int, due_ms: int | None, waited_s: float | None = 0.0, **options: object
) -> SimpleNamespace:
    clock = SimpleNamespace(now_ms=lambda: now_ms, speed=1.0)
    trades = [] if waited_s is None else [SimpleNamespace(wall=time.perf_counter() - waited_s)]
    return SimpleNamespace(
        options=RuntimeOptions(**options),  # type: ignore[arg-type]
        clock=clock,
        _trades=trades,
        _events=[],
        _batch_due_ms=lambda: due_ms,
        _has_pending_work=lambda: False,
        _last_chain_ms=0,
        chain_poll_ms=1_000,
    )


def step_wait(loop: SimpleNamespace) -> float:
    return float(Runtime._step_wait(loop))  # type: ignore[arg-type]


def test_no_batch_open_steps_at_once() -> None:
    # The trades start a window now: waiting would only delay its end.
    assert step_wait(_loop(1_000, None, tick_ms=50)) == 0.0


def test_an_open_window_is_stepped_when_it_ends() -> None:
    # The window ends in 5 ms: the step that closes it applies the queued trades.
    assert step_wait(_loop(1_000, 1_005, tick_ms=50)) == pytest.approx(0.005)
    # Already ended: now.
    assert step_wait(_loop(1_000, 990, tick_ms=50)) == 0.0


def test_a_queued_trade_waits_at_most_a_tick() -> None:
    # A long window: the trade joins the open batch a tick after it arrived.
    assert step_wait(_loop(1_000, 1_900, 0.02, tick_ms=50)) == pytest.approx(0.03, abs=0.005)
    assert step_wait(_loop(1_000, 1_900, 0.06, tick_ms=50)) == 0.0


def test_without_close_on_time_only_the_tick_counts() -> None:
    assert step_wait(_loop(1_000, 1_001, 0.02, tick_ms=50, close_on_time=False)) == pytest.approx(
        0.03, abs=0.005
    )
    assert step_wait(_loop(1_000, None, 0.02, tick_ms=50, close_on_time=False)) == pytest.approx(
        0.03, abs=0.005
    )


def test_an_idle_loop_wakes_at_the_window_end() -> None:
    idle = _loop(1_000, 1_007, None, tick_ms=50)
    assert float(Runtime._wait_seconds(idle)) == pytest.approx(0.007)  # type: ignore[arg-type]
    late = _loop(1_000, 1_007, None, tick_ms=50, close_on_time=False)
    assert float(Runtime._wait_seconds(late)) == pytest.approx(0.057)  # type: ignore[arg-type]


def _polling(now_ms: int, due_ms: int | None, last_poll_ms: int) -> SimpleNamespace:
    loop = _loop(now_ms, due_ms, None, tick_ms=50)
    loop._has_pending_work = lambda: True
    loop._last_chain_ms = last_poll_ms
    return loop


def poll_due(loop: SimpleNamespace, closed: bool) -> bool:
    return bool(Runtime._poll_due(loop, loop.clock.now_ms(), closed))  # type: ignore[arg-type]


def test_a_due_poll_waits_for_the_next_close() -> None:
    # Due since 10 ms, a window open: the poll (a block's work) waits until a window closes,
    assert not poll_due(_polling(2_010, 2_020, 1_000), closed=False)
    assert poll_due(_polling(2_010, 2_020, 1_000), closed=True)
    # or at most a tick, and is taken at once when no window is open.
    assert poll_due(_polling(2_050, 2_100, 1_000), closed=False)
    assert poll_due(_polling(2_010, None, 1_000), closed=False)
    # Not due yet: never.
    assert not poll_due(_polling(1_900, None, 1_000), closed=True)


def test_an_idle_loop_wakes_for_the_poll_at_the_next_window_end() -> None:
    assert float(Runtime._wait_seconds(_polling(1_990, 2_020, 1_000))) == pytest.approx(0.03)  # type: ignore[arg-type]
    # A window ending later than a tick past the poll's time: the tick.
    assert float(Runtime._wait_seconds(_polling(1_990, 2_100, 1_000))) == pytest.approx(0.06)  # type: ignore[arg-type]
    assert float(Runtime._wait_seconds(_polling(1_990, None, 1_000))) == pytest.approx(0.01)  # type: ignore[arg-type]


def test_step_times_count_each_step_in_its_bucket() -> None:
    times = StepTimes()
    for seconds in (0.004, 0.005, 0.012, 9.0):
        times.observe("poll", seconds)
    counts = times.counts["poll"]
    assert len(counts) == len(STEP_SECONDS_EDGES) + 1 and sum(counts) == 4
    assert counts[0] == 2 and counts[2] == 1 and counts[-1] == 1  # le 0.005 (inclusive), 0.015, +Inf
    assert times.sums["poll"] == pytest.approx(9.021)
