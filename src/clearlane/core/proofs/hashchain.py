"""The hash-chained audit log: input entries, transition entries and the records they imply.

One chain covers every input and every state transition. Each committed step ``seq`` appends

* an **input entry**  ``I(seq) = SHA-256("clearlane.log.v2" || prev || be64(seq) || be64(at_ms) ||
  kind || 0x00 || SHA-256(payload))`` where ``prev`` is the previous step's transition hash (the
  genesis hash for seq 1) and ``payload`` the logged bytes exactly as stored;
* a **transition entry** ``T(seq) = SHA-256("clearlane.transition.v1" || I(seq) || be64(seq) ||
  SHA-256(body))`` where ``body`` is the canonical JSON of what the step did (:func:`transition`).

The genesis hash ``SHA-256("clearlane.genesis.v1|" || config digest)`` binds the chain to the
configuration. The chain head ``T(last)`` is folded into the engine's state root, so a replay
that produces a different effect anywhere produces a different root. Payloads enter the chain by
their digest, so a segment of the chain can be checked from payload digests alone (dispute
bundles ship only the payloads they need).

From the transitions, :class:`RecordFold` derives the **audit records**: one canonical text line
per batch lifecycle event (cleared header, anchor, reorg, final, unwind) and per key rotation.
They are the leaves of the append-only checkpoint tree (RFC 9162) that signed checkpoints commit
to. docs/AUDIT.md lists every field and encoding.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from clearlane.core.model.chain import TxSubmission, tx_submission_to_dict
from clearlane.core.model.events import (
    BatchCleared,
    L1GroupUpdated,
    Step,
    escrow_event_dict,
    note_dict,
)
from clearlane.core.model.states import BatchState
from clearlane.core.proofs.canonical import canonical_json
from clearlane.core.proofs.verify import leaf_hash, node_hash
from clearlane.core.textcols import arrow_strings, put_bytes, put_int

__all__ = [
    "TRANSITION_VERSION",
    "ClearedColumns",
    "Frontier",
    "RecordFold",
    "canonical_json",
    "cleared_columns",
    "genesis_hash",
    "input_hash",
    "net_digest",
    "net_lines",
    "submission_json",
    "table_digest",
    "transition",
    "transition_body",
    "transition_hash",
]

TRANSITION_VERSION: Final = 1
_json_str = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for one str
_SEP = pa.scalar(",", pa.string())
_NL = pa.scalar("\n", pa.string())
_EMPTY = pa.scalar("", pa.string())


# ---------------------------------------------------------------------- chain hashes
def genesis_hash(config_digest: str) -> bytes:
    """The ``prev`` of log entry 1: binds the whole chain to one configuration."""
    return hashlib.sha256(b"clearlane.genesis.v1|" + config_digest.encode()).digest()


def input_hash(prev: bytes, seq: int, at_ms: int, kind: str, payload: bytes) -> bytes:
    """Hash of input entry ``seq``: the previous chain head, its header and its payload's digest."""
    return input_hash_from_digest(prev, seq, at_ms, kind, hashlib.sha256(payload).digest())


def input_hash_from_digest(prev: bytes, seq: int, at_ms: int, kind: str, payload_digest: bytes) -> bytes:
    h = hashlib.sha256(b"clearlane.log.v2")
    h.update(prev)
    h.update(struct.pack(">qq", seq, at_ms))
    h.update(kind.encode() + b"\x00")
    h.update(payload_digest)
    return h.digest()


def transition_hash(input_digest: bytes, seq: int, body: bytes) -> bytes:
    """Hash of transition entry ``seq``: chained to its input entry."""
    h = hashlib.sha256(b"clearlane.transition.v1")
    h.update(input_digest)
    h.update(struct.pack(">q", seq))
    h.update(hashlib.sha256(body).digest())
    return h.digest()


# ---------------------------------------------------------------------- column digests
def table_digest(table: pa.Table) -> str:
    """Hex SHA-256 over a table's logical content, independent of how Arrow laid it out.

    ``"clearlane.table.v1" 0x00 || le64(rows)`` then per column ``name 0x00 tag 0x00 values``:
    fixed-width numbers little-endian (nulls as 0), booleans one byte each, strings as le64
    lengths then the concatenated UTF-8 bytes (nulls empty), dictionary columns as their
    dictionary (a string column) then le32 indices (-1 for null); each column whose values have
    nulls is followed by ``"V"`` and one validity byte per row, otherwise by ``"N"``.
    """
    h = hashlib.sha256(b"clearlane.table.v1\x00")
    h.update(struct.pack("<q", table.num_rows))
    if any(pa.types.is_dictionary(c.type) and c.num_chunks > 1 for c in table.columns):
        table = table.unify_dictionaries()
    for name, column in zip(table.column_names, table.columns, strict=True):
        array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        h.update(name.encode() + b"\x00")
        _hash_array(h, array)
    return h.hexdigest()


def _hash_array(h: Any, array: pa.Array) -> None:
    kind = array.type
    nulls = array.null_count
    if pa.types.is_dictionary(kind):
        h.update(b"dict\x00")
        _hash_array(h, array.dictionary)
        indices = array.indices
        if nulls:
            indices = pc.fill_null(indices, pa.scalar(-1, indices.type))
        h.update(_le(indices.to_numpy(zero_copy_only=False), "<i4"))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        h.update(b"str\x00")
        clean = pc.fill_null(array, pa.scalar("", kind)) if nulls else array
        offsets_type = np.int64 if pa.types.is_large_string(kind) else np.int32
        buffers = clean.buffers()
        if len(clean) and buffers[1] is not None:
            offsets = np.frombuffer(buffers[1], dtype=offsets_type)[
                clean.offset : clean.offset + len(clean) + 1
            ]
            # Without nulls a value's length is the step between its offsets (what
            # pc.binary_length returns), so no compute call per column (issue 18).
            h.update(_le(np.diff(offsets), "<i8"))
            if buffers[2] is not None:
                h.update(memoryview(buffers[2])[int(offsets[0]) : int(offsets[-1])])
        else:
            h.update(_le(pc.binary_length(clean).to_numpy(zero_copy_only=False), "<i8"))
    elif pa.types.is_boolean(kind):
        h.update(b"bool\x00")
        h.update(
            _le(
                (pc.fill_null(array, pa.scalar(False)) if nulls else array).to_numpy(zero_copy_only=False),
                "u1",
            )
        )
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        dtype = np.dtype(kind.to_pandas_dtype()).newbyteorder("<")
        h.update(dtype.str.encode() + b"\x00")
        values = (pc.fill_null(array, pa.scalar(0, kind)) if nulls else array).to_numpy(zero_copy_only=False)
        h.update(_le(values, dtype.str))
    elif pa.types.is_null(kind):
        h.update(b"null\x00")
    else:
        raise TypeError(f"table_digest does not cover Arrow type {kind}")
    if nulls:
        h.update(b"V")
        h.update(_le(array.is_valid().to_numpy(zero_copy_only=False), "u1"))
    else:
        h.update(b"N")


def _le(values: Any, dtype: str) -> bytes | memoryview:
    array = np.ascontiguousarray(np.asarray(values).astype(dtype, copy=False))
    return array.data.cast("B") if array.size else b""


def net_lines(participant: pa.Array, asset: pa.Array, net_minor: Any) -> bytes:
    """Net instructions as text, one ``participant,asset,net_minor\\n`` line each, in order."""
    if len(participant) == 0:
        return b""
    blob, offsets = _net_lines_buffer(participant, asset, net_minor)
    return bytes(blob[int(offsets[0]) : int(offsets[-1])])


def net_digest(participant: pa.Array, asset: pa.Array, net_minor: Any) -> str:
    """Hex SHA-256 of :func:`net_lines` (``sha256sum`` of the bundle's net_instructions.csv)."""
    return hashlib.sha256(net_lines(participant, asset, net_minor)).hexdigest()


def totals_text(asset_codes: list[str], gross_minor: Any, net_minor: Any, net_asset: Any) -> str:
    """``ASSET:gross:net_debit`` per asset with obligations, ``;``-joined, in config order."""
    gross = np.asarray(gross_minor, dtype=np.int64)
    net_debit = np.zeros(len(asset_codes), dtype=np.int64)
    values = np.asarray(net_minor, dtype=np.int64)
    np.add.at(net_debit, np.asarray(net_asset, dtype=np.int64), -np.minimum(values, 0))
    return ";".join(
        f"{code}:{int(gross[a])}:{int(net_debit[a])}" for a, code in enumerate(asset_codes) if gross[a] != 0
    )


# ---------------------------------------------------------------------- transition bodies
def transition(
    seq: int, at_ms: int, kind: str, step: Step, asset_codes: list[str], source_id: str | None = None
) -> dict[str, Any]:
    """The canonical description of what one step did (``step`` is the engine's output).

    Every table the store writes for the step is covered, by value or by digest, so a walk of
    the store can hold each stored row against the transition that produced it.
    """
    body = _transition_doc(seq, at_ms, kind, step, asset_codes, source_id)
    body["submissions"] = [tx_submission_to_dict(tx) for tx in step.submissions]
    return body


def transition_body(
    seq: int,
    at_ms: int,
    kind: str,
    step: Step,
    asset_codes: list[str],
    source_id: str | None = None,
    submissions: list[bytes] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """``(doc, canonical_json(transition(...)))`` built faster: the submissions (~500,000 a day,
    one per L1 transaction) are encoded straight to their canonical JSON and spliced in, never
    built as dicts; the cleared batches' bodies likewise (:func:`_cleared_json`), and the rest
    by orjson (:func:`_body_bytes`). ``doc`` is :func:`transition` without ``"submissions"``
    (what :class:`RecordFold` reads does not include them). ``submissions``: the
    :func:`submission_json` of each of ``step.submissions`` if the caller has them already."""
    doc = _transition_doc(seq, at_ms, kind, step, asset_codes, source_id)
    if submissions is None or len(submissions) != len(step.submissions):
        submissions = [submission_json(tx) for tx in step.submissions]
    return doc, _body_bytes(doc, submissions)


def _body_bytes(doc: dict[str, Any], submissions: list[bytes]) -> bytes:
    """``canonical_json`` of ``doc`` with ``"submissions"`` (each one's canonical JSON given).

    orjson with sorted keys writes what ``canonical_json`` writes for every value but floats
    (their exponent's form differs: ``1e-06`` against ``1e-6``) and what it refuses (integers
    past 64 bits, keys that are not strings). The only floats of a transition are the cleared
    batches' USD figures, which :func:`_cleared_json` writes as ``json`` does and orjson splices
    in; every other value is a string, an integer, None or a list or dict of them (the event
    and record classes check their fields' types). What orjson refuses is written by
    ``canonical_json`` as before. A property test holds the bytes equal to ``canonical_json``'s
    (tests/core/test_hashchain_fast.py). A step of the demo's day clears ~250 batches: ``json``
    took ~5 µs a body, and a third of the writer thread's encoding (issue 18)."""
    rest = {k: v for k, v in doc.items() if k != "cleared"}
    rest["submissions"] = orjson.Fragment(b"[" + b",".join(submissions) + b"]")
    if "cleared" in doc:
        rest["cleared"] = orjson.Fragment(_cleared_json(doc["cleared"]))
    try:
        return orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        pass
    # canonical_json sorts keys: the body is the keys before "submissions", then it, then the rest.
    head = canonical_json({k: v for k, v in doc.items() if k < "submissions"})[1:-1]
    tail = canonical_json({k: v for k, v in doc.items() if k > "submissions"})[1:-1]
    middle = b'"submissions":[' + b",".join(submissions) + b"]"
    return b"{" + b",".join(part for part in (head, middle, tail) if part) + b"}"


# The keys of a cleared batch's body (_cleared_fields) and the type each value has there.
_CLEARED_TYPES: dict[str, type] = {
    "batch_id": str,
    "cleared_at_ms": int,
    "detail": str,
    "flows": int,
    "gross_usd": float,
    "net": str,
    "net_usd": float,
    "obligations": int,
    "opened_at_ms": int,
    "pool": str,
    "root": str,
    "seq": int,
    "totals": str,
}
_CLEARED_KEYS = _CLEARED_TYPES.keys()


def _cleared_json(bodies: list[dict[str, Any]]) -> bytes:
    """``canonical_json(bodies)`` of cleared batches' bodies (:func:`_cleared_fields`), each
    written by one format string: strings by the escaper ``json.dumps`` uses, integers and
    floats by their ``repr`` as ``json.dumps`` writes them (a float that is not finite is
    refused as ``canonical_json`` refuses it). A body with other keys or types goes through
    ``canonical_json``."""
    out = []
    for b in bodies:
        if b.keys() != _CLEARED_KEYS or not _cleared_types(b):
            return canonical_json(bodies)
        out.append(
            f'{{"batch_id":{_json_str(b["batch_id"])},"cleared_at_ms":{b["cleared_at_ms"]!r},'
            f'"detail":{_json_str(b["detail"])},"flows":{b["flows"]!r},'
            f'"gross_usd":{_json_float(b["gross_usd"])},"net":{_json_str(b["net"])},'
            f'"net_usd":{_json_float(b["net_usd"])},"obligations":{b["obligations"]!r},'
            f'"opened_at_ms":{b["opened_at_ms"]!r},"pool":{_json_str(b["pool"])},'
            f'"root":{_json_str(b["root"])},"seq":{b["seq"]!r},"totals":{_json_str(b["totals"])}}}'
        )
    return ("[" + ",".join(out) + "]").encode()


def _cleared_types(b: dict[str, Any]) -> bool:
    """Every value of a cleared body has exactly its type (no bool for an int, no subclass)."""
    return all(type(b[k]) is t for k, t in _CLEARED_TYPES.items())


def _json_float(x: float) -> str:
    """A float as ``json.dumps(allow_nan=False)`` writes it."""
    if not math.isfinite(x):
        raise ValueError(f"Out of range float values are not JSON compliant: {x!r}")
    return float.__repr__(x)


def submission_json(tx: TxSubmission) -> bytes:
    """``canonical_json(tx_submission_to_dict(tx))``, byte for byte, without the dict and the
    generic encoder (keys in sorted order; strings escaped by the encoder json.dumps uses)."""
    return (
        f'{{"kind":{_json_str(tx.kind)},"payload_hash":"{tx.payload_hash.hex()}","ref":{_json_str(tx.ref)},'
        f'"submitted_at_ms":{int(tx.submitted_at_ms)},"tx_id":{_json_str(tx.tx_id)}}}'
    ).encode()


def _transition_doc(
    seq: int,
    at_ms: int,
    kind: str,
    step: Step,
    asset_codes: list[str],
    source_id: str | None,
) -> dict[str, Any]:
    records = [
        {"part": part, "rows": table.num_rows, "digest": table_digest(table)}
        for part, table in enumerate(step.tables())
        if table.num_rows
    ]
    batches = step.cleared()
    # The codes array only when a batch cleared: building it cost more than the rest of a small step.
    cleared = cleared_bodies(batches, asset_codes, _codes_array(tuple(asset_codes))) if batches else []
    l1 = [_l1_body(u) for u in sorted(step.l1_updates(), key=lambda u: u.group_id)]
    ledger: dict[str, Any] = {
        "entries": [[e.entry_id, e.content_digest().hex()] for e in step.ledger.new_entries],
        "status": [[c.entry_id, str(c.status.value), int(c.at_ms)] for c in step.ledger.status_changes],
    }
    body = {
        "v": TRANSITION_VERSION,
        "seq": seq,
        "at_ms": at_ms,
        "kind": kind,
        "source": source_id,
        "records": records,
        "cleared": cleared,
        "updates": step.changes(),
        "events": [[b, e, int(a), d] for b, e, a, d in step.event_rows()],
        "l1": l1,
        "rejects": [r.to_dict() for r in step.rejects()],
        "ledger": ledger,
        "notes": [note_dict(n) for n in step.notes()],
        "duplicates": int(step.duplicates),
    }
    escrow = step.escrow_events()
    if escrow:  # the key appears only with escrow, so bodies without it are as before
        body["escrow"] = [escrow_event_dict(e) for e in escrow]
    return body


@functools.lru_cache(maxsize=8)
def _codes_array(asset_codes: tuple[str, ...]) -> pa.Array:
    return pa.array(asset_codes, pa.string())


@dataclass(frozen=True)
class ClearedColumns:
    """The detail and net columns of a step's cleared batches, each concatenated into one
    array, with each batch's row bounds: batch ``i``'s detail rows are
    ``detail_bounds[i]:detail_bounds[i + 1]``, its net rows ``net_bounds[i]:net_bounds[i + 1]``.
    Built once per step so that the batches' digests are computed column-wise, not from two
    small tables per batch (issue 18). The digests are of values, so concatenating changes
    none; the stored blobs are NOT written from these (see ``codec.write_tables``)."""

    flow_id: pa.Array
    received_ms: npt.NDArray[Any]
    detail_bounds: npt.NDArray[np.int64]
    participant: pa.Array
    asset: pa.Array
    net_minor: npt.NDArray[Any]
    net_bounds: npt.NDArray[np.int64]

    def detail_table(self) -> pa.Table:
        """The values of ``pa.table({"flow_id": b.flow_ids, "received_ms": b.received_ms})`` of
        every batch, one after the other."""
        return pa.table({"flow_id": self.flow_id, "received_ms": self.received_ms})


def cleared_columns(cleared: Sequence[BatchCleared]) -> ClearedColumns | None:
    """The batches' columns concatenated, or None where concatenating could change a value or
    a type (arrays of mixed types, chunked or dictionary arrays, non-NumPy integer columns,
    columns of one batch of different lengths): the callers then go batch by batch, as before."""
    if not cleared:
        return None
    arrow = (
        [b.flow_ids for b in cleared],
        [b.net_participant for b in cleared],
        [b.net_asset for b in cleared],
    )
    numpy = [b.received_ms for b in cleared], [b.net_minor for b in cleared]
    if not all(_concatenable(arrays) for arrays in arrow) or not all(_same_dtype(arrays) for arrays in numpy):
        return None
    detail = np.array([len(a) for a in arrow[0]], dtype=np.int64)
    net = np.array([len(a) for a in arrow[1]], dtype=np.int64)
    if not (
        np.array_equal(detail, [len(a) for a in numpy[0]])
        and np.array_equal(net, [len(a) for a in arrow[2]])
        and np.array_equal(net, [len(a) for a in numpy[1]])
    ):
        return None
    return ClearedColumns(
        flow_id=pa.concat_arrays(arrow[0]),
        received_ms=np.concatenate(numpy[0]),
        detail_bounds=np.concatenate([[0], np.cumsum(detail)]).astype(np.int64),
        participant=pa.concat_arrays(arrow[1]),
        asset=pa.concat_arrays(arrow[2]),
        net_minor=np.concatenate(numpy[1]),
        net_bounds=np.concatenate([[0], np.cumsum(net)]).astype(np.int64),
    )


def _same_dtype(arrays: list[Any]) -> bool:
    first = arrays[0]
    return all(isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype == first.dtype for a in arrays)


def detail_digests(columns: ClearedColumns) -> list[str]:
    """:func:`table_digest` of each batch's detail table, from the concatenated columns: the
    documented encoding written slice by slice (string lengths and bytes, then the int64
    times), one SHA-256 per batch and no table or compute call per batch (issue 18). Columns
    the shortcut does not cover (nulls, other types) are digested table by table."""
    ids, times, bounds = columns.flow_id, columns.received_ms, columns.detail_bounds.tolist()
    if not pa.types.is_string(ids.type) or ids.null_count or times.dtype != np.int64:
        table = columns.detail_table()
        return [table_digest(table.slice(lo, hi - lo)) for lo, hi in itertools.pairwise(bounds)]
    buffers = ids.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[ids.offset : ids.offset + len(ids) + 1].astype(
        np.int64
    )
    data = memoryview(buffers[2]).cast("B") if buffers[2] is not None else memoryview(b"")
    lengths = memoryview(_le(np.diff(offsets), "<i8")).cast("B")
    values = memoryview(_le(times, "<i8")).cast("B")
    starts = offsets.tolist()
    out = []
    for lo, hi in itertools.pairwise(bounds):
        h = _DETAIL_PREFIX.copy()
        h.update(struct.pack("<q", hi - lo))
        h.update(b"flow_id\x00str\x00")
        h.update(lengths[8 * lo : 8 * hi])
        h.update(data[starts[lo] : starts[hi]])
        h.update(b"Nreceived_ms\x00<i8\x00")
        h.update(values[8 * lo : 8 * hi])
        h.update(b"N")
        out.append(h.hexdigest())
    return out


_DETAIL_PREFIX = hashlib.sha256(b"clearlane.table.v1\x00")


def cleared_bodies(
    cleared: list[BatchCleared], asset_codes: list[str], codes: pa.Array
) -> list[dict[str, Any]]:
    """:func:`_cleared_body` of each batch, computed for all of a step's batches at once: one
    compute call per step, not four per batch, for the net lines and the asset indices, and
    the detail digests from the concatenated columns (a step clears ~260 batches on the
    reference day, ~25,000 on the demo's; issue 18). Falls back to one batch at a time when the
    columns cannot be concatenated."""
    columns = cleared_columns(cleared)
    if columns is None:
        return [_cleared_body(b, asset_codes, codes) for b in cleared]
    net = np.asarray(columns.net_minor, dtype=np.int64)
    blob, line_offsets = _net_lines_buffer(columns.participant, columns.asset, net)
    asset_idx = np.asarray(
        pc.index_in(columns.asset, value_set=codes).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    # Net debit per (batch, asset), as totals_text sums it per batch.
    debit = np.zeros((len(cleared), len(asset_codes)), dtype=np.int64)
    sizes = np.diff(columns.net_bounds)
    np.add.at(debit, (np.repeat(np.arange(len(cleared)), sizes), asset_idx), -np.minimum(net, 0))
    cuts = line_offsets[columns.net_bounds].tolist()
    details = detail_digests(columns)
    out = []
    for i, b in enumerate(cleared):
        gross = np.asarray(b.gross_minor, dtype=np.int64).tolist()
        debits = debit[i].tolist()
        out.append(
            _cleared_fields(
                b,
                hashlib.sha256(blob[cuts[i] : cuts[i + 1]]).hexdigest(),
                ";".join(
                    f"{code}:{gross[a]}:{debits[a]}" for a, code in enumerate(asset_codes) if gross[a] != 0
                ),
                details[i],
            )
        )
    return out


def _concatenable(arrays: list[Any]) -> bool:
    first = arrays[0]
    return all(isinstance(a, pa.Array) and not isinstance(a, pa.DictionaryArray) for a in arrays) and all(
        a.type == first.type for a in arrays
    )


def _net_lines_buffer(participant: pa.Array, asset: pa.Array, net_minor: Any) -> tuple[memoryview, Any]:
    """The bytes of :func:`net_lines` for all rows and each row's start offset in them (one
    more at the end): rows ``i:j`` are ``blob[offsets[i]:offsets[j]]``. Plain string columns
    without nulls (every batch's net positions) are formatted by one compiled pass
    (:func:`_format_net_lines`); anything else by Arrow's join, as :func:`net_lines` does."""
    if len(participant) == 0:
        return memoryview(b""), np.zeros(1, dtype=np.int64)
    net = np.ascontiguousarray(net_minor, dtype=np.int64)
    participants, assets = _plain_strings(participant), _plain_strings(asset)
    if participants is not None and assets is not None and len(net) == len(participant) == len(asset):
        (p_data, p_off), (a_data, a_off) = participants, assets
        offsets = np.empty(len(net) + 1, dtype=np.int64)
        return memoryview(_format_net_lines(p_data, p_off, a_data, a_off, net, offsets)), offsets
    return _net_lines_arrow(participant, asset, net)


def _net_lines_arrow(
    participant: pa.Array, asset: pa.Array, net: npt.NDArray[np.int64]
) -> tuple[memoryview, Any]:
    """:func:`_net_lines_buffer` by Arrow's cast and join (the reference the compiled pass is
    tested against; a null in a column leaves its row's line out)."""
    amounts = pc.cast(pa.array(net), pa.string())
    lines = pc.binary_join_element_wise(
        pc.binary_join_element_wise(participant, asset, amounts, _SEP), _EMPTY, _NL
    )
    buffers = lines.buffers()
    offsets_type = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=offsets_type)[lines.offset : lines.offset + len(lines) + 1]
    data = memoryview(buffers[2]) if buffers[2] is not None else memoryview(b"")
    return data, offsets.astype(np.int64)


def _plain_strings(array: pa.Array) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]] | None:
    """A ``string`` array's data bytes and absolute int64 offsets (``arrow_strings``), or None
    for another type or an array with nulls (whose lines Arrow's join leaves out)."""
    if not pa.types.is_string(array.type) or array.null_count:
        return None
    return arrow_strings(array)


# Per line beyond the two texts: two commas, a sign, 19 digits at most (int64), a newline.
_LINE_EXTRA = 23


@njit(cache=True, nogil=True)
def _format_net_lines(p_data, p_off, a_data, a_off, net, offsets):  # type: ignore[no-untyped-def]
    """``participant,asset,net_minor\\n`` per row (the integer as Arrow casts it to a string),
    all rows in one buffer; ``offsets`` (``n + 1``) gets each row's start. Built with the
    leaves' own byte and decimal writers (core/textcols.py). Property test against Arrow's
    join: tests/core/test_net_lines.py."""
    n = net.shape[0]
    out = np.empty(p_off[n] - p_off[0] + a_off[n] - a_off[0] + _LINE_EXTRA * n, np.uint8)
    at = 0
    for i in range(n):
        offsets[i] = at
        at = put_bytes(out, at, p_data, p_off[i], p_off[i + 1])
        out[at] = 44  # ','
        at = put_bytes(out, at + 1, a_data, a_off[i], a_off[i + 1])
        out[at] = 44
        at = put_int(out, at + 1, net[i])
        out[at] = 10  # newline
        at += 1
    offsets[n] = at
    return out[:at]


def _cleared_body(b: BatchCleared, asset_codes: list[str], codes: pa.Array) -> dict[str, Any]:
    net_asset_idx = pc.index_in(b.net_asset, value_set=codes).to_numpy(zero_copy_only=False)
    return _cleared_fields(
        b,
        net_digest(b.net_participant, b.net_asset, b.net_minor),
        totals_text(asset_codes, b.gross_minor, b.net_minor, net_asset_idx),
        table_digest(pa.table({"flow_id": b.flow_ids, "received_ms": b.received_ms})),
    )


def _cleared_fields(b: BatchCleared, net: str, totals: str, detail: str) -> dict[str, Any]:
    return {
        "batch_id": b.batch_id,
        "pool": b.pool,
        "seq": int(b.seq),
        "opened_at_ms": int(b.opened_at_ms),
        "cleared_at_ms": int(b.cleared_at_ms),
        "flows": int(b.flows),
        "obligations": int(b.obligations),
        "gross_usd": float(b.gross_usd),
        "net_usd": float(b.net_usd),
        "root": bytes(b.root).hex(),
        "detail": detail,
        "net": net,
        "totals": totals,
    }


def _l1_body(update: L1GroupUpdated) -> dict[str, Any]:
    opened = update.opened
    meta = None
    if opened is not None:
        meta = {"origin": opened.origin, "created_ms": opened.created_ms, "flows": opened.flows}
    return {
        "group_id": update.group_id,
        "digest": table_digest(update.table),
        "rows": update.table.num_rows,
        "open": update.open_flows(),
        "meta": meta,
    }


# ---------------------------------------------------------------------- audit records
def batch_record(c: dict[str, Any]) -> str:
    return (
        f"clearlane.batch.v1|{c['batch_id']}|{c['pool']}|{c['seq']}|{c['opened_at_ms']}|{c['cleared_at_ms']}|"
        f"{c['flows']}|{c['obligations']}|{c['root']}|{c['totals']}|{c['net']}"
    )


@dataclass
class _BatchFold:
    root: str
    pool: str
    anchor_tx: str = ""
    anchor_height: int = -1


@dataclass
class RecordFold:
    """Derives the audit records of each step from its transition, in a fixed order.

    Per step: a key record (rotation entries), then one header per cleared batch in clearing
    order, then per batch in order of its first event of the step: its reorg records, its
    anchor record if the step leaves it anchored, its final or unwind record.
    """

    confirmations: dict[str, int]
    batches: dict[str, _BatchFold] = field(default_factory=dict)

    @classmethod
    def for_config(cls, config: Any) -> RecordFold:
        return cls({p.id: int(p.confirmations) for p in config.pools})

    def step(self, kind: str, payload: Any, body: dict[str, Any]) -> list[str]:
        out: list[str] = []
        if kind == "key_rotation":
            p = payload
            out.append(
                f"clearlane.key.v1|rotate|{p['prev_key_id']}|{p['key_id']}|{p['public_key']}|{p['at_ms']}|{p['log_seq']}"
            )
        for c in body["cleared"]:
            self.batches[c["batch_id"]] = _BatchFold(root=c["root"], pool=c["pool"])
            out.append(batch_record(c))
        order: dict[str, None] = {}  # batches in order of their first event (a dict: O(1) lookups)
        reorgs: dict[str, list[tuple[str, int]]] = {}
        for batch_id, event, at_ms, detail in body["events"]:
            order.setdefault(batch_id)
            if event == "reorged":
                reorgs.setdefault(batch_id, []).append((str(detail).split(" ", 1)[0], int(at_ms)))
        updates = body["updates"]
        for batch_id in order:
            state = self.batches.get(batch_id)
            if state is None:
                raise ValueError(f"transition {body['seq']}: event for unknown batch {batch_id}")
            for tx_id, at_ms in reorgs.get(batch_id, []):
                out.append(f"clearlane.reorg.v1|{batch_id}|{tx_id}|{at_ms}")
                state.anchor_tx, state.anchor_height = "", -1
            change = updates.get(batch_id, {})
            if change.get("anchor_tx"):
                state.anchor_tx, state.anchor_height = str(change["anchor_tx"]), int(change["anchor_height"])
                out.append(
                    f"clearlane.anchor.v1|{batch_id}|{state.root}|{state.anchor_tx}|{state.anchor_height}|"
                    f"{int(change['anchored_at_ms'])}|{change['anchor_block']}"
                )
            if change.get("state") == BatchState.FINAL.label:
                out.append(
                    f"clearlane.final.v1|{batch_id}|{int(change['final_at_ms'])}|{state.anchor_tx}|"
                    f"{state.anchor_height}|{self.confirmations[state.pool]}"
                )
                del self.batches[batch_id]
            elif change.get("state") == BatchState.UNWOUND.label:
                out.append(f"clearlane.unwind.v1|{batch_id}|{int(change['unwound_at_ms'])}")
                del self.batches[batch_id]
        return out


# ---------------------------------------------------------------------- incremental tree
@dataclass
class Frontier:
    """The right edge of an append-only RFC 9162 tree: O(log n) append and root."""

    size: int = 0
    nodes: list[tuple[int, bytes]] = field(default_factory=list)

    def append(self, data: bytes) -> bytes:
        digest = leaf_hash(data)
        self.append_hash(digest)
        return digest

    def append_hash(self, digest: bytes) -> None:
        nodes = self.nodes
        nodes.append((1, digest))
        while len(nodes) >= 2 and nodes[-1][0] == nodes[-2][0]:
            (width, right), (_, left) = nodes.pop(), nodes.pop()
            nodes.append((2 * width, node_hash(left, right)))
        self.size += 1

    def extend(self, items: Iterable[bytes]) -> None:
        for item in items:
            self.append(item)

    def root(self) -> bytes:
        if not self.nodes:
            return hashlib.sha256(b"").digest()
        root = self.nodes[-1][1]
        for _, left in reversed(self.nodes[:-1]):
            root = node_hash(left, root)
        return root
