"""Alert storage on both backends (migration 0009): an alert case keeps its ack lapse time and
covering silences through the generic ``cases`` table, and silences are saved, updated in
place (expired) and listed."""

from __future__ import annotations

from clearlane.adapters.sql.alerts import SqlSilenceStore
from clearlane.adapters.sql.recon import SqlReconStore
from clearlane.adapters.sql.store import Store
from clearlane.core.cases import Action, CaseKind, CaseSubject, Severity, act, open_case, verify_events
from clearlane.core.cases.silences import expire_silence, matcher, new_silence

T0 = 1_763_700_000_000


def test_alert_cases_and_silences_round_trip(db_target: str) -> None:
    store = Store.open(db_target, create=True)
    try:
        cases, silences = SqlReconStore(store), SqlSilenceStore(store)
        what = CaseSubject(CaseKind.ALERT, "R", "fp", str(T0), 'pool="fast"', 0, "s", "", 0, Severity.HIGH)
        case, opened = open_case(what, actor="rules", at_ms=T0)
        cases.save_case(case, opened)
        case, acked = act(case, Action.ACKNOWLEDGE, actor="ops", at_ms=T0 + 1, note="n", until_ms=T0 + 99)
        cases.save_case(case, acked)
        case, muted = act(case, Action.SILENCE, actor="alerts", at_ms=T0 + 2, silences=("sil-1",))
        cases.save_case(case, muted)
        assert (
            cases.case(case.case_id) == case and case.ack_until_ms == T0 + 99 and case.silenced_by == "sil-1"
        )
        assert cases.cases(active_only=True, kind="alert") == [case]
        assert verify_events(cases.case_events(case.case_id))
        s = new_silence([matcher({"name": "pool", "value": "fast"})], starts_at_ms=T0, ends_at_ms=T0 + 50,
                        created_by="ops", comment="c", at_ms=T0)  # fmt: skip
        silences.save_silence(s)
        ended = expire_silence(s, T0 + 10)
        silences.save_silence(ended)
        assert silences.silences() == [ended] and silences.silence(s.silence_id) == ended
        assert silences.silence("sil-none") is None
    finally:
        store.close()
