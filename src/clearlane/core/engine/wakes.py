"""When a quiet pending batch or L1 group must be walked again (``batches.walk_order``,
``l1.walk_order``): a due index, not state (it only skips walks that would do nothing).

A walk that did nothing records on its item what can make the next one do something —
engine time reaching ``quiet_until``, the tip reaching ``wake_height``, observed chain time
reaching ``wake_chain_ms`` (``NEVER``: not that) — and :meth:`Wakes.walked` files the item
under each in a heap; an item that is new, changed by the step, or not quiet is simply awake.
:meth:`Wakes.order` returns, in id order, the awake items and those whose wake has come. A
reorg (block times and inclusions move) or a configuration change drops the index and every
item is walked. A property test compares every step with a full walk (tests/core/test_engine.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

NEVER = 1 << 62  # "no time" / "no height"


class Quiet(Protocol):
    """What a walked item records (BatchState, L1Group)."""

    quiet_epoch: int
    quiet_until: int
    wake_height: int
    wake_chain_ms: int


class Clock(Protocol):
    """The engine's clocks and the events that invalidate the index (EngineState)."""

    now_ms: int
    tip_height: int
    chain_seen_ms: int
    chain_epoch: int
    reorgs: int

    @property
    def config(self) -> object: ...


@dataclass
class Wakes:
    """Heaps of ``(at, id)`` by engine time, tip height and observed chain time; the awake
    ids; the reorg count and configuration the index was built under."""

    by_time: list[tuple[int, str]] = field(default_factory=list)
    by_height: list[tuple[int, str]] = field(default_factory=list)
    by_chain_ms: list[tuple[int, str]] = field(default_factory=list)
    awake: set[str] = field(default_factory=set)
    reorgs: int = -1
    config: object | None = None

    def order(self, clock: Clock, items: Mapping[str, Quiet], changed: Iterable[str] = ()) -> list[str]:
        """The ids to walk now, in id order (all of ``items`` after a reorg or a configuration
        change); ``changed``: ids the step itself changed."""
        if self.reorgs != clock.reorgs or self.config is not clock.config:
            for heap in (self.by_time, self.by_height, self.by_chain_ms):
                heap.clear()
            self.awake.clear()
            self.reorgs, self.config = clock.reorgs, clock.config
            return sorted(items)
        walk = self.awake
        self.awake = set()
        walk.update(changed)
        for heap, now, kind in (
            (self.by_time, clock.now_ms, 0),
            (self.by_height, clock.tip_height, 1),
            (self.by_chain_ms, clock.chain_seen_ms, 2),
        ):
            while heap and heap[0][0] <= now:
                at, key = heapq.heappop(heap)
                item = items.get(key)
                if item is not None and _wake(item, kind) == at:  # not a stale entry
                    walk.add(key)
        return sorted(key for key in walk if key in items)

    def walked(self, clock: Clock, key: str, item: Quiet) -> None:
        """After a walk of ``item``: quiet in this epoch, filed by what wakes it; else awake."""
        if item.quiet_epoch != clock.chain_epoch:
            self.awake.add(key)
            return
        for heap, at in (
            (self.by_time, item.quiet_until),
            (self.by_height, item.wake_height),
            (self.by_chain_ms, item.wake_chain_ms),
        ):
            if at < NEVER:
                heapq.heappush(heap, (at, key))


def quiet(item: Quiet, epoch: int, until: int, height: int, chain_ms: int) -> None:
    """Record on ``item`` a walk that did nothing in chain ``epoch``: the next one can do
    something once engine time reaches ``until``, the tip ``height`` or observed chain time
    ``chain_ms`` (``NEVER``: not that); :meth:`Wakes.walked` files it under each."""
    item.quiet_epoch, item.quiet_until = epoch, until
    item.wake_height, item.wake_chain_ms = height, chain_ms


def _wake(item: Quiet, kind: int) -> int:
    return item.quiet_until if kind == 0 else item.wake_height if kind == 1 else item.wake_chain_ms
