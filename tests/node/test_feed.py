"""The chain-feed rule (node/feed.py): what is observed, up to when, and in which order."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from clearlane.node.feed import ChainFeed, PendingObservation, is_observation, observation_for


def _chunk(*received: int) -> pa.Table:
    return pa.table({"received_at_ms": pa.array(received, pa.int64())})


def test_observation_reaches_the_chunks_last_trade() -> None:
    obs = observation_for(_chunk(5, 9, 12), "file:x#3")
    assert obs == PendingObservation(12, "file:x#3.chain")
    assert is_observation(obs.source_id) and not is_observation("file:x#3")
    assert obs.to_ms(0, overlap=False) == 12
    assert obs.to_ms(0, overlap=True) == 11  # logged after the next chunk: 1 ms short
    assert obs.to_ms(40, overlap=True) == 40  # never behind what the engine has seen


def test_each_chunks_observation_is_logged_after_the_next_chunk_and_the_last_at_the_end() -> None:
    feed = ChainFeed()
    order: list[tuple[str, bool]] = []
    for index in range(3):
        order.append((f"#{index}", False))
        due = feed.after_trades(_chunk(index * 10, index * 10 + 5), f"#{index}")
        if due is not None:
            order.append((due.source_id, True))
    last = feed.take()
    assert last is not None
    order.append((last.source_id, False))
    assert order == [
        ("#0", False),
        ("#1", False),
        ("#0.chain", True),
        ("#2", False),
        ("#1.chain", True),
        ("#2.chain", False),
    ]
    assert feed.take() is None


@given(st.lists(st.lists(st.integers(0, 10**12), min_size=1, max_size=5), min_size=1, max_size=20))
def test_every_chunk_is_observed_exactly_once_in_chunk_order(chunks: list[list[int]]) -> None:
    feed = ChainFeed()
    seen: list[str] = []
    for index, times in enumerate(chunks):
        due = feed.after_trades(_chunk(*sorted(times)), f"#{index}")
        if due is not None:
            seen.append(due.source_id)
    tail = feed.take()
    assert tail is not None
    seen.append(tail.source_id)
    assert seen == [f"#{i}.chain" for i in range(len(chunks))]
