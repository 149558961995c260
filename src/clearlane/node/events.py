"""The one public event vocabulary, and the in-process event bus that publishes it after each
committed step. SSE (``/v1/stream``), webhooks and NATS (``clearlane.events.<scope>.<type>``: the workers'
and ``serve --nats``'s, adapters/nats/events_out.py)
all name events from the constants below; nothing else spells an event type.

Events travel as columnar groups — one :class:`TradeEvents` per event type and step holds the
trades as Arrow columns — and are only turned into Python dicts for a subscriber whose filter
(event types, participant, pool) selects them, so 20,000 trades/s cost nothing for a browser
that only watches batches and stats.

Event types: ``trade.received``, ``trade.routed``, ``trade.batched``, ``trade.cleared``,
``trade.anchored``, ``trade.final``, ``trade.rejected``, ``trade.unwound``, ``batch.cleared``,
``batch.anchored``, ``batch.final``, ``batch.unwound``, and ``stats`` (coalesced figures, at
most a few per second); NATS also carries the anchor's retries, ``batch.reorged`` and
``batch.resubmitted``. A batch event is named after the lifecycle state it enters
(:class:`~clearlane.core.model.states.BatchState`). Case actions are ``exception.opened``,
``exception.recurred``, ``exception.assigned`` ... ``exception.reopened`` (:data:`CASE_VERBS`;
ids ``case:<case id>:<version>``, operators only). ``batch.closed`` — what SSE and webhooks
called ``batch.cleared`` before — is still accepted in input filters (SSE ``types=``, webhook
subscriptions) as a deprecated alias: :func:`canonical_event_types`. Every event has a stable id
(``<log seq>:<type>:<subject>``): the same committed step always yields the same ids, which
webhooks use as idempotency keys.

Subscribers are asyncio queues (SSE) or synchronous listeners (webhooks). A slow asyncio
subscriber never blocks the engine: when its queue is full, events are dropped and counted, and
it receives an ``overflow`` event telling it to re-read the state over REST.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.model import ids as model_ids

TRADE_EVENTS = (
    "trade.received",
    "trade.routed",
    "trade.batched",
    "trade.cleared",
    "trade.anchored",
    "trade.final",
    "trade.rejected",
    "trade.unwound",
    "trade.settled_manually",
)
# An L1 obligation an operator recorded as settled off-system (issue 17, docs/MANUAL_SETTLEMENT.md):
# settled in the books, never "trade.final" (nothing was final on a base layer).
TRADE_SETTLED_MANUALLY = "trade.settled_manually"
BATCH_CLEARED = "batch.cleared"
BATCH_ANCHORED = "batch.anchored"
BATCH_FINAL = "batch.final"
BATCH_UNWOUND = "batch.unwound"
BATCH_EVENTS = (BATCH_CLEARED, BATCH_ANCHORED, BATCH_FINAL, BATCH_UNWOUND)
# Published on NATS only: the read model folds them into the batch's state (an anchor reorged
# out sends it back to cleared; a resubmission changes nothing a browser shows).
BATCH_RETRY_EVENTS = ("batch.reorged", "batch.resubmitted")
STATS = "stats"
# Escrow (issue 12, node/escrow.py): one event per transition, named after the state entered;
# ``escrow.updated`` when an action changes no state (a partial release, a condition met, an
# approval, a settlement). ``escrow.draft`` is spelled ``escrow.opened``.
ESCROW_UPDATED = "escrow.updated"
ESCROW_EVENTS = (
    "escrow.opened",
    "escrow.agreed",
    "escrow.funded",
    "escrow.inspection",
    "escrow.releasable",
    "escrow.disputed",
    "escrow.released",
    "escrow.refunded",
    "escrow.cancelled",
    "escrow.chargeback",
    "escrow.closed",
    ESCROW_UPDATED,
)

# Something an operator must look at (a ledger refusal turned into data, a final batch's anchor
# reorged out): SSE and NATS, never participant webhooks (it may name other participants' flows).
ALERT = "alert.raised"
# Cases (core/cases, issue 13): one event per case action, ``<kind>.<action done>``; the
# reconciliation's kind is ``exception``. Operators and auditors only (a break may name any
# participant): a participant-filtered subscriber or webhook never gets one.
CASE_VERBS = {
    "open": "opened",
    "recur": "recurred",
    "assign": "assigned",
    "acknowledge": "acknowledged",
    "snooze": "snoozed",
    "unsnooze": "unsnoozed",
    "note": "noted",
    "resolve": "resolved",
    "accept": "accepted",
    "reopen": "reopened",
}
EXCEPTION_EVENTS = tuple(f"exception.{verb}" for verb in CASE_VERBS.values())
# The alert workflow (issue 15, node/alerts.py): one event per action on an alert case; only
# for operator subscribers (a participant-bound stream or webhook never sees them). Alerts name
# fewer events than exceptions, what a pager acts on: every way an alert comes back (ack lapse,
# snooze end, reopen) is ``renotified``, notes and assignments are ``updated``.
ALERT_VERBS = {
    "open": "opened",
    "acknowledge": "acknowledged",
    "snooze": "snoozed",
    "silence": "silenced",
    "unsilence": "unsilenced",
    "ack_lapse": "renotified",
    "unsnooze": "renotified",
    "reopen": "renotified",
    "resolve": "resolved",
    "accept": "resolved",
    "note": "updated",
    "assign": "updated",
}
ALERT_CASE_EVENTS = tuple(f"alert.{verb}" for verb in dict.fromkeys(ALERT_VERBS.values()))
# Each case kind's action → verb table (case_event_type); kinds not named use CASE_VERBS.
_VERBS_OF_KIND = {"alert": ALERT_VERBS}
EVENT_TYPES = (
    *TRADE_EVENTS, *BATCH_EVENTS, *ESCROW_EVENTS, ALERT, *EXCEPTION_EVENTS, *ALERT_CASE_EVENTS, STATS,
)  # fmt: skip
DEFAULT_STREAM_TYPES = frozenset((*BATCH_EVENTS, STATS))
WEBHOOK_EVENTS = (
    "trade.cleared", "trade.final", "trade.rejected", TRADE_SETTLED_MANUALLY, *BATCH_EVENTS, *ESCROW_EVENTS,
    *EXCEPTION_EVENTS, *ALERT_CASE_EVENTS,
)  # fmt: skip
# Old names still accepted in input filters, with the name they now mean.
DEPRECATED_ALIASES = {"batch.closed": BATCH_CLEARED}


def canonical_event_types(names: Iterable[str]) -> frozenset[str]:
    """Filter names as given by a client, each deprecated alias replaced by its current name
    (unknown names are kept: the caller says which names it accepts)."""
    return frozenset(DEPRECATED_ALIASES.get(name, name) for name in names)


def case_event_type(kind: str, action: str) -> str | None:
    """The public type of a case action (``exception.opened``), or None when the vocabulary has
    no name for that kind and action (nothing is published then)."""
    verb = _VERBS_OF_KIND.get(kind, CASE_VERBS).get(action)
    name = None if verb is None else f"{kind}.{verb}"
    return name if name in EVENT_TYPES else None


def batch_event_type(kind: str) -> str:
    """The public type of a batch event the engine records by kind (``cleared``, ``anchored``,
    ``final``, ``unwound``, ``reorged``, ``resubmitted``)."""
    return f"batch.{kind}"


def iso(ms: int | None) -> str | None:
    if ms is None or ms < 0:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# What a batch event tells a participant's subscriber: which batch, where it is in its lifecycle
# and when — none of the batch's volume (``flows``, ``gross_usd``, ``net_usd`` are every
# participant's trades together, not its own figures).
PARTICIPANT_BATCH_KEYS = (
    "batch_id",
    "pool",
    "seq",
    "state",
    "opened_at_ms",
    "cleared_at_ms",
    "anchored_at_ms",
    "final_at_ms",
    "unwound_at_ms",
    "anchor",
    "reason",
)


@dataclass(frozen=True)
class EventFilter:
    """Which events a subscriber wants. ``participant`` restricts trade events to trades where
    it is buyer or seller (payer or payee); ``pool`` restricts trade and batch events to a pool
    (``L1`` selects Layer-1 trades). ``own_figures_only`` is set for a participant's own
    subscriber (its SSE stream, a webhook bound to it): batch events then carry only
    :data:`PARTICIPANT_BATCH_KEYS`, never the volume of other participants; operators and
    auditors keep the full view."""

    types: frozenset[str] = DEFAULT_STREAM_TYPES
    participant: str | None = None
    pool: str | None = None
    own_figures_only: bool = False


class EventGroup:
    """Base of the event groups a step produces."""

    type: str
    seq: int
    at_ms: int

    def events(self, flt: EventFilter) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def count(self) -> int:
        return 1


class TradeEvents(EventGroup):
    """One event type for many trades of one step, as columns (built on first use: a step
    nobody subscribed to trade events for never pays for them)."""

    def __init__(
        self,
        type_: str,
        seq: int,
        at_ms: int,
        table: pa.Table | Callable[[], pa.Table],
        rows: int | None = None,
    ) -> None:
        self.type = type_
        self.seq = seq
        self.at_ms = at_ms
        self._table = table if isinstance(table, pa.Table) else None
        self._factory = None if isinstance(table, pa.Table) else table
        self._rows = rows if rows is not None else (table.num_rows if isinstance(table, pa.Table) else 0)

    @property
    def table(self) -> pa.Table:
        if self._table is None and self._factory is not None:
            self._table = self._factory()
        return self._table

    def count(self) -> int:
        return self._rows

    def select(self, flt: EventFilter) -> pa.Table:
        table = self.table
        if table.num_rows == 0:
            return table
        mask = None
        if flt.participant is not None:
            who = pa.scalar(flt.participant, pa.string())
            mask = pc.or_(pc.equal(table.column("buyer"), who), pc.equal(table.column("seller"), who))
        if flt.pool is not None:
            where = (
                pc.equal(table.column("lane"), pa.scalar("L1", pa.string()))
                if flt.pool == "L1"
                else pc.equal(table.column("pool"), pa.scalar(flt.pool, pa.string()))
            )
            mask = where if mask is None else pc.and_(mask, where)
        if mask is not None:
            table = table.filter(pc.fill_null(mask, False))
        return table

    def events(self, flt: EventFilter) -> list[dict[str, Any]]:
        table = self.select(flt)
        if table.num_rows == 0:
            return []
        at = iso(self.at_ms)
        out = []
        kinds = ("trade", "payment")
        for row in table.to_pylist():
            row["kind"] = kinds[int(row["kind"])] if row.get("kind") in (0, 1) else row.get("kind")
            out.append(
                {
                    "id": model_ids.event_id(self.seq, self.type, row["trade_id"]),
                    "type": self.type,
                    "at_ms": self.at_ms,
                    "at": at,
                    "data": row,
                }
            )
        return out


class BatchEvent(EventGroup):
    def __init__(
        self, type_: str, seq: int, at_ms: int, batch_id: str, pool: str, data: dict[str, Any]
    ) -> None:
        self.type = type_
        self.seq = seq
        self.at_ms = at_ms
        self.batch_id = batch_id
        self.pool = pool
        self.data = data

    def events(self, flt: EventFilter) -> list[dict[str, Any]]:
        if flt.pool is not None and flt.pool != self.pool:
            return []
        data = self.data
        if flt.own_figures_only:
            data = {k: data[k] for k in PARTICIPANT_BATCH_KEYS if k in data}
        return [
            {
                "id": model_ids.event_id(self.seq, self.type, self.batch_id),
                "type": self.type,
                "at_ms": self.at_ms,
                "at": iso(self.at_ms),
                "data": data,
            }
        ]


class AlertEvent(EventGroup):
    """One alert the engine raised (``kind``: the reject slug it starts with, e.g.
    ``ledger_refused``, else ``alert``); not shown to a participant-filtered subscriber."""

    def __init__(self, seq: int, at_ms: int, index: int, kind: str, message: str) -> None:
        self.type = ALERT
        self.seq = seq
        self.at_ms = at_ms
        self.data = {"kind": kind, "message": message, "index": index}

    def events(self, flt: EventFilter) -> list[dict[str, Any]]:
        if flt.participant is not None:
            return []
        subject = f"{self.data['kind']}-{self.data['index']}"
        return [
            {
                "id": model_ids.event_id(self.seq, ALERT, subject),
                "type": ALERT,
                "at_ms": self.at_ms,
                "at": iso(self.at_ms),
                "data": self.data,
            }
        ]


class StatsEvent(EventGroup):
    def __init__(self, seq: int, at_ms: int, data: dict[str, Any]) -> None:
        self.type = STATS
        self.seq = seq
        self.at_ms = at_ms
        self.data = data

    def events(self, flt: EventFilter) -> list[dict[str, Any]]:
        return [
            {
                "id": model_ids.event_id(self.seq, STATS, self.at_ms),
                "type": STATS,
                "at_ms": self.at_ms,
                "at": iso(self.at_ms),
                "data": self.data,
            }
        ]


@dataclass
class Subscription:
    """An asyncio-side subscriber (one SSE connection)."""

    flt: EventFilter
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[dict[str, Any] | None]  # None: the stream is over (EventBus.end_streams)
    dropped: int = 0
    delivered: int = 0
    closed: bool = False
    _overflow_pending: bool = field(default=False, repr=False)

    def end(self) -> None:
        """Runs in the event loop: tell the consumer the stream is over (a ``None`` in the
        queue, room made for it if need be)."""
        self.closed = True
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    def offer(self, groups: list[EventGroup]) -> None:
        """Runs in the event loop: materialise what the filter selects, never block."""
        if self.closed:
            return
        for group in groups:
            if group.type not in self.flt.types:
                continue
            for event in group.events(self.flt):
                if self.queue.full():
                    self.dropped += 1
                    self._overflow_pending = True
                    continue
                if self._overflow_pending and self.queue.qsize() < self.queue.maxsize - 1:
                    self.queue.put_nowait(
                        {
                            "id": f"overflow:{self.dropped}",
                            "type": "overflow",
                            "at_ms": group.at_ms,
                            "at": iso(group.at_ms),
                            "data": {"dropped": self.dropped},
                        }
                    )
                    self._overflow_pending = False
                self.queue.put_nowait(event)
                self.delivered += 1


Listener = Callable[[list[EventGroup]], None]


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._listeners: list[Listener] = []
        self.published = 0

    def subscribe(
        self, flt: EventFilter, loop: asyncio.AbstractEventLoop, maxsize: int = 10_000
    ) -> Subscription:
        sub = Subscription(flt, loop, asyncio.Queue(maxsize=maxsize))
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def end_streams(self) -> None:
        """End every subscriber's stream (the server is stopping: an SSE response that never
        ends would hold the stop until its grace period runs out)."""
        with self._lock:
            subs, self._subs = list(self._subs), []
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub.end)
            except RuntimeError:  # the subscriber's loop is closed
                sub.closed = True

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def queue_lengths(self) -> list[int]:
        with self._lock:
            return [s.queue.qsize() for s in self._subs]

    def publish(self, groups: Iterable[EventGroup]) -> None:
        groups = list(groups)
        if not groups:
            return
        self.published += sum(g.count() for g in groups)
        with self._lock:
            subs = list(self._subs)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(groups)
        for sub in subs:
            wanted = [g for g in groups if g.type in sub.flt.types]
            if wanted:
                try:
                    sub.loop.call_soon_threadsafe(sub.offer, wanted)
                except RuntimeError:  # the subscriber's loop is closed
                    self.unsubscribe(sub)


def count_by_type(groups: Iterable[EventGroup]) -> dict[str, int]:
    out: dict[str, int] = {}
    for g in groups:
        out[g.type] = out.get(g.type, 0) + g.count()
    return out


__all__ = [
    "ALERT",
    "ALERT_CASE_EVENTS",
    "BATCH_ANCHORED",
    "BATCH_CLEARED",
    "BATCH_EVENTS",
    "BATCH_FINAL",
    "BATCH_RETRY_EVENTS",
    "BATCH_UNWOUND",
    "CASE_VERBS",
    "DEFAULT_STREAM_TYPES",
    "DEPRECATED_ALIASES",
    "ESCROW_EVENTS",
    "ESCROW_UPDATED",
    "EVENT_TYPES",
    "EXCEPTION_EVENTS",
    "PARTICIPANT_BATCH_KEYS",
    "STATS",
    "TRADE_EVENTS",
    "TRADE_SETTLED_MANUALLY",
    "WEBHOOK_EVENTS",
    "AlertEvent",
    "BatchEvent",
    "EventBus",
    "EventFilter",
    "EventGroup",
    "StatsEvent",
    "Subscription",
    "TradeEvents",
    "batch_event_type",
    "canonical_event_types",
    "case_event_type",
    "count_by_type",
    "iso",
]
