"""Builder side of RFC 9162 Merkle trees: leaf hashing, roots, and proofs from stored levels.

Layout
    Level 0 holds the N leaf hashes; level l + 1 pairs up level l left to right, and an unpaired
    last node is promoted to the next level unchanged. The last node of every level therefore
    covers the leaves up to N, and the resulting root equals RFC 9162 §2.1.1 MTH (which splits
    at the largest power of two below n). ``MerkleTree`` keeps every level, so inclusion and
    consistency proofs are read out of memory without hashing.

Backends (same results, selected per call or by ``CLEARLANE_MERKLE_BACKEND=hashlib|fast``)
    hashlib  reference: one ``hashlib.sha256`` call per leaf / per (0x01 || L || R) row.
    fast     numba ``@njit(cache=True, nogil=True)`` loops calling libcrypto through ctypes, so
             no Python object is created per hash. It prefers SHA256_Init/Update/Final on one
             reused context over the one-shot ``SHA256()``: in OpenSSL 3 the one-shot call
             goes through EVP_Q_digest, which looks the algorithm up on every call (~350 ns
             for a 65-byte input here versus ~100 ns for the low-level calls). Both variants
             are self-tested against hashlib on first use; if libcrypto or the self-test
             fails the module falls back to hashlib (unless ``fast`` was forced, which raises).

Measured
    Command: ``.venv/bin/python scripts/bench_merkle.py`` (1,000,000 leaves of 40 random bytes; best
    of 3 after a warm-up; 2-vCPU AMD EPYC with SHA-NI, OpenSSL 3 libcrypto.so.3, numba 0.68, warm
    numba cache; other jobs were running, ranges are over two runs).

    =============================================  ===============  ==========================
    step (1M leaves)                               hashlib          fast (SHA256_Init/Upd/Fin)
    =============================================  ===============  ==========================
    hash_leaves(list of bytes)                     0.71-0.86 s      0.14-0.16 s
    hash_leaves(pyarrow BinaryArray, zero copy)    0.56-0.63 s      0.056 s (56 ns/leaf)
    merkle_root (999,999 nodes)                    0.45 s           0.105 s (105 ns/node)
    MerkleTree.from_leaf_hashes (with copy)        0.46-0.58 s      0.105 s
    1000 inclusion proofs from stored levels       7 ms             7 ms (7 µs/proof)
    1000 consistency proofs from stored levels     12 ms            12 ms
    =============================================  ===============  ==========================

    Inclusion proof in a 100,000-leaf tree: 6 µs. The one-shot ``SHA256()`` variant of the fast
    backend: 363-380 ns/node and 332-425 ns/leaf. First use of the fast backend (numba import,
    cache load, self-test) costs ~0.2 s; a cold numba cache adds ~3 s of compilation.
    Benchmark-day projection (10M Arrow leaves + ~10M nodes): ~1.6 s fast, ~10 s hashlib.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from clearlane.core.proofs.verify import EMPTY_ROOT, HASH_SIZE_BYTES

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BACKEND_ENV_VAR",
    "EMPTY_ROOT",
    "HashArray",
    "MerkleTree",
    "backend_name",
    "forest_roots",
    "hash_leaves",
    "merkle_root",
]

HashArray = npt.NDArray[np.uint8]
OffsetArray = npt.NDArray[np.signedinteger[Any]]

BACKEND_ENV_VAR: Final = "CLEARLANE_MERKLE_BACKEND"
HASHLIB_BACKEND: Final = "hashlib"
FAST_BACKEND: Final = "fast"

_NODE_ROW_BYTES: Final = 1 + 2 * HASH_SIZE_BYTES
# Bounds the reference backend's (0x01 || L || R) scratch rows to ~4 MiB per chunk instead of
# materialising 65 bytes per pair for a whole 10M-leaf level.
_ROWS_PER_CHUNK: Final = 1 << 16
# sizeof(SHA256_CTX) is 112 bytes in OpenSSL 1.1 and 3.x; the slack guards against a larger layout.
_SHA256_CTX_WORDS: Final = 32


class _Backend(Protocol):
    name: str

    def hash_leaves(self, data: HashArray, offsets: OffsetArray, out: HashArray) -> None: ...

    def hash_pairs(self, level: HashArray, out: HashArray) -> None: ...


class _HashlibBackend:
    name = HASHLIB_BACKEND

    def hash_leaves(self, data: HashArray, offsets: OffsetArray, out: HashArray) -> None:
        buf = data.tobytes()
        bounds = offsets.tolist()
        sha256 = hashlib.sha256
        digests = b"".join([sha256(b"\x00" + buf[lo:hi]).digest() for lo, hi in itertools.pairwise(bounds)])
        out[:] = np.frombuffer(digests, dtype=np.uint8).reshape(out.shape)

    def hash_pairs(self, level: HashArray, out: HashArray) -> None:
        sha256 = hashlib.sha256
        n_pairs = out.shape[0]
        for first in range(0, n_pairs, _ROWS_PER_CHUNK):
            last = min(first + _ROWS_PER_CHUNK, n_pairs)
            rows = np.empty((last - first, _NODE_ROW_BYTES), dtype=np.uint8)
            rows[:, 0] = 1
            rows[:, 1:] = level[2 * first : 2 * last].reshape(last - first, 2 * HASH_SIZE_BYTES)
            buf = rows.tobytes()
            digests = b"".join(
                [sha256(buf[o : o + _NODE_ROW_BYTES]).digest() for o in range(0, len(buf), _NODE_ROW_BYTES)]
            )
            out[first:last] = np.frombuffer(digests, dtype=np.uint8).reshape(last - first, HASH_SIZE_BYTES)


# numba kernels. They are plain functions here and compiled on first use of the fast backend, so
# importing this module does not import numba. libcrypto entry points arrive as arguments (not
# globals) because numba bakes global ctypes pointers into the machine code, which would make
# cache=True reuse a stale address after ASLR; an argument is unboxed afresh on every call.


def _kernel_leaves_ctx(init: Any, update: Any, final: Any, data: Any, offsets: Any, out: Any) -> int:
    ctx = np.zeros(_SHA256_CTX_WORDS, np.uint64)
    prefix = np.zeros(1, np.uint8)
    c = ctx.ctypes.data
    failures = 0
    for i in range(out.shape[0]):
        lo = offsets[i]
        hi = offsets[i + 1]
        failures += init(c) != 1
        failures += update(c, prefix.ctypes.data, 1) != 1
        failures += update(c, data[lo:].ctypes.data, hi - lo) != 1
        failures += final(out[i].ctypes.data, c) != 1
    return failures


def _kernel_pairs_ctx(init: Any, update: Any, final: Any, level: Any, out: Any) -> int:
    ctx = np.zeros(_SHA256_CTX_WORDS, np.uint64)
    prefix = np.ones(1, np.uint8)
    c = ctx.ctypes.data
    failures = 0
    for i in range(out.shape[0]):
        failures += init(c) != 1
        failures += update(c, prefix.ctypes.data, 1) != 1
        failures += update(c, level[2 * i].ctypes.data, 64) != 1
        failures += final(out[i].ctypes.data, c) != 1
    return failures


def _kernel_leaves_oneshot(sha256: Any, data: Any, offsets: Any, out: Any) -> int:
    n = out.shape[0]
    longest = 0
    for i in range(n):
        longest = max(longest, offsets[i + 1] - offsets[i])
    scratch = np.zeros(longest + 1, np.uint8)
    failures = 0
    for i in range(n):
        lo = offsets[i]
        length = offsets[i + 1] - lo
        scratch[1 : 1 + length] = data[lo : lo + length]
        failures += sha256(scratch.ctypes.data, length + 1, out[i].ctypes.data) == 0
    return failures


def _kernel_pairs_oneshot(sha256: Any, level: Any, out: Any) -> int:
    scratch = np.ones(65, np.uint8)
    failures = 0
    for i in range(out.shape[0]):
        scratch[1:33] = level[2 * i]
        scratch[33:65] = level[2 * i + 1]
        failures += sha256(scratch.ctypes.data, 65, out[i].ctypes.data) == 0
    return failures


class _FastBackend:
    name = FAST_BACKEND

    def __init__(
        self, variant: str, leaves: Callable[..., int], pairs: Callable[..., int], fns: tuple[Any, ...]
    ):
        self.variant = variant
        self._leaves = leaves
        self._pairs = pairs
        self._fns = fns

    def hash_leaves(self, data: HashArray, offsets: OffsetArray, out: HashArray) -> None:
        _require_c_contiguous(data, offsets, out)
        if self._leaves(*self._fns, data, offsets, out) != 0:
            raise RuntimeError(f"libcrypto {self.variant} reported a failure while hashing leaves")

    def hash_pairs(self, level: HashArray, out: HashArray) -> None:
        _require_c_contiguous(level, out)
        if level.shape[0] < 2 * out.shape[0]:
            raise ValueError(f"{level.shape[0]} nodes cannot fill {out.shape[0]} parents")
        if self._pairs(*self._fns, level, out) != 0:
            raise RuntimeError(f"libcrypto {self.variant} reported a failure while hashing nodes")


def _require_c_contiguous(*arrays: npt.NDArray[Any]) -> None:
    # The kernels walk raw pointers with fixed row strides, so a strided view would be misread.
    for array in arrays:
        if not array.flags.c_contiguous:
            raise ValueError("fast Merkle kernels need C-contiguous arrays")


_HASHLIB: Final = _HashlibBackend()
_fast_lock = threading.Lock()
_fast_loaded = False
_fast_backend: _FastBackend | None = None
_fast_unavailable_reason = ""


def _load_libcrypto() -> ctypes.CDLL:
    names = [ctypes.util.find_library("crypto"), "libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.dylib"]
    errors = []
    for name in names:
        if name is None:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
    raise OSError("libcrypto not found (" + "; ".join(errors) + ")")


def _ctx_variant(lib: ctypes.CDLL, njit: Callable[..., Any]) -> _FastBackend:
    vp, size = ctypes.c_void_p, ctypes.c_size_t
    init = lib.SHA256_Init
    init.argtypes, init.restype = [vp], ctypes.c_int
    update = lib.SHA256_Update
    update.argtypes, update.restype = [vp, vp, size], ctypes.c_int
    final = lib.SHA256_Final
    final.argtypes, final.restype = [vp, vp], ctypes.c_int
    return _FastBackend(
        "SHA256_Init/Update/Final", njit(_kernel_leaves_ctx), njit(_kernel_pairs_ctx), (init, update, final)
    )


def _oneshot_variant(lib: ctypes.CDLL, njit: Callable[..., Any]) -> _FastBackend:
    sha256 = lib.SHA256
    # The returned digest pointer is read as an integer so the kernel can test it against NULL.
    sha256.argtypes, sha256.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p], ctypes.c_size_t
    return _FastBackend("SHA256", njit(_kernel_leaves_oneshot), njit(_kernel_pairs_oneshot), (sha256,))


def _self_test(candidate: _Backend) -> bool:
    # Lengths straddle the 55/56/64-byte SHA-256 padding boundaries, where a wrong length or
    # pointer shows first.
    rng = np.random.default_rng(9162)
    lengths = [0, 1, 2, 31, 32, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000]
    items = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]
    data, offsets = _flatten_bytes(items)
    want = np.empty((len(items), HASH_SIZE_BYTES), np.uint8)
    _HASHLIB.hash_leaves(data, offsets, want)
    # Arrow arrays bring int32 offsets, Python lists int64: both kernel specialisations are checked.
    for offset_dtype in (np.int64, np.int32):
        got = np.empty_like(want)
        candidate.hash_leaves(data, offsets.astype(offset_dtype), got)
        if not np.array_equal(got, want):
            return False
    level = rng.integers(0, 256, (7, HASH_SIZE_BYTES), dtype=np.uint8)
    got_pairs = np.empty((3, HASH_SIZE_BYTES), np.uint8)
    candidate.hash_pairs(level, got_pairs)
    want_pairs = np.empty_like(got_pairs)
    _HASHLIB.hash_pairs(level, want_pairs)
    return bool(np.array_equal(got_pairs, want_pairs))


def _get_fast_backend() -> _FastBackend | None:
    global _fast_loaded, _fast_backend, _fast_unavailable_reason
    with _fast_lock:
        if _fast_loaded:
            return _fast_backend
        _fast_loaded = True
        try:
            import numba

            lib = _load_libcrypto()
        except (ImportError, OSError) as exc:
            _fast_unavailable_reason = f"{type(exc).__name__}: {exc}"
            return None
        njit = numba.njit(cache=True, nogil=True)
        reasons = []
        for make in (_ctx_variant, _oneshot_variant):
            try:
                candidate = make(lib, njit)
                if _self_test(candidate):
                    _fast_backend = candidate
                    return candidate
                reasons.append(f"{candidate.variant}: self-test mismatch against hashlib")
            # Any failure while compiling or calling a variant means: try the next one, then hashlib.
            except Exception as exc:
                reasons.append(f"{make.__name__}: {type(exc).__name__}: {exc}")
        _fast_unavailable_reason = "; ".join(reasons)
        return None


def _resolve_backend(backend: str | None) -> _Backend:
    requested = backend if backend is not None else os.environ.get(BACKEND_ENV_VAR, "").strip().lower()
    if requested == HASHLIB_BACKEND:
        return _HASHLIB
    if requested == FAST_BACKEND:
        fast = _get_fast_backend()
        if fast is None:
            raise RuntimeError(f"fast Merkle backend requested but unavailable: {_fast_unavailable_reason}")
        return fast
    if requested:
        raise ValueError(f"unknown Merkle backend {requested!r}; expected 'hashlib' or 'fast'")
    return _get_fast_backend() or _HASHLIB


def sha256_ctx_functions() -> tuple[Any, Any, Any] | None:
    """libcrypto's ``SHA256_Init/Update/Final`` as ctypes functions for other compiled kernels
    (``clearlane.core.engine.commitment``), or ``None`` when the fast backend does not use them.

    Honours ``CLEARLANE_MERKLE_BACKEND=hashlib`` (then ``None``), so one switch selects the
    reference path everywhere.
    """
    if os.environ.get(BACKEND_ENV_VAR, "").strip().lower() == HASHLIB_BACKEND:
        return None
    fast = _get_fast_backend()
    if fast is None or len(fast._fns) != 3:
        return None
    init, update, final = fast._fns
    return init, update, final


def backend_name() -> str:
    """Name of the backend used when no ``backend=`` is passed: ``"fast"`` or ``"hashlib"``."""
    return _resolve_backend(None).name


def fast_backend_status() -> str:
    """Which libcrypto entry points the fast backend uses, or why it is unavailable."""
    fast = _get_fast_backend()
    return f"fast: {fast.variant}" if fast is not None else f"unavailable: {_fast_unavailable_reason}"


def _flatten_bytes(items: Sequence[bytes]) -> tuple[HashArray, npt.NDArray[np.int64]]:
    if isinstance(items, bytes | bytearray | memoryview | str):
        raise TypeError("hash_leaves expects a sequence of bytes objects, not a single bytes/str object")
    count = len(items)
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=count)
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    joined = b"".join(items)
    # len() of a multi-byte-item memoryview counts items, not bytes; the totals then disagree.
    if len(joined) != int(offsets[-1]):
        raise TypeError("hash_leaves items must be bytes-like with 1-byte items")
    return np.frombuffer(joined, dtype=np.uint8), offsets


def _flatten_arrow(array: pa.Array) -> tuple[HashArray, OffsetArray]:
    import pyarrow as pa

    kind = array.type
    offset_dtype: type[np.int32] | type[np.int64]
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        offset_dtype = np.int32
    elif pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        offset_dtype = np.int64
    else:
        raise TypeError(f"hash_leaves supports (large_)string and (large_)binary arrays, not {kind}")
    if array.null_count:
        raise ValueError(f"hash_leaves refuses null leaves ({array.null_count} nulls)")
    count = len(array)
    _validity, offsets_buf, data_buf = array.buffers()
    if count == 0 or offsets_buf is None:
        return np.zeros(0, np.uint8), np.zeros(1, offset_dtype)
    if not offsets_buf.is_cpu or (data_buf is not None and not data_buf.is_cpu):
        raise TypeError("hash_leaves needs CPU-resident Arrow buffers")
    # The offsets still index the parent's data buffer for a sliced array, so only the window
    # [array.offset, array.offset + count] is taken and the data buffer is used unshifted.
    offsets: OffsetArray = np.frombuffer(offsets_buf, dtype=offset_dtype, count=array.offset + count + 1)
    offsets = offsets[array.offset :]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return data, offsets


def _hash_arrow_chunks(chunks: Sequence[pa.Array], backend: _Backend) -> HashArray:
    parts = [_hash_flat(*_flatten_arrow(chunk), backend) for chunk in chunks]
    if not parts:
        return np.zeros((0, HASH_SIZE_BYTES), np.uint8)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _hash_flat(data: HashArray, offsets: OffsetArray, backend: _Backend) -> HashArray:
    count = offsets.shape[0] - 1
    out = np.empty((count, HASH_SIZE_BYTES), dtype=np.uint8)
    if count == 0:
        return out
    # The fast kernels read raw memory, so bad offsets would read out of bounds rather than raise.
    if offsets[0] < 0 or offsets[-1] > data.shape[0] or bool(np.any(offsets[1:] < offsets[:-1])):
        raise ValueError("leaf offsets must be non-decreasing and inside the data buffer")
    backend.hash_leaves(data, offsets, out)
    return out


def hash_leaves(
    data: Sequence[bytes] | pa.Array | pa.ChunkedArray, *, backend: str | None = None
) -> HashArray:
    """RFC 9162 leaf hashes SHA-256(0x00 || data[i]) as an (N, 32) uint8 array.

    ``data`` is a sequence of bytes-like objects or a pyarrow ``StringArray``, ``LargeStringArray``,
    ``BinaryArray``, ``LargeBinaryArray`` (or a ``ChunkedArray`` of one of those). Arrow arrays are
    read in place from their offsets and data buffers (slices included); null entries are refused
    because a null has no canonical byte encoding. ``backend`` overrides the environment/default
    choice (``"hashlib"`` or ``"fast"``).
    """
    chosen = _resolve_backend(backend)
    module = type(data).__module__
    if module == "pyarrow" or module.startswith("pyarrow."):
        import pyarrow as pa

        if isinstance(data, pa.ChunkedArray):
            return _hash_arrow_chunks(data.chunks, chosen)
        if isinstance(data, pa.Array):
            return _hash_flat(*_flatten_arrow(data), chosen)
        raise TypeError(f"hash_leaves cannot read {type(data).__name__}")
    return _hash_flat(*_flatten_bytes(data), chosen)


def _check_leaf_hashes(leaf_hashes: HashArray) -> HashArray:
    if not isinstance(leaf_hashes, np.ndarray):
        raise TypeError(f"leaf hashes must be a numpy array, got {type(leaf_hashes).__name__}")
    if leaf_hashes.dtype != np.uint8 or leaf_hashes.ndim != 2 or leaf_hashes.shape[1] != HASH_SIZE_BYTES:
        raise ValueError(
            f"leaf hashes must have shape (N, 32) and dtype uint8, got {leaf_hashes.shape} {leaf_hashes.dtype}"
        )
    return np.ascontiguousarray(leaf_hashes)


def _row_bytes(level: HashArray, index: int) -> bytes:
    row: bytes = level[index].tobytes()
    return row


def _read_only_view(level: HashArray) -> HashArray:
    view = level.view()
    view.flags.writeable = False
    return view


def _next_level(level: HashArray, backend: _Backend) -> HashArray:
    count = level.shape[0]
    n_pairs = count // 2
    parent = np.empty((n_pairs + count % 2, HASH_SIZE_BYTES), dtype=np.uint8)
    backend.hash_pairs(level, parent[:n_pairs])
    if count % 2:
        parent[n_pairs] = level[count - 1]
    return parent


def merkle_root(leaf_hashes: HashArray, *, backend: str | None = None) -> bytes:
    """RFC 9162 §2.1.1 Merkle Tree Hash over ``leaf_hashes`` ((N, 32) uint8); EMPTY_ROOT for N = 0."""
    level = _check_leaf_hashes(leaf_hashes)
    if level.shape[0] == 0:
        return EMPTY_ROOT
    chosen = _resolve_backend(backend)
    while level.shape[0] > 1:
        level = _next_level(level, chosen)
    return _row_bytes(level, 0)


def forest_roots(
    leaf_hashes: HashArray, sizes: Sequence[int] | npt.NDArray[np.integer], *, backend: str | None = None
) -> HashArray:
    """RFC 9162 roots of consecutive trees over ``leaf_hashes``: the first ``sizes[0]`` leaves,
    the next ``sizes[1]``, ... as a (len(sizes), 32) uint8 array (EMPTY_ROOT for a size of 0).

    Each level of every tree is hashed in one backend call, so many small trees (the batches of a
    step) cost a few kernel calls instead of a few per tree.
    """
    level = _check_leaf_hashes(leaf_hashes)
    counts = np.asarray(sizes, dtype=np.int64)
    if counts.ndim != 1 or bool(np.any(counts < 0)) or int(counts.sum()) != level.shape[0]:
        raise ValueError(f"tree sizes must be >= 0 and add up to the {level.shape[0]} leaves")
    roots = np.empty((counts.shape[0], HASH_SIZE_BYTES), dtype=np.uint8)
    roots[counts == 0] = np.frombuffer(EMPTY_ROOT, dtype=np.uint8)
    active = np.flatnonzero(counts > 0)
    counts = counts[active]
    keep = np.repeat(np.ones(len(counts), dtype=np.bool_), counts)
    level = level[keep] if not keep.all() else level
    chosen = _resolve_backend(backend)
    while len(active):
        starts = np.cumsum(counts) - counts
        done = counts == 1
        if done.any():
            roots[active[done]] = level[starts[done]]
            keep = np.repeat(~done, counts)
            active, counts = active[~done], counts[~done]
            level = level[keep]
            if not len(active):
                break
            starts = np.cumsum(counts) - counts
        pairs = counts // 2
        odd = counts % 2 == 1
        local = np.arange(level.shape[0]) - np.repeat(starts, counts)
        paired = np.ascontiguousarray(level[local < np.repeat(2 * pairs, counts)])
        n_pairs = int(pairs.sum())
        hashed = np.empty((n_pairs, HASH_SIZE_BYTES), dtype=np.uint8)
        chosen.hash_pairs(paired, hashed)
        new_counts = pairs + odd
        new_starts = np.cumsum(new_counts) - new_counts
        nxt = np.empty((int(new_counts.sum()), HASH_SIZE_BYTES), dtype=np.uint8)
        pair_starts = np.cumsum(pairs) - pairs
        nxt[np.repeat(new_starts, pairs) + (np.arange(n_pairs) - np.repeat(pair_starts, pairs))] = hashed
        nxt[new_starts[odd] + pairs[odd]] = level[starts[odd] + counts[odd] - 1]
        level, counts = nxt, new_counts
    return roots


class MerkleTree:
    """A Merkle tree with every level kept, answering proofs by lookup instead of rehashing.

    Memory is about 2 x N x 32 bytes (640 MB for 10M leaves). Levels are read-only arrays.
    """

    __slots__ = ("_levels", "_size")

    def __init__(self, levels: Sequence[HashArray]) -> None:
        """Wrap precomputed levels; use :meth:`from_leaf_hashes` or :meth:`from_leaves` instead."""
        self._levels: tuple[HashArray, ...] = tuple(_read_only_view(level) for level in levels)
        self._size = int(self._levels[0].shape[0]) if self._levels else 0
        # Proofs index levels blindly, so a level of the wrong width would yield wrong proofs.
        expected_width = self._size
        for height, level in enumerate(self._levels):
            if level.dtype != np.uint8 or level.shape != (expected_width, HASH_SIZE_BYTES):
                raise ValueError(
                    f"level {height} must be ({expected_width}, 32) uint8, got {level.shape} {level.dtype}"
                )
            expected_width = (expected_width + 1) // 2
        if self._levels and (
            self._levels[-1].shape[0] != 1 or any(lv.shape[0] == 1 for lv in self._levels[:-1])
        ):
            raise ValueError("exactly the last level must hold a single node, the root")

    @classmethod
    def from_leaf_hashes(
        cls, leaf_hashes: HashArray, *, backend: str | None = None, copy: bool = True
    ) -> MerkleTree:
        """Build every level over ``leaf_hashes`` ((N, 32) uint8).

        ``copy=False`` keeps the caller's array as level 0 (it is marked read-only in place);
        use it only when nothing else will write to that array.
        """
        leaves = _check_leaf_hashes(leaf_hashes)
        if copy and leaves is leaf_hashes:
            leaves = leaves.copy()
        if leaves.shape[0] == 0:
            return cls(())
        chosen = _resolve_backend(backend)
        levels = [leaves]
        while levels[-1].shape[0] > 1:
            levels.append(_next_level(levels[-1], chosen))
        for level in levels:
            level.flags.writeable = False
        return cls(levels)

    @classmethod
    def from_leaves(
        cls, data: Sequence[bytes] | pa.Array | pa.ChunkedArray, *, backend: str | None = None
    ) -> MerkleTree:
        """Hash ``data`` as leaves (see :func:`hash_leaves`) and build the tree over them."""
        return cls.from_leaf_hashes(hash_leaves(data, backend=backend), backend=backend, copy=False)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    @property
    def root(self) -> bytes:
        """RFC 9162 Merkle Tree Hash; EMPTY_ROOT for the empty tree."""
        return _row_bytes(self._levels[-1], 0) if self._levels else EMPTY_ROOT

    @property
    def levels(self) -> tuple[HashArray, ...]:
        """Read-only levels, leaves first; the last one holds the root."""
        return self._levels

    def leaf_hash(self, index: int) -> bytes:
        """Hash of leaf ``index``."""
        self._check_index(index)
        return _row_bytes(self._levels[0], index)

    def inclusion_proof(self, index: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[size]): sibling hashes from the leaf level upward."""
        self._check_index(index)
        proof = []
        position = index
        for level in self._levels[:-1]:
            sibling = position ^ 1
            # A promoted last node has no sibling on this level and contributes no hash.
            if sibling < level.shape[0]:
                proof.append(_row_bytes(level, sibling))
            position >>= 1
        return proof

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(old_size, D[size]) for 0 < old_size <= size ([] when equal)."""
        if type(old_size) is not int:
            raise TypeError(f"old_size must be an int, got {type(old_size).__name__}")
        if not 0 < old_size <= self._size:
            raise ValueError(
                f"consistency proofs need 0 < old_size <= size, got {old_size} for size {self._size}"
            )
        # SUBPROOF(m, D[start:end], b) unrolled: each step appends the sibling subtree's hash and
        # descends into the half holding leaf old_size - 1; RFC order is innermost hash first.
        start, end = 0, self._size
        old_tree_is_whole_subtree = True
        outer: list[bytes] = []
        while old_size != end:
            split = 1 << ((end - start - 1).bit_length() - 1)
            if old_size - start <= split:
                outer.append(self._subtree_hash(start + split, end))
                end = start + split
            else:
                outer.append(self._subtree_hash(start, start + split))
                start += split
                old_tree_is_whole_subtree = False
        proof = [] if old_tree_is_whole_subtree else [self._subtree_hash(start, end)]
        proof.extend(reversed(outer))
        return proof

    def _subtree_hash(self, start: int, end: int) -> bytes:
        # Stored nodes cover aligned power-of-two ranges, or the right-edge remainder ending at size.
        height = (end - start - 1).bit_length()
        aligned = start % (1 << height) == 0
        covered = end - start == 1 << height or end == self._size
        if not (aligned and covered and 0 <= start < end <= self._size):
            raise RuntimeError(f"no stored node covers leaves [{start}, {end}) of a {self._size}-leaf tree")
        return _row_bytes(self._levels[height], start >> height)

    def _check_index(self, index: int) -> None:
        if type(index) is not int:
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not 0 <= index < self._size:
            raise IndexError(f"leaf index {index} out of range for a {self._size}-leaf tree")
