"""Content digests: "same id, same content" judged on values, not spellings (code 116, id
conflict, when an id comes back with other content: engine/dedup.py keeps the digest beside
each accepted id). Also the byte-range hash the id index probes with.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from clearlane.core.model.inputs import CollateralDeposit, CollateralWithdrawal, Payment
from clearlane.core.textcols import arrow_strings


@njit(cache=True, nogil=True)
def byte_hash(data, lo, hi):  # type: ignore[no-untyped-def]
    # FNV-1a over the bytes, then the splitmix64 finaliser so the low bits (the slot) mix well.
    h = np.uint64(14695981039346656037)
    prime = np.uint64(1099511628211)
    for j in range(lo, hi):
        h = (h ^ np.uint64(data[j])) * prime
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


# ---------------------------------------------------------------------- content digests
# "Same id, same content" is judged on values, not spellings: a decimal is compared with its
# trailing zeros removed (``80.0`` == ``80.00`` == ``80``), a time as epoch milliseconds (every
# RFC 3339 spelling of one instant parses to the same number), received time never counts. A
# 64-bit digest per row stands for that content: computed for every row in one compiled pass,
# compared only where an id is already known. Two different contents with equal digests (odds
# 2**-64 per re-sent id) would be answered as an exact duplicate — still a no-op, never applied.

_NULL_TEXT = np.uint64(0x6E756C6C2D746578)  # the digest of an absent optional text


@njit(cache=True, nogil=True)
def _mix(h, x):  # type: ignore[no-untyped-def]
    # splitmix64 of (h + x): every input bit reaches every output bit.
    z = (h ^ x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def _string_hashes(data, off, out):  # type: ignore[no-untyped-def]
    for i in range(out.shape[0]):
        out[i] = byte_hash(data, off[i], off[i + 1])


@njit(cache=True, nogil=True)
def _normal(mantissa, exponent):  # type: ignore[no-untyped-def]
    # (150, 2) and (15, 1) are the same decimal: drop trailing zero digits after the point.
    while exponent > 0 and mantissa % 10 == 0:
        mantissa //= 10
        exponent -= 1
    return mantissa, exponent


@njit(cache=True, nogil=True)
def _trade_digests(texts, qty_m, qty_e, price_m, price_e, executed, out):  # type: ignore[no-untyped-def]
    for i in range(out.shape[0]):
        h = np.uint64(0x636C6561726C616E)
        for c in range(texts.shape[1]):
            h = _mix(h, texts[i, c])
        m, e = _normal(qty_m[i], qty_e[i])
        h = _mix(_mix(h, np.uint64(m)), np.uint64(e))
        m, e = _normal(price_m[i], price_e[i])
        h = _mix(_mix(h, np.uint64(m)), np.uint64(e))
        out[i] = _mix(h, np.uint64(executed[i]))


def _text_hashes(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.uint64]:
    """Per row, the hash of its text (``_NULL_TEXT`` when absent); a dictionary column hashes
    each distinct value once."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = arr.dictionary if pa.types.is_dictionary(arr.type) else arr
    data, off = arrow_strings(values)
    hashes = np.empty(len(values) + 1, dtype=np.uint64)
    if len(values):
        _string_hashes(data, off, hashes[:-1])
    hashes[-1] = _NULL_TEXT
    if pa.types.is_dictionary(arr.type):
        index = pc.fill_null(arr.indices, len(values)).to_numpy(zero_copy_only=False)
    else:
        index = np.arange(len(arr), dtype=np.int64)
        if arr.null_count:
            index[~arr.is_valid().to_numpy(zero_copy_only=False)] = len(values)
    result: npt.NDArray[np.uint64] = hashes[index]
    return result


_TRADE_TEXT_COLUMNS = ("venue", "symbol", "buyer", "seller", "exch_batch_id", "lane_hint")


def trade_digests(table: pa.Table) -> npt.NDArray[np.uint64]:
    """The content digest of every row of a trade chunk (``TRADE_CHUNK_SCHEMA``): every field
    but the id and the received time, decimals and times compared as values."""
    n = table.num_rows
    out = np.zeros(n, dtype=np.uint64)
    if n == 0:
        return out
    texts = np.stack([_text_hashes(table.column(c)) for c in _TRADE_TEXT_COLUMNS], axis=1)

    def ints(name: str) -> npt.NDArray[np.int64]:
        return np.ascontiguousarray(table.column(name).to_numpy(), dtype=np.int64)

    _trade_digests(
        texts,
        ints("qty_mantissa"),
        ints("qty_exp"),
        ints("price_mantissa"),
        ints("price_exp"),
        ints("executed_at_ms"),
        out,
    )
    return out


def decimal_value(text: str) -> str:
    """A strict decimal string as its value's one spelling: ``80.00`` → ``80``, ``0.50`` → ``0.5``."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def content_digest(*fields: str | None) -> int:
    """The 64-bit content digest of a small input (a payment, deposit, withdrawal) from its
    fields as values (decimals through :func:`decimal_value`; ``None`` for an absent field)."""
    h = hashlib.sha256(b"clearlane.content.v1")
    for value in fields:
        raw = b"" if value is None else value.encode("utf-8")
        # Length-prefixed (-1 for absent): no two field lists share a byte string.
        h.update((-1 if value is None else len(raw)).to_bytes(8, "big", signed=True) + raw)
    return int.from_bytes(h.digest()[:8], "big")


def payment_digest(payment: Payment) -> int:
    """The content digest of a payment (every field but its id)."""
    return content_digest(
        payment.payer, payment.payee, payment.asset, decimal_value(payment.amount), payment.lane_hint
    )


def collateral_digest(event: CollateralDeposit | CollateralWithdrawal) -> int:
    """The content digest of a collateral deposit or withdrawal (every field but its id)."""
    return content_digest(event.participant, event.asset, decimal_value(event.amount))
