"""codec owns the log's byte encodings: Arrow IPC streams for columns (trade chunks, records),
canonical JSON for small events. The input hash chain covers these bytes, so they are part of
what a proof proves; both are deterministic for the same content, so hashes are reproducible.
Pure (pyarrow, numpy and json only): the store, the memory store and the verifiers share it.
Bulk writers (``write_batches``, ``write_int64_columns``) give each blob the bytes
:func:`write_table` gives it alone, at a fraction of the fixed cost per blob (issue 18)."""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
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


def write_batches(
    schema: pa.Schema, batches: Sequence[pa.RecordBatch], *, compress: bool = True
) -> list[bytes]:
    """``write_table(pa.Table.from_batches([b]), compress=compress)`` for each batch of
    ``schema``, byte for byte, through ONE stream writer instead of one per blob: each blob is
    the schema message, the message the writer wrote for that batch (none for an empty batch,
    as :func:`write_table` writes none for an empty table) and the end marker. A stream writer
    per blob cost ~20 us of set-up for a two-row table, and a step writes two such blobs per
    cleared batch (issue 18).

    Each batch must be made of the arrays the blob was always written from, never slices of a
    concatenation: the writer keeps up to 64 bytes of a sliced string column's data past the
    slice's end, so the bytes depend on the buffers' layout, not only on the values. Property
    test: tests/core/test_codec_fast.py."""
    if not _flat(schema):
        return [write_table(pa.Table.from_batches([b], schema=schema), compress=compress) for b in batches]
    stream = _Stream(schema, compress)
    for i, batch in enumerate(batches):
        stream.write(i, batch)
    out = [b""] * len(batches)
    stream.finish(out)
    return out


def write_int64_columns(
    names: Sequence[str], columns: Sequence[npt.NDArray[np.int64]], bounds: Sequence[int]
) -> list[bytes]:
    """The uncompressed :func:`write_table` of each row range ``bounds[i]:bounds[i + 1]`` of
    int64 columns without nulls (the ledger's legs, one blob per journal entry), without Arrow
    per blob: such a record batch's message is a header that depends only on its row count
    (taken from Arrow once per count and checked) followed by each column's little-endian
    values. The same bytes as a table of the range's own arrays (property test)."""
    key = tuple(names)
    schema = pa.schema([(name, pa.int64()) for name in key])
    head = _schema_message(schema)
    if any(np.asarray(c).dtype != np.int64 for c in columns):
        raise TypeError("write_int64_columns takes int64 columns (another type has other bytes)")
    data = [np.ascontiguousarray(c, dtype="<i8").data.cast("B") for c in columns]
    out = []
    for lo, hi in itertools.pairwise(int(b) for b in bounds):
        if hi == lo:
            out.append(head + _EOS)
            continue
        parts: list[bytes | memoryview] = [head, _int64_header(key, schema, hi - lo)]
        parts.extend(d[8 * lo : 8 * hi] for d in data)
        parts.append(_EOS)
        out.append(b"".join(parts))
    return out


# Keyed by the column names (all int64) and the row count: a schema's hash costs more than the rest.
_INT64_HEADERS: dict[tuple[tuple[str, ...], int], bytes] = {}
# Per column names: the header of one row and, for each 8-byte field that depends on the row
# count, its offset, its value at one row and its change per row (see ``_int64_template``).
_INT64_TEMPLATES: dict[tuple[str, ...], tuple[bytes, tuple[tuple[int, int, int], ...]]] = {}
_I64LE = struct.Struct("<q")


def _int64_header(names: tuple[str, ...], schema: pa.Schema, rows: int) -> bytes:
    """The record-batch message of ``rows`` rows of ``schema`` (int64 columns) up to its body.

    Arrow's message for ``rows`` rows differs from its message for one row only in the 8-byte
    fields that count the batch's length, its body's length and each buffer's offset and
    length, each a linear function of ``rows`` (every column is ``8 * rows`` bytes: no padding
    ever changes). So the header is the one-row header with those fields filled in, taken from
    Arrow once per column names and checked there (``_int64_template``): a new row count cost
    ~75 us of Arrow calls, and the 10M-trade day's ledger entries have thousands of distinct leg
    counts (issue 18). Property test against Arrow: tests/core/test_codec_fast.py."""
    key = (names, rows)
    header = _INT64_HEADERS.get(key)
    if header is None:
        if rows < 1:
            return _arrow_int64_header(schema, rows)
        template = _INT64_TEMPLATES.get(names)
        if template is None:
            template = _INT64_TEMPLATES[names] = _int64_template(schema)
        header = _filled(template, rows)
        if len(_INT64_HEADERS) < 4096:
            _INT64_HEADERS[key] = header
    return header


def _int64_template(schema: pa.Schema) -> tuple[bytes, tuple[tuple[int, int, int], ...]]:
    """The one-row header and its row-dependent fields, found by comparing Arrow's headers for
    one and two rows word by word, then checked against Arrow's own for other counts."""
    one, two = _arrow_int64_header(schema, 1), _arrow_int64_header(schema, 2)
    if len(one) != len(two) or len(one) % 8:
        raise CodecError("Arrow's int64 record batch header changes size with the row count")
    fields = []
    for offset in range(0, len(one), 8):
        at_one = _I64LE.unpack_from(one, offset)[0]
        at_two = _I64LE.unpack_from(two, offset)[0]
        if at_one != at_two:
            fields.append((offset, at_one, at_two - at_one))
    template = (one, tuple(fields))
    for rows in (3, 1000, 65_537):
        if _filled(template, rows) != _arrow_int64_header(schema, rows):
            raise CodecError(f"Arrow's int64 record batch header of {rows} rows is not the template's")
    return template


def _filled(template: tuple[bytes, tuple[tuple[int, int, int], ...]], rows: int) -> bytes:
    """The template's one-row header with its row-dependent fields set for ``rows`` rows."""
    one, fields = template
    out = bytearray(one)
    for offset, at_one, per_row in fields:
        _I64LE.pack_into(out, offset, at_one + per_row * (rows - 1))
    return bytes(out)


def _arrow_int64_header(schema: pa.Schema, rows: int) -> bytes:
    """Arrow's own record-batch message of ``rows`` rows of ``schema`` up to its body, from a
    batch of distinct values, checked to end with exactly those values' bytes column after
    column (no padding: each column is ``8 * rows`` bytes)."""
    columns = [np.arange(i * rows, (i + 1) * rows, dtype="<i8") + 1 for i in range(len(schema))]
    message: bytes = (
        pa.RecordBatch.from_arrays([pa.array(c) for c in columns], schema=schema).serialize().to_pybytes()
    )
    body = b"".join(c.tobytes() for c in columns)
    header = message[: len(message) - len(body)]
    zeros = pa.RecordBatch.from_arrays([pa.array(np.zeros(rows, "<i8"))] * len(schema), schema=schema)
    if not message.endswith(body) or zeros.serialize().to_pybytes() != header + bytes(len(body)):
        raise CodecError(f"Arrow's record batch of {rows} int64 rows is not a header and the values")
    return header


class CodecError(RuntimeError):
    """An encoding fast path disagrees with the generic writer (a bug: never ignored)."""


class _Stream:
    """One stream writer shared by many batches of one schema; records where each one's message
    starts and ends in the stream."""

    def __init__(self, schema: pa.Schema, compress: bool) -> None:
        self.head = _schema_message(schema)
        self.sink = pa.BufferOutputStream()
        self.writer = pa.ipc.new_stream(
            self.sink, schema, options=_IPC_OPTIONS if compress else _PLAIN_OPTIONS
        )
        self.spans: list[tuple[int, int, int]] = []  # (index in the output, start, end)

    def write(self, index: int, batch: pa.RecordBatch) -> None:
        start = self.sink.tell()
        if batch.num_rows:  # write_table writes no batch for an empty table
            self.writer.write_batch(batch)
        # The writer sends the schema message with its first batch: never part of a batch's span.
        self.spans.append((index, max(start, len(self.head)), self.sink.tell()))

    def finish(self, out: list[bytes]) -> None:
        self.writer.close()
        data = memoryview(self.sink.getvalue()).cast("B")  # Arrow exports signed bytes ("b")
        head = self.head
        if data[: len(head)] != head:
            raise CodecError("the stream writer's schema message differs from the cached one")
        for index, start, end in self.spans:
            out[index] = b"".join([head, data[start:end], _EOS]) if end > start else head + _EOS


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
