"""`clearlane alerts` on a database: list, ack (note + TTL), snooze, silence by matchers,
silences, expire, resolve, show — each with --json, each action in the alert's trail."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from clearlane.adapters.cli.alerts import alerts_app, duration_ms, matcher_of
from clearlane.adapters.cli.main import _Commands, app
from clearlane.adapters.sql.alerts import SqlSilenceStore
from clearlane.adapters.sql.recon import SqlReconStore
from clearlane.adapters.sql.store import Store
from clearlane.core.cases import Severity
from clearlane.node.alerts import AlertService

node = CliRunner()
# The alerts group under main's error handling (typer builds a CLI's whole command tree on
# every invoke: the full app would cost a second per call on a busy machine).
ALERTS = typer.Typer(cls=_Commands)
ALERTS.add_typer(alerts_app, name="alerts")


def _run(*args: str, code: int = 0) -> Any:
    result = node.invoke(ALERTS, ["alerts", *args])
    assert result.exit_code == code, result.output
    return json.loads(result.output) if "--json" in args and code == 0 else result.output


def test_alerts_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "node.db")
    store = Store.open(db, create=True)
    svc = AlertService(SqlReconStore(store), SqlSilenceStore(store), now=lambda: int(time.time() * 1000))
    svc.raise_alert(
        "AnchorBacklogHigh", {"pool": "fast"}, "backlog 40", Severity.HIGH, int(time.time() * 1000), "t"
    )
    store.close()
    [alert] = _run("list", "--db", db, "--json")
    aid = alert["alert_id"]
    acked = _run("ack", aid, "--note", "on it", "--ttl", "4h", "--as", "anna", "--db", db, "--json")
    assert (
        acked["status"] == "acknowledged" and acked["ack_until_ms"] - acked["updated_at_ms"] == 4 * 3_600_000
    )
    sil = _run("silence", "--match", "pool=fast", "--match", "alertname=~Anchor.*", "--for", "1h",
               "--comment", "maintenance", "--db", db, "--json")  # fmt: skip
    assert sil["status"]["state"] == "active" and sil["createdBy"] != ""
    assert "pool=fast" in _run("list", "--status", "silenced", "--db", db)  # the table
    assert _run("silences", "--db", db, "--json")[0]["status"]["state"] == "active"
    assert _run("expire", sil["id"], "--db", db, "--json")["status"]["state"] == "expired"
    assert _run("snooze", aid, "--for", "2h", "--db", db, "--json")["status"] == "snoozed"
    assert _run("resolve", aid, "--note", "drained", "--db", db, "--json")["status"] == "resolved"
    shown = _run("show", aid, "--db", db, "--json")
    _run("resolve", aid, "--note", "", "--db", db, code=2)  # closed already: refused, exit 2
    assert [e["action"] for e in shown["events"]] == [
        "open", "acknowledge", "silence", "unsilence", "snooze", "resolve",
    ]  # fmt: skip
    _run("list", "--db", str(tmp_path / "none.db"), code=2)
    assert any(g.typer_instance is alerts_app for g in app.registered_groups)  # registered in main.py


def test_durations_and_matchers() -> None:
    assert [duration_ms(t) for t in ("500ms", "90s", "15m", "4h", "2d")] == [
        500,
        90_000,
        900_000,
        14_400_000,
        172_800_000,
    ]
    assert matcher_of("pool!~fa.*") == {"name": "pool", "value": "fa.*", "isRegex": True, "isEqual": False}
    assert matcher_of("a=b=c") == {"name": "a", "value": "b=c", "isRegex": False, "isEqual": True}
