"""Manual settlement on the real service (issue 17): operator only, through the ledger and the
log; the trade's lifecycle reads "settled manually", never final on L1; retries are duplicates;
refusals carry their stable codes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.service_support import EXAMPLE, Service, make_service, svc, trade_row

__all__ = ["svc"]

BODY = {
    "settlement_id": "ms-1",
    "flow_id": "T1",
    "operator": "ops-alice",
    "evidence_ref": "FEDWIRE IMAD 20261206MMQFMP2N000123",
    "evidence_sha256": hashlib.sha256(b"wire confirmation").hexdigest(),
}


def test_manual_settlement_route_is_operator_only_and_refuses_with_stable_codes(svc: Service) -> None:
    # CUST-VAULT is a legacy participant (legacy_opt_out): its trades route to L1. The test
    # service's accelerated chain includes it at once, so a manual settlement is refused (the
    # accepted path: the next test, on a chain that drops every transaction).
    posted = svc.client.post("/v1/trades", json=trade_row(1, buyer="CUST-VAULT"), headers=svc.h())
    assert posted.status_code == 201, posted.text
    forbidden = svc.client.post("/v1/manual-settlements", json=BODY, headers=svc.h("participant"))
    assert forbidden.status_code == 403
    bad = svc.client.post("/v1/manual-settlements", json={**BODY, "evidence_sha256": "x"}, headers=svc.h())
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "evidence_sha256"
    refused = svc.client.post("/v1/manual-settlements", json=BODY, headers=svc.h())
    assert refused.status_code == 409, refused.text
    # in a block already (512) or final (511), depending on how far the accelerated chain got
    assert refused.json()["errors"][0]["error"] in ("manual_on_chain", "manual_no_open_obligation")
    life = svc.client.get("/v1/trades/T1", headers=svc.h()).json()
    assert life["lane"] == "L1" and life["route_rule"] == "legacy opt-out"


def test_a_legacy_l1_trade_settled_manually_reads_settled_manually(tmp_path: Path) -> None:
    """A chain that drops every transaction: the L1 trade waits, the operator settles it."""
    config = tmp_path / "dropping.toml"
    text = EXAMPLE.read_text(encoding="utf-8")
    config.write_text(text.replace("drop_probability = 0.0", "drop_probability = 1.0"), encoding="utf-8")
    with make_service(tmp_path, config=config) as svc:
        events: list[str] = []
        svc.runtime.bus.add_listener(lambda groups: events.extend(g.type for g in groups))
        posted = svc.client.post("/v1/trades", json=trade_row(1, buyer="CUST-VAULT"), headers=svc.h())
        assert posted.status_code == 201, posted.text
        done = svc.client.post("/v1/manual-settlements", json=BODY, headers=svc.h())
        assert done.status_code == 201, done.text
        assert done.json()["settlement"]["entry_id"] == "manual:ms-1"
        again = svc.client.post("/v1/manual-settlements", json=BODY, headers=svc.h())
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        life = svc.client.get("/v1/trades/T1", headers=svc.h()).json()
        assert life["state"] == "settled_manually" and life["l1_final_at"] is None
        assert life["settled_manually_at"] and life["badge"].startswith("Settled manually off-system")
        assert life["transitions"][-1]["state"] == "settled_manually"
        assert "trade.settled_manually" in events and "trade.final" not in events
