"""Fast paths of the audit chain and the store produce the same bytes as the generic ones."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.proofs import codec


def _stream(table: pa.Table) -> bytes:
    """What ``write_table(compress=False)`` wrote before its fast path: a stream writer."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions()) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


ints = st.lists(st.integers(-(2**63), 2**63 - 1) | st.none(), max_size=20)
texts = st.lists(st.text(max_size=6) | st.none(), max_size=20)


@settings(max_examples=60, deadline=None)
@given(ints, texts, st.integers(1, 3), st.booleans())
def test_plain_stream_is_the_stream_writers(
    numbers: list[int | None], words: list[str | None], chunks: int, metadata: bool
) -> None:
    n = min(len(numbers), len(words))
    table = pa.table({"account": pa.array(numbers[:n], pa.int64()), "name": pa.array(words[:n], pa.string())})
    if metadata:
        table = table.replace_schema_metadata({"k": "v"})
    # Several chunks (some possibly empty), sliced arrays: the writer's batches, one by one.
    cut = np.linspace(0, n, chunks + 1).astype(int)
    table = pa.concat_tables([table.slice(int(a), int(b - a)) for a, b in itertools.pairwise(cut)])
    assert codec.write_table(table, compress=False) == _stream(table)
    assert codec.read_table(codec.write_table(table, compress=False)).equals(table)


def test_plain_stream_of_the_ledger_legs_and_an_empty_table() -> None:
    legs = pa.table({"account": np.arange(4, dtype=np.int64), "amount_minor": np.array([5, -5, 7, -7])})
    assert codec.write_table(legs, compress=False) == _stream(legs)
    empty = legs.slice(0, 0)
    assert codec.write_table(empty, compress=False) == _stream(empty)
    # Schemas Arrow calls equal (field metadata is not compared) keep their own bytes.
    tagged = legs.cast(pa.schema([legs.schema.field(0).with_metadata({"k": "v"}), legs.schema.field(1)]))
    assert codec.write_table(tagged, compress=False) == _stream(tagged) != _stream(legs)
    dictionary = pa.table({"d": pa.array(["a", "b", "a"]).dictionary_encode()})
    assert codec.write_table(dictionary, compress=False) == _stream(dictionary)  # the writer's path


def _threaded(table: pa.Table) -> bytes:
    """What ``write_table`` wrote before issue 18's fifth session: LZ4 through Arrow's thread pool."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


@settings(max_examples=40, deadline=None)
@given(
    ints,
    texts,
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 6), st.booleans()), max_size=8),
    st.booleans(),
)
def test_batches_through_one_writer_are_each_ones_write_table(
    numbers: list[int | None], words: list[str | None], cuts: list[tuple[int, int, bool]], compress: bool
) -> None:
    """Slices of one parent (as a step's batches' flow ids are slices of its chunk: the writer
    keeps bytes past a slice's end), fresh copies and empty batches: each blob is what
    write_table of that batch's own table writes."""
    n = min(len(numbers), len(words))
    parent = pa.table(
        {"account": pa.array(numbers[:n], pa.int64()), "name": pa.array(words[:n], pa.string())}
    )
    batches = []
    for start, size, fresh in cuts:
        piece = parent.slice(min(start, n), size)
        if fresh:
            piece = pa.table(
                {"account": piece.column(0).to_pylist(), "name": piece.column(1).to_pylist()},
                schema=parent.schema,
            )
        arrays = [c.chunk(0) if c.num_chunks else pa.array([], c.type) for c in piece.columns]
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=parent.schema))
    blobs = codec.write_batches(parent.schema, batches, compress=compress)
    tables = [pa.Table.from_batches([b]) for b in batches]
    assert blobs == [codec.write_table(t, compress=compress) for t in tables]
    if compress:  # the same bytes the thread pool's writer produced (the stored, pinned bytes)
        assert blobs == [_threaded(t) for t in tables]


def test_batches_of_a_dictionary_column_go_one_by_one() -> None:
    table = pa.table({"d": pa.array(["a", "b", "a", "c"]).dictionary_encode()})
    batches = [b for t in (table.slice(0, 1), table.slice(1, 0), table.slice(1, 3)) for b in t.to_batches()]
    assert codec.write_batches(table.schema, batches) == [
        _threaded(pa.Table.from_batches([b])) for b in batches
    ]
    assert codec.write_batches(table.schema, []) == []


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1)), max_size=5),
        max_size=12,
    )
)
def test_int64_columns_are_each_ranges_own_table(entries: list[list[tuple[int, int]]]) -> None:
    """The ledger's legs: each entry's blob as write_table of a table of its own two arrays."""
    accounts = np.array([a for legs in entries for a, _ in legs], dtype=np.int64)
    amounts = np.array([m for legs in entries for _, m in legs], dtype=np.int64)
    bounds = np.concatenate([[0], np.cumsum([len(legs) for legs in entries])]).tolist()
    blobs = codec.write_int64_columns(("account", "amount_minor"), [accounts, amounts], bounds)
    expected = [
        codec.write_table(
            pa.table(
                {
                    "account": np.array([a for a, _ in legs], dtype=np.int64),
                    "amount_minor": np.array([m for _, m in legs], dtype=np.int64),
                }
            ),
            compress=False,
        )
        for legs in entries
    ]
    assert blobs == expected
    assert blobs == [_stream(codec.read_table(b)) for b in blobs]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12), min_size=1, max_size=4, unique=True
    ),
    st.lists(st.integers(1, 300_000), min_size=1, max_size=6),
)
def test_int64_header_from_the_template_is_arrows(names: list[str], counts: list[int]) -> None:
    """A header filled in from the one-row template (any column names, any row count) is the
    message Arrow writes for a batch of that many rows, up to its body."""
    key = tuple(names)
    schema = pa.schema([(name, pa.int64()) for name in key])
    codec._INT64_HEADERS.clear()
    codec._INT64_TEMPLATES.pop(key, None)
    for rows in counts:
        assert codec._int64_header(key, schema, rows) == codec._arrow_int64_header(schema, rows)
    # a large ledger entry's leg count, past the template's own checks
    assert codec._int64_header(key, schema, 1_048_583) == codec._arrow_int64_header(schema, 1_048_583)
