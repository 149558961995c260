"""Accounts created in bulk (a node's open) are the accounts created one by one: same indices,
same asset and report-lane ids, same keys digest — whatever mix of new and known keys."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.ledger.accounts import HOUSE_OWNER, AccountBook, AccountKey, Purpose

_PARTICIPANT = st.builds(
    AccountKey,
    owner=st.sampled_from(["MM-1", "BRK-2", "RTL-3", "é-4"]),
    asset=st.sampled_from(["USD", "BTC", "ETH"]),
    purpose=st.sampled_from([Purpose.AVAILABLE, Purpose.COLLATERAL, Purpose.IN_FLIGHT_L2]),
)
_HOUSE = st.builds(
    AccountKey,
    owner=st.just(HOUSE_OWNER),
    asset=st.sampled_from(["USD", "BTC"]),
    purpose=st.sampled_from([Purpose.FEES, Purpose.SETTLEMENT]),
    lane=st.sampled_from(["L1", "L2:fast"]),
)
_KEYS = st.lists(st.one_of(_PARTICIPANT, _HOUSE), max_size=30)


@settings(max_examples=60, deadline=None)
@given(first=_KEYS, second=_KEYS)
def test_bulk_creation_is_creation_one_by_one(first: list[AccountKey], second: list[AccountKey]) -> None:
    one, bulk = AccountBook(capacity=2), AccountBook(capacity=2)
    for batch in (first, second):  # a second batch mixes known and new keys
        expected = [one.get_or_create(k) for k in batch]
        assert bulk.get_or_create_many(batch) == expected
    assert bulk.n == one.n and bulk.assets == one.assets and bulk.report_lanes == one.report_lanes
    assert bulk.asset_of.tolist() == one.asset_of.tolist()
    assert bulk.keys_digest() == one.keys_digest()
    assert [bulk.key(i) for i in range(bulk.n)] == [one.key(i) for i in range(one.n)]


@settings(max_examples=60, deadline=None)
@given(first=_KEYS, second=_KEYS, single=_KEYS)
def test_the_table_reads_every_key(
    first: list[AccountKey], second: list[AccountKey], single: list[AccountKey]
) -> None:
    """``AccountBook.table`` copies text columns kept at creation (bulk or one by one): the
    same columns as reading each key, and a copy the book does not change afterwards."""
    book = AccountBook(capacity=2)
    book.get_or_create_many(first)
    for key in single:
        book.get_or_create(key)
    table = book.table()
    keys = [book.key(i) for i in range(book.n)]
    assert table.owner == [k.owner for k in keys]
    assert table.asset == [k.asset for k in keys]
    assert table.purpose == [k.purpose.value for k in keys]
    assert table.lane == [k.lane for k in keys]
    before = (list(table.owner), list(table.lane))
    book.get_or_create_many(second)
    assert (table.owner, table.lane) == before
