"""Journal entries, their lifecycle states and the ledger's result codes.

A :class:`JournalEntry` is a multi-leg, per-asset balanced movement: leg ``i`` adds
``amounts_minor[i]`` to account ``accounts[i]`` (> 0 credits, < 0 debits). Its ``entry_id`` is an
idempotency key. A pending entry reserves its legs (two-phase) until it is posted, voided, or
expires at ``timeout_at_ms``.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum

import numpy as np
import numpy.typing as npt

from clearlane.core.ledger.accounts import AccountKey

_INT64_MAX = int(np.iinfo(np.int64).max)
_INT64_MIN = int(np.iinfo(np.int64).min)
# Fixed-width part of an entry's canonical encoding: the three string lengths, at_ms, pending,
# has-timeout, timeout, leg count. Variable-length fields follow in that order.
_ENTRY_HEADER = struct.Struct("<QQQq??qQ")
_ENTRY_DOMAIN = b"clearlane.ledger.entry.v1"


class PostResult(IntEnum):
    """Outcome of a ledger operation. Codes are stable numbers: never renumbered.

    ``post`` checks in the numeric order of codes 1–12 and returns the first failure;
    ``post_pending`` / ``void_pending`` check codes 20–24 in numeric order. Every code other
    than ``OK`` leaves the ledger unchanged; ``DUPLICATE`` (for ``post``), ``ALREADY_POSTED``
    (for ``post_pending``) and ``ALREADY_VOIDED`` (for ``void_pending``) are the idempotent
    repeats of an operation that already succeeded.
    """

    OK = 0

    INVALID_ID = 1
    """entry_id is empty."""
    DUPLICATE = 2
    """entry_id exists with the same content (at_ms aside): a no-op."""
    ID_CONFLICT = 3
    """entry_id exists with different content."""
    EMPTY = 4
    """No legs."""
    TIMEOUT_REQUIRES_PENDING = 5
    """timeout_at_ms set on a single-phase entry."""
    TIMEOUT_NOT_AFTER_AT = 6
    """Pending entry whose timeout_at_ms <= at_ms: it would be born expired."""
    ZERO_AMOUNT_LEG = 7
    """A leg of amount 0: meaningless, and usually a sign of a rounding bug upstream."""
    AMOUNT_OUT_OF_RANGE = 8
    """Sum of |legs| exceeds MAX_AMOUNT_MINOR."""
    UNKNOWN_ACCOUNT = 9
    """A leg names an account index that does not exist."""
    UNBALANCED = 10
    """Legs do not sum to zero for some asset."""
    BALANCE_OUT_OF_RANGE = 11
    """A balance would leave ±MAX_BALANCE_MINOR (counting pending)."""
    FLOOR_EXCEEDED = 12
    """A debited account with a floor would end with posted - pending_debits < floor."""

    PENDING_NOT_FOUND = 20
    """No entry with that id."""
    NOT_TWO_PHASE = 21
    """The entry was posted directly, not as pending."""
    ALREADY_POSTED = 22
    """The pending entry was already posted."""
    ALREADY_VOIDED = 23
    """The pending entry was already voided."""
    EXPIRED = 24
    """The pending entry expired, or its timeout_at_ms <= the operation's at_ms."""

    @property
    def slug(self) -> str:
        return self.name.lower()


class EntryStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


STATUS_CODE: dict[EntryStatus, int] = {
    EntryStatus.PENDING: 1,
    EntryStatus.POSTED: 2,
    EntryStatus.VOIDED: 3,
    EntryStatus.EXPIRED: 4,
}
"""Stable byte per status, used in the state digest."""


class LedgerError(Exception):
    """A refused ledger operation, raised by the ``*_or_raise`` helpers."""

    def __init__(self, code: PostResult, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class LedgerInvariantError(Exception):
    """The ledger's stored state contradicts itself: a bug, never a user error."""


def check_time_ms(name: str, value: object) -> int:
    """Validate a timestamp: an int that fits int64 (status times are stored as int64)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    as_int = int(value)
    if not _INT64_MIN <= as_int <= _INT64_MAX:
        raise ValueError(f"{name} {as_int} does not fit int64")
    return as_int


def _legs_array(name: str, values: object) -> npt.NDArray[np.int64]:
    raw = np.asarray(values)
    if raw.ndim != 1:
        raise ValueError(f"JournalEntry.{name} must be 1-D, got shape {raw.shape}")
    if raw.shape[0] == 0:
        out = np.zeros(0, dtype=np.int64)
    elif raw.dtype.kind == "i":
        out = raw.astype(np.int64, copy=True)
    elif raw.dtype.kind == "u":
        if int(raw.max()) > _INT64_MAX:
            raise ValueError(f"JournalEntry.{name} has values beyond int64")
        out = raw.astype(np.int64, copy=True)
    else:
        # Floats would silently truncate money; objects would hide Python ints beyond int64.
        raise TypeError(f"JournalEntry.{name} must hold integers, got dtype {raw.dtype}")
    # The ledger keeps entries for audit and compares them for idempotency, so their legs must
    # not change behind its back.
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False, slots=True)
class JournalEntry:
    """One multi-leg journal entry. Arrays are copied to read-only int64 on construction.

    Equality compares every field; :meth:`same_content` (used for idempotency) ignores
    ``at_ms``, because a retried submission of the same entry arrives at a later time.
    """

    entry_id: str
    kind: str
    at_ms: int
    accounts: npt.NDArray[np.int64]
    amounts_minor: npt.NDArray[np.int64]
    pending: bool = False
    timeout_at_ms: int | None = None
    ref: str = ""

    def __post_init__(self) -> None:
        for name in ("entry_id", "kind", "ref"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"JournalEntry.{name} must be str")
        if not isinstance(self.pending, bool | np.bool_):
            raise TypeError("JournalEntry.pending must be bool")
        object.__setattr__(self, "pending", bool(self.pending))
        object.__setattr__(self, "at_ms", check_time_ms("JournalEntry.at_ms", self.at_ms))
        if self.timeout_at_ms is not None:
            object.__setattr__(
                self, "timeout_at_ms", check_time_ms("JournalEntry.timeout_at_ms", self.timeout_at_ms)
            )
        accounts = _legs_array("accounts", self.accounts)
        amounts = _legs_array("amounts_minor", self.amounts_minor)
        if accounts.shape != amounts.shape:
            raise ValueError(
                f"JournalEntry {self.entry_id!r}: {accounts.shape[0]} accounts but {amounts.shape[0]} amounts"
            )
        object.__setattr__(self, "accounts", accounts)
        object.__setattr__(self, "amounts_minor", amounts)

    @classmethod
    def from_legs(
        cls,
        entry_id: str,
        kind: str,
        at_ms: int,
        legs: Iterable[tuple[int, int]],
        *,
        pending: bool = False,
        timeout_at_ms: int | None = None,
        ref: str = "",
    ) -> JournalEntry:
        """Build from ``(account_index, amount_minor)`` pairs."""
        pairs = list(legs)
        return cls(
            entry_id=entry_id,
            kind=kind,
            at_ms=at_ms,
            accounts=np.asarray([a for a, _ in pairs]),
            amounts_minor=np.asarray([m for _, m in pairs]),
            pending=pending,
            timeout_at_ms=timeout_at_ms,
            ref=ref,
        )

    @property
    def n_legs(self) -> int:
        return int(self.accounts.shape[0])

    def same_content(self, other: JournalEntry) -> bool:
        """Equal in everything but ``at_ms`` (the idempotency comparison)."""
        return (
            self.entry_id == other.entry_id
            and self.kind == other.kind
            and self.pending == other.pending
            and self.timeout_at_ms == other.timeout_at_ms
            and self.ref == other.ref
            and np.array_equal(self.accounts, other.accounts)
            and np.array_equal(self.amounts_minor, other.amounts_minor)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JournalEntry):
            return NotImplemented
        return self.at_ms == other.at_ms and self.same_content(other)

    def __hash__(self) -> int:
        return hash((self.entry_id, self.kind, self.at_ms, self.pending, self.timeout_at_ms, self.ref))

    def canonical_parts(self) -> tuple[bytes, bytes | memoryview, bytes | memoryview]:
        """:meth:`canonical_bytes` as three pieces: the fixed header with the id, kind and ref,
        then the accounts' and the amounts' little-endian int64 bytes (``_le_bytes``: a copy of
        a few legs, a view of the entry's read-only arrays when they are many). The ledger
        records an entry and the audit chain digests it from these: joining the legs into one
        ``bytes`` copied every leg twice per entry (issue 18)."""
        entry_id = self.entry_id.encode("utf-8", "surrogatepass")
        kind = self.kind.encode("utf-8", "surrogatepass")
        ref = self.ref.encode("utf-8", "surrogatepass")
        timeout = self.timeout_at_ms
        header = _ENTRY_HEADER.pack(
            len(entry_id),
            len(kind),
            len(ref),
            self.at_ms,
            self.pending,
            timeout is not None,
            0 if timeout is None else timeout,
            self.n_legs,
        )
        return header + entry_id + kind + ref, _le_bytes(self.accounts), _le_bytes(self.amounts_minor)

    def canonical_bytes(self) -> bytes:
        """Unambiguous encoding of every field (at_ms included), stable across machines."""
        return b"".join(self.canonical_parts())

    def content_digest(self) -> bytes:
        """sha256 of :meth:`canonical_bytes` under a domain tag."""
        head, accounts, amounts = self.canonical_parts()
        h = hashlib.sha256(_ENTRY_DOMAIN + head)
        h.update(accounts)
        h.update(amounts)
        return h.digest()


def _le_bytes(values: npt.NDArray[np.int64]) -> bytes | memoryview:
    """The little-endian int64 bytes of a legs array: a copy of a short one, a view of a long
    one where no conversion is needed. An entry's legs are int64 in the machine's order; on a
    little-endian machine a short array's ``tobytes`` (~0.1 us) is cheaper than any view, and
    ``ascontiguousarray`` with a dtype to parse cost ~2 us a call — two calls an entry, two
    entries a batch (issue 18: the demo day posts ~200,000 entries)."""
    if _LITTLE_ENDIAN and values.dtype == _NATIVE_I64:
        if values.shape[0] <= _COPY_LEGS_MAX:
            return values.tobytes()
        if values.flags.c_contiguous:
            return values.data.cast("B")
    return np.ascontiguousarray(values, dtype="<i8").data.cast("B")


_LITTLE_ENDIAN = sys.byteorder == "little"
_NATIVE_I64 = np.dtype(np.int64)
_COPY_LEGS_MAX = 512  # legs up to 4 KiB a column are copied; a batch's hold (thousands) is viewed


def handed_over(
    entry_id: str,
    kind: str,
    at_ms: int,
    accounts: npt.NDArray[np.int64],
    amounts_minor: npt.NDArray[np.int64],
    pending: bool = False,
    timeout_at_ms: int | None = None,
    ref: str = "",
) -> JournalEntry:
    """``JournalEntry(...)`` for legs the caller has just built and hands over: when both are
    1-D int64 NumPy arrays of one length and every other field has its exact type and range,
    the arrays are made read-only in place — not copied — and the fields set without the
    class's per-field checks; otherwise the class builds the entry (and refuses what it
    refuses). The caller must not write to the arrays afterwards. The engine posts ~2 entries
    a batch from its kernels' fresh arrays (``kernel.hold_legs`` / ``release_legs``): the
    class's checks and copies were ~14 µs an entry in the 1M-trade bench (issue 18)."""
    if (
        type(accounts) is np.ndarray
        and type(amounts_minor) is np.ndarray
        and accounts.dtype == np.int64
        and amounts_minor.dtype == np.int64
        and accounts.ndim == 1
        and accounts.shape == amounts_minor.shape
        and type(entry_id) is str
        and type(kind) is str
        and type(ref) is str
        and type(pending) is bool
        and type(at_ms) is int
        and _INT64_MIN <= at_ms <= _INT64_MAX
        and (
            timeout_at_ms is None
            or (type(timeout_at_ms) is int and _INT64_MIN <= timeout_at_ms <= _INT64_MAX)
        )
    ):
        accounts.flags.writeable = False
        amounts_minor.flags.writeable = False
        entry: JournalEntry = object.__new__(JournalEntry)
        _SET_ID(entry, entry_id)
        _SET_KIND(entry, kind)
        _SET_AT(entry, at_ms)
        _SET_ACCOUNTS(entry, accounts)
        _SET_AMOUNTS(entry, amounts_minor)
        _SET_PENDING(entry, pending)
        _SET_TIMEOUT(entry, timeout_at_ms)
        _SET_REF(entry, ref)
        return entry
    return JournalEntry(entry_id, kind, at_ms, accounts, amounts_minor, pending, timeout_at_ms, ref)


# The slots' own setters: a frozen dataclass's fields, written once on a fresh object.
_SET_ID = vars(JournalEntry)["entry_id"].__set__
_SET_KIND = vars(JournalEntry)["kind"].__set__
_SET_AT = vars(JournalEntry)["at_ms"].__set__
_SET_ACCOUNTS = vars(JournalEntry)["accounts"].__set__
_SET_AMOUNTS = vars(JournalEntry)["amounts_minor"].__set__
_SET_PENDING = vars(JournalEntry)["pending"].__set__
_SET_TIMEOUT = vars(JournalEntry)["timeout_at_ms"].__set__
_SET_REF = vars(JournalEntry)["ref"].__set__


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """An entry as the ledger holds it: its current status and when that status was set."""

    entry: JournalEntry
    status: EntryStatus
    status_at_ms: int
    seq: int
    """Position in posting order (0-based, dense)."""


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A pending entry left PENDING (to POSTED, VOIDED or EXPIRED) at ``at_ms``."""

    entry_id: str
    status: EntryStatus
    at_ms: int


@dataclass(frozen=True, slots=True)
class LedgerChanges:
    """Everything that changed since the previous drain, so a store can write deltas only.

    Apply in this order: insert ``new_accounts``, insert ``new_entries`` (each starts PENDING if
    ``entry.pending`` else POSTED, at ``entry.at_ms``), apply ``status_changes`` in order, then
    rewrite the balance and floor rows of ``changed_accounts``.
    """

    new_accounts: tuple[tuple[int, AccountKey], ...]
    """(index, AccountKey) of accounts created since the last drain."""
    new_entries: tuple[JournalEntry, ...]
    status_changes: tuple[StatusChange, ...]
    changed_accounts: npt.NDArray[np.int64]
    """Sorted indices whose balances or floor changed, or that are new."""

    @property
    def empty(self) -> bool:
        return not (
            self.new_accounts or self.new_entries or self.status_changes or self.changed_accounts.shape[0]
        )
