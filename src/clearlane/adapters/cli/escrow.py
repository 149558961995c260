"""The ``escrow`` command group (issue 12, docs/ESCROW.md): ``act`` logs escrow actions (JSON
objects, as the HTTP API takes them) into a store through the node, ``show`` and ``list`` read
escrows back, ``bench`` times N escrows × 5 transitions in-process."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clearlane.adapters.cli.common import DbOption, console, fail, missing_db, open_node

escrow_app = typer.Typer(no_args_is_help=True, help="Escrow for marketplaces: act, show, list, bench.")

ConfigOption = Annotated[Path | None, typer.Option(help="TOML config (required for a new database).")]


def _actions(bodies: list[str], file: Path | None) -> list[Any]:
    texts = list(bodies)
    if file is not None:
        texts += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for n, text in enumerate(texts):
        try:
            out.append(json.loads(text))
        except json.JSONDecodeError as exc:
            raise fail(f"action {n}: not JSON: {exc}") from None
    return out


@escrow_app.command("act")
def act(
    bodies: Annotated[list[str] | None, typer.Argument(help="Escrow actions as JSON objects.")] = None,
    file: Annotated[Path | None, typer.Option(help="A file of JSON-lines actions.")] = None,
    db: DbOption = "clearlane.db",
    config: ConfigOption = None,
    at_ms: Annotated[int | None, typer.Option(help="Engine time of the actions (default: now).")] = None,
) -> None:
    """Log and apply escrow actions in order; print each receipt (exit 1 if any was refused)."""
    from clearlane.node import escrow as escrow_app_logic

    actions = _actions(bodies or [], file)
    node = open_node(db, config)
    refused = 0
    try:
        for n, body in enumerate(actions):
            action, err = escrow_app_logic.parse_action(body, n)
            if action is None or err is not None:
                console.print_json(json.dumps({"index": n, "refused": err.to_dict() if err else None}))
                refused += 1
                continue
            now = at_ms if at_ms is not None else int(time.time() * 1000)
            at = max(now, node.queries.engine_time_ms())
            receipt = escrow_app_logic.submit(node, action, at)
            refused += receipt.outcome.reject is not None
            console.print_json(json.dumps(receipt.to_dict()))
        node.checkpoint()  # balances materialised and the new log head signed, as `clear` does
    finally:
        node.close()
    if refused:
        raise typer.Exit(1)


def _views(db: str) -> list[Any]:
    if missing_db(db):
        raise fail(f"{db}: no such database")
    node = open_node(db, None, create=False, signing=False)
    try:
        views: list[Any] = node.queries.escrow_views()
        return views
    finally:
        node.close()


@escrow_app.command("show")
def show(
    escrow_id: Annotated[str, typer.Argument(help="Escrow id.")],
    db: DbOption = "clearlane.db",
) -> None:
    """One escrow: its state, parties, conditions, deadlines and where its money is (JSON)."""
    from clearlane.node.escrow import view_dict

    found = [v for v in _views(db) if v.escrow_id == escrow_id]
    if not found:
        raise fail(f"escrow {escrow_id!r} not found in {db}", code=1)
    console.print_json(json.dumps(view_dict(found[0])))


@escrow_app.command("list")
def list_escrows(
    db: DbOption = "clearlane.db",
    state: Annotated[str | None, typer.Option(help="Only escrows in this state.")] = None,
) -> None:
    """Every escrow with its state, deadlines and where its money is."""
    from clearlane.node.events import iso

    table = Table("escrow", "state", "asset", "amount", "buyer", "escrow", "clearing", "final", "deadline")
    for v in _views(db):
        if state is not None and v.state.label != state:
            continue
        deadline = v.inspection_deadline_ms or v.fund_deadline_ms
        w = v.where
        table.add_row(
            v.escrow_id,
            v.state.label,
            v.asset,
            str(v.amount_minor),
            str(w.buyer),
            str(w.escrow),
            str(w.clearing),
            str(w.final),
            iso(deadline) or "-",
        )
    console.print(table)


@escrow_app.command("bench")
def bench(
    escrows: Annotated[int, typer.Option(min=1, max=1_000_000, help="Number of escrows.")] = 10_000,
    config: ConfigOption = None,
) -> None:
    """Time N escrows × 5 transitions (with their ledger postings) in the engine, in-process."""
    from clearlane.core.config.model import load_config
    from clearlane.node.escrow_bench import run

    path = (
        config
        if config is not None
        else Path(__file__).resolve().parents[2] / "core" / "config" / "example.toml"
    )
    result = run(load_config(path), escrows)
    console.print_json(json.dumps(result.to_dict()))
