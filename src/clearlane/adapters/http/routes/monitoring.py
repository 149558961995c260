"""monitoring: canaries per path with their last results, divergence between sources, trust
scores (readers), readings pushed by external feeds (operators), and the Prometheus gauges
``clearlane_canary_status{path}`` (1 passed, 0.5 degraded, 0 failed) and
``clearlane_trust_score{source,window}`` (0..1). docs/MONITORING.md.

The monitor (node/monitor/service.py) is attached by ``clearlane serve`` as
``app.state.monitor``; an app without one answers 404 here."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clearlane.adapters.http.common import READERS, Operator, Reader, json_body, roles_doc
from clearlane.adapters.http.problems import Problem, ServiceCode
from clearlane.core.recon import batchreport
from clearlane.node.monitor.service import Monitor

if TYPE_CHECKING:
    from clearlane.adapters.http.metrics import Metrics

router = APIRouter(tags=["monitoring"])


def _monitor(request: Request) -> Monitor:
    monitor = getattr(request.app.state, "monitor", None)
    if not isinstance(monitor, Monitor):
        raise Problem.service(ServiceCode.NOT_FOUND, 404, "monitoring is not enabled on this service")
    return monitor


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise Problem.service(
            ServiceCode.BAD_BODY, 422, f"{name}: a non-empty string is required", field=name
        )
    return value


def _at(body: dict[str, Any]) -> int | None:
    value = body.get("at_ms")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Problem.service(ServiceCode.BAD_BODY, 422, "at_ms: a non-negative integer", field="at_ms")
    return value


@router.get("/v1/monitoring", openapi_extra=roles_doc(*READERS))
async def monitoring(request: Request, principal: Reader) -> JSONResponse:
    """Canaries per path (last results, the failing hop named), divergence findings, marks and
    counts per source, and trust scores over 1 h and 24 h."""
    monitor = _monitor(request)
    return JSONResponse(await asyncio.to_thread(monitor.snapshot), headers={"Cache-Control": "no-store"})


@router.get("/v1/monitoring/canaries", openapi_extra=roles_doc(*READERS))
async def canaries(request: Request, principal: Reader) -> JSONResponse:
    snap = await asyncio.to_thread(_monitor(request).snapshot)
    return JSONResponse(snap["canaries"], headers={"Cache-Control": "no-store"})


@router.get("/v1/monitoring/divergence", openapi_extra=roles_doc(*READERS))
async def divergence(request: Request, principal: Reader) -> JSONResponse:
    snap = await asyncio.to_thread(_monitor(request).snapshot)
    return JSONResponse(snap["divergence"], headers={"Cache-Control": "no-store"})


@router.get("/v1/monitoring/trust", openapi_extra=roles_doc(*READERS))
async def trust(request: Request, principal: Reader) -> JSONResponse:
    snap = await asyncio.to_thread(_monitor(request).snapshot)
    return JSONResponse(snap["trust"], headers={"Cache-Control": "no-store"})


@router.post("/v1/monitoring/marks", status_code=202, openapi_extra=roles_doc("operator"))
async def push_mark(request: Request, principal: Operator) -> JSONResponse:
    """An external feed's mark: ``{"source", "asset", "mark_usd" (decimal text), "at_ms"?}``."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise Problem.service(ServiceCode.BAD_BODY, 422, "body must be a JSON object")
    monitor = _monitor(request)
    out = monitor.push_mark(_text(body, "source"), _text(body, "asset"), _text(body, "mark_usd"), _at(body))
    return JSONResponse(out, status_code=202)


@router.post("/v1/monitoring/counts", status_code=202, openapi_extra=roles_doc("operator"))
async def push_count(request: Request, principal: Operator) -> JSONResponse:
    """The venue's count of one exchange batch: ``{"source", "exch_batch_id", "trades", "at_ms"?}``."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise Problem.service(ServiceCode.BAD_BODY, 422, "body must be a JSON object")
    trades = body.get("trades")
    if not isinstance(trades, int) or isinstance(trades, bool):
        raise Problem.service(ServiceCode.BAD_BODY, 422, "trades: an integer is required", field="trades")
    _monitor(request).push_count(_text(body, "source"), _text(body, "exch_batch_id"), trades, _at(body))
    return JSONResponse({"accepted": 1}, status_code=202)


@router.post("/v1/monitoring/batch-reports", status_code=202, openapi_extra=roles_doc("operator"))
async def push_batch_reports(request: Request, principal: Operator) -> JSONResponse:
    """An exchange batch report document (``clearlane.exchange-batch-report/1``, JSON)."""
    monitor = _monitor(request)
    text = (await request.body()).decode("utf-8", errors="replace")
    scales = {a.code: a.scale for a in monitor.runtime.config.assets}
    reports = batchreport.parse_json(text, scales)
    return JSONResponse({"accepted": monitor.push_batch_reports(reports)}, status_code=202)


class MonitorCollector(Collector):
    """The monitor's gauges, read at scrape time (nothing is counted per trade)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        canary, trust_scores = self.monitor.gauges()
        status = GaugeMetricFamily(
            "clearlane_canary_status",
            "Last canary verdict per path: 1 passed, 0.5 degraded, 0 failed",
            labels=["path"],
        )
        for path, value in sorted(canary.items()):
            status.add_metric([path], value)
        yield status
        score = GaugeMetricFamily(
            "clearlane_trust_score",
            "Trust per source: availability x freshness x agreement x completeness",
            labels=["source", "window"],
        )
        for (source, window), value in sorted(trust_scores.items()):
            score.add_metric([source, window], value)
        yield score


def install_gauges(metrics: Metrics, monitor: Monitor) -> None:
    metrics.registry.register(MonitorCollector(monitor))


def proof_verifier(runtime: Any) -> Any:
    """The canaries' offline proof check: the evidence prover builds the trade's
    ``clearlane.proof.v1`` document from the store, the standalone verifier checks it (Merkle
    path to the batch root, the anchor, the signed checkpoint), as a third party would."""
    from clearlane.core.proofs.verify import ProofError, verify_proof_document
    from clearlane.evidence.prove import EvidenceError, Prover

    def verify(flow_id: str) -> str | None:
        try:
            with runtime.lock:
                data = Prover(runtime.store).proof_bytes(flow_id)
            verify_proof_document(data)
        except (EvidenceError, ProofError, AttributeError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    return verify
