"""Shortcuts on the ledger's hot path hold the class's meaning (issue 18): ``handed_over``
builds the same entry as ``JournalEntry`` (or lets the class build it), the entries digest
hashed in one update per digest equals one update per entry, and an entry's legs bytes (copied
when few, viewed when many) are their little-endian int64 bytes whatever the array."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearlane.core.ledger import JournalEntry, handed_over
from clearlane.core.ledger._encoding import CanonicalHasher
from clearlane.core.ledger.accounts import AccountKey
from clearlane.core.ledger.entries import _le_bytes
from clearlane.core.ledger.journal import Ledger

_I64 = st.integers(-(2**63), 2**63 - 1)


@given(
    legs=st.lists(st.tuples(st.integers(0, 50), st.integers(-(10**12), 10**12)), max_size=30),
    at_ms=_I64,
    timeout=st.none() | _I64,
    pending=st.booleans(),
    ids=st.tuples(st.text(max_size=8), st.text(max_size=8), st.text(max_size=8)),
)
def test_handed_over_equals_the_class(
    legs: list[tuple[int, int]], at_ms: int, timeout: int | None, pending: bool, ids: tuple[str, str, str]
) -> None:
    accounts = np.array([a for a, _ in legs], dtype=np.int64)
    amounts = np.array([m for _, m in legs], dtype=np.int64)
    entry_id, kind, ref = ids
    expected = JournalEntry(entry_id, kind, at_ms, accounts.copy(), amounts.copy(), pending, timeout, ref)
    got = handed_over(entry_id, kind, at_ms, accounts, amounts, pending, timeout, ref)
    assert got == expected
    assert got.canonical_bytes() == expected.canonical_bytes()
    assert got.accounts is accounts and got.amounts_minor is amounts  # not copied
    assert not got.accounts.flags.writeable and not got.amounts_minor.flags.writeable


def _entry_fields(change: dict[str, Any], **values: Any) -> dict[str, Any]:
    """A valid entry's fields, with ``values`` in place of the defaults, then ``change``."""
    fields: dict[str, Any] = {
        "entry_id": "e",
        "kind": "k",
        "at_ms": 5,
        "accounts": np.array([1, 2], dtype=np.int64),
        "amounts_minor": np.array([3, -3], dtype=np.int64),
        "pending": False,
        "timeout_at_ms": None,
        "ref": "",
    }
    fields.update(values)
    fields.update(change)
    return fields


@pytest.mark.parametrize(
    "change",
    [
        {"accounts": np.array([1, 2], dtype=np.int32)},  # another dtype: the class copies to int64
        {"at_ms": np.int64(5)},  # a NumPy scalar: the class turns it into an int
        {"pending": np.bool_(True)},
        {"accounts": [1, 2]},  # a list
    ],
)
def test_handed_over_leaves_other_values_to_the_class(change: dict[str, Any]) -> None:
    fields = _entry_fields(change)
    got = handed_over(**fields)
    assert got == JournalEntry(**fields)
    assert got.accounts.dtype == np.int64 and not got.accounts.flags.writeable


@pytest.mark.parametrize(
    "change",
    [
        {"at_ms": 2**63},  # past int64
        {"timeout_at_ms": "later"},
        {"amounts_minor": np.array([3], dtype=np.int64)},  # lengths differ
        {"accounts": np.array([1.0, 2.0])},  # floats
    ],
)
def test_handed_over_refuses_what_the_class_refuses(change: dict[str, Any]) -> None:
    fields = _entry_fields(change, pending=True, timeout_at_ms=9)
    with pytest.raises((TypeError, ValueError)) as expected:
        JournalEntry(**fields)
    with pytest.raises(expected.type):
        handed_over(**fields)


@given(st.lists(st.tuples(st.binary(max_size=40), st.integers(0, 40)), max_size=20))
def test_add_framed_equals_add_bytes_each(values: list[tuple[bytes, int]]) -> None:
    """Each blob framed (its length, then it) and cut at any point, as the ledger queues an
    entry's canonical bytes in pieces, hashes as one ``add_bytes`` per blob."""
    one, each = CanonicalHasher("d"), CanonicalHasher("d")
    pieces: list[bytes | memoryview] = []
    for value, cut in values:
        framed = len(value).to_bytes(8, "little") + value
        pieces.extend((framed[:cut], memoryview(framed)[cut:]))
    one.add_framed(pieces)
    for value, _ in values:
        each.add_bytes(value)
    assert one.digest() == each.digest()


@given(digest_every=st.integers(1, 7), n=st.integers(0, 40))
def test_entries_digest_does_not_depend_on_when_it_is_taken(digest_every: int, n: int) -> None:
    """Entries hashed at each digest (and every ``_UNHASHED_MAX``) give the digest of one
    ``add_bytes`` per entry in posting order, whenever digests are taken."""
    ledger, lazy = Ledger(), Ledger()
    reference = CanonicalHasher("clearlane.ledger.entries.v1")
    for book in (ledger, lazy):
        book.accounts([AccountKey(f"p{i}", "USD", "available") for i in range(4)])
    for i in range(n):
        entry = JournalEntry(
            f"e{i}", "move", 1000 + i, np.array([i % 4, (i + 1) % 4]), np.array([-(i + 1), i + 1])
        )
        assert ledger.post(entry).name == "OK" and lazy.post(entry).name == "OK"
        reference.add_bytes(entry.canonical_bytes())
        if i % digest_every == 0:
            ledger.state_digest()
    assert ledger.state_digest() == lazy.state_digest()
    assert ledger._entries_hasher.digest() == reference.digest() == lazy._entries_hasher.digest()


def test_entries_waiting_for_a_digest_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from clearlane.core.ledger import journal

    monkeypatch.setattr(journal, "_UNHASHED_MAX", 3)
    ledger = Ledger()
    ledger.accounts([AccountKey(f"p{i}", "USD", "available") for i in range(2)])
    reference = CanonicalHasher("clearlane.ledger.entries.v1")
    for i in range(10):
        entry = JournalEntry(f"e{i}", "move", 1000 + i, np.array([0, 1]), np.array([-(i + 1), i + 1]))
        ledger.post(entry)
        reference.add_bytes(entry.canonical_bytes())
        assert len(ledger._unhashed) < 3 * 3  # three framed pieces an entry
    ledger.state_digest()
    assert ledger._entries_hasher.digest() == reference.digest()


@given(
    values=st.lists(_I64, max_size=1200),
    dtype=st.sampled_from(["<i8", ">i8", "<i4"]),
    step=st.sampled_from([1, 2]),
)
def test_legs_bytes_are_little_endian_int64_for_any_array(values: list[int], dtype: str, step: int) -> None:
    """Short and long (past the copy threshold), native and byte-swapped, narrower and strided
    arrays: the bytes are always those of the values as little-endian int64."""
    if dtype == "<i4":
        values = [v % (2**31) for v in values]
    array = np.array(values, dtype=dtype)[::step]
    expected = np.asarray(array, dtype="<i8").tobytes()
    assert bytes(_le_bytes(array)) == expected


@pytest.mark.parametrize("dtype", ["<i8", ">i8", "<i4"])
@pytest.mark.parametrize("size", [0, 1, 512, 513, 5000])
def test_legs_bytes_of_many_legs(size: int, dtype: str) -> None:
    """Either side of the copy threshold, contiguous (viewed) or strided (converted)."""
    array = np.arange(-size, size, dtype=dtype)
    for view in (array, array[::2], array[::-1]):
        assert bytes(_le_bytes(view)) == np.asarray(view, dtype="<i8").tobytes()
