"""Trial balance and end-of-day close.

The trial balance groups accounts by report lane (all participant accounts together as
"participants", each clearing-house lane on its own) and asset. A posted balance > 0 is a credit
balance, < 0 a debit balance; per asset, debits equal credits and pending debits equal pending
credits, or the ledger is broken. Totals are exact Python ints (see ``_numeric``), so they never
wrap however many accounts there are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clearlane.core.ledger._encoding import CanonicalHasher
from clearlane.core.ledger._numeric import exact_group_sums
from clearlane.core.ledger.accounts import PARTICIPANTS_LANE, TOTAL_LANE, AccountBook

Row = dict[str, str | int]


@dataclass(frozen=True, slots=True)
class TrialBalanceLine:
    lane: str
    asset: str
    accounts: int
    debit_minor: int
    credit_minor: int
    net_minor: int
    """credit_minor - debit_minor."""
    pending_debit_minor: int
    pending_credit_minor: int

    def as_row(self) -> Row:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class AssetTotal:
    asset: str
    accounts: int
    debit_minor: int
    credit_minor: int
    net_minor: int
    pending_debit_minor: int
    pending_credit_minor: int

    @property
    def balanced(self) -> bool:
        return (
            self.net_minor == 0
            and self.debit_minor == self.credit_minor
            and self.pending_debit_minor == self.pending_credit_minor
        )

    def as_row(self) -> Row:
        return {"lane": TOTAL_LANE, **dataclasses.asdict(self)}


@dataclass(frozen=True, slots=True)
class TrialBalance:
    """Balances per (report lane, asset) at ``at_ms``, plus per-asset totals."""

    at_ms: int
    lines: tuple[TrialBalanceLine, ...]
    """Sorted: "participants" first, then house lanes by name; assets by code within a lane."""
    totals: tuple[AssetTotal, ...]
    """One per asset, sorted by asset code."""

    @property
    def balanced(self) -> bool:
        """Every asset sums to zero (posted and pending)."""
        return all(total.balanced for total in self.totals)

    def unbalanced_assets(self) -> list[str]:
        return [total.asset for total in self.totals if not total.balanced]

    def rows(self, *, with_totals: bool = True) -> list[Row]:
        """One dict per line (then per-asset TOTAL rows), for CLI tables and CSV."""
        out = [line.as_row() for line in self.lines]
        if with_totals:
            out.extend(total.as_row() for total in self.totals)
        return out


@dataclass(frozen=True, slots=True)
class PendingInFlight:
    """A still-pending entry at close: value reserved but not yet final."""

    entry_id: str
    kind: str
    ref: str
    at_ms: int
    timeout_at_ms: int | None
    lanes: tuple[str, ...]
    """Report lanes its legs touch, sorted."""
    gross_minor: tuple[tuple[str, int], ...]
    """(asset, sum of the entry's credit legs in that asset), sorted by asset."""

    def as_row(self) -> Row:
        return {
            "entry_id": self.entry_id,
            "kind": self.kind,
            "ref": self.ref,
            "at_ms": self.at_ms,
            "timeout_at_ms": -1 if self.timeout_at_ms is None else self.timeout_at_ms,
            "lanes": ",".join(self.lanes),
            "gross_minor": ",".join(f"{asset}:{amount}" for asset, amount in self.gross_minor),
        }


@dataclass(frozen=True, slots=True)
class DayClose:
    """End-of-day close: the trial balance, what is still in flight, and digests.

    ``state_digest`` is the ledger's full state digest at close; ``digest`` covers everything
    in this record, so two replays agree on a close iff their digests are equal.
    """

    day: str
    at_ms: int
    trial_balance: TrialBalance
    pending: tuple[PendingInFlight, ...]
    """Sorted by (at_ms, entry_id)."""
    state_digest: bytes
    digest: bytes

    @property
    def digest_hex(self) -> str:
        return self.digest.hex()


def build_trial_balance(book: AccountBook, at_ms: int) -> TrialBalance:
    n_assets = len(book.assets)
    n_lanes = len(book.report_lanes)
    n_cells = n_assets * n_lanes
    cell = book.lane_of * n_assets + book.asset_of
    posted = book.posted
    # Range invariant: posted >= -MAX_BALANCE_MINOR, so negation cannot overflow.
    debit = -np.minimum(posted, 0)
    credit = np.maximum(posted, 0)
    debit_sums = exact_group_sums(debit, cell, n_cells)
    credit_sums = exact_group_sums(credit, cell, n_cells)
    pending_debit_sums = exact_group_sums(book.pending_debits, cell, n_cells)
    pending_credit_sums = exact_group_sums(book.pending_credits, cell, n_cells)
    counts = np.zeros(n_cells, dtype=np.int64)
    np.add.at(counts, cell, 1)

    lane_names = book.report_lanes
    asset_names = book.assets
    lane_order = sorted(range(n_lanes), key=lambda i: (lane_names[i] != PARTICIPANTS_LANE, lane_names[i]))
    asset_order = sorted(range(n_assets), key=lambda i: asset_names[i])
    lines: list[TrialBalanceLine] = []
    for lane_id in lane_order:
        for asset_id in asset_order:
            c = lane_id * n_assets + asset_id
            if counts[c] == 0:
                continue
            lines.append(
                TrialBalanceLine(
                    lane=lane_names[lane_id],
                    asset=asset_names[asset_id],
                    accounts=int(counts[c]),
                    debit_minor=debit_sums[c],
                    credit_minor=credit_sums[c],
                    net_minor=credit_sums[c] - debit_sums[c],
                    pending_debit_minor=pending_debit_sums[c],
                    pending_credit_minor=pending_credit_sums[c],
                )
            )
    totals: list[AssetTotal] = []
    for asset_id in asset_order:
        asset = asset_names[asset_id]
        of_asset = [line for line in lines if line.asset == asset]
        totals.append(
            AssetTotal(
                asset=asset,
                accounts=sum(line.accounts for line in of_asset),
                debit_minor=sum(line.debit_minor for line in of_asset),
                credit_minor=sum(line.credit_minor for line in of_asset),
                net_minor=sum(line.net_minor for line in of_asset),
                pending_debit_minor=sum(line.pending_debit_minor for line in of_asset),
                pending_credit_minor=sum(line.pending_credit_minor for line in of_asset),
            )
        )
    return TrialBalance(at_ms=at_ms, lines=tuple(lines), totals=tuple(totals))


def build_day_close(
    day: str,
    at_ms: int,
    trial_balance: TrialBalance,
    pending: Sequence[PendingInFlight],
    state_digest: bytes,
) -> DayClose:
    ordered = tuple(sorted(pending, key=lambda p: (p.at_ms, p.entry_id)))
    hasher = CanonicalHasher("clearlane.ledger.day_close.v1")
    hasher.add_str(day)
    hasher.add_int(at_ms)
    hasher.add_int(trial_balance.at_ms)
    hasher.add_int(len(trial_balance.lines))
    for line in trial_balance.lines:
        hasher.add_str(line.lane)
        hasher.add_str(line.asset)
        for value in (
            line.accounts,
            line.debit_minor,
            line.credit_minor,
            line.net_minor,
            line.pending_debit_minor,
            line.pending_credit_minor,
        ):
            hasher.add_int(value)
    hasher.add_int(len(ordered))
    for item in ordered:
        hasher.add_str(item.entry_id)
        hasher.add_str(item.kind)
        hasher.add_str(item.ref)
        hasher.add_int(item.at_ms)
        hasher.add_opt_int(item.timeout_at_ms)
        hasher.add_int(len(item.lanes))
        for lane in item.lanes:
            hasher.add_str(lane)
        hasher.add_int(len(item.gross_minor))
        for asset, amount in item.gross_minor:
            hasher.add_str(asset)
            hasher.add_int(amount)
    hasher.add_bytes(state_digest)
    return DayClose(
        day=day,
        at_ms=at_ms,
        trial_balance=trial_balance,
        pending=ordered,
        state_digest=state_digest,
        digest=hasher.digest(),
    )
