"""The one error tree: every failure clearlane reports to a user is a :class:`ClearlaneError`.

Owns the four categories a driver needs to answer with, and each error's stable ``code``:

- :class:`InputError`: what the caller gave cannot be used (config, file, decimal, request,
  key directory). The CLI exits 2; HTTP answers a 4xx problem.
- :class:`NotFound`: what the caller asked about does not exist (or has no proof). Exit 1; 404.
- :class:`IntegrityError`: a store, log or chain that fails its own checks. Exit 2; 500.
- :class:`Unavailable`: the service cannot do it now (runtime stopped, lock lost). Exit 1; 503.

The mapping to exit codes lives once in ``adapters/cli/main.py`` and to RFC 9457 problem types
once in ``adapters/http/problems.py``; both are keyed on these categories, so a new error only
chooses its category and code.

Bugs stay loud: ``*InvariantError`` (ledger, netting) are *not* ClearlaneErrors, so no handler
that answers users ever swallows them.

A subclass names its code in the class statement, ``class StoreError(IntegrityError,
RuntimeError, code="STORE_UNUSABLE")``: existing errors keep their builtin base (callers may
still catch ``ValueError``) and join the tree with a one-line edit.
"""

from __future__ import annotations

from typing import Any


class ClearlaneError(Exception):
    """Base of every reported error. ``code``: stable, upper-case, unique per class (an
    instance may narrow it, as :class:`~clearlane.node.intake.readers.IngestError` does)."""

    code: str = "CLEARLANE_ERROR"

    def __init_subclass__(cls, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code


class InputError(ClearlaneError, code="INVALID_INPUT"):
    """The caller's input cannot be used at all (row-level problems are rejects, not this)."""


class NotFound(ClearlaneError, code="NOT_FOUND"):
    """The thing asked about does not exist, or nothing can be said about it."""


class IntegrityError(ClearlaneError, code="INTEGRITY"):
    """A store, log or chain that fails its own checks (foreign, corrupt or tampered)."""


class Unavailable(ClearlaneError, code="UNAVAILABLE"):
    """The service cannot do this now; the same request may succeed later."""


CATEGORIES: tuple[type[ClearlaneError], ...] = (InputError, NotFound, IntegrityError, Unavailable)


def category(error: type[ClearlaneError] | ClearlaneError) -> type[ClearlaneError]:
    """The category (one of :data:`CATEGORIES`) an error belongs to; ``ClearlaneError`` itself
    for an error that chose none (a bug in its declaration: the tests refuse it)."""
    cls = error if isinstance(error, type) else type(error)
    for base in CATEGORIES:
        if issubclass(cls, base):
            return base
    return ClearlaneError


__all__ = [
    "CATEGORIES",
    "ClearlaneError",
    "InputError",
    "IntegrityError",
    "NotFound",
    "Unavailable",
    "category",
]
