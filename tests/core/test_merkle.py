"""Tests for clearlane.core.proofs.merkle (builder) and clearlane.core.proofs.verify (standalone verifier).

The RFC 6962 / RFC 9162 vectors come from transparency-dev/merkle and are read in place from the
shared data directory next to the repository; they are never copied into the repo.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearlane.core.proofs import merkle
from clearlane.core.proofs import verify as verify_module
from clearlane.core.proofs.merkle import MerkleTree, backend_name, hash_leaves, merkle_root
from clearlane.core.proofs.verify import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof_length,
    inclusion_proof_length,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

VECTORS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "merkle"
VERIFY_PY = Path(verify_module.__file__).resolve()
needs_vectors = pytest.mark.skipif(not VECTORS_DIR.is_dir(), reason=f"vectors not found at {VECTORS_DIR}")


def _vector_files(kind: str) -> list[Path]:
    root = VECTORS_DIR / "testdata" / kind
    return sorted(root.rglob("*.json")) if root.is_dir() else []


INCLUSION_FILES = _vector_files("inclusion")
CONSISTENCY_FILES = _vector_files("consistency")


def _vector_id(path: Path) -> str:
    return path.relative_to(VECTORS_DIR / "testdata").as_posix()


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _b64_list(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


def _fast_available() -> bool:
    return merkle.fast_backend_status().startswith("fast")


needs_fast = pytest.mark.skipif(not _fast_available(), reason=f"fast backend: {merkle.fast_backend_status()}")
BACKENDS = ["hashlib", pytest.param("fast", marks=needs_fast)]


# ---------------------------------------------------------------- tiny RFC 9162 reference (recursive)


def _split(n: int) -> int:
    """Largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _ref_mth(leaves: tuple[bytes, ...]) -> bytes:
    """RFC 9162 §2.1.1 MTH over leaf *hashes*."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return hashlib.sha256(b"\x01" + _ref_mth(leaves[:k]) + _ref_mth(leaves[k:])).digest()


def _ref_path(m: int, leaves: tuple[bytes, ...]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_ref_path(m, leaves[:k]), _ref_mth(leaves[k:])]
    return [*_ref_path(m - k, leaves[k:]), _ref_mth(leaves[:k])]


def _ref_subproof(m: int, leaves: tuple[bytes, ...], whole: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if whole else [_ref_mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*_ref_subproof(m, leaves[:k], whole), _ref_mth(leaves[k:])]
    return [*_ref_subproof(m - k, leaves[k:], False), _ref_mth(leaves[:k])]


@functools.cache
def _path_shape(m: int, n: int) -> tuple[bool, ...]:
    """Side of each PATH element (True = left sibling): the whole input to the verifier's walk."""
    if n == 1:
        return ()
    k = _split(n)
    return (*_path_shape(m, k), False) if m < k else (*_path_shape(m - k, n - k), True)


@functools.cache
def _subproof_shape(m: int, n: int, whole: bool = True) -> tuple[str, ...]:
    """Role of each SUBPROOF element: seed, left of the path (both roots) or right (new root only)."""
    if m == n:
        return () if whole else ("seed",)
    k = _split(n)
    if m <= k:
        return (*_subproof_shape(m, k, whole), "right")
    return (*_subproof_shape(m - k, n - k, False), "left")


def _flip(value: bytes, position: int) -> bytes:
    changed = bytearray(value)
    changed[position % len(changed)] ^= 0x01
    return bytes(changed)


# ---------------------------------------------------------------- RFC 6962 vectors (transparency-dev)


def _readme_leaves_and_roots() -> tuple[list[bytes], list[bytes]]:
    text = (VECTORS_DIR / "README.md").read_text()
    leaves_line = next(line for line in text.splitlines() if line.startswith("Leaf inputs (hex)"))
    leaves = [bytes.fromhex(h) for h in re.findall(r'"([0-9a-f]*)"', leaves_line)]
    roots_block = text.split("Expected roots by tree size")[1].split("Happy-path")[0]
    roots = [bytes.fromhex(h) for _, h in re.findall(r"^\s*(\d+)\s+([0-9a-f]{64})\s*$", roots_block, re.M)]
    return leaves, roots


def _go_function_hashes(source: str, function: str) -> list[list[bytes]]:
    """hd("...") literals of a Go function in constants.go, grouped by `{...}` level blocks."""
    body = source.split(f"func {function}()")[1].split("\n}\n")[0]
    groups = re.split(r"\},\s*\{", body)
    return [[bytes.fromhex(h) for h in re.findall(r'hd\("([0-9a-f]*)"\)', group)] for group in groups]


@functools.cache
def _go_constants() -> tuple[list[bytes], list[list[bytes]], list[bytes]]:
    source = (VECTORS_DIR / "testonly" / "constants.go").read_text()
    (leaf_inputs,) = _go_function_hashes(source, "LeafInputs")
    node_levels = _go_function_hashes(source, "NodeHashes")
    (roots,) = _go_function_hashes(source, "RootHashes")
    # RootHashes()[0] is EmptyRootHash(), a call rather than a literal.
    return leaf_inputs, node_levels, [EMPTY_ROOT, *roots]


@needs_vectors
@pytest.mark.parametrize("backend", BACKENDS)
def test_vector_roots_for_sizes_0_to_8(backend: str) -> None:
    readme_leaves, readme_roots = _readme_leaves_and_roots()
    go_leaves, go_levels, go_roots = _go_constants()
    assert readme_leaves == go_leaves and len(go_leaves) == 8
    assert readme_roots == go_roots and len(go_roots) == 9

    hashes = hash_leaves(go_leaves, backend=backend)
    assert [h.tobytes() for h in hashes] == go_levels[0]
    assert [leaf_hash(x) for x in go_leaves] == go_levels[0]
    for size, want_root in enumerate(go_roots):
        assert merkle_root(hashes[:size], backend=backend) == want_root, size
        assert MerkleTree.from_leaf_hashes(hashes[:size], backend=backend).root == want_root, size
        assert _ref_mth(tuple(go_levels[0][:size])) == want_root, size
    tree = MerkleTree.from_leaf_hashes(hashes, backend=backend)
    assert [[row.tobytes() for row in level] for level in tree.levels] == go_levels


@needs_vectors
@pytest.mark.parametrize("path", INCLUSION_FILES, ids=_vector_id)
def test_inclusion_vector(path: Path) -> None:
    probe = json.loads(path.read_text())
    args = (
        _b64(probe["leafHash"]),
        probe["leafIdx"],
        probe["treeSize"],
        _b64_list(probe["proof"]),
        _b64(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
        return
    verify_inclusion(*args)
    # Where the probe is about the constants.go tree, our builder must emit exactly its proof.
    leaves = _go_constants()[1][0]
    index, size = probe["leafIdx"], probe["treeSize"]
    if size <= len(leaves) and leaves[index] == args[0]:
        tree = MerkleTree.from_leaves(_go_constants()[0][:size])
        assert tree.root == args[4]
        assert tree.inclusion_proof(index) == args[3]


@needs_vectors
@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=_vector_id)
def test_consistency_vector(path: Path) -> None:
    probe = json.loads(path.read_text())
    size1, size2 = probe["size1"], probe["size2"]
    proof, root1, root2 = _b64_list(probe["proof"]), _b64(probe["root1"]), _b64(probe["root2"])
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, root1, root2)
        return
    verify_consistency(size1, size2, proof, root1, root2)
    go_roots = _go_constants()[2]
    if size2 < len(go_roots) and go_roots[size1] == root1 and go_roots[size2] == root2:
        tree = MerkleTree.from_leaves(_go_constants()[0][:size2])
        assert tree.consistency_proof(size1) == proof


@needs_vectors
def test_vector_counts_and_known_codes() -> None:
    assert len(INCLUSION_FILES) == 98, "README promises 98 inclusion probes"
    assert len(CONSISTENCY_FILES) >= 90
    probe = json.loads((VECTORS_DIR / "testdata/inclusion/single-entry/empty-root-and-leaf.json").read_text())
    with pytest.raises(ProofError) as info:
        verify_inclusion(_b64(probe["leafHash"]), 0, 1, [], _b64(probe["root"]))
    assert info.value.code == "PROOF_BAD_HASH_LENGTH"


# ---------------------------------------------------------------- verifier unit behaviour


def test_verifier_error_codes() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    tree = MerkleTree.from_leaf_hashes(np.frombuffer(b"".join(leaves), np.uint8).reshape(5, 32))
    proof = tree.inclusion_proof(3)
    cases: list[tuple[Any, str]] = [
        ((leaves[3], 5, 5, proof, tree.root), "PROOF_INDEX_OUT_OF_RANGE"),
        ((leaves[3], 3, 5, proof[:-1], tree.root), "PROOF_WRONG_LENGTH"),
        ((leaves[3], 3, 5, [*proof, proof[0]], tree.root), "PROOF_WRONG_LENGTH"),
        ((leaves[3], 3, 5, proof, tree.root[:31]), "PROOF_BAD_HASH_LENGTH"),
        ((leaves[3], 3, 5, [proof[0] + b"\x00", *proof[1:]], tree.root), "PROOF_BAD_HASH_LENGTH"),
        ((leaves[3], 3, 5, proof, _flip(tree.root, 0)), "PROOF_ROOT_MISMATCH"),
        ((leaves[3], True, 5, proof, tree.root), "PROOF_BAD_TYPE"),
        ((leaves[3], 3, 5, None, tree.root), "PROOF_BAD_TYPE"),
        ((leaves[3], 3, 5, b"".join(proof), tree.root), "PROOF_BAD_TYPE"),
        ((leaves[3].hex(), 3, 5, proof, tree.root), "PROOF_BAD_TYPE"),
        ((leaves[3], -1, 5, proof, tree.root), "PROOF_BAD_SIZES"),
    ]
    verify_inclusion(leaves[3], 3, 5, proof, tree.root)
    for args, code in cases:
        with pytest.raises(ProofError) as info:
            verify_inclusion(*args)
        assert info.value.code == code, args
        assert isinstance(info.value, ValueError)

    old_root = merkle_root(tree.levels[0][:3])
    cproof = tree.consistency_proof(3)
    verify_consistency(3, 5, cproof, old_root, tree.root)
    ccases: list[tuple[Any, str]] = [
        ((0, 5, [], EMPTY_ROOT, tree.root), "PROOF_BAD_SIZES"),
        ((0, 0, [], EMPTY_ROOT, EMPTY_ROOT), "PROOF_BAD_SIZES"),
        ((5, 3, cproof, tree.root, old_root), "PROOF_BAD_SIZES"),
        ((3, 5, [], old_root, tree.root), "PROOF_WRONG_LENGTH"),
        ((3, 5, cproof[:-1], old_root, tree.root), "PROOF_WRONG_LENGTH"),
        ((5, 5, cproof, tree.root, tree.root), "PROOF_WRONG_LENGTH"),
        ((5, 5, [], tree.root, old_root), "PROOF_ROOT_MISMATCH"),
        ((3, 5, cproof, _flip(old_root, 7), tree.root), "PROOF_ROOT_MISMATCH"),
        ((3, 5, cproof, old_root, tree.root[:5]), "PROOF_BAD_HASH_LENGTH"),
    ]
    for args, code in ccases:
        with pytest.raises(ProofError) as info:
            verify_consistency(*args)
        assert info.value.code == code, args


def test_proof_length_helpers_match_rfc_definition() -> None:
    for n in range(1, 70):
        for m in range(n):
            assert inclusion_proof_length(m, n) == len(_path_shape(m, n))
        for m in range(1, n + 1):
            assert consistency_proof_length(m, n) == len(_subproof_shape(m, n))


# ---------------------------------------------------------------- property tests

leaf_lists = st.lists(st.binary(max_size=80), max_size=300)
unique_leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=300, unique=True)
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_fast
@PROPERTY_SETTINGS
@given(leaves=leaf_lists)
def test_fast_and_hashlib_backends_agree(leaves: list[bytes]) -> None:
    slow = hash_leaves(leaves, backend="hashlib")
    fast = hash_leaves(leaves, backend="fast")
    assert slow.shape == (len(leaves), 32) and slow.dtype == np.uint8
    assert np.array_equal(slow, fast)
    assert [row.tobytes() for row in slow] == [leaf_hash(x) for x in leaves]
    assert merkle_root(slow, backend="hashlib") == merkle_root(fast, backend="fast")


@needs_fast
def test_oneshot_fast_variant_matches_hashlib() -> None:
    import numba

    variant = merkle._oneshot_variant(merkle._load_libcrypto(), numba.njit(cache=True, nogil=True))
    assert merkle._self_test(variant)
    rng = np.random.default_rng(7)
    items = [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 300, 257)]
    data, offsets = merkle._flatten_bytes(items)
    got = np.empty((len(items), 32), np.uint8)
    variant.hash_leaves(data, offsets, got)
    assert np.array_equal(got, hash_leaves(items, backend="hashlib"))
    pairs = np.empty((128, 32), np.uint8)
    variant.hash_pairs(got, pairs)
    want = np.empty_like(pairs)
    merkle._HASHLIB.hash_pairs(got, want)
    assert np.array_equal(pairs, want)


@PROPERTY_SETTINGS
@given(leaves=leaf_lists, data=st.data())
def test_tree_matches_rfc_reference_and_proofs_verify(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = hash_leaves(leaves)
    tree = MerkleTree.from_leaf_hashes(hashes)
    ref = tuple(leaf_hash(x) for x in leaves)
    assert tree.size == len(leaves)
    assert tree.root == _ref_mth(ref) == merkle_root(hashes)
    for index in range(tree.size):
        proof = tree.inclusion_proof(index)
        assert proof == _ref_path(index, ref)
        verify_inclusion(ref[index], index, tree.size, proof, tree.root)
        assert root_from_inclusion_proof(ref[index], index, tree.size, proof) == tree.root
    if tree.size == 0:
        return
    for old_size in data.draw(st.lists(st.integers(1, tree.size), min_size=1, max_size=4), label="old sizes"):
        proof = tree.consistency_proof(old_size)
        assert proof == _ref_subproof(old_size, ref, True)
        verify_consistency(old_size, tree.size, proof, _ref_mth(ref[:old_size]), tree.root)


@PROPERTY_SETTINGS
@given(leaves=unique_leaf_lists, data=st.data())
def test_tampered_inclusion_is_refused(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree.from_leaves(leaves)
    n = tree.size
    index = data.draw(st.integers(0, n - 1), label="index")
    leaf, proof, root = tree.leaf_hash(index), tree.inclusion_proof(index), tree.root
    verify_inclusion(leaf, index, n, proof, root)

    byte_at = data.draw(st.integers(0, 31), label="byte")
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = _flip(bad[k], byte_at)
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, n, bad, root)
    with pytest.raises(ProofError):
        verify_inclusion(_flip(leaf, byte_at), index, n, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, n, proof, _flip(root, byte_at))

    # With unique leaves another index of the same tree is a different path: always refused.
    for other in {index - 1, index + 1, index ^ 2, data.draw(st.integers(-3, n + 3), label="other")}:
        if other != index:
            with pytest.raises(ProofError):
                verify_inclusion(leaf, other, n, proof, root)
    # A different size is refused unless it walks the same path shape (e.g. leaf 0 of 3 vs 4
    # leaves), in which case the verifier's computation is identical and acceptance is forced.
    for other_size in {n - 1, n + 1, 2 * n, n // 2, data.draw(st.integers(0, 2 * n + 2), label="size")}:
        if other_size == n:
            continue
        if 0 <= index < other_size and _path_shape(index, other_size) == _path_shape(index, n):
            verify_inclusion(leaf, index, other_size, proof, root)
            continue
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, other_size, proof, root)


@PROPERTY_SETTINGS
@given(leaves=unique_leaf_lists.filter(lambda xs: len(xs) >= 2), data=st.data())
def test_tampered_consistency_is_refused(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree.from_leaves(leaves)
    n = tree.size
    m = data.draw(st.integers(1, n - 1), label="old size")
    proof = tree.consistency_proof(m)
    old_root = merkle_root(tree.levels[0][:m])
    verify_consistency(m, n, proof, old_root, tree.root)

    byte_at = data.draw(st.integers(0, 31), label="byte")
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = _flip(bad[k], byte_at)
        with pytest.raises(ProofError):
            verify_consistency(m, n, bad, old_root, tree.root)
    with pytest.raises(ProofError):
        verify_consistency(m, n, proof, _flip(old_root, byte_at), tree.root)
    with pytest.raises(ProofError):
        verify_consistency(m, n, proof, old_root, _flip(tree.root, byte_at))
    with pytest.raises(ProofError):
        verify_consistency(m, n, proof, tree.root, old_root)
    with pytest.raises(ProofError):
        verify_consistency(m, n, proof[:-1], old_root, tree.root)

    candidates = {(m - 1, n), (m + 1, n), (m ^ 2, n), (m, n * 2), (m, n // 2), (m, n + 1), (m, n - 1)}
    candidates.add(
        (data.draw(st.integers(0, n + 2), label="m2"), data.draw(st.integers(0, 2 * n), label="n2"))
    )
    for m2, n2 in candidates:
        if (m2, n2) == (m, n):
            continue
        if 0 < m2 < n2 and _subproof_shape(m2, n2) == _subproof_shape(m, n):
            verify_consistency(m2, n2, proof, old_root, tree.root)
            continue
        with pytest.raises(ProofError):
            verify_consistency(m2, n2, proof, old_root, tree.root)


# ---------------------------------------------------------------- pyarrow input


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string(), pa.binary(), pa.large_binary()])
def test_arrow_input_matches_list_input(backend: str, arrow_type: pa.DataType) -> None:
    texts = ["", "a", "payment:0001", "ümlaut ✓", "x" * 200, "", "last"] * 5
    raw = [t.encode() for t in texts]
    values = texts if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) else raw
    array = pa.array(values, arrow_type)
    want = hash_leaves(raw, backend="hashlib")
    assert np.array_equal(hash_leaves(array, backend=backend), want)

    sliced = array.slice(3, 20)
    assert sliced.offset == 3
    assert np.array_equal(hash_leaves(sliced, backend=backend), want[3:23])
    assert np.array_equal(hash_leaves(array.slice(7, 0), backend=backend), want[:0])

    chunked = pa.chunked_array([array.slice(0, 4), array.slice(4, 10), array.slice(14)])
    assert np.array_equal(hash_leaves(chunked, backend=backend), want)
    assert np.array_equal(hash_leaves(pa.array([], arrow_type), backend=backend), want[:0])
    assert MerkleTree.from_leaves(sliced, backend=backend).root == merkle_root(want[3:23])


def test_arrow_input_is_read_in_place_and_rejects_bad_input() -> None:
    array = pa.array([f"trade-{i}" for i in range(1000)])
    data, offsets = merkle._flatten_arrow(array.slice(10, 50))
    assert data.ctypes.data == array.buffers()[2].address, "data buffer must not be copied"
    assert offsets.dtype == np.int32 and offsets.shape == (51,) and offsets[0] > 0

    with pytest.raises(ValueError, match="null"):
        hash_leaves(pa.array(["a", None, "c"]))
    with pytest.raises(TypeError):
        hash_leaves(pa.array([1, 2, 3]))
    with pytest.raises(TypeError):
        hash_leaves(b"not a list")
    with pytest.raises(TypeError):
        hash_leaves(["text is not bytes"])
    with pytest.raises(TypeError):
        hash_leaves([memoryview(np.arange(3, dtype=np.int64).tobytes()).cast("q")])


# ---------------------------------------------------------------- builder API edges and speed


def test_builder_edges() -> None:
    empty = np.zeros((0, 32), np.uint8)
    assert merkle_root(empty) == EMPTY_ROOT
    tree = MerkleTree.from_leaf_hashes(empty)
    assert tree.size == 0 and tree.root == EMPTY_ROOT and tree.levels == ()
    with pytest.raises(IndexError):
        tree.inclusion_proof(0)
    with pytest.raises(ValueError):
        merkle_root(np.zeros((3, 31), np.uint8))
    with pytest.raises(ValueError):
        merkle_root(np.zeros((3, 32), np.int8))

    hashes = hash_leaves([b"a", b"b", b"c"])
    tree = MerkleTree.from_leaf_hashes(hashes)
    assert tree.root == node_hash(node_hash(leaf_hash(b"a"), leaf_hash(b"b")), leaf_hash(b"c"))
    hashes[0, 0] ^= 1
    assert tree.leaf_hash(0) == leaf_hash(b"a"), "the tree keeps its own copy by default"
    with pytest.raises(ValueError):
        tree.levels[0][0, 0] = 0
    for bad in (-1, 3):
        with pytest.raises(IndexError):
            tree.inclusion_proof(bad)
    for bad_size in (0, 4):
        with pytest.raises(ValueError):
            tree.consistency_proof(bad_size)
    with pytest.raises(TypeError):
        tree.inclusion_proof(True)
    assert tree.consistency_proof(3) == []
    verify_consistency(3, 3, [], tree.root, tree.root)

    rebuilt = MerkleTree(tree.levels)
    assert rebuilt.root == tree.root and rebuilt.inclusion_proof(2) == tree.inclusion_proof(2)
    with pytest.raises(ValueError):
        MerkleTree(tree.levels[:-1])
    with pytest.raises(ValueError):
        MerkleTree([*tree.levels, tree.levels[-1]])
    with pytest.raises(ValueError):
        MerkleTree([tree.levels[0][:2], *tree.levels[1:]])


def test_backend_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(merkle.BACKEND_ENV_VAR, "hashlib")
    assert backend_name() == "hashlib"
    monkeypatch.setenv(merkle.BACKEND_ENV_VAR, "sha3")
    with pytest.raises(ValueError):
        backend_name()
    monkeypatch.delenv(merkle.BACKEND_ENV_VAR)
    assert backend_name() == ("fast" if _fast_available() else "hashlib")
    with pytest.raises(ValueError):
        hash_leaves([b"x"], backend="md5")


def test_fallback_when_fast_backend_is_unusable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(merkle.BACKEND_ENV_VAR, raising=False)

    def no_libcrypto() -> None:
        raise OSError("libcrypto not found (simulated)")

    monkeypatch.setattr(merkle, "_fast_loaded", False)
    monkeypatch.setattr(merkle, "_fast_backend", None)
    monkeypatch.setattr(merkle, "_load_libcrypto", no_libcrypto)
    assert backend_name() == "hashlib"
    assert "simulated" in merkle.fast_backend_status()
    with pytest.raises(RuntimeError, match="unavailable"):
        hash_leaves([b"x"], backend="fast")
    assert merkle_root(hash_leaves([b"a", b"b"])) == node_hash(leaf_hash(b"a"), leaf_hash(b"b"))

    if _fast_available():
        monkeypatch.undo()
        monkeypatch.delenv(merkle.BACKEND_ENV_VAR, raising=False)
        monkeypatch.setattr(merkle, "_fast_loaded", False)
        monkeypatch.setattr(merkle, "_fast_backend", None)
        monkeypatch.setattr(merkle, "_self_test", lambda candidate: False)
        assert backend_name() == "hashlib"
        assert "self-test mismatch" in merkle.fast_backend_status()


def test_inclusion_proof_from_stored_levels_is_fast() -> None:
    rng = np.random.default_rng(5)
    tree = MerkleTree.from_leaf_hashes(rng.integers(0, 256, (100_000, 32), dtype=np.uint8), copy=False)
    indexes = rng.integers(0, tree.size, 2000).tolist()
    start_s = time.perf_counter()
    proofs = [tree.inclusion_proof(i) for i in indexes]
    per_proof_s = (time.perf_counter() - start_s) / len(indexes)
    assert per_proof_s < 1e-3, f"{per_proof_s * 1e6:.0f} µs per inclusion proof"
    for i, proof in zip(indexes[:50], proofs[:50], strict=True):
        verify_inclusion(tree.leaf_hash(i), i, tree.size, proof, tree.root)


# ---------------------------------------------------------------- verify.py stands alone

_STANDALONE = """
import importlib.util, sys
path, leaf_hex, index, size, proof_hex, root_hex = sys.argv[1:7]
spec = importlib.util.spec_from_file_location("third_party_verify", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
proof = [bytes.fromhex(h) for h in proof_hex.split(",") if h]
args = (bytes.fromhex(leaf_hex), int(index), int(size), proof, bytes.fromhex(root_hex))
module.verify_inclusion(*args)
try:
    module.verify_inclusion(args[0], args[1], args[2], proof, bytes(32))
except module.ProofError as exc:
    refused = exc.code
else:
    refused = "ACCEPTED"
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"clearlane", "numpy", "numba", "pyarrow"})
print("verified", refused, heavy)
"""


@pytest.mark.parametrize("copied", [False, True], ids=["in-place", "copied-file"])
def test_verify_py_runs_standalone(tmp_path: Path, copied: bool) -> None:
    source = VERIFY_PY
    if copied:
        source = tmp_path / "verify_copy.py"
        source.write_bytes(VERIFY_PY.read_bytes())
    tree = MerkleTree.from_leaves([f"obligation-{i}".encode() for i in range(11)])
    proof = tree.inclusion_proof(6)
    argv = [
        str(source),
        tree.leaf_hash(6).hex(),
        "6",
        "11",
        ",".join(p.hex() for p in proof),
        tree.root.hex(),
    ]
    result = subprocess.run(
        [sys.executable, "-I", "-c", _STANDALONE, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "verified PROOF_ROOT_MISMATCH []"


def test_verify_py_imports_only_stdlib() -> None:
    """Top-level imports are the standard library; `cryptography` (Ed25519) is imported lazily,
    inside the one function that checks signatures, so the RFC 9162 part needs nothing else."""
    tree = ast.parse(VERIFY_PY.read_text())
    imported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.module is not None
            imported.add(node.module.split(".")[0])
    lazy: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports would tie verify.py to the package"
            assert node.module is not None
            lazy.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            lazy.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"__import__", "exec", "eval"}
    assert imported, "expected at least hashlib"
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    assert imported <= stdlib, imported
    assert lazy - imported <= stdlib | {"cryptography"}, lazy
