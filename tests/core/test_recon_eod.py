"""The end-of-day statement's rules: the business day cut, what posts when (a hold posts at its
status change, a voided one never), holds open at the cut, and the journal's internal records."""

from __future__ import annotations

import pytest

from clearlane.core.recon.eod import (
    BusinessDayError,
    JournalLine,
    Leg,
    business_day,
    journal_records,
    participant_statements,
)

H = 3_600_000
START, END = business_day("2026-11-20")


def _line(entry_id: str, kind: str, at: int, legs: list[tuple[str, str, int]], status: str = "posted",
          status_at: int | None = None, pending: bool = False) -> JournalLine:  # fmt: skip
    resolved = tuple(Leg(o, "USD", p, "" if o != "HOUSE" else "L2:fast", a) for o, p, a in legs)
    return JournalLine(
        entry_id, kind, "ref", at, pending, status, at if status_at is None else status_at, resolved
    )


def test_statement_folds_the_day() -> None:
    assert business_day("2026-11-20", "17:00") == (START - 7 * H, START + 17 * H)
    with pytest.raises(BusinessDayError, match="cutoff"):
        business_day("2026-11-20", "25:00")
    lines = [
        _line("deposit:D1", "collateral_deposit", START - H, [("HOUSE", "external", -500), ("A", "collateral", 500)]),
        _line("h1", "l2_hold", START + H, [("A", "available", -200), ("HOUSE", "settlement", 200)], "posted",
              START + 2 * H, pending=True),
        _line("h2", "l2_hold", START + H, [("A", "available", -50), ("HOUSE", "settlement", 50)], "voided",
              START + 3 * H, pending=True),
        _line("h3", "l2_hold", END - H, [("A", "available", -70), ("HOUSE", "settlement", 70)], "posted",
              END + H, pending=True),
        _line("x", "l1_settle", END + H, [("A", "available", 999), ("HOUSE", "settlement", -999)]),
    ]  # fmt: skip
    (a,) = participant_statements(lines, ["A"], "2026-11-20", (START, END))
    rows = {r.purpose: r for r in a.rows}
    assert (rows["collateral"].opening_minor, rows["collateral"].closing_minor) == (500, 500)
    available = rows["available"]
    assert (available.opening_minor, available.debits_minor, available.credits_minor) == (0, 200, 0)
    assert available.closing_minor == -200 and available.pending_debits_minor == 70 and available.entries == 1
    assert [m[0] for m in a.movements] == ["h1"]
    records = journal_records(lines, ["collateral_movement", "ledger_entry"])
    assert [(r.kind, r.reference, r.amount_minor, r.account) for r in records] == [
        ("collateral_movement", "D1", 500, "A"), ("ledger_entry", "ref", -200, "A"),
        ("ledger_entry", "ref", -70, "A"), ("ledger_entry", "ref", 999, "A"),
    ]  # fmt: skip
