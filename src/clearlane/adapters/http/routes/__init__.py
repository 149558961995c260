"""routes owns the HTTP API's resources, one module per resource, each an ``APIRouter``
included by :func:`clearlane.adapters.http.app.create_app` (docs/API.md lists them)."""

from clearlane.adapters.http.routes import (
    alerts,
    batches,
    cases,
    collateral,
    escrow,
    manual,
    meta,
    monitoring,
    payments,
    positions,
    recon,
    stats,
    stream,
    stress,
    trades,
)

ROUTERS = (
    meta.router,
    trades.router,
    payments.router,
    collateral.router,
    escrow.router,
    recon.router,
    cases.router,
    manual.router,
    batches.router,
    positions.router,
    stats.router,
    stream.router,
    alerts.router,
    stress.router,
    monitoring.router,
)

__all__ = ["ROUTERS"]
