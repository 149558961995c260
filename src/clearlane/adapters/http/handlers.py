"""handlers owns how errors leave the HTTP edge: every exception a route or the framework raises
becomes an RFC 9457 problem (:mod:`clearlane.adapters.http.problems`) with a stable code."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clearlane.adapters.http.common import PROBLEM_MEDIA
from clearlane.adapters.http.guard import EdgeRefusal
from clearlane.adapters.http.problems import Problem, ServiceCode, bad_parameter, not_found, problem_for
from clearlane.core.errors import ClearlaneError
from clearlane.core.model.codes import RejectCode


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_MEDIA, headers=problem.headers
    )


def validation_problem(exc: RequestValidationError) -> Problem:
    """The first error of a framework validation failure, as the problem intake would give."""
    errors = exc.errors()
    first: dict[str, Any] = errors[0] if errors else {"loc": ("-",), "msg": "invalid", "type": "value_error"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    name = ".".join(loc) or "-"
    where = first.get("loc", ("-",))[0]
    message = str(first.get("msg"))
    if first.get("type") == "json_invalid":
        return Problem.reject(RejectCode.BAD_JSON, f"body is not valid JSON: {message}", "-", message)
    if where in ("query", "path", "header"):
        return bad_parameter(name, message)
    if first.get("type") == "missing":
        return Problem.reject(RejectCode.MISSING_FIELD, f"required field {name!r} is missing", name, message)
    return Problem.service(ServiceCode.BAD_BODY, 422, f"{name}: {message}", field=name, reason=message)


def http_problem(request: Request, exc: StarletteHTTPException) -> Problem:
    if isinstance(exc, EdgeRefusal):
        return exc.problem
    if exc.status_code == 404:
        return not_found(f"route {request.url.path}")
    if exc.status_code == 405:
        return Problem.service(ServiceCode.METHOD_NOT_ALLOWED, 405, f"{request.method} not allowed here")
    return Problem(
        exc.status_code,
        str(exc.detail),
        code=int(ServiceCode.BAD_PARAMETER),
        error=ServiceCode.BAD_PARAMETER.slug,
        detail=str(exc.detail),
    )


def install(app: FastAPI) -> None:
    """Register the problem handlers on ``app``."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(ClearlaneError)
    async def _clearlane(request: Request, exc: ClearlaneError) -> JSONResponse:
        # Refusals from the node (SubmissionRefused, RuntimeUnavailable, ...) are ClearlaneErrors.
        return problem_response(problem_for(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(http_problem(request, exc), request.url.path)
