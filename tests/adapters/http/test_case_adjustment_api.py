"""Resolving a case with a ledger adjustment (issue 13, docs/RECONCILIATION.md §8): the adjusting
entry goes through the engine (one door), then the case resolves naming it; the books close."""

from __future__ import annotations

from typing import Any

from clearlane.adapters.memory.recon import MemoryReconStore
from clearlane.core.cases import CaseKind, CaseSubject, Severity, open_case
from tests.service_support import Service, svc

__all__ = ["svc"]

T0 = 1_763_700_000_000
LEGS = [
    {"house": "fees", "asset": "USD", "amount": "-12.50"},
    {"participant": "MM-ALPHA", "asset": "USD", "amount": "12.50"},
]


def _case(svc: Service) -> str:
    store = MemoryReconStore()
    subject = CaseSubject(
        CaseKind.EXCEPTION, "recon.v1", "fp1", "2026-11-20", "fee line", 901, "fee booked twice", "USD", 1250,
        Severity.LOW,
    )  # fmt: skip
    case, event = open_case(subject, actor="recon", at_ms=T0)
    store.save_case(case, event)
    svc.app.state.recon = store
    return case.case_id


def _resolve(svc: Service, cid: str, who: str = "operator", **extra: Any) -> Any:
    body = {"action": "resolve", "resolution": "fixed_by_booking", "note": "refund the double fee", **extra}
    return svc.client.post(f"/v1/cases/{cid}/actions", json=body, headers=svc.h(who))


def test_resolve_with_adjustment_posts_the_entry_and_the_books_close(svc: Service) -> None:
    cid = _case(svc)
    engine = svc.runtime.node.engine
    alpha = int(engine.acct_available[engine.participant_lookup["MM-ALPHA"], engine.asset_lookup["USD"]])
    before = engine.ledger.balance(alpha).posted_minor
    adjustment = {"adjustment_id": "adj-1", "legs": LEGS}
    assert _resolve(svc, cid, "auditor", adjustment=adjustment).status_code == 403
    wrong = svc.client.post(
        f"/v1/cases/{cid}/actions",
        json={"action": "resolve", "resolution": "duplicate", "note": "x", "adjustment": adjustment},
        headers=svc.h(),
    )
    assert wrong.status_code == 422 and wrong.json()["field"] == "adjustment"
    unbalanced = {"adjustment_id": "adj-1", "legs": [LEGS[0], {**LEGS[1], "amount": "12.49"}]}
    refused = _resolve(svc, cid, adjustment=unbalanced)
    assert refused.status_code == 409 and refused.json()["errors"][0]["error"] == "adjustment_unbalanced"
    assert svc.client.get(f"/v1/cases/{cid}", headers=svc.h()).json()["case"]["state"] == "open"
    done = _resolve(svc, cid, adjustment=adjustment)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["adjustment"]["status"] == "accepted" and body["case"]["state"] == "resolved"
    assert "adjust:adj-1" in body["event"]["note"]
    assert body["adjustment"]["adjustment"]["entry_id"] == "adjust:adj-1"
    assert engine.ledger.balance(alpha).posted_minor == before + 1250  # posted exactly once
    assert engine.ledger.trial_balance(T0).balanced
    engine.ledger.check_invariants()
    # the same adjustment again (a retry after a lost answer): a duplicate, nothing posted twice
    again = _resolve(svc, cid, adjustment=adjustment)
    assert again.status_code == 409  # the case is resolved already: refused before posting
    assert engine.ledger.balance(alpha).posted_minor == before + 1250
