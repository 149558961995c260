"""The ``alerts`` command group (issue 15, docs/MONITORING.md "Alerts"): list and show alerts,
acknowledge (note and TTL), snooze, resolve, silence by label matchers, list and expire silences.
It works on the node's database through :class:`clearlane.node.alerts.AlertService` with wall
time; every action is in the alert's trail. A running ``serve`` publishes ``alert.*`` events for
the actions it takes itself (API, timer), not for those taken here in another process.
"""

from __future__ import annotations

import getpass
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from clearlane.adapters.cli.common import DbOption, console, fail, missing_db

if TYPE_CHECKING:  # `clearlane --help` imports no node code (tests/adapters/cli/test_layout.py)
    from clearlane.node.alerts import AlertService

alerts_app = typer.Typer(no_args_is_help=True, help="Alerts: list, ack, snooze, silence, resolve.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ActorOption = Annotated[str | None, typer.Option("--as", help="Who acts (default: the login name).")]
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_OPS = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
_MATCHER = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)(.*)$")


def duration_ms(text: str) -> int:
    """``90s``, ``15m``, ``4h``, ``2d`` (or ``500ms``) in milliseconds."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise fail(f"duration {text!r}: a number and a unit (ms, s, m, h, d), e.g. 4h")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def matcher_of(text: str) -> dict[str, Any]:
    """``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex`` as Alertmanager JSON."""
    m = _MATCHER.match(text)
    if m is None:
        raise fail(f"matcher {text!r}: name=value, name!=value, name=~regex or name!~regex")
    op = m.group(2)
    return {"name": m.group(1), "value": m.group(3), "isRegex": "~" in op, "isEqual": op[0] == "="}


@contextmanager
def _service(db: str) -> Iterator[AlertService]:
    from clearlane.adapters.sql.alerts import SqlSilenceStore
    from clearlane.adapters.sql.recon import SqlReconStore
    from clearlane.adapters.sql.store import Store
    from clearlane.node.alerts import AlertService

    if missing_db(db):
        raise fail(f"{db}: no such database")
    store = Store.open(db, create=False)
    try:
        yield AlertService(SqlReconStore(store), SqlSilenceStore(store), now=lambda: int(time.time() * 1000))
    finally:
        store.close()


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _print(value: Any) -> None:
    console.out(json.dumps(value, indent=1, sort_keys=True), highlight=False)


def _age(ms: int) -> str:
    minutes = ms // 60_000
    if minutes < 60:
        return f"{minutes}m"
    return (
        f"{minutes // 60}h{minutes % 60:02d}m"
        if minutes < 1440
        else f"{minutes // 1440}d{minutes % 1440 // 60}h"
    )


@alerts_app.command("list")
def list_alerts(
    db: DbOption = "clearlane.db",
    status: Annotated[
        str | None, typer.Option(help="open, acknowledged, snoozed, silenced, resolved")
    ] = None,
    include_resolved: Annotated[bool, typer.Option("--all", help="Include resolved alerts.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Alerts, newest first, with status and age."""
    with _service(db) as svc:
        items = svc.alerts(active_only=not include_resolved and status != "resolved", status=status)
    if as_json:
        _print(items)
        return
    table = Table("alert", "status", "severity", "rule", "age", "labels", "summary")
    for a in items:
        labels = ",".join(f"{k}={v}" for k, v in a["labels"].items() if k not in ("alertname", "severity"))
        table.add_row(
            a["alert_id"], a["status"], a["severity"], a["rule"], _age(a["age_ms"]), labels, a["summary"][:60]
        )
    console.print(table)


@alerts_app.command("show")
def show(alert_id: str, db: DbOption = "clearlane.db", as_json: JsonOption = False) -> None:
    """One alert with its trail."""
    with _service(db) as svc:
        found = svc.get(alert_id)
    if as_json:
        _print(found)
        return
    console.print(f"{found['alert_id']}  {found['status']}  {found['rule']}  age {_age(found['age_ms'])}")
    for e in found["events"]:
        console.print(f"  {e['at']}  {e['action']:<12} {e['actor']:<12} {e['note'] or ''}", highlight=False)


def _act(db: str, alert_id: str, action: str, actor: str | None, body: dict[str, Any], as_json: bool) -> None:
    with _service(db) as svc:
        done = svc.act(alert_id, action, _actor(actor), body)
    if as_json:
        _print(done)
    else:
        console.print(f"{done['alert_id']}: {done['status']} (version {done['version']})")


@alerts_app.command("ack")
def ack(
    alert_id: str,
    note: Annotated[str, typer.Option(help="What is being done about it.")],
    ttl: Annotated[str, typer.Option(help="When the ack lapses and the alert notifies again (e.g. 4h).")],
    db: DbOption = "clearlane.db",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Acknowledge an alert with a note; it is open again after the TTL."""
    _act(db, alert_id, "acknowledge", actor, {"note": note, "ttl_ms": duration_ms(ttl)}, as_json)


@alerts_app.command("snooze")
def snooze(
    alert_id: str,
    for_: Annotated[str, typer.Option("--for", help="How long (e.g. 2h).")],
    note: Annotated[str | None, typer.Option(help="Why.")] = None,
    db: DbOption = "clearlane.db",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Snooze an alert for a while; it is open again after."""
    _act(db, alert_id, "snooze", actor, {"note": note, "ttl_ms": duration_ms(for_)}, as_json)


@alerts_app.command("resolve")
def resolve(
    alert_id: str,
    note: Annotated[str, typer.Option(help="How it was resolved.")],
    db: DbOption = "clearlane.db",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resolve an alert (a note is required)."""
    _act(db, alert_id, "resolve", actor, {"note": note}, as_json)


@alerts_app.command("silence")
def silence(
    match: Annotated[
        list[str], typer.Option("--match", help="A label matcher, repeatable: name=value, =~, !=, !~.")
    ],
    for_: Annotated[str, typer.Option("--for", help="How long (e.g. 2h).")],
    comment: Annotated[str, typer.Option(help="Why (required).")],
    db: DbOption = "clearlane.db",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Silence every alert whose labels match all matchers, from now for a while."""
    body = {"matchers": [matcher_of(m) for m in match], "ttl_ms": duration_ms(for_), "comment": comment}
    with _service(db) as svc:
        created = svc.create_silence(body, _actor(actor))
    if as_json:
        _print(created)
    else:
        console.print(f"{created['id']}: {created['status']['state']} until {created['endsAt']}")


@alerts_app.command("silences")
def silences(db: DbOption = "clearlane.db", as_json: JsonOption = False) -> None:
    """Silences, newest first (pending, active, expired)."""
    with _service(db) as svc:
        items = svc.list_silences()
    if as_json:
        _print(items)
        return
    table = Table("silence", "state", "matchers", "ends", "by", "comment")
    for s in items:
        ops = [m["name"] + _OPS[m["isRegex"], m["isEqual"]] + m["value"] for m in s["matchers"]]
        table.add_row(
            s["id"], s["status"]["state"], " ".join(ops), s["endsAt"], s["createdBy"], s["comment"][:40]
        )
    console.print(table)


@alerts_app.command("expire")
def expire(silence_id: str, db: DbOption = "clearlane.db", as_json: JsonOption = False) -> None:
    """Expire a silence now."""
    with _service(db) as svc:
        done = svc.expire_silence(silence_id)
    if as_json:
        _print(done)
    else:
        console.print(f"{done['id']}: {done['status']['state']}")
