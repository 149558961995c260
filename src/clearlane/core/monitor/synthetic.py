"""What canaries add to a batch's figures, so the read model can leave them out of client
figures and savings (canaries are real flows on the real path, but never a client's volume).

Canary participants trade only among themselves, so their share of a batch is separable: the
gross obligations of their flows (base quantity, quote amount and fees, as the netting sums
them) and the negative net positions of the synthetic participants (what they add to the net
debit). Both are valued at the marks the caller passes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc


def synthetic_mask(table: pa.Table, synthetic: frozenset[str]) -> npt.NDArray[np.bool_]:
    """Rows whose buyer or seller is a synthetic participant."""
    if not synthetic or table.num_rows == 0:
        return np.zeros(table.num_rows, dtype=np.bool_)
    ids = pa.array(sorted(synthetic), type=pa.string())
    buyer = pc.is_in(pc.cast(table.column("buyer"), pa.string()), value_set=ids)
    seller = pc.is_in(pc.cast(table.column("seller"), pa.string()), value_set=ids)
    mask: npt.NDArray[np.bool_] = pc.or_(buyer, seller).to_numpy(zero_copy_only=False)
    return mask


def gross_usd(records: pa.Table, mark_minor: Mapping[str, float]) -> float:
    """Gross obligations of these trade records in USD (records as the engine writes them)."""
    if records.num_rows == 0:
        return 0.0
    base = pc.cast(records.column("base"), pa.string()).to_pylist()
    quote = pc.cast(records.column("quote"), pa.string()).to_pylist()
    qty = records.column("qty_minor").to_numpy()
    amt = records.column("quote_minor").to_numpy()
    fees = records.column("fee_buyer_minor").to_numpy() + records.column("fee_seller_minor").to_numpy()
    total = 0.0
    for i in range(records.num_rows):
        total += float(qty[i]) * mark_minor.get(base[i], 0.0)
        total += float(amt[i] + fees[i]) * mark_minor.get(quote[i], 0.0)
    return total


def net_debit_usd(
    participants: pa.Array,
    assets: pa.Array,
    net_minor: npt.NDArray[np.int64],
    synthetic: frozenset[str],
    mark_minor: Mapping[str, float],
) -> float:
    """What the synthetic participants' negative net positions add to a batch's net debit."""
    who = pc.cast(participants, pa.string()).to_pylist()
    codes = pc.cast(assets, pa.string()).to_pylist()
    total = 0.0
    for i, pid in enumerate(who):
        if pid in synthetic and net_minor[i] < 0:
            total += float(-net_minor[i]) * mark_minor.get(codes[i], 0.0)
    return total
