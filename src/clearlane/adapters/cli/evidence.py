"""The evidence commands, what a third party checks: ``proof`` and ``verify-proof`` (one trade's
inclusion proof), ``consistency`` (a later checkpoint extends an earlier one), ``verify`` (walk
the whole store) and ``dispute`` and ``dispute-check`` (a bundle that re-nets a batch).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from clearlane.adapters.cli.common import (
    ExistingDbOption,
    JsonOption,
    console,
    err,
    fail,
    open_store,
    print_json,
    progress_bar,
    safe_name,
)


def proof(
    trade_id: Annotated[str, typer.Argument(help="Trade or payment id.")],
    db: ExistingDbOption = "clearlane.db",
    out: Annotated[Path | None, typer.Option(help="Proof file (default: proof-<TRADE_ID>.json).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a self-contained inclusion proof of one trade (leaf -> batch root -> signed checkpoint)."""
    from clearlane.evidence.prove import Prover

    store = open_store(db)
    try:
        data = Prover(store).proof_bytes(trade_id)
    finally:
        store.close()
    target = out or Path(f"proof-{safe_name(trade_id)}.json")
    target.write_bytes(data)
    if as_json:
        print_json({"trade_id": trade_id, "file": str(target), "bytes": len(data)})
        return
    console.print(
        f"wrote {target} ({len(data):,} bytes); check it offline with: clearlane verify-proof {target}"
    )


def verify_proof(
    file: Annotated[Path, typer.Argument(help="A proof or consistency file.")],
    pubkeys: Annotated[Path | None, typer.Option(help="Pinned public keys (clearlane keys export).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verified summary as JSON.")] = False,
) -> None:
    """Check a proof (or consistency) file offline, with nothing but the public keys."""
    from clearlane.core.proofs import verify as v

    if not file.exists():
        raise fail(f"{file}: no such file")
    data = file.read_bytes()
    try:
        pins = v.load_pubkeys(pubkeys.read_bytes()) if pubkeys is not None else None
        consistency_doc = b'"format": "clearlane.consistency.v1"' in data
        result = (
            v.verify_consistency_document(data, pins)
            if consistency_doc
            else v.verify_proof_document(data, pins)
        )
    except v.ProofError as exc:
        raise fail(f"refused: {exc}", code=1) from None
    except OSError as exc:
        raise fail(str(exc)) from None
    if as_json:
        console.print_json(json.dumps(result))
        return
    if consistency_doc:
        old, new = result["old"], result["new"]
        console.print(
            f"[green]verified[/]: checkpoint at log seq {new['log_seq']} (tree size {new['tree_size']}) "
            f"extends the one at log seq {old['log_seq']} (tree size {old['tree_size']})"
        )
    else:
        summary = result["summary"]
        batch = summary["batch"]
        console.print(
            f"[green]verified[/]: {summary['trade_id']} is leaf {batch['leaf_index']} of batch "
            f"{batch['batch_id']} (root {batch['root'][:16]}..., {batch['flows']} flows), state "
            f"{summary['state']}"
        )
        anchor = summary["anchor"]
        if anchor is not None:
            console.print(
                f"anchored by {anchor['tx_id']} at height {anchor['height']}, "
                f"{anchor['confirmations']} confirmations at the checkpoint"
            )
    console.print(f"trust: {result['trust']}")


def consistency(
    old: Annotated[int, typer.Argument(help="Earlier checkpoint id.")],
    new: Annotated[int | None, typer.Argument(help="Later checkpoint id (default: the latest).")] = None,
    db: ExistingDbOption = "clearlane.db",
    out: Annotated[Path | None, typer.Option(help="Write the consistency file here.")] = None,
) -> None:
    """Prove that a later checkpoint extends an earlier one (RFC 9162 consistency proof)."""
    from clearlane.adapters.sql import audit_tables
    from clearlane.core.proofs import verify as v
    from clearlane.evidence.prove import Prover

    store = open_store(db)
    try:
        if new is None:
            latest = audit_tables.latest_checkpoint(store.engine)
            new = latest[0] if latest is not None else 0
        doc = Prover(store).consistency(old, new)
    finally:
        store.close()
    data = v.canonical_document(doc)
    try:
        result = v.verify_consistency_document(data)
    except v.ProofError as exc:
        raise fail(f"the store's own checkpoints are inconsistent: {exc}", code=1) from None
    if out is not None:
        out.write_bytes(data)
        console.print(f"wrote {out}")
    console.print(
        f"[green]consistent[/]: checkpoint {new} (tree size {result['new']['tree_size']}, log seq "
        f"{result['new']['log_seq']}) extends checkpoint {old} (tree size {result['old']['tree_size']}, "
        f"log seq {result['old']['log_seq']}); proof of {len(doc['proof'])} hashes"
    )


def verify(
    db: ExistingDbOption = "clearlane.db",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Walk the whole store: log chain, records, batch roots, nets, ledger, checkpoints; exit 1 on any bad record."""
    from clearlane.evidence.check import check_store

    store = open_store(db)
    started = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("verifying log", total=None)
        report = check_store(
            store, progress=lambda done, total: progress.update(task, completed=done, total=total)
        )
    store.close()
    elapsed = time.perf_counter() - started
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "ok": report.ok,
                    "problems": [str(p) for p in report.problems],
                    "steps": report.steps,
                    "trades": report.trades,
                    "batches": report.batches,
                    "records": report.records,
                    "checkpoints": report.checkpoints,
                    "notes": report.notes,
                    "seconds": round(elapsed, 3),
                }
            )
        )
    else:
        for note in report.notes:
            console.print(f"note: {note}")
        if report.ok:
            console.print(
                f"[green]verified[/] {report.steps:,} log steps, {report.trades:,} trade records, "
                f"{report.batches:,} batch roots, {report.records:,} audit records, "
                f"{report.checkpoints:,} signed checkpoints in {elapsed:.1f} s"
            )
    if not report.ok:
        first = report.problems[0]
        err.print(f"[bold red]tampered:[/] first bad record: {first}", highlight=False)
        if len(report.problems) > 1:
            err.print(f"({len(report.problems) - 1} more problem(s) after it)", highlight=False)
        raise typer.Exit(1)


def dispute(
    trade_id: Annotated[str, typer.Argument(help="Trade or payment id.")],
    db: ExistingDbOption = "clearlane.db",
    out: Annotated[Path | None, typer.Option(help="Bundle file (default: dispute-<TRADE_ID>.zip).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a dispute bundle: proof, lifecycle, net instructions and the log entries to re-net the batch."""
    from clearlane.evidence.dispute import build_bundle

    store = open_store(db)
    target = out or Path(f"dispute-{safe_name(trade_id)}.zip")
    try:
        info = build_bundle(store, trade_id, target)
    finally:
        store.close()
    if as_json:
        print_json({"trade_id": trade_id, "file": str(target), **info})
        return
    console.print(
        f"wrote {target}: batch {info['batch_id']} ({info['flows']:,} flows), log entries "
        f"{info['first_seq']}..{info['close_seq']} ({info['log_entries']} steps), {info['files']} files"
    )
    console.print(f"check it: clearlane dispute-check {target}   (or unzip it and run: python renet.py)")


def dispute_check(bundle: Annotated[Path, typer.Argument(help="A dispute bundle (.zip).")]) -> None:
    """Re-derive, re-hash and re-net a dispute bundle's batch; exit 1 if anything differs."""
    import zipfile

    from clearlane.evidence.dispute import check_bundle
    from clearlane.evidence.standalone.renet import BundleError

    if not bundle.exists():
        raise fail(f"{bundle}: no such file")
    try:
        done = check_bundle(bundle)
    except (BundleError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise fail(f"refused: {exc}", code=1) from None
    for line in done:
        console.print(f"ok: {line}")
    console.print("[green]the bundle reproduces the batch's commitment and netting result[/]")
