"""The dashboard inside the clearing service (``clearlane serve`` and ``clearlane demo``).

The dashboard has no read model of its own: it reads the service's
(:class:`~clearlane.node.projections.readmodel.ReadModel`), its runtime and its stream. The one thing the
service does not keep is who was rejected — :class:`RejectTally` counts rejects per participant
from the same committed effects (and the submissions the demo's venue saw refused at the edge);
:class:`DashboardRuntime` is the service runtime whose observer also feeds it, for every step
replayed on open and every live step. :func:`install` adds the dashboard's routes to the service
app: its data views behind the service's API keys (roles operator and auditor: the dashboard shows
every participant), the participant portal's views behind any key (each scoped to the key's
participant), the page and the Plotly bundle without (they hold no data).
"""

from __future__ import annotations

import threading
import typing
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi import FastAPI

from clearlane.adapters.http.auth import AUDITOR, OPERATOR
from clearlane.adapters.http.dashboard import ProofProvider, Views, client_router, data_router, pages_router
from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine.core import LogEntry
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.events import Step
from clearlane.core.model.states import TradeState
from clearlane.node.runtime import Opener, Runtime

RECENT_MAX = 500
# The engine records an unknown participant or symbol with placeholder parties: not attributable.
_UNATTRIBUTABLE = (int(RejectCode.UNKNOWN_PARTICIPANT), int(RejectCode.UNKNOWN_SYMBOL))


class RejectTally:
    """Rejects per participant and the latest rejects (the service counts them by code only)."""

    def __init__(self, config: ClearingConfig) -> None:
        self.lock = threading.Lock()
        self.ids = config.participant_ids
        self.lookup = config.participant_index()
        self.by_participant = np.zeros(config.participant_count, dtype=np.int64)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_MAX)

    def observe(self, fx: Step) -> None:
        for table in fx.tables():
            state = table.column("state").to_numpy()
            rejected = np.flatnonzero(state == TradeState.REJECTED)
            if not len(rejected):
                continue
            rows = (
                table.take(pa.array(rejected))
                .select(["flow_id", "buyer", "seller", "reject_code", "received_ms"])
                .to_pylist()
            )
            with self.lock:
                for row in rows:
                    code = RejectCode(int(row["reject_code"]))
                    who = [] if int(code) in _UNATTRIBUTABLE else [str(row["buyer"]), str(row["seller"])]
                    self._count(who)
                    self.recent.appendleft(
                        {
                            "id": row["flow_id"],
                            "code": int(code),
                            "error": code.slug,
                            "field": None,
                            "reason": code.slug.replace("_", " "),
                            "at_ms": int(row["received_ms"]),
                            "where": "engine",
                            "participants": who,
                        }
                    )

    def edge(self, rejects: list[Reject], who: list[tuple[str | None, str | None]], at_ms: int) -> None:
        """Rows refused at the edge (never logged), with the parties the submitter named."""
        with self.lock:
            for r, parties in zip(rejects, who, strict=True):
                names = [p for p in parties if p and p in self.lookup]
                self._count(names)
                self.recent.appendleft(
                    {
                        "id": r.input_id,
                        "code": int(r.code),
                        "error": r.code.slug,
                        "field": r.field,
                        "reason": r.reason,
                        "at_ms": at_ms,
                        "where": "edge",
                        "participants": names,
                    }
                )

    def _count(self, names: list[str]) -> None:
        for name in names:
            i = self.lookup.get(name)
            if i is not None:
                self.by_participant[i] += 1

    def recent_for(self, participant: str | None, limit: int = 20) -> list[dict[str, Any]]:
        with self.lock:
            items = [r for r in self.recent if participant is None or participant in r["participants"]]
        return items[:limit]


class DashboardRuntime(Runtime):
    """The service runtime, whose observer also feeds the dashboard's :class:`RejectTally`."""

    def __init__(
        self, db: str | Path, config_path: str | Path | None = None, *, opener: Opener, **kwargs: Any
    ) -> None:
        config, _mark = opener.resolve_config(db, config_path)
        if config is None:  # pragma: no cover - Runtime raises the same error below
            super().__init__(db, config_path, opener=opener, **kwargs)
            raise RuntimeError("configuration could not be resolved")
        self.tally = RejectTally(config)
        super().__init__(db, config_path, opener=opener, **kwargs)

    def _observe(self, entry: LogEntry, fx: Step) -> None:
        super()._observe(entry, fx)
        self.tally.observe(fx)


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


def install(
    runtime: DashboardRuntime, *, proof: ProofProvider | None = None, info: dict[str, Any] | None = None
) -> typing.Callable[[FastAPI], None]:
    """An ``extra_routers`` entry for :func:`clearlane.adapters.http.app.create_app` (proofs from
    :func:`audit_proofs` unless ``proof`` is given)."""
    proof = proof if proof is not None else audit_proofs(runtime)

    def add(app: FastAPI) -> None:
        dependencies: list[Any] = []
        options = getattr(app.state, "options", None)
        allow = getattr(app.state, "allow", None)
        if allow is not None and (options is None or getattr(options, "auth", True)):
            # app.state.allow(...) is Annotated[Principal, Depends(check)]: reuse its dependency
            dependencies.append(typing.get_args(allow(OPERATOR, AUDITOR))[1])
        views = Views(runtime, proof, {"auth": bool(dependencies), **(info or {})})
        app.state.dashboard_views = views
        app.include_router(data_router, dependencies=dependencies)
        # Any key, each route scoped to its principal (the participant portal reads these).
        app.include_router(client_router)
        app.include_router(pages_router())

        @app.get("/", include_in_schema=False)
        def root() -> Any:
            from fastapi.responses import RedirectResponse

            return RedirectResponse("/ui/")

    return add
