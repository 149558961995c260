"""routes owns the HTTP API's resources, one module per resource, each an ``APIRouter``
included by :func:`clearlane.adapters.http.app.create_app` (docs/API.md lists them)."""

from clearlane.adapters.http.routes import (
    batches,
    collateral,
    escrow,
    manual,
    meta,
    payments,
    positions,
    stats,
    stream,
    trades,
)

ROUTERS = (
    meta.router,
    trades.router,
    payments.router,
    collateral.router,
    escrow.router,
    manual.router,
    batches.router,
    positions.router,
    stats.router,
    stream.router,
)

__all__ = ["ROUTERS"]
