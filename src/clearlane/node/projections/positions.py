"""The positions projection: per participant and asset, in minor units — per pool, net cleared
but not final and net final; on L1, gross legs pending and final. Fed by batch clearings,
finality and unwinds, and by L1 groups; a position moves from pending to final exactly when
its batch or its L1 flow does."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.node.projections.batches import InflightBatch
from clearlane.node.projections.common import I64, Layout, Mask, lookup

Legs = tuple[I64, npt.NDArray[np.int32], npt.NDArray[np.int32], I64]
_Z = np.zeros(0, dtype=np.int64)
NO_LEGS: Legs = (_Z, _Z.astype(np.int32), _Z.astype(np.int32), _Z)


class Positions:
    """See the module docstring."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        k, n_p, n_a = layout.n_pools, layout.n_participants, layout.n_assets
        self.cleared_net = np.zeros((k, n_p, n_a), dtype=np.int64)
        self.final_net = np.zeros((k, n_p, n_a), dtype=np.int64)
        self.l1_pending = np.zeros((n_p, n_a), dtype=np.int64)
        self.l1_final = np.zeros((n_p, n_a), dtype=np.int64)

    def batch_cleared(self, flight: InflightBatch) -> None:
        np.add.at(self.cleared_net[flight.pool], (flight.net_p, flight.net_a), flight.net_minor)

    def batch_final(self, flight: InflightBatch) -> None:
        k = flight.pool
        np.add.at(self.cleared_net[k], (flight.net_p, flight.net_a), -flight.net_minor)
        np.add.at(self.final_net[k], (flight.net_p, flight.net_a), flight.net_minor)

    def batch_unwound(self, flight: InflightBatch) -> None:
        """The batch's net leaves the pool; its flows settle gross on L1 (pending until final)."""
        np.add.at(self.cleared_net[flight.pool], (flight.net_p, flight.net_a), -flight.net_minor)
        np.add.at(self.l1_pending, (flight.net_p, flight.net_a), flight.net_minor)

    def l1_submitted(self, legs: Legs) -> None:
        _, p, a, v = legs
        np.add.at(self.l1_pending, (p, a), v)

    def l1_final_rows(self, legs: Legs, newly_final: Mask) -> None:
        """The legs of the group rows that just became final move from pending to final."""
        row, p, a, v = legs
        sel = newly_final[row]
        np.add.at(self.l1_pending, (p[sel], a[sel]), -v[sel])
        np.add.at(self.l1_final, (p[sel], a[sel]), v[sel])

    def unwound_final(self, net: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], I64]) -> None:
        """An unwound batch's whole L1 group is final: its net moves to L1 final."""
        p, a, v = net
        np.add.at(self.l1_pending, (p, a), -v)
        np.add.at(self.l1_final, (p, a), v)

    def legs(self, records: pa.Table) -> Legs:
        """Signed position changes of flows settled gross: (row, participant, asset, amount)."""
        n = records.num_rows
        if n == 0:
            return NO_LEGS
        layout = self.layout
        buyer = lookup(records.column("buyer"), layout.participant_lookup, layout.house)
        seller = lookup(records.column("seller"), layout.participant_lookup, layout.house)
        base = lookup(records.column("base"), layout.asset_lookup, 0)
        quote = lookup(records.column("quote"), layout.asset_lookup, 0)
        qty = records.column("qty_minor").to_numpy().astype(np.int64)
        quote_amt = records.column("quote_minor").to_numpy().astype(np.int64)
        fee_b = records.column("fee_buyer_minor").to_numpy().astype(np.int64)
        fee_s = records.column("fee_seller_minor").to_numpy().astype(np.int64)
        house = np.full(n, layout.house, dtype=np.int32)
        rows = np.arange(n, dtype=np.int64)
        # legs A, B, FEE1, FEE2 as (payer, payee, asset, amount); each gives two signed changes
        specs = (
            (seller, buyer, base, qty),
            (buyer, seller, quote, quote_amt),
            (buyer, house, quote, fee_b),
            (seller, house, quote, fee_s),
        )
        out_r, out_p, out_a, out_v = [], [], [], []
        for payer, payee, asset, amount in specs:
            out_r += [rows, rows]
            out_p += [payer, payee]
            out_a += [asset, asset]
            out_v += [-amount, amount]
        return (
            np.concatenate(out_r),
            np.concatenate(out_p).astype(np.int32),
            np.concatenate(out_a).astype(np.int32),
            np.concatenate(out_v),
        )
