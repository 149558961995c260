"""codec owns the log's byte encodings: Arrow IPC streams for columns (trade chunks, records),
canonical JSON for small events. The input hash chain covers these bytes, so they are part of
what a proof proves; both are deterministic for the same content, so hashes are reproducible.
Pure (pyarrow and json only): the store, the memory store and the verifiers share it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from clearlane.core.proofs.canonical import canonical_json

# use_threads=False: with threads the writer hands each buffer to Arrow's CPU pool to compress;
# for the small tables written per batch (two rows, four buffers) that hand-off cost ~10x the
# compression itself and woke a pool thread on the other core (issue 18). The codec is the
# same LZ4 frame call either way, so the bytes are the same.
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False)
_PLAIN_OPTIONS = pa.ipc.IpcWriteOptions(use_threads=False)


# The stream's end: a continuation marker and a zero length (what the stream writer closes with).
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_SCHEMA_MESSAGES: dict[pa.Schema, bytes] = {}


def write_table(table: pa.Table, *, compress: bool = True) -> bytes:
    """``table`` as one Arrow IPC stream (LZ4-compressed buffers unless ``compress=False``)."""
    if not compress and _flat(table.schema):
        return _write_plain(table)
    sink = pa.BufferOutputStream()
    options = _IPC_OPTIONS if compress else _PLAIN_OPTIONS
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def write_tables(tables: Sequence[pa.Table | pa.RecordBatch], *, compress: bool = True) -> list[bytes]:
    """``[write_table(t, compress=compress) for t in tables]`` byte for byte (a record batch
    written as the one-chunk table of it), through ONE stream writer per schema instead of one per
    table: each blob is the schema message, the messages the writer wrote for that table (none
    for an empty table, as :func:`write_table` writes none) and the end marker. A stream writer
    per blob cost ~20 us of set-up for a two-row table, and a step writes two such blobs per
    cleared batch and one per journal entry (issue 18).

    Each table is written from its own arrays, never from a concatenation: the writer keeps up to
    64 bytes of a sliced string column's data past the slice's end, and a fixed-width buffer
    whole when it is shorter than 64 bytes, so the bytes depend on the buffers' layout, not only
    on the values. Property test: tests/core/test_codec_fast.py."""
    out: list[bytes] = []
    streams: dict[pa.Schema, _Stream] = {}
    for i, table in enumerate(tables):
        schema = table.schema
        if not _flat(schema):
            out.append(write_table(_as_table(table), compress=compress))
            continue
        stream = streams.get(schema)
        if stream is None:
            stream = streams[schema] = _Stream(schema, compress)
        stream.write(i, table)
        out.append(b"")
    for stream in streams.values():
        stream.finish(out)
    return out


class CodecError(RuntimeError):
    """An encoding fast path disagrees with the generic writer (a bug: never ignored)."""


class _Stream:
    """One stream writer shared by many tables of one schema; records where each one's messages
    start and end in the stream."""

    def __init__(self, schema: pa.Schema, compress: bool) -> None:
        self.head = _schema_message(schema)
        self.sink = pa.BufferOutputStream()
        self.writer = pa.ipc.new_stream(
            self.sink, schema, options=_IPC_OPTIONS if compress else _PLAIN_OPTIONS
        )
        self.spans: list[tuple[int, int, int]] = []  # (index in the output, start, end)

    def write(self, index: int, table: pa.Table | pa.RecordBatch) -> None:
        start = self.sink.tell()
        if isinstance(table, pa.RecordBatch):
            if table.num_rows:  # write_table writes no batch for an empty table
                self.writer.write_batch(table)
        else:
            self.writer.write_table(table)
        # The writer sends the schema message with its first batch: never part of a table's span.
        self.spans.append((index, max(start, len(self.head)), self.sink.tell()))

    def finish(self, out: list[bytes]) -> None:
        self.writer.close()
        data = memoryview(self.sink.getvalue()).cast("B")  # Arrow exports signed bytes ("b")
        head = self.head
        if data[: len(head)] != head:
            raise CodecError("the stream writer's schema message differs from the cached one")
        for index, start, end in self.spans:
            out[index] = b"".join([head, data[start:end], _EOS]) if end > start else head + _EOS


def _as_table(table: pa.Table | pa.RecordBatch) -> pa.Table:
    return pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table


def _schema_message(schema: pa.Schema) -> bytes:
    """The stream's first message for ``schema`` (cached: a step writes a few schemas many times)."""
    head = _SCHEMA_MESSAGES.get(schema)
    if head is None:
        head = schema.serialize().to_pybytes()
        if len(_SCHEMA_MESSAGES) < 64:
            _SCHEMA_MESSAGES[schema] = head
    return head


def _flat(schema: pa.Schema) -> bool:
    """Columns of plain numbers, booleans and strings: no dictionaries (which the stream writer
    sends as messages of their own), nothing nested, and no metadata (Arrow's schema equality
    and hash ignore field metadata, so such schemas could share a cached message)."""
    return schema.metadata is None and all(
        f.metadata is None
        and (
            pa.types.is_integer(f.type)
            or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type)
            or pa.types.is_string(f.type)
        )
        for f in schema
    )


def _write_plain(table: pa.Table) -> bytes:
    """The uncompressed stream without a stream writer: the schema message (cached per schema),
    each record batch's message, the end marker — the same bytes the writer produces (property
    test: tests/core/test_codec_fast.py), at a fraction of the fixed cost per small table (the
    ledger writes one per journal entry; issue 18)."""
    head = _schema_message(table.schema)
    return b"".join([head, *(batch.serialize().to_pybytes() for batch in table.to_batches()), _EOS])


def read_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def encode_payload(kind: str, payload: Any) -> bytes:
    """Log payload bytes: trades as uncompressed IPC (hashed as stored), others canonical JSON."""
    if kind == "trades":
        return write_table(payload, compress=True)
    return canonical_json(payload)


def decode_payload(kind: str, data: bytes) -> Any:
    if kind == "trades":
        return read_table(data)
    return json.loads(data)
