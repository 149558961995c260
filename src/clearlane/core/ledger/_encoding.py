"""Canonical byte encoding behind every ledger digest.

Each value is written with a length prefix (strings, byte blobs, integers) so that two different
sequences of values can never produce the same byte stream; integers use their minimal
two's-complement form so that Python ints beyond int64 (exact report totals) still have exactly
one encoding. Arrays are written as little-endian int64 whatever the host byte order, so digests
agree across machines.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt


class CanonicalHasher:
    """Incremental sha256 over the canonical encoding, seeded with a domain tag."""

    __slots__ = ("_sha",)

    def __init__(self, domain: str) -> None:
        self._sha = hashlib.sha256()
        self.add_str(domain)

    def _add_blob(self, data: bytes) -> None:
        self._sha.update(len(data).to_bytes(8, "little"))
        self._sha.update(data)

    def add_str(self, value: str) -> None:
        # surrogatepass: ids from untrusted JSON may hold lone surrogates; digesting must not fail.
        self._add_blob(value.encode("utf-8", "surrogatepass"))

    def add_strs(self, values: list[str]) -> None:
        """Several strings, in order: the same bytes as one :meth:`add_str` each, hashed in one
        update."""
        # Each distinct string is encoded once (account keys repeat owners, assets, purposes).
        framed = {}
        for v in set(values):
            b = v.encode("utf-8", "surrogatepass")
            framed[v] = len(b).to_bytes(8, "little") + b
        self._sha.update(b"".join(map(framed.__getitem__, values)))

    def add_bytes(self, value: bytes) -> None:
        self._add_blob(value)

    def add_framed(self, pieces: list[bytes | memoryview]) -> None:
        """Bytes already framed as :meth:`add_bytes` frames a blob (an 8-byte little-endian
        length, then the blob), possibly cut into several pieces, hashed in one update."""
        self._sha.update(b"".join(pieces))

    def add_int(self, value: int) -> None:
        width_bytes = (value.bit_length() + 8) // 8
        self._add_blob(value.to_bytes(width_bytes, "little", signed=True))

    def add_opt_int(self, value: int | None) -> None:
        if value is None:
            self._sha.update(b"\x00")
        else:
            self._sha.update(b"\x01")
            self.add_int(value)

    def add_bool(self, value: bool) -> None:
        self._sha.update(b"\x01" if value else b"\x00")

    def add_i64_array(self, values: npt.NDArray[np.int64]) -> None:
        self._add_view(np.ascontiguousarray(values, dtype="<i8"))

    def add_u8_array(self, values: npt.NDArray[Any]) -> None:
        self._add_view(np.ascontiguousarray(values, dtype=np.uint8))

    def _add_view(self, array: npt.NDArray[Any]) -> None:
        """:meth:`_add_blob` of the array's bytes, hashed from the array itself (no copy: the
        ledger's state digest hashes every balance block a step touched; issue 18)."""
        self._sha.update(array.nbytes.to_bytes(8, "little"))
        self._sha.update(array.data.cast("B"))

    def copy(self) -> CanonicalHasher:
        twin = CanonicalHasher.__new__(CanonicalHasher)
        twin._sha = self._sha.copy()
        return twin

    def digest(self) -> bytes:
        return self._sha.digest()
