"""The L1 projection: each group of gross settlements on the base layer (the routed L1 flows of
a step, or an unwound batch's flows) with its per-flow inclusion and finality, until the whole
group is final — then only "all final" is kept, so memory stays bounded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.model import ids as model_ids
from clearlane.core.model.states import TradeState
from clearlane.node.projections.common import I64, Mask, grow


@dataclass
class L1View:
    """One group of L1 gross settlements (routed L1 flows, or an unwound batch's flows)."""

    group_id: str
    origin: str
    pool: int  # -1 for routed L1, the pool of the unwound batch otherwise
    trades: pa.Table  # flow_id, kind, buyer, seller (group row order)
    table: pa.Table  # the engine's group table: flow_id, attempt, submitted_ms, included_*, final_ms
    received_ms: I64
    legs: tuple[I64, npt.NDArray[np.int32], npt.NDArray[np.int32], I64]  # routed flows' legs
    included: Mask
    final: Mask
    unwound_net: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], I64] | None = None

    @property
    def routed(self) -> bool:
        return self.pool < 0


@dataclass(frozen=True)
class L1Change:
    """What one update of a group changed: rows newly included, newly final, and included rows
    whose block was reorged out; ``done`` when the whole group is now final."""

    view: L1View
    new_included: I64
    new_final: I64
    lost: I64
    done: bool


class DoneGroups:
    """The ids of groups that are all final: a flag per group number (``l1-00000042`` → 42),
    1 byte a group where a set of id strings took ~100 (serve7: it grew by every group for the
    life of the process); an id of another shape (none today) in a small set."""

    def __init__(self) -> None:
        self.flags = np.zeros(1024, dtype=np.bool_)
        self.other: set[str] = set()
        self.count = 0

    def add(self, group_id: str) -> None:
        number = model_ids.parse_l1_group_id(group_id)
        if number is None:
            self.count += group_id not in self.other
            self.other.add(group_id)
            return
        self.flags = grow(self.flags, number + 1)
        self.count += not self.flags[number]
        self.flags[number] = True

    def __contains__(self, group_id: object) -> bool:
        if not isinstance(group_id, str):
            return False
        number = model_ids.parse_l1_group_id(group_id)
        if number is None:
            return group_id in self.other
        return number < len(self.flags) and bool(self.flags[number])

    def __len__(self) -> int:
        return self.count


class L1Groups:
    """See the module docstring."""

    def __init__(self) -> None:
        self.groups: dict[str, L1View] = {}
        self.open: set[str] = set()
        self.done = DoneGroups()

    def get(self, group_id: str) -> L1View | None:
        return self.groups.get(group_id)

    def add(self, view: L1View) -> None:
        self.groups[view.group_id] = view
        self.open.add(view.group_id)

    def update(self, view: L1View, table: pa.Table) -> L1Change:
        """The engine's new group table; the view keeps it and says what changed."""
        view.table = table
        included = table.column("included_height").to_numpy() >= 0
        final = table.column("final_ms").to_numpy() >= 0
        change = L1Change(
            view,
            np.flatnonzero(included & ~view.included),
            np.flatnonzero(final & ~view.final),
            np.flatnonzero(~included & view.included & ~final),
            bool(final.all()),
        )
        view.included = included
        view.final = final
        if change.done:
            self.open.discard(view.group_id)
            del self.groups[view.group_id]
            self.done.add(view.group_id)
        return change

    def trade_states(self, table: pa.Table, state: npt.NDArray[np.int8], l1_rows: I64) -> None:
        """Set, in place, the current state of submitted L1 records from their group."""
        groups = table.column("l1_group").combine_chunks()
        names = groups.dictionary.to_pylist() if pa.types.is_dictionary(groups.type) else None
        codes = groups.indices.to_numpy(zero_copy_only=False) if names is not None else None
        for gi, name in enumerate(names or []):
            rows = l1_rows[codes[l1_rows] == gi] if codes is not None else l1_rows
            if not len(rows):
                continue
            if name in self.done:
                state[rows] = TradeState.FINAL
                continue
            view = self.groups.get(name)
            if view is None:
                continue
            ids = table.column("flow_id").take(pa.array(rows))
            pos = pc.index_in(ids, value_set=view.table.column("flow_id")).to_numpy(zero_copy_only=False)
            ok = ~np.isnan(pos.astype(np.float64))
            g_rows = pos[ok].astype(np.int64)
            sub = np.full(len(g_rows), TradeState.SUBMITTED, dtype=np.int8)
            sub[view.included[g_rows]] = TradeState.ANCHORED
            sub[view.final[g_rows]] = TradeState.FINAL
            state[rows[ok]] = sub
