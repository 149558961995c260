"""The due index of quiet items (core/engine/wakes.py): an item is walked when awake, changed,
or when the clock it waits on reaches its wake; a stale heap entry never wakes an item; a reorg
or a configuration change walks everything."""

from __future__ import annotations

from dataclasses import dataclass

from clearlane.core.engine.wakes import NEVER, Wakes


@dataclass
class _Item:
    quiet_epoch: int = 0
    quiet_until: int = NEVER
    wake_height: int = NEVER
    wake_chain_ms: int = NEVER


@dataclass
class _Clock:
    now_ms: int = 0
    tip_height: int = 0
    chain_seen_ms: int = 0
    chain_epoch: int = 0
    reorgs: int = 0
    config: object = None


def test_items_wake_on_their_own_clock_and_stale_entries_do_not() -> None:
    clock = _Clock()
    items = {
        "a": _Item(quiet_until=100),
        "b": _Item(wake_height=5),
        "c": _Item(wake_chain_ms=50),
        "d": _Item(),
    }
    wakes = Wakes()
    assert wakes.order(clock, items) == ["a", "b", "c", "d"]  # first use: everything
    for key, item in items.items():
        wakes.walked(clock, key, item)
    assert wakes.order(clock, items) == []
    clock.now_ms, clock.tip_height, clock.chain_seen_ms = 100, 5, 49
    assert wakes.order(clock, items) == ["a", "b"]
    items["c"].wake_chain_ms = 80  # walked again meanwhile: the entry at 50 is stale
    wakes.walked(clock, "c", items["c"])
    clock.chain_seen_ms = 60
    assert wakes.order(clock, items, changed=["d"]) == ["d"]
    clock.chain_seen_ms = 80
    assert wakes.order(clock, items) == ["c"]


def test_an_item_not_quiet_in_this_epoch_is_awake_and_a_reorg_walks_all() -> None:
    clock = _Clock()
    items = {"a": _Item(quiet_until=100), "b": _Item(quiet_epoch=-1)}
    wakes = Wakes()
    wakes.order(clock, items)
    wakes.walked(clock, "a", items["a"])
    wakes.walked(clock, "b", items["b"])
    assert wakes.order(clock, items) == ["b"]
    clock.reorgs += 1
    assert wakes.order(clock, items) == ["a", "b"]
    clock.config = object()
    assert wakes.order(clock, {"x": _Item()}) == ["x"]
