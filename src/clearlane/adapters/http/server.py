"""Process wiring for ``clearlane serve``: open the runtime, the key store and the webhook
dispatcher on one database, build the app and run it under uvicorn with the connection limits
of :class:`ServerLimits`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearlane.adapters.embedded import SIMULATED, ChainChoice, Embedded
from clearlane.adapters.http import views
from clearlane.adapters.http.app import ServiceOptions, create_app
from clearlane.adapters.http.auth import KeyStore
from clearlane.adapters.http.routes import alerts as alert_routes
from clearlane.adapters.sql.store import SERVICE_PAGE_SIZE
from clearlane.node.monitor.service import Monitor, MonitorOptions
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
    monitor: MonitorOptions | None = None,
    nats: Any = None,
) -> Any:
    """The app (with its runtime attached, started by the app's lifespan); ``dashboard`` adds the
    settlement dashboard (:mod:`clearlane.adapters.http`) at /ui/."""
    if isinstance(clock, str):
        chosen: Clock = RealtimeClock() if clock == "realtime" else AcceleratedClock(speed)
    else:
        chosen = clock
    # A store the service creates gets a service's small pages (Store.open, SERVICE_PAGE_SIZE).
    opener = Embedded(SIMULATED if chain is None else chain, page_size=SERVICE_PAGE_SIZE)
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
    from clearlane.adapters.http.routes import monitoring

    watcher = Monitor.attach(runtime, monitor, verifier=monitoring.proof_verifier(runtime))
    monitoring.install_gauges(metrics, watcher)
    app = create_app(runtime, keys, options=service_options, manage_runtime=True, extra_routers=extra)
    app.state.webhooks = hooks
    app.state.metrics = metrics
    app.state.alerts = alert_routes.build_service(runtime)  # its timer runs in the app's lifespan
    app.state.monitor = watcher
    app.state.nats_events = None if nats is None else _nats_events(runtime, metrics, watcher, nats)
    return app


def _nats_events(runtime: Runtime, metrics: Any, watcher: Monitor, nats: tuple[str, Any]) -> Any:
    """``serve --nats``: the publisher of the public events (adapters/nats/events_out.py),
    its metrics, and its alert raised through the monitor's ``alert.raised`` path."""
    from clearlane.adapters.nats.events_out import NatsEventPublisher, PublisherCollector

    def alert(kind: str, severity: str, message: str) -> None:
        watcher.raise_alert(kind, severity, message, runtime.clock.now_ms())

    url, options = nats
    subscriptions: tuple[Any, ...] = ()
    if options.escrow_actions:
        from clearlane.adapters.nats import escrow_in

        on_action = escrow_in.handler(runtime.submit_events)
        subscriptions = ((escrow_in.ESCROW_ACTIONS_SUBJECT, escrow_in.QUEUE_GROUP, on_action),)
    publisher = NatsEventPublisher(runtime.bus, url, options, alert=alert, subscriptions=subscriptions)
    metrics.registry.register(PublisherCollector(publisher))
    return publisher


@dataclass(frozen=True)
class ServerLimits:
    """What a connection may take before the app sees its request, and how long a stop waits."""

    header_timeout_s: float = 10.0  # request line and headers (slowloris): 408, closed
    max_header_bytes: int = 64 * 1024  # request line and headers: 431, closed
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this
    # SIGTERM/SIGINT: requests still running after this are cancelled (an SSE stream never
    # ends on its own), so a stop never waits on a client.
    graceful_shutdown_s: int = 5


def server_config(app: Any, host: str, port: int, limits: ServerLimits, log_level: str = "warning") -> Any:
    """The uvicorn configuration of ``clearlane serve`` (tests run it in a thread)."""
    import uvicorn

    from clearlane.adapters.http.protocol import guarded_protocol

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http=guarded_protocol(limits.header_timeout_s, limits.max_header_bytes),
        timeout_keep_alive=max(1, round(limits.keep_alive_s)),
        timeout_graceful_shutdown=limits.graceful_shutdown_s,
    )


def serve_until_signal(config: Any, on_stopping: Callable[[], None] | None = None) -> None:
    """Run uvicorn until SIGTERM or SIGINT and return (uvicorn itself would re-raise the signal
    after its graceful stop, so the process would die by it before the caller could say how the
    runtime ended and choose the exit code). ``on_stopping`` runs when the stop begins, before
    uvicorn waits for the running requests (the service ends its event streams there)."""
    import signal
    import threading

    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            signals = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        async def shutdown(self, sockets: Any = None) -> None:
            if on_stopping is not None:
                on_stopping()
            await super().shutdown(sockets)

    _Server(config).run()
