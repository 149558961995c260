"""feed owns the one rule for when base-layer observations enter the log on the pipelined paths
(``clearlane clear`` and the JetStream worker).

The engine sees the base layer only through logged ``chain`` entries. After a trade chunk is
logged, the base layer must be observed up to that chunk's last trade so that its batches can
be anchored and go final. Pipelined, the engine does not wait for the chunk's commit: the
chunk's observation is logged **after the next trade chunk** and reaches only to 1 ms before the
chunk's last trade (``overlap``). That is safe because every transaction of the next chunk is
later than that instant (its flows are received no earlier, its batches close later), so the
still-committing chunk loses no block. At the end of the input (and, on the stream, before a
message's small events or an idle tick, where a message boundary is a commit boundary for the
ack) a pending observation is logged first, up to the chunk's last trade itself (the unpipelined
rule); a file's small events stay in file order behind it. The log stays a function of the input
alone, so a restart writes the same entries in the same places.

This module is pure: it decides what to observe and up to when; ``Node.observe`` logs it
(``Node._clear_pipelined`` for files, ``adapters/nats/worker.py`` for the stream).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

CHAIN_SUFFIX = ".chain"


@dataclass(frozen=True, slots=True)
class PendingObservation:
    """A trade chunk's base-layer observation, waiting for its place in the log."""

    last_ms: int
    """Received time of the chunk's last trade."""
    source_id: str
    """``<chunk source id>.chain``: the observation's own idempotency key."""

    def to_ms(self, chain_seen_ms: int, *, overlap: bool) -> int:
        """How far to observe: 1 ms short of the last trade when logged after the next chunk
        (``overlap``), up to it otherwise; never behind what the engine has already seen."""
        to_ms = self.last_ms - 1 if overlap else self.last_ms
        return max(to_ms, chain_seen_ms)


def observation_for(table: pa.Table, chunk_source_id: str) -> PendingObservation:
    """The observation a logged trade chunk owes (its rows are in received order)."""
    last_ms = int(table.column("received_at_ms")[-1].as_py())
    return PendingObservation(last_ms, chunk_source_id + CHAIN_SUFFIX)


def is_observation(source_id: str) -> bool:
    """Whether a log entry's source id is a chunk's base-layer observation."""
    return source_id.endswith(CHAIN_SUFFIX)


class ChainFeed:
    """The sequencing half of the rule for one input stream: at most one observation waits.

    ``after_trades`` is called once a trade chunk is logged and returns the previous chunk's
    observation, now due with ``overlap=True``; ``take`` hands over the waiting observation
    before a small event, an idle tick or the end (``overlap=False``).
    """

    def __init__(self) -> None:
        self.pending: PendingObservation | None = None

    def after_trades(self, table: pa.Table, chunk_source_id: str) -> PendingObservation | None:
        due, self.pending = self.pending, observation_for(table, chunk_source_id)
        return due

    def take(self) -> PendingObservation | None:
        due, self.pending = self.pending, None
        return due
