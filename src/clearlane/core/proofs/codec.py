"""codec owns the log's byte encodings: Arrow IPC streams for columns (trade chunks, records),
canonical JSON for small events. The input hash chain covers these bytes, so they are part of
what a proof proves; both are deterministic for the same content, so hashes are reproducible.
Pure (pyarrow and json only): the store, the memory store and the verifiers share it."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from clearlane.core.proofs.canonical import canonical_json

_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


# The stream's end: a continuation marker and a zero length (what the stream writer closes with).
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_SCHEMA_MESSAGES: dict[pa.Schema, bytes] = {}


def write_table(table: pa.Table, *, compress: bool = True) -> bytes:
    """``table`` as one Arrow IPC stream (LZ4-compressed buffers unless ``compress=False``)."""
    if not compress and _flat(table.schema):
        return _write_plain(table)
    sink = pa.BufferOutputStream()
    options = _IPC_OPTIONS if compress else pa.ipc.IpcWriteOptions()
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


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
    schema = table.schema
    head = _SCHEMA_MESSAGES.get(schema)
    if head is None:
        head = schema.serialize().to_pybytes()
        if len(_SCHEMA_MESSAGES) < 64:
            _SCHEMA_MESSAGES[schema] = head
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
