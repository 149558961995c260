"""Prometheus metrics at ``/metrics`` (text exposition format, checked with ``promtool``).

Not public: the figures include every pool's gross and net volume. A scrape presents an operator
or auditor key, or the service's scrape token (``clearlane serve --metrics-token-file``, or the
``CLEARLANE_METRICS_TOKEN`` environment variable) as ``Authorization: Bearer <token>``
(docs/API.md has a Prometheus scrape config).

The figures are not counted per trade in Python: a custom collector reads the read model's
columnar histograms and counters at scrape time, so 20,000 trades/s cost nothing here.

* ``clearlane_hop_latency_seconds{lane,pool,hop}`` — histogram per hop: received→routed
  (HTTP receipt to durable commit), batched→cleared, cleared→anchored, submitted→anchored
  (L1), anchored→final, received→final;
* ``clearlane_queue_length{queue}`` — intake rows, open batch sizes, anchor backlog, L1
  pending, stream and webhook queues;
* ``clearlane_batch_size_flows{pool}`` — histogram of flows per closed batch;
* ``clearlane_netting_efficiency_ratio{pool}``, ``clearlane_gross_settlement_usd{pool}``,
  ``clearlane_net_settlement_usd{pool}``;
* ``clearlane_trades{lane,pool,state}`` — trades currently in each state;
* ``clearlane_rejects_total{code,source}`` — refused at the edge (``api``) or by the engine;
* ``clearlane_webhook_delivery_lag_seconds`` — histogram, event commit to successful delivery;
  ``clearlane_webhook_deliveries_total{outcome}``;
* ``clearlane_runtime_loop_seconds_total{kind}`` (busy, cpu, trim) and
  ``clearlane_runtime_steps_total{kind}`` (trades, all) — the clearing loop's time and steps;
  ``clearlane_runtime_step_seconds{kind}`` — histogram of a step's wall time (trades, tick,
  poll): a window ending while a step runs waits for it;
* ``clearlane_block_height``, ``clearlane_applied_seq``, ``clearlane_stream_subscribers``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from clearlane.adapters.http.auth import token_from
from clearlane.adapters.http.common import READERS, ServiceOptions, allow, authenticate, roles_doc
from clearlane.core.model.codes import RejectCode
from clearlane.node.projections.common import BATCH_SIZE_EDGES, HOPS, LATENCY_EDGES_MS, STATE_KEYS
from clearlane.node.runtime import STEP_SECONDS_EDGES

if TYPE_CHECKING:
    from clearlane.adapters.http.webhooks import WebhookService
    from clearlane.node.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
L2_HOPS = ("received_routed", "batched_cleared", "cleared_anchored", "anchored_final", "received_final")
L1_HOPS = ("received_routed", "submitted_anchored", "anchored_final", "received_final")


def _buckets(
    counts: np.ndarray[Any, Any], edges: np.ndarray[Any, Any], scale: float
) -> list[tuple[str, float]]:
    cum = np.cumsum(counts)
    out = [(repr(float(edge) * scale), float(c)) for edge, c in zip(edges, cum[:-1], strict=True)]
    out.append(("+Inf", float(cum[-1])))
    return out


def _sum_estimate(counts: np.ndarray[Any, Any], edges: np.ndarray[Any, Any]) -> float:
    """Histogram sum estimated from bucket midpoints (the read model keeps counts, not sums)."""
    lows = np.concatenate([[0.0], edges])
    highs = np.concatenate([edges, [edges[-1]]])
    return float((counts * (lows + highs) / 2).sum())


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        rt = self.m.runtime
        with rt.lock:
            snap = _Snapshot.take(rt)
        yield _latency_family(snap)
        q = GaugeMetricFamily("clearlane_queue_length", "Current length of a queue", labels=["queue"])
        for name, value in sorted(snap.queues.items()):
            q.add_metric([name], float(value))
        yield q
        yield from _batch_families(snap)
        yield _state_family(snap)
        yield _reject_family(snap)
        alerts = CounterMetricFamily(
            "clearlane_alerts",
            "Alerts the engine raised, by kind (ledger_refused: docs/LIMITS.md)",
            labels=["kind"],
        )
        for kind, value in sorted(snap.alerts.items()):
            alerts.add_metric([kind], float(value))
        yield alerts
        busy = CounterMetricFamily(
            "clearlane_runtime_loop_seconds",
            "Runtime loop thread: wall (busy) and CPU time in steps; wall time in malloc_trim",
            labels=["kind"],
        )
        busy.add_metric(["busy"], rt.counters.loop_busy_s)
        busy.add_metric(["cpu"], rt.counters.loop_cpu_s)
        busy.add_metric(["trim"], rt.counters.trim_s)
        yield busy
        steps = CounterMetricFamily(
            "clearlane_runtime_steps",
            "Steps the runtime loop logged: trade steps, and every step (trades, events, time)",
            labels=["kind"],
        )
        steps.add_metric(["trades"], float(rt.counters.trade_steps))
        steps.add_metric(["all"], float(rt.counters.steps))
        yield steps
        if self.m.gateways is not None:
            yield from _gateway_families(self.m.gateways.status())
        yield _step_family(rt)
        yield GaugeMetricFamily(
            "clearlane_block_height", "Base-layer tip height seen by the engine", value=float(snap.height)
        )
        yield GaugeMetricFamily(
            "clearlane_applied_seq", "Last applied input-log sequence number", value=float(snap.applied)
        )
        yield GaugeMetricFamily(
            "clearlane_stream_subscribers", "Open live-stream connections", value=float(rt.bus.subscribers)
        )
        if self.m.webhooks is not None:
            yield from _webhook_families(self.m.webhooks)


@dataclass
class _Snapshot:
    """The read model's figures, copied under the runtime lock (families are built outside it)."""

    lane_keys: list[str]
    l1: int
    pools: list[str]
    latency: np.ndarray[Any, Any]
    sizes: np.ndarray[Any, Any]
    size_sum: np.ndarray[Any, Any]
    counts: np.ndarray[Any, Any]
    gross: np.ndarray[Any, Any]
    net: np.ndarray[Any, Any]
    queues: dict[str, int]
    height: int
    applied: int
    rejected_engine: dict[str, int]
    rejected_api: dict[str, int]
    alerts: dict[str, int]

    @classmethod
    def take(cls, rt: Runtime) -> _Snapshot:
        rm = rt.rm
        return cls(
            lane_keys=list(rm.layout.lane_keys),
            l1=rm.l1,
            pools=list(rm.pools),
            latency=rm.activity.latency.copy(),
            sizes=rm.batches.sizes.copy(),
            size_sum=rm.batches.size_sum.copy(),
            counts=rm.activity.counts.copy(),
            gross=rm.batches.gross_usd.copy(),
            net=rm.batches.net_usd.copy(),
            queues=rt.queue_lengths(),
            height=rt.queries.tip_height(),
            applied=rm.applied_seq,
            rejected_engine=dict(rt.counters.engine_rejects),
            rejected_api=dict(rt.counters.edge_rejects),
            alerts=dict(rm.activity.alerts_by_kind),
        )

    def lanes(self) -> Iterator[tuple[int, str, str]]:
        """(lane key index, lane label, pool label) per lane key: L1, then each pool."""
        for lk, name in enumerate(self.lane_keys):
            is_l1 = lk == self.l1
            yield lk, "L1" if is_l1 else "L2", "" if is_l1 else name


def _latency_family(snap: _Snapshot) -> Metric:
    hist = HistogramMetricFamily(
        "clearlane_hop_latency_seconds",
        "Latency per lifecycle hop, per lane and pool",
        labels=["lane", "pool", "hop"],
    )
    for lk, lane, pool in snap.lanes():
        for hop in L1_HOPS if lane == "L1" else L2_HOPS:
            c = snap.latency[lk, HOPS.index(hop)]
            hist.add_metric(
                [lane, pool, hop],
                _buckets(c, LATENCY_EDGES_MS, 0.001),
                _sum_estimate(c, LATENCY_EDGES_MS) / 1000,
            )
    return hist


def _step_family(rt: Runtime) -> Metric:
    hist = HistogramMetricFamily(
        "clearlane_runtime_step_seconds",
        "Wall time of the runtime loop's steps: trades, tick (windows closing), poll (the base layer)",
        labels=["kind"],
    )
    times = rt.counters.step_seconds
    edges = np.array(STEP_SECONDS_EDGES)
    for kind in sorted(times.counts):
        counts = np.array(times.counts[kind])
        hist.add_metric([kind], _buckets(counts, edges, 1.0), sum_value=times.sums.get(kind, 0.0))
    return hist


def _batch_families(snap: _Snapshot) -> Iterator[Metric]:
    bs = HistogramMetricFamily("clearlane_batch_size_flows", "Flows per closed L2 batch", labels=["pool"])
    for k, pool in enumerate(snap.pools):
        bs.add_metric([pool], _buckets(snap.sizes[k], BATCH_SIZE_EDGES, 1.0), float(snap.size_sum[k]))
    yield bs
    eff = GaugeMetricFamily(
        "clearlane_netting_efficiency_ratio", "1 - net / gross settlement value, per pool", labels=["pool"]
    )
    g = GaugeMetricFamily(
        "clearlane_gross_settlement_usd",
        "Gross value of cleared L2 obligations (USD at marks)",
        labels=["pool"],
    )
    n = GaugeMetricFamily(
        "clearlane_net_settlement_usd",
        "Net settlement value of cleared L2 batches (USD at marks)",
        labels=["pool"],
    )
    gross, net = snap.gross, snap.net
    for k, pool in enumerate(snap.pools):
        eff.add_metric([pool], float(1 - net[k] / gross[k]) if gross[k] > 0 else 0.0)
        g.add_metric([pool], float(gross[k]))
        n.add_metric([pool], float(net[k]))
    yield eff
    yield g
    yield n


def _state_family(snap: _Snapshot) -> Metric:
    states = GaugeMetricFamily(
        "clearlane_trades",
        "Trades by lane, pool and lifecycle state (received is cumulative)",
        labels=["lane", "pool", "state"],
    )
    for lk, lane, pool in snap.lanes():
        for i, st in enumerate(STATE_KEYS):
            states.add_metric([lane, pool, st], float(snap.counts[lk, i]))
    return states


def _reject_family(snap: _Snapshot) -> Metric:
    rej = CounterMetricFamily(
        "clearlane_rejects",
        "Refused inputs by stable code and where they were refused",
        labels=["code", "error", "source"],
    )
    for source, table in (("engine", snap.rejected_engine), ("api", snap.rejected_api)):
        for slug, value in sorted(table.items()):
            code = str(int(RejectCode[slug.upper()])) if slug.upper() in RejectCode.__members__ else ""
            rej.add_metric([code, slug, source], float(value))
    return rej


def _webhook_families(hooks: WebhookService) -> Iterator[Metric]:
    lag_counts, lag_sum, outcomes = hooks.metrics_snapshot()
    lag = HistogramMetricFamily(
        "clearlane_webhook_delivery_lag_seconds", "Webhook delivery lag: event committed to delivered"
    )
    lag.add_metric([], _buckets(lag_counts, LATENCY_EDGES_MS, 0.001), lag_sum)
    yield lag
    out = CounterMetricFamily(
        "clearlane_webhook_deliveries", "Webhook delivery attempts by outcome", labels=["outcome"]
    )
    for outcome in ("delivered", "retry", "failed"):
        out.add_metric([outcome], float(outcomes.get(outcome, 0)))
    yield out


async def scraper(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """Who may scrape: the configured scrape token (``Authorization: Bearer <token>``, compared
    in constant time), or an operator or auditor key — the figures are every participant's
    volume, so a participant key is a 403 and no key a 401."""
    options: ServiceOptions = request.app.state.options
    token = token_from(authorization, x_api_key)
    if (
        options.metrics_token
        and token
        and hmac.compare_digest(token.encode(), options.metrics_token.encode())
    ):
        return
    principal = await authenticate(request, authorization, x_api_key)
    await allow(*READERS)(principal)


def _gateway_families(status: dict[str, Any]) -> Iterator[Metric]:
    """``serve --gateways``: how many run, how often one was started again, what they sent."""
    alive = GaugeMetricFamily(
        "clearlane_gateways", "Gateway processes (serve --gateways): configured and running", labels=["state"]
    )
    alive.add_metric(["configured"], float(status["count"]))
    alive.add_metric(["alive"], float(status["alive"]))
    yield alive
    restarts = CounterMetricFamily(
        "clearlane_gateway_restarts", "Gateway processes started again after exiting"
    )
    restarts.add_metric([], float(status["restarts"]))
    yield restarts
    sent = CounterMetricFamily(
        "clearlane_gateway_requests",
        "Requests the gateways handed to the service: trade batches decoded, other requests whole",
        labels=["kind"],
    )
    sent.add_metric(["decoded"], float(status.get("decoded", 0)))
    sent.add_metric(["forwarded"], float(status.get("forwarded", 0)))
    yield sent


class Metrics:
    def __init__(self, runtime: Runtime, webhooks: WebhookService | None = None) -> None:
        self.runtime = runtime
        self.webhooks = webhooks
        self.gateways: Any = None  # serve --gateways: link.Gateways (its status())
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def routes(self, app: FastAPI) -> None:
        @app.get(
            "/metrics",
            tags=["meta"],
            include_in_schema=True,
            openapi_extra=roles_doc(*READERS),
            dependencies=[Depends(scraper)],
            responses={
                200: {
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                    "description": "Prometheus text exposition format",
                }
            },
            response_class=Response,
        )
        async def metrics() -> Response:
            import asyncio

            body = await asyncio.to_thread(self.render)
            return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
