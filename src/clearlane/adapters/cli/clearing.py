"""The clearing commands: ``clear`` (a file of trades into a store), ``status`` (one trade's
lifecycle), ``replay`` (rebuild the state from the log and compare roots) and ``close`` (the
end-of-day trial balance); with the file-clearing step and the summary table that ``demo``
reuses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
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
    WriterOption,
    chain_choice,
    console,
    fail,
    missing_db,
    open_node,
    print_json,
    progress_bar,
    writer_in_process,
)
from clearlane.core.model import ids as model_ids


def clear_file(node: Any, path: Path, rejects_path: Path, chunk_rows: int, settle: bool) -> dict[str, Any]:
    """Clear ``path`` through ``node`` (then settle, if asked); rewrite the rejects file.

    Returns ``rejects`` (rows written to the rejects file) and ``run``: this run's figures
    (:func:`clearlane.node.report.run_figures`), apart from the store's totals."""
    from clearlane.node.intake import iter_input, write_rejects
    from clearlane.node.intake.readers import file_digest
    from clearlane.node.report import run_figures, run_start

    rejects: list[Any] = []
    rows_total = _count_rows(path)
    start = run_start(node)
    tally: dict[str, Any] = {"rows": 0, "event_ids": []}
    with progress_bar() as progress:
        task = progress.add_task(f"clearing {path.name}", total=rows_total)
        batches = _tallied(iter_input(path, node.config, chunk_rows=chunk_rows), tally)
        node.clear_batches(
            batches,
            source=model_ids.file_source(file_digest(path)),
            rejects=rejects,
            progress=lambda n: progress.advance(task, n),
        )
        if settle:
            settle_task = progress.add_task("settling on the base layer", total=None)
            node.settle_until_quiet()
            progress.update(settle_task, total=1, completed=1)
    if rejects_path.exists():
        rejects_path.unlink()
    written = write_rejects(rejects_path, rejects) if rejects else 0
    run = run_figures(start, node, tally["rows"], rejects, tally["event_ids"])
    return {"rejects": written, "run": run}


def _tallied(batches: Iterable[Any], tally: dict[str, Any]) -> Iterator[Any]:
    """The batches, counting the rows read (trades, small events, rows refused at the edge) and
    collecting the small events' ids (payments aside: they are flows) for the run's figures."""
    for batch in batches:
        rows = batch.trades.table.num_rows if batch.trades is not None else 0
        tally["rows"] += rows + len(batch.events) + len(batch.rejects)
        for event in batch.events:
            if event.type != "payment":
                tally["event_ids"].append(str(getattr(event, _EVENT_IDS[event.type])))
        yield batch


_EVENT_IDS = {
    "collateral_deposit": "deposit_id",
    "collateral_withdrawal": "withdrawal_id",
    "price_mark": "mark_id",
    "config_change": "change_id",
}


def _count_rows(path: Path) -> int | None:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:
            return None
    return None


def print_summary(summary: dict[str, Any], title: str) -> None:
    """The summary as a table: this run's figures (``summary["run"]``, when given) first, then
    the store's totals (:func:`clearlane.node.report.summary`), each labelled as such."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value")
    run = summary.get("run")
    if run is not None:
        _run_rows(table, run)
        table.add_section()  # below: the store's totals (everything it ever applied)
    lanes = summary["trades_by_lane"]
    table.add_row("store: trades per lane", ", ".join(f"{k}: {v:,}" for k, v in lanes.items()) or "-")
    b = summary["batches"]
    table.add_row(
        "L2 batches",
        f"{b['cleared']:,} cleared, {b['final']:,} final, {b['unwound']:,} unwound, {b['pending']:,} pending",
    )
    table.add_row(
        "L1 transactions",
        f"{summary['l1']['submitted']:,} submitted, {summary['l1']['final']:,} final, {summary['l1']['resubmitted']:,} re-sent",
    )
    table.add_row("gross L2 value", f"{summary['gross_usd']:,.2f} USD")
    table.add_row("net L2 settlement", f"{summary['net_usd']:,.2f} USD")
    table.add_row("netting efficiency", f"{summary['netting_efficiency'] * 100:.2f} %")
    table.add_row("liquidity saved", f"{summary['liquidity_saved_usd']:,.2f} USD")
    for lane, figures in summary["latency_s"].items():
        if figures["n"]:
            table.add_row(
                f"latency {lane}",
                f"p50 {figures['p50']:.2f} s, p99 {figures['p99']:.2f} s (n={figures['n']:,})",
            )
    rejects = summary["rejects_by_code"]
    # Edge rejects never reach the store's engine (they are in the rejects file): say "0", not
    # "none", so the line cannot be read as "nothing was rejected".
    table.add_row("store: engine rejects", ", ".join(f"{k}: {v:,}" for k, v in rejects.items()) or "0")
    table.add_row("store: duplicates (no-ops)", f"{summary['duplicates']:,}")
    if summary.get("ledger_refused"):
        table.add_row(
            "store: ledger refusals",
            f"{summary['ledger_refused']:,} (settlements failed: {summary['settlements_failed']:,}; docs/LIMITS.md)",
        )
    if summary["alerts"]:
        table.add_row("alerts", "; ".join(summary["alerts"][:5]))
    table.add_row("state root", summary["state_root"])
    console.print(table)


def _run_rows(table: Table, run: dict[str, Any]) -> None:
    """This run: rows read = applied + duplicates + rejected (conflicts are among the rejected)."""
    table.add_row("this run: rows read", f"{run['rows_read']:,}")
    table.add_row("this run: applied", f"{run['applied']:,}")
    table.add_row("this run: duplicates (no-ops)", f"{run['duplicates']:,}")
    table.add_row("this run: conflicts (same id, new content)", f"{run['conflicts']:,}")
    by_code = ", ".join(f"{k}: {v:,}" for k, v in run["rejects_by_code"].items())
    table.add_row("this run: rejected", f"{run['rejected']:,}" + (f" ({by_code})" if by_code else ""))


def clear(
    file: Annotated[Path, typer.Argument(help="Trades as .csv, .parquet or .jsonl.")],
    db: DbOption = "clearlane.db",
    config: Annotated[Path | None, typer.Option(help="TOML config (required for a new database).")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Where bad rows go (JSON lines).")] = None,
    chunk_rows: Annotated[int, typer.Option(help="Rows per engine step.")] = 65_536,
    settle: Annotated[bool, typer.Option(help="Advance the base layer until everything is final.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 3 when any row of this run was rejected.")
    ] = False,
    keys: KeysOption = None,
    chain: ChainOption = "simulated",
    rpc_url: RpcUrlOption = None,
    chain_key: ChainKeyOption = None,
    writer: WriterOption = "auto",
) -> None:
    """Clear a file of trades; bad rows go to the rejects file, good rows are applied once."""
    from clearlane.node.report import summary as make_summary

    if not file.exists():
        raise fail(f"{file}: no such file")
    if chunk_rows <= 0:
        raise fail("--chunk-rows must be positive")
    in_process = writer_in_process(writer, file.stat().st_size)
    base_layer = chain_choice(chain, rpc_url, chain_key)
    node = open_node(db, config, keys=keys, chain=base_layer, writer_process=in_process)
    node.warm()  # the compiled kernels loaded with the node, not by the file's first chunks
    rejects_path = rejects or file.with_name(file.name + ".rejects.jsonl")
    started = time.perf_counter()
    result = clear_file(node, file, rejects_path, chunk_rows, settle)
    summary = make_summary(node)
    summary["rejects_file"] = str(rejects_path) if result["rejects"] else None
    summary["rejects_written"] = result["rejects"]
    summary["run"] = result["run"]
    if as_json:
        console.print_json(json.dumps(summary))
    else:
        print_summary(summary, f"{file.name}: cleared in {time.perf_counter() - started:.1f} s")
        if result["rejects"]:
            console.print(f"[yellow]{result['rejects']} rejected rows written to {rejects_path}[/]")
    node.close()
    if strict and result["run"]["rejected"]:
        raise fail(f"{result['run']['rejected']:,} rows rejected (--strict); see {rejects_path}", code=3)


def status(
    trade_id: Annotated[str, typer.Argument(help="Trade or payment id.")],
    db: ExistingDbOption = "clearlane.db",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    schema: Annotated[
        str | None, typer.Option(help="PostgreSQL schema of a worker partition (clearlane_<partition>).")
    ] = None,
) -> None:
    """Show one trade's lifecycle: every transition with its time, both finalities, its badge."""
    from clearlane.adapters.sql.store import Store
    from clearlane.node.report import trade_lifecycle

    if missing_db(db):
        raise fail(f"{db}: no such database")
    store = Store.open(db, create=False, schema=schema)
    life = trade_lifecycle(store, trade_id)
    store.close()
    if life is None:
        raise fail(f"trade {trade_id!r} not found in {db}", code=1)
    if as_json:
        console.print_json(json.dumps(life, default=str))
        return
    console.print(
        f"[bold]{life['id']}[/] {life['kind']} {life['buyer']} ← {life['seller']} "
        f"{life['base']}/{life['quote']}  lane {life['lane'] or '-'} {life['pool'] or ''}"
    )
    console.print(f"[bold]{life['badge']}[/]")
    table = Table("state", "at (UTC)", "detail")
    for t in life["transitions"]:
        table.add_row(t["state"], t["at"] or "-", str(t["detail"]))
    console.print(table)
    console.print(f"L2 cleared: {life['l2_cleared_at'] or '-'}   L1 final: {life['l1_final_at'] or '-'}")


def replay(
    db: ExistingDbOption = "clearlane.db",
    into: Annotated[
        Path | None,
        typer.Option(help="Fresh database to rebuild into (default: <db stem>.replay.db beside it)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild the state from the input log into a fresh database and print the state root."""
    from clearlane.adapters.embedded import simulated_chain
    from clearlane.adapters.sql.store import Store, is_url
    from clearlane.core.engine.core import Engine
    from clearlane.node.node import Node

    if missing_db(db):
        raise fail(f"{db}: no such database")
    if into is None and is_url(db):
        raise fail("--into is needed to replay a database given by URL")
    source = Store.open(db, create=False)
    state = source.engine_state()
    toml_text = source.get_meta("config_toml")
    if state is None or toml_text is None:
        raise fail(f"{db}: empty database, nothing to replay")
    target = into or Path(db).with_name(Path(db).stem + ".replay.db")
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    import tomllib

    from clearlane.core.config.model import parse_config

    config = parse_config(tomllib.loads(toml_text), source=f"{db} (stored config)")
    fresh = Store.open(target)
    for key in ("config_toml", "config_digest", "chain_genesis_ms", "store_id"):
        value = source.get_meta(key)
        if value is not None:
            fresh.set_meta(key, value)
    # The replica keeps the source's identity and first key; rotations come back with the log.
    # It signs nothing (no private key is needed to replay).
    from clearlane.adapters.sql import audit_tables
    from clearlane.node.auditor import Auditor

    init_keys = [k for k in audit_tables.read_keys(source.engine) if k.action == "init"]
    with fresh.engine.begin() as conn:
        for key_record in init_keys:
            audit_tables.write_key(conn, key_record)
    auditor = Auditor(config, source.get_meta("store_id") or "0" * 32, init_keys)
    node = Node(fresh, config, Engine(config), simulated_chain, auditor)
    total = int(state["applied_seq"])
    with progress_bar() as progress:
        task = progress.add_task("replaying", total=total)
        for stored in source.iter_log():
            node.replay_entry(stored)
            progress.advance(task)
    root = node.queries.state_root()
    source.close()
    fresh.close()
    _replay_report(total, target, root, state["state_root"], as_json)


def _replay_report(total: int, target: Path | str, root: str, stored: str, as_json: bool) -> None:
    """The replay's outcome; exit 1 if the replayed root differs from the stored one."""
    same = root == stored
    if as_json:
        print_json(
            {
                "log_entries": total,
                "into": str(target),
                "state_root": root,
                "stored_root": stored,
                "identical": same,
            }
        )
    else:
        console.print(f"replayed {total:,} log entries into {target}")
        console.print(f"state root  {root}")
        console.print(f"stored root {stored}")
    if not same:
        raise fail("replayed state differs from the stored state", code=1)
    if not as_json:
        console.print("[green]identical[/]")


_CLOSE_FIGURES = (
    ("debit", "debit_minor"),
    ("credit", "credit_minor"),
    ("net", "net_minor"),
    ("pending debit", "pending_debit_minor"),
    ("pending credit", "pending_credit_minor"),
)


def close(
    db: ExistingDbOption = "clearlane.db",
    day: Annotated[str, typer.Option(help="Business day label, e.g. 2026-11-20.")] = "today",
    participant: Annotated[
        list[str] | None, typer.Option(help="Each participant's statement instead ('all': everyone).")
    ] = None,
    cutoff: Annotated[str, typer.Option(help="With --participant: books close at HH:MM UTC.")] = "00:00",
    as_json: JsonOption = False,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="With --participant: CSV to this file.")
    ] = None,
) -> None:
    """End-of-day close: trial balance per lane (participants, L1, each L2 pool, house), or with
    --participant each participant's statement for the business day cut from the log's times."""
    if missing_db(db):
        raise fail(f"{db}: no such database")
    if participant:
        from clearlane.adapters.cli.recon import participant_close

        participant_close(db, None if day == "today" else day, participant, cutoff, as_json, csv_path)
        return
    node = open_node(db, None, create=False, signing=False)
    result = node.queries.close_day(day)
    scales = {a.code: a.scale for a in node.config.assets}
    node.close()
    rows = [_close_row(row, scales) for row in result.trial_balance.rows()]
    balanced = bool(result.trial_balance.balanced)
    if as_json:
        print_json(
            {
                "day": day,
                "balanced": balanced,
                "rows": rows,
                "pending_entries": len(result.pending),
                "digest": result.digest_hex,
            }
        )
    else:
        _print_close(day, rows)
        console.print(
            f"in flight across lanes: {len(result.pending)} pending entries; digest {result.digest_hex}"
        )
    if not balanced:
        raise fail("trial balance does not close", code=1)


def _close_row(row: dict[str, Any], scales: dict[str, int]) -> dict[str, Any]:
    """A trial-balance row with each figure in minor units and as a decimal of its asset."""
    from clearlane.core.money import format_minor

    out: dict[str, Any] = {"lane": row["lane"], "asset": row["asset"], "accounts": int(row["accounts"])}
    scale = scales.get(str(row["asset"]), 0)
    for name, key in _CLOSE_FIGURES:
        out[key] = int(row[key])
        out[name.replace(" ", "_")] = format_minor(int(row[key]), scale)
    return out


def _print_close(day: str, rows: list[dict[str, Any]]) -> None:
    """Decimal amounts in the asset's scale. A wide terminal gets one table; a narrow one (80
    columns) two — the posted figures, then what is still pending — so no value is cut: the
    columns fold a long number rather than truncate it."""
    wide = console.width >= 120
    groups = [_CLOSE_FIGURES] if wide else [_CLOSE_FIGURES[:3], _CLOSE_FIGURES[3:]]
    for n, figures in enumerate(groups):
        title = f"Trial balance — {day}" + ("" if wide else (" (posted)" if n == 0 else " (pending)"))
        table = Table(title=title, title_justify="left")
        table.add_column("lane", overflow="fold")
        table.add_column("asset", overflow="fold")
        if n == 0:
            table.add_column("accts", justify="right")
        for name, _key in figures:
            table.add_column(name, justify="right", overflow="fold")
        for row in rows:
            values = [row[name.replace(" ", "_")] for name, _key in figures]
            table.add_row(row["lane"], row["asset"], *([str(row["accounts"])] if n == 0 else []), *values)
        console.print(table)
