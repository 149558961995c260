"""recon: import a statement or batch report, run the matcher, read runs, breaks and imported
statements (docs/RECONCILIATION.md §6). Operators import and run; auditors read; a participant
key gets 403 (statements and breaks name every participant's settlements).

A run's case changes are published as ``exception.*`` events like the case actions are.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from clearlane.adapters.http.common import READERS, Limit, Operator, Reader, RuntimeDep, json_body, roles_doc
from clearlane.adapters.http.problems import Problem, ServiceCode
from clearlane.adapters.http.routes.cases import NowDep, ReconDep, scales
from clearlane.core.errors import InputError
from clearlane.core.money import DecimalError, parse_decimal
from clearlane.core.recon.amounts import currency_scale
from clearlane.core.recon.matching import DAY_MS, MatchRules
from clearlane.node.recon import cases as case_app
from clearlane.node.recon import service, views
from clearlane.node.recon.sources import FORMATS

router = APIRouter(tags=["reconciliation"])

_RUN_FIELDS = frozenset(("period", "tolerance", "tolerance_bps", "window_days", "internal"))
_INTERNAL_KINDS = service.ALL_INTERNAL_KINDS
_PERIOD = r"^\d{4}-\d{2}-\d{2}$"
_FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$"


def _input_problem(exc: InputError) -> Problem:
    text = str(exc)
    field, _, reason = text.partition(": ")
    return Problem(
        422, "Invalid input", code=int(ServiceCode.INVALID_INPUT), error=str(exc.code).lower(),
        detail=text, field=field if reason else "-", reason=reason or text,
    )  # fmt: skip


def _import(store: Any, raw: bytes, file_name: str, fmt: str | None, now: int) -> service.ImportResult:
    # The readers stream from a path (lxml iterparse, line by line): the body goes to a file.
    with tempfile.TemporaryDirectory(prefix="clearlane-recon-") as tmp:
        path = Path(tmp) / file_name
        path.write_bytes(raw)
        return service.import_file(store, path, fmt=fmt, now_ms=now)


@router.post("/v1/recon/imports", status_code=201, openapi_extra=roles_doc("operator"))
async def import_statement(
    request: Request,
    principal: Operator,
    store: ReconDep,
    now: NowDep,
    fmt: str | None = Query(default=None, alias="format", description=", ".join(FORMATS) + " (default: detected)"),
    file_name: str = Query(default="upload", pattern=_FILE_NAME, description="Kept with the import."),
) -> Response:  # fmt: skip
    """The body is the file itself (camt XML, MT940 text, batch report CSV/JSON). A statement
    or report imported before is listed under ``duplicates`` and changes nothing (200)."""
    raw = await request.body()
    if not raw:
        raise Problem.service(ServiceCode.BAD_BODY, 422, "the body is empty", field="-", reason="no file")
    try:
        result = await asyncio.to_thread(_import, store, raw, file_name, fmt, now)
    except InputError as exc:
        raise _input_problem(exc) from None
    body = {
        "file": result.file_name, "format": result.format,
        "imported": [views.import_view(i) for i in result.imported],
        "duplicates": [{"what": w, "earlier_import": e} for w, e in result.duplicates],
    }  # fmt: skip
    return JSONResponse(body, status_code=201 if result.imported else 200)


@router.get("/v1/recon/statements", openapi_extra=roles_doc(*READERS))
async def list_statements(
    principal: Reader,
    store: ReconDep,
    limit: Limit = 100,
    period: str | None = Query(default=None, pattern=_PERIOD),
    kind: str | None = Query(default=None, pattern="^(statement|batch_report)$"),
) -> Response:
    """Imported statements and batch reports, newest first, with whether each balances."""
    found = await asyncio.to_thread(store.imports, period)
    items = [views.import_view(i) for i in found if kind is None or i.kind == kind]
    items.sort(key=lambda i: (i["imported_at_ms"], i["import_id"]), reverse=True)
    return JSONResponse({"items": items[:limit], "total": len(items)}, headers={"Cache-Control": "no-store"})


def _rules(data: dict[str, Any], asset_scales: dict[str, int]) -> MatchRules:
    tolerance = data.get("tolerance")
    tolerance = {} if tolerance is None else tolerance
    if not isinstance(tolerance, dict):
        raise case_app.CaseQueryError("tolerance", 'an object of decimals per asset, e.g. {"USD": "0.05"}')
    out = []
    for asset, text in sorted(tolerance.items()):
        try:
            out.append(
                (asset, parse_decimal(text, asset_scales.get(asset, currency_scale(asset)), allow_zero=True))
            )
        except DecimalError as exc:
            raise case_app.CaseQueryError(f"tolerance.{asset}", str(exc)) from None
    days = data.get("window_days", 3)
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 31:
        raise case_app.CaseQueryError("window_days", "an integer from 0 to 31")
    return MatchRules(window_ms=days * DAY_MS, tolerance_minor=tuple(out), tolerance_bps=_bps(data))


def _bps(data: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """``{"USD": 50}``: per asset, basis points of the larger amount (50 = 0.5 %)."""
    given = data.get("tolerance_bps") or {}
    if not isinstance(given, dict):
        raise case_app.CaseQueryError(
            "tolerance_bps", 'an object of basis points per asset, e.g. {"USD": 50}'
        )
    for asset, bps in given.items():
        if isinstance(bps, bool) or not isinstance(bps, int) or not 0 <= bps < 10_000:
            raise case_app.CaseQueryError(f"tolerance_bps.{asset}", "an integer from 0 to 9999 basis points")
    return tuple(sorted(given.items()))


def _kinds(data: dict[str, Any]) -> tuple[str, ...]:
    kinds = data.get("internal", ["net_instruction"])
    if not isinstance(kinds, list) or not kinds or any(k not in _INTERNAL_KINDS for k in kinds):
        raise case_app.CaseQueryError("internal", f"a non-empty list of {', '.join(_INTERNAL_KINDS)}")
    return tuple(kinds)


def _period(data: dict[str, Any]) -> str | None:
    period = data.get("period")
    if period is None:
        return None
    try:
        datetime.strptime(period, "%Y-%m-%d")
    except (TypeError, ValueError):
        raise case_app.CaseQueryError("period", "a business day YYYY-MM-DD (UTC)") from None
    return str(period)


@router.post("/v1/recon/runs", status_code=201, openapi_extra=roles_doc("operator"))
async def start_run(
    request: Request, principal: Operator, runtime: RuntimeDep, store: ReconDep, now: NowDep
) -> Response:
    """``{period?, tolerance?: {ASSET: decimal}, window_days?, internal?: [kinds]}``: match the
    period, store the run and its outcomes, bring the cases up to date (``exception.*``)."""
    data = await json_body(request)
    if not isinstance(data, dict) or set(data) - _RUN_FIELDS:
        extra = sorted(set(data) - _RUN_FIELDS) if isinstance(data, dict) else ["-"]
        raise Problem.service(
            ServiceCode.BAD_BODY, 422, f"unknown field {extra[0]!r}", field=extra[0], reason="unknown field"
        )
    asset_scales = scales(runtime)
    try:
        rules, kinds, period = _rules(data, asset_scales), _kinds(data), _period(data)
        report = await asyncio.to_thread(
            service.run, store, period=period, rules=rules, now_ms=now, internal_kinds=kinds
        )
    except InputError as exc:
        raise _input_problem(exc) from None
    runtime.bus.publish(case_app.case_event_groups(report.changes, asset_scales))
    cases = {
        "opened": report.opened, "recurred": report.recurred, "reopened": report.reopened,
        "auto_resolved": report.auto_resolved, "flooded": report.flooded,
    }  # fmt: skip
    body = views.run_view(report.run) | {"cases": cases}
    return JSONResponse(body, status_code=201, headers={"Location": f"/v1/recon/runs/{report.run.run_id}"})


@router.get("/v1/recon/runs", openapi_extra=roles_doc(*READERS))
async def list_runs(principal: Reader, store: ReconDep, limit: Limit = 100) -> Response:
    """Runs, newest first."""
    runs = await asyncio.to_thread(store.runs)
    items = [views.run_view(r) for r in reversed(runs)]
    return JSONResponse({"items": items[:limit], "total": len(items)}, headers={"Cache-Control": "no-store"})


@router.get("/v1/recon/runs/{run_id}", openapi_extra=roles_doc(*READERS))
async def get_run(run_id: str, principal: Reader, store: ReconDep) -> Response:
    found = await asyncio.to_thread(views.find_run, store, run_id)
    return JSONResponse(views.run_view(found), headers={"Cache-Control": "no-store"})


async def _breaks(store: Any, runtime: Any, run_id: str | None, period: str | None, limit: int) -> Response:
    def read() -> dict[str, Any]:
        found = views.find_run(store, run_id, period)
        items = views.run_breaks(store, found, scales(runtime))
        return {"run": views.run_view(found), "items": items[:limit], "total": len(items)}

    return JSONResponse(await asyncio.to_thread(read), headers={"Cache-Control": "no-store"})


@router.get("/v1/recon/runs/{run_id}/breaks", openapi_extra=roles_doc(*READERS))
async def run_breaks(
    run_id: str, principal: Reader, runtime: RuntimeDep, store: ReconDep, limit: Limit = 100
) -> Response:
    """Every record of the run that is not matched (unmatched, partially matched, duplicate)."""
    return await _breaks(store, runtime, run_id, None, limit)


@router.get("/v1/recon/breaks", openapi_extra=roles_doc(*READERS))
async def latest_breaks(
    principal: Reader, runtime: RuntimeDep, store: ReconDep, limit: Limit = 100,
    period: str | None = Query(default=None, pattern=_PERIOD),
) -> Response:  # fmt: skip
    """The breaks of the latest run (of ``period`` if given)."""
    return await _breaks(store, runtime, None, period, limit)


__all__ = ["router"]
