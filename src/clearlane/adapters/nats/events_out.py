"""The service's public events on NATS: ``clearlane serve --nats URL`` publishes every event of
the one vocabulary (node/events.py) that the runtime's event bus carries — batch and trade
events, ``escrow.*``, ``exception.*``, ``alert.*`` — to ``clearlane.events.<scope>.<type>``,
the subjects the bus workers publish their lifecycle events to (messages.py), captured by the
``CLEARLANE_EVENTS`` JetStream stream.

``<scope>`` is the pool for trade and batch events (``L1`` for a Layer-1 trade, ``none`` for a
trade rejected before it had a pool), like the workers'; events that belong to no pool use a
fixed token: ``escrow`` (``escrow.*``), ``cases`` (``exception.*``, as ``clearlane recon
--nats``), ``alerts`` (``alert.raised`` and the alert workflow's ``alert.*``), ``node``
(``stats``). The body is the event exactly as SSE sends it (``{"id", "type", "at_ms", "at",
"data"}``, operator view); ``Nats-Msg-Id`` is the event id, so JetStream drops a re-publish
inside its duplicate window.

Publishing never blocks or stops clearing: the bus listener (the runtime thread, right after a
commit) only appends the step's groups to a bounded inbox — a full inbox drops the step's events
and counts them — and a thread of its own, with its own asyncio loop, turns them into messages
and publishes them (pipelined JetStream publishes, acks awaited per step). It (re)connects with
exponential backoff; a step whose publish fails is retried, in order, after the backoff. When
publishing has failed for longer than ``alert_after_s`` one ``alert.raised``
(``nats_publish_failing``) goes through the alert callback; counters are exported as the
Prometheus metric ``clearlane_nats_events_total{outcome=published|dropped|failed}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from clearlane.adapters.nats.messages import EVENTS_STREAM, MSG_ID_HEADER, ensure_streams, event_subject
from clearlane.node.events import (
    ALERT,
    ALERT_CASE_EVENTS,
    ESCROW_EVENTS,
    EVENT_TYPES,
    EXCEPTION_EVENTS,
    STATS,
    TRADE_EVENTS,
    TRADE_SETTLED_MANUALLY,
    WEBHOOK_EVENTS,
    EventFilter,
    EventGroup,
)

log = logging.getLogger("clearlane.nats.events")

ESCROW_SCOPE = "escrow"
CASES_SCOPE = "cases"  # the token `clearlane recon --nats` has always used
ALERTS_SCOPE = "alerts"
NODE_SCOPE = "node"
NO_POOL_SCOPE = "none"
# What a serve publishes unless told otherwise: what webhooks carry, plus alert.raised, less the
# per-trade lifecycle events. One JetStream publish with its ack costs ~100 µs of Python
# (7,000-12,000 events/s on the loaded 2-core box, docs/PERFORMANCE.md), so trade.cleared and trade.final at
# 20,000 trades/s would fill the inbox and be dropped; ``--nats-types`` adds them (``all``: the
# whole vocabulary) where the trade rate allows.
PER_TRADE_TYPES = frozenset(t for t in TRADE_EVENTS if t not in ("trade.rejected", TRADE_SETTLED_MANUALLY))
DEFAULT_TYPES = frozenset((*WEBHOOK_EVENTS, ALERT)) - PER_TRADE_TYPES
_FIXED_SCOPES = {
    **{t: ESCROW_SCOPE for t in ESCROW_EVENTS},
    **{t: CASES_SCOPE for t in EXCEPTION_EVENTS},
    **{t: ALERTS_SCOPE for t in (ALERT, *ALERT_CASE_EVENTS)},
    STATS: NODE_SCOPE,
}

Message = tuple[str, str, bytes]  # (subject, Nats-Msg-Id, payload)


def event_types(names: Iterable[str] | None) -> frozenset[str]:
    """``--nats-types``: None → :data:`DEFAULT_TYPES`; ``all`` → the whole vocabulary; else the
    named types, each checked (a ValueError names the first unknown one)."""
    if names is None:
        return DEFAULT_TYPES
    chosen = [n.strip() for name in names for n in name.split(",") if n.strip()]
    if chosen == ["all"]:
        return frozenset(EVENT_TYPES)
    for name in chosen:
        if name not in EVENT_TYPES:
            raise ValueError(f"--nats-types: {name!r} is not an event type (or 'all')")
    return frozenset(chosen)


def scope_of(event: dict[str, Any]) -> str:
    """The ``<scope>`` token of an event's subject (see the module docstring)."""
    fixed = _FIXED_SCOPES.get(event["type"])
    if fixed is not None:
        return fixed
    data = event.get("data") or {}
    if data.get("lane") == "L1":
        return "L1"
    pool = data.get("pool")
    return str(pool) if pool else NO_POOL_SCOPE


def event_message(event: dict[str, Any]) -> Message:
    """One public event (as SSE sends it) → its NATS subject, message id and JSON body."""
    return event_subject(scope_of(event), event["type"]), str(event["id"]), orjson.dumps(event)


def messages_of(groups: Iterable[EventGroup], types: frozenset[str]) -> list[Message]:
    """The messages of a step's event groups, in order, operator view."""
    flt = EventFilter(types=types)
    return [event_message(e) for g in groups if g.type in types for e in g.events(flt)]


async def publish_messages(js: Any, messages: list[Message]) -> None:
    """Publish to the events stream, pipelined, and wait for every ack (raises on the first
    failure: the caller retries the whole list; JetStream drops the duplicates by message id)."""
    futures = [
        await js.publish_async(subject, payload, headers={MSG_ID_HEADER: msg_id}, stream=EVENTS_STREAM)
        for subject, msg_id, payload in messages
    ]
    for future in futures:
        await future


@dataclass(frozen=True)
class PublisherOptions:
    types: frozenset[str] = DEFAULT_TYPES
    max_pending: int = 100_000  # events waiting in the inbox before a step's are dropped
    backoff_s: float = 0.5  # first reconnect / retry wait, doubled up to max_backoff_s
    max_backoff_s: float = 30.0
    alert_after_s: float = 60.0  # publishing failing this long raises one alert
    ack_timeout_s: float = 10.0
    escrow_actions: bool = False  # also answer clearlane.escrow.actions (adapters/nats/escrow_in.py)


AlertSink = Callable[[str, str, str], None]  # (kind, severity, message)


class NatsEventPublisher:
    """The bus listener and its publishing thread (see the module docstring)."""

    def __init__(
        self,
        bus: Any,
        url: str,
        options: PublisherOptions | None = None,
        alert: AlertSink | None = None,
        subscriptions: tuple[tuple[str, str, Callable[[Any], Awaitable[None]]], ...] = (),
    ) -> None:
        self.bus = bus
        # (subject, queue group, callback): subscribed again on every (re)connection
        self.subscriptions = subscriptions
        self.url = url
        self.o = options or PublisherOptions()
        self.alert = alert
        self.published = 0
        self.dropped = 0
        self.failed = 0  # failed publish attempts (each retried)
        self.connected = False
        self.failing_since: float | None = None
        self.alerted = False
        self._lock = threading.Lock()
        self._inbox: deque[list[EventGroup]] = deque()
        self._pending = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None  # new events in the inbox
        self._halt: asyncio.Event | None = None  # stop asked
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ runtime side
    def on_groups(self, groups: list[EventGroup]) -> None:
        """Bus listener (the runtime thread, right after a commit): hand off, never block."""
        wanted = [g for g in groups if g.type in self.o.types]
        if not wanted:
            return
        n = sum(g.count() for g in wanted)
        with self._lock:
            if self._pending + n > self.o.max_pending:
                self.dropped += n
                return
            self._pending += n
            self._inbox.append(wanted)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the publisher's loop has closed (stopping)
                loop.call_soon_threadsafe(wake.set)

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        if self._thread is not None:
            return
        self.bus.add_listener(self.on_groups)
        self._thread = threading.Thread(target=self._run, name="clearlane-nats-events", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop listening; give the thread ``timeout_s`` to publish what is queued."""
        self.bus.remove_listener(self.on_groups)
        self._stop.set()
        loop, wake, halt = self._loop, self._wake, self._halt
        if loop is not None and wake is not None and halt is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
                loop.call_soon_threadsafe(halt.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    # ------------------------------------------------------------------ publishing thread
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._halt = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        backoff = self.o.backoff_s
        while not self._stop.is_set():
            nc = await self._connect()
            if nc is None:
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.o.max_backoff_s)
                continue
            backoff = self.o.backoff_s
            try:
                await self._drain(nc)
            finally:
                self.connected = False
                with contextlib.suppress(Exception):  # a broken connection may fail to close
                    await asyncio.wait_for(nc.close(), 2)

    async def _connect(self) -> Any:
        import nats

        try:
            nc = await nats.connect(
                self.url,
                connect_timeout=2,
                # No client-side reconnect: this loop reconnects with its own backoff. (The
                # client discards a server only after max_reconnect_attempts > 0 failures; 0
                # or -1 would retry a first connect to a dead server for ever.)
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                error_cb=_quiet,
                disconnected_cb=self._on_disconnect,
            )
            await ensure_streams(nc.jetstream(timeout=self.o.ack_timeout_s))
            for subject, queue, callback in self.subscriptions:
                await nc.subscribe(subject, queue=queue, cb=callback)
        except Exception as exc:  # any failure: count, log, back off (never raises into clearing)
            self._failure(f"connect to {self.url}: {type(exc).__name__}: {exc}")
            return None
        self.connected = True
        self._recovered()  # a failure from now on starts a new outage (and its own alert)
        log.info("publishing events to %s", self.url)
        return nc

    async def _drain(self, nc: Any) -> None:
        """Publish inbox steps in order until stopped; a failed step stays at the head."""
        js = nc.jetstream(timeout=self.o.ack_timeout_s)
        backoff = self.o.backoff_s
        while True:
            groups = self._head()
            if groups is None:
                if self._stop.is_set() or nc.is_closed:
                    return  # stopping, or the connection was lost: _main reconnects
                wake = self._wake
                if wake is None:  # set by _main before any _drain; never None here
                    return
                wake.clear()
                if self._head() is None and not self._stop.is_set():
                    await wake.wait()
                continue
            messages = messages_of(groups, self.o.types)
            try:
                await publish_messages(js, messages)
            except Exception as exc:  # not acked: retried after the backoff, in order
                self._failure(f"publish: {type(exc).__name__}: {exc}")
                if self._stop.is_set() or nc.is_closed:
                    return  # a lost connection: _main reconnects (with its backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.o.max_backoff_s)
                continue
            backoff = self.o.backoff_s
            self._pop(groups)
            self.published += len(messages)
            self._recovered()

    def _head(self) -> list[EventGroup] | None:
        with self._lock:
            return self._inbox[0] if self._inbox else None

    def _pop(self, groups: list[EventGroup]) -> None:
        with self._lock:
            self._inbox.popleft()
            self._pending -= sum(g.count() for g in groups)

    async def _sleep(self, seconds: float) -> None:
        """Back off, or less if a stop is asked (new events do not cut a backoff short)."""
        halt = self._halt
        if halt is None or self._stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(halt.wait(), seconds)

    # ------------------------------------------------------------------ health
    def _failure(self, what: str) -> None:
        self.failed += 1
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
            log.warning("NATS events: %s", what)
        if not self.alerted and now - self.failing_since >= self.o.alert_after_s:
            self.alerted = True
            seconds = f"{now - self.failing_since:.1f}"
            message = f"NATS event publishing to {self.url} failing for {seconds} s: {what}"
            if self.alert is not None:
                try:
                    self.alert("nats_publish_failing", "critical", message)
                except Exception:  # an alert that cannot be raised must not stop publishing
                    log.exception("raising the NATS alert failed")

    def _recovered(self) -> None:
        if self.failing_since is not None:
            log.warning("NATS events: publishing again to %s", self.url)
        self.failing_since = None
        self.alerted = False

    async def _on_disconnect(self) -> None:
        """The client (no reconnect of its own) lost the server: wake the drain to reconnect."""
        self.connected = False
        if self._wake is not None:
            self._wake.set()


async def _quiet(exc: Exception) -> None:
    """The client's error callback: failures are counted where they surface (publish, connect)."""
    log.debug("NATS client: %s", exc)


class PublisherCollector(Collector):
    """``clearlane_nats_events_total{outcome}`` and ``clearlane_nats_events_pending``."""

    def __init__(self, publisher: NatsEventPublisher) -> None:
        self.p = publisher

    def collect(self) -> Iterator[Any]:
        total = CounterMetricFamily(
            "clearlane_nats_events",
            "Public events for NATS: published (acked), dropped (inbox full), failed (publish attempts)",
            labels=["outcome"],
        )
        for outcome, value in (
            ("published", self.p.published),
            ("dropped", self.p.dropped),
            ("failed", self.p.failed),
        ):
            total.add_metric([outcome], value)
        yield total
        yield GaugeMetricFamily(
            "clearlane_nats_events_pending", "Events waiting to be published to NATS", value=self.p.pending
        )
        yield GaugeMetricFamily(
            "clearlane_nats_connected",
            "1 while the event publisher is connected to NATS",
            value=int(self.p.connected),
        )
