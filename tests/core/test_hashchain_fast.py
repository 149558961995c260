"""The audit chain's fast paths (issue 18) hash and encode the same bytes as the generic ones:
the transition body with its submissions spliced in, the cleared-batch bodies of a whole step at
once, and table digests of string columns without a compute call."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.ledger.entries import LedgerChanges
from clearlane.core.model.chain import TxSubmission
from clearlane.core.model.events import (
    BatchAnchored,
    BatchCleared,
    BatchFinal,
    BatchResubmitted,
    BatchUnwound,
    Step,
)
from clearlane.core.proofs.canonical import canonical_json
from clearlane.core.proofs.hashchain import (
    _body_bytes,
    _cleared_body,
    cleared_bodies,
    cleared_columns,
    detail_digests,
    table_digest,
    transition,
    transition_body,
)

CODES = ["USD", "EUR", "JPY", "GBP"]
names = st.text(min_size=1, max_size=8)
# Every float's form: tiny and huge ones are where json's repr and orjson differ (1e-06 / 1e-6).
usd = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1e-7, 1e16, 12345.67])


@st.composite
def batches(draw: st.DrawFn, index: int) -> BatchCleared:
    n = draw(st.integers(0, 6))
    rows = draw(
        st.lists(st.tuples(names, st.sampled_from(CODES), st.integers(-(10**15), 10**15)), max_size=8)
    )
    flows = draw(st.lists(names, min_size=n, max_size=n))
    return BatchCleared(
        batch_id=f"B{index}",
        pool="fast",
        seq=index,
        opened_at_ms=1,
        cleared_at_ms=2,
        flows=n,
        obligations=len(rows),
        gross_usd=draw(usd),
        net_usd=draw(usd),
        root=bytes(32),
        flow_ids=pa.array(flows, pa.string()),
        received_ms=np.arange(n, dtype=np.int64),
        net_participant=pa.array([r[0] for r in rows], pa.string()),
        net_asset=pa.array([r[1] for r in rows], pa.string()),
        net_minor=np.array([r[2] for r in rows], dtype=np.int64),
        gross_minor=np.array(draw(st.lists(st.integers(0, 10**12), min_size=4, max_size=4)), dtype=np.int64),
    )


@st.composite
def steps(draw: st.DrawFn) -> Step:
    cleared = [draw(batches(i)) for i in range(draw(st.integers(0, 4)))]
    subs = draw(
        st.lists(
            st.builds(
                TxSubmission,
                names,
                st.sampled_from(["anchor", "l1_settle"]),
                names,
                st.binary(min_size=32, max_size=32),
                st.integers(0, 2**40),
            ),
            max_size=4,
        )
    )
    transitions = draw(
        st.lists(
            st.one_of(
                st.builds(
                    BatchAnchored,
                    names,
                    st.integers(0, 2**62),
                    names,
                    st.integers(1, 2**40),
                    st.just(bytes(32)),
                ),
                st.builds(BatchFinal, names, st.integers(0, 2**62)),
                st.builds(BatchResubmitted, names, st.integers(0, 2**62), st.integers(1, 9)),
                st.builds(BatchUnwound, names, st.integers(0, 2**62), st.text(max_size=12)),
            ),
            max_size=6,
        )
    )
    ledger = LedgerChanges((), (), (), np.zeros(0, dtype=np.int64))
    return Step(7, 9, (*cleared, *transitions), (), tuple(subs), ledger, draw(st.integers(0, 3)))


@settings(max_examples=40, deadline=None)
@given(steps(), st.none() | names)
def test_transition_body_is_the_canonical_json_of_the_transition(step: Step, source: str | None) -> None:
    doc, body = transition_body(7, 9, "trades", step, CODES, source)
    full = transition(7, 9, "trades", step, CODES, source)
    assert body == canonical_json(full)
    assert doc == {k: v for k, v in full.items() if k != "submissions"}


# JSON values without floats: what a transition holds besides the cleared bodies. Integers past
# 64 bits and non-string keys are refused by orjson and written by canonical_json instead.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.text(max_size=12), json_values, max_size=6),
    st.lists(json_values, max_size=3),
    st.none() | st.lists(st.dictionaries(st.text(max_size=4), json_values, max_size=3), max_size=2),
)
def test_body_bytes_are_canonical_json(
    doc: dict[str, object], submissions: list[object], odd: object
) -> None:
    """The transition body's encoder (orjson, the cleared bodies and submissions spliced in)
    writes canonical_json's bytes for any float-free document, and cleared bodies of another
    shape than a batch's go through canonical_json."""
    doc = {k: v for k, v in doc.items() if k != "submissions"}
    if odd is not None:
        doc["cleared"] = odd
    encoded = [canonical_json(s) for s in submissions]
    assert _body_bytes(doc, encoded) == canonical_json({**doc, "submissions": submissions})


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=5).flatmap(
        lambda xs: st.tuples(*[batches(i) for i in range(len(xs))])
    )
)
def test_cleared_bodies_of_a_step_are_each_batchs(cleared: tuple[BatchCleared, ...]) -> None:
    codes = pa.array(CODES, pa.string())
    assert cleared_bodies(list(cleared), CODES, codes) == [_cleared_body(b, CODES, codes) for b in cleared]


def _reference_digest(table: pa.Table) -> str:
    """table_digest's documented encoding, for string and int64 columns, value by value."""
    h = hashlib.sha256(b"clearlane.table.v1\x00" + struct.pack("<q", table.num_rows))
    for name, column in zip(table.column_names, table.columns, strict=True):
        values = column.to_pylist()
        h.update(name.encode() + b"\x00")
        if pa.types.is_string(column.type):
            data = [(v or "").encode() for v in values]
            h.update(b"str\x00" + b"".join(struct.pack("<q", len(d)) for d in data) + b"".join(data))
        else:
            h.update(b"<i8\x00" + b"".join(struct.pack("<q", v or 0) for v in values))
        nulls = [v is None for v in values]
        h.update(b"V" + bytes(0 if n else 1 for n in nulls) if any(nulls) else b"N")
    return h.hexdigest()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(max_size=5) | st.none(), st.integers(-(2**63), 2**63 - 1) | st.none()), max_size=12
    ),
    st.integers(0, 3),
)
def test_table_digest_follows_its_encoding(rows: list[tuple[str | None, int | None]], skip: int) -> None:
    table = pa.table(
        {"s": pa.array([r[0] for r in rows], pa.string()), "i": pa.array([r[1] for r in rows], pa.int64())}
    )
    table = table.slice(min(skip, table.num_rows))  # a sliced array: offsets not at 0
    assert table_digest(table) == _reference_digest(table)


def _detail(b: BatchCleared) -> str:
    return table_digest(pa.table({"flow_id": b.flow_ids, "received_ms": b.received_ms}))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=5).flatmap(
        lambda xs: st.tuples(*[batches(i) for i in range(len(xs))])
    ),
    st.sampled_from(["plain", "nulls", "large", "int32"]),
)
def test_detail_digests_of_a_step_are_each_batchs(cleared: tuple[BatchCleared, ...], variant: str) -> None:
    """From the concatenated columns, the shortcut (plain strings, int64 times) or table by table
    (nulls, other types) — each batch's digest as its own table gives it."""
    if variant == "nulls":
        cleared = tuple(
            replace(b, flow_ids=pa.array([None, *b.flow_ids.to_pylist()[1:]], pa.string())) if b.flows else b
            for b in cleared
        )
    elif variant == "large":
        cleared = tuple(replace(b, flow_ids=b.flow_ids.cast(pa.large_string())) for b in cleared)
    elif variant == "int32":
        cleared = tuple(replace(b, received_ms=b.received_ms.astype(np.int32)) for b in cleared)
    columns = cleared_columns(cleared)
    assert columns is not None
    assert detail_digests(columns) == [_detail(b) for b in cleared]
    codes = pa.array(CODES, pa.string())
    assert cleared_bodies(list(cleared), CODES, codes) == [_cleared_body(b, CODES, codes) for b in cleared]


def _one_batch() -> BatchCleared:
    """A cleared batch of one flow and one net line."""
    return BatchCleared(
        batch_id="B0",
        pool="fast",
        seq=0,
        opened_at_ms=1,
        cleared_at_ms=2,
        flows=1,
        obligations=1,
        gross_usd=1.0,
        net_usd=1.0,
        root=bytes(32),
        flow_ids=pa.array(["F"]),
        received_ms=np.array([5], dtype=np.int64),
        net_participant=pa.array(["P"]),
        net_asset=pa.array(["USD"]),
        net_minor=np.array([3], dtype=np.int64),
        gross_minor=np.array([3, 0, 0, 0], dtype=np.int64),
    )


def test_columns_that_cannot_be_concatenated_go_batch_by_batch() -> None:
    """Mixed column types or lengths that disagree: no columns, and the bodies (or the error)
    are what one batch at a time gives."""
    base = _one_batch()
    mixed = [base, replace(base, batch_id="B1", flow_ids=pa.array(["G"], pa.large_string()))]
    assert cleared_columns(mixed) is None
    codes = pa.array(CODES, pa.string())
    assert cleared_bodies(mixed, CODES, codes) == [_cleared_body(b, CODES, codes) for b in mixed]
    assert cleared_columns([base, replace(base, net_minor=np.array([1, 2], dtype=np.int64))]) is None
    assert cleared_columns([replace(base, received_ms=[5])]) is None  # not a NumPy array
    assert cleared_columns([]) is None


def test_a_cleared_body_with_a_float_json_refuses_is_refused() -> None:
    """A figure that is not finite is refused as canonical_json refuses it (it is not JSON)."""
    import math

    import pytest

    body = _cleared_body(_one_batch(), CODES, pa.array(CODES, pa.string()))
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError):
            canonical_json([{**body, "gross_usd": bad}])
        with pytest.raises(ValueError):
            _body_bytes({"cleared": [{**body, "gross_usd": bad}]}, [])


def test_a_cleared_body_of_other_keys_or_types_is_written_by_canonical_json() -> None:
    """A body with a value of another type (a bool where an int was, an int where a float
    was) or another key is written by canonical_json, so the bytes stay canonical_json's."""
    body = _cleared_body(_one_batch(), CODES, pa.array(CODES, pa.string()))
    for odd in ({**body, "flows": True}, {**body, "gross_usd": 2}, {**body, "extra": 1}, {"batch_id": "B"}):
        assert _body_bytes({"cleared": [body, odd]}, []) == canonical_json(
            {"cleared": [body, odd], "submissions": []}
        )
