"""The ledger journal as reconciliation reads it: the business day cut from the log's times,
each participant's end-of-day statement, and the internal records the journal gives the
matcher (collateral movements, escrow legs, ledger entries). Pure: the journal is an input.

A journal line posts when it is not pending (at its time) or when its pending hold is posted
(at the status change's time); a voided or expired hold never moves a posted balance. Balances
follow the ledger's sign: > 0 is a credit balance (the house owes the participant).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from clearlane.core.errors import InputError
from clearlane.core.recon.records import ReconRecord

DAY_MS = 86_400_000
JOURNAL_KINDS = ("collateral_movement", "escrow_leg", "ledger_entry")


class BusinessDayError(InputError, ValueError, code="CLOSE_DAY_INVALID"):
    """A business day or cut-off that is not a date (YYYY-MM-DD) or a time of day (HH:MM)."""


class Leg(NamedTuple):
    owner: str
    asset: str
    purpose: str
    lane: str
    amount_minor: int


class JournalLine(NamedTuple):
    """One ledger entry with its legs resolved to accounts (a row of ``ledger_entries``)."""

    entry_id: str
    kind: str
    ref: str
    at_ms: int
    pending: bool
    status: str  # posted | pending | voided | expired
    status_at_ms: int
    legs: tuple[Leg, ...]

    def posted_at(self) -> int | None:
        """When the entry moved posted balances, or None if it never did."""
        if not self.pending:
            return self.at_ms
        return self.status_at_ms if self.status == "posted" else None

    def pending_at(self, cut_ms: int) -> bool:
        """A hold still open at ``cut_ms`` (made before it, not resolved before it)."""
        return (
            self.pending and self.at_ms < cut_ms and (self.status == "pending" or self.status_at_ms >= cut_ms)
        )


def business_day(day: str, cutoff: str = "00:00") -> tuple[int, int]:
    """[start, end) in ms of business day ``day`` whose books close at ``cutoff`` UTC: the day
    runs from the previous calendar day's cut-off to this one's (a 17:00 cut-off: 17:00 the day
    before to 17:00), so the log's times alone decide which day an entry belongs to."""
    try:
        date = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise BusinessDayError(f"day: {day!r} is not a date YYYY-MM-DD") from None
    hours, sep, minutes = cutoff.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
        raise BusinessDayError(f"cutoff: {cutoff!r} is not a time of day HH:MM")
    cut = (int(hours) * 60 + int(minutes)) * 60_000
    end = int(date.timestamp() * 1000) + (cut if cut else DAY_MS)
    return end - DAY_MS, end


@dataclass
class StatementRow:
    """One account of a participant (asset, purpose) over the day."""

    asset: str
    purpose: str
    opening_minor: int = 0
    credits_minor: int = 0
    debits_minor: int = 0
    pending_credits_minor: int = 0
    pending_debits_minor: int = 0
    entries: int = 0

    @property
    def closing_minor(self) -> int:
        return self.opening_minor + self.credits_minor - self.debits_minor


@dataclass
class ParticipantStatement:
    participant: str
    day: str
    start_ms: int
    end_ms: int
    rows: list[StatementRow] = field(default_factory=list)
    movements: list[tuple[str, str, str, int, str, str, int]] = field(default_factory=list)
    """(entry id, kind, ref, posted at, asset, purpose, amount) of the day, in posting order."""


def _row(rows: dict[tuple[str, str], StatementRow], leg: Leg) -> StatementRow:
    key = (leg.asset, leg.purpose)
    if key not in rows:
        rows[key] = StatementRow(leg.asset, leg.purpose)
    return rows[key]


def _apply(line: JournalLine, leg: Leg, row: StatementRow, start: int, end: int) -> bool:
    """Fold one leg into its row; True when it is a movement of the day."""
    posted = line.posted_at()
    if line.pending_at(end):
        if leg.amount_minor > 0:
            row.pending_credits_minor += leg.amount_minor
        else:
            row.pending_debits_minor -= leg.amount_minor
    if posted is None or posted >= end:
        return False
    if posted < start:
        row.opening_minor += leg.amount_minor
        return False
    if leg.amount_minor > 0:
        row.credits_minor += leg.amount_minor
    else:
        row.debits_minor -= leg.amount_minor
    row.entries += 1
    return True


def participant_statements(
    lines: Iterable[JournalLine], participants: Iterable[str], day: str, window: tuple[int, int]
) -> list[ParticipantStatement]:
    """Each participant's statement for ``day``: per (asset, purpose) the opening balance at
    the day's start, the day's credits and debits, the closing balance and the holds still
    open at the cut; plus every movement of the day. Deterministic: rows by asset and purpose,
    movements by (posting time, entry id)."""
    start, end = window
    wanted = set(participants)
    rows: dict[str, dict[tuple[str, str], StatementRow]] = {p: {} for p in wanted}
    moves: dict[str, list[tuple[str, str, str, int, str, str, int]]] = defaultdict(list)
    for line in lines:
        for leg in line.legs:
            if leg.owner not in wanted or leg.lane:  # a participant account has lane ""
                continue
            if _apply(line, leg, _row(rows[leg.owner], leg), start, end):
                moves[leg.owner].append(
                    (line.entry_id, line.kind, line.ref, line.posted_at() or 0, leg.asset, leg.purpose, leg.amount_minor)
                )  # fmt: skip
    out = []
    for p in sorted(wanted):
        ordered = [rows[p][k] for k in sorted(rows[p])]
        out.append(
            ParticipantStatement(p, day, start, end, ordered, sorted(moves[p], key=lambda m: (m[3], m[0])))
        )
    return out


def _kind_of(line: JournalLine) -> str:
    if line.kind in ("collateral_deposit", "collateral_withdrawal"):
        return "collateral_movement"
    if line.kind.startswith("escrow_"):
        return "escrow_leg"
    return "ledger_entry"


def journal_records(lines: Iterable[JournalLine], kinds: Iterable[str]) -> list[ReconRecord]:
    """Internal records from the journal, each a posted leg on a participant's account:
    ``collateral_movement`` (a deposit or withdrawal; reference = its id — what the bank line
    of the transfer carries), ``escrow_leg`` (reference = the escrow id), ``ledger_entry`` (any
    other posted entry; reference = the entry's ref). Amounts in the house's view: money the
    participant brings in is positive."""
    wanted = set(kinds)
    out: list[ReconRecord] = []
    for line in lines:
        kind, posted = _kind_of(line), line.posted_at()
        if kind not in wanted or posted is None:
            continue
        reference = line.entry_id.split(":", 1)[1] if kind == "collateral_movement" else line.ref
        for i, leg in enumerate(line.legs):
            if leg.lane or (kind == "collateral_movement" and leg.purpose != "collateral"):
                continue
            out.append(ReconRecord(f"{kind}:{line.entry_id}:{i}", kind, leg.asset, leg.amount_minor, posted,
                                   reference, leg.owner, line.entry_id))  # fmt: skip
    return out


__all__ = [
    "JOURNAL_KINDS",
    "BusinessDayError",
    "JournalLine",
    "Leg",
    "ParticipantStatement",
    "StatementRow",
    "business_day",
    "journal_records",
    "participant_statements",
]
