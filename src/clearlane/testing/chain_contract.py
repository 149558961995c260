"""The chain contract: one suite every implementation of :class:`clearlane.node.ports.BaseLayer`
must pass (the simulated chain and the Ethereum adapter on a real anvil node in clearlane's own
tests).

Shipped in the package, like :mod:`clearlane.testing.store_contract`. Subclass
:class:`ChainContract` in a ``test_*.py`` file under a name starting with ``Test`` and implement
its four hooks: open a chain, make a block exist at a time, replace the newest blocks (a reorg),
and open a second adapter on the same chain as a restarted process would. Blocks fall on a grid
of :data:`BLOCK_MS` after the genesis time, so both kinds of chain run the same timeline: the
simulated chain produces its slots by itself, a real node is told to mine at those times.

What it checks is what the node relies on: a submitted transaction is reported in one block
with its fees; heights follow on and each block's parent is the previous block; an id submitted
twice is included once; a time already observed reports nothing; a reorg reports the orphaned
heights and transactions, and the transaction comes back on the new branch; and an adapter that
was given the logged events through ``replay`` carries on where the first one stopped, without
reporting a block twice or sending a transaction again.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from clearlane.core.model.chain import BlockProduced, ChainEvent, ChainReorg, TxSubmission

__all__ = ["BLOCK_MS", "GENESIS_MS", "ChainContract", "anchor"]

GENESIS_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_MS = 12_000


def anchor(n: int, at_ms: int, attempt: int = 1) -> TxSubmission:
    """An anchor submission for batch ``fast-<n>`` with a recognisable root."""
    ref = f"fast-{n:010d}"
    return TxSubmission(f"anchor:{ref}#{attempt}", "anchor", ref, bytes([n % 256]) * 32, at_ms)


def slot(k: int) -> int:
    return GENESIS_MS + k * BLOCK_MS


def blocks(events: list[ChainEvent]) -> list[BlockProduced]:
    return [e for e in events if isinstance(e, BlockProduced)]


def included(events: list[ChainEvent]) -> dict[str, int]:
    """tx id -> height, as of the last event that mentions it."""
    where: dict[str, int] = {}
    for event in events:
        if isinstance(event, BlockProduced):
            for tx_id in event.tx_ids:
                where[tx_id] = event.height
        else:
            for tx_id in event.orphaned_tx_ids:
                where.pop(tx_id, None)
    return where


class ChainContract:
    """The suite; subclasses provide the four hooks below."""

    # -- hooks -------------------------------------------------------------------------------

    def open_chain(self, genesis_ms: int) -> Any:
        """A fresh adapter on a fresh chain whose time starts at ``genesis_ms``."""
        raise NotImplementedError

    def produce(self, chain: Any, at_ms: int) -> None:
        """Make the block of the slot at ``at_ms`` exist (a real node mines it then)."""
        raise NotImplementedError

    def reorg(self, chain: Any, depth: int, at_ms: int) -> None:
        """Replace the newest ``depth`` blocks by others that lack clearlane's transactions; the
        replacement branch reaches the slot at ``at_ms``."""
        raise NotImplementedError

    def reopen(self, chain: Any, genesis_ms: int) -> Any:
        """A second adapter on the same chain, as a restarted process would open it."""
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------

    def run(
        self, chain: Any, k_from: int, k_to: int, log: list[tuple[int, list[ChainEvent]]]
    ) -> list[ChainEvent]:
        """Produce the slots ``k_from..k_to`` and observe after each; record each observation."""
        out: list[ChainEvent] = []
        for k in range(k_from, k_to + 1):
            self.produce(chain, slot(k))
            events = chain.advance(slot(k))
            log.append((slot(k), events))
            out.extend(events)
        return out

    def submit(self, chain: Any, txs: list[TxSubmission], log: list[tuple[int, list[ChainEvent]]]) -> None:
        """Submit, then let the adapter see a moment pass (a real one sends on ``advance``)."""
        chain.submit(txs)
        at_ms = max(tx.submitted_at_ms for tx in txs)
        events = chain.advance(at_ms)
        log.append((at_ms, events))
        if events:
            pytest.fail(f"no slot falls in the submit instant, got {events}")

    # -- the contract ------------------------------------------------------------------------

    def test_a_submission_is_reported_in_one_block_with_its_fee(self) -> None:
        chain = self.open_chain(GENESIS_MS)
        log: list[tuple[int, list[ChainEvent]]] = []
        tx = anchor(1, slot(0) + 1_000)
        self.submit(chain, [tx], log)
        events = self.run(chain, 1, 2, log)
        reported = blocks(events)
        assert [e for e in events if isinstance(e, ChainReorg)] == []
        with_tx = [b for b in reported if tx.tx_id in b.tx_ids]
        assert len(with_tx) == 1, events
        assert with_tx[0].fees_paid_minor > 0
        assert all(b.fees_paid_minor == 0 for b in reported if not b.tx_ids)
        assert chain.tip_height() == reported[-1].height

    def test_heights_follow_on_and_parents_link(self) -> None:
        chain = self.open_chain(GENESIS_MS)
        log: list[tuple[int, list[ChainEvent]]] = []
        self.submit(chain, [anchor(2, slot(0) + 500)], log)
        reported = blocks(self.run(chain, 1, 4, log))
        assert len(reported) == 4
        for before, after in itertools.pairwise(reported):
            assert after.height == before.height + 1
            assert after.parent_hash == before.block_hash
            assert after.at_ms >= before.at_ms
        assert all(b.at_ms <= slot(4) for b in reported)

    def test_a_time_already_observed_reports_nothing(self) -> None:
        chain = self.open_chain(GENESIS_MS)
        log: list[tuple[int, list[ChainEvent]]] = []
        self.submit(chain, [anchor(3, slot(0) + 500)], log)
        self.run(chain, 1, 2, log)
        tip = chain.tip_height()
        assert chain.advance(slot(2)) == []
        assert chain.advance(slot(1)) == []
        assert chain.tip_height() == tip

    def test_an_id_submitted_twice_is_included_once(self) -> None:
        chain = self.open_chain(GENESIS_MS)
        log: list[tuple[int, list[ChainEvent]]] = []
        tx = anchor(4, slot(0) + 500)
        self.submit(chain, [tx], log)
        chain.submit([tx])
        events = self.run(chain, 1, 3, log)
        chain.submit([tx])
        events += self.run(chain, 4, 5, log)
        assert sum(b.tx_ids.count(tx.tx_id) for b in blocks(events)) == 1

    def test_a_reorg_orphans_the_anchor_and_it_comes_back(self) -> None:
        chain = self.open_chain(GENESIS_MS)
        log: list[tuple[int, list[ChainEvent]]] = []
        tx = anchor(5, slot(0) + 500)
        self.submit(chain, [tx], log)
        first = self.run(chain, 1, 2, log)
        height = included(first)[tx.tx_id]
        by_height = {b.height: b for b in blocks(first)}
        self.reorg(chain, 2, slot(3))
        events = chain.advance(slot(3))
        events += self.run(chain, 4, 6, log)
        reorgs = [e for e in events if isinstance(e, ChainReorg)]
        assert len(reorgs) == 1, events
        reorg = reorgs[0]
        assert height in reorg.orphaned_heights
        assert tx.tx_id in reorg.orphaned_tx_ids
        after = blocks(events[events.index(reorg) :])
        assert after[0].height == reorg.fork_height + 1
        if reorg.fork_height in by_height:
            assert after[0].parent_hash == by_height[reorg.fork_height].block_hash
        assert included(first + events).get(tx.tx_id, 0) > reorg.fork_height

    def test_a_reopened_adapter_adopts_the_log_and_carries_on(self) -> None:
        chain = self.open_chain(GENESIS_MS)
        log: list[tuple[int, list[ChainEvent]]] = []
        first_tx, second_tx = anchor(6, slot(0) + 500), anchor(7, slot(2) + 500)
        self.submit(chain, [first_tx], log)
        self.run(chain, 1, 2, log)
        self.submit(chain, [second_tx], log)
        seen = [e for _, events in log for e in events]
        again = self.reopen(chain, GENESIS_MS)
        again.submit([first_tx])
        for at_ms, events in log[:3]:
            again.replay(at_ms, events)
        again.submit([second_tx])
        for at_ms, events in log[3:]:
            again.replay(at_ms, events)
        assert again.tip_height() == chain.tip_height()
        assert again.advance(slot(2)) == []
        later: list[ChainEvent] = []
        for k in (3, 4):
            self.produce(again, slot(k))
            later += again.advance(slot(k))
        reported = blocks(later)
        assert reported and reported[0].height == blocks(seen)[-1].height + 1
        assert reported[0].parent_hash == blocks(seen)[-1].block_hash
        everything = seen + later
        assert sum(b.tx_ids.count(first_tx.tx_id) for b in blocks(everything)) == 1
        assert sum(b.tx_ids.count(second_tx.tx_id) for b in blocks(everything)) == 1
