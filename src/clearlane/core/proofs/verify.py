"""Standalone verifier for RFC 9162 (Certificate Transparency v2) Merkle tree proofs, SHA-256.

This file depends on the Python standard library only (Python 3.10+), so a third party can copy it
on its own and check clearlane batch commitments without installing clearlane.

Hashing (RFC 9162 §2.1.1, identical to RFC 6962 §2.1)
    leaf hash  = SHA-256(0x00 || leaf data)
    node hash  = SHA-256(0x01 || left child hash || right child hash)
    empty tree = SHA-256("")
The 0x00/0x01 domain separation keeps a leaf from being passed off as an interior node (second
preimage attack). The tree over n > 1 leaves splits at k, the largest power of two below n: the
left subtree is the perfect tree over the first k leaves, the right subtree covers the rest.

Inclusion (RFC 9162 §2.1.3.2)
    Walk from the leaf to the root with ``fn`` = leaf index and ``sn`` = last index. At each level,
    when ``fn`` is a right child (odd) or is the last node of its level (``fn == sn``), the proof
    hash is a left sibling; after combining a last-node-of-level the walk skips the levels on which
    that node had no sibling. Otherwise the proof hash is a right sibling. The proof is valid when
    it is consumed exactly as ``sn`` reaches 0 and the computed hash equals the root.

Consistency (RFC 9162 §2.1.4.2)
    The proof holds the hashes needed to rebuild both the old root (size1) and the new root
    (size2) from the largest perfect subtree ending at leaf size1 - 1; when size1 is a power of
    two that subtree is the old tree itself and its root is prepended by the verifier. Hashes
    left of the path feed both roots; hashes right of the path feed only the new root.

Edge cases follow the transparency-dev/merkle reference (proof/verify.go) and its JSON vectors:
    * every hash taking part in a computation must be exactly 32 bytes (an empty leaf hash and an
      empty root would otherwise "verify" a size-1 tree);
    * size1 == 0 is refused (a proof from the empty tree proves nothing), including 0 == 0;
    * 0 < size1 == size2 needs an empty proof and byte-identical roots; no hash is computed there,
      so the roots are compared as given and their length is not checked;
    * a proof that is longer or shorter than the algorithm consumes is refused.

Every failure raises :class:`ProofError`, whose ``code`` attribute is stable for callers.

Proof documents (clearlane's trade proofs and checkpoint consistency files)
    :func:`verify_proof_document` checks a ``clearlane.proof.v1`` file end to end: the trade's
    canonical leaf -> RFC 9162 audit path -> the batch root named in the batch header record ->
    the header's (and the anchor / final records') inclusion in the checkpoint tree -> the
    checkpoint's Ed25519 signature -> a key trusted directly (``pubkeys``) or through signed
    rotations. :func:`verify_consistency_document` checks two signed checkpoints and the RFC
    9162 consistency proof between them. The file must be in its canonical form (sorted keys,
    one-space indent, ASCII, final newline), so every byte of it is either verified or refused.
    Only this part needs the ``cryptography`` package (imported on first use, for Ed25519).
    Run ``python verify.py FILE [--pubkeys KEYS.json]``; the formats are in clearlane's
    docs/AUDIT.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "CHECKPOINT_FORMAT",
    "EMPTY_ROOT",
    "HASH_SIZE_BYTES",
    "ProofError",
    "consistency_proof_length",
    "inclusion_proof_length",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_consistency_document",
    "verify_inclusion",
    "verify_proof_document",
]

HASH_SIZE_BYTES: Final = 32
EMPTY_ROOT: Final[bytes] = hashlib.sha256(b"").digest()

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"

PROOF_BAD_TYPE: Final = "PROOF_BAD_TYPE"
PROOF_BAD_HASH_LENGTH: Final = "PROOF_BAD_HASH_LENGTH"
PROOF_INDEX_OUT_OF_RANGE: Final = "PROOF_INDEX_OUT_OF_RANGE"
PROOF_BAD_SIZES: Final = "PROOF_BAD_SIZES"
PROOF_WRONG_LENGTH: Final = "PROOF_WRONG_LENGTH"
PROOF_ROOT_MISMATCH: Final = "PROOF_ROOT_MISMATCH"
PROOF_FORMAT: Final = "PROOF_FORMAT"
PROOF_RECORD_MISMATCH: Final = "PROOF_RECORD_MISMATCH"
PROOF_BAD_SIGNATURE: Final = "PROOF_BAD_SIGNATURE"
PROOF_UNTRUSTED_KEY: Final = "PROOF_UNTRUSTED_KEY"


class ProofError(ValueError):
    """A proof was refused. ``code`` is one of the module-level ``PROOF_*`` constants."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    # Concatenating (rather than bytes(data)) keeps an int from silently becoming zero bytes.
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def inclusion_proof_length(index: int, tree_size: int) -> int:
    """Number of hashes in the inclusion proof of leaf ``index`` in a tree of ``tree_size`` leaves.

    Below the level where the paths to ``index`` and to the last leaf diverge every level has a
    sibling; above it only the levels where ``index`` is a right child contribute one.
    """
    _check_count(index, "index")
    _check_count(tree_size, "tree_size")
    if index >= tree_size:
        raise ProofError(PROOF_INDEX_OUT_OF_RANGE, f"index {index} >= tree_size {tree_size}")
    inner = (index ^ (tree_size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def consistency_proof_length(size1: int, size2: int) -> int:
    """Number of hashes in the consistency proof between trees of ``size1`` <= ``size2`` leaves."""
    _check_count(size1, "size1")
    _check_count(size2, "size2")
    if size1 == 0 or size1 > size2:
        raise ProofError(PROOF_BAD_SIZES, f"need 0 < size1 <= size2, got {size1}, {size2}")
    if size1 == size2:
        return 0
    last = size1 - 1
    inner = (last ^ (size2 - 1)).bit_length()
    border = (last >> inner).bit_count()
    # The levels below the old tree's largest right-edge perfect subtree are covered by that
    # subtree's hash, which the proof carries unless it is the whole old tree (size1 = 2^k).
    shift = (size1 & -size1).bit_length() - 1
    seed_in_proof = 0 if size1 == 1 << shift else 1
    return seed_in_proof + inner - shift + border


def root_from_inclusion_proof(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """Root implied by ``proof`` for leaf ``index`` of a ``tree_size`` tree (RFC 9162 §2.1.3.2 steps 1-4).

    Raises :class:`ProofError` when the inputs are malformed or the proof has the wrong length;
    comparing the result with a trusted root is the caller's job (see :func:`verify_inclusion`).
    """
    expected_len = inclusion_proof_length(index, tree_size)
    seed = _check_hash(leaf_hash, "leaf hash")
    path = _check_proof(proof)
    if len(path) != expected_len:
        raise ProofError(
            PROOF_WRONG_LENGTH, f"inclusion proof has {len(path)} hashes, expected {expected_len}"
        )

    fn = index
    sn = tree_size - 1
    r = seed
    for p in path:
        if sn == 0:
            raise ProofError(PROOF_WRONG_LENGTH, "inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # A last-of-level node with an even index is promoted unchanged past every level
            # where it has no right sibling, so those levels contribute no proof hash.
            while fn != 0 and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(PROOF_WRONG_LENGTH, "inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` sits at ``index`` in the tree of ``tree_size`` leaves with ``root``.

    RFC 9162 §2.1.3.2. Returns None on success and raises :class:`ProofError` otherwise.
    """
    expected_root = _check_hash(root, "root")
    computed_root = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)
    if computed_root != expected_root:
        raise ProofError(PROOF_ROOT_MISMATCH, "inclusion proof does not lead to the given root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of ``size2`` leaves with ``root2`` extends the one of ``size1`` with ``root1``.

    RFC 9162 §2.1.4.2. Returns None on success and raises :class:`ProofError` otherwise.
    """
    _check_count(size1, "size1")
    _check_count(size2, "size2")
    if size2 < size1:
        raise ProofError(PROOF_BAD_SIZES, f"size2 {size2} < size1 {size1}")
    if size1 == 0:
        raise ProofError(PROOF_BAD_SIZES, "a consistency proof from the empty tree is meaningless")
    path = _check_proof(proof)

    if size1 == size2:
        if path:
            raise ProofError(PROOF_WRONG_LENGTH, "size1 == size2 requires an empty proof")
        if not isinstance(root1, bytes | bytearray) or not isinstance(root2, bytes | bytearray):
            raise ProofError(PROOF_BAD_TYPE, "roots must be bytes")
        if bytes(root1) != bytes(root2):
            raise ProofError(PROOF_ROOT_MISMATCH, "size1 == size2 but the roots differ")
        return

    first_root = _check_hash(root1, "root1")
    second_root = _check_hash(root2, "root2")
    # RFC step 1.
    if not path:
        raise ProofError(PROOF_WRONG_LENGTH, "consistency proof is empty")
    expected_len = consistency_proof_length(size1, size2)
    if len(path) != expected_len:
        raise ProofError(
            PROOF_WRONG_LENGTH, f"consistency proof has {len(path)} hashes, expected {expected_len}"
        )

    # RFC steps 2-4.
    if size1 & (size1 - 1) == 0:
        path.insert(0, first_root)
    fn = size1 - 1
    sn = size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1

    # RFC steps 5-6.
    fr = path[0]
    sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(PROOF_WRONG_LENGTH, "consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn != 0 and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1

    # RFC step 7.
    if sn != 0:
        raise ProofError(PROOF_WRONG_LENGTH, "consistency proof is shorter than the path to the root")
    if fr != first_root:
        raise ProofError(PROOF_ROOT_MISMATCH, "consistency proof does not lead to root1")
    if sr != second_root:
        raise ProofError(PROOF_ROOT_MISMATCH, "consistency proof does not lead to root2")


def _check_count(value: int, name: str) -> None:
    # bool is an int subclass; True as a tree size is a caller bug, not a size of 1.
    if type(value) is not int:
        raise ProofError(PROOF_BAD_TYPE, f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ProofError(PROOF_BAD_SIZES, f"{name} must be >= 0, got {value}")


def _check_hash(value: bytes, name: str) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise ProofError(PROOF_BAD_TYPE, f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE_BYTES:
        raise ProofError(PROOF_BAD_HASH_LENGTH, f"{name} is {len(value)} bytes, expected {HASH_SIZE_BYTES}")
    return bytes(value)


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    # A str or bytes object is a Sequence too; accepting one would iterate over characters.
    if isinstance(proof, str | bytes | bytearray) or not isinstance(proof, Sequence):
        raise ProofError(PROOF_BAD_TYPE, f"proof must be a sequence of bytes, got {type(proof).__name__}")
    return [_check_hash(h, f"proof[{i}]") for i, h in enumerate(proof)]


# ---------------------------------------------------------------- signed checkpoints and keys

CHECKPOINT_FORMAT: Final = "clearlane.checkpoint.v1"
KEY_FORMAT: Final = "clearlane.key.v1"
KEYS_FILE_FORMAT: Final = "clearlane.keys.v1"
PROOF_DOC_FORMAT: Final = "clearlane.proof.v1"
CONSISTENCY_DOC_FORMAT: Final = "clearlane.consistency.v1"

# A checkpoint and a key statement are short "name value" text notes; the signature covers the
# exact UTF-8 bytes, and the parser accepts only the one canonical spelling of each value.
CHECKPOINT_FIELDS: Final = (
    ("store", "id"),
    ("tree_size", "int"),
    ("tree_root", "hash"),
    ("log_seq", "int"),
    ("log_head", "hash"),
    ("state_root", "hash"),
    ("chain_tip", "int"),
    ("at_ms", "int"),
    ("key_id", "hash"),
)
KEY_FIELDS: Final = (
    ("action", "action"),
    ("store", "id"),
    ("key_id", "hash"),
    ("public_key", "hash"),
    ("prev_key_id", "hash?"),
    ("log_seq", "int"),
    ("at_ms", "int"),
)
_PATTERNS: Final = {
    "int": re.compile(r"0|[1-9][0-9]{0,18}"),
    "hash": re.compile(r"[0-9a-f]{64}"),
    "hash?": re.compile(r"-|[0-9a-f]{64}"),
    "id": re.compile(r"[0-9a-f]{32}"),
    "action": re.compile(r"init|rotate"),
    "sig": re.compile(r"[0-9a-f]{128}"),
}


def encode_note(head: str, fields: Mapping[str, Any], spec: Sequence[tuple[str, str]]) -> str:
    """``head`` then one ``name value`` line per field of ``spec``, each ending in a newline."""
    return "".join([head + "\n", *(f"{name} {fields[name]}\n" for name, _ in spec)])


def parse_note(text: object, head: str, spec: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Inverse of :func:`encode_note`; refuses anything but the canonical spelling."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise ProofError(PROOF_FORMAT, f"{head}: not a note ending in a newline")
    lines = text[:-1].split("\n")
    if lines[0] != head or len(lines) != len(spec) + 1:
        raise ProofError(PROOF_FORMAT, f"{head}: expected a {head} note with {len(spec)} fields")
    out: dict[str, Any] = {}
    for line, (name, kind) in zip(lines[1:], spec, strict=True):
        key, _, value = line.partition(" ")
        if key != name or not _PATTERNS[kind].fullmatch(value):
            raise ProofError(PROOF_FORMAT, f"{head}: bad line {line!r} (expected {name} <{kind}>)")
        out[name] = int(value) if kind == "int" else value
    return out


def key_id_of(public_key: bytes) -> str:
    """A key's id: the hex SHA-256 of its raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Ed25519 (RFC 8032) via the ``cryptography`` package; raises :class:`ProofError`."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ProofError(
            PROOF_BAD_SIGNATURE, f"checking signatures needs the 'cryptography' package: {exc}"
        ) from None
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise ProofError(PROOF_BAD_SIGNATURE, "Ed25519 signature does not verify") from None


class _Key:
    def __init__(self, key_id: str, public_key: bytes, valid_from: int, valid_until: int | None) -> None:
        self.key_id = key_id
        self.public_key = public_key
        self.valid_from = valid_from
        self.valid_until = valid_until

    def covers(self, log_seq: int) -> bool:
        return self.valid_from <= log_seq and (self.valid_until is None or log_seq < self.valid_until)


def load_pubkeys(data: bytes) -> dict[str, _Key]:
    """Pinned keys from a ``clearlane keys export`` file (canonical JSON not required)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProofError(PROOF_FORMAT, f"public key file: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != KEYS_FILE_FORMAT
        or not isinstance(doc.get("keys"), list)
    ):
        raise ProofError(
            PROOF_FORMAT, f"public key file: expected format {KEYS_FILE_FORMAT} with a keys list"
        )
    pins: dict[str, _Key] = {}
    for item in doc["keys"]:
        if not isinstance(item, dict):
            raise ProofError(PROOF_FORMAT, "public key file: each key must be an object")
        public_key = _hex(item.get("public_key"), "hash", "public_key")
        key_id = key_id_of(public_key)
        if item.get("key_id") != key_id:
            raise ProofError(
                PROOF_FORMAT, f"public key file: key_id {item.get('key_id')!r} is not the key's hash"
            )
        until = item.get("valid_until_seq")
        pins[key_id] = _Key(
            key_id,
            public_key,
            _int(item.get("valid_from_seq", 0), "valid_from_seq"),
            None if until is None else _int(until, "valid_until_seq"),
        )
    return pins


def trusted_keys(key_docs: object, pins: Mapping[str, _Key] | None) -> dict[str, _Key]:
    """Keys that may sign checkpoints, with the log range each may sign for.

    ``key_docs`` is the list of signed key statements (an ``init`` then ``rotate`` records, each
    signed by the new key and, for a rotation, by the previous one). Without ``pins`` the
    ``init`` key is trusted as shipped; with pins, trust starts at the pinned keys. A rotation
    is followed only from a trusted key, and ends the previous key's range at its log seq.
    """
    if not isinstance(key_docs, list) or not key_docs:
        raise ProofError(PROOF_FORMAT, "keys must be a non-empty list of key statements")
    chain: dict[str, _Key] = {}
    trusted: dict[str, _Key] = {}
    store = None
    for position, item in enumerate(key_docs):
        item = _require_fields(item, {"statement", "sig_new", "sig_prev"}, f"keys[{position}]")
        fields = parse_note(item["statement"], KEY_FORMAT, KEY_FIELDS)
        public_key = bytes.fromhex(fields["public_key"])
        if key_id_of(public_key) != fields["key_id"]:
            raise ProofError(PROOF_RECORD_MISMATCH, f"keys[{position}]: key_id is not the hash of public_key")
        if store is not None and fields["store"] != store:
            raise ProofError(PROOF_RECORD_MISMATCH, f"keys[{position}]: statement of another store")
        store = fields["store"]
        message = item["statement"].encode()
        verify_signature(public_key, _hex(item["sig_new"], "sig", "sig_new"), message)
        key = _Key(fields["key_id"], public_key, fields["log_seq"], None)
        if fields["action"] == "init":
            if (
                position != 0
                or fields["prev_key_id"] != "-"
                or fields["log_seq"] != 0
                or item["sig_prev"] is not None
            ):
                raise ProofError(PROOF_FORMAT, f"keys[{position}]: an init statement must come first, alone")
            roots_ok = pins is None
        else:
            prev = chain.get(fields["prev_key_id"])
            if prev is None or prev.valid_until is not None or fields["log_seq"] <= prev.valid_from:
                raise ProofError(
                    PROOF_RECORD_MISMATCH, f"keys[{position}]: rotation from a key that is not current"
                )
            verify_signature(prev.public_key, _hex(item["sig_prev"], "sig", "sig_prev"), message)
            prev.valid_until = fields["log_seq"]
            roots_ok = prev.key_id in trusted
        if fields["key_id"] in chain:
            raise ProofError(
                PROOF_RECORD_MISMATCH, f"keys[{position}]: key {fields['key_id']} introduced twice"
            )
        chain[key.key_id] = key
        if roots_ok or (pins is not None and key.key_id in pins):
            trusted[key.key_id] = key
    if pins is not None:
        for key_id, pin in pins.items():
            known = trusted.get(key_id) or chain.get(key_id)
            if known is None:
                trusted[key_id] = pin
                continue
            if known.public_key != pin.public_key:
                raise ProofError(PROOF_UNTRUSTED_KEY, f"key {key_id} differs from the pinned public key")
            trusted[key_id] = known
            known.valid_from = max(known.valid_from, pin.valid_from)
            if pin.valid_until is not None:
                known.valid_until = (
                    pin.valid_until if known.valid_until is None else min(known.valid_until, pin.valid_until)
                )
    return trusted


def verify_checkpoint(item: object, keys: Mapping[str, _Key]) -> dict[str, Any]:
    """Check a signed checkpoint ``{"body", "signature"}``; returns its parsed fields."""
    item = _require_fields(item, {"body", "signature"}, "checkpoint")
    fields = parse_note(item["body"], CHECKPOINT_FORMAT, CHECKPOINT_FIELDS)
    key = keys.get(fields["key_id"])
    if key is None:
        raise ProofError(
            PROOF_UNTRUSTED_KEY, f"checkpoint signed by key {fields['key_id']}, which is not trusted"
        )
    if not key.covers(fields["log_seq"]):
        raise ProofError(
            PROOF_UNTRUSTED_KEY, f"key {key.key_id} was not the signing key at log seq {fields['log_seq']}"
        )
    verify_signature(key.public_key, _hex(item["signature"], "sig", "signature"), item["body"].encode())
    return fields


# ---------------------------------------------------------------- proof documents


def canonical_document(doc: Any) -> bytes:
    """The one accepted byte form of a proof or consistency document."""
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n").encode()


def _load_document(data: bytes, expected_format: str | None = None) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("ascii"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProofError(PROOF_FORMAT, f"not a JSON document: {exc}") from None
    if not isinstance(doc, dict) or canonical_document(doc) != data:
        raise ProofError(
            PROOF_FORMAT, "document is not in canonical form (sorted keys, indent 1, ASCII, final newline)"
        )
    if expected_format is not None and doc.get("format") != expected_format:
        raise ProofError(PROOF_FORMAT, f"format must be {expected_format!r}")
    return doc


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    # A number too large for a float (``1e999``) would parse as infinity, which the canonical
    # form cannot write back: refused here as malformed, not left to crash the re-encoding.
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]!r} is out of range")
    return value


def _included_record(
    part: object, tree_size: int, tree_root: bytes, kind: str, n_fields: int, check: bool = True
) -> list[str]:
    """An audit record with its inclusion proof in the checkpoint tree; returns its fields."""
    part = _require_fields(part, {"record", "index", "path"}, kind)
    record = part["record"]
    if not isinstance(record, str):
        raise ProofError(PROOF_FORMAT, f"{kind}.record must be a string")
    fields = record.split("|")
    if fields[0] != kind or len(fields) != n_fields:
        raise ProofError(PROOF_FORMAT, f"{kind}: expected a {kind} record with {n_fields} fields")
    path = [_hex(h, "hash", f"{kind}.path[]") for h in _list(part["path"], f"{kind}.path")]
    index = _int(part["index"], f"{kind}.index")
    if check:
        verify_inclusion(leaf_hash(record.encode()), index, tree_size, path, tree_root)
    return fields


def verify_proof_document(data: bytes, pubkeys: Mapping[str, _Key] | None = None) -> dict[str, Any]:
    """Check a ``clearlane.proof.v1`` trade proof; returns ``{"summary", "trust"}``.

    ``pubkeys`` (from :func:`load_pubkeys`) pins the trusted keys; without it the key chain
    shipped in the document is trusted from its ``init`` statement.
    """
    doc = _load_document(data, PROOF_DOC_FORMAT)
    _require_fields(
        doc,
        {"format", "trade_id", "leaf", "batch", "anchor", "final", "unwind", "checkpoint", "keys", "summary"},
        "proof",
    )
    keys = trusted_keys(doc["keys"], pubkeys)
    cp = verify_checkpoint(doc["checkpoint"], keys)
    summary = proof_summary(doc, cp, check=True)
    if doc["summary"] != summary:
        raise ProofError(PROOF_RECORD_MISMATCH, "summary does not match the verified records")
    return {
        "summary": summary,
        "trust": "pinned keys" if pubkeys is not None else "key chain shipped in the proof",
    }


def proof_summary(doc: dict[str, Any], cp: dict[str, Any], *, check: bool) -> dict[str, Any]:
    """Parse a proof's leaf and records into its summary; with ``check`` also verify the leaf's
    audit path to the batch root and each record's inclusion in the checkpoint's tree."""
    size, tree_root = cp["tree_size"], bytes.fromhex(cp["tree_root"])

    b = _included_record(doc["batch"], size, tree_root, "clearlane.batch.v1", 11, check)
    batch_id = b[1]
    flows = _int_text(b[6], "batch flows")
    root = _hex(b[8], "hash", "batch root")
    lf, index = _proof_leaf(doc, batch_id, flows, root, check)

    anchor = None
    if doc["anchor"] is not None:
        a = _included_record(doc["anchor"], size, tree_root, "clearlane.anchor.v1", 7, check)
        if a[1] != batch_id or a[2] != b[8]:
            raise ProofError(PROOF_RECORD_MISMATCH, "anchor record names another batch or root")
        height = _int_text(a[4], "anchor height")
        anchor = {
            "tx_id": a[3],
            "height": height,
            "block_time_ms": _int_text(a[5], "anchor block time"),
            "block_hash": _hex(a[6], "hash", "anchor block hash").hex(),
            "confirmations": max(0, cp["chain_tip"] - height + 1),
        }
    final_ms, unwound_ms = _final_and_unwind(doc, size, tree_root, batch_id, anchor, check)
    state = (
        "final"
        if final_ms is not None
        else "unwound"
        if unwound_ms is not None
        else "anchored"
        if anchor
        else "cleared"
    )
    return {
        "trade_id": doc["trade_id"],
        "kind": lf[3],
        "exchange_batch_id": lf[5],
        "obligations": _legs(lf[6]),
        "batch": _batch_summary(b, flows, index),
        "anchor": anchor,
        "state": state,
        "final_at_ms": final_ms,
        "unwound_at_ms": unwound_ms,
        "checkpoint": {k: cp[k] for k in ("store", "tree_size", "log_seq", "at_ms", "chain_tip", "key_id")},
    }


def _proof_leaf(
    doc: dict[str, Any], batch_id: str, flows: int, root: bytes, check: bool
) -> tuple[list[str], int]:
    """The proof's leaf (its fields and index), which must be the trade's leaf in this batch."""
    leaf = _require_fields(doc["leaf"], {"text", "index", "path"}, "leaf")
    text = leaf["text"]
    index = _int(leaf["index"], "leaf.index")
    if not isinstance(text, str):
        raise ProofError(PROOF_FORMAT, "leaf.text must be a string")
    lf = text.split("|")
    if len(lf) != 7 or lf[0] != "clearlane.leaf.v1":
        raise ProofError(PROOF_FORMAT, "leaf.text is not a clearlane.leaf.v1 leaf")
    if lf[1] != batch_id or lf[2] != str(index) or lf[4] != doc["trade_id"]:
        raise ProofError(PROOF_RECORD_MISMATCH, "leaf names another batch, position or trade")
    path = [_hex(h, "hash", "leaf.path[]") for h in _list(leaf["path"], "leaf.path")]
    if check:
        verify_inclusion(leaf_hash(text.encode()), index, flows, path, root)
    return lf, index


def _final_and_unwind(
    doc: dict[str, Any],
    size: int,
    tree_root: bytes,
    batch_id: str,
    anchor: dict[str, Any] | None,
    check: bool,
) -> tuple[int | None, int | None]:
    """The batch's final and unwind times; a final record also sets the anchor's confirmations."""
    final_ms = unwound_ms = None
    if doc["final"] is not None:
        f = _included_record(doc["final"], size, tree_root, "clearlane.final.v1", 6, check)
        if (
            anchor is None
            or f[1] != batch_id
            or f[3] != anchor["tx_id"]
            or _int_text(f[4], "final height") != anchor["height"]
        ):
            raise ProofError(PROOF_RECORD_MISMATCH, "final record does not match the batch's anchor")
        final_ms = _int_text(f[2], "final time")
        anchor["confirmations_required"] = _int_text(f[5], "confirmations")
    if doc["unwind"] is not None:
        u = _included_record(doc["unwind"], size, tree_root, "clearlane.unwind.v1", 3, check)
        if u[1] != batch_id or final_ms is not None or anchor is not None:
            raise ProofError(PROOF_RECORD_MISMATCH, "unwind record does not fit the batch")
        unwound_ms = _int_text(u[2], "unwind time")
    return final_ms, unwound_ms


def _batch_summary(b: list[str], flows: int, index: int) -> dict[str, Any]:
    return {
        "batch_id": b[1],
        "pool": b[2],
        "seq": _int_text(b[3], "batch seq"),
        "opened_at_ms": _int_text(b[4], "opened"),
        "cleared_at_ms": _int_text(b[5], "cleared"),
        "flows": flows,
        "obligations": _int_text(b[7], "obligations"),
        "root": b[8],
        "net_totals": _totals(b[9]),
        "net_instructions_sha256": _hex(b[10], "hash", "net digest").hex(),
        "leaf_index": index,
    }


def verify_consistency_document(data: bytes, pubkeys: Mapping[str, _Key] | None = None) -> dict[str, Any]:
    """Check a ``clearlane.consistency.v1`` file: two signed checkpoints of one store, the later
    extending the earlier (RFC 9162 §2.1.4); returns ``{"old", "new", "trust"}``."""
    doc = _load_document(data, CONSISTENCY_DOC_FORMAT)
    _require_fields(doc, {"format", "old", "new", "proof", "keys"}, "consistency")
    keys = trusted_keys(doc["keys"], pubkeys)
    old = verify_checkpoint(doc["old"], keys)
    new = verify_checkpoint(doc["new"], keys)
    if old["store"] != new["store"]:
        raise ProofError(PROOF_RECORD_MISMATCH, "the two checkpoints belong to different stores")
    if old["log_seq"] > new["log_seq"]:
        raise ProofError(PROOF_BAD_SIZES, "the old checkpoint is later in the log than the new one")
    proof = [_hex(h, "hash", "proof[]") for h in _list(doc["proof"], "proof")]
    if old["tree_size"] == 0:
        if proof or old["tree_root"] != EMPTY_ROOT.hex():
            raise ProofError(PROOF_ROOT_MISMATCH, "an empty old tree needs an empty proof and the empty root")
    else:
        verify_consistency(
            old["tree_size"],
            new["tree_size"],
            proof,
            bytes.fromhex(old["tree_root"]),
            bytes.fromhex(new["tree_root"]),
        )
    return {
        "old": old,
        "new": new,
        "trust": "pinned keys" if pubkeys is not None else "key chain shipped in the file",
    }


def _legs(text: str) -> list[dict[str, Any]]:
    out = []
    for leg in text.split(";"):
        payer, sep, rest = leg.partition(">")
        parts = rest.rsplit(":", 2)
        if not sep or len(parts) != 3:
            raise ProofError(PROOF_FORMAT, f"leaf leg {leg!r} is not payer>payee:ASSET:amount")
        out.append(
            {
                "payer": payer,
                "payee": parts[0],
                "asset": parts[1],
                "amount_minor": _int_text(parts[2], "amount"),
            }
        )
    return out


def _totals(text: str) -> list[dict[str, Any]]:
    out = []
    for item in text.split(";") if text else []:
        parts = item.split(":")
        if len(parts) != 3:
            raise ProofError(PROOF_FORMAT, f"net total {item!r} is not ASSET:gross:net_debit")
        out.append(
            {
                "asset": parts[0],
                "gross_minor": _int_text(parts[1], "gross"),
                "net_debit_minor": _int_text(parts[2], "net debit"),
            }
        )
    return out


def _require_fields(item: object, names: set[str], where: str) -> dict[str, Any]:
    if not isinstance(item, dict) or set(item) != names:
        raise ProofError(PROOF_FORMAT, f"{where} must be an object with exactly {sorted(names)}")
    return item


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProofError(PROOF_FORMAT, f"{where} must be a list")
    return value


def _int(value: object, where: str) -> int:
    if type(value) is not int or value < 0:
        raise ProofError(PROOF_FORMAT, f"{where} must be a non-negative integer")
    return value


def _int_text(value: str, where: str) -> int:
    if not _PATTERNS["int"].fullmatch(value):
        raise ProofError(PROOF_FORMAT, f"{where} {value!r} is not a canonical integer")
    return int(value)


def _hex(value: object, kind: str, where: str) -> bytes:
    if not isinstance(value, str) or not _PATTERNS[kind].fullmatch(value):
        raise ProofError(PROOF_FORMAT, f"{where} must be lower-case hex of the right length")
    return bytes.fromhex(value)


def main(argv: Sequence[str] | None = None) -> int:
    """``python verify.py FILE [--pubkeys KEYS.json]``: exit 0 verified, 1 refused."""
    import argparse

    parser = argparse.ArgumentParser(description="Verify a clearlane proof or consistency file offline.")
    parser.add_argument("file")
    parser.add_argument("--pubkeys", help="pinned public keys (clearlane keys export)")
    args = parser.parse_args(argv)
    try:
        with open(args.file, "rb") as handle:
            data = handle.read()
        pins = None
        if args.pubkeys:
            with open(args.pubkeys, "rb") as handle:
                pins = load_pubkeys(handle.read())
        if b'"clearlane.consistency.v1"' in data:
            result = verify_consistency_document(data, pins)
        else:
            result = verify_proof_document(data, pins)
    except ProofError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1, sort_keys=True))
    print("verified", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
