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
    KeysOption,
    RpcUrlOption,
    chain_choice,
    console,
    err,
    fail,
    missing_db,
)

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
        float, typer.Option(help="Wall ms the loop waits to gather submissions into one step.")
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
) -> None:
    """Run the engine, its clock and the HTTP API in one process (OpenAPI at /openapi.json)."""
    import uvicorn

    from clearlane.adapters.http.app import ServiceOptions
    from clearlane.adapters.http.server import build
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
    options = RuntimeOptions(
        tick_ms=tick_ms, durable=durable, tune_process=True, flow_id_bloom_bits=id_filter_mib << 23
    )
    api = build(
        db,
        config,
        clock=clock,
        speed=speed,
        runtime_options=options,
        service_options=ServiceOptions(auth=not insecure_no_auth),
        webhooks=webhooks,
        key_dir=keys,
        chain=base_layer,
    )
    if not insecure_no_auth and api.state.keys.count_active() == 0:
        err.print(
            f"[yellow]no API keys yet:[/] create one with  clearlane apikey create --db {db} --role operator"
        )
    err.print(
        f"clearlane serving {db} on http://{host}:{port}  (clock {clock}{f' x{speed:g}' if clock == 'accelerated' else ''})"
    )
    err.print(f"settlement dashboard: http://{host}:{port}/ui/  (needs an operator or auditor key)")
    uvicorn.run(api, host=host, port=port, log_level=log_level, access_log=False)


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
    db: DbOption = "clearlane.db",
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
def apikey_list(db: DbOption = "clearlane.db") -> None:
    """List API keys (ids, roles, participants; never secrets)."""
    keys = _key_store(db)
    table = Table("key id", "role", "participant", "label", "created", "revoked")
    from clearlane.node.report import iso

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
    key_id: Annotated[str, typer.Argument(help="The key id (not the key).")], db: DbOption = "clearlane.db"
) -> None:
    """Revoke an API key (takes effect within seconds on a running server)."""
    keys = _key_store(db)
    done = keys.revoke(key_id)
    keys.store.close()
    if not done:
        raise fail(f"no active key {key_id!r}", code=1)
    console.print(f"revoked {key_id}")
