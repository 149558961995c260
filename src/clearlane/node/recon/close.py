"""Each participant's end-of-day statement from the ledger journal (``clearlane close
--participant``): the business day cut from the log's times, amounts as decimals in the asset's
scale, as JSON or CSV rows. The rules are ``core.recon.eod``'s."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clearlane.core.money import format_minor
from clearlane.core.recon.amounts import currency_scale
from clearlane.core.recon.eod import (
    DAY_MS,
    JournalLine,
    ParticipantStatement,
    business_day,
    participant_statements,
)
from clearlane.node.events import iso
from clearlane.node.ports import ReconStore

CSV_COLUMNS = (
    "participant", "day", "start", "end", "asset", "purpose", "opening", "credits", "debits", "closing",
    "pending_credits", "pending_debits", "entries",
)  # fmt: skip


def latest_day(lines: list[JournalLine], cutoff: str) -> str:
    """The business day of the journal's latest entry (the log's time, not the wall clock)."""
    if not lines:
        return "1970-01-01"
    start, _ = business_day("1970-01-02", cutoff)
    shift = start - DAY_MS  # where the cut-off moves the day boundary (0 for a midnight cut)
    last = max(line.status_at_ms if line.pending else line.at_ms for line in lines)
    return datetime.fromtimestamp((last - shift) // DAY_MS * DAY_MS / 1000, tz=UTC).strftime("%Y-%m-%d")


def participant_close(
    store: ReconStore, participants: list[str] | None, day: str | None, cutoff: str = "00:00"
) -> list[ParticipantStatement]:
    """Statements of ``participants`` (None: every participant in the journal) for ``day``
    (None: the business day of the log's latest entry)."""
    if day is not None:
        business_day(day, cutoff)  # a bad day or cut-off is refused before the journal is read
    lines = store.journal()
    day = day or latest_day(lines, cutoff)
    window = business_day(day, cutoff)
    lines = [line for line in lines if line.at_ms < window[1]]
    if participants is None:
        participants = sorted({leg.owner for line in lines for leg in line.legs if not leg.lane})
    return participant_statements(lines, participants, day, window)


def _dec(minor: int, asset: str, scales: Mapping[str, int]) -> str:
    return format_minor(minor, scales.get(asset, currency_scale(asset)))


def csv_rows(statements: list[ParticipantStatement], scales: Mapping[str, int]) -> list[dict[str, Any]]:
    """One row per participant, asset and account purpose, amounts as decimals."""
    out = []
    for s in statements:
        for r in s.rows:
            out.append({
                "participant": s.participant, "day": s.day, "start": iso(s.start_ms), "end": iso(s.end_ms),
                "asset": r.asset, "purpose": r.purpose, "opening": _dec(r.opening_minor, r.asset, scales),
                "credits": _dec(r.credits_minor, r.asset, scales), "debits": _dec(r.debits_minor, r.asset, scales),
                "closing": _dec(r.closing_minor, r.asset, scales),
                "pending_credits": _dec(r.pending_credits_minor, r.asset, scales),
                "pending_debits": _dec(r.pending_debits_minor, r.asset, scales), "entries": r.entries,
            })  # fmt: skip
    return out


def statement_json(s: ParticipantStatement, scales: Mapping[str, int]) -> dict[str, Any]:
    """The statement with its movements (entry, kind, reference, time, asset, purpose, amount)."""
    rows = [
        {k: v for k, v in row.items() if k not in ("participant", "day", "start", "end")}
        for row in csv_rows([s], scales)
    ]
    moves = [
        {"entry_id": e, "kind": k, "ref": ref, "at_ms": at, "at": iso(at), "asset": a, "purpose": p,
         "amount": _dec(m, a, scales)}
        for e, k, ref, at, a, p, m in s.movements
    ]  # fmt: skip
    return {
        "participant": s.participant, "day": s.day, "start": iso(s.start_ms), "end": iso(s.end_ms),
        "accounts": rows, "movements": moves,
    }  # fmt: skip


__all__ = ["CSV_COLUMNS", "csv_rows", "latest_day", "participant_close", "statement_json"]
