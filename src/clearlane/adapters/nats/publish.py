"""The publisher: read an input file, route each valid trade to its pool subject, publish.

Routing uses the configured rules (``engine.routing.route``) at the configuration's reference
marks, so a trade goes to the subject of the pool the engine would choose for it (or ``L1``).
The subject is the *partition key*; the worker's engine still routes authoritatively inside its
partition (a mark change can move a trade across the high-value threshold). Bad rows never reach
the bus: they go to the rejects file, as with ``clearlane clear``. Small events of a JSON-lines
file (collateral, marks, payments) go to ``clearlane.input.<events_pool>``.

Each message gets ``Nats-Msg-Id = <file sha256>:<chunk>:<subject token>``: publishing the same
file again inside the stream's duplicate window stores nothing new; outside it, the worker's
trade-id dedup makes the copies no-ops.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.adapters.nats.messages import (
    ARROW,
    FORMAT_HEADER,
    JSONL,
    L1_TOKEN,
    MSG_ID_HEADER,
    STREAM,
    BusError,
    encode_arrow,
    ensure_streams,
    input_form,
    input_subject,
    trades_subject,
)
from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine.routing import kind_codes, route
from clearlane.core.model.codes import Reject
from clearlane.core.model.inputs import SmallEvent
from clearlane.node.intake.readers import file_digest, iter_input


@dataclass
class PublishResult:
    messages: int = 0
    duplicates: int = 0  # messages JetStream dropped as already stored (Nats-Msg-Id)
    trades: int = 0
    events: int = 0
    by_subject: dict[str, int] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None


def route_tokens(config: ClearingConfig, chunk: pa.Table) -> np.ndarray[Any, Any]:
    """The subject token (pool id or ``L1``) of every trade in a canonical chunk."""
    n = chunk.num_rows
    participants = pa.array(config.participant_ids, type=pa.string())

    def index(name: str) -> np.ndarray[Any, Any]:
        col = pc.cast(chunk.column(name).combine_chunks(), pa.string())
        return np.asarray(
            pc.fill_null(pc.index_in(col, value_set=participants), 0).to_numpy(zero_copy_only=False),
            dtype=np.int32,
        )

    symbols = pc.cast(chunk.column("symbol").combine_chunks(), pa.string())
    quote = pc.list_element(pc.split_pattern(symbols, "/"), 1)
    assets = pa.array([a.code for a in config.assets], type=pa.string())
    quote_idx = np.asarray(
        pc.fill_null(pc.index_in(quote, value_set=assets), 0).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    qty = chunk.column("qty_mantissa").to_numpy() / np.power(
        10.0, chunk.column("qty_exp").to_numpy().astype(np.float64)
    )
    price = chunk.column("price_mantissa").to_numpy() / np.power(
        10.0, chunk.column("price_exp").to_numpy().astype(np.float64)
    )
    notional = qty * price * np.asarray(config.marks_usd, dtype=np.float64)[quote_idx]
    hints = pc.cast(chunk.column("lane_hint").combine_chunks(), pa.string()).to_numpy(zero_copy_only=False)
    pool, _ = route(
        config,
        buyer=index("buyer"),
        seller=index("seller"),
        kind=np.zeros(n, dtype=np.int8),
        notional_usd=notional,
        lane_hint=hints,
        kinds_by_participant=kind_codes(config),
        opt_out=config.opt_out_mask(),
    )
    names = np.array([p.id for p in config.pools] + [L1_TOKEN], dtype=object)
    return names[np.where(pool < 0, len(config.pools), pool)]


MAX_MESSAGE_BYTES = 900_000  # under NATS's default max_payload (1 MB)


def _split(rows: pa.Table, max_bytes: int) -> list[bytes]:
    """Encoded messages of ``rows``, halved until each is at most ``max_bytes`` (deterministic)."""
    payload = encode_arrow(rows)
    if len(payload) <= max_bytes or rows.num_rows <= 1:
        return [payload]
    half = rows.num_rows // 2
    return _split(rows.slice(0, half), max_bytes) + _split(rows.slice(half), max_bytes)


async def publish_file(
    nats_url: str,
    path: Path,
    config: ClearingConfig,
    *,
    chunk_rows: int = 10_000,
    events_pool: str | None = None,
    window: int = 64,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> PublishResult:
    """Publish ``path`` to JetStream; returns counts (and the rejects, for the caller to write)."""
    import nats

    pools = {p.id for p in config.pools} | {L1_TOKEN}
    if events_pool is not None and events_pool not in pools:
        raise BusError(f"--events-pool {events_pool!r} is not a configured pool or L1")
    digest = file_digest(path)
    result = PublishResult()
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream(timeout=30)
        await ensure_streams(js)
        out = _Sender(js, window, result)
        for index, batch in enumerate(iter_input(path, config, chunk_rows=chunk_rows)):
            result.rejects.extend(batch.rejects)
            if batch.trades is not None and batch.trades.table.num_rows:
                await _send_trades(out, config, batch.trades.table, f"{digest}:{index}", max_bytes)
            if batch.events:
                if events_pool is None:
                    raise BusError(
                        f"{path}: has collateral/mark/payment events: say which partition gets them "
                        "with --events-pool POOL"
                    )
                await _send_events(out, batch.events, events_pool, f"{digest}:{index}")
        await out.drain()
    finally:
        await nc.close()
    return result


class _Sender:
    """Publishes with at most ``window`` acks outstanding, counting into ``result``."""

    def __init__(self, js: Any, window: int, result: PublishResult) -> None:
        self.js, self.window, self.result = js, window, result
        self.pending: list[asyncio.Future[Any]] = []

    async def send(self, subject: str, payload: bytes, msg_id: str, fmt: str) -> None:
        result = self.result
        fut = await self.js.publish_async(
            subject, payload, headers={MSG_ID_HEADER: msg_id, FORMAT_HEADER: fmt}, stream=STREAM
        )
        self.pending.append(fut)
        result.messages += 1
        result.by_subject[subject] = result.by_subject.get(subject, 0) + 1
        if len(self.pending) >= self.window:
            await self.drain()

    async def drain(self) -> None:
        result = self.result
        for fut in self.pending:
            ack = await fut
            result.duplicates += bool(ack.duplicate)
            result.first_seq = ack.seq if result.first_seq is None else min(result.first_seq, ack.seq)
            result.last_seq = ack.seq if result.last_seq is None else max(result.last_seq, ack.seq)
        self.pending.clear()


async def _send_trades(
    out: _Sender, config: ClearingConfig, table: pa.Table, msg_prefix: str, max_bytes: int
) -> None:
    """A trade chunk, one message per subject token (split when larger than ``max_bytes``)."""
    tokens = route_tokens(config, table)
    form = input_form(table)
    for token in sorted(set(tokens.tolist())):
        rows = form.filter(pa.array(tokens == token))
        for part, payload in enumerate(_split(rows, max_bytes)):
            suffix = f".{part}" if part else ""
            await out.send(trades_subject(token), payload, f"{msg_prefix}:{token}{suffix}", ARROW)
        out.result.trades += rows.num_rows


async def _send_events(out: _Sender, events: list[SmallEvent], events_pool: str, msg_prefix: str) -> None:
    """A run of small events as one JSON-lines message to the events pool."""
    lines = []
    for event in events:
        lines.append(json.dumps(event.model_dump(mode="json"), separators=(",", ":")))
    await out.send(
        input_subject(events_pool), ("\n".join(lines) + "\n").encode(), f"{msg_prefix}:events", JSONL
    )
    out.result.events += len(events)
