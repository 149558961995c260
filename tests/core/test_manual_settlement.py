"""Manual settlement of an L1 obligation (issue 17): through the ledger, refused when it must be,
exactly once, and never reported as final on the base layer."""

from __future__ import annotations

import hashlib

from clearlane.core.config import ClearingConfig
from clearlane.core.engine import Engine, LogEntry
from clearlane.core.model import ids
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import L1SettledManually
from clearlane.core.model.inputs import log_payload
from clearlane.testing.harness import Harness
from tests.conftest import T0, chunk, trade

EVIDENCE = hashlib.sha256(b"wire confirmation FED-0001").hexdigest()


def manual(settlement_id: str, flow_id: str, **extra: str) -> dict[str, str]:
    return {
        "settlement_id": settlement_id,
        "flow_id": flow_id,
        "operator": "ops-alice",
        "evidence_ref": "FEDWIRE IMAD 20261206MMQFMP2N000123",
        "evidence_sha256": EVIDENCE,
        **extra,
    }


def _l1_trade(config: ClearingConfig) -> Harness:
    h = Harness(config, T0)
    h.apply("trades", chunk([trade(0, "CUST-VAULT", "MM-ALPHA")]), T0)  # legacy opt-out → L1
    return h


def test_manual_settlement_posts_the_gross_settlement_once(config: ClearingConfig) -> None:
    h = _l1_trade(config)
    before = h.engine.ledger.n_entries
    step = h.apply("manual_settlement", manual("ms-1", "T000000"), T0 + 1_000)
    (event,) = step.manual_settlements()
    assert isinstance(event, L1SettledManually) and event.flow_id == "T000000"
    assert event.entry_id == ids.manual_settle_entry_id("ms-1") and event.evidence_sha256 == EVIDENCE
    assert h.engine.ledger.n_entries == before + 1
    record = h.engine.ledger.record(event.entry_id)
    assert record is not None and record.entry.kind == "l1_manual"
    (update,) = step.l1_updates()
    row = update.table.to_pylist()[0]
    # final in the books, never in a block: the lifecycle reads "settled manually"
    assert row["final_ms"] == T0 + 1_000 and row["included_height"] == ids.MANUAL_HEIGHT
    assert not h.engine.l1_groups and not h.engine.l1_txs
    h.engine.ledger.check_invariants()  # the books close (zero trial balance)
    # the same id again: a no-op; other content under it: 116
    again = h.apply("manual_settlement", manual("ms-1", "T000000"), T0 + 2_000)
    assert not again.manual_settlements() and again.duplicates == 1 and not again.conflicts
    clash = h.apply("manual_settlement", manual("ms-1", "T000000", note="other"), T0 + 3_000)
    assert [c.code for c in clash.conflicts] == [RejectCode.ID_CONFLICT]
    # the obligation is settled: a second settlement under a new id is refused
    late = h.apply("manual_settlement", manual("ms-2", "T000000"), T0 + 4_000)
    assert [r.code for r in late.rejects()] == [RejectCode.MANUAL_NO_OPEN_OBLIGATION]
    assert h.engine.ledger.n_entries == before + 1
    # the chain later includes the old transaction: nothing more is posted
    h.run_until(T0 + 60_000)
    assert h.engine.ledger.n_entries == before + 1 and h.engine.stats.l1_final == 0


def test_refused_when_not_an_open_l1_obligation_or_on_chain(config: ClearingConfig) -> None:
    h = _l1_trade(config)
    h.apply("trades", chunk([trade(1, "MM-ALPHA", "RTL-0001")]), T0)  # L2
    for flow_id in ("NOPE", "T000001"):
        step = h.apply("manual_settlement", manual(f"x-{flow_id}", flow_id), T0 + 1)
        (reject,) = step.rejects()
        assert reject.code is RejectCode.MANUAL_NO_OPEN_OBLIGATION and reject.field == "flow_id"
        assert not step.ledger.new_entries and not step.l1_updates()
    # once its transaction is in a block, it settles on chain
    now = T0
    for _ in range(60):
        now += 500
        h.advance(now)
        if any(g.included_height[0] >= 0 for g in h.engine.l1_groups.values()):
            break
    assert h.engine.l1_groups, "the transaction went final before the test saw it included"
    step = h.apply("manual_settlement", manual("late", "T000000"), h.engine.now_ms)
    assert [r.code for r in step.rejects()] == [RejectCode.MANUAL_ON_CHAIN]
    assert not step.ledger.new_entries


def test_replay_gives_the_same_state_root(config: ClearingConfig) -> None:
    h = _l1_trade(config)
    h.apply("manual_settlement", manual("ms-1", "T000000", note="legacy client, wire"), T0 + 5)
    again = Engine(config)
    for entry in h.log:
        again.apply(LogEntry(entry.seq, entry.at_ms, entry.kind, log_payload(entry.kind, _raw(entry))))
    assert again.pre_root() == h.engine.pre_root()  # the node also seals its chain head


def _raw(entry: LogEntry) -> object:
    payload = entry.payload
    return payload.model_dump(mode="json") if hasattr(payload, "model_dump") else payload
