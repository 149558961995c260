"""The HTTP service commands: ``serve`` (the engine, its clock and the API in one process) and the
``apikey`` group (``create``, ``list``, ``revoke``: the keys ``serve`` accepts, stored hashed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clearlane.adapters.cli.common import (
    ChainKeyOption,
    ChainOption,
    DbOption,
    ExistingDbOption,
    JsonOption,
    KeysOption,
    RpcUrlOption,
    chain_choice,
    console,
    err,
    fail,
    missing_db,
    print_json,
)

# The edge's limits and access (docs/API.md, "Limits at the edge", "Webhooks", "Metrics").
MaxBodyOption = Annotated[int, typer.Option(help="Largest request body, KiB (larger: 413).")]
BodyTimeoutOption = Annotated[
    float, typer.Option(help="Seconds a client may take to send a request body (then 408).")
]
HeaderTimeoutOption = Annotated[
    float, typer.Option(help="Seconds a client may take to send a request's headers (then 408).")
]
WebhookAllowOption = Annotated[
    list[str] | None,
    typer.Option(
        help="A host, address or network webhooks may reach over http or at a non-public "
        "address (local development; repeatable). Default: https to public addresses only."
    ),
]
MetricsTokenOption = Annotated[
    Path | None,
    typer.Option(
        help="File holding the bearer token a Prometheus scraper may use for /metrics "
        "(or set CLEARLANE_METRICS_TOKEN); without one, /metrics needs an operator or auditor key."
    ),
]

NatsOption = Annotated[
    str | None,
    typer.Option(
        "--nats",
        help="Also publish the public events to NATS JetStream (clearlane.events.<scope>.<type>; "
        "docs/API.md, Events on NATS). Never blocks clearing: a bounded queue, reconnect with backoff.",
    ),
]
NatsTypesOption = Annotated[
    list[str] | None,
    typer.Option(
        help="Event types --nats publishes (repeatable or comma-separated; 'all': the whole "
        "vocabulary). Default: what webhooks carry plus alert.raised, less trade.cleared and "
        "trade.final (per trade: add them where the trade rate allows)."
    ),
]
NatsEscrowOption = Annotated[
    bool,
    typer.Option(
        help="With --nats: also answer escrow actions requested on clearlane.escrow.actions "
        "(docs/ESCROW.md; whoever may publish there acts for any party)."
    ),
]
NatsAlertOption = Annotated[
    float,
    typer.Option(help="Seconds NATS publishing may fail before an alert.raised (nats_publish_failing)."),
]

apikey_app = typer.Typer(
    no_args_is_help=True, help="API keys for clearlane serve (stored hashed; shown once)."
)


def serve(
    db: DbOption = "clearlane.db",
    config: Annotated[Path | None, typer.Option(help="TOML config (required for a new database).")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    clock: Annotated[
        str,
        typer.Option(help="realtime (wall clock) or accelerated (engine time runs --speed times faster)."),
    ] = "realtime",
    speed: Annotated[float, typer.Option(help="Engine ms per wall ms with --clock accelerated.")] = 60.0,
    tick_ms: Annotated[
        float,
        typer.Option(help="Wall ms a submission waits at most for its step (sooner at a window's end)."),
    ] = 50.0,
    durable: Annotated[bool, typer.Option(help="fsync every step (survives power loss, slower).")] = False,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth", help="Every request acts as an operator (local development only)."
        ),
    ] = False,
    webhooks: Annotated[bool, typer.Option(help="Deliver webhooks.")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    keys: KeysOption = None,
    id_filter_mib: Annotated[
        int,
        typer.Option(
            help="Bloom filter over archived trade ids, MiB (a power of two; ~16 bits per id held)."
        ),
    ] = 32,
    chain: ChainOption = "simulated",
    rpc_url: RpcUrlOption = None,
    chain_key: ChainKeyOption = None,
    max_body_kib: MaxBodyOption = 16384,
    body_timeout: BodyTimeoutOption = 30.0,
    header_timeout: HeaderTimeoutOption = 10.0,
    webhook_allow: WebhookAllowOption = None,
    metrics_token_file: MetricsTokenOption = None,
    canary_interval_ms: Annotated[
        int | None,
        typer.Option(help="Engine ms between canary rounds (default: a minute or what paths need)."),
    ] = None,
    halt_l2_on_divergence: Annotated[
        bool, typer.Option(help="Log a config change halting an asset's L2 routing while its marks diverge.")
    ] = False,
    nats_url: NatsOption = None,
    nats_types: NatsTypesOption = None,
    nats_alert_after: NatsAlertOption = 60.0,
    nats_escrow_actions: NatsEscrowOption = False,
    gateways: Annotated[
        int,
        typer.Option(
            min=0,
            max=16,
            help="Gateway processes on --gateway-port: HTTP fronts that decode trade batches off the "
            "engine's process and hand every other request to it (docs/SCALING.md).",
        ),
    ] = 0,
    gateway_port: Annotated[
        int | None, typer.Option(help="The gateways' TCP port (default: --port + 1).")
    ] = None,
) -> None:
    """Run the engine, its clock and the HTTP API in one process (OpenAPI at /openapi.json);
    with --gateways, HTTP front processes beside it on a second port."""
    from clearlane.adapters.http.app import ServiceOptions
    from clearlane.adapters.http.server import ServerLimits, build
    from clearlane.node.runtime import RuntimeOptions

    if clock not in ("realtime", "accelerated"):
        raise fail("--clock must be realtime or accelerated")
    if speed <= 0:
        raise fail("--speed must be positive")
    if id_filter_mib < 1 or id_filter_mib & (id_filter_mib - 1):
        raise fail("--id-filter-mib must be a power of two")
    base_layer = chain_choice(chain, rpc_url, chain_key)
    if chain == "ethereum" and clock != "realtime":
        raise fail("--chain ethereum runs on the wall clock: use --clock realtime")
    if max_body_kib < 1 or body_timeout <= 0 or header_timeout <= 0:
        raise fail("--max-body-kib, --body-timeout and --header-timeout must be positive")
    options = RuntimeOptions(
        tick_ms=tick_ms, durable=durable, tune_process=True, flow_id_bloom_bits=id_filter_mib << 23
    )
    service_options = ServiceOptions(
        auth=not insecure_no_auth,
        max_body_bytes=max_body_kib * 1024,
        body_timeout_s=body_timeout,
        metrics_token=_metrics_token(metrics_token_file),
    )
    from clearlane.core.monitor.policy import HaltPolicy
    from clearlane.node.monitor.canaries import CanaryOptions
    from clearlane.node.monitor.service import MonitorOptions

    monitor = MonitorOptions(
        canaries=CanaryOptions(interval_ms=canary_interval_ms), halt=HaltPolicy(enabled=halt_l2_on_divergence)
    )
    api = build(
        db,
        config,
        clock=clock,
        speed=speed,
        runtime_options=options,
        service_options=service_options,
        webhooks=webhooks,
        webhook_options=_webhook_options(webhook_allow),
        key_dir=keys,
        chain=base_layer,
        monitor=monitor,
        nats=_nats(nats_url, nats_types, nats_alert_after, nats_escrow_actions),
    )
    limits = ServerLimits(header_timeout_s=header_timeout)
    front = None
    if gateways:
        front = _gateways(gateways, host, gateway_port or port + 1, service_options, limits, log_level)
        api.state.gateways = front
        api.state.metrics.gateways = front
    if not insecure_no_auth and api.state.keys.count_active() == 0:
        err.print(
            f"[yellow]no API keys yet:[/] create one with  clearlane apikey create --db {db} --role operator"
        )
    err.print(
        f"clearlane serving {db} on http://{host}:{port}  (clock {clock}{f' x{speed:g}' if clock == 'accelerated' else ''})"
    )
    err.print(f"settlement dashboard: http://{host}:{port}/ui/  (needs an operator or auditor key)")
    if front is not None:
        err.print(f"{gateways} gateway process(es) on http://{host}:{front.port}  (the same API)")
    _run_server(api, host, port, limits, log_level)


def _gateways(count: int, host: str, port: int, service: Any, limits: Any, log_level: str) -> Any:
    """``--gateways``: their options, and the port bound now (in use: an invocation error)."""
    from clearlane.adapters.http.link import GatewayOptions, Gateways

    front = Gateways(
        GatewayOptions(
            count=count,
            host=host,
            port=port,
            max_body_bytes=service.max_body_bytes,
            body_timeout_s=service.body_timeout_s,
            max_json_depth=service.max_json_depth,
            header_timeout_s=limits.header_timeout_s,
            max_header_bytes=limits.max_header_bytes,
            keep_alive_s=limits.keep_alive_s,
            log_level=log_level,
        )
    )
    try:
        front.bind()
    except OSError as exc:
        raise fail(f"--gateway-port {port}: {exc.strerror or exc}") from None
    return front


def _log_with_request_ids(level: str) -> None:
    """clearlane's own log lines on stderr, each with the id of the request it was written for
    (``-`` outside one); ``--log-level info`` adds one access line per request
    (``clearlane.http.access``: id, method, path, status, duration)."""
    import logging

    from clearlane.adapters.http.idempotency import RequestIdLogFilter

    root = logging.getLogger("clearlane")
    if any(isinstance(f, RequestIdLogFilter) for h in root.handlers for f in h.filters):
        return  # installed by an earlier serve in this process
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdLogFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "WARNING")


def _run_server(api: Any, host: str, port: int, limits: Any, log_level: str) -> None:
    """Serve until SIGTERM/SIGINT. A clearing loop that failed meanwhile keeps the API answering
    503 (``/healthz``: failed) until then, and makes the exit code 1 with the failure named."""
    from clearlane.adapters.http.server import serve_until_signal, server_config

    _log_with_request_ids(log_level)
    serve_until_signal(server_config(api, host, port, limits, log_level), api.state.runtime.bus.end_streams)
    failed = api.state.runtime.failed
    if failed is not None:
        raise fail(f"the clearing runtime failed: {type(failed).__name__}: {failed}", code=1)


def _nats(url: str | None, types: list[str] | None, alert_after_s: float, escrow: bool) -> Any:
    """``--nats``: (url, PublisherOptions), or None; a bad setting fails before anything opens."""
    if url is None:
        if types or escrow:
            raise fail("--nats-types and --nats-escrow-actions need --nats")
        return None
    from clearlane.adapters.nats.events_out import PublisherOptions, event_types

    if alert_after_s <= 0:
        raise fail("--nats-alert-after must be positive")
    try:
        chosen = event_types(types)
    except ValueError as exc:
        raise fail(str(exc)) from None
    return url, PublisherOptions(types=chosen, alert_after_s=alert_after_s, escrow_actions=escrow)


def _webhook_options(allow: list[str] | None) -> Any:
    from clearlane.adapters.http.targets import TargetPolicy
    from clearlane.adapters.http.webhooks import WebhookOptions

    options = WebhookOptions(allow=tuple(allow or ()))
    try:
        TargetPolicy(options.allow)  # a bad entry is an invocation error, before any I/O
    except ValueError as exc:
        raise fail(f"--webhook-allow: {exc}") from None
    return options


def _metrics_token(path: Path | None) -> str | None:
    import os

    if path is None:
        return os.environ.get("CLEARLANE_METRICS_TOKEN") or None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise fail(f"--metrics-token-file: {exc}") from None
    if len(token) < 16:
        raise fail("--metrics-token-file: the token must be at least 16 characters")
    return token


def _key_store(db: str) -> Any:
    from clearlane.adapters.http.auth import KeyStore
    from clearlane.adapters.sql.store import Store

    if missing_db(db):
        raise fail(f"{db}: no such database (create it with clearlane serve --config or clearlane clear)")
    store = Store.open(db, create=False)
    participants = None
    toml_text = store.get_meta("config_toml")
    if toml_text is not None:
        import tomllib

        from clearlane.core.config.model import parse_config

        participants = set(parse_config(tomllib.loads(toml_text), source=str(db)).participant_index())
    return KeyStore(store, participants)


@apikey_app.command("create")
def apikey_create(
    db: ExistingDbOption = "clearlane.db",
    role: Annotated[str, typer.Option(help="participant, operator or auditor.")] = "operator",
    participant: Annotated[
        str | None, typer.Option(help="The participant a participant key acts for.")
    ] = None,
    label: Annotated[str, typer.Option(help="A note (who holds the key).")] = "",
) -> None:
    """Create an API key and print it (once: only its hash is stored)."""

    keys = _key_store(db)
    try:
        principal, token = keys.create(role, participant, label)
    finally:
        keys.store.close()
    err.print(
        f"created {principal.role} key {principal.key_id}" + (f" for {participant}" if participant else "")
    )
    print(token)


@apikey_app.command("list")
def apikey_list(db: ExistingDbOption = "clearlane.db", as_json: JsonOption = False) -> None:
    """List API keys (ids, roles, participants; never secrets)."""
    keys = _key_store(db)
    table = Table("key id", "role", "participant", "label", "created", "revoked")
    from clearlane.node.report import iso

    if as_json:
        rows = keys.list()
        keys.store.close()
        print_json(
            [
                {
                    "key_id": r["key_id"],
                    "role": r["role"],
                    "participant": r["participant"],
                    "label": r["label"] or "",
                    "created_at": iso(int(r["created_ms"])),
                    "revoked_at": iso(r["revoked_ms"]),
                }
                for r in rows
            ]
        )
        return
    for row in keys.list():
        table.add_row(
            row["key_id"],
            row["role"],
            row["participant"] or "-",
            row["label"] or "",
            iso(int(row["created_ms"])) or "-",
            iso(row["revoked_ms"]) or "-",
        )
    keys.store.close()
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (not the key).")],
    db: ExistingDbOption = "clearlane.db",
) -> None:
    """Revoke an API key (a running server refuses it from its next request)."""
    keys = _key_store(db)
    done = keys.revoke(key_id)
    keys.store.close()
    if not done:
        raise fail(f"no active key {key_id!r}", code=1)
    console.print(f"revoked {key_id}")
