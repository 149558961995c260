"""stress: run a scenario from the shipped library against the service's recorded day, and list
or read the stress reports kept (docs/STRESS.md, "From the service"). Operators and auditors.

What is safe to run in-process, and the bounds that hold it:

- the day replayed is the service's input log **as recorded when the run starts** (read up to
  that sequence number; the live service keeps clearing meanwhile), on two fresh in-memory nodes
  of its own — nothing of the live node is touched;
- **one run at a time** (another start is a 503 with ``Retry-After``): a replay is CPU work in
  this process and competes with the clearing loop for it;
- the recorded day may hold at most ``max_trades`` trades (default 100,000, ~40 s of CPU; 422
  ``too_large`` above it: run ``clearlane stress --db`` on a copy instead);
- a run longer than ``max_seconds`` (default 300) of wall time is stopped between two steps and
  kept as ``failed`` with the reason;
- the last ``keep`` reports (default 16) are kept in memory, oldest dropped first.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from clearlane.adapters.http.common import READERS, Reader, RuntimeDep, problem_doc, roles_doc
from clearlane.adapters.http.problems import Problem, ServiceCode, not_found
from clearlane.core.risk.scenario import Scenario, ScenarioError, load_scenario
from clearlane.node import stress as node_stress
from clearlane.node.runtime import Runtime

router = APIRouter(tags=["stress"])

EXPORTS = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "auth063": "application/json",
    "auth063.xml": "application/xml",
}


def library() -> dict[str, Scenario]:
    """The shipped scenario library (``clearlane/sim/scenarios/*.toml``) by scenario id."""
    folder = resources.files("clearlane.sim") / "scenarios"
    found = [load_scenario(Path(str(f))) for f in folder.iterdir() if f.name.endswith(".toml")]
    return {s.id: s for s in sorted(found, key=lambda s: s.id)}


class _Stopped(Exception):
    """Raised between two replay steps when a run outlives its time bound."""


@dataclass
class StressRun:
    report_id: str
    scenario: str
    seed: int
    upto_seq: int
    trades: int
    started_ms: int
    status: str = "running"  # running | done | failed
    phase: str = "baseline"
    applied: int = 0
    finished_ms: int | None = None
    error: str | None = None
    result: node_stress.StressResult | None = field(default=None, repr=False)

    def head(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("report_id", "scenario", "seed", "status", "phase", "applied")}
        out |= {"upto_seq": self.upto_seq, "trades": self.trades, "started_ms": self.started_ms}
        out |= {"finished_ms": self.finished_ms, "error": self.error}
        if self.result is not None:
            report = self.result.report
            out["summary"] = {
                "liveness_ok": report["liveness"]["ok"],
                "unwound_batches": report["system"]["unwound_batches"],
                "cover2_shortfall_cents": report["system"]["scenario"]["cover2"]["shortfall_cents"],
                "faults": {k: v["fired"] for k, v in report["faults"].items()},
            }
        return out


@dataclass
class StressDesk:
    """The service's stress runs (module docstring for the bounds)."""

    max_trades: int = 100_000
    max_seconds: float = 300.0
    keep: int = 16
    runs: OrderedDict[str, StressRun] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self, runtime: Runtime, scenario: Scenario) -> StressRun:
        trades = sum(runtime.summary()["trades_by_lane"].values())
        if trades > self.max_trades:
            raise Problem.service(
                ServiceCode.TOO_LARGE,
                422,
                f"the recorded day holds {trades} trades; in-process runs take at most {self.max_trades}"
                " (run `clearlane stress --db` on a copy)",
                field="scenario",
                reason="day too large",
            )
        with self.lock:
            if any(r.status == "running" for r in self.runs.values()):
                raise Problem.service(
                    ServiceCode.UNAVAILABLE, 503, "a stress run is in progress", headers={"Retry-After": "5"}
                )
            number = next(self.numbers)
            run = StressRun(
                f"sr-{number:04d}-{scenario.id}-{scenario.seed}",
                scenario.id,
                scenario.seed,
                runtime.queries.applied_seq(),
                trades,
                int(time.time() * 1000),
            )
            self.runs[run.report_id] = run
            while len(self.runs) > self.keep:
                self.runs.popitem(last=False)
        threading.Thread(
            target=self._run, args=(runtime, scenario, run), name=f"stress-{number}", daemon=True
        ).start()
        return run

    def _run(self, runtime: Runtime, scenario: Scenario, run: StressRun) -> None:
        deadline = time.monotonic() + self.max_seconds

        def progress(phase: str, applied: int) -> None:
            run.phase, run.applied = phase, applied
            if time.monotonic() > deadline:
                raise _Stopped(f"stopped: longer than {self.max_seconds:g} s")

        try:
            with tempfile.TemporaryDirectory(prefix="clearlane-stress-") as tmp:
                config = Path(tmp) / "config.toml"
                config.write_text(_config_text(runtime), encoding="utf-8")
                source = node_stress.DaySource(
                    config,
                    log=runtime.store,
                    label=f"service log to seq {run.upto_seq}",
                    upto_seq=run.upto_seq,
                )
                keys = Path(tmp) / "keys"

                def open_node(path: Path) -> Any:
                    from clearlane.adapters.embedded import open_memory_node

                    return open_memory_node(path, keys=keys)

                run.result = node_stress.run_stress(
                    open_node, source, scenario, trades_hint=run.trades, progress=progress
                )
            run.status = "done"
        except Exception as exc:  # a failed run is kept with its reason, never raised in a thread
            run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            run.finished_ms = int(time.time() * 1000)

    def get(self, report_id: str) -> StressRun:
        run = self.runs.get(report_id)
        if run is None:
            raise not_found(f"stress report {report_id!r}")
        return run


def _config_text(runtime: Runtime) -> str:
    stored: str | None = runtime.store.get_meta("config_toml")
    if stored is None:
        raise Problem.service(ServiceCode.INTEGRITY, 500, "the store holds no configuration")
    return stored


def desk_for(app: Any) -> StressDesk:
    """The app's stress desk, made on first use (create_app need not know about it)."""
    desk: StressDesk | None = getattr(app.state, "stress", None)
    if desk is None:
        desk = app.state.stress = StressDesk()
    return desk


def desk_of(request: Request) -> StressDesk:
    return desk_for(request.app)


@router.get("/v1/stress/scenarios", openapi_extra=roles_doc(*READERS))
async def list_scenarios(principal: Reader) -> dict[str, Any]:
    found = await asyncio.to_thread(library)
    items = [
        {
            "id": s.id,
            "seed": s.seed,
            "description": s.description,
            "faults": [f.type for f in s.faults],
            "liveness_bound_s": s.liveness_bound_s,
        }
        for s in found.values()
    ]
    return {"items": items}


@router.post(
    "/v1/stress/runs",
    status_code=202,
    openapi_extra=roles_doc(*READERS),
    responses={
        404: problem_doc("No such scenario in the library"),
        422: problem_doc("A bad seed, or a recorded day too large to replay in-process"),
        503: problem_doc("A stress run is already in progress (Retry-After)"),
    },
)
async def start_run(
    request: Request,
    principal: Reader,
    runtime: RuntimeDep,
    scenario: Annotated[str, Body(max_length=64)],
    seed: Annotated[int | None, Body(ge=0, lt=1 << 63)] = None,
) -> Response:
    found = await asyncio.to_thread(library)
    chosen = found.get(scenario)
    if chosen is None:
        raise not_found(f"scenario {scenario!r}")
    if seed is not None:
        chosen = chosen.with_seed(seed)
    try:
        node_stress.check_against(chosen, runtime.config)
    except ScenarioError as exc:
        raise Problem.service(
            ServiceCode.INVALID_INPUT, 422, str(exc), field="scenario", reason=exc.reason
        ) from None
    run = desk_of(request).start(runtime, chosen)
    return JSONResponse(
        run.head(), status_code=202, headers={"Location": f"/v1/stress/reports/{run.report_id}"}
    )


@router.get("/v1/stress/reports", openapi_extra=roles_doc(*READERS))
async def list_reports(request: Request, principal: Reader) -> dict[str, Any]:
    runs = list(desk_of(request).runs.values())
    return {"items": [r.head() for r in reversed(runs)]}


@router.get("/v1/stress/reports/{report_id}", openapi_extra=roles_doc(*READERS))
async def get_report(request: Request, report_id: str, principal: Reader) -> dict[str, Any]:
    run = desk_of(request).get(report_id)
    out = run.head()
    if run.result is not None:
        out["report"] = run.result.report
        out["series"] = await asyncio.to_thread(node_stress.chart_series, run.result)
    return out


@router.get("/v1/stress/reports/{report_id}/export/{kind}", openapi_extra=roles_doc(*READERS))
async def export_report(request: Request, report_id: str, kind: str, principal: Reader) -> Response:
    run = desk_of(request).get(report_id)
    if kind not in EXPORTS:
        raise not_found(f"export {kind!r} (one of {', '.join(EXPORTS)})")
    if run.result is None:
        raise not_found(f"stress report {report_id!r} ({run.status})")
    body = _export(run.result.report, kind)
    name = f"{report_id}.{ {'csv': 'csv', 'json': 'json', 'auth063': 'auth063.json'}.get(kind, kind) }"
    return Response(
        body,
        media_type=EXPORTS[kind],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _export(report: dict[str, Any], kind: str) -> bytes:
    if kind == "csv":
        return node_stress.report_csv(report).encode()
    if kind == "auth063.xml":
        return node_stress.report_auth063_xml(report)
    if kind == "auth063":
        return node_stress.report_json(node_stress.report_auth063(report))
    return node_stress.report_json(report)
