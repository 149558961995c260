"""``executed_at`` bounds on the service: the absolute range every path checks, and no more
than ``[intake] executed_at_future_ms`` ahead of the engine clock at receipt (422, code 110)."""

from __future__ import annotations

import time

from tests.service_support import Service, svc, trade_row

__all__ = ["svc"]


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def test_times_far_ahead_of_the_engine_clock_or_outside_the_range_are_refused(svc: Service) -> None:
    ahead = _iso(svc.runtime.clock.now_ms() + 86_400_000)
    for when in (ahead, 0, "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z"):
        r = svc.client.post("/v1/trades", json=trade_row(1, executed_at=when), headers=svc.h())
        assert r.status_code == 422, when
        assert (r.json()["code"], r.json()["field"]) == (110, "executed_at")
    assert (
        "ahead of the engine clock"
        in svc.client.post("/v1/trades", json=trade_row(1, executed_at=ahead), headers=svc.h()).json()[
            "reason"
        ]
    )
    rows = [trade_row(2), trade_row(3, executed_at=ahead), trade_row(4, executed_at=0)]
    r = svc.client.post("/v1/trades/batch", json={"trades": rows}, headers=svc.h())
    assert r.status_code == 422
    assert [(e["index"], e["code"]) for e in r.json()["errors"]] == [(1, 110), (2, 110)]
    assert svc.client.get("/v1/trades/T2", headers=svc.h()).status_code == 404
    now = _iso(svc.runtime.clock.now_ms())
    assert (
        svc.client.post("/v1/trades", json=trade_row(5, executed_at=now), headers=svc.h()).status_code == 201
    )
