"""The dashboard inside the clearing service (``clearlane serve`` and ``clearlane demo``).

:class:`DashboardRuntime` is the service's :class:`~clearlane.service.runtime.Runtime` whose
observer also feeds the dashboard's read model — for every step replayed when the runner opens
(so a restarted server shows the whole day again) and for every live step after its commit.
:func:`install` adds the dashboard's routes to the service app: the JSON views and the live
stream behind the service's API keys (roles operator and auditor: the dashboard shows every
participant), the static pages and the Plotly bundle without (they hold no data).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from clearlane.dashboard.api import ProofProvider, dashboard_router, pages_router
from clearlane.dashboard.model import DashboardModel
from clearlane.engine.core import Effects, LogEntry
from clearlane.service.auth import AUDITOR, OPERATOR
from clearlane.service.runtime import Runtime, resolve_config


class DashboardRuntime(Runtime):
    """A service runtime that keeps a :class:`DashboardModel` current."""

    def __init__(self, db: str | Path, config_path: str | Path | None = None, **kwargs: Any) -> None:
        config, _mark = resolve_config(db, config_path)
        if config is None:  # pragma: no cover - Runtime raises the same error below
            super().__init__(db, config_path, **kwargs)
            raise RuntimeError("configuration could not be resolved")
        self.dashboard = DashboardModel(config)
        super().__init__(db, config_path, **kwargs)
        self.dashboard.snapshot(self.runner.engine)

    def _observe(self, entry: LogEntry, fx: Effects) -> None:
        super()._observe(entry, fx)
        runner = getattr(self, "runner", None)  # absent while Runner.open replays the log
        if runner is not None:
            self.dashboard.received_queue = self.queued_rows
        self.dashboard.observe(fx, runner.engine if runner is not None else None)


def audit_proofs(runtime: Runtime) -> ProofProvider | None:
    """Inclusion proofs from the audit package (issue 3: ``clearlane proof TRADE_ID``), when it is
    installed: the same self-contained JSON document, verifiable offline with the stdlib
    verifier. ``None`` (the page then says "not available") on a build without it."""
    try:
        from clearlane.evidence.prove import EvidenceError, Prover
    except ImportError:
        return None
    prover = Prover(runtime.store)

    def proof(trade_id: str) -> bytes | None:
        try:
            data: bytes = prover.proof_bytes(trade_id)
        except EvidenceError:
            return None
        return data

    return proof


def install(runtime: DashboardRuntime, *, proof: ProofProvider | None = None,
            info: dict[str, Any] | None = None) -> typing.Callable[[FastAPI], None]:
    """An ``extra_routers`` entry for :func:`clearlane.service.app.create_app` (proofs from
    :func:`audit_proofs` unless ``proof`` is given)."""
    proof = proof if proof is not None else audit_proofs(runtime)

    def add(app: FastAPI) -> None:
        dependencies: list[Any] = []
        options = getattr(app.state, "options", None)
        allow = getattr(app.state, "allow", None)
        if allow is not None and (options is None or getattr(options, "auth", True)):
            # app.state.allow(...) is Annotated[Principal, Depends(check)]: reuse its dependency
            dependencies.append(typing.get_args(allow(OPERATOR, AUDITOR))[1])
        auth = bool(dependencies)
        app.include_router(dashboard_router(runtime.dashboard, info={"auth": auth, **(info or {})}, proof=proof,
                                            dependencies=dependencies))
        app.include_router(pages_router())

        @app.get("/", include_in_schema=False)
        def root() -> Any:
            from fastapi.responses import RedirectResponse

            return RedirectResponse("/ui/")

    return add
