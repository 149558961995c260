"""The escrow API on the real service (SQLite store, runtime, auth): open, act, read; a
participant acts only as itself and sees only its escrows; refusals carry the escrow codes;
retries are duplicates; every transition is an ``escrow.*`` event."""

from __future__ import annotations

from typing import Any

from clearlane.node.events import ESCROW_EVENTS, EventFilter
from tests.service_support import Service, svc

__all__ = ["svc"]

TERMS = {
    "asset": "USD",
    "amount": "2500.00",
    "buyer": "RTL-0001",
    "seller": "BRK-NORTH",
    "platform": "MARKET",
    "arbiter": "ARBITER",
    "fee_bps": 100,
    "conditions": [{"condition_id": "delivered", "kind": "delivery_confirmed", "role": "buyer"}],
}


def _act(svc: Service, who: str, action: str, action_id: str, **fields: Any) -> Any:
    body = {"action": action, "action_id": action_id, **fields}
    return svc.client.post("/v1/escrows/car-7/actions", json=body, headers=svc.h(who))


def test_an_escrow_through_the_api(svc: Service) -> None:
    seen: list[dict[str, Any]] = []
    foreign: list[dict[str, Any]] = []
    stranger = EventFilter(types=frozenset(ESCROW_EVENTS), participant="MM-ALPHA")
    svc.runtime.bus.add_listener(
        lambda groups: seen.extend(e for g in groups for e in g.events(EventFilter()))
    )
    svc.runtime.bus.add_listener(lambda groups: foreign.extend(e for g in groups for e in g.events(stranger)))
    deposit = {"deposit_id": "d1", "participant": "RTL-0001", "asset": "USD", "amount": "3000"}
    assert svc.client.post("/v1/collateral/deposits", json=deposit, headers=svc.h()).status_code == 201
    opened = svc.client.post(
        "/v1/escrows",
        json={"action_id": "o1", "escrow_id": "car-7", "actor": "MARKET", "terms": TERMS},
        headers=svc.h(),
    )
    assert opened.status_code == 201, opened.text
    assert opened.json()["escrow"]["state"] == "draft"
    assert _act(svc, "retail", "agree", "a1").status_code == 201
    patched = svc.client.patch(  # the Escrow.com-style single endpoint does the same
        "/v1/escrows/car-7", json={"action": "agree", "action_id": "a2"}, headers=svc.h("other")
    )
    assert patched.status_code == 201, patched.text
    funded = _act(svc, "retail", "fund", "f1")
    assert funded.json()["escrow"]["state"] == "funded"
    assert funded.json()["escrow"]["where"]["escrow"] == 250_000
    # the seller may not confirm the buyer's delivery: 409 with the escrow code
    refused = _act(svc, "other", "satisfy", "s1", condition_id="delivered")
    assert refused.status_code == 409, refused.text
    assert refused.json()["errors"][0]["error"] == "escrow_role_not_allowed"
    done = _act(svc, "retail", "satisfy", "s2", condition_id="delivered")
    assert done.json()["escrow"]["state"] == "released"
    again = _act(svc, "retail", "satisfy", "s2", condition_id="delivered")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    # a participant acts only as itself, and sees only its own escrows
    forged = _act(svc, "retail", "release", "r1", actor="MARKET")
    assert forged.status_code == 403
    assert svc.client.get("/v1/escrows/car-7", headers=svc.h("participant")).status_code == 404
    assert svc.client.get("/v1/escrows", headers=svc.h("participant")).json()["items"] == []
    mine = svc.client.get("/v1/escrows", headers=svc.h("retail")).json()["items"]
    assert [e["escrow_id"] for e in mine] == ["car-7"]
    types = [e["type"] for e in seen if e["type"].startswith("escrow.")]
    assert types[:4] == ["escrow.opened", "escrow.updated", "escrow.agreed", "escrow.funded"]
    assert "escrow.released" in types
    released = next(e for e in seen if e["type"] == "escrow.released")
    assert (
        released["data"]["from"] == "releasable"
        and released["data"]["movements"][0]["movement"] == "released"
    )
    assert not [e for e in foreign if e["type"].startswith("escrow.")]  # not a party: sees none


def test_a_body_that_is_no_escrow_action_is_422_and_logs_nothing(svc: Service) -> None:
    before = svc.runtime.node.engine.applied_seq
    r = svc.client.post(
        "/v1/escrows/x/actions", json={"action": "teleport", "action_id": "t"}, headers=svc.h()
    )
    assert r.status_code == 422, r.text
    r = svc.client.post(
        "/v1/escrows/x/actions",
        json={"action": "release", "action_id": "t", "actor": "P", "amount": "1e3"},
        headers=svc.h(),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "amount"
    assert svc.runtime.node.engine.applied_seq == before


def test_escrow_payout_ids_are_refused_at_the_edge(svc: Service) -> None:
    """Payment ids ``escrow:…`` are the engine's escrow payouts: 422 ``reserved_id`` (117)."""
    body = {
        "payment_id": "escrow:a1:0",
        "payer": "MM-ALPHA",
        "payee": "BRK-NORTH",
        "asset": "USD",
        "amount": "1",
    }
    refused = svc.client.post("/v1/payments", json=body, headers=svc.h())
    assert refused.status_code == 422, refused.text
    error = refused.json()["errors"][0]
    assert (error["code"], error["error"], error["field"]) == (117, "reserved_id", "payment_id")
