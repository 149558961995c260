"""The ``ledger_accounts`` view's rows, and which of them changed since the last checkpoint.

A checkpoint writes every account's balances (``Store.write_balances``). The first write of a
Store object inserts every row; later ones update only the rows that differ from what that
object last committed. The comparison is column-wise (NumPy over the balance arrays, list
equality over the text columns), so a checkpoint builds Python tuples only for the rows it
writes: a checkpoint of the reference day's 96,000 accounts compared 96,000 tuples (issue 18).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

_I64 = npt.NDArray[np.int64]
Row = tuple[Any, ...]


@dataclass(frozen=True)
class BalancesView:
    """What a checkpoint writes, as columns (row i is account index i)."""

    owner: list[str]
    asset: list[str]
    purpose: list[str]
    lane: list[str]
    has_floor: npt.NDArray[np.bool_]
    floor_minor: _I64
    posted: _I64
    pending_debits: _I64
    pending_credits: _I64

    @classmethod
    def of(cls, ledger: Any) -> BalancesView:
        """The ledger's accounts and balances now. Both calls return copies (the ledger moves
        on; ``Ledger.balances``, ``AccountBook.table``), kept as they are."""
        posted, pending_debits, pending_credits = ledger.balances()
        accounts = ledger.accounts_table()
        return cls(
            accounts.owner,
            accounts.asset,
            accounts.purpose,
            accounts.lane,
            accounts.has_floor,
            np.where(accounts.has_floor, accounts.floor_minor, 0).astype(np.int64),
            posted,
            pending_debits,
            pending_credits,
        )

    def __len__(self) -> int:
        return len(self.owner)

    def rows(self, index: _I64 | None = None) -> list[Row]:
        """``(idx, owner, asset, purpose, lane, floor or None, posted, pending debits, pending
        credits)`` for the accounts at ``index`` (all when None), in index order."""
        if index is None:  # every account (a full rewrite): the text columns as they are
            at = np.arange(len(self), dtype=np.int64)
            picks = at.tolist()
            owner, asset, purpose, lane = self.owner, self.asset, self.purpose, self.lane
        else:
            at = index
            picks = at.tolist()
            owner = [self.owner[i] for i in picks]
            asset = [self.asset[i] for i in picks]
            purpose = [self.purpose[i] for i in picks]
            lane = [self.lane[i] for i in picks]
        floors = [
            int(f) if has else None
            for f, has in zip(self.floor_minor[at].tolist(), self.has_floor[at].tolist(), strict=True)
        ]
        return list(
            zip(
                picks,
                owner,
                asset,
                purpose,
                lane,
                floors,
                self.posted[at].tolist(),
                self.pending_debits[at].tolist(),
                self.pending_credits[at].tolist(),
                strict=True,
            )
        )

    def changed_since(self, old: BalancesView) -> _I64:
        """Indexes of the accounts both views hold whose row differs (ascending)."""
        m = min(len(self), len(old))
        differs = np.zeros(m, dtype=np.bool_)
        for new_col, old_col in (
            (self.posted, old.posted),
            (self.pending_debits, old.pending_debits),
            (self.pending_credits, old.pending_credits),
            (self.has_floor, old.has_floor),
            (self.floor_minor, old.floor_minor),
        ):
            differs |= new_col[:m] != old_col[:m]
        for new_text, old_text in (
            (self.owner, old.owner),
            (self.asset, old.asset),
            (self.purpose, old.purpose),
            (self.lane, old.lane),
        ):
            if new_text[:m] != old_text[:m]:  # accounts never change these: the rare case
                pairs = zip(new_text[:m], old_text[:m], strict=True)
                differs |= np.fromiter((a != b for a, b in pairs), np.bool_, m)
        return np.flatnonzero(differs).astype(np.int64)
