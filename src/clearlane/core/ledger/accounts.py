"""Account identity, per-account floors and the dense balance arrays they index.

An account is named by an :class:`AccountKey` and addressed everywhere else by a dense integer
index, assigned in creation order so that replaying the same operations yields the same indices.
Each account holds exactly one asset. Balances live in int64 arrays indexed by account:

* ``posted``          – settled balance; > 0 is a credit balance, < 0 a debit balance.
* ``pending_debits``  – sum of the negative legs of still-pending entries, stored as >= 0.
* ``pending_credits`` – sum of the positive legs of still-pending entries.

Range invariant kept by the ledger for every account (it is what makes int64 arithmetic on
balances provably overflow-free): ``posted - pending_debits >= -MAX_BALANCE_MINOR`` and
``posted + pending_credits <= MAX_BALANCE_MINOR``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum, auto
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from clearlane.core.ledger._encoding import CanonicalHasher

HOUSE_OWNER = "HOUSE"
"""Owner of every clearing-house account; such accounts carry a non-empty lane."""

PARTICIPANTS_LANE = "participants"
"""Reporting group of all participant accounts (lane ""); reserved as a lane name."""

TOTAL_LANE = "TOTAL"
"""Label of per-asset total rows in reports; reserved as a lane name."""

MAX_AMOUNT_MINOR = 2**62 - 1
"""Largest gross (sum of |leg|) of one entry. Together with MAX_BALANCE_MINOR it keeps every
intermediate of a balance update inside int64."""

MAX_BALANCE_MINOR = 2**62 - 1
"""Bound on ``posted + pending_credits`` and ``-(posted - pending_debits)`` of any account."""


class Purpose(StrEnum):
    AVAILABLE = auto()
    COLLATERAL = auto()
    IN_FLIGHT_L2 = auto()
    FEES = auto()
    SETTLEMENT = auto()
    """Clearing-house settlement account of a lane."""
    EXTERNAL = auto()
    """The outside world: deposits come from it, withdrawals go to it."""
    # Escrow (clearlane.core.escrow): created only when an escrow uses them.
    ESCROW = auto()
    """Clearing-house liability for money held in escrow (lane "escrow")."""
    PAYABLE = auto()
    """A payee's released escrow money, not yet settled to its available account."""
    RESERVE = auto()
    """A seller's chargeback reserve; may go negative (reported)."""
    LOSS = auto()
    """Clearing-house loss on chargebacks nobody could cover (lane "escrow")."""


@dataclass(frozen=True, slots=True, order=True)
class AccountKey:
    """Identity of an account. ``lane`` is "" for participant accounts and names the lane
    ("L1", "L2:fast", ...) for clearing-house accounts, whose owner is :data:`HOUSE_OWNER`."""

    owner: str
    asset: str
    purpose: Purpose
    lane: str = ""

    def __post_init__(self) -> None:
        # Accept the plain string value too, so keys read back from a store compare equal.
        object.__setattr__(self, "purpose", Purpose(self.purpose))
        for name in ("owner", "asset", "lane"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"AccountKey.{name} must be str")
        if not self.owner:
            raise ValueError("AccountKey.owner must be non-empty")
        if not self.asset:
            raise ValueError("AccountKey.asset must be non-empty")
        if self.lane in (PARTICIPANTS_LANE, TOTAL_LANE):
            raise ValueError(f"lane name {self.lane!r} is reserved for reports")
        # Reports group accounts by lane; a lane-less house account or a participant account
        # tied to a lane would land in the wrong group.
        if self.owner == HOUSE_OWNER and not self.lane:
            raise ValueError("clearing-house accounts need a lane")
        if self.owner != HOUSE_OWNER and self.lane:
            raise ValueError(f"participant account {self.owner!r} must have lane ''")

    @property
    def report_lane(self) -> str:
        """Group used by the trial balance: the house lane, or "participants"."""
        return self.lane or PARTICIPANTS_LANE


@dataclass(frozen=True, slots=True)
class AccountsTable:
    """All accounts as columns (row i is account index i), for stores and CLI tables."""

    index: npt.NDArray[np.int64]
    owner: list[str]
    asset: list[str]
    purpose: list[str]
    lane: list[str]
    has_floor: npt.NDArray[np.bool_]
    floor_minor: npt.NDArray[np.int64]
    """Meaningful only where ``has_floor``; 0 elsewhere."""

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def to_pydict(self) -> dict[str, list[str] | list[int] | list[int | None]]:
        """Columns as plain lists (``floor_minor`` None = unlimited), e.g. for pyarrow."""
        floors: list[int | None] = [
            floor if has else None
            for floor, has in zip(self.floor_minor.tolist(), self.has_floor.tolist(), strict=True)
        ]
        return {
            "index": self.index.tolist(),
            "owner": list(self.owner),
            "asset": list(self.asset),
            "purpose": list(self.purpose),
            "lane": list(self.lane),
            "floor_minor": floors,
        }


_Scalar = TypeVar("_Scalar", bound=np.generic)


def _grown(values: npt.NDArray[_Scalar], capacity: int) -> npt.NDArray[_Scalar]:
    out = np.zeros(capacity, dtype=values.dtype)
    out[: values.shape[0]] = values
    return out


class AccountBook:
    """Dense account registry plus the balance arrays it indexes.

    Internal to the ledger package: :class:`~clearlane.core.ledger.journal.Ledger` is its only
    writer, so every balance change passes the ledger's all-or-nothing checks. The array
    properties return views of the live prefix ``[:n]``; they stay valid only until the next
    account is created (growth reallocates).
    """

    def __init__(self, capacity: int = 64) -> None:
        capacity = max(1, int(capacity))
        self._n = 0
        self._keys: list[AccountKey] = []
        # The keys' text columns (owner, asset, purpose, lane), kept as accounts are created:
        # :meth:`table` copies them instead of reading four attributes of every key (~38 ms a
        # call for the benchmark day's 96,000 accounts, one call a checkpoint; issue 18).
        self._text_columns: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
        self._index: dict[AccountKey, int] = {}
        self._assets: list[str] = []
        self._asset_ids: dict[str, int] = {}
        self._lanes: list[str] = []
        self._lane_ids: dict[str, int] = {}
        self._asset_of = np.zeros(capacity, dtype=np.int64)
        # Python-list twin of _asset_of: per-leg lookups in the small-entry path are several
        # times faster on a list than on numpy scalars.
        self._asset_of_list: list[int] = []
        self._lane_of = np.zeros(capacity, dtype=np.int64)
        self._floor = np.zeros(capacity, dtype=np.int64)
        self._has_floor = np.zeros(capacity, dtype=np.bool_)
        self._posted = np.zeros(capacity, dtype=np.int64)
        self._pending_debits = np.zeros(capacity, dtype=np.int64)
        self._pending_credits = np.zeros(capacity, dtype=np.int64)
        self._dirty = np.zeros(capacity, dtype=np.bool_)
        # The indices marked dirty since the last clear, as marked (repeats allowed): finding
        # them by scanning the flags cost ~80 µs a step on 96,000 accounts, twice a step.
        self._touched: list[int] = []
        self._touched_runs: list[npt.NDArray[np.int64]] = []
        # Keys are append-only, so their digest is kept incrementally instead of re-encoding
        # every key on each state digest.
        self._keys_hasher = CanonicalHasher("clearlane.ledger.accounts.v1")

    # -- registry ---------------------------------------------------------------------------

    @property
    def n(self) -> int:
        return self._n

    @property
    def assets(self) -> list[str]:
        """Asset codes by asset id (creation order)."""
        return self._assets

    @property
    def report_lanes(self) -> list[str]:
        """Report-lane names by report-lane id (creation order)."""
        return self._lanes

    def find(self, key: AccountKey) -> int | None:
        return self._index.get(key)

    def key(self, index: int) -> AccountKey:
        if not 0 <= index < self._n:
            raise IndexError(f"unknown account index {index}")
        return self._keys[index]

    def keys_from(self, start: int) -> list[AccountKey]:
        """The keys of accounts ``start``, ``start + 1``, … in index order (a copy): the new
        accounts of a drain in one slice — a :meth:`key` call each cost ~0.2 s for the 96,000
        accounts of the benchmark day's first step."""
        return self._keys[max(start, 0) : self._n]

    def get_or_create(self, key: AccountKey) -> int:
        found = self._index.get(key)
        if found is not None:
            return found
        if not isinstance(key, AccountKey):
            raise TypeError(f"expected AccountKey, got {type(key).__name__}")
        if self._n == self._posted.shape[0]:
            self._grow(2 * self._n)
        index = self._n
        asset_id = self._asset_ids.setdefault(key.asset, len(self._assets))
        if asset_id == len(self._assets):
            self._assets.append(key.asset)
        lane = key.report_lane
        lane_id = self._lane_ids.setdefault(lane, len(self._lanes))
        if lane_id == len(self._lanes):
            self._lanes.append(lane)
        self._asset_of[index] = asset_id
        self._asset_of_list.append(asset_id)
        self._lane_of[index] = lane_id
        self.touch(index)
        self._keys.append(key)
        self._index[key] = index
        self._n = index + 1
        parts = (key.owner, key.asset, key.purpose.value, key.lane)
        for column, part in zip(self._text_columns, parts, strict=True):
            column.append(part)
        for part in parts:
            self._keys_hasher.add_str(part)
        return index

    def get_or_create_many(self, keys: Sequence[AccountKey]) -> list[int]:
        """:meth:`get_or_create` for many keys at once, with the same indices and the same keys
        digest as one call per key in order — but one array write per column and one hash
        update, not one per key (a node opens with ~100,000 accounts; issue 18)."""
        n = self._n
        if any(type(key) is not AccountKey for key in keys):
            bad = next(key for key in keys if type(key) is not AccountKey)
            raise TypeError(f"expected AccountKey, got {type(bad).__name__}")
        fresh = dict(zip(keys, range(n, n + len(keys)), strict=True))
        if len(fresh) == len(keys) and (n == 0 or not any(k in self._index for k in fresh)):
            # All new and distinct (a node's open): one dict build, no per-key branching.
            self._index.update(fresh)
            out = list(range(n, n + len(keys)))
            new_keys = list(keys)
        else:
            out = []
            new_keys = []
            index = self._index
            for key in keys:
                found = index.get(key)
                if found is None:
                    found = index[key] = n + len(new_keys)
                    new_keys.append(key)
                out.append(found)
        if not new_keys:
            return out
        end = n + len(new_keys)
        capacity = self._posted.shape[0]
        if end > capacity:
            while capacity < end:
                capacity *= 2
            self._grow(capacity)
        # Asset and report-lane ids in first-seen order, as get_or_create assigns them.
        for asset in dict.fromkeys(key.asset for key in new_keys):
            if asset not in self._asset_ids:
                self._asset_ids[asset] = len(self._assets)
                self._assets.append(asset)
        lanes = [key.lane or PARTICIPANTS_LANE for key in new_keys]
        for lane in dict.fromkeys(lanes):
            if lane not in self._lane_ids:
                self._lane_ids[lane] = len(self._lanes)
                self._lanes.append(lane)
        asset_ids = [self._asset_ids[key.asset] for key in new_keys]
        lane_ids = [self._lane_ids[lane] for lane in lanes]
        parts = [part for key in new_keys for part in (key.owner, key.asset, key.purpose.value, key.lane)]
        self._asset_of[n:end] = asset_ids
        self._asset_of_list += asset_ids
        self._lane_of[n:end] = lane_ids
        self.touch_many(np.arange(n, end, dtype=np.int64))
        self._keys += new_keys
        for k, column in enumerate(self._text_columns):
            column += parts[k::4]
        self._n = end
        self._keys_hasher.add_strs(parts)
        return out

    def _grow(self, capacity: int) -> None:
        self._asset_of = _grown(self._asset_of, capacity)
        self._lane_of = _grown(self._lane_of, capacity)
        self._floor = _grown(self._floor, capacity)
        self._has_floor = _grown(self._has_floor, capacity)
        self._posted = _grown(self._posted, capacity)
        self._pending_debits = _grown(self._pending_debits, capacity)
        self._pending_credits = _grown(self._pending_credits, capacity)
        self._dirty = _grown(self._dirty, capacity)

    def set_floor(self, index: int, floor_minor: int | None) -> None:
        if not 0 <= index < self._n:
            raise IndexError(f"unknown account index {index}")
        if floor_minor is None:
            self._has_floor[index] = False
            self._floor[index] = 0
        else:
            if isinstance(floor_minor, bool) or not isinstance(floor_minor, int | np.integer):
                raise TypeError("floor_minor must be an int or None")
            if not -MAX_BALANCE_MINOR <= int(floor_minor) <= MAX_BALANCE_MINOR:
                raise ValueError(f"floor_minor {floor_minor} outside ±{MAX_BALANCE_MINOR}")
            self._has_floor[index] = True
            self._floor[index] = int(floor_minor)
        self.touch(index)

    def floor(self, index: int) -> int | None:
        if not 0 <= index < self._n:
            raise IndexError(f"unknown account index {index}")
        return int(self._floor[index]) if self._has_floor[index] else None

    def keys_digest(self) -> bytes:
        return self._keys_hasher.copy().digest()

    def table(self) -> AccountsTable:
        n = self._n
        owner, asset, purpose, lane = self._text_columns
        return AccountsTable(
            index=np.arange(n, dtype=np.int64),
            owner=owner.copy(),
            asset=asset.copy(),
            purpose=purpose.copy(),
            lane=lane.copy(),
            has_floor=self._has_floor[:n].copy(),
            floor_minor=self._floor[:n].copy(),
        )

    # -- live array views -------------------------------------------------------------------

    @property
    def asset_of(self) -> npt.NDArray[np.int64]:
        return self._asset_of[: self._n]

    @property
    def asset_of_list(self) -> list[int]:
        return self._asset_of_list

    @property
    def lane_of(self) -> npt.NDArray[np.int64]:
        return self._lane_of[: self._n]

    @property
    def floor_minor(self) -> npt.NDArray[np.int64]:
        return self._floor[: self._n]

    @property
    def has_floor(self) -> npt.NDArray[np.bool_]:
        return self._has_floor[: self._n]

    @property
    def posted(self) -> npt.NDArray[np.int64]:
        return self._posted[: self._n]

    @property
    def pending_debits(self) -> npt.NDArray[np.int64]:
        return self._pending_debits[: self._n]

    @property
    def pending_credits(self) -> npt.NDArray[np.int64]:
        return self._pending_credits[: self._n]

    @property
    def dirty(self) -> npt.NDArray[np.bool_]:
        """Read-only use: mark through :meth:`touch` / :meth:`touch_many`."""
        return self._dirty[: self._n]

    def touch(self, index: int) -> None:
        """Mark an account changed since the last :meth:`clear_dirty`."""
        self._dirty[index] = True
        self._touched.append(index)

    def touch_many(self, indices: npt.NDArray[np.integer]) -> None:
        self._dirty[indices] = True
        self._touched_runs.append(np.asarray(indices, dtype=np.int64))

    def dirty_indices(self) -> npt.NDArray[np.int64]:
        """The changed accounts, ascending, each once (= ``flatnonzero(dirty)``): sorted from the
        marks when they are few, the flags scanned when the marks are many (a step that places
        hundreds of holds marks thousands of legs; sorting those costs more than the scan)."""
        marks = len(self._touched) + sum(len(run) for run in self._touched_runs)
        if marks * 32 > self._n:
            return np.flatnonzero(self._dirty[: self._n]).astype(np.int64)
        if not self._touched_runs:
            return np.array(sorted(set(self._touched)), dtype=np.int64)
        return np.unique(np.concatenate([np.array(self._touched, dtype=np.int64), *self._touched_runs]))

    def clear_dirty(self, indices: npt.NDArray[np.int64] | None = None) -> None:
        """Forget the marks (``indices``: :meth:`dirty_indices`, when the caller has it)."""
        self._dirty[self.dirty_indices() if indices is None else indices] = False
        self._touched.clear()
        self._touched_runs.clear()
