"""A chain observation's logged bytes and decoded events (issue 18).

The node writes an observation with orjson (``observation_payload``) and hands the engine the
events it decoded itself; a replay decodes the stored JSON with ``event_from_dict``. Both must
give what ``canonical_json`` and the decoder give, for any event the classes admit. The column
constructor of submissions builds and refuses what the class does.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.model.chain import (
    BlockProduced,
    ChainEvent,
    ChainReorg,
    TxSubmission,
    event_from_dict,
    observation_payload,
    same_kind_submissions,
    submissions_from_columns,
    tx_submission_to_dict,
)
from clearlane.core.model.inputs import ChainEvents
from clearlane.core.proofs.canonical import canonical_json

_I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_TEXT = st.text(min_size=1, max_size=12)  # any code point but lone surrogates: control, non-ASCII
_HASH = st.binary(min_size=32, max_size=32)


@st.composite
def _events(draw: st.DrawFn) -> ChainEvent:
    if draw(st.booleans()):
        return BlockProduced(
            height=draw(st.integers(min_value=1, max_value=2**63 - 1)),
            at_ms=draw(_I64),
            block_hash=draw(_HASH),
            parent_hash=draw(_HASH),
            tx_ids=tuple(draw(st.lists(_TEXT, max_size=4))),
            fees_paid_minor=draw(st.integers(min_value=0, max_value=2**63 - 1)),
        )
    fork = draw(st.integers(min_value=0, max_value=2**40))
    depth = draw(st.integers(min_value=1, max_value=3))
    return ChainReorg(
        at_ms=draw(_I64),
        fork_height=fork,
        orphaned_heights=tuple(range(fork + 1, fork + 1 + depth)),
        orphaned_tx_ids=tuple(draw(st.lists(_TEXT, max_size=4))),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(_events(), max_size=5), st.one_of(st.none(), st.integers(min_value=0, max_value=2**62)))
def test_observation_bytes_are_canonical_json_and_decode_to_the_events(
    events: list[ChainEvent], through: int | None
) -> None:
    payload, data = observation_payload(events, through)
    assert data == canonical_json(payload)
    # What a replay reads back from the log is what the live node handed the engine.
    replayed = ChainEvents.model_construct(**json.loads(data))
    assert replayed.decoded() == tuple(events)
    assert replayed.submitted_through == through
    assert tuple(event_from_dict(d) for d in payload["events"]) == tuple(events)


def test_decoded_events_must_match_the_logged_count() -> None:
    block = BlockProduced(1, 0, b"\x01" * 32, b"\x02" * 32, ("l1:t:1",), 10)
    payload, _ = observation_payload([block])
    record = ChainEvents.model_construct(**payload)
    with pytest.raises(ValueError, match="do not match"):
        record.with_decoded(())
    assert record.with_decoded((block,)).decoded() == (block,)


_ANY = st.one_of(st.text(max_size=3), st.integers(), st.booleans(), st.none(), st.binary(max_size=2))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(_ANY, _ANY, _ANY), max_size=4),
    st.sampled_from(["l1_settle", "anchor", "other"]),
    st.one_of(_HASH, st.binary(max_size=3)),
)
def test_same_kind_submissions_accept_and_refuse_as_the_class(
    rows: list[tuple[object, object, object]], kind: str, payload_hash: bytes
) -> None:
    """The column constructor builds exactly the objects ``TxSubmission(...)`` builds, and
    refuses (with the same error type) whatever the class refuses."""
    tx_ids, refs, at_ms = ([r[i] for r in rows] for i in range(3))
    try:
        expected = [
            TxSubmission(t, kind, r, payload_hash, a)  # type: ignore[arg-type]
            for t, r, a in zip(tx_ids, refs, at_ms, strict=True)
        ]
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc), match=re.escape(str(exc))):
            same_kind_submissions(tx_ids, kind, refs, payload_hash, at_ms)  # type: ignore[arg-type]
        return
    built = same_kind_submissions(tx_ids, kind, refs, payload_hash, at_ms)  # type: ignore[arg-type]
    assert built == expected
    assert [tx_submission_to_dict(b) for b in built] == [tx_submission_to_dict(e) for e in expected]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            _ANY,
            st.sampled_from(["l1_settle", "anchor", "other"]) | _ANY,
            _ANY,
            _ANY,
            _HASH | st.binary(max_size=3),
        ),
        max_size=4,
    )
)
def test_submissions_from_columns_accept_and_refuse_as_the_class(
    rows: list[tuple[object, object, object, object, bytes]],
) -> None:
    """The writer process's column constructor (``node/wire.py``) builds exactly the objects
    ``TxSubmission(...)`` builds from the same fields, and refuses what the class refuses."""
    tx_ids, kinds, refs, at_ms = ([r[i] for r in rows] for i in range(4))
    hashes = [r[4] for r in rows]
    try:
        expected = tuple(
            TxSubmission(t, k, r, h, a)  # type: ignore[arg-type]
            for t, k, r, a, h in zip(tx_ids, kinds, refs, at_ms, hashes, strict=True)
        )
    except (TypeError, ValueError) as exc:
        if all(len(h) == 32 for h in hashes):
            with pytest.raises(type(exc), match=re.escape(str(exc))):
                submissions_from_columns(tx_ids, kinds, refs, b"".join(hashes), at_ms)  # type: ignore[arg-type]
        return
    built = submissions_from_columns(tx_ids, kinds, refs, b"".join(hashes), at_ms)  # type: ignore[arg-type]
    assert built == expected
    assert [tx_submission_to_dict(b) for b in built] == [tx_submission_to_dict(e) for e in expected]
