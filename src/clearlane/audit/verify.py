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
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE_BYTES",
    "ProofError",
    "consistency_proof_length",
    "inclusion_proof_length",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
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
