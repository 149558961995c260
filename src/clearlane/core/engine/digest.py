"""Cached digests of the engine's dense state arrays (for :meth:`Engine.state_root`).

The state root is taken after every log entry. Hashing every dense array each time (open-batch
positions: pools x participants x assets int64, ~0.8 MB on the benchmark day; collateral) cost
more than applying a small entry such as a deposit. :class:`BlockDigest` hashes an array in
blocks of leading-axis rows and re-hashes only the blocks its owner marked as touched since the
last digest; the digest is SHA-256 over the block digests in order, so it still covers every
byte of the array. The owner must call :meth:`touch` (rows) or :meth:`touch_all` after every
write; :meth:`verify` recomputes everything to prove the cache (used by
``Engine.check_invariants``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt


class BlockDigest:
    """Digest of ``array`` (fixed shape), cached per block of ``rows_per_block`` leading rows."""

    def __init__(self, name: str, array: npt.NDArray[np.generic], rows_per_block: int) -> None:
        self.name = name
        self.array = array
        self.rows = int(rows_per_block)
        self.blocks = max(1, -(-array.shape[0] // self.rows))
        self._digests = [b""] * self.blocks
        self._stale = set(range(self.blocks))
        self._digest: bytes | None = None

    def touch(self, rows: npt.NDArray[np.integer] | list[int] | int) -> None:
        """Rows of the leading axis that were (or may have been) written."""
        if isinstance(rows, int | np.integer):
            self._stale.add(int(rows) // self.rows)
        else:
            self._stale.update((np.asarray(rows, dtype=np.int64) // self.rows).tolist())
        self._digest = None

    def touch_all(self) -> None:
        self._stale.update(range(self.blocks))
        self._digest = None

    def _block(self, block: int) -> bytes:
        lo = block * self.rows
        part = np.ascontiguousarray(self.array[lo : lo + self.rows])
        h = hashlib.sha256(f"{self.name}|{block}|{part.dtype.str}|{part.shape}|".encode())
        h.update(part.tobytes())
        return h.digest()

    def digest(self) -> bytes:
        if self._digest is None:
            for block in sorted(self._stale):
                self._digests[block] = self._block(block)
            self._stale.clear()
            self._digest = hashlib.sha256(b"".join(self._digests)).digest()
        return self._digest

    def verify(self) -> bool:
        """True if the cached digest equals a digest recomputed from scratch."""
        fresh = hashlib.sha256(b"".join(self._block(b) for b in range(self.blocks))).digest()
        return fresh == self.digest()
