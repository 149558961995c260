"""Ledger: result codes and their precedence, two-phase holds, floors, reports, digests, and
property tests over random operation sequences (run on both the small-entry and the vectorised
check paths, which must agree exactly)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearlane.core.ledger import (
    MAX_AMOUNT_MINOR,
    AccountKey,
    EntryStatus,
    JournalEntry,
    Ledger,
    LedgerError,
    LedgerInvariantError,
    PostResult,
    Purpose,
)
from clearlane.core.ledger.journal import SMALL_ENTRY_MAX_LEGS, _Refusal

# Thresholds that force every entry through the vectorised path, the default split, and the
# plain-Python path.
PATHS = [0, SMALL_ENTRY_MAX_LEGS, 10**9]


@dataclass
class World:
    ledger: Ledger
    a_usd: int
    b_usd: int
    c_usd: int
    a_eur: int
    b_eur: int
    house_usd: int
    house_eur: int
    ext_usd: int


def make_world(small_entry_max_legs: int = SMALL_ENTRY_MAX_LEGS) -> World:
    ledger = Ledger(small_entry_max_legs=small_entry_max_legs, initial_accounts=2)
    world = World(
        ledger=ledger,
        a_usd=ledger.account(AccountKey("A", "USD", Purpose.AVAILABLE)),
        b_usd=ledger.account(AccountKey("B", "USD", Purpose.AVAILABLE)),
        c_usd=ledger.account(AccountKey("C", "USD", Purpose.COLLATERAL)),
        a_eur=ledger.account(AccountKey("A", "EUR", Purpose.AVAILABLE)),
        b_eur=ledger.account(AccountKey("B", "EUR", Purpose.AVAILABLE)),
        house_usd=ledger.account(AccountKey("HOUSE", "USD", Purpose.SETTLEMENT, "L2:fast")),
        house_eur=ledger.account(AccountKey("HOUSE", "EUR", Purpose.SETTLEMENT, "L2:fast")),
        ext_usd=ledger.account(AccountKey("HOUSE", "USD", Purpose.EXTERNAL, "L1")),
    )
    return world


def entry(
    entry_id: str,
    legs: list[tuple[int, int]],
    *,
    at_ms: int = 1_000,
    pending: bool = False,
    timeout_at_ms: int | None = None,
    kind: str = "fee",
    ref: str = "r",
) -> JournalEntry:
    return JournalEntry.from_legs(
        entry_id, kind, at_ms, legs, pending=pending, timeout_at_ms=timeout_at_ms, ref=ref
    )


def deposit(world: World, entry_id: str, account: int, amount: int, at_ms: int = 1_000) -> None:
    world.ledger.post_or_raise(
        entry(entry_id, [(world.ext_usd, -amount), (account, amount)], at_ms=at_ms, kind="deposit")
    )


@pytest.fixture(params=PATHS, ids=["wide", "default", "small"])
def world(request: pytest.FixtureRequest) -> World:
    return make_world(request.param)


# -- accounts ---------------------------------------------------------------------------------


def test_account_indices_are_dense_and_stable() -> None:
    ledger = Ledger(initial_accounts=1)
    keys = [AccountKey(f"P{i}", "USD", Purpose.AVAILABLE) for i in range(100)]
    assert [ledger.account(k) for k in keys] == list(range(100))
    assert [ledger.account(k) for k in reversed(keys)] == list(reversed(range(100)))
    assert ledger.find_account(AccountKey("nobody", "USD", Purpose.AVAILABLE)) is None
    assert ledger.account_key(7) == keys[7]
    assert ledger.account(AccountKey("P3", "USD", "available")) == 3  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("owner", "lane"),
    [("HOUSE", ""), ("A", "L1"), ("HOUSE", "participants"), ("HOUSE", "TOTAL"), ("", "")],
)
def test_account_key_rejects_inconsistent_lane(owner: str, lane: str) -> None:
    with pytest.raises(ValueError):
        AccountKey(owner, "USD", Purpose.SETTLEMENT, lane)


def test_accounts_table_columns(world: World) -> None:
    world.ledger.set_floor(world.a_usd, 0)
    table = world.ledger.accounts_table()
    assert len(table) == world.ledger.n_accounts
    assert table.owner[world.house_usd] == "HOUSE"
    assert table.lane[world.house_usd] == "L2:fast"
    assert table.purpose[world.c_usd] == "collateral"
    columns = table.to_pydict()
    assert columns["floor_minor"][world.a_usd] == 0
    assert columns["floor_minor"][world.b_usd] is None


# -- entries ----------------------------------------------------------------------------------


def test_entry_arrays_are_read_only_copies() -> None:
    accounts = np.array([0, 1], dtype=np.int32)
    amounts = np.array([-5, 5], dtype=np.int64)
    e = JournalEntry("x", "fee", 0, accounts, amounts)  # type: ignore[arg-type]
    amounts[0] = 99
    assert e.amounts_minor.tolist() == [-5, 5]
    assert e.accounts.dtype == np.int64
    with pytest.raises(ValueError):
        e.amounts_minor[0] = 1
    twin = JournalEntry("x", "fee", 0, np.array([0, 1]), np.array([-5, 5]))
    later = JournalEntry("x", "fee", 7, np.array([0, 1]), np.array([-5, 5]))
    assert e == twin and hash(e) == hash(twin)
    assert e != later and e.same_content(later)
    assert not e.same_content(JournalEntry("x", "fee", 0, np.array([0, 1]), np.array([-5, 5]), ref="other"))
    assert e.content_digest() != later.content_digest()


@pytest.mark.parametrize(
    "bad",
    [
        {"amounts_minor": np.array([-1.0, 1.0])},
        {"amounts_minor": np.array([1])},
        {"accounts": np.array([[0, 1]])},
        {"at_ms": 1.5},
        {"at_ms": True},
        {"at_ms": 2**63},
        {"amounts_minor": np.array([2**64 - 1, 1], dtype=np.uint64)},
    ],
)
def test_malformed_entry_raises(bad: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "entry_id": "x",
        "kind": "fee",
        "at_ms": 0,
        "accounts": np.array([0, 1]),
        "amounts_minor": np.array([-1, 1]),
    }
    fields.update(bad)
    with pytest.raises((TypeError, ValueError)):
        JournalEntry(**fields)


def test_post_ok_moves_posted_balances(world: World) -> None:
    deposit(world, "d1", world.a_usd, 500)
    posted, pending_debits, pending_credits = world.ledger.balances()
    assert posted[world.a_usd] == 500
    assert posted[world.ext_usd] == -500
    assert not pending_debits.any() and not pending_credits.any()
    record = world.ledger.record("d1")
    assert record is not None and record.status is EntryStatus.POSTED and record.status_at_ms == 1_000


def test_result_codes(world: World) -> None:
    w, ledger = world, world.ledger
    ledger.set_floor(w.a_usd, 0)
    deposit(w, "d1", w.a_usd, 100)
    ok_legs = [(w.a_usd, -10), (w.b_usd, 10)]
    cases: list[tuple[JournalEntry, PostResult]] = [
        (entry("", ok_legs), PostResult.INVALID_ID),
        (entry("d1", [(w.ext_usd, -100), (w.a_usd, 100)], at_ms=5_000, kind="deposit"), PostResult.DUPLICATE),
        (entry("d1", [(w.ext_usd, -99), (w.a_usd, 99)], kind="deposit"), PostResult.ID_CONFLICT),
        (entry("e", []), PostResult.EMPTY),
        (entry("e", ok_legs, timeout_at_ms=2_000), PostResult.TIMEOUT_REQUIRES_PENDING),
        (entry("e", ok_legs, pending=True, timeout_at_ms=1_000), PostResult.TIMEOUT_NOT_AFTER_AT),
        (entry("e", [(w.a_usd, 0), (w.b_usd, 0)]), PostResult.ZERO_AMOUNT_LEG),
        (entry("e", [(w.a_usd, -(2**62)), (w.b_usd, 2**62)]), PostResult.AMOUNT_OUT_OF_RANGE),
        (entry("e", [(w.ext_usd, -(2**61)), (w.b_usd, 2**61)]), PostResult.AMOUNT_OUT_OF_RANGE),
        (entry("e", [(w.a_usd, -10), (99, 10)]), PostResult.UNKNOWN_ACCOUNT),
        (entry("e", [(-1, -10), (w.b_usd, 10)]), PostResult.UNKNOWN_ACCOUNT),
        (entry("e", [(w.a_usd, -10), (w.b_usd, 9)]), PostResult.UNBALANCED),
        # Sums to zero overall but not per asset.
        (entry("e", [(w.a_usd, -10), (w.b_eur, 10)]), PostResult.UNBALANCED),
        (entry("e", [(w.a_usd, -101), (w.b_usd, 101)]), PostResult.FLOOR_EXCEEDED),
    ]
    for e, expected in cases:
        before = ledger.state_digest()
        assert ledger.post(e) is expected, (e.entry_id, e.amounts_minor, expected)
        assert ledger.state_digest() == before
        if expected is not PostResult.DUPLICATE:
            with pytest.raises(LedgerError) as info:
                ledger.post_or_raise(e)
            assert info.value.code is expected
    assert ledger.post(entry("e", ok_legs)) is PostResult.OK
    assert ledger.post_or_raise(entry("e", ok_legs)) is PostResult.DUPLICATE


def test_balance_out_of_range(world: World) -> None:
    w, ledger = world, world.ledger
    quarter = 2**60  # four of these exceed MAX_BALANCE_MINOR = 2**62 - 1
    for i in range(3):
        assert ledger.post(entry(f"x{i}", [(w.ext_usd, -quarter), (w.a_usd, quarter)])) is PostResult.OK
    assert (
        ledger.post(entry("x3", [(w.ext_usd, -quarter), (w.a_usd, quarter)]))
        is PostResult.BALANCE_OUT_OF_RANGE
    )
    # Pending credits count towards the high end of the range, pending debits towards the low.
    assert ledger.post(entry("x4", [(w.b_usd, -quarter), (w.a_usd, quarter)], pending=True)) is (
        PostResult.BALANCE_OUT_OF_RANGE
    )
    assert ledger.post(entry("x5", [(w.ext_usd, -quarter), (w.b_usd, quarter)], pending=True)) is (
        PostResult.BALANCE_OUT_OF_RANGE
    )
    assert ledger.post(entry("x6", [(w.ext_usd, -1), (w.b_usd, 1)], pending=True)) is PostResult.OK
    ledger.check_invariants()


def test_gross_bound_on_wide_entries(world: World) -> None:
    w = world
    n = 100
    per_leg = MAX_AMOUNT_MINOR // 100 + 1
    legs = [(w.ext_usd, -per_leg)] * (n // 2) + [(w.b_usd, per_leg)] * (n // 2)
    assert w.ledger.post(entry("g", legs)) is PostResult.AMOUNT_OUT_OF_RANGE
    small = [(w.ext_usd, -(per_leg // 2))] * (n // 2) + [(w.b_usd, per_leg // 2)] * (n // 2)
    assert w.ledger.post(entry("g", small)) is PostResult.OK


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        # Each entry breaks several rules; the lowest-numbered one wins.
        (lambda w: entry("", [], timeout_at_ms=5), PostResult.INVALID_ID),
        (lambda w: entry("d1", [(w.a_usd, 0)], timeout_at_ms=5), PostResult.ID_CONFLICT),
        (lambda w: entry("p", [], timeout_at_ms=5), PostResult.EMPTY),
        (lambda w: entry("p", [(99, 0)], timeout_at_ms=5), PostResult.TIMEOUT_REQUIRES_PENDING),
        (lambda w: entry("p", [(99, 0)], pending=True, timeout_at_ms=5), PostResult.TIMEOUT_NOT_AFTER_AT),
        (lambda w: entry("p", [(99, 0), (w.a_usd, 2**63 - 1)]), PostResult.ZERO_AMOUNT_LEG),
        (lambda w: entry("p", [(99, 2**62), (w.a_usd, 1)]), PostResult.AMOUNT_OUT_OF_RANGE),
        (lambda w: entry("p", [(99, -5), (w.a_usd, 1)]), PostResult.UNKNOWN_ACCOUNT),
        (lambda w: entry("p", [(w.a_usd, -(2**62 - 2)), (w.b_usd, 1)]), PostResult.UNBALANCED),
        (
            lambda w: entry("p", [(w.a_usd, -1_000), (w.ext_usd, 1_000)], pending=True),
            PostResult.BALANCE_OUT_OF_RANGE,
        ),
        (
            lambda w: entry("p", [(w.a_usd, -1_000), (w.b_usd, 1_000)], pending=True),
            PostResult.FLOOR_EXCEEDED,
        ),
    ],
)
def test_precedence(world: World, make: Any, expected: PostResult) -> None:
    world.ledger.set_floor(world.a_usd, 0)
    deposit(world, "d1", world.a_usd, 100)
    # Push the external account close to the top of the range.
    half = 2**61 - 1
    world.ledger.post_or_raise(entry("d2", [(world.b_usd, -half), (world.ext_usd, half)]))
    world.ledger.post_or_raise(entry("d3", [(world.b_usd, -half), (world.ext_usd, half)]))
    before = world.ledger.state_digest()
    assert world.ledger.post(make(world)) is expected
    assert world.ledger.state_digest() == before


# -- two-phase --------------------------------------------------------------------------------


def test_pending_then_post(world: World) -> None:
    w, ledger = world, world.ledger
    deposit(w, "d", w.a_usd, 100)
    hold = entry(
        "h", [(w.a_usd, -60), (w.house_usd, 60)], pending=True, timeout_at_ms=5_000, kind="batch_hold"
    )
    assert ledger.post(hold) is PostResult.OK
    assert ledger.balance(w.a_usd).posted_minor == 100
    assert ledger.balance(w.a_usd).pending_debits_minor == 60
    assert ledger.balance(w.a_usd).available_minor == 40
    assert ledger.balance(w.house_usd).pending_credits_minor == 60
    assert [r.entry.entry_id for r in ledger.pending_entries()] == ["h"]

    assert ledger.post_pending("h", 2_000) is PostResult.OK
    assert ledger.balance(w.a_usd).posted_minor == 40
    assert ledger.balance(w.a_usd).pending_debits_minor == 0
    assert ledger.balance(w.house_usd).posted_minor == 60
    record = ledger.record("h")
    assert record is not None and record.status is EntryStatus.POSTED and record.status_at_ms == 2_000

    before = ledger.state_digest()
    assert ledger.post_pending("h", 2_500) is PostResult.ALREADY_POSTED
    assert ledger.void_pending("h", 2_500) is PostResult.ALREADY_POSTED
    assert ledger.post(hold) is PostResult.DUPLICATE
    assert ledger.expire(10_000) == []
    assert ledger.state_digest() == before
    assert ledger.post_pending_or_raise("h", 3_000) is PostResult.ALREADY_POSTED
    with pytest.raises(LedgerError) as info:
        ledger.void_pending_or_raise("h", 3_000)
    assert info.value.code is PostResult.ALREADY_POSTED
    ledger.check_invariants()
    ledger.audit_balances()


def test_pending_then_void(world: World) -> None:
    w, ledger = world, world.ledger
    deposit(w, "d", w.a_usd, 100)
    ledger.post_or_raise(entry("h", [(w.a_usd, -60), (w.house_usd, 60)], pending=True))
    assert ledger.void_pending("h", 2_000) is PostResult.OK
    assert ledger.balance(w.a_usd) == ledger.balance(w.a_usd).__class__(100, 0, 0)
    before = ledger.state_digest()
    assert ledger.void_pending("h", 2_100) is PostResult.ALREADY_VOIDED
    assert ledger.post_pending("h", 2_100) is PostResult.ALREADY_VOIDED
    assert ledger.void_pending_or_raise("h", 2_200) is PostResult.ALREADY_VOIDED
    assert ledger.state_digest() == before
    assert ledger.post_pending("nope", 2_100) is PostResult.PENDING_NOT_FOUND
    assert ledger.post_pending("d", 2_100) is PostResult.NOT_TWO_PHASE
    assert ledger.void_pending("d", 2_100) is PostResult.NOT_TWO_PHASE
    ledger.audit_balances()


def test_expiry_by_timeout(world: World) -> None:
    w, ledger = world, world.ledger
    deposit(w, "d", w.a_usd, 1_000)
    for entry_id, timeout in [
        ("h-b", 3_000),
        ("h-a", 3_000),
        ("h-c", 2_000),
        ("h-late", 9_000),
        ("h-none", None),
    ]:
        ledger.post_or_raise(
            entry(entry_id, [(w.a_usd, -10), (w.house_usd, 10)], pending=True, timeout_at_ms=timeout)
        )
    # Past its timeout a hold can no longer be posted or voided, even before the sweep.
    before = ledger.state_digest()
    assert ledger.post_pending("h-c", 2_000) is PostResult.EXPIRED
    assert ledger.void_pending("h-c", 2_500) is PostResult.EXPIRED
    assert ledger.state_digest() == before

    assert ledger.expire(1_999) == []
    assert ledger.expire(3_000) == ["h-c", "h-a", "h-b"]
    assert ledger.expire(3_000) == []
    record = ledger.record("h-a")
    assert record is not None and record.status is EntryStatus.EXPIRED and record.status_at_ms == 3_000
    assert ledger.post_pending("h-a", 3_001) is PostResult.EXPIRED
    assert ledger.balance(w.a_usd).pending_debits_minor == 20
    assert ledger.post_pending("h-late", 8_999) is PostResult.OK
    assert ledger.expire(10**12) == []
    assert [r.entry.entry_id for r in ledger.pending_entries()] == ["h-none"]
    ledger.check_invariants()
    ledger.audit_balances()


def test_many_resolved_timeouts_are_compacted() -> None:
    w = make_world()
    ledger = w.ledger
    n = 3_000
    for i in range(n):
        ledger.post_or_raise(
            entry(f"h{i:05d}", [(w.b_usd, -1), (w.house_usd, 1)], pending=True, timeout_at_ms=10_000 + i)
        )
    for i in range(n - 10):
        ledger.post_pending_or_raise(f"h{i:05d}", 5_000)
    assert len(ledger._timeouts) < n  # resolved holds do not pile up in the heap
    assert ledger.expire(20_000) == [f"h{i:05d}" for i in range(n - 10, n)]
    ledger.check_invariants()


# -- floors -----------------------------------------------------------------------------------


def test_floor_counts_pending_and_posted(world: World) -> None:
    w, ledger = world, world.ledger
    deposit(w, "d", w.a_usd, 100)
    ledger.set_floor(w.a_usd, 0)
    assert ledger.floor(w.a_usd) == 0
    hold = [(w.a_usd, -60), (w.house_usd, 60)]
    assert ledger.post(entry("h1", hold, pending=True)) is PostResult.OK
    # 100 posted - 60 pending = 40 available.
    assert (
        ledger.post(entry("h2", [(w.a_usd, -50), (w.house_usd, 50)], pending=True))
        is PostResult.FLOOR_EXCEEDED
    )
    assert ledger.post(entry("p1", [(w.a_usd, -50), (w.b_usd, 50)])) is PostResult.FLOOR_EXCEEDED
    assert ledger.post(entry("p2", [(w.a_usd, -40), (w.b_usd, 40)])) is PostResult.OK
    assert ledger.balance(w.a_usd).available_minor == 0
    assert ledger.void_pending("h1", 2_000) is PostResult.OK
    assert ledger.post(entry("p1", [(w.a_usd, -50), (w.b_usd, 50)])) is PostResult.OK


def test_pending_credits_are_not_spendable(world: World) -> None:
    w, ledger = world, world.ledger
    ledger.set_floor(w.b_usd, 0)
    ledger.post_or_raise(entry("in", [(w.ext_usd, -100), (w.b_usd, 100)], pending=True))
    assert ledger.post(entry("out", [(w.b_usd, -1), (w.a_usd, 1)])) is PostResult.FLOOR_EXCEEDED
    # A pending entry crediting and debiting the same account counts only the debit.
    both = [(w.b_usd, 50), (w.b_usd, -1), (w.house_usd, -49)]
    assert ledger.post(entry("both", both, pending=True)) is PostResult.FLOOR_EXCEEDED
    ledger.post_pending_or_raise("in", 2_000)
    assert ledger.post(entry("out", [(w.b_usd, -1), (w.a_usd, 1)])) is PostResult.OK


def test_floor_only_checks_accounts_debited(world: World) -> None:
    w, ledger = world, world.ledger
    deposit(w, "d", w.a_usd, 10)
    ledger.set_floor(w.a_usd, 50)  # above the current balance: only blocks further debits
    assert ledger.post(entry("in", [(w.ext_usd, -5), (w.a_usd, 5)])) is PostResult.OK
    # Debit and credit of the same account in one single-phase entry net to zero.
    assert ledger.post(entry("wash", [(w.a_usd, -5), (w.a_usd, 5)])) is PostResult.OK
    assert ledger.post(entry("out", [(w.a_usd, -1), (w.b_usd, 1)])) is PostResult.FLOOR_EXCEEDED
    ledger.set_floor(w.a_usd, None)
    assert ledger.post(entry("out", [(w.a_usd, -1), (w.b_usd, 1)])) is PostResult.OK
    ledger.set_floor(w.b_usd, -(10**6))  # a credit line: overdraft down to -1e6
    assert ledger.post(entry("od", [(w.b_usd, -(10**6)), (w.a_usd, 10**6)])) is PostResult.OK
    assert ledger.post(entry("od2", [(w.b_usd, -2), (w.a_usd, 2)])) is PostResult.FLOOR_EXCEEDED


# -- persistence, checks, reports -------------------------------------------------------------


def test_drain_changes(world: World) -> None:
    w, ledger = world, world.ledger
    first = ledger.drain_changes()
    assert [i for i, _ in first.new_accounts] == list(range(ledger.n_accounts))
    assert ledger.drain_changes().empty
    deposit(w, "d", w.a_usd, 100)
    ledger.post_or_raise(entry("h", [(w.a_usd, -60), (w.house_usd, 60)], pending=True))
    ledger.post_pending_or_raise("h", 3_000)
    changes = ledger.drain_changes()
    assert [e.entry_id for e in changes.new_entries] == ["d", "h"]
    assert [(c.entry_id, c.status, c.at_ms) for c in changes.status_changes] == [
        ("h", EntryStatus.POSTED, 3_000)
    ]
    assert changes.changed_accounts.tolist() == sorted([w.a_usd, w.ext_usd, w.house_usd])
    assert changes.new_accounts == ()
    ledger.set_floor(w.b_usd, 0)
    new = ledger.account(AccountKey("D", "USD", Purpose.FEES))
    changes = ledger.drain_changes()
    assert changes.changed_accounts.tolist() == [w.b_usd, new]
    assert changes.new_accounts == ((new, AccountKey("D", "USD", Purpose.FEES)),)
    assert changes.new_entries == () and changes.status_changes == ()


def test_invariant_checks_detect_corruption(world: World) -> None:
    w, ledger = world, world.ledger
    deposit(w, "d", w.a_usd, 100)
    ledger.check_invariants()
    ledger.audit_balances()
    ledger._book.posted[w.a_usd] += 1
    with pytest.raises(LedgerInvariantError):
        ledger.check_invariants()
    ledger._book.posted[w.b_usd] -= 1  # sums are right again, but not what the entries say
    ledger.check_invariants()
    with pytest.raises(LedgerInvariantError):
        ledger.audit_balances()


def test_trial_balance_and_rows(world: World) -> None:
    w, ledger = world, world.ledger
    deposit(w, "d", w.a_usd, 100)
    ledger.post_or_raise(entry("fx", [(w.a_eur, -30), (w.house_eur, 30), (w.a_usd, -5), (w.house_usd, 5)]))
    ledger.post_or_raise(entry("h", [(w.a_usd, -20), (w.house_usd, 20)], pending=True))
    tb = ledger.trial_balance(9_000)
    assert tb.balanced and tb.unbalanced_assets() == []
    assert [(line.lane, line.asset) for line in tb.lines] == [
        ("participants", "EUR"),
        ("participants", "USD"),
        ("L1", "USD"),
        ("L2:fast", "EUR"),
        ("L2:fast", "USD"),
    ]
    by_key = {(line.lane, line.asset): line for line in tb.lines}
    participants_usd = by_key[("participants", "USD")]
    assert participants_usd.credit_minor == 95 and participants_usd.net_minor == 95
    assert participants_usd.pending_debit_minor == 20
    assert by_key[("L1", "USD")].debit_minor == 100
    assert by_key[("L2:fast", "USD")].pending_credit_minor == 20
    for total in tb.totals:
        assert total.net_minor == 0 and total.debit_minor == total.credit_minor
    rows = tb.rows()
    assert rows[-1]["lane"] == "TOTAL" and len(rows) == len(tb.lines) + len(tb.totals)
    assert set(rows[0]) >= {"lane", "asset", "debit_minor", "credit_minor", "net_minor"}


def test_close_day_is_idempotent_and_replayable() -> None:
    def run() -> tuple[Ledger, World]:
        w = make_world()
        deposit(w, "d", w.a_usd, 100)
        w.ledger.post_or_raise(
            entry("h", [(w.a_usd, -20), (w.house_usd, 20)], pending=True, timeout_at_ms=50_000, ref="batch-1")
        )
        return w.ledger, w

    ledger, w = run()
    close = ledger.close_day("2024-03-01", 86_400_000)
    assert [p.entry_id for p in close.pending] == ["h"]
    assert close.pending[0].lanes == ("L2:fast", "participants")
    assert close.pending[0].gross_minor == (("USD", 20),)
    assert close.trial_balance.balanced
    deposit(w, "later", w.b_usd, 7)
    assert ledger.close_day("2024-03-01", 86_400_000) is close
    with pytest.raises(LedgerError):
        ledger.close_day("2024-03-01", 86_400_001)
    assert ledger.day_close("2024-03-01") is close

    replay, _ = run()
    again = replay.close_day("2024-03-01", 86_400_000)
    assert again.digest == close.digest and again == close
    other_day = replay.close_day("2024-03-02", 86_400_000)
    assert other_day.digest != close.digest


def test_digest_covers_status_and_floors(world: World) -> None:
    w, ledger = world, world.ledger
    twin = make_world().ledger
    for led in (ledger, twin):
        led.post_or_raise(entry("h", [(w.a_usd, -1), (w.house_usd, 1)], pending=True))
    assert ledger.state_digest() == twin.state_digest()
    ledger.post_pending_or_raise("h", 5)
    twin.void_pending_or_raise("h", 5)
    assert ledger.state_digest() != twin.state_digest()
    a, b = make_world().ledger, make_world().ledger
    a.set_floor(0, 0)
    assert a.state_digest() != b.state_digest()


# -- property tests ---------------------------------------------------------------------------

N_ACCOUNTS = 8  # make_world creates 8 accounts (indices 0..7)
USD_ACCOUNTS = [0, 1, 2, 5, 7]
EUR_ACCOUNTS = [3, 4, 6]
IDS = [f"e{i}" for i in range(6)]

special_amounts = st.sampled_from([0, MAX_AMOUNT_MINOR, -MAX_AMOUNT_MINOR, 2**61, -(2**61)])
any_account = st.one_of(st.integers(0, N_ACCOUNTS - 1), st.sampled_from([-1, N_ACCOUNTS]))


@st.composite
def entry_specs(draw: st.DrawFn) -> tuple[Any, ...]:
    """Mostly well-formed balanced entries (so that holds, floors and expiry get exercised),
    sometimes anything at all (so that every refusal code shows up)."""
    clean = draw(st.integers(0, 9)) < 8
    n_legs = draw(st.one_of(st.integers(1, 5), st.just(70))) if clean else draw(st.integers(0, 5))
    legs: list[tuple[int, int]] = []
    for _ in range(n_legs):
        if clean:
            legs.append((draw(st.integers(0, N_ACCOUNTS - 1)), draw(st.integers(-300, 300).filter(bool))))
        else:
            legs.append((draw(any_account), draw(st.one_of(st.integers(-300, 300), special_amounts))))
    if clean or draw(st.booleans()):
        # Balance each asset against a house account.
        usd = sum(m for a, m in legs if a in USD_ACCOUNTS)
        eur = sum(m for a, m in legs if a in EUR_ACCOUNTS)
        if usd and abs(usd) < 2**63:
            legs.append((5, -usd))
        if eur and abs(eur) < 2**63:
            legs.append((6, -eur))
    pending = draw(st.booleans())
    if clean:
        timeout = draw(st.one_of(st.none(), st.integers(1, 60))) if pending else None
    else:
        timeout = draw(st.one_of(st.none(), st.integers(-5, 60)))
    return (
        "post",
        draw(st.sampled_from(IDS)),
        tuple(legs),
        pending,
        timeout,
        draw(st.sampled_from(["k1", "k2"])),
    )


operations = st.lists(
    st.one_of(
        entry_specs(),
        st.tuples(st.sampled_from(["post_pending", "void"]), st.sampled_from(IDS)),
        st.tuples(st.just("expire"), st.integers(0, 40)),
        entry_specs(),
        st.tuples(
            st.just("floor"),
            st.integers(0, N_ACCOUNTS - 1),
            st.one_of(st.none(), st.sampled_from([0, 100, -100]), st.integers(-300, 300)),
        ),
    ),
    max_size=50,
)


def _op_entry(op: tuple[Any, ...], clock_ms: int) -> JournalEntry:
    """The entry a ``post`` operation posts at ``clock_ms`` (its timeout counted from then)."""
    _, entry_id, legs, pending, timeout, kind = op
    timeout_at = None if timeout is None else clock_ms + timeout
    return entry(entry_id, list(legs), at_ms=clock_ms, pending=pending, timeout_at_ms=timeout_at, kind=kind)


def _apply_op(ledger: Ledger, op: tuple[Any, ...], clock_ms: int) -> tuple[object, int]:
    """One operation of ``operations`` on ``ledger`` at ``clock_ms``, one by one: its result
    and the clock after it (an expiry moves the clock first). The runners below share it."""
    if op[0] == "post":
        return ledger.post(_op_entry(op, clock_ms)), clock_ms
    if op[0] == "post_pending":
        return ledger.post_pending(op[1], clock_ms), clock_ms
    if op[0] == "void":
        return ledger.void_pending(op[1], clock_ms), clock_ms
    if op[0] == "expire":
        clock_ms += op[1]
        return ledger.expire(clock_ms), clock_ms
    ledger.set_floor(op[1], op[2])
    return None, clock_ms


def run_ops(
    ops: list[tuple[Any, ...]], small_entry_max_legs: int, *, check: bool
) -> tuple[list[object], bytes]:
    """Apply ``ops`` on a fresh world; with ``check``, assert the per-step properties."""
    ledger = make_world(small_entry_max_legs).ledger
    clock_ms = 0
    results: list[object] = []
    for op in ops:
        clock_ms += 1
        before = ledger.state_digest()
        posted, pending_debits, _ = ledger.balances()
        available_before = posted - pending_debits
        result: object
        if op[0] == "post":
            e = _op_entry(op, clock_ms)
            result = ledger.post(e)
            if check and result is PostResult.OK:
                after_ok = ledger.state_digest()
                assert ledger.post(e) is PostResult.DUPLICATE
                assert ledger.state_digest() == after_ok
        else:
            result, clock_ms = _apply_op(ledger, op, clock_ms)
        results.append(result)
        if not check:
            continue
        if isinstance(result, PostResult) and result is not PostResult.OK:
            assert ledger.state_digest() == before, (op, result)
        ledger.check_invariants()
        ledger.audit_balances()
        posted, pending_debits, _ = ledger.balances()
        available = posted - pending_debits
        for index in range(ledger.n_accounts):
            floor = ledger.floor(index)
            if floor is not None and available[index] < available_before[index]:
                assert available[index] >= floor, (op, index)
    if check:
        tb = ledger.trial_balance(clock_ms)
        assert tb.balanced
        for asset in ("USD", "EUR"):
            assert sum(line.net_minor for line in tb.lines if line.asset == asset) == 0
        ledger.close_day("d", clock_ms)
    return results, ledger.state_digest()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entry_id=st.text(min_size=1, max_size=12),
    ref=st.text(max_size=8),
    legs=st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=40),
    pending=st.booleans(),
    timeout=st.one_of(st.none(), st.integers(0, 2**40)),
    stride=st.sampled_from([1, 2]),
)
def test_canonical_parts_are_the_documented_bytes(
    entry_id: str, ref: str, legs: list[int], pending: bool, timeout: int | None, stride: int
) -> None:
    """The three pieces the ledger and the audit chain hash (legs not copied) join to the
    documented encoding, written out here independently, and the content digest is its
    SHA-256 under the domain tag — from any legs layout a caller hands over."""
    import hashlib
    import struct

    from clearlane.core.ledger import handed_over

    accounts = np.repeat(np.arange(len(legs), dtype=np.int64), stride)[::stride]
    amounts = np.repeat(np.array(legs, dtype=np.int64), stride)[::stride]
    entry = handed_over(entry_id, "move", 5, accounts, amounts, pending, timeout if pending else None, ref)
    e_id, kind, r = (v.encode("utf-8", "surrogatepass") for v in (entry_id, "move", ref))
    t = entry.timeout_at_ms
    expected = (
        struct.pack("<QQQq??qQ", len(e_id), len(kind), len(r), 5, pending, t is not None, t or 0, len(legs))
        + e_id
        + kind
        + r
        + np.array(range(len(legs)), dtype="<i8").tobytes()
        + np.array(legs, dtype="<i8").tobytes()
    )
    assert b"".join(entry.canonical_parts()) == entry.canonical_bytes() == expected
    assert entry.content_digest() == hashlib.sha256(b"clearlane.ledger.entry.v1" + expected).digest()


@given(ops=operations)
def test_property_invariants_and_replay(ops: list[tuple[Any, ...]]) -> None:
    results, digest = run_ops(ops, SMALL_ENTRY_MAX_LEGS, check=True)
    # Same operations on a fresh ledger, and through either check path: same outcome and state.
    for threshold in PATHS:
        assert run_ops(ops, threshold, check=False) == (results, digest)


def _run_grouped(ops: list[tuple[Any, ...]]) -> tuple[list[object], bytes]:
    """``run_ops`` without checks, but each run of consecutive posts goes to the ledger in one
    ``post_many`` call, and each run of consecutive post_pendings in one ``post_pending_many``
    call (same entries, same times as one by one)."""
    ledger = make_world().ledger
    clock_ms = 0
    results: list[object] = []
    run: list[JournalEntry] = []
    holds: list[tuple[str, int]] = []

    def flush() -> None:
        results.extend(ledger.post_many(run))
        results.extend(ledger.post_pending_many(holds))
        run.clear()
        holds.clear()

    for op in ops:
        clock_ms += 1
        kind_of_run = "post" if run else "post_pending" if holds else op[0]
        if op[0] != kind_of_run:
            flush()
        if op[0] == "post":
            run.append(_op_entry(op, clock_ms))
        elif op[0] == "post_pending":
            holds.append((op[1], clock_ms))
        else:
            result, clock_ms = _apply_op(ledger, op, clock_ms)
            results.append(result)
    flush()
    ledger.check_invariants()
    ledger.audit_balances()
    return results, ledger.state_digest()


@given(ops=operations)
def test_post_many_is_posting_one_by_one(ops: list[tuple[Any, ...]]) -> None:
    """Runs of entries posted together, and runs of holds posted together, decide, move and
    record exactly as one by one: the same result per entry (refusals of every code,
    duplicates, id conflicts, holds already resolved or expired among them), the same state
    digest (balances, journal, statuses) after the whole sequence."""
    assert _run_grouped(ops) == run_ops(ops, SMALL_ENTRY_MAX_LEGS, check=False)


@given(ops=operations)
def test_post_many_with_distinct_ids_is_posting_one_by_one(ops: list[tuple[Any, ...]]) -> None:
    """The same with every post's id made distinct (ids repeat in ``operations``, and a run
    with a repeated id is posted one by one): the compiled run decides every refusal, and a
    voided or posted hold (ids e0..e5, the first six posts) still meets later runs."""
    distinct = [
        (op[0], op[1] if i < 6 else f"{op[1]}.{i}", *op[2:]) if op[0] == "post" else op
        for i, op in enumerate(ops)
    ]
    assert _run_grouped(distinct) == run_ops(distinct, SMALL_ENTRY_MAX_LEGS, check=False)


@pytest.mark.parametrize("refused_at", [0, 1, 3])
def test_post_many_goes_on_after_a_refusal(refused_at: int) -> None:
    """An entry the balances refuse (a floor) stops the compiled run; the ones before it are
    applied, it is refused as post() refuses it, and the ones after it are checked against the
    balances without it."""
    one, many = make_world(), make_world()
    for world in (one, many):
        deposit(world, "d1", world.a_usd, 100)
        world.ledger.set_floor(world.a_usd, 0)

    def entries(world: World) -> list[JournalEntry]:
        amounts = [30, 30, 30, 30, 30]
        amounts[refused_at] = 500  # more than A holds: below its floor
        return [
            entry(f"m{i}", [(world.a_usd, -amount), (world.b_usd, amount)], pending=i % 2 == 1)
            for i, amount in enumerate(amounts)
        ]

    expected = [one.ledger.post(e) for e in entries(one)]
    assert expected[refused_at] is PostResult.FLOOR_EXCEEDED
    assert many.ledger.post_many(entries(many)) == expected
    assert many.ledger.state_digest() == one.ledger.state_digest()
    assert many.ledger.balances()[0].tolist() == one.ledger.balances()[0].tolist()


def _run_draining(ops: list[tuple[Any, ...]], retain: bool) -> tuple[list[object], bytes, int]:
    ledger = make_world().ledger
    ledger.retain_final = retain
    clock_ms = 0
    results: list[object] = []
    for op in ops:
        clock_ms += 1
        result, clock_ms = _apply_op(ledger, op, clock_ms)
        results.append(result)
        ledger.drain_changes()  # as the engine does after every step
        ledger.check_invariants()
    return results, ledger.state_digest(), len(ledger._records)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_releasing_final_entries_keeps_every_answer_and_the_digest(ops: list[tuple[Any, ...]]) -> None:
    """The service's bounded ledger (``retain_final=False``): final entries leave memory once
    drained (holds stay); every result and the state digest equal the retaining ledger's, as long
    as no released id is posted or resolved again (the engine's entry ids are unique and it
    resolves only holds; the store's primary key refuses a repeated id)."""
    posted: set[str] = set()
    single_phase: set[str] = set()
    fresh = []
    for op in ops:
        if op[0] == "post":
            if op[1] in posted:
                continue
            posted.add(op[1])
            if not op[3]:
                single_phase.add(op[1])
        elif op[0] in ("post_pending", "void") and op[1] in single_phase:
            continue  # resolving a single-phase entry: the engine never does (hold ids are its own)
        fresh.append(op)
    kept_results, kept_digest, kept_records = _run_draining(fresh, True)
    released_results, released_digest, released_records = _run_draining(fresh, False)
    assert released_results == kept_results
    assert released_digest == kept_digest
    assert released_records <= kept_records


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_compiled_wide_check_decides_and_moves_as_the_numpy_rules(ops: list[tuple[Any, ...]]) -> None:
    """Every entry through the compiled kernel (threshold 0): before each post, the numpy rules
    (``_check_header`` then ``_check_wide``, which change nothing) say what must happen; the post must do exactly that —
    the same refusal code with nothing changed, or OK with the planned balances."""
    ledger = make_world(0).ledger
    clock_ms = 0
    for op in ops:
        clock_ms += 1
        if op[0] != "post":
            if op[0] == "floor":
                ledger.set_floor(op[1], op[2])
            elif op[0] == "expire":
                clock_ms += op[1]
                ledger.expire(clock_ms)
            else:
                ledger.post_pending(op[1], clock_ms) if op[0] == "post_pending" else ledger.void_pending(
                    op[1], clock_ms
                )
            continue
        _, entry_id, legs, pending, timeout, kind = op
        timeout_at = None if timeout is None else clock_ms + timeout
        e = entry(entry_id, list(legs), at_ms=clock_ms, pending=pending, timeout_at_ms=timeout_at, kind=kind)
        plan = ledger._check_header(e) or ledger._check_wide(e)  # changes nothing
        before = ledger.balances()
        result = ledger.post(e)
        after = ledger.balances()
        if isinstance(plan, _Refusal):
            assert result is plan.code
            for was, now in zip(before, after, strict=True):
                assert np.array_equal(was, now)
            continue
        assert result is PostResult.OK
        touched = np.asarray(plan.touched, dtype=np.int64)
        for planned, now in zip(
            (plan.posted_after, plan.pending_debits_after, plan.pending_credits_after), after, strict=True
        ):
            if planned is not None:
                assert np.array_equal(now[touched], np.asarray(planned, dtype=np.int64))
        untouched = np.setdiff1d(np.arange(ledger.n_accounts), touched)
        for was, now in zip(before, after, strict=True):
            assert np.array_equal(was[untouched], now[untouched])
