"""The ledger: all-or-nothing posting of multi-leg entries, two-phase holds, expiry, audit.

Every operation is a deterministic function of the ledger state and its arguments; time only
enters as the ``at_ms`` / ``now_ms`` the caller passes. Refusals are returned as
:class:`PostResult` codes and leave the state (and :meth:`Ledger.state_digest`) unchanged.

Checks on a new entry, first failure wins (codes in numeric order):

 1. INVALID_ID               entry_id is empty
 2. DUPLICATE                id exists, same content (at_ms aside)  -> no-op
 3. ID_CONFLICT              id exists, different content
 4. EMPTY                    no legs
 5. TIMEOUT_REQUIRES_PENDING timeout on a single-phase entry
 6. TIMEOUT_NOT_AFTER_AT     pending timeout_at_ms <= at_ms
 7. ZERO_AMOUNT_LEG          a leg is 0
 8. AMOUNT_OUT_OF_RANGE      sum |legs| > MAX_AMOUNT_MINOR
 9. UNKNOWN_ACCOUNT          leg account index not created
10. UNBALANCED               legs do not sum to 0 for some asset
11. BALANCE_OUT_OF_RANGE     an account would leave ±MAX_BALANCE_MINOR (counting pending)
12. FLOOR_EXCEEDED           see below

Floors. For an account with a floor that the entry debits, the conservative available balance
``posted - pending_debits`` must stay >= floor after the entry: a pending entry counts its
negative legs in full and its positive legs not at all (they are not final); a single-phase
entry counts its net per-account amount, and only accounts it nets to a decrease are checked.
Posting or voiding a pending entry can only raise the available balance, so floors are not
re-checked then; a floor set above the current available balance just blocks further debits.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clearlane.core.ledger import _kernel
from clearlane.core.ledger._encoding import CanonicalHasher
from clearlane.core.ledger._numeric import exact_group_sums
from clearlane.core.ledger.accounts import (
    MAX_AMOUNT_MINOR,
    MAX_BALANCE_MINOR,
    AccountBook,
    AccountKey,
    AccountsTable,
)
from clearlane.core.ledger.close import (
    DayClose,
    PendingInFlight,
    TrialBalance,
    build_day_close,
    build_trial_balance,
)
from clearlane.core.ledger.entries import (
    STATUS_CODE,
    EntryRecord,
    EntryStatus,
    JournalEntry,
    LedgerChanges,
    LedgerError,
    LedgerInvariantError,
    PostResult,
    StatusChange,
    check_time_ms,
)

_I64 = npt.NDArray[np.int64]

SMALL_ENTRY_MAX_LEGS = 2
"""Entries with at most this many legs are checked in plain Python, wider ones by the compiled
kernel (ledger/_kernel.py; its numpy statement, :meth:`Ledger._check_wide`, gives the refusals'
detail); all paths decide identically, the split is only about speed. Measured per post on the
2-core machine (20,000 entries, best of 3): Python 18–41 µs from 2 to 16 legs, the kernel path
~9 µs whatever the width (the kernel itself ~4 µs at 100 legs, ~25 µs at 1,000); a 2-leg
single-phase entry (a deposit) is no faster compiled. The numpy rules alone cost ~27 µs an
entry up to a few hundred legs."""

DIGEST_BLOCK_ACCOUNTS = 2048
"""The balance arrays enter :meth:`Ledger.state_digest` in blocks of this many accounts, each
block's digest cached until a change touches one of its accounts (every balance, floor or account
change marks the account dirty), so a step that touches a few accounts rehashes a few blocks
instead of every balance array."""

# Stale (already resolved) timeouts stay in the heap until popped; rebuild once they dominate so
# the heap does not grow with every resolved hold.
_HEAP_COMPACT_MIN = 1024
# Entries whose canonical bytes wait for one hash update at most (see ``Ledger._unhashed``).
_UNHASHED_MAX = 4096


@dataclass(frozen=True, slots=True)
class AccountBalance:
    posted_minor: int
    pending_debits_minor: int
    pending_credits_minor: int

    @property
    def available_minor(self) -> int:
        """What the floor check compares against: posted minus pending debits."""
        return self.posted_minor - self.pending_debits_minor


class _Record:
    __slots__ = ("entry", "seq", "status", "status_at_ms")

    def __init__(self, entry: JournalEntry, seq: int, status: EntryStatus, status_at_ms: int) -> None:
        self.entry = entry
        self.seq = seq
        self.status = status
        self.status_at_ms = status_at_ms

    def view(self) -> EntryRecord:
        return EntryRecord(self.entry, self.status, self.status_at_ms, self.seq)


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: PostResult
    detail: str


@dataclass(frozen=True, slots=True)
class _Plan:
    """Validated new balances of the touched accounts, written only once every check passed.

    ``touched`` is sorted and unique; exactly the arrays the entry changes are set (posted for
    a single-phase entry, both pending arrays for a pending one). Small entries carry Python
    lists, wide ones numpy arrays; both index the same way.
    """

    touched: _I64 | list[int]
    posted_after: _I64 | list[int] | None
    pending_debits_after: _I64 | list[int] | None
    pending_credits_after: _I64 | list[int] | None


class Ledger:
    """Deterministic double-entry ledger over integer minor units (see module docstring)."""

    def __init__(
        self,
        *,
        initial_accounts: int = 64,
        initial_entries: int = 1024,
        small_entry_max_legs: int = SMALL_ENTRY_MAX_LEGS,
        retain_final: bool = True,
    ) -> None:
        self._small_entry_max_legs = small_entry_max_legs
        self._book = AccountBook(initial_accounts)
        self._records: dict[str, _Record] = {}
        # Entries in posting order from absolute seq ``_by_seq_base`` (0 unless final entries
        # are released: see :meth:`release_final`).
        self._by_seq: list[_Record] = []
        self._by_seq_base = 0
        self._n_entries = 0
        self.retain_final = retain_final
        self._resolved: dict[str, EntryStatus] = {}  # released holds (retain_final=False)
        entries_capacity = max(1, int(initial_entries))
        self._status_codes = np.zeros(entries_capacity, dtype=np.uint8)
        self._status_at_ms = np.zeros(entries_capacity, dtype=np.int64)
        # Entries are append-only, so their content is digested once, incrementally.
        self._entries_hasher = CanonicalHasher("clearlane.ledger.entries.v1")
        # Canonical bytes of entries recorded since the last digest: hashed together when a
        # digest is asked for (one update instead of two per entry; the same bytes in the
        # same order, so the same digest), which also lets go of the GIL for the whole run.
        self._unhashed: list[bytes | memoryview] = []  # framed canonical bytes, 3 pieces an entry
        self._pending: dict[str, _Record] = {}
        self._timeouts: list[tuple[int, str]] = []
        self._live_timeouts = 0
        self._drained_entries = 0
        self._drained_accounts = 0
        self._status_changes: list[StatusChange] = []
        self._closes: dict[str, DayClose] = {}
        # Cached per-block digests of the balance arrays (see DIGEST_BLOCK_ACCOUNTS) and the
        # blocks made stale by changes already drained (drain_changes clears the dirty flags).
        self._block_digests: list[bytes] = []
        self._stale_blocks: set[int] = set()
        # Per-account scratch of the compiled wide-entry check (ledger/_kernel.py).
        self._scratch_cells = (
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.bool_),
        )

    # -- accounts ---------------------------------------------------------------------------

    def account(self, key: AccountKey) -> int:
        """Dense index of ``key``, creating the account (indices in creation order)."""
        return self._book.get_or_create(key)

    def accounts(self, keys: Sequence[AccountKey]) -> list[int]:
        """:meth:`account` for many keys, in order (same indices, same digest), in bulk."""
        return self._book.get_or_create_many(keys)

    def find_account(self, key: AccountKey) -> int | None:
        return self._book.find(key)

    def account_key(self, index: int) -> AccountKey:
        return self._book.key(index)

    @property
    def n_accounts(self) -> int:
        return self._book.n

    def set_floor(self, index: int, floor_minor: int | None) -> None:
        """Minimum of ``posted - pending_debits`` for debits of this account; None = no limit."""
        self._book.set_floor(index, floor_minor)

    def floor(self, index: int) -> int | None:
        return self._book.floor(index)

    def accounts_table(self) -> AccountsTable:
        return self._book.table()

    def balances(self) -> tuple[_I64, _I64, _I64]:
        """Copies of (posted, pending_debits, pending_credits), indexed by account."""
        book = self._book
        return book.posted.copy(), book.pending_debits.copy(), book.pending_credits.copy()

    def balance(self, index: int) -> AccountBalance:
        book = self._book
        if not 0 <= index < book.n:
            raise IndexError(f"unknown account index {index}")
        return AccountBalance(
            int(book.posted[index]), int(book.pending_debits[index]), int(book.pending_credits[index])
        )

    # -- entries ----------------------------------------------------------------------------

    @property
    def n_entries(self) -> int:
        return self._n_entries

    def record(self, entry_id: str) -> EntryRecord | None:
        rec = self._records.get(entry_id)
        return None if rec is None else rec.view()

    def pending_entries(self) -> list[EntryRecord]:
        """Live pending entries in posting order."""
        return [rec.view() for rec in self._pending.values()]

    def post(self, entry: JournalEntry) -> PostResult:
        """Post ``entry`` all-or-nothing; see the module docstring for the check order."""
        outcome = self._check_and_move(entry)
        if isinstance(outcome, _Refusal):
            return outcome.code
        self._record(entry)
        return PostResult.OK

    def post_many(self, entries: Sequence[JournalEntry]) -> list[PostResult]:
        """Post each entry in order, all-or-nothing each: exactly ``[self.post(e) for e in
        entries]`` — the same results, balances, records and digests (a property test holds
        them equal). The checks and moves of the entries run in one compiled call
        (:func:`_kernel.post_wide_many`) instead of one per entry: a step that closes hundreds
        of sub-second batches places hundreds of holds (issue 18). Each entry is checked against
        the balances the ones before it left, as one by one; a refused one stops the call, gets
        its refusal as :meth:`post` gives it, and the rest go on after it. Entries sharing an
        id are posted one by one (the second one's check depends on the first's outcome)."""
        count = len(entries)
        if count < 2 or len({entry.entry_id for entry in entries}) != count:
            return [self.post(entry) for entry in entries]
        results = [PostResult.OK] * count
        todo: list[int] = []
        for i, entry in enumerate(entries):
            header = self._check_header(entry)  # ids, legs, timeout: no balance involved
            if header is None:
                todo.append(i)
            else:
                results[i] = header.code
        while todo:
            run = [entries[i] for i in todo]
            applied, code, _ = self._post_compiled(run)
            for k in range(applied):
                self._record(run[k])
            if applied == len(run):
                break
            # The balances are as they were before the refused entry: decided as post() decides.
            results[todo[applied]] = self._compiled_refusal(run[applied], code).code
            todo = todo[applied + 1 :]
        return results

    def _post_compiled(self, run: Sequence[JournalEntry]) -> tuple[int, int, list[_I64]]:
        """Checks 7–12 and the moves of ``run``'s entries, one after the other, in one compiled
        call (``_kernel.post_wide_many``) until one is refused: ``(applied, code, moved)`` —
        the first ``applied`` entries moved (their touched accounts, marked changed, in
        ``moved``), ``code`` the refusal of the next one (OK when all were applied)."""
        bounds = np.zeros(len(run) + 1, dtype=np.int64)
        np.cumsum([entry.n_legs for entry in run], out=bounds[1:])
        accounts = np.concatenate([entry.accounts for entry in run]).astype(np.int64, copy=False)
        amounts = np.concatenate([entry.amounts_minor for entry in run]).astype(np.int64, copy=False)
        touched = np.empty(int(bounds[-1]), dtype=np.int64)
        touched_bounds = np.zeros(len(run) + 1, dtype=np.int64)
        pending = np.array([entry.pending for entry in run], dtype=np.bool_)
        book = self._book
        args = (
            accounts,
            amounts,
            bounds,
            pending,
            book.asset_of,
            len(book.assets),
            book.n,
            book.posted,
            book.pending_debits,
            book.pending_credits,
            book.has_floor,
            book.floor_minor,
            MAX_AMOUNT_MINOR,
            MAX_BALANCE_MINOR,
            *self._scratch(book.n),
            touched,
            touched_bounds,
        )
        applied, code = _kernel.post_wide_many(*args)
        moved = [touched[touched_bounds[k] : touched_bounds[k + 1]] for k in range(applied)]
        if applied:  # one mark of every moved account (the marks are a set: one call, not one an entry)
            book.touch_many(touched[: touched_bounds[applied]])
        return applied, code, moved

    def post_or_raise(self, entry: JournalEntry) -> PostResult:
        """Like :meth:`post`, but raise :class:`LedgerError` unless OK or DUPLICATE."""
        outcome = self._check_and_move(entry)
        if isinstance(outcome, _Refusal):
            if outcome.code is PostResult.DUPLICATE:
                return outcome.code
            raise LedgerError(outcome.code, f"entry {entry.entry_id!r}: {outcome.detail}")
        self._record(entry)
        return PostResult.OK

    def _check_and_move(self, entry: JournalEntry) -> list[int] | _I64 | _Refusal:
        """Checks 1–12; when they pass, the balances move and the touched accounts come back
        (the entry is not recorded yet: :meth:`_record`). A wide entry is checked and moved by
        the compiled kernel (ledger/_kernel.py), which decides as :meth:`_check_wide`."""
        outcome = self._check_header(entry)
        if outcome is not None:
            return outcome
        if entry.n_legs <= self._small_entry_max_legs:
            plan = self._check_small(entry)
            if isinstance(plan, _Refusal):
                return plan
            self._move(plan)
            return plan.touched
        applied, code, moved = self._post_compiled([entry])
        if applied:
            return moved[0]
        return self._compiled_refusal(entry, code)

    def _compiled_refusal(self, entry: JournalEntry, code: int) -> _Refusal:
        """The refusal (with its detail) of an entry the compiled check refused with ``code``,
        from the numpy rules, which must agree."""
        refusal = self._check_wide(entry)
        if not isinstance(refusal, _Refusal) or refusal.code.value != code:
            raise LedgerInvariantError(
                f"entry {entry.entry_id!r}: the compiled check refused it with code {code}, "
                f"the numpy check with {refusal}"
            )
        return refusal

    def _scratch(self, n_accounts: int) -> tuple[_I64, _I64, npt.NDArray[np.bool_]]:
        """The kernel's per-account scratch (zeros; the kernel leaves it so), grown with the book."""
        if self._scratch_cells[0].shape[0] < n_accounts:
            size = max(n_accounts, 2 * self._scratch_cells[0].shape[0])
            self._scratch_cells = (
                np.zeros(size, dtype=np.int64),
                np.zeros(size, dtype=np.int64),
                np.zeros(size, dtype=np.bool_),
            )
        return self._scratch_cells

    def _check_header(self, entry: JournalEntry) -> _Refusal | None:
        """Checks 1–6: the entry's id, legs and timeout."""
        entry_id = entry.entry_id
        if not entry_id:
            return _Refusal(PostResult.INVALID_ID, "entry_id is empty")
        if entry_id in self._resolved:
            return _Refusal(PostResult.ID_CONFLICT, "id used by a released, resolved hold")
        existing = self._records.get(entry_id)
        if existing is not None:
            if existing.entry.same_content(entry):
                return _Refusal(PostResult.DUPLICATE, "already posted with the same content")
            return _Refusal(PostResult.ID_CONFLICT, "id already used by an entry with different content")
        n_legs = entry.n_legs
        if n_legs == 0:
            return _Refusal(PostResult.EMPTY, "no legs")
        if entry.timeout_at_ms is not None:
            if not entry.pending:
                return _Refusal(PostResult.TIMEOUT_REQUIRES_PENDING, "timeout on a single-phase entry")
            if entry.timeout_at_ms <= entry.at_ms:
                return _Refusal(
                    PostResult.TIMEOUT_NOT_AFTER_AT,
                    f"timeout_at_ms {entry.timeout_at_ms} <= at_ms {entry.at_ms}",
                )
        return None

    def _check_small(self, entry: JournalEntry) -> _Plan | _Refusal:
        """Checks 7–12 in plain Python ints: for a few legs, numpy's per-call overhead would
        dominate. Must decide exactly as :meth:`_check_wide` (a property test compares them)."""
        accounts: list[int] = entry.accounts.tolist()
        amounts: list[int] = entry.amounts_minor.tolist()
        if 0 in amounts:
            return _Refusal(PostResult.ZERO_AMOUNT_LEG, f"leg {amounts.index(0)} is zero")
        if min(amounts) < -MAX_AMOUNT_MINOR or max(amounts) > MAX_AMOUNT_MINOR:
            return _Refusal(PostResult.AMOUNT_OUT_OF_RANGE, f"a leg exceeds ±{MAX_AMOUNT_MINOR}")
        gross = sum(map(abs, amounts))
        if gross > MAX_AMOUNT_MINOR:
            return _Refusal(PostResult.AMOUNT_OUT_OF_RANGE, f"gross {gross} exceeds {MAX_AMOUNT_MINOR}")
        book = self._book
        n_accounts = book.n
        for index in accounts:
            if not 0 <= index < n_accounts:
                return _Refusal(PostResult.UNKNOWN_ACCOUNT, f"account index {index} does not exist")
        asset_of = book.asset_of_list
        per_asset: dict[int, int] = {}
        for index, amount in zip(accounts, amounts, strict=True):
            asset_id = asset_of[index]
            per_asset[asset_id] = per_asset.get(asset_id, 0) + amount
        off_assets = [asset_id for asset_id, total in per_asset.items() if total]
        if off_assets:
            off = min(off_assets)
            return _Refusal(PostResult.UNBALANCED, f"asset {book.assets[off]} sums to {per_asset[off]}")

        # Per touched account, how far the entry moves the low and the high end of the envelope.
        low_delta: dict[int, int] = {}
        high_delta: dict[int, int] = {}
        if entry.pending:
            for index, amount in zip(accounts, amounts, strict=True):
                if amount < 0:
                    low_delta[index] = low_delta.get(index, 0) + amount
                    high_delta.setdefault(index, 0)
                else:
                    high_delta[index] = high_delta.get(index, 0) + amount
                    low_delta.setdefault(index, 0)
        else:
            for index, amount in zip(accounts, amounts, strict=True):
                low_delta[index] = low_delta.get(index, 0) + amount
            high_delta = low_delta
        touched = sorted(low_delta)
        posted_arr = book.posted
        debits_arr = book.pending_debits
        credits_arr = book.pending_credits
        posted = [int(posted_arr.item(i)) for i in touched]
        pending_debits = [int(debits_arr.item(i)) for i in touched]
        pending_credits = [int(credits_arr.item(i)) for i in touched]
        low_after = [p - d + low_delta[i] for i, p, d in zip(touched, posted, pending_debits, strict=True)]
        for i, p, c in zip(touched, posted, pending_credits, strict=True):
            if p + c + high_delta[i] > MAX_BALANCE_MINOR:
                return _Refusal(
                    PostResult.BALANCE_OUT_OF_RANGE, f"a balance would leave ±{MAX_BALANCE_MINOR}"
                )
        for low in low_after:
            if low < -MAX_BALANCE_MINOR:
                return _Refusal(
                    PostResult.BALANCE_OUT_OF_RANGE, f"a balance would leave ±{MAX_BALANCE_MINOR}"
                )
        has_floor = book.has_floor
        floor_minor = book.floor_minor
        for i, low in zip(touched, low_after, strict=True):
            if low_delta[i] < 0 and has_floor.item(i):
                floor = int(floor_minor.item(i))
                if low < floor:
                    return _Refusal(
                        PostResult.FLOOR_EXCEEDED,
                        f"account {i} {book.key(i)} would have available {low} < floor {floor}",
                    )
        if entry.pending:
            return _Plan(
                touched,
                None,
                [d - low_delta[i] for i, d in zip(touched, pending_debits, strict=True)],
                [c + high_delta[i] for i, c in zip(touched, pending_credits, strict=True)],
            )
        return _Plan(touched, [p + low_delta[i] for i, p in zip(touched, posted, strict=True)], None, None)

    def _check_wide(self, entry: JournalEntry) -> _Plan | _Refusal:
        """Checks 7–12 vectorised; every sum stays exact in int64 once the gross is bounded."""
        accounts = entry.accounts
        amounts = entry.amounts_minor
        n_legs = entry.n_legs
        if not amounts.all():
            leg = int(np.flatnonzero(amounts == 0)[0])
            return _Refusal(PostResult.ZERO_AMOUNT_LEG, f"leg {leg} is zero")
        lowest = int(amounts.min())
        highest = int(amounts.max())
        if lowest < -MAX_AMOUNT_MINOR or highest > MAX_AMOUNT_MINOR:
            return _Refusal(PostResult.AMOUNT_OUT_OF_RANGE, f"a leg exceeds ±{MAX_AMOUNT_MINOR}")
        # Cheap bound first; the exact Python-int sum only runs when the bound cannot rule out
        # an int64 overflow in the per-asset and per-account sums below.
        if max(-lowest, highest) * n_legs > MAX_AMOUNT_MINOR:
            gross = sum(map(abs, amounts.tolist()))
            if gross > MAX_AMOUNT_MINOR:
                return _Refusal(PostResult.AMOUNT_OUT_OF_RANGE, f"gross {gross} exceeds {MAX_AMOUNT_MINOR}")
        book = self._book
        if int(accounts.min()) < 0 or int(accounts.max()) >= book.n:
            bad = int(accounts[(accounts < 0) | (accounts >= book.n)][0])
            return _Refusal(PostResult.UNKNOWN_ACCOUNT, f"account index {bad} does not exist")
        asset_ids = book.asset_of[accounts]
        first_asset = asset_ids[0]
        if (asset_ids == first_asset).all():
            if amounts.sum() != 0:
                return _Refusal(
                    PostResult.UNBALANCED,
                    f"asset {book.assets[int(first_asset)]} sums to {int(amounts.sum())}",
                )
        else:
            per_asset = np.zeros(len(book.assets), dtype=np.int64)
            np.add.at(per_asset, asset_ids, amounts)
            if per_asset.any():
                off = int(np.flatnonzero(per_asset)[0])
                return _Refusal(
                    PostResult.UNBALANCED, f"asset {book.assets[off]} sums to {int(per_asset[off])}"
                )

        touched, leg_slot = np.unique(accounts, return_inverse=True)
        posted = book.posted[touched]
        pending_debits = book.pending_debits[touched]
        pending_credits = book.pending_credits[touched]
        # Envelope of each account's balance over every way its pending entries may resolve;
        # the range invariant bounds both ends, and the floor bounds the low end.
        low_before = posted - pending_debits
        high_before = posted + pending_credits
        if entry.pending:
            low_delta = np.zeros(touched.shape[0], dtype=np.int64)
            high_delta = np.zeros(touched.shape[0], dtype=np.int64)
            np.add.at(low_delta, leg_slot, np.minimum(amounts, 0))
            np.add.at(high_delta, leg_slot, np.maximum(amounts, 0))
        else:
            low_delta = np.zeros(touched.shape[0], dtype=np.int64)
            np.add.at(low_delta, leg_slot, amounts)
            high_delta = low_delta
        low_after = low_before + low_delta
        if (high_before + high_delta > MAX_BALANCE_MINOR).any() or (low_after < -MAX_BALANCE_MINOR).any():
            return _Refusal(PostResult.BALANCE_OUT_OF_RANGE, f"a balance would leave ±{MAX_BALANCE_MINOR}")
        floored = book.has_floor[touched] & (low_delta < 0)
        if floored.any():
            breach = floored & (low_after < book.floor_minor[touched])
            if breach.any():
                slot = int(np.flatnonzero(breach)[0])
                index = int(touched[slot])
                return _Refusal(
                    PostResult.FLOOR_EXCEEDED,
                    f"account {index} {book.key(index)} would have available "
                    f"{int(low_after[slot])} < floor {int(book.floor_minor[index])}",
                )
        if entry.pending:
            return _Plan(touched, None, pending_debits - low_delta, pending_credits + high_delta)
        return _Plan(touched, posted + low_delta, None, None)

    def _move(self, plan: _Plan) -> None:
        """Write a checked small plan's balances (:meth:`_check_small`; wide entries move in the
        kernel) and mark its accounts changed."""
        book = self._book
        for target, values in (
            (book.posted, plan.posted_after),
            (book.pending_debits, plan.pending_debits_after),
            (book.pending_credits, plan.pending_credits_after),
        ):
            if values is not None:
                for index, value in zip(plan.touched, values, strict=True):
                    target[index] = value
        for index in plan.touched:
            book.touch(int(index))

    def _record(self, entry: JournalEntry) -> None:
        """Record an entry whose balances moved: sequence, status, digest, pending and timeout."""
        seq = self._n_entries
        self._n_entries += 1
        status = EntryStatus.PENDING if entry.pending else EntryStatus.POSTED
        rec = _Record(entry, seq, status, entry.at_ms)
        if seq == self._status_codes.shape[0]:
            self._status_codes = np.concatenate([self._status_codes, np.zeros_like(self._status_codes)])
            self._status_at_ms = np.concatenate([self._status_at_ms, np.zeros_like(self._status_at_ms)])
        self._status_codes[seq] = STATUS_CODE[status]
        self._status_at_ms[seq] = entry.at_ms
        self._records[entry.entry_id] = rec
        self._by_seq.append(rec)
        head, accounts, amounts = entry.canonical_parts()
        # Framed as CanonicalHasher.add_bytes frames the entry's canonical bytes (length first).
        size = len(head) + len(accounts) + len(amounts)  # bytes, or a view cast to bytes
        self._unhashed.extend((size.to_bytes(8, "little") + head, accounts, amounts))
        if len(self._unhashed) >= 3 * _UNHASHED_MAX:  # bounded whoever records without a digest
            self._hash_waiting()
        if entry.pending:
            self._pending[entry.entry_id] = rec
            if entry.timeout_at_ms is not None:
                heapq.heappush(self._timeouts, (entry.timeout_at_ms, entry.entry_id))
                self._live_timeouts += 1

    # -- two-phase --------------------------------------------------------------------------

    def post_pending(self, entry_id: str, at_ms: int) -> PostResult:
        """Make a pending entry final: its legs move from pending to posted."""
        return self._resolve(entry_id, at_ms, EntryStatus.POSTED)

    def post_pending_many(self, holds: Sequence[tuple[str, int]]) -> list[PostResult]:
        """:meth:`post_pending` of each ``(entry id, at_ms)`` in order — the same results,
        statuses and balances (a property test holds them equal) — with the balance moves of
        all of them in one compiled call: a resolution's checks never read a balance, and the
        moves are sums, so applying them after the checks ends in the same balances."""
        results: list[PostResult] = []
        accounts: list[_I64] = []
        amounts: list[_I64] = []
        for entry_id, at in holds:
            at_ms = check_time_ms("at_ms", at)
            result = self._resolve_checked(entry_id, at_ms)
            results.append(result if isinstance(result, PostResult) else PostResult.OK)
            if not isinstance(result, PostResult):
                self._settle_record(result, EntryStatus.POSTED, at_ms)
                accounts.append(result.entry.accounts)
                amounts.append(result.entry.amounts_minor)
        if accounts:
            book = self._book
            legs = np.concatenate(accounts)
            book.touch_many(legs)  # every resolved hold's accounts, marked once together
            _kernel.release_wide(
                legs,
                np.concatenate(amounts),
                True,
                book.posted,
                book.pending_debits,
                book.pending_credits,
            )
        return results

    def void_pending(self, entry_id: str, at_ms: int) -> PostResult:
        """Cancel a pending entry: its reservations are released, nothing is posted."""
        return self._resolve(entry_id, at_ms, EntryStatus.VOIDED)

    def post_pending_or_raise(self, entry_id: str, at_ms: int) -> PostResult:
        """Raise :class:`LedgerError` unless OK or ALREADY_POSTED."""
        result = self.post_pending(entry_id, at_ms)
        if result not in (PostResult.OK, PostResult.ALREADY_POSTED):
            raise LedgerError(result, f"cannot post pending entry {entry_id!r} at {at_ms}")
        return result

    def void_pending_or_raise(self, entry_id: str, at_ms: int) -> PostResult:
        """Raise :class:`LedgerError` unless OK or ALREADY_VOIDED."""
        result = self.void_pending(entry_id, at_ms)
        if result not in (PostResult.OK, PostResult.ALREADY_VOIDED):
            raise LedgerError(result, f"cannot void pending entry {entry_id!r} at {at_ms}")
        return result

    def _resolve(self, entry_id: str, at_ms: int, target: EntryStatus) -> PostResult:
        at_ms = check_time_ms("at_ms", at_ms)
        rec = self._resolve_checked(entry_id, at_ms)
        if isinstance(rec, PostResult):
            return rec
        self._release(rec, target, at_ms)
        return PostResult.OK

    def _resolve_checked(self, entry_id: str, at_ms: int) -> _Record | PostResult:
        """The live pending record ``entry_id`` names, or why it cannot be resolved at ``at_ms``
        (a time already checked: ``check_time_ms``)."""
        rec = self._records.get(entry_id)
        if rec is None:
            done = self._resolved.get(entry_id)
            if done is None:
                return PostResult.PENDING_NOT_FOUND
            return {
                EntryStatus.POSTED: PostResult.ALREADY_POSTED,
                EntryStatus.VOIDED: PostResult.ALREADY_VOIDED,
            }.get(done, PostResult.EXPIRED)
        if not rec.entry.pending:
            return PostResult.NOT_TWO_PHASE
        if rec.status is EntryStatus.POSTED:
            return PostResult.ALREADY_POSTED
        if rec.status is EntryStatus.VOIDED:
            return PostResult.ALREADY_VOIDED
        if rec.status is EntryStatus.EXPIRED:
            return PostResult.EXPIRED
        timeout = rec.entry.timeout_at_ms
        # Past its timeout a hold is dead even if expire() has not swept it yet; only expire()
        # changes its status, so the outcome does not depend on when the sweep runs.
        if timeout is not None and at_ms >= timeout:
            return PostResult.EXPIRED
        return rec

    def _release(self, rec: _Record, target: EntryStatus, at_ms: int) -> None:
        book = self._book
        entry = rec.entry
        # Compiled whatever the width (one rule; ~1 us of dispatch for a two-leg hold).
        _kernel.release_wide(
            entry.accounts,
            entry.amounts_minor,
            target is EntryStatus.POSTED,
            book.posted,
            book.pending_debits,
            book.pending_credits,
        )
        book.touch_many(entry.accounts)
        self._settle_record(rec, target, at_ms)

    def _settle_record(self, rec: _Record, target: EntryStatus, at_ms: int) -> None:
        """A released hold's bookkeeping (its balances moved, or about to: post_pending_many);
        the caller marks its accounts changed (post_pending_many: all its holds' at once)."""
        del self._pending[rec.entry.entry_id]
        if rec.entry.timeout_at_ms is not None:
            self._live_timeouts -= 1
            self._maybe_compact_timeouts()
        rec.status = target
        rec.status_at_ms = at_ms
        self._status_codes[rec.seq] = STATUS_CODE[target]
        self._status_at_ms[rec.seq] = at_ms
        self._status_changes.append(StatusChange(rec.entry.entry_id, target, at_ms))

    def _maybe_compact_timeouts(self) -> None:
        if len(self._timeouts) > _HEAP_COMPACT_MIN and len(self._timeouts) > 2 * self._live_timeouts:
            self._timeouts = [
                (timeout, entry_id) for timeout, entry_id in self._timeouts if entry_id in self._pending
            ]
            heapq.heapify(self._timeouts)

    def expire(self, now_ms: int) -> list[str]:
        """Expire every pending entry with ``timeout_at_ms <= now_ms``; ids in (timeout, id)
        order. Their status time is ``now_ms``, when the reservation was actually released."""
        now_ms = check_time_ms("now_ms", now_ms)
        expired: list[str] = []
        heap = self._timeouts
        while heap and heap[0][0] <= now_ms:
            _, entry_id = heapq.heappop(heap)
            rec = self._pending.get(entry_id)
            if rec is None:
                continue
            self._release(rec, EntryStatus.EXPIRED, now_ms)
            heap = self._timeouts
            expired.append(entry_id)
        return expired

    # -- persistence ------------------------------------------------------------------------

    def drain_changes(self) -> LedgerChanges:
        """New accounts, new entries, status changes and touched accounts since the last drain."""
        book = self._book
        changed = book.dirty_indices()
        self._stale_blocks.update((changed // DIGEST_BLOCK_ACCOUNTS).tolist())
        book.clear_dirty(changed)
        new_accounts = tuple(enumerate(book.keys_from(self._drained_accounts), self._drained_accounts))
        self._drained_accounts = book.n
        new_entries = tuple(rec.entry for rec in self._by_seq[self._drained_entries - self._by_seq_base :])
        self._drained_entries = self._n_entries
        status_changes = tuple(self._status_changes)
        self._status_changes = []
        if not self.retain_final:
            self._release_final(status_changes)
        return LedgerChanges(new_accounts, new_entries, status_changes, changed)

    def _release_final(self, status_changes: tuple[StatusChange, ...]) -> None:
        """Bounded memory (``retain_final=False``, the service): once drained to the store, a
        single-phase entry (final when posted) leaves memory, and so does a hold once it is
        posted, voided or expired — only its id and final status stay (``_resolved``, one small
        item per batch), so resolving it again answers exactly as before. A released entry's
        status stays in the per-entry status arrays (the state digest covers them) and its
        content in the store's ``ledger_entries``, whose primary key refuses a second entry with
        the same id: the journal itself answers ID_CONFLICT for a released hold id, and for a
        released single-phase id it no longer can; resolving a released single-phase id answers
        PENDING_NOT_FOUND instead of NOT_TWO_PHASE; :meth:`record` and :meth:`audit_balances`
        no longer see released entries."""
        records = self._records
        for rec in self._by_seq:
            if not rec.entry.pending:
                del records[rec.entry.entry_id]
        for change in status_changes:
            if change.entry_id in records:
                self._resolved[change.entry_id] = records.pop(change.entry_id).status
        self._by_seq = []
        self._by_seq_base = self._n_entries

    # -- checks -----------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """O(accounts + entries) consistency check; raises :class:`LedgerInvariantError`."""
        book = self._book
        posted = book.posted
        pending_debits = book.pending_debits
        pending_credits = book.pending_credits
        if (pending_debits < 0).any() or (pending_credits < 0).any():
            raise LedgerInvariantError("negative pending balance")
        if (np.abs(posted) > MAX_BALANCE_MINOR).any():
            raise LedgerInvariantError("posted balance outside range")
        if (pending_debits > 2 * MAX_BALANCE_MINOR).any() or (pending_credits > 2 * MAX_BALANCE_MINOR).any():
            raise LedgerInvariantError("pending balance outside range")
        if ((posted - pending_debits) < -MAX_BALANCE_MINOR).any() or (
            (posted + pending_credits) > MAX_BALANCE_MINOR
        ).any():
            raise LedgerInvariantError("balance envelope outside range")
        n_assets = len(book.assets)
        posted_sums = exact_group_sums(posted, book.asset_of, n_assets)
        debit_sums = exact_group_sums(pending_debits, book.asset_of, n_assets)
        credit_sums = exact_group_sums(pending_credits, book.asset_of, n_assets)
        for asset_id, asset in enumerate(book.assets):
            if posted_sums[asset_id] != 0:
                raise LedgerInvariantError(f"asset {asset}: posted balances sum to {posted_sums[asset_id]}")
            if debit_sums[asset_id] != credit_sums[asset_id]:
                raise LedgerInvariantError(
                    f"asset {asset}: pending debits {debit_sums[asset_id]} != "
                    f"pending credits {credit_sums[asset_id]}"
                )
        n_entries = self._n_entries
        n_pending_status = int(
            np.count_nonzero(self._status_codes[:n_entries] == STATUS_CODE[EntryStatus.PENDING])
        )
        if n_pending_status != len(self._pending):
            raise LedgerInvariantError(
                f"{n_pending_status} entries marked pending but {len(self._pending)} tracked"
            )
        timed = sum(1 for rec in self._pending.values() if rec.entry.timeout_at_ms is not None)
        if timed != self._live_timeouts:
            raise LedgerInvariantError(f"{timed} timed holds but {self._live_timeouts} counted")
        cached = self._refresh_block_digests()
        for block, digest in enumerate(cached):
            if digest != self._block_digest(block):
                raise LedgerInvariantError(f"cached state digest of account block {block} is stale")

    def audit_balances(self) -> None:
        """Recompute every balance from the entries (O(total legs)) and compare."""
        if self._by_seq_base:
            raise LedgerInvariantError(
                "final entries were released (retain_final=False): balances cannot be recomputed"
            )
        book = self._book
        n = book.n
        posted_parts: list[tuple[_I64, _I64]] = []
        pending_parts: list[tuple[_I64, _I64]] = []
        for rec in self._by_seq:
            if rec.status is EntryStatus.POSTED:
                posted_parts.append((rec.entry.accounts, rec.entry.amounts_minor))
            elif rec.status is EntryStatus.PENDING:
                pending_parts.append((rec.entry.accounts, rec.entry.amounts_minor))
        posted = np.zeros(n, dtype=np.int64)
        pending_debits = np.zeros(n, dtype=np.int64)
        pending_credits = np.zeros(n, dtype=np.int64)
        if posted_parts:
            np.add.at(
                posted,
                np.concatenate([a for a, _ in posted_parts]),
                np.concatenate([m for _, m in posted_parts]),
            )
        if pending_parts:
            accounts = np.concatenate([a for a, _ in pending_parts])
            amounts = np.concatenate([m for _, m in pending_parts])
            np.add.at(pending_debits, accounts, -np.minimum(amounts, 0))
            np.add.at(pending_credits, accounts, np.maximum(amounts, 0))
        for name, recomputed, stored in (
            ("posted", posted, book.posted),
            ("pending_debits", pending_debits, book.pending_debits),
            ("pending_credits", pending_credits, book.pending_credits),
        ):
            if not np.array_equal(recomputed, stored):
                index = int(np.flatnonzero(recomputed != stored)[0])
                raise LedgerInvariantError(
                    f"{name}[{index}] is {int(stored[index])} but entries give {int(recomputed[index])}"
                )

    # -- reports ----------------------------------------------------------------------------

    def trial_balance(self, at_ms: int) -> TrialBalance:
        """Current balances grouped by report lane and asset, stamped ``at_ms``."""
        return build_trial_balance(self._book, at_ms)

    def close_day(self, day: str, at_ms: int) -> DayClose:
        """Close ``day``: trial balance, in-flight pending entries, digests.

        Idempotent: closing a day again returns the first close unchanged (even if entries were
        posted since); closing it again with a different ``at_ms`` raises ID_CONFLICT.
        """
        if not day:
            raise ValueError("day must be non-empty")
        existing = self._closes.get(day)
        if existing is not None:
            if existing.at_ms != at_ms:
                raise LedgerError(
                    PostResult.ID_CONFLICT,
                    f"day {day!r} already closed at {existing.at_ms}, not {at_ms}",
                )
            return existing
        self.check_invariants()
        trial_balance = self.trial_balance(at_ms)
        if not trial_balance.balanced:
            raise LedgerInvariantError(f"unbalanced assets at close: {trial_balance.unbalanced_assets()}")
        book = self._book
        in_flight: list[PendingInFlight] = []
        for rec in self._pending.values():
            entry = rec.entry
            lanes = sorted({book.report_lanes[i] for i in np.unique(book.lane_of[entry.accounts]).tolist()})
            credit_legs = entry.amounts_minor > 0
            per_asset = np.zeros(len(book.assets), dtype=np.int64)
            np.add.at(per_asset, book.asset_of[entry.accounts[credit_legs]], entry.amounts_minor[credit_legs])
            gross = sorted((book.assets[i], int(per_asset[i])) for i in np.flatnonzero(per_asset).tolist())
            in_flight.append(
                PendingInFlight(
                    entry_id=entry.entry_id,
                    kind=entry.kind,
                    ref=entry.ref,
                    at_ms=entry.at_ms,
                    timeout_at_ms=entry.timeout_at_ms,
                    lanes=tuple(lanes),
                    gross_minor=tuple(gross),
                )
            )
        close = build_day_close(day, at_ms, trial_balance, in_flight, self.state_digest())
        self._closes[day] = close
        return close

    def day_close(self, day: str) -> DayClose | None:
        return self._closes.get(day)

    def state_digest(self) -> bytes:
        """sha256 over accounts, floors, balances and every entry with its status and status
        time. Equal for any two ledgers that went through the same operations.

        The per-account arrays (has_floor, floor, posted, pending debits and credits) are
        digested per block of :data:`DIGEST_BLOCK_ACCOUNTS` accounts, and the state digest
        covers the block digests in order (v2; v1 hashed the whole arrays at once: same content,
        different bytes). :meth:`check_invariants` recomputes every block to prove the cache.
        """
        book = self._book
        n_entries = self._n_entries
        hasher = CanonicalHasher("clearlane.ledger.state.v2")
        hasher.add_int(book.n)
        hasher.add_bytes(book.keys_digest())
        hasher.add_bytes(b"".join(self._refresh_block_digests()))
        hasher.add_int(n_entries)
        self._hash_waiting()
        hasher.add_bytes(self._entries_hasher.copy().digest())
        hasher.add_u8_array(self._status_codes[:n_entries])
        hasher.add_i64_array(self._status_at_ms[:n_entries])
        return hasher.digest()

    def _hash_waiting(self) -> None:
        """Hash the entries recorded since the last digest into the entries digest, in order."""
        if self._unhashed:
            self._entries_hasher.add_framed(self._unhashed)
            self._unhashed = []

    def _refresh_block_digests(self) -> list[bytes]:
        book = self._book
        blocks = -(-book.n // DIGEST_BLOCK_ACCOUNTS)
        stale = self._stale_blocks
        stale.update((book.dirty_indices() // DIGEST_BLOCK_ACCOUNTS).tolist())
        digests = self._block_digests
        stale.update(range(len(digests), blocks))
        del digests[blocks:]
        digests.extend(b"" for _ in range(blocks - len(digests)))
        for block in sorted(stale):
            if block < blocks:
                digests[block] = self._block_digest(block)
        stale.clear()
        return digests

    def _block_digest(self, block: int) -> bytes:
        book = self._book
        lo = block * DIGEST_BLOCK_ACCOUNTS
        hi = min(lo + DIGEST_BLOCK_ACCOUNTS, book.n)
        hasher = CanonicalHasher("clearlane.ledger.block.v1")
        hasher.add_int(block)
        hasher.add_u8_array(book.has_floor[lo:hi])
        hasher.add_i64_array(book.floor_minor[lo:hi])
        hasher.add_i64_array(book.posted[lo:hi])
        hasher.add_i64_array(book.pending_debits[lo:hi])
        hasher.add_i64_array(book.pending_credits[lo:hi])
        return hasher.digest()
