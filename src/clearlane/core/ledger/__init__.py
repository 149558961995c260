"""Double-entry ledger of the clearing engine.

Owns: accounts (one asset each, keyed by owner/asset/purpose/lane, addressed by dense index),
multi-leg journal entries balanced per asset, two-phase holds (pending → posted / voided /
expired by timeout), per-account balance floors, idempotent entry ids with result codes as data,
the trial balance, the end-of-day close, and deterministic digests of all of it. Money is int64
minor units throughout; nothing here reads a clock, time arrives as ``at_ms``.

Does not own: deciding what to post (the engine), or storing it (the store, fed through
:meth:`Ledger.drain_changes`).
"""

from clearlane.core.ledger.accounts import (
    HOUSE_OWNER,
    MAX_AMOUNT_MINOR,
    MAX_BALANCE_MINOR,
    PARTICIPANTS_LANE,
    TOTAL_LANE,
    AccountKey,
    AccountsTable,
    Purpose,
)
from clearlane.core.ledger.close import (
    AssetTotal,
    DayClose,
    PendingInFlight,
    TrialBalance,
    TrialBalanceLine,
)
from clearlane.core.ledger.entries import (
    EntryRecord,
    EntryStatus,
    JournalEntry,
    LedgerChanges,
    LedgerError,
    LedgerInvariantError,
    PostResult,
    StatusChange,
    handed_over,
)
from clearlane.core.ledger.journal import AccountBalance, Ledger

__all__ = [
    "HOUSE_OWNER",
    "MAX_AMOUNT_MINOR",
    "MAX_BALANCE_MINOR",
    "PARTICIPANTS_LANE",
    "TOTAL_LANE",
    "AccountBalance",
    "AccountKey",
    "AccountsTable",
    "AssetTotal",
    "DayClose",
    "EntryRecord",
    "EntryStatus",
    "JournalEntry",
    "Ledger",
    "LedgerChanges",
    "LedgerError",
    "LedgerInvariantError",
    "PendingInFlight",
    "PostResult",
    "Purpose",
    "StatusChange",
    "TrialBalance",
    "TrialBalanceLine",
    "handed_over",
]
