"""Webhooks: signed, retried, at-least-once delivery of lifecycle events to registered endpoints.

Events: ``trade.cleared`` (L2 soft finality), ``trade.final`` (base-layer finality),
``trade.rejected``, ``batch.cleared``, ``batch.anchored``, ``batch.final``, ``batch.unwound``
(node/events.py: ``batch.closed`` is accepted as a deprecated alias of ``batch.cleared``).
An endpoint (registered by an operator) chooses its events and may be restricted to one
participant or one pool. An endpoint restricted to a participant is that participant's: it gets
the participant's own trades and batch events without the batch's volume (no ``flows``,
``gross_usd``, ``net_usd``: node/events.py ``PARTICIPANT_BATCH_KEYS``).

Targets: ``https`` to a public address unless allow-listed (:mod:`clearlane.adapters.http.targets`),
checked at registration (a refused or malformed URL is a 422, code 613) and again before each
delivery, which connects to the address it checked.

At least once: after every committed step, the step's events for each matching endpoint are
written to ``webhook_deliveries`` (unique per endpoint and event id) together with the step's
sequence number as the high-water mark ``webhooks_seq``. After a crash, the runtime replays the
log; the events of steps past the mark are derived again — with the same ids, the log is
deterministic — and written again (duplicates are ignored). A delivery is retried with
exponential backoff until the endpoint answers 2xx or ``max_attempts`` is reached; every attempt
is logged (``webhook_attempts``). Receivers de-duplicate on ``Clearlane-Webhook-Id``.

Management (issue 17): ``PATCH`` an endpoint (url, events, description, active), rotate its
secret with an overlap window (both secrets sign meanwhile), send a ``webhook.test`` ping,
redeliver a past delivery (same id and bytes, a fresh retry schedule). Trade events carry the
trade (:func:`trade_snapshot`: state, decimal amounts with their assets, both finality times,
the badge). One clock per subject, labelled: the event on the engine clock (body
``engine_time``; the delivery log shows the same value), delivery attempts on the wall clock
(the timestamp header; the log's ``*_wall`` fields). docs/API.md, "Webhooks".

Request (``POST``, ``content-type: application/json``), body ``{"id", "type", "engine_time",
"created_at" (the same engine time, its older name), "data"}``, headers:

* ``Clearlane-Webhook-Id`` — the event id (same on every retry: the idempotency key);
* ``Clearlane-Webhook-Event`` — the event type;
* ``Clearlane-Webhook-Timestamp`` — Unix seconds of this attempt;
* ``Clearlane-Webhook-Attempt`` — 1, 2, ...;
* ``Clearlane-Webhook-Signature`` — ``v1=`` + hex HMAC-SHA256 of ``<timestamp>.<body>`` under the
  endpoint's secret; during a rotation's overlap ``v1=<new>,v1=<old>``. Verify with
  :func:`verify_signature` (constant-time, any listed signature, with a tolerance on the
  timestamp against replays).
"""

import asyncio
import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from clearlane.adapters.http import schemas as sc
from clearlane.adapters.http import views
from clearlane.adapters.http.auth import OPERATOR
from clearlane.adapters.http.common import READERS, REVALIDATE, Operator, Reader, cached, roles_doc
from clearlane.adapters.http.problems import Problem, ServiceCode, bad_parameter, not_found
from clearlane.adapters.http.targets import Resolver, TargetPolicy, TargetRefused, system_resolver
from clearlane.adapters.http.views import decode_cursor, encode_cursor
from clearlane.adapters.sql import webhooks as sql_webhooks
from clearlane.core.money import format_minor
from clearlane.node.events import (
    DEPRECATED_ALIASES,
    WEBHOOK_EVENTS,
    EventFilter,
    EventGroup,
    canonical_event_types,
    iso,
)
from clearlane.node.projections.common import NBINS, hist
from clearlane.node.report import trade_lifecycle

if TYPE_CHECKING:
    from clearlane.node.runtime import Runtime

log = logging.getLogger("clearlane.webhooks")

HEADER_ID = "Clearlane-Webhook-Id"
HEADER_EVENT = "Clearlane-Webhook-Event"
HEADER_TIMESTAMP = "Clearlane-Webhook-Timestamp"
HEADER_ATTEMPT = "Clearlane-Webhook-Attempt"
HEADER_SIGNATURE = "Clearlane-Webhook-Signature"
HWM_KEY = "webhooks_seq"
TEST_EVENT = "webhook.test"  # sent by POST /v1/webhooks/{id}/test, whatever the endpoint chose
OVERLAP_DEFAULT_S = 86_400
OVERLAP_MAX_S = 7 * 86_400
SNAPSHOT_KEYS = (
    "state",
    "final",
    "base",
    "quote",
    "quantity",
    "quote_amount",
    "lane",
    "pool",
    "batch_id",
    "executed_at",
    "l2_cleared_at",
    "l1_final_at",
    "badge",
)


class SnapshotSource(views.LifecycleSource):
    """The read model's lifecycle source with the batch and L1-group rows remembered: the trades
    of one delivery round share a few batches, each read from the store once, not per trade."""

    def __init__(self, runtime: "Runtime") -> None:
        super().__init__(runtime.rm)
        self._lock = runtime.lock
        self._rows: dict[tuple[str, str], dict[str, Any] | None] = {}

    def find_trade(self, flow_id: str) -> dict[str, Any] | None:
        # Only the read model needs the runtime's lock (the store is read on its own
        # connection): the clearing loop waits for one lookup, not for a whole lifecycle.
        with self._lock:
            return super().find_trade(flow_id)

    def _once(self, kind: str, key: str, read: Any) -> dict[str, Any] | None:
        if (kind, key) not in self._rows:
            self._rows[(kind, key)] = read(key)
        return self._rows[(kind, key)]

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        return self._once("batch", batch_id, super().batch)

    def l1_group(self, group_id: str) -> dict[str, Any] | None:
        return self._once("l1", group_id, super().l1_group)

    def l1_group_for_batch(self, batch_id: str) -> dict[str, Any] | None:
        return self._once("l1b", batch_id, super().l1_group_for_batch)


def trade_snapshot(
    runtime: "Runtime", trade_id: str, kind: str, source: SnapshotSource | None = None
) -> dict[str, Any] | None:
    """The trade a trade event names, as it is when its delivery is written: state, amounts
    (decimal strings; the asset codes beside them), both finality times on the engine clock,
    the badge. None if the read model does not know it."""
    src = source if source is not None else SnapshotSource(runtime)
    with runtime.lock:
        known = runtime.rm.find(trade_id, kind=1 if kind == "payment" else 0) is not None
    life = trade_lifecycle(src, trade_id) if known else None
    if life is None:
        return None
    scales = {a.code: a.scale for a in runtime.config.assets}
    out = {k: life.get(k) for k in SNAPSHOT_KEYS}
    out["state"] = str(life["state"])
    out["final"] = life["state"] in ("final", "rejected") or (
        life["state"] == "unwound" and life["l1_final_at"] is not None
    )
    out["quantity"] = format_minor(int(life["qty_minor"]), scales.get(life["base"], 0))
    out["quote_amount"] = format_minor(int(life["quote_minor"]), scales.get(life["quote"], 0))
    return out


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signature_header(secrets_: list[str], timestamp: int, body: bytes) -> str:
    """The signature header's value: one ``v1=`` signature per signing secret, comma-separated
    (two during a rotation's overlap window: the new secret's first)."""
    return ",".join(sign(secret, timestamp, body) for secret in secrets_)


def verify_signature(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """True if ``body`` was signed by clearlane with ``secret`` within ``tolerance_s`` seconds."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(lowered[HEADER_TIMESTAMP.lower()])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    offered = lowered.get(HEADER_SIGNATURE.lower(), "")
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in offered.split(","))


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    secret: str
    events: frozenset[str]
    participant: str | None
    pool: str | None
    description: str
    active: bool
    created_ms: int
    previous_secret: str | None = None  # still signs, beside ``secret``, until previous_until_ms
    previous_until_ms: int | None = None

    def secrets_at(self, now_ms: int) -> list[str]:
        """The secrets that sign a request sent at ``now_ms``: the current one first, then the
        previous one while its overlap window lasts."""
        old = self.previous_secret
        if old is not None and self.previous_until_ms is not None and now_ms < self.previous_until_ms:
            return [self.secret, old]
        return [self.secret]

    def view(self, with_secret: bool = False) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": sorted(self.events),
            "participant": self.participant,
            "pool": self.pool,
            "description": self.description,
            "active": self.active,
            "created_at_wall": iso(self.created_ms),
            "created_at": iso(self.created_ms),  # the same wall time, its older name
            "secret": self.secret if with_secret else None,
            "previous_secret_expires_at_wall": iso(self.previous_until_ms)
            if self.previous_secret is not None
            else None,
        }


@dataclass
class WebhookOptions:
    max_attempts: int = 10
    backoff_base_s: float = 1.0
    backoff_max_s: float = 600.0
    timeout_s: float = 5.0
    workers: int = 4
    poll_s: float = 0.05
    # Hosts, addresses or networks a webhook may reach over plain http and at non-public
    # addresses (local development, internal receivers): targets.TargetPolicy.
    allow: tuple[str, ...] = ()
    resolver: Resolver | None = None  # how host names resolve (tests: a fixed answer)


class WebhookService:
    """Endpoint registry, enqueuer (bus listener) and delivery workers."""

    def __init__(self, runtime: "Runtime", options: WebhookOptions | None = None) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.options = options or WebhookOptions()
        self._endpoints: dict[str, Endpoint] = {}
        self._lock = threading.Lock()
        self._inbox: queue.SimpleQueue[tuple[int, list[EventGroup]] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self.lag_counts = np.zeros(NBINS, dtype=np.int64)
        self.lag_sum_s = 0.0
        self.outcomes: dict[str, int] = {}
        self.policy = TargetPolicy(tuple(self.options.allow), self.options.resolver or system_resolver)
        self._load()
        runtime.extra_queues["webhook_pending"] = self.pending_count

    # ------------------------------------------------------------------ registry
    def _load(self) -> None:
        rows = sql_webhooks.load_endpoints(self.store)
        with self._lock:
            self._endpoints = {r["endpoint_id"]: self._endpoint(r) for r in rows}

    @staticmethod
    def _endpoint(r: Mapping[str, Any]) -> Endpoint:
        return Endpoint(
            r["endpoint_id"],
            r["url"],
            r["secret"],
            canonical_event_types(json.loads(r["events"])),  # rows may name deprecated aliases
            r["participant"],
            r["pool"],
            r["description"] or "",
            bool(r["active"]),
            int(r["created_ms"]),
            r.get("previous_secret"),
            None if r.get("previous_secret_until_ms") is None else int(r["previous_secret_until_ms"]),
        )

    def endpoints(self) -> list[Endpoint]:
        with self._lock:
            return sorted(self._endpoints.values(), key=lambda e: (e.created_ms, e.id))

    def get(self, endpoint_id: str) -> Endpoint | None:
        with self._lock:
            return self._endpoints.get(endpoint_id)

    def create(
        self, url: str, events: list[str], participant: str | None, pool: str | None, description: str
    ) -> Endpoint:
        events = sorted(canonical_event_types(events))  # a deprecated alias is stored as what it means
        endpoint = Endpoint(
            "wh_" + secrets.token_hex(8),
            url,
            "whsec_" + secrets.token_urlsafe(32),
            frozenset(events),
            participant,
            pool,
            description,
            True,
            int(time.time() * 1000),
        )
        sql_webhooks.insert_endpoint(
            self.store,
            {
                "endpoint_id": endpoint.id,
                "url": url,
                "secret": endpoint.secret,
                "events": json.dumps(sorted(events)),
                "participant": participant,
                "pool": pool,
                "description": description,
                "active": True,
                "created_ms": endpoint.created_ms,
            },
            mark_key=HWM_KEY,
            mark_start=self.runtime.rm.applied_seq,
        )
        with self._lock:
            self._endpoints[endpoint.id] = endpoint
        return endpoint

    def delete(self, endpoint_id: str) -> bool:
        done = sql_webhooks.deactivate_endpoint(self.store, endpoint_id)
        with self._lock:
            old = self._endpoints.get(endpoint_id)
            if old is not None:
                self._endpoints[endpoint_id] = Endpoint(**{**old.__dict__, "active": False})
        return bool(done)

    def _store_update(self, endpoint_id: str, values: dict[str, Any]) -> Endpoint | None:
        row = sql_webhooks.update_endpoint(self.store, endpoint_id, values)
        if row is None:
            return None
        endpoint = self._endpoint(row)
        with self._lock:
            self._endpoints[endpoint.id] = endpoint
        return endpoint

    def update(self, endpoint_id: str, changes: Mapping[str, Any]) -> Endpoint | None:
        """Change url, events, description or active (None: no such endpoint). Its scope
        (participant, pool) is fixed: a different scope is a different endpoint."""
        values = {k: v for k, v in changes.items() if k in ("url", "description", "active")}
        if "events" in changes:
            values["events"] = json.dumps(sorted(canonical_event_types(changes["events"])))
        return self._store_update(endpoint_id, values)

    def rotate_secret(self, endpoint_id: str, overlap_s: int) -> Endpoint | None:
        """A new secret; the old one keeps signing (beside it) for ``overlap_s`` seconds."""
        current = self.get(endpoint_id)
        if current is None:
            return None
        now_ms = int(time.time() * 1000)
        return self._store_update(
            endpoint_id,
            {
                "secret": "whsec_" + secrets.token_urlsafe(32),
                "previous_secret": current.secret if overlap_s > 0 else None,
                "previous_secret_until_ms": now_ms + overlap_s * 1000 if overlap_s > 0 else None,
            },
        )

    def redeliver(self, endpoint_id: str, delivery_id: int) -> dict[str, Any] | None:
        """Send a past delivery again (same event id and body, a fresh retry schedule)."""
        if not sql_webhooks.redeliver(self.store, endpoint_id, delivery_id, int(time.time() * 1000)):
            return None
        self._wake.set()
        row = sql_webhooks.get_delivery(self.store, endpoint_id, delivery_id)
        return None if row is None else self._delivery_view(row)

    def ping(self, endpoint: Endpoint) -> dict[str, Any]:
        """A ``webhook.test`` delivery to ``endpoint``, signed and retried like any other."""
        now_ms = int(time.time() * 1000)
        engine_ms = self.runtime.queries.engine_time_ms()
        event_id = "evt_test_" + secrets.token_hex(8)
        body = {
            "id": event_id,
            "type": TEST_EVENT,
            "engine_time": iso(engine_ms),
            "created_at": iso(engine_ms),
            "data": {"endpoint_id": endpoint.id, "message": "a test delivery from clearlane"},
        }
        row = {
            "endpoint_id": endpoint.id,
            "event_id": event_id,
            "event_type": TEST_EVENT,
            "log_seq": self.runtime.rm.applied_seq,
            "payload": json.dumps(body, separators=(",", ":")).encode(),
            "created_ms": now_ms,
            "status": "pending",
            "attempts": 0,
            "next_attempt_ms": now_ms,
        }
        delivery_id = sql_webhooks.insert_delivery(self.store, row)
        self._wake.set()
        stored = sql_webhooks.get_delivery(self.store, endpoint.id, delivery_id)
        return self._delivery_view(stored if stored is not None else {**row, "id": delivery_id})

    # ------------------------------------------------------------------ enqueue
    def start(self) -> None:
        if self._threads:
            return
        self.runtime.bus.add_listener(self._on_groups)
        for seq, groups in self.runtime.replay_tail:
            self._inbox.put((seq, groups))
        self.runtime.replay_tail = []
        self._pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="clearlane-webhook")
        for target, name in (
            (self._enqueue_loop, "clearlane-webhook-enqueue"),
            (self._deliver_loop, "clearlane-webhook-deliver"),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.runtime.bus.remove_listener(self._on_groups)
        self._stop.set()
        self._wake.set()
        self._inbox.put(None)
        for t in self._threads:
            t.join(10)
        self._threads = []
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _on_groups(self, groups: list[EventGroup]) -> None:
        """Bus listener (runs in the runtime thread right after a commit): hand off, never block."""
        wanted = [g for g in groups if g.type in WEBHOOK_EVENTS]
        if wanted:
            self._inbox.put((max(g.seq for g in wanted), wanted))

    def _enqueue_loop(self) -> None:
        while not self._stop.is_set():
            item = self._inbox.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < 256:
                try:
                    nxt = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._stop.set()
                    break
                batch.append(nxt)
            try:
                self._persist(batch)
            except Exception:  # keep going; the mark was not advanced, a restart re-derives
                log.exception("webhook enqueue failed")
            self._wake.set()

    def _persist(self, batch: list[tuple[int, list[EventGroup]]]) -> None:
        endpoints = [e for e in self.endpoints() if e.active]
        now = int(time.time() * 1000)
        rows: list[dict[str, Any]] = []
        trades: dict[tuple[str, str], dict[str, Any] | None] = {}  # one lookup per trade, all endpoints
        source = SnapshotSource(self.runtime)  # each batch row read once per round
        for _seq, groups in batch:
            for ep in endpoints:
                # An endpoint bound to a participant is that participant's: its own figures only.
                flt = EventFilter(
                    ep.events, ep.participant, ep.pool, own_figures_only=ep.participant is not None
                )
                for group in groups:
                    if group.type not in ep.events:
                        continue
                    for event in group.events(flt):
                        body = {
                            "id": event["id"],
                            "type": event["type"],
                            "engine_time": event["at"],
                            "created_at": event["at"],  # the same engine time, its older name
                            "data": self._enriched(event, trades, source),
                        }
                        rows.append(
                            {
                                "endpoint_id": ep.id,
                                "event_id": event["id"],
                                "event_type": event["type"],
                                "log_seq": group.seq,
                                "payload": json.dumps(body, separators=(",", ":")).encode(),
                                "created_ms": now,
                                "status": "pending",
                                "attempts": 0,
                                "next_attempt_ms": now,
                            }
                        )
        top = max(seq for seq, _ in batch)
        sql_webhooks.enqueue_deliveries(self.store, rows, mark_key=HWM_KEY, upto_seq=top)

    def _enriched(
        self,
        event: Mapping[str, Any],
        trades: dict[tuple[str, str], dict[str, Any] | None],
        source: "SnapshotSource",
    ) -> Any:
        """A trade event's data with the trade itself (state, amounts, both finality times, the
        badge), so a receiver needs no follow-up GET; other events' data as they are."""
        data = event["data"]
        if not event["type"].startswith("trade.") or not isinstance(data, dict):
            return data
        key = (str(data.get("trade_id")), str(data.get("kind") or "trade"))
        if key not in trades:
            trades[key] = trade_snapshot(self.runtime, *key, source=source)
        return {**data, "trade": trades[key]}

    # ------------------------------------------------------------------ deliver
    def _deliver_loop(self) -> None:
        with httpx.Client(timeout=self.options.timeout_s, follow_redirects=False) as client:
            while not self._stop.is_set():
                due = sql_webhooks.due_deliveries(self.store, int(time.time() * 1000))
                if not due:
                    self._wake.wait(self.options.poll_s)
                    self._wake.clear()
                    continue
                pool = self._pool
                if pool is None:
                    return
                try:
                    list(pool.map(lambda row: self._attempt(client, row), due))
                except RuntimeError:  # the pool was shut down: stopping
                    return
                except Exception as exc:  # the store refused a write: keep delivering the rest
                    log.error("webhook delivery round failed: %s: %s", type(exc).__name__, exc)
                    self._wake.wait(self.options.poll_s)

    def _attempt(self, client: httpx.Client, row: dict[str, Any]) -> None:
        ep = self.get(row["endpoint_id"])
        now_ms = int(time.time() * 1000)
        if ep is None or not ep.active:
            self._finish(row, "failed", None, "endpoint deleted", 0.0, now_ms)
            return
        body = bytes(row["payload"])
        attempt = int(row["attempts"]) + 1
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            HEADER_ID: row["event_id"],
            HEADER_EVENT: row["event_type"],
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_ATTEMPT: str(attempt),
            HEADER_SIGNATURE: signature_header(ep.secrets_at(now_ms), timestamp, body),
            "user-agent": "clearlane-webhooks/1",
        }
        started = time.perf_counter()
        status, error = self._post(client, ep.url, body, headers)
        duration = (time.perf_counter() - started) * 1000
        done_ms = int(time.time() * 1000)
        if error is None:
            self._finish(row, "delivered", status, None, duration, done_ms)
            lag = max(0, done_ms - int(row["created_ms"]))
            with self._lock:
                self.lag_counts += hist(np.array([lag]))
                self.lag_sum_s += lag / 1000
                self.outcomes["delivered"] = self.outcomes.get("delivered", 0) + 1
            return
        final = attempt >= self.options.max_attempts
        delay = min(self.options.backoff_max_s, self.options.backoff_base_s * 2 ** (attempt - 1))
        self._finish(
            row,
            "failed" if final else "pending",
            status,
            error,
            duration,
            done_ms,
            next_ms=done_ms + int(delay * 1000),
        )
        with self._lock:
            key = "failed" if final else "retry"
            self.outcomes[key] = self.outcomes.get(key, 0) + 1

    def _post(
        self, client: httpx.Client, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """One delivery attempt: (HTTP status, error). The target is checked again now and the
        request goes to the address checked (DNS rebinding); nothing here raises — a malformed
        URL stored before the policy existed is a failed attempt with its reason, not a traceback."""
        try:
            target = self.policy.check(url)
            extensions = {"sni_hostname": target.server_name} if target.server_name else None
            resp = client.post(
                target.url,
                content=body,
                headers={**headers, "host": target.host_header},
                extensions=extensions,
            )
        except TargetRefused as exc:
            return None, f"target refused: {exc.reason}"[:500]
        except Exception as exc:  # httpx errors, and an URL httpx cannot use (InvalidURL, ...)
            return None, f"{type(exc).__name__}: {exc}"[:500]
        status = resp.status_code
        return status, None if 200 <= status < 300 else f"HTTP {status}"

    def _finish(
        self,
        row: dict[str, Any],
        status: str,
        code: int | None,
        error: str | None,
        duration_ms: float,
        at_ms: int,
        next_ms: int | None = None,
    ) -> None:
        sql_webhooks.record_attempt(
            self.store,
            int(row["id"]),
            status=status,
            code=code,
            error=error,
            duration_ms=duration_ms,
            at_ms=at_ms,
            next_ms=next_ms if next_ms is not None else at_ms,
        )

    # ------------------------------------------------------------------ reads
    def pending_count(self) -> int:
        return sql_webhooks.pending_count(self.store)

    def metrics_snapshot(self) -> tuple[np.ndarray[Any, Any], float, dict[str, int]]:
        with self._lock:
            return self.lag_counts.copy(), self.lag_sum_s, dict(self.outcomes)

    def deliveries(
        self, endpoint_id: str, *, limit: int, before_id: int | None, status: str | None
    ) -> list[dict[str, Any]]:
        rows = sql_webhooks.list_deliveries(
            self.store, endpoint_id, limit=limit, before_id=before_id, status=status
        )
        return [self._delivery_view(r) for r in rows]

    @staticmethod
    def _delivery_view(r: Mapping[str, Any]) -> dict[str, Any]:
        """A delivery: ``engine_time`` is the event's time on the engine clock (the body's
        ``engine_time``); the ``*_wall`` times are this server's wall clock (when the delivery
        was written, is next due, was delivered)."""
        try:
            engine_time = json.loads(bytes(r["payload"])).get("engine_time")
        except (ValueError, AttributeError):
            engine_time = None
        delivered = r.get("delivered_ms")
        return {
            "id": int(r["id"]),
            "event_id": r["event_id"],
            "event_type": r["event_type"],
            "status": r["status"],
            "attempts": int(r["attempts"]),
            "engine_time": engine_time,
            "created_at_wall": iso(int(r["created_ms"])),
            "next_attempt_at_wall": iso(int(r["next_attempt_ms"])) if r["status"] == "pending" else None,
            "delivered_at_wall": iso(int(delivered)) if delivered is not None else None,
            "last_status": r.get("last_status"),
            "last_error": r.get("last_error"),
        }

    # ------------------------------------------------------------------ routes
    def routes(self, app: FastAPI) -> None:
        """An ``extra_routers`` entry for :func:`clearlane.adapters.http.app.create_app`: the routes
        below, answered by this service (``app.state.webhooks``)."""
        app.state.webhooks = self
        app.include_router(router)


def webhooks_of(request: Request) -> WebhookService:
    return request.app.state.webhooks  # type: ignore[no-any-return]


HooksDep = Annotated[WebhookService, Depends(webhooks_of)]
router = APIRouter(tags=["webhooks"])


@router.post("/v1/webhooks", response_model=sc.WebhookOut, status_code=201, openapi_extra=roles_doc(OPERATOR))
async def create_webhook(body: sc.WebhookIn, principal: Operator, hooks: HooksDep) -> Response:
    config = hooks.runtime.config
    if body.participant is not None and body.participant not in config.participant_index():
        raise Problem.service(
            ServiceCode.BAD_BODY,
            422,
            f"participant {body.participant!r} is not configured",
            field="participant",
            reason="unknown participant",
        )
    pools = {p.id for p in config.pools} | {"L1"}
    if body.pool is not None and body.pool not in pools:
        raise Problem.service(
            ServiceCode.BAD_BODY,
            422,
            f"pool {body.pool!r} is not configured",
            field="pool",
            reason="unknown pool",
        )
    await _checked_url(hooks, body.url)
    ep = hooks.create(body.url, list(body.events), body.participant, body.pool, body.description)
    return JSONResponse(
        ep.view(with_secret=True), status_code=201, headers={"Location": f"/v1/webhooks/{ep.id}"}
    )


class WebhookPatch(BaseModel):
    """What ``PATCH /v1/webhooks/{id}`` may change (absent: unchanged)."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$", max_length=2048)
    events: list[str] | None = Field(default=None, min_length=1, description="As in registration.")
    description: str | None = Field(default=None, max_length=500)
    active: bool | None = None

    @field_validator("events")
    @classmethod
    def _known(cls, names: list[str] | None) -> list[str] | None:
        # The names registration accepts: the webhook events and their deprecated aliases.
        for name in names or ():
            if name not in WEBHOOK_EVENTS and name not in DEPRECATED_ALIASES:
                raise ValueError(f"unknown event type {name!r}")
        return names


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_s: int = Field(
        default=OVERLAP_DEFAULT_S,
        ge=0,
        le=OVERLAP_MAX_S,
        description="How long the old secret keeps signing beside the new one (0: stops at once).",
    )


async def _checked_url(hooks: WebhookService, url: str) -> None:
    try:
        await asyncio.to_thread(hooks.policy.check, url)  # resolves the host: off the loop
    except TargetRefused as exc:
        raise Problem.service(
            ServiceCode.BAD_WEBHOOK_URL, 422, f"url: {exc.reason}", field="url", reason=exc.reason
        ) from None


@router.patch("/v1/webhooks/{endpoint_id}", response_model=sc.WebhookOut, openapi_extra=roles_doc(OPERATOR))
async def update_webhook(
    endpoint_id: str, body: WebhookPatch, principal: Operator, hooks: HooksDep
) -> Response:
    if hooks.get(endpoint_id) is None:
        raise not_found(f"webhook {endpoint_id!r}")
    if body.url is not None:
        await _checked_url(hooks, body.url)
    changes = body.model_dump(exclude_none=True)
    ep = await asyncio.to_thread(hooks.update, endpoint_id, changes)
    if ep is None:
        raise not_found(f"webhook {endpoint_id!r}")
    return JSONResponse(ep.view())


@router.post(
    "/v1/webhooks/{endpoint_id}/rotate-secret",
    response_model=sc.WebhookOut,
    openapi_extra=roles_doc(OPERATOR),
)
async def rotate_webhook_secret(
    endpoint_id: str, principal: Operator, hooks: HooksDep, body: RotateIn | None = None
) -> Response:
    overlap = (body or RotateIn()).overlap_s
    ep = await asyncio.to_thread(hooks.rotate_secret, endpoint_id, overlap)
    if ep is None:
        raise not_found(f"webhook {endpoint_id!r}")
    return JSONResponse(ep.view(with_secret=True))


@router.post(
    "/v1/webhooks/{endpoint_id}/test",
    response_model=sc.DeliveryOut,
    status_code=202,
    openapi_extra=roles_doc(OPERATOR),
)
async def test_webhook(endpoint_id: str, principal: Operator, hooks: HooksDep) -> Response:
    ep = hooks.get(endpoint_id)
    if ep is None:
        raise not_found(f"webhook {endpoint_id!r}")
    if not ep.active:
        raise Problem.service(
            ServiceCode.BAD_BODY, 422, "the endpoint is not active", field="active", reason="inactive"
        )
    return JSONResponse(await asyncio.to_thread(hooks.ping, ep), status_code=202)


@router.post(
    "/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    response_model=sc.DeliveryOut,
    status_code=202,
    openapi_extra=roles_doc(OPERATOR),
)
async def redeliver(endpoint_id: str, delivery_id: int, principal: Operator, hooks: HooksDep) -> Response:
    ep = hooks.get(endpoint_id)
    if ep is None:
        raise not_found(f"webhook {endpoint_id!r}")
    if not ep.active:
        raise Problem.service(
            ServiceCode.BAD_BODY, 422, "the endpoint is not active", field="active", reason="inactive"
        )
    view = await asyncio.to_thread(hooks.redeliver, endpoint_id, delivery_id)
    if view is None:
        raise not_found(f"delivery {delivery_id} of webhook {endpoint_id!r}")
    return JSONResponse(view, status_code=202)


@router.get("/v1/webhooks", response_model=sc.WebhookList, openapi_extra=roles_doc(*READERS))
async def list_webhooks(request: Request, principal: Reader, hooks: HooksDep) -> Response:
    return cached(
        request,
        sc.WebhookList,
        {"items": [e.view() for e in hooks.endpoints()]},
        cache_control=REVALIDATE,
    )


@router.get("/v1/webhooks/{endpoint_id}", response_model=sc.WebhookOut, openapi_extra=roles_doc(*READERS))
async def get_webhook(request: Request, endpoint_id: str, principal: Reader, hooks: HooksDep) -> Response:
    ep = hooks.get(endpoint_id)
    if ep is None:
        raise not_found(f"webhook {endpoint_id!r}")
    return cached(request, sc.WebhookOut, ep.view(), cache_control=REVALIDATE)


@router.delete(
    "/v1/webhooks/{endpoint_id}",
    status_code=204,
    openapi_extra=roles_doc(OPERATOR),
    response_class=Response,
)
async def delete_webhook(endpoint_id: str, principal: Operator, hooks: HooksDep) -> Response:
    if not hooks.delete(endpoint_id):
        raise not_found(f"webhook {endpoint_id!r}")
    return Response(status_code=204)


@router.get(
    "/v1/webhooks/{endpoint_id}/deliveries",
    response_model=sc.DeliveryPage,
    openapi_extra=roles_doc(*READERS),
)
async def list_deliveries(
    request: Request,
    endpoint_id: str,
    principal: Reader,
    hooks: HooksDep,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=200),
    status: str | None = None,
) -> Response:
    if hooks.get(endpoint_id) is None:
        raise not_found(f"webhook {endpoint_id!r}")
    if status is not None and status not in ("pending", "delivered", "failed"):
        raise bad_parameter("status", "pending, delivered or failed")
    pos = decode_cursor(cursor, "b")
    items = hooks.deliveries(
        endpoint_id, limit=limit + 1, before_id=None if pos is None else pos["b"], status=status
    )
    more = len(items) > limit
    items = items[:limit]
    page = {
        "items": items,
        "next_cursor": encode_cursor(b=items[-1]["id"]) if more and items else None,
    }
    return cached(request, sc.DeliveryPage, page, cache_control=REVALIDATE)
