"""Flows: trades and payments as columns of obligations.

A *flow* is one trade or one payment. It becomes up to four obligations ("legs"), each
``payer → payee : asset amount``:

=====  ===================================  =====================================
leg    trade                                payment
=====  ===================================  =====================================
A      seller → buyer : base quantity       payer → payee : asset amount
B      buyer → seller : quote amount        (none)
FEE1   buyer → house : quote fee            (none)
FEE2   seller → house : quote fee           payer → house : asset fee
=====  ===================================  =====================================

Legs with a zero amount are omitted from netting and from the Merkle leaf. Everything is held
as NumPy columns (one array per field), never one Python object per flow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

FLOW_TRADE = 0
FLOW_PAYMENT = 1
LEG_COUNT = 4

# Pre-built Arrow scalars: passing plain Python strings to pyarrow.compute costs ~100 µs a call
# (the wrapper retries an optional import each time), which dominated small-batch clearing.
_S = {text: pa.scalar(text, pa.string()) for text in (">", ":", "", ";", "|", "clearlane.leaf.v1")}
_NULL = pa.scalar(None, pa.string())
_KIND_NAMES = pa.array(["trade", "payment"])


@dataclass(frozen=True)
class Flows:
    """Columns of flows. ``ids`` is an Arrow string array; every other field a NumPy array."""

    ids: pa.Array
    kind: npt.NDArray[np.int8]
    buyer: I32  # receives leg A (trade buyer / payment payee)
    seller: I32  # pays leg A (trade seller / payment payer)
    base: I32  # asset of leg A
    quote: I32  # asset of leg B and of the fees (== base for payments)
    qty: I64  # leg A amount
    quote_amt: I64  # leg B amount (0 for payments)
    fee_buyer: I64
    fee_seller: I64
    time_ms: I64  # engine time the flow was received
    executed_ms: I64
    pool: I32  # -1 = Layer-1
    batch_seq: I64  # -1 = not batched
    exch_batch: pa.Array  # string, may be null

    def __len__(self) -> int:
        return len(self.kind)

    def take(self, index: npt.NDArray[np.int64]) -> Flows:
        arrow_index = pa.array(index, type=pa.int64())
        columns = [getattr(self, name) for name in _NAMES]
        return _flows(c.take(arrow_index) if isinstance(c, pa.Array) else c[index] for c in columns)

    def slice(self, lo: int, hi: int) -> Flows:
        """Rows ``lo:hi`` without copying (views of this one's columns: take first when the
        parent may change). Each batch of a step is a slice of the step's flows: ~100,000 a
        demo day, so the columns are read from and written to the instances' dicts directly
        (8 -> 5 us a slice; issue 18)."""
        columns = self.__dict__
        out = object.__new__(Flows)
        sliced = out.__dict__
        for name in _NAMES:
            c = columns[name]
            sliced[name] = (
                c[lo:hi] if type(c) is np.ndarray or not isinstance(c, pa.Array) else c.slice(lo, hi - lo)
            )
        return out

    def obligations(self) -> tuple[I32, I32, I32, I32, I64, I64, I64, I64]:
        """The columns the compiled kernels read, in the order they take them: buyer, seller,
        base, quote, qty, quote amount, the buyer's fee, the seller's fee."""
        return (
            self.buyer,
            self.seller,
            self.base,
            self.quote,
            self.qty,
            self.quote_amt,
            self.fee_buyer,
            self.fee_seller,
        )

    def with_(self, **changes: Any) -> Flows:
        return replace(self, **changes)

    @staticmethod
    def concat(parts: list[Flows]) -> Flows:
        if len(parts) == 1:
            return parts[0]
        columns = [[getattr(p, name) for p in parts] for name in _NAMES]
        return _flows(
            pa.concat_arrays(c) if isinstance(c[0], pa.Array) else np.concatenate(c) for c in columns
        )

    @staticmethod
    def empty() -> Flows:
        z64 = np.zeros(0, dtype=np.int64)
        z32 = np.zeros(0, dtype=np.int32)
        return Flows(
            ids=pa.array([], type=pa.string()),
            kind=np.zeros(0, dtype=np.int8),
            buyer=z32,
            seller=z32,
            base=z32,
            quote=z32,
            qty=z64,
            quote_amt=z64,
            fee_buyer=z64,
            fee_seller=z64,
            time_ms=z64,
            executed_ms=z64,
            pool=z32,
            batch_seq=z64,
            exch_batch=pa.array([], type=pa.string()),
        )

    # -- obligations -------------------------------------------------------------------
    def legs(self, house: int) -> tuple[I32, I32, I32, I64, I64]:
        """All non-zero legs: (payer, payee, asset, amount, flow index), in flow then leg order."""
        n = len(self)
        payer = np.stack([self.seller, self.buyer, self.buyer, self.seller], axis=1).astype(np.int32)
        payee = np.stack(
            [self.buyer, self.seller, np.full(n, house, np.int32), np.full(n, house, np.int32)], axis=1
        ).astype(np.int32)
        asset = np.stack([self.base, self.quote, self.quote, self.quote], axis=1).astype(np.int32)
        amount = np.stack([self.qty, self.quote_amt, self.fee_buyer, self.fee_seller], axis=1)
        flow = np.repeat(np.arange(n, dtype=np.int64), LEG_COUNT).reshape(n, LEG_COUNT)
        keep = amount.ravel() != 0
        return (
            payer.ravel()[keep],
            payee.ravel()[keep],
            asset.ravel()[keep],
            amount.ravel()[keep],
            flow.ravel()[keep],
        )


def leaf_texts(
    flows: Flows, batch_id: str, participant_ids: pa.Array, asset_codes: pa.Array, house: int
) -> pa.Array:
    """The canonical Merkle leaf of each flow, as a UTF-8 string column.

    ``clearlane.leaf.v1|<batch id>|<index>|<trade|payment>|<flow id>|<exchange batch id>|<legs>``
    where ``<legs>`` is ``payer>payee:ASSET:amount`` for each non-zero leg in the fixed order
    A, B, FEE1, FEE2, joined by ``;`` and amounts are integers in the asset's minor units.
    The batch id and index bind a leaf to one position of one batch, so a leaf cannot be replayed
    into another batch. See docs/ARCHITECTURE.md ("Canonical leaf encoding").
    """
    n = len(flows)
    if n == 0:
        return pa.array([], type=pa.string())
    kind_names = _KIND_NAMES.take(pa.array(flows.kind.astype(np.int64)))
    index = pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string())
    house_col = np.full(n, house, dtype=np.int32)
    leg_specs = (
        (flows.seller, flows.buyer, flows.base, flows.qty),
        (flows.buyer, flows.seller, flows.quote, flows.quote_amt),
        (flows.buyer, house_col, flows.quote, flows.fee_buyer),
        (flows.seller, house_col, flows.quote, flows.fee_seller),
    )
    leg_texts = []
    for payer, payee, asset, amount in leg_specs:
        text = pc.binary_join_element_wise(
            participant_ids.take(pa.array(payer)),
            _S[">"],
            participant_ids.take(pa.array(payee)),
            _S[":"],
            asset_codes.take(pa.array(asset)),
            _S[":"],
            pc.cast(pa.array(amount), pa.string()),
            _S[""],
        )
        # Zero legs become null, and binary_join with null_handling="skip" drops them.
        leg_texts.append(pc.if_else(pa.array(amount != 0), text, _NULL))
    legs = pc.binary_join_element_wise(*leg_texts, _S[";"], null_handling="skip")
    exch = pc.fill_null(flows.exch_batch, _S[""])
    return pc.binary_join_element_wise(
        _S["clearlane.leaf.v1"],
        pa.scalar(batch_id, pa.string()),
        index,
        kind_names,
        flows.ids,
        exch,
        legs,
        _S["|"],
    )


# The field names in declaration order: slicing a batch's flows thousands of times a step
# (sub-second windows) should not look the dataclass's fields up each time.
_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Flows))


def _flows(columns: Iterable[Any]) -> Flows:
    """A Flows of columns derived from an existing one (same kinds, in field order), without
    the frozen dataclass's per-field ``object.__setattr__``: the instance's dict is filled
    at once (the class has no ``__post_init__``, so nothing is skipped)."""
    out = object.__new__(Flows)
    out.__dict__.update(zip(_NAMES, columns, strict=True))
    return out
