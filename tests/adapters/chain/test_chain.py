"""Tests for clearlane.adapters.chain: the base-layer port and the deterministic simulated chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearlane.adapters.chain import (
    BaseLayer,
    BlockProduced,
    ChainEvent,
    ChainParams,
    ChainReorg,
    FaultSchedule,
    SimulatedChain,
    TxSubmission,
    event_from_dict,
    event_to_dict,
    tx_submission_from_dict,
    tx_submission_to_dict,
)

GENESIS_MS = 1_700_000_000_000
BLOCK_MS = 2000


def slot_ms(k: int) -> int:
    return GENESIS_MS + k * BLOCK_MS


def make_tx(tx_id: str, submitted_at_ms: int) -> TxSubmission:
    return TxSubmission(
        tx_id=tx_id,
        kind="l1_settle",
        ref=f"trade-{tx_id}",
        payload_hash=hashlib.sha256(tx_id.encode()).digest(),
        submitted_at_ms=submitted_at_ms,
    )


def make_chain(faults: FaultSchedule | None = None, **params: int) -> SimulatedChain:
    return SimulatedChain(ChainParams(genesis_ms=GENESIS_MS, block_time_ms=BLOCK_MS, **params), faults)


def encode(events: Sequence[ChainEvent]) -> bytes:
    return json.dumps([event_to_dict(e) for e in events], sort_keys=True, separators=(",", ":")).encode()


def blocks_of(events: Sequence[ChainEvent]) -> list[BlockProduced]:
    return [e for e in events if isinstance(e, BlockProduced)]


def final_heights(events: Sequence[ChainEvent]) -> dict[str, int]:
    """tx id -> height on the final chain, replaying reorgs the way the engine would."""
    chain: dict[int, tuple[str, ...]] = {}
    for e in events:
        if isinstance(e, BlockProduced):
            chain[e.height] = e.tx_ids
        else:
            for h in e.orphaned_heights:
                del chain[h]
    return {tx_id: h for h, ids in chain.items() for tx_id in ids}


FAULTY = FaultSchedule(
    seed=11,
    drop_probability=0.1,
    drop_tx_ids=frozenset({"tx-0003"}),
    delay_probability=0.2,
    delay_blocks=2,
    reorgs=((3, 2), (7, 1)),
    reorg_every_blocks=5,
    reorg_depth=2,
    reorg_drop_probability=0.3,
    outages=((slot_ms(9), slot_ms(11)),),
    outage_probability_per_block=0.1,
    outage_duration_ms=3 * BLOCK_MS,
)


# -- port types ---------------------------------------------------------------------------


def test_simulated_chain_satisfies_port() -> None:
    chain: BaseLayer = make_chain()
    assert chain.tip_height() == 0
    assert isinstance(SimulatedChain.restore(chain.snapshot()), SimulatedChain)


def test_tx_submission_validates() -> None:
    with pytest.raises(ValueError, match="payload_hash"):
        TxSubmission("a", "anchor", "b1", b"\x00" * 31, 0)
    with pytest.raises(ValueError, match="kind"):
        TxSubmission("a", "swap", "b1", b"\x00" * 32, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        TxSubmission("a", "anchor", "b1", b"\x00" * 32, True)
    tx = make_tx("a", 5)
    assert tx_submission_from_dict(json.loads(json.dumps(tx_submission_to_dict(tx)))) == tx


def test_event_dict_round_trip() -> None:
    chain = make_chain(FaultSchedule(reorgs=((4, 2),)))
    chain.submit([make_tx(f"tx-{i}", slot_ms(i // 2)) for i in range(12)])
    events = chain.advance(slot_ms(8))
    assert any(isinstance(e, ChainReorg) for e in events)
    for e in events:
        d = json.loads(json.dumps(event_to_dict(e)))
        assert event_from_dict(d) == e
        assert event_to_dict(event_from_dict(d)) == event_to_dict(e)


def test_event_from_dict_rejects_bad_input() -> None:
    block = event_to_dict(make_chain().advance(slot_ms(1))[0])
    with pytest.raises(ValueError, match="'extra'"):
        event_from_dict({**block, "extra": 1})
    with pytest.raises(ValueError, match="'height'"):
        event_from_dict({k: v for k, v in block.items() if k != "height"})
    with pytest.raises(ValueError, match="unknown chain event type"):
        event_from_dict({**block, "type": "nope"})
    with pytest.raises(ValueError, match="block_hash"):
        event_from_dict({**block, "block_hash": "abcd"})


# -- block production ---------------------------------------------------------------------


def test_blocks_follow_slot_grid_and_link() -> None:
    chain = make_chain(fee_per_tx_minor=7)
    chain.submit([make_tx("a", GENESIS_MS), make_tx("b", slot_ms(3) + 1)])
    events = chain.advance(slot_ms(5) + 1999)
    blocks = blocks_of(events)
    assert len(events) == len(blocks) == 5
    assert [b.height for b in blocks] == [1, 2, 3, 4, 5]
    assert [b.at_ms for b in blocks] == [slot_ms(k) for k in range(1, 6)]
    for parent, child in pairwise(blocks):
        assert child.parent_hash == parent.block_hash
    assert blocks[0].tx_ids == ("a",) and blocks[0].fees_paid_minor == 7
    assert blocks[3].tx_ids == ("b",)
    assert chain.tip_height() == 5
    assert chain.confirmations("a") == 5
    assert chain.confirmations("b") == 2
    assert chain.confirmations("nope") == 0


def test_advance_backwards_or_repeated_is_noop() -> None:
    chain = make_chain()
    assert len(chain.advance(slot_ms(4))) == 4
    before = chain.snapshot()
    assert chain.advance(slot_ms(4)) == []
    assert chain.advance(slot_ms(2)) == []
    assert chain.advance(GENESIS_MS - 10**9) == []
    assert chain.snapshot() == before
    assert blocks_of(chain.advance(slot_ms(5)))[0].height == 5


def test_capacity_and_fifo_order() -> None:
    chain = make_chain(txs_per_block_max=3)
    t = slot_ms(1)
    # Submitted out of order and in two calls: inclusion order is (submitted_at_ms, tx_id).
    chain.submit([make_tx("e", t - 1), make_tx("c", t - 5), make_tx("late", t + 1)])
    chain.submit([make_tx("b", t - 5), make_tx("a", t - 3), make_tx("d", t - 9), make_tx("f", t)])
    blocks = blocks_of(chain.advance(slot_ms(3)))
    assert blocks[0].tx_ids == ("d", "b", "c")
    assert blocks[1].tx_ids == ("a", "e", "f")
    assert blocks[2].tx_ids == ("late",)


def test_submit_is_idempotent() -> None:
    chain = make_chain()
    txs = [make_tx(f"tx-{i}", GENESIS_MS) for i in range(5)]
    chain.submit(txs)
    chain.submit(txs[:3])
    snap = chain.snapshot()
    chain.submit([make_tx("tx-1", GENESIS_MS + 77)])
    assert chain.snapshot() == snap
    first = blocks_of(chain.advance(slot_ms(1)))
    assert first[0].tx_ids == tuple(tx.tx_id for tx in txs)
    chain.submit(txs)  # already included: still a no-op
    assert blocks_of(chain.advance(slot_ms(2)))[0].tx_ids == ()
    assert chain.pending_count() == 0


def test_same_seed_same_calls_same_bytes() -> None:
    def run(seed: int) -> bytes:
        chain = SimulatedChain(ChainParams(genesis_ms=GENESIS_MS, block_time_ms=BLOCK_MS, seed=seed), FAULTY)
        out: list[ChainEvent] = []
        for step in range(30):
            chain.submit([make_tx(f"tx-{step:02d}-{j}", slot_ms(step) + j) for j in range(4)])
            out += chain.advance(slot_ms(step) + 1500)
        return encode(out)

    assert run(1) == run(1)
    assert run(1) != run(2)


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=40 * BLOCK_MS), max_size=12))
def test_advance_batching_does_not_matter(cuts: list[int]) -> None:
    txs = [make_tx(f"tx-{i:04d}", GENESIS_MS + i * 97) for i in range(200)]
    horizon_ms = GENESIS_MS + 40 * BLOCK_MS

    whole = make_chain(FAULTY, txs_per_block_max=4)
    whole.submit(txs)
    expected = whole.advance(horizon_ms)

    pieces = make_chain(FAULTY, txs_per_block_max=4)
    pieces.submit(txs[::-1])
    got: list[ChainEvent] = []
    for cut in cuts:
        got += pieces.advance(GENESIS_MS + cut)
    got += pieces.advance(horizon_ms)
    assert encode(got) == encode(expected)
    assert pieces.snapshot() == whole.snapshot()


# -- faults -------------------------------------------------------------------------------


def test_drops_are_per_tx_id_and_never_included() -> None:
    faults = FaultSchedule(seed=3, drop_probability=0.5, drop_tx_ids=frozenset({"keep-me-out"}))
    ids = [f"tx-{i}" for i in range(400)]

    one_call = make_chain(faults)
    one_call.submit([make_tx(i, GENESIS_MS) for i in [*ids, "keep-me-out"]])
    one_by_one = make_chain(faults)
    for i in reversed(ids):
        one_by_one.submit([make_tx(i, GENESIS_MS)])

    dropped = {i for i in ids if one_call.tx_status(i) == "dropped"}
    assert dropped == {i for i in ids if one_by_one.tx_status(i) == "dropped"}
    assert 120 < len(dropped) < 280
    assert one_call.tx_status("keep-me-out") == "dropped"

    included = {t for b in blocks_of(one_call.advance(slot_ms(3))) for t in b.tx_ids}
    assert included == set(ids) - dropped
    # A dropped id stays dropped; the engine re-submits under a new id.
    one_call.submit([make_tx(next(iter(sorted(dropped))), slot_ms(3))])
    assert blocks_of(one_call.advance(slot_ms(4)))[0].tx_ids == ()


def test_delay_shifts_inclusion_by_delay_blocks() -> None:
    chain = make_chain(FaultSchedule(delay_probability=1.0, delay_blocks=3))
    chain.submit([make_tx("a", GENESIS_MS + 1)])  # would land at slot 1
    heights = final_heights(chain.advance(slot_ms(6)))
    assert heights == {"a": 4}

    faults = FaultSchedule(seed=5, delay_probability=0.5, delay_blocks=2)
    chain = make_chain(faults)
    ids = [f"tx-{i}" for i in range(100)]
    chain.submit([make_tx(i, GENESIS_MS + 1) for i in ids])
    heights = final_heights(chain.advance(slot_ms(5)))
    assert set(heights) == set(ids)
    assert set(heights.values()) == {1, 3}
    assert 20 < sum(1 for h in heights.values() if h == 3) < 80


def test_delayed_tx_keeps_fifo_position_once_eligible() -> None:
    faults = FaultSchedule(seed=5, delay_probability=0.5, delay_blocks=1)
    probe = make_chain(faults)
    probe.submit([make_tx(f"tx-{i}", GENESIS_MS + 1) for i in range(20)])
    heights = final_heights(probe.advance(slot_ms(3)))
    delayed = sorted(i for i, h in heights.items() if h == 2)
    on_time = sorted(i for i, h in heights.items() if h == 1)
    assert delayed and len(on_time) >= 4

    # Once eligible, a delayed tx is ordered by its submission time, ahead of later leftovers.
    chain = make_chain(faults, txs_per_block_max=2)
    chain.submit([make_tx(delayed[0], GENESIS_MS + 1)])
    chain.submit([make_tx(i, GENESIS_MS + 10) for i in on_time[:4]])
    blocks = blocks_of(chain.advance(slot_ms(3)))
    assert blocks[0].tx_ids == tuple(on_time[:2])
    assert blocks[1].tx_ids == (delayed[0], on_time[2])
    assert blocks[2].tx_ids == (on_time[3],)


def test_delay_counts_from_first_block_slot() -> None:
    chain = make_chain(FaultSchedule(delay_probability=1.0, delay_blocks=2))
    chain.submit([make_tx("before-genesis", GENESIS_MS - 5000), make_tx("at-slot-1", slot_ms(1))])
    assert final_heights(chain.advance(slot_ms(5))) == {"before-genesis": 3, "at-slot-1": 3}


def test_reorg_orphans_and_reincludes_at_new_heights() -> None:
    chain = make_chain(FaultSchedule(reorgs=((5, 2),)))
    for k in range(1, 7):
        chain.submit([make_tx(f"s{k}", slot_ms(k) - 1)])
    events = chain.advance(slot_ms(6))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["BlockProduced"] * 5 + ["ChainReorg"] + ["BlockProduced"] * 3

    orphaned_4, orphaned_5 = events[3], events[4]
    reorg = events[5]
    assert isinstance(orphaned_4, BlockProduced) and isinstance(orphaned_5, BlockProduced)
    assert isinstance(reorg, ChainReorg)
    assert reorg.fork_height == 3
    assert reorg.orphaned_heights == (4, 5)
    assert reorg.orphaned_tx_ids == ("s4", "s5")
    assert reorg.at_ms == slot_ms(5)

    new_4, new_5, block_6 = events[6], events[7], events[8]
    assert isinstance(new_4, BlockProduced) and isinstance(new_5, BlockProduced)
    assert (new_4.height, new_4.at_ms) == (4, slot_ms(4))
    assert (new_5.height, new_5.at_ms) == (5, slot_ms(5))
    assert new_4.parent_hash == orphaned_4.parent_hash
    assert new_4.block_hash != orphaned_4.block_hash
    assert new_5.parent_hash == new_4.block_hash
    assert new_4.tx_ids == ()
    assert new_5.tx_ids == ("s4", "s5")
    assert isinstance(block_6, BlockProduced) and block_6.parent_hash == new_5.block_hash

    assert final_heights(events)["s4"] == 5
    assert chain.confirmations("s4") == 2
    assert chain.confirmations("s5") == 2
    assert chain.tip_height() == 6


def test_reorg_depth_one_moves_tx_to_next_block() -> None:
    chain = make_chain(FaultSchedule(reorgs=((2, 1),)))
    chain.submit([make_tx("a", slot_ms(2) - 1)])
    events = chain.advance(slot_ms(2))
    assert isinstance(events[-2], ChainReorg)
    assert chain.tx_status("a") == "pending" and chain.confirmations("a") == 0
    assert final_heights(chain.advance(slot_ms(3)))["a"] == 3


def test_periodic_reorgs_fire_once_per_height() -> None:
    chain = make_chain(FaultSchedule(reorg_every_blocks=3, reorg_depth=2))
    events = chain.advance(slot_ms(10))
    reorgs = [e for e in events if isinstance(e, ChainReorg)]
    assert [r.orphaned_heights for r in reorgs] == [(2, 3), (5, 6), (8, 9)]
    assert chain.tip_height() == 10


def test_reorg_deeper_than_chain_stops_at_genesis() -> None:
    chain = make_chain(FaultSchedule(reorgs=((2, 5),)))
    events = chain.advance(slot_ms(2))
    reorg = next(e for e in events if isinstance(e, ChainReorg))
    assert reorg.fork_height == 0 and reorg.orphaned_heights == (1, 2)
    assert chain.tip_height() == 2


def test_reorg_drop_loses_txs() -> None:
    chain = make_chain(FaultSchedule(reorgs=((3, 2),), reorg_drop_probability=1.0))
    chain.submit([make_tx("a", slot_ms(2) - 1), make_tx("b", slot_ms(3) - 1)])
    events = chain.advance(slot_ms(8))
    assert final_heights(events) == {}
    assert chain.tx_status("a") == chain.tx_status("b") == "dropped"
    chain.submit([make_tx("a", slot_ms(8)), make_tx("a-retry", slot_ms(8))])
    assert final_heights(chain.advance(slot_ms(9))) == {"a-retry": 9}

    partial = make_chain(FaultSchedule(seed=2, reorgs=((3, 3),), reorg_drop_probability=0.5))
    ids = [f"tx-{i}" for i in range(200)]
    partial.submit([make_tx(i, GENESIS_MS) for i in ids])
    heights = final_heights(partial.advance(slot_ms(6)))
    lost = [i for i in ids if partial.tx_status(i) == "dropped"]
    assert 50 < len(lost) < 150
    assert set(heights) == set(ids) - set(lost)


def test_explicit_outage_leaves_a_gap() -> None:
    chain = make_chain(FaultSchedule(outages=((slot_ms(3), slot_ms(6)),)))
    chain.submit([make_tx("during", slot_ms(4))])
    blocks = blocks_of(chain.advance(slot_ms(8)))
    assert [b.at_ms for b in blocks] == [slot_ms(k) for k in (1, 2, 6, 7, 8)]
    assert [b.height for b in blocks] == [1, 2, 3, 4, 5]
    assert blocks[2].tx_ids == ("during",)


def test_generated_outages_are_seeded_gaps() -> None:
    faults = FaultSchedule(seed=9, outage_probability_per_block=0.05, outage_duration_ms=10 * BLOCK_MS)
    chain = make_chain(faults)
    blocks = blocks_of(chain.advance(slot_ms(1000)))
    gaps = [b.at_ms - a.at_ms for a, b in pairwise(blocks) if b.at_ms - a.at_ms > BLOCK_MS]
    assert gaps and all(g >= 11 * BLOCK_MS for g in gaps)
    assert len(blocks) < 900
    again = make_chain(faults)
    assert encode(blocks_of(again.advance(slot_ms(1000)))) == encode(blocks)


def test_fault_schedule_dict_round_trip_and_errors() -> None:
    assert FaultSchedule.from_dict(FAULTY.to_dict()) == FAULTY
    assert FaultSchedule.from_dict(json.loads(json.dumps(FAULTY.to_dict()))) == FAULTY
    assert FaultSchedule.from_dict({}) == FaultSchedule.none()
    assert FaultSchedule.from_dict({"drop_probability": 1}).drop_probability == 1.0
    with pytest.raises(ValueError, match="'reorg_dpth'"):
        FaultSchedule.from_dict({"reorg_dpth": 2})
    with pytest.raises(ValueError, match="drop_probability"):
        FaultSchedule.from_dict({"drop_probability": 1.5})
    with pytest.raises(ValueError, match="reorgs"):
        FaultSchedule.from_dict({"reorgs": [[3, 1], [3, 2]]})
    with pytest.raises(ValueError, match="outages"):
        FaultSchedule.from_dict({"outages": [[5, 1]]})
    params = ChainParams(genesis_ms=GENESIS_MS, seed=4)
    assert ChainParams.from_dict(params.to_dict()) == params
    with pytest.raises(ValueError, match="'blocktime'"):
        ChainParams.from_dict({"genesis_ms": 0, "blocktime": 1})
    with pytest.raises(ValueError, match="block_time_ms"):
        ChainParams(genesis_ms=0, block_time_ms=0)


# -- snapshot / restore -------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    txs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Advance:
    delta_ms: int


Op = Submit | Advance


@st.composite
def call_sequences(draw: st.DrawFn) -> list[Op]:
    ops: list[Op] = []
    next_id = 0
    for _ in range(draw(st.integers(min_value=1, max_value=25))):
        if draw(st.booleans()):
            n = draw(st.integers(min_value=0, max_value=8))
            txs = []
            for _ in range(n):
                if next_id and draw(st.integers(0, 9)) == 0:
                    tx_id = f"tx-{draw(st.integers(0, next_id - 1)):04d}"  # re-submission
                else:
                    tx_id = f"tx-{next_id:04d}"
                    next_id += 1
                txs.append((tx_id, draw(st.integers(-3 * BLOCK_MS, BLOCK_MS))))
            ops.append(Submit(tuple(txs)))
        else:
            ops.append(Advance(draw(st.integers(-2 * BLOCK_MS, 6 * BLOCK_MS))))
    return ops


def run_ops(chain: SimulatedChain, ops: Sequence[Op], now_ms: int) -> tuple[list[ChainEvent], int]:
    events: list[ChainEvent] = []
    for op in ops:
        if isinstance(op, Submit):
            chain.submit([make_tx(tx_id, now_ms + offset) for tx_id, offset in op.txs])
        else:
            to_ms = now_ms + op.delta_ms
            events += chain.advance(to_ms)
            now_ms = max(now_ms, to_ms)
    return events, now_ms


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=call_sequences(), cut=st.integers(min_value=0, max_value=25), seed=st.integers(0, 3))
def test_snapshot_restore_continues_identically(ops: list[Op], cut: int, seed: int) -> None:
    cut = min(cut, len(ops))
    params = ChainParams(genesis_ms=GENESIS_MS, block_time_ms=BLOCK_MS, txs_per_block_max=3, seed=seed)
    original = SimulatedChain(params, FAULTY)
    _, now_ms = run_ops(original, ops[:cut], GENESIS_MS)
    snap = original.snapshot()

    restored = SimulatedChain.restore(snap)
    assert restored.snapshot() == snap
    expected, _ = run_ops(original, ops[cut:], now_ms)
    got, _ = run_ops(restored, ops[cut:], now_ms)
    assert encode(got) == encode(expected)
    assert restored.snapshot() == original.snapshot()
    assert restored.tip_height() == original.tip_height()


def test_restore_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        SimulatedChain.restore(b"not json")
    with pytest.raises(ValueError, match="format"):
        SimulatedChain.restore(b'{"format":"other"}')
    snap = json.loads(make_chain().snapshot())
    with pytest.raises(ValueError, match="'bogus'"):
        SimulatedChain.restore(json.dumps({**snap, "bogus": 1}).encode())


def test_snapshot_keeps_only_reorgable_tx_times() -> None:
    chain = make_chain(FaultSchedule(reorg_every_blocks=10, reorg_depth=2))
    chain.submit([make_tx(f"tx-{i}", GENESIS_MS) for i in range(5)])
    chain.submit([make_tx("later", slot_ms(20))])
    chain.advance(slot_ms(30))
    snap = json.loads(chain.snapshot())
    assert set(snap["txs"]) == set()  # all included long ago: their times are no longer needed
    assert chain.confirmations("tx-0") == 30
    restored = SimulatedChain.restore(chain.snapshot())
    assert restored.confirmations("tx-0") == 30
    restored.submit([make_tx("tx-0", slot_ms(30))])  # still recognised as included
    assert restored.snapshot() == chain.snapshot()


# -- scale --------------------------------------------------------------------------------


def test_two_hundred_thousand_txs_are_not_quadratic() -> None:
    faults = FaultSchedule(
        seed=1, drop_probability=0.01, delay_probability=0.05, reorg_every_blocks=7, reorg_depth=2
    )
    chain = make_chain(faults)
    total = 200_000
    batch = 20_000
    events: list[ChainEvent] = []
    for b in range(total // batch):
        chain.submit([make_tx(f"tx-{b}-{i:05d}", slot_ms(b) + i % BLOCK_MS) for i in range(batch)])
        events += chain.advance(slot_ms(b))
    events += chain.advance(slot_ms(40))
    heights = final_heights(events)
    dropped = sum(
        1
        for b in range(total // batch)
        for i in range(batch)
        if chain.tx_status(f"tx-{b}-{i:05d}") == "dropped"
    )
    assert chain.pending_count() == 0
    assert 1000 < dropped < 3000
    assert max(len(b.tx_ids) for b in blocks_of(events)) == 10_000
    assert len(heights) + dropped == total


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=call_sequences(),
    seed=st.integers(0, 3),
    delay=st.sampled_from([0.0, 0.5]),
    drop=st.sampled_from([0.0, 0.3]),
)
def test_plain_path_equals_general_path(ops: list[Op], seed: int, delay: float, drop: float) -> None:
    """A chain with no block-level fault skips `advance`'s outage and reorg checks; forced
    through the general path the same calls give the same events, blocks and snapshot, byte for byte
    (tx-level faults — drops, delays — go through both)."""
    params = ChainParams(genesis_ms=GENESIS_MS, block_time_ms=BLOCK_MS, txs_per_block_max=3, seed=seed)
    faults = FaultSchedule(seed=seed, delay_probability=delay, delay_blocks=2, drop_probability=drop)
    plain = SimulatedChain(params, faults)
    general = SimulatedChain(params, faults)
    assert plain._plain
    general._plain = False
    got, _ = run_ops(plain, ops, GENESIS_MS)
    expected, _ = run_ops(general, ops, GENESIS_MS)
    assert encode(got) == encode(expected)
    assert got == expected
    assert plain.snapshot() == general.snapshot()
    for event in got:  # the unchecked events pass the class's own check
        assert isinstance(event, BlockProduced)
        assert BlockProduced(*(getattr(event, f) for f in event.__slots__)) == event


def test_block_faults_take_the_general_path() -> None:
    assert make_chain()._plain
    assert not make_chain(FaultSchedule(reorgs=((5, 1),)))._plain
    assert not make_chain(FaultSchedule(reorg_every_blocks=10))._plain
    assert not make_chain(FaultSchedule(outages=((GENESIS_MS, GENESIS_MS + 10 * BLOCK_MS),)))._plain
    assert not make_chain(FaultSchedule(outage_probability_per_block=0.1, outage_duration_ms=BLOCK_MS))._plain
    chain = make_chain(FaultSchedule(reorg_every_blocks=1000, reorg_depth=2))
    chain.schedule_reorg(3, 2)
    assert not chain._plain
