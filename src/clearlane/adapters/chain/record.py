"""The anchor record: the bytes a clearlane transaction carries as calldata on a real chain.

Version 1 (docs/CHAIN.md has the same table, for third parties)::

    offset  size  field
    0       9     magic: ASCII "clearlane" (63 6c 65 61 72 6c 61 6e 65)
    9       1     version: 0x01
    10      1     kind: 0x01 anchor (an L2 batch root), 0x02 l1_settle (one gross L1 trade)
    11      32    payload hash: the batch's Merkle root (RFC 9162); 32 zero bytes for l1_settle
    43      2     n: length of the clearlane tx id, big-endian
    45      n     the clearlane tx id, UTF-8 (e.g. "anchor:fast-0000000042#1")
    45+n    2     m: length of the reference, big-endian
    47+n    m     the reference, UTF-8: the batch id (anchor) or the trade id (l1_settle)

Nothing follows the reference; a decoder refuses trailing bytes, an unknown version or kind.
The record is plain bytes so any explorer's "input data" view shows it; the ASCII magic and ids
are readable in an explorer's UTF-8 view.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from clearlane.core.model.chain import HASH_LEN_BYTES, TxKind, TxSubmission

__all__ = ["MAGIC", "RECORD_VERSION", "AnchorRecord", "RecordError", "decode_record", "encode_record"]

MAGIC = b"clearlane"
RECORD_VERSION = 1
_KIND_BYTE: dict[str, int] = {"anchor": 1, "l1_settle": 2}
_BYTE_KIND: dict[int, TxKind] = {1: "anchor", 2: "l1_settle"}
_HEAD = len(MAGIC) + 2 + HASH_LEN_BYTES
_FIELD_MAX = 0xFFFF


class RecordError(ValueError):
    """Bytes that are not a version-1 clearlane anchor record (the message says why)."""


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    """A decoded record: what a third party checks against a batch's proof."""

    version: int
    kind: TxKind
    payload_hash: bytes
    tx_id: str
    ref: str


def encode_record(tx: TxSubmission) -> bytes:
    """The calldata for ``tx`` (version 1)."""
    tx_id, ref = tx.tx_id.encode(), tx.ref.encode()
    if len(tx_id) > _FIELD_MAX or len(ref) > _FIELD_MAX:
        raise RecordError("tx id or reference longer than 65535 bytes")
    return b"".join(
        (
            MAGIC,
            bytes((RECORD_VERSION, _KIND_BYTE[tx.kind])),
            tx.payload_hash,
            struct.pack(">H", len(tx_id)),
            tx_id,
            struct.pack(">H", len(ref)),
            ref,
        )
    )


def _field(data: bytes, at: int, name: str) -> tuple[str, int]:
    if at + 2 > len(data):
        raise RecordError(f"record ends before the length of {name}")
    (n,) = struct.unpack_from(">H", data, at)
    end = at + 2 + n
    if end > len(data):
        raise RecordError(f"record ends inside {name}")
    try:
        return data[at + 2 : end].decode(), end
    except UnicodeDecodeError:
        raise RecordError(f"{name} is not UTF-8") from None


def decode_record(data: bytes) -> AnchorRecord:
    """Parse calldata; anything but a well-formed version-1 record raises :class:`RecordError`."""
    if not data.startswith(MAGIC):
        raise RecordError("calldata does not start with the clearlane magic")
    if len(data) < _HEAD:
        raise RecordError("record shorter than its fixed head")
    version, kind_byte = data[len(MAGIC)], data[len(MAGIC) + 1]
    if version != RECORD_VERSION:
        raise RecordError(f"unknown record version {version}")
    kind = _BYTE_KIND.get(kind_byte)
    if kind is None:
        raise RecordError(f"unknown record kind {kind_byte}")
    payload_hash = data[len(MAGIC) + 2 : _HEAD]
    tx_id, at = _field(data, _HEAD, "tx id")
    ref, at = _field(data, at, "reference")
    if at != len(data):
        raise RecordError("trailing bytes after the reference")
    return AnchorRecord(version, kind, payload_hash, tx_id, ref)
