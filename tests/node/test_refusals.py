"""A ledger refusal the engine meets at run time is a reject, an alert.raised event and a
Prometheus counter; the runtime stays up (issue 11)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from clearlane.adapters.embedded import EMBEDDED
from clearlane.adapters.http.metrics import Metrics
from clearlane.core.engine.limits import TRANSFER_MAX_MINOR
from clearlane.node.events import ALERT, EventFilter, EventGroup
from clearlane.node.runtime import Runtime, RuntimeOptions, SubmissionRefused
from tests.conftest import EXAMPLE_CONFIG


def _runtime(tmp_path: Path) -> Runtime:
    runtime = Runtime(
        tmp_path / "c.db", EXAMPLE_CONFIG, options=RuntimeOptions(tune_process=False), opener=EMBEDDED
    )
    # The loop's iterations are driven by the test (no thread): the runtime takes submissions.
    runtime._live = True
    runtime._thread = threading.Thread(target=lambda: None)
    runtime._thread.start()
    return runtime


def test_a_deposit_that_overflows_the_house_account_raises_an_alert_not_the_runtime(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    seen: list[EventGroup] = []
    runtime.bus.add_listener(seen.extend)
    amount = f"{TRANSFER_MAX_MINOR // 100}.00"
    try:
        futures = []
        for k, who in enumerate(("MM-ALPHA", "MM-BETA", "BRK-NORTH")):
            body = {"deposit_id": f"D{k}", "participant": who, "asset": "USD", "amount": amount}
            futures.append(runtime.submit_events("collateral_deposit", [body]))
            runtime._iteration()
        assert all(f.result(timeout=0) for f in futures[:2])
        with pytest.raises(SubmissionRefused) as refused:
            futures[2].result(timeout=0)
        assert [(e.code, e.error, e.field) for e in refused.value.errors] == [
            (502, "ledger_refused", "amount")
        ]
        assert runtime.failed is None  # (the loop thread is the test here)
        alerts = [g for g in seen if g.type == ALERT]
        assert len(alerts) == 1
        (event,) = alerts[0].events(EventFilter(types=frozenset({ALERT})))
        assert event["data"]["kind"] == "ledger_refused" and "D2" in event["data"]["message"]
        assert alerts[0].events(EventFilter(types=frozenset({ALERT}), participant="MM-ALPHA")) == []
        assert runtime.counters.engine_rejects == {"ledger_refused": 1}
        text = Metrics(runtime).render().decode()
        assert 'clearlane_alerts_total{kind="ledger_refused"} 1.0' in text
        assert 'clearlane_rejects_total{code="502",error="ledger_refused",source="engine"} 1.0' in text
    finally:
        runtime.stop()


def test_a_failed_settlement_reads_failed_in_the_lifecycle_not_final(tmp_path: Path) -> None:
    """The lifecycle (``clearlane status``, the API, the dashboard) names a settlement the ledger
    refused: state ``failed`` and a badge with the code and reason, never "final"."""
    from clearlane.adapters.embedded import open_node
    from clearlane.node.report import trade_lifecycle
    from tests.conftest import EXAMPLE_CONFIG, T0, chunk, trade

    node = open_node(tmp_path / "failed.db", EXAMPLE_CONFIG)
    rows = [
        trade(i, "BRK-NORTH", "RTL-0001", qty=(10_000_000_000, 0), price=(65000, 0), hint="L1")
        for i in range(5)
    ]
    node.submit("trades", chunk(rows), T0)
    node.settle_until_quiet()
    failed = trade_lifecycle(node.store, "T000004")
    settled = trade_lifecycle(node.store, "T000000")
    node.close()
    assert failed is not None and settled is not None
    assert failed["state"] == "failed" and failed["transitions"][-1]["state"] == "failed"
    assert failed["badge"].startswith("Settlement failed — ledger_refused (502)")
    assert settled["state"] == "final" and settled["badge"].startswith("Settled on Layer-1")
