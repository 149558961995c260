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


def write_table(table: pa.Table, *, compress: bool = True) -> bytes:
    sink = pa.BufferOutputStream()
    options = _IPC_OPTIONS if compress else pa.ipc.IpcWriteOptions()
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


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
