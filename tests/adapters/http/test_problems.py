"""The error tree mapped once to RFC 9457 problems: every ClearlaneError has a problem type."""

from __future__ import annotations

import pytest

from clearlane.adapters.http.problems import PROBLEM_OF_CATEGORY, PROBLEM_TYPE, problem_for
from clearlane.core.errors import (
    CATEGORIES,
    ClearlaneError,
    InputError,
    IntegrityError,
    NotFound,
    Unavailable,
)
from clearlane.node.intake.rows import RowError
from clearlane.node.runtime import RuntimeUnavailable, SubmissionRefused
from tests.core.test_errors import all_errors


def _instance(cls: type[ClearlaneError]) -> ClearlaneError:
    # Each error's constructor differs; bypass it, the mapping reads only the class and str().
    exc = cls.__new__(cls)
    Exception.__init__(exc, f"a {cls.__name__}")
    if cls is SubmissionRefused:
        exc.errors = [RowError(0, 101, "missing_field", "price", "required", "T-1")]  # type: ignore[attr-defined]
        exc.status = 422  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize("cls", all_errors(), ids=lambda c: c.__name__)
def test_every_error_maps_to_a_problem_type(cls: type[ClearlaneError]) -> None:
    problem = problem_for(_instance(cls))
    body = problem.body()
    assert body["type"].startswith(PROBLEM_TYPE) and body["status"] in (404, 409, 422, 500, 503)


@pytest.mark.parametrize(
    ("category", "status", "error"),
    [
        (InputError, 422, "invalid_input"),
        (NotFound, 404, "not_found"),
        (IntegrityError, 500, "integrity"),
        (Unavailable, 503, "unavailable"),
    ],
)
def test_categories(category: type[ClearlaneError], status: int, error: str) -> None:
    assert set(PROBLEM_OF_CATEGORY) == {*CATEGORIES, ClearlaneError}
    problem = problem_for(category("why"))
    assert (problem.status, problem.error, problem.detail) == (status, error, "why")


def test_refused_rows_keep_their_reject_codes() -> None:
    row = RowError(0, 101, "missing_field", "trades[0].price", "required", "T-1")
    body = problem_for(SubmissionRefused([row], status=409)).body()
    assert (body["status"], body["code"], body["error"], body["field"]) == (
        409,
        101,
        "missing_field",
        "trades[0].price",
    )


def test_unavailable_says_when_to_retry() -> None:
    problem = problem_for(RuntimeUnavailable("stopped"))
    assert problem.status == 503 and problem.headers == {"Retry-After": "1"}
    assert problem.body()["type"] == PROBLEM_TYPE + "unavailable"
