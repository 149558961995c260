"""The records reconciliation reads: bank statements (camt.053/054, MT940), the exchange's batch
reports, and the one flat record shape both sides are matched in.

Amounts are integers in the currency's minor units, signed from the account holder's view (a
credit is positive). Frozen, no behaviour beyond derived figures and the identities used to
detect a statement imported twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from clearlane.core.proofs.canonical import canonical_json

# Balance codes in the order a statement's opening is taken: booked opening, else the closing
# booked balance of the previous statement (ISO 20022 ExternalBalanceType1Code); OPIN/CLIN are
# MT940's intermediate balances (:60M:/:62M:) of a statement split over several messages.
OPENING_CODES = ("OPBD", "PRCD", "OPIN")
CLOSING_CODES = ("CLBD", "CLIN")


@dataclass(frozen=True, slots=True)
class References:
    """What a bank line carries to tie it to an instruction; any may be missing."""

    end_to_end_id: str | None = None
    account_servicer_ref: str | None = None
    entry_ref: str | None = None
    instruction_id: str | None = None
    remittance: str | None = None
    customer_ref: str | None = None

    def best(self) -> str:
        """The most specific reference present ("" when none): end-to-end id first."""
        for ref in (self.end_to_end_id, self.customer_ref, self.instruction_id, self.remittance):
            if ref and ref != "NOTPROVIDED" and ref != "NONREF":
                return ref
        return ""


@dataclass(frozen=True, slots=True)
class EntryDetail:
    """One debulked transaction inside a (batch) entry; its amount may be absent."""

    amount_minor: int | None
    refs: References


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One booked or pending movement of a statement or notification."""

    index: int
    amount_minor: int
    currency: str
    status: str
    booking_date: str | None
    value_date: str | None
    reversal: bool
    bank_tx_code: str | None
    refs: References
    details: tuple[EntryDetail, ...] = ()


@dataclass(frozen=True, slots=True)
class Balance:
    code: str
    amount_minor: int
    date: str | None


@dataclass(frozen=True, slots=True)
class Statement:
    """One account statement (camt.053 ``Stmt``, camt.054 ``Ntfctn``, one MT940 message)."""

    format: str
    message_id: str | None
    statement_id: str
    account: str
    currency: str
    scale: int
    sequence: str | None
    balances: tuple[Balance, ...]
    entries: tuple[StatementEntry, ...]

    def balance(self, codes: tuple[str, ...]) -> Balance | None:
        for code in codes:
            for b in self.balances:
                if b.code == code:
                    return b
        return None

    @property
    def opening(self) -> Balance | None:
        return self.balance(OPENING_CODES)

    @property
    def closing(self) -> Balance | None:
        return self.balance(CLOSING_CODES)

    def booked_total(self) -> int:
        """Net of booked entries (pending and information lines do not move the balance)."""
        return sum(e.amount_minor for e in self.entries if e.status == "BOOK")

    def balance_gap(self) -> int | None:
        """closing - (opening + booked movements); 0 when the statement reconciles, None when it
        has no balances (camt.054 notifications)."""
        opening, closing = self.opening, self.closing
        if opening is None or closing is None:
            return None
        return closing.amount_minor - opening.amount_minor - self.booked_total()

    def identity_key(self) -> str:
        """The bank's own identity: format, account, statement id and sequence number."""
        return "|".join((self.format, self.account, self.statement_id, self.sequence or ""))

    def content_digest(self) -> str:
        """Duco-style identity by content: account, opening, every movement, closing. A bank
        that re-sends a statement under a new message id is still caught."""
        opening, closing = self.opening, self.closing
        body = {
            "account": self.account,
            "currency": self.currency,
            "opening": None if opening is None else [opening.amount_minor, opening.date],
            "closing": None if closing is None else [closing.amount_minor, closing.date],
            "entries": [
                [e.amount_minor, e.status, e.booking_date, e.value_date, e.refs.account_servicer_ref]
                for e in self.entries
            ],
        }
        return hashlib.sha256(canonical_json(body)).hexdigest()


def period_of(at_ms: int) -> str:
    """The business day (UTC date) a time belongs to: the period cases are opened in."""
    return datetime.fromtimestamp(at_ms // 1000, tz=UTC).date().isoformat()


def date_ms(text: str | None) -> int | None:
    """Milliseconds of an ISO date (midnight UTC) or date-time (its offset, UTC if none)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def trade_ids_digest(trade_ids: list[str] | tuple[str, ...]) -> str:
    """The batch report's digest: SHA-256 of the sorted trade ids joined by newlines."""
    return hashlib.sha256("\n".join(sorted(trade_ids)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class BatchReport:
    """The exchange's account of one of its batches (docs/RECONCILIATION.md, the format)."""

    exchange_batch_id: str
    end_ms: int
    trade_count: int
    digest: str
    totals: tuple[tuple[str, int], ...]
    trade_ids: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ReconRecord:
    """One record of either side in the flat shape the matcher reads.

    ``reference`` ties records by id (batch id, end-to-end id); ``account`` and the value day
    group split settlements; ``at_ms`` is what the date window is measured on; ``source_ref`` is
    the source's own id of the line (the bank's account-servicer reference), so two equal
    payments with different bank ids are never taken for one line sent twice.
    """

    record_id: str
    kind: str
    asset: str
    amount_minor: int
    at_ms: int
    reference: str = ""
    account: str = ""
    source_ref: str = ""


__all__ = [
    "Balance",
    "BatchReport",
    "EntryDetail",
    "ReconRecord",
    "References",
    "Statement",
    "StatementEntry",
    "date_ms",
    "period_of",
    "trade_ids_digest",
]
