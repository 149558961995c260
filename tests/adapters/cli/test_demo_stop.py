"""Stopping the live demo with a dashboard open: its event streams end first, so the stop is
prompt and quiet (no cancelled ASGI task, no traceback on the console), as for `clearlane serve`."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx
import pytest

from clearlane.adapters.cli.demo import start_live
from clearlane.sim.generator import generate_day


def test_stopping_with_an_open_stream_ends_it_first(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    day = generate_day(trades=2_000, participants=12, assets=3, seed=4)
    paths = day.write(tmp_path / "day")
    demo = start_live(
        tmp_path, paths.config, day.trades, day.deposits, speed=600.0, start_ms=None, host="127.0.0.1", port=0
    )
    frames: list[str] = []
    ended: list[BaseException | None] = []
    opened = threading.Event()

    def listen() -> None:
        try:
            with (
                httpx.Client(base_url=demo.url, timeout=30) as client,
                client.stream("GET", "/v1/stream", params={"types": "stats"}) as response,
            ):
                opened.set()
                for line in response.iter_lines():
                    frames.append(line)
            ended.append(None)
        except BaseException as exc:  # the test reads it
            ended.append(exc)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        assert opened.wait(20), "the stream did not open"
        deadline = time.monotonic() + 20
        while not any(f.startswith("data:") for f in frames) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(f.startswith("data:") for f in frames), "no event arrived on the stream"
    finally:
        caplog.set_level(logging.ERROR)
        started = time.monotonic()
        demo.stop()
        stopped_in = time.monotonic() - started
    listener.join(10)
    assert ended == [None], f"the stream did not end cleanly: {ended}"
    assert stopped_in < 1.0, f"the stop waited {stopped_in:.2f} s (the grace period is 1 s)"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors
