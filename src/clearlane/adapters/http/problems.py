"""RFC 9457 problem details (``application/problem+json``) for every error the API returns.

Input errors carry the core's stable reject code (:class:`~clearlane.core.model.codes.RejectCode`:
``code`` number, ``error`` slug), the ``field`` at fault and a human ``reason``; a request with
several bad rows lists them all in ``errors``. Errors of the HTTP layer itself use the service
codes below (``6xx``), which are just as stable.

Owns the one mapping of the core's error tree (:mod:`clearlane.core.errors`) to problem types:
:func:`problem_for` (the app registers it once as the handler of every ``ClearlaneError``).
"""

from __future__ import annotations

import contextvars
from enum import IntEnum
from typing import Any

from clearlane.core.errors import ClearlaneError, InputError, IntegrityError, NotFound, Unavailable, category
from clearlane.core.model.codes import RejectCode
from clearlane.node.intake.rows import RowError
from clearlane.node.runtime import SubmissionRefused


class ServiceCode(IntEnum):
    UNAUTHORIZED = 601  # 401: no or unknown API key
    FORBIDDEN = 602  # 403: the role may not do this
    NOT_FOUND = 603  # 404: no such resource (or not yours)
    BAD_PARAMETER = 604  # 400: a query or path parameter is invalid (cursor, limit, filter)
    UNAVAILABLE = 605  # 503: the clearing runtime is stopped, failed or its queue is full
    TOO_LARGE = 606  # 413: a body over the size limit (422: too many items in one request)
    METHOD_NOT_ALLOWED = 607  # 405
    BAD_BODY = 608  # 422: the body is not the documented shape (a field's JSON type)
    INVALID_INPUT = 609  # 422: an input the core cannot use (an InputError other than row rejects)
    INTEGRITY = 610  # 500: the store, log or chain fails its own checks (an IntegrityError)
    REQUEST_TIMEOUT = 611  # 408: the body (or the headers) did not arrive in time
    UNSUPPORTED_MEDIA_TYPE = 612  # 415: a body declared as something other than JSON
    BAD_WEBHOOK_URL = 613  # 422: a webhook URL that is malformed or names a refused target
    IDEMPOTENCY_KEY_REUSED = 614  # 422: an Idempotency-Key sent before with a different request
    IDEMPOTENCY_KEY_IN_FLIGHT = 615  # 409: an Idempotency-Key whose first request still runs

    @property
    def slug(self) -> str:
        return self.name.lower()


PROBLEM_TYPE = "urn:clearlane:problem:"
# The id of the request being answered (set by idempotency.RequestIds): every problem names it.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("clearlane_request_id", default=None)


class Problem(Exception):
    """An error response. Raise it from a handler; the app renders it as problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        *,
        code: int,
        error: str,
        detail: str | None = None,
        field: str | None = None,
        reason: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.code = code
        self.error = error
        self.detail = detail or title
        self.field = field
        self.reason = reason
        self.errors = errors
        self.headers = headers or {}

    @classmethod
    def service(cls, code: ServiceCode, status: int, detail: str, **kw: Any) -> Problem:
        titles = {
            ServiceCode.UNAUTHORIZED: "Unauthorized",
            ServiceCode.FORBIDDEN: "Forbidden",
            ServiceCode.NOT_FOUND: "Not found",
            ServiceCode.BAD_PARAMETER: "Bad parameter",
            ServiceCode.UNAVAILABLE: "Service unavailable",
            ServiceCode.TOO_LARGE: "Too many items",
            ServiceCode.METHOD_NOT_ALLOWED: "Method not allowed",
            ServiceCode.BAD_BODY: "Invalid body",
            ServiceCode.INVALID_INPUT: "Invalid input",
            ServiceCode.INTEGRITY: "Integrity check failed",
            ServiceCode.REQUEST_TIMEOUT: "Request timeout",
            ServiceCode.UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
            ServiceCode.BAD_WEBHOOK_URL: "Webhook URL refused",
            ServiceCode.IDEMPOTENCY_KEY_REUSED: "Idempotency key reused",
            ServiceCode.IDEMPOTENCY_KEY_IN_FLIGHT: "Idempotency key in use",
        }
        return cls(status, titles[code], code=int(code), error=code.slug, detail=detail, **kw)

    @classmethod
    def reject(cls, code: RejectCode, detail: str, field: str, reason: str) -> Problem:
        """A 422 for input refused with one of the core's stable reject codes."""
        return cls(
            422, "Invalid input", code=int(code), error=code.slug, detail=detail, field=field, reason=reason
        )

    @classmethod
    def rows(cls, errors: list[RowError], status: int = 422) -> Problem:
        first = errors[0]
        title = "Conflict" if status == 409 else "Invalid input"
        detail = first.reason if len(errors) == 1 else f"{len(errors)} invalid items; first: {first.reason}"
        return cls(
            status,
            title,
            code=first.code,
            error=first.error,
            detail=detail,
            field=first.field,
            reason=first.reason,
            errors=[e.to_dict() for e in errors],
        )

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": PROBLEM_TYPE + self.error,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "error": self.error,
        }
        if instance:
            out["instance"] = instance
        if self.field is not None:
            out["field"] = self.field
        if self.reason is not None:
            out["reason"] = self.reason
        if self.errors is not None:
            out["errors"] = self.errors
        rid = REQUEST_ID.get()
        if rid is not None:
            out["request_id"] = rid
        return out


def not_found(what: str) -> Problem:
    return Problem.service(ServiceCode.NOT_FOUND, 404, f"{what} not found")


def bad_parameter(name: str, reason: str) -> Problem:
    return Problem.service(ServiceCode.BAD_PARAMETER, 400, f"{name}: {reason}", field=name, reason=reason)


# The error tree's categories, once: (service code, HTTP status). An error that chose no
# category is a declaration bug (tests/adapters/http/test_errors.py refuses it); it is still
# answered, as a server-side failure.
PROBLEM_OF_CATEGORY: dict[type[ClearlaneError], tuple[ServiceCode, int]] = {
    InputError: (ServiceCode.INVALID_INPUT, 422),
    NotFound: (ServiceCode.NOT_FOUND, 404),
    IntegrityError: (ServiceCode.INTEGRITY, 500),
    Unavailable: (ServiceCode.UNAVAILABLE, 503),
    ClearlaneError: (ServiceCode.INTEGRITY, 500),
}


def problem_for(exc: ClearlaneError) -> Problem:
    """The problem answering ``exc``. Refused rows keep their reject codes and status (422, or
    409 for a conflicting re-submission); a 503 tells the client when to retry."""
    if isinstance(exc, SubmissionRefused):
        return Problem.rows(exc.errors, exc.status)
    code, status = PROBLEM_OF_CATEGORY[category(exc)]
    headers = {"Retry-After": "1"} if status == 503 else None
    return Problem.service(code, status, str(exc), headers=headers)
