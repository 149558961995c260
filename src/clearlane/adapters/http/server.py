"""Process wiring for ``clearlane serve``: open the runtime, the key store and the webhook
dispatcher on one database, build the app and run it under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clearlane.adapters.embedded import EMBEDDED, ChainChoice, Embedded
from clearlane.adapters.http import views
from clearlane.adapters.http.app import ServiceOptions, create_app
from clearlane.adapters.http.auth import KeyStore
from clearlane.node.runtime import AcceleratedClock, Clock, RealtimeClock, Runtime, RuntimeOptions


def build(
    db: str | Path,
    config: str | Path | None,
    *,
    clock: str | Clock = "realtime",
    speed: float = 1.0,
    runtime_options: RuntimeOptions | None = None,
    service_options: ServiceOptions | None = None,
    webhooks: bool = True,
    webhook_options: Any = None,
    key_dir: str | Path | None = None,
    dashboard: bool = True,
    chain: ChainChoice | None = None,
) -> Any:
    """The app (with its runtime attached, started by the app's lifespan); ``dashboard`` adds the
    settlement dashboard (:mod:`clearlane.adapters.http`) at /ui/."""
    if isinstance(clock, str):
        chosen: Clock = RealtimeClock() if clock == "realtime" else AcceleratedClock(speed)
    else:
        chosen = clock
    opener = EMBEDDED if chain is None else Embedded(chain)
    extra = []
    if dashboard:
        from clearlane.adapters.http.ui import DashboardRuntime, install

        with_dashboard = DashboardRuntime(
            db, config, clock=chosen, options=runtime_options, keys=key_dir, opener=opener
        )
        extra.append(install(with_dashboard))
        runtime: Runtime = with_dashboard
    else:
        runtime = Runtime(db, config, clock=chosen, options=runtime_options, keys=key_dir, opener=opener)
    keys = KeyStore(runtime.store, set(runtime.config.participant_index()))
    hooks = None
    if webhooks:
        from clearlane.adapters.http.webhooks import WebhookService

        hooks = WebhookService(runtime, webhook_options)
        extra.append(hooks.routes)
    else:
        runtime.replay_tail = []  # nobody will deliver them
    from clearlane.adapters.http.metrics import Metrics

    metrics = Metrics(runtime, hooks)
    extra.append(metrics.routes)
    runtime.stats_builder = lambda: views.stats_event(runtime)
    app = create_app(runtime, keys, options=service_options, manage_runtime=True, extra_routers=extra)
    app.state.webhooks = hooks
    app.state.metrics = metrics
    return app
