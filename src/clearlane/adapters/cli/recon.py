"""The ``recon`` command group: import bank statements (camt.053/054, MT940) and exchange batch
reports, run the matcher for a day, list the exception queue with its ageing and SLA, and act on
a case (assign, resolve, accept). Everything goes through :mod:`clearlane.node.recon.service`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from clearlane.adapters.cli.common import DbOption, console, fail, missing_db

recon_app = typer.Typer(no_args_is_help=True, help="Reconciliation: statements, batch reports, exceptions.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
NatsOption = Annotated[
    str | None,
    typer.Option(
        "--nats", help="Also publish the exception.* events to NATS (clearlane.events.cases.<type>)."
    ),
]


def nats_messages(changes: list[Any], scales: dict[str, int]) -> list[tuple[str, str, bytes]]:
    """(subject, Nats-Msg-Id, payload) of each case change's public event, in order: the
    vocabulary's names, the event id as the message id (JetStream drops a re-publish) — the
    same messages ``clearlane serve --nats`` publishes (adapters/nats/events_out.py)."""
    from clearlane.adapters.nats.events_out import messages_of
    from clearlane.node.events import EXCEPTION_EVENTS
    from clearlane.node.recon.cases import case_event_groups

    return messages_of(case_event_groups(changes, scales), frozenset(EXCEPTION_EVENTS))


def _publish(url: str | None, changes: list[Any], scales: dict[str, int]) -> None:
    if url is None or not changes:
        return
    import asyncio

    messages = nats_messages(changes, scales)

    async def send() -> None:
        import nats

        from clearlane.adapters.nats.events_out import publish_messages
        from clearlane.adapters.nats.messages import ensure_streams

        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
        try:
            js = nc.jetstream(timeout=30)
            await ensure_streams(js)
            await publish_messages(js, messages)
        finally:
            await nc.close()

    asyncio.run(send())
    console.print(f"published {len(messages)} case events to {url}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _open(db: str, *, create: bool = False) -> Any:
    from clearlane.adapters.sql.recon import SqlReconStore
    from clearlane.adapters.sql.store import Store

    if not create and missing_db(db):
        raise fail(f"{db}: no such database")
    return SqlReconStore(Store.open(db, create=create))


def _print(value: Any) -> None:
    # Plain stdout: rich would wrap (re-layout) a large document line by line, for seconds.
    typer.echo(json.dumps(value, indent=1, sort_keys=True))


@recon_app.command("import")
def recon_import(
    file: Annotated[
        Path, typer.Argument(help="camt.052/053/054 XML, MT940, or a batch report (.csv/.json).")
    ],
    db: DbOption = "clearlane.db",
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="camt.053, camt.054, camt.052, mt940, batch.csv, batch.json"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import a statement or batch-report file once; a statement imported before is ignored."""
    from clearlane.node.recon.service import import_file

    if not file.exists():
        raise fail(f"{file}: no such file")
    store = _open(db, create=True)
    try:
        result = import_file(store, file, fmt=fmt, now_ms=_now_ms())
    finally:
        store.store.close()
    if as_json:
        _print({
            "file": result.file_name, "format": result.format,
            "imported": [{"import_id": i.import_id, "records": i.records, "period": i.period,
                          "balance_gap_minor": i.balance_gap_minor} for i in result.imported],
            "duplicates": [{"what": w, "earlier_import": e} for w, e in result.duplicates],
        })  # fmt: skip
        return
    records = sum(i.records for i in result.imported)
    console.print(f"{result.file_name} ({result.format}): {len(result.imported)} imported, {records} records")
    for what, earlier in result.duplicates:
        console.print(f"  already imported, ignored: {what} (import {earlier})")
    for i in result.imported:
        if i.balance_gap_minor:
            console.print(
                f"  [yellow]{i.identity_key}: balances do not reconcile (gap {i.balance_gap_minor} minor)[/]"
            )


def _tolerances(
    values: list[str], option: str = "--tolerance", most: int | None = None
) -> tuple[tuple[str, int], ...]:
    out = []
    for text in values:
        asset, sep, amount = text.partition("=")
        if not sep or not amount.isdigit() or (most is not None and int(amount) > most):
            unit = "minor_units" if most is None else f"basis_points (0..{most})"
            raise fail(f"{option}: {text!r} is not ASSET={unit}")
        out.append((asset, int(amount)))
    return tuple(sorted(out))


@recon_app.command("run")
def recon_run(
    db: DbOption = "clearlane.db",
    day: Annotated[
        str | None, typer.Option("--day", help="Business day (YYYY-MM-DD, UTC); default: everything.")
    ] = None,
    tolerance: Annotated[
        list[str] | None, typer.Option("--tolerance", help="ASSET=minor units (repeatable).")
    ] = None,
    tolerance_bps: Annotated[
        list[str] | None,
        typer.Option(
            "--tolerance-bps", help="ASSET=basis points of the larger amount (repeatable; 50 = 0.5 %)."
        ),
    ] = None,
    window_days: Annotated[int, typer.Option("--window-days", help="Date window for amount matching.")] = 3,
    internal: Annotated[
        str,
        typer.Option(
            "--internal",
            help="Internal kinds: net_instruction, l1_transaction, collateral_movement, escrow_leg, ledger_entry",
        ),
    ] = "net_instruction",
    as_json: JsonOption = False,
    nats_url: NatsOption = None,
) -> None:
    """Match the day's external records against the store's and update the exception cases."""
    from clearlane.core.recon.matching import DAY_MS, MatchRules
    from clearlane.node.recon.service import ALL_INTERNAL_KINDS, run

    rules = MatchRules(
        window_ms=window_days * DAY_MS,
        tolerance_minor=_tolerances(tolerance or []),
        tolerance_bps=_tolerances(tolerance_bps or [], "--tolerance-bps", 9_999),
    )
    store = _open(db)
    try:
        kinds = tuple(k for k in internal.split(",") if k)
        unknown = sorted(set(kinds) - set(ALL_INTERNAL_KINDS))
        if unknown:
            raise fail(f"--internal: {unknown[0]!r} is not one of {', '.join(ALL_INTERNAL_KINDS)}")
        report = run(store, period=day, rules=rules, now_ms=_now_ms(), internal_kinds=kinds)
        scales = store.asset_scales()
    finally:
        store.store.close()
    _publish(nats_url, report.changes, scales)
    r = report.run
    summary = {
        "run_id": r.run_id, "period": r.period, "status": r.status, "rules_version": r.rules_version,
        "counts": dict(r.counts), "breaks": r.breaks, "outcomes_sha256": r.outcomes_sha256,
        "cases": {"opened": report.opened, "recurred": report.recurred, "reopened": report.reopened,
                  "auto_resolved": report.auto_resolved, "flooded": report.flooded},
    }  # fmt: skip
    if as_json:
        _print(summary)
        return
    console.print(f"run {r.run_id} ({r.period}): [bold]{r.status}[/], {r.breaks} breaks")
    for key, value in r.counts.items():
        console.print(f"  {key:<32} {value}")
    console.print(f"  cases: {summary['cases']}")


def _case_view(case: Any, now_ms: int) -> dict[str, Any]:
    from clearlane.core.cases import ageing_bucket, case_row

    return case_row(case) | {
        "ageing": ageing_bucket(case.opened_at_ms, now_ms),
        "overdue": case.overdue(now_ms),
    }


@recon_app.command("exceptions")
def recon_exceptions(
    db: DbOption = "clearlane.db",
    include_closed: Annotated[bool, typer.Option("--all", help="Closed cases too.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The exception queue: state, owner, severity, ageing bucket and SLA."""
    store = _open(db)
    try:
        cases = store.cases(active_only=not include_closed, kind="exception")
    finally:
        store.store.close()
    now = _now_ms()
    views = [_case_view(c, now) for c in cases]
    if as_json:
        _print(views)
        return
    console.print(f"{len(views)} {'cases' if include_closed else 'open cases'}")
    for v in views:
        late = " [red]OVERDUE[/]" if v["overdue"] else ""
        console.print(
            f"{v['case_id']}  {v['state']:<9} {v['severity']:<8} {v['ageing']:<6} {v['reason']:<24} "
            f"{v['subject']}  owner={v['owner'] or '-'}{late}", highlight=False,
        )  # fmt: skip


def _leg(text: str) -> dict[str, str]:
    """``ACCOUNT:ASSET:AMOUNT`` (ACCOUNT: a participant id, ``house:fees`` or ``house:external``)."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3:
        raise fail(f"--adjust {text!r}: expected ACCOUNT:ASSET:AMOUNT (e.g. MM-ALPHA:USD:12.50)")
    account, asset, amount = parts
    if account.startswith("house:"):
        return {"house": account.removeprefix("house:"), "asset": asset, "amount": amount}
    return {"participant": account, "asset": asset, "amount": amount}


def _book_adjustment(db: str, case_id: str, command: Any, raw: dict[str, Any], actor: str) -> dict[str, Any]:
    """Check the resolve, then post the adjustment through the node (as the HTTP route does);
    the receipt, or exit 1 with the refusal printed (docs/RECONCILIATION.md §8)."""
    from clearlane.adapters.cli.common import open_node
    from clearlane.core.errors import ClearlaneError
    from clearlane.node import adjust as adjust_logic
    from clearlane.node.recon import cases as case_logic

    store = _open(db)
    try:
        payload = case_logic.adjustment_input(case_id, command, raw, actor=actor)
        case_logic.check_command(store, case_id, command, actor=actor, now_ms=_now_ms())
    except ClearlaneError as exc:
        raise fail(str(exc)) from None
    finally:
        store.store.close()
    record, err = adjust_logic.parse(payload)
    if record is None or err is not None:
        _print({"refused": err.to_dict() if err else None})
        raise typer.Exit(1)
    node = open_node(db, None, create=False)
    try:
        at = max(_now_ms(), node.queries.engine_time_ms())
        receipt, reject = adjust_logic.submit(node, record, at)
        node.checkpoint()
    finally:
        node.close()
    if reject is not None:
        _print(receipt)
        raise typer.Exit(1)
    return receipt


@recon_app.command("resolve")
def recon_resolve(
    case_id: Annotated[str, typer.Argument(help="The case id (case-…).")],
    note: Annotated[str, typer.Option("--note", help="Why (required).")],
    db: DbOption = "clearlane.db",
    accept: Annotated[bool, typer.Option("--accept", help="Accept (write off) instead of resolve.")] = False,
    resolution: Annotated[
        str | None,
        typer.Option("--resolution", help="fixed_by_booking, duplicate, false_positive, written_off"),
    ] = None,
    actor: Annotated[str, typer.Option("--actor", help="Who acts.")] = "cli",
    adjust: Annotated[
        list[str] | None,
        typer.Option("--adjust", help="A leg ACCOUNT:ASSET:AMOUNT of a ledger adjustment (repeat)."),
    ] = None,
    adjustment_id: Annotated[str | None, typer.Option("--adjustment-id", help="Its idempotency key.")] = None,
    nats_url: NatsOption = None,
) -> None:
    """Resolve (or accept) a case; the note is kept in its hash-chained trail. With ``--adjust``
    (and ``--resolution fixed_by_booking``) a balanced ledger adjustment is posted first."""
    from clearlane.core.cases import Action, Resolution
    from clearlane.node.recon.cases import CaseCommand, with_adjustment_note
    from clearlane.node.recon.service import act_on_case

    try:
        code = None if resolution is None else Resolution(resolution)
    except ValueError:
        raise fail(f"--resolution: {resolution!r} is not a resolution code") from None
    action = Action.ACCEPT if accept else Action.RESOLVE
    if adjust:
        if adjustment_id is None:
            raise fail("--adjust needs --adjustment-id (its idempotency key)")
        command = CaseCommand(action, note, resolution=code)
        raw = {"adjustment_id": adjustment_id, "legs": [_leg(t) for t in adjust]}
        note = with_adjustment_note(command, _book_adjustment(db, case_id, command, raw, actor)).note or note
    store = _open(db)
    try:
        case = act_on_case(store, case_id, action, actor=actor, now_ms=_now_ms(), note=note, resolution=code)
        change, scales = (case, store.case_events(case_id)[-1]), store.asset_scales()
    finally:
        store.store.close()
    _publish(nats_url, [change], scales)
    console.print(f"{case.case_id}: {case.state.value} ({case.resolution}) at version {case.version}")


@recon_app.command("assign")
def recon_assign(
    case_id: Annotated[str, typer.Argument(help="The case id (case-…).")],
    owner: Annotated[str, typer.Option("--owner", help="Who owns it now.")],
    db: DbOption = "clearlane.db",
    actor: Annotated[str, typer.Option("--actor", help="Who acts.")] = "cli",
    nats_url: NatsOption = None,
) -> None:
    """Assign a case to an owner."""
    from clearlane.core.cases import Action
    from clearlane.node.recon.service import act_on_case

    store = _open(db)
    try:
        case = act_on_case(store, case_id, Action.ASSIGN, actor=actor, now_ms=_now_ms(), owner=owner)
        change, scales = (case, store.case_events(case_id)[-1]), store.asset_scales()
    finally:
        store.store.close()
    _publish(nats_url, [change], scales)
    console.print(f"{case.case_id}: {case.state.value}, owner {case.owner}")


@recon_app.command("case")
def recon_case(
    case_id: Annotated[str, typer.Argument(help="The case id (case-…).")],
    db: DbOption = "clearlane.db",
    as_json: JsonOption = False,
) -> None:
    """One case with its event trail; exit 1 if the trail's hash chain does not verify."""
    from clearlane.core.cases import event_row, verify_events

    store = _open(db)
    try:
        case, events = store.case(case_id), store.case_events(case_id)
    finally:
        store.store.close()
    if case is None:
        raise fail(f"case {case_id}: no such case", 1)
    ok = verify_events(events)
    if as_json:
        _print(
            {"case": _case_view(case, _now_ms()), "events": [event_row(e) for e in events], "chain_ok": ok}
        )
    else:
        console.print(_case_view(case, _now_ms()))
        for e in events:
            console.print(
                f"  v{e.version} {e.action.value:<11} {e.prev_state} -> {e.new_state.value} by {e.actor}: {e.note or ''}"
            )
        console.print("trail verifies" if ok else "[red]trail does NOT verify[/]")
    if not ok:
        raise typer.Exit(1)


def participant_close(
    db: str, day: str | None, participants: list[str], cutoff: str, as_json: bool, csv_path: Path | None
) -> None:
    """``clearlane close --participant``: each participant's end-of-day statement in decimals
    (a table, ``--json`` with the day's movements, or ``--csv`` one row per account)."""
    import csv

    from clearlane.node.recon.close import CSV_COLUMNS, csv_rows, participant_close, statement_json

    store = _open(db)
    try:
        who = None if participants in ([], ["all"]) else participants
        statements = participant_close(store, who, day, cutoff)
        scales = store.asset_scales()
    finally:
        store.store.close()
    if csv_path is not None:
        with csv_path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(csv_rows(statements, scales))
        console.print(f"{len(statements)} statements written to {csv_path}")
        return
    if as_json:
        _print([statement_json(s, scales) for s in statements])
        return
    from rich.table import Table

    for s in statements:
        table = Table("asset", "account", "opening", "credits", "debits", "closing", "pending +", "pending -",
                      "entries", title=f"{s.participant} — business day {s.day}")  # fmt: skip
        for row in csv_rows([s], scales):
            table.add_row(*(str(row[k]) for k in CSV_COLUMNS[4:]))
        console.print(table)
