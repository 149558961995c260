"""The monitor's divergence, trust, policy and alerts on a runtime driven by the test (issue 15):
marks out of band raise one alert and (policy enabled) halt the asset's L2 routing through a
logged config change that a replay reproduces; a source that never reports is "no data"; flow
counts per exchange batch are compared across the venue, the batch report and the records."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from clearlane.adapters.embedded import EMBEDDED
from clearlane.core.monitor.policy import HaltPolicy
from clearlane.core.recon.records import BatchReport
from clearlane.node.events import ALERT, EventFilter, EventGroup
from clearlane.node.monitor.service import Monitor, MonitorOptions
from clearlane.node.monitor.sources import MonitorInputError
from clearlane.node.runtime import AcceleratedClock, Runtime, RuntimeOptions
from tests.conftest import EXAMPLE_CONFIG, T0


def _runtime(tmp_path: Path) -> Runtime:
    clock = AcceleratedClock(1, T0, monotonic=lambda: 1000.0)  # engine time stands at T0
    options = RuntimeOptions(tune_process=False)
    rt = Runtime(tmp_path / "c.db", EXAMPLE_CONFIG, clock=clock, options=options, opener=EMBEDDED)
    rt._live = True
    rt._thread = threading.Thread(target=lambda: None)
    rt._thread.start()
    return rt


def _alerts(seen: list[EventGroup]) -> list[dict[str, Any]]:
    flt = EventFilter(types=frozenset({ALERT}))
    return [e["data"] for g in seen if g.type == ALERT for e in g.events(flt)]


def _trade(i: int, exch: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trade_id": f"T{i:04d}",
        "venue": "XCL",
        "symbol": "BTC/USD",
        "buyer": "MM-ALPHA",
        "seller": "MM-BETA",
        "quantity": "0.01",
        "price": "65000",
        "executed_at": T0,
    }
    if exch is not None:
        row["exch_batch_id"] = exch
    return row


def test_diverging_marks_alert_once_and_halt_l2_routing_replayably(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    seen: list[EventGroup] = []
    rt.bus.add_listener(seen.extend)
    options = MonitorOptions(halt=HaltPolicy(enabled=True, resume_after_ms=60_000), expect_marks=("feed-b",))
    monitor = Monitor.attach(rt, options)
    try:
        monitor.sources.mark("feed-a", "BTC", "65100", T0)  # 16 bps: within the 100 bps band
        monitor.evaluate(T0)
        kinds = [a["kind"] for a in _alerts(seen)]
        assert kinds == ["monitor_no_data"]  # feed-b never reported: "no data" is an alert
        assert rt.node.engine.config.l2_halted == frozenset()
        monitor.sources.mark("feed-a", "BTC", "70000", T0 + 1_000)  # 770 bps
        monitor.evaluate(T0 + 1_000)
        monitor.evaluate(T0 + 2_000)  # persists: no second alert
        kinds = [a["kind"] for a in _alerts(seen)]
        assert kinds.count("monitor_diverged") == 1 and "monitor_policy" in kinds
        assert rt.node.engine.config.l2_halted == frozenset({"BTC"})
        future = rt.submit_trades([_trade(1)])
        rt._iteration()
        (receipt,) = future.result(timeout=0)
        assert receipt["lane"] == "L1"  # market makers' BTC trade: L2 "fast" without the halt
        record = rt.rm.find_trade("T0001")
        assert record is not None and record["route_rule"].startswith("monitor:")
        scores = monitor.trust_scores()
        assert scores["feed-a"]["1h"]["agreement"] < 1.0 and scores["feed-b"]["1h"]["score"] == 0.0
        root = rt.queries.state_root()
    finally:
        rt.stop()
    replayed = EMBEDDED.open_node(tmp_path / "c.db", EXAMPLE_CONFIG)
    try:
        assert replayed.engine.config.l2_halted == frozenset({"BTC"})
        assert replayed.engine.state_root() == root
    finally:
        replayed.close()


def test_flow_counts_per_exchange_batch_are_compared(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    seen: list[EventGroup] = []
    rt.bus.add_listener(seen.extend)
    monitor = Monitor.attach(rt, MonitorOptions())
    try:
        future = rt.submit_trades([_trade(i, "EXB-1") for i in range(4)])
        rt._iteration()
        future.result(timeout=0)
        monitor.sources.count("venue", "EXB-1", 4, T0)
        report = BatchReport("EXB-1", T0, 5, "0" * 64, ())
        assert monitor.sources.batch_reports([report], T0) == 1
        found = monitor.evaluate(T0 + 1_000)
        mismatches = sorted(f.sources for f in found if f.kind == "mismatch")
        assert mismatches == [("batch_report", "clearlane"), ("batch_report", "venue")]
        assert [a["kind"] for a in _alerts(seen)].count("monitor_mismatch") == 2
        snap = monitor.divergence_snapshot()
        assert snap["counts"]["EXB-1"] == {"batch_report": 5, "clearlane": 4, "venue": 4}
        with pytest.raises(MonitorInputError, match="mark_usd"):
            monitor.sources.mark("feed-a", "BTC", "1e5", T0)
        with pytest.raises(MonitorInputError, match="reserved"):
            monitor.sources.count("clearlane", "EXB-1", 1, T0)
    finally:
        rt.stop()


def test_a_monitor_failure_never_stops_clearing(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    monitor = Monitor.attach(rt, MonitorOptions())
    try:

        def broken(now_ms: int) -> None:
            raise RuntimeError("boom")

        monitor.canaries.tick = broken  # type: ignore[method-assign]
        future = rt.submit_trades([_trade(7)])
        rt._iteration()  # the hook fails inside the loop's iteration
        assert future.result(timeout=0)[0]["status"] == "accepted"
        assert rt.failed is None and monitor.errors == 1 and "boom" in str(monitor.snapshot()["last_error"])
    finally:
        rt.stop()
