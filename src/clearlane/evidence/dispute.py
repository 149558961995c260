"""Dispute bundles: one zip with everything a third party needs to reproduce a batch's result.

``clearlane dispute TRADE_ID`` writes ``dispute-<id>.zip``::

    README.txt                 what is inside and how to check it
    proof.json                 the trade's inclusion proof (clearlane.proof.v1)
    lifecycle.json             the trade's lifecycle: every transition with its time, both finalities
    batch/header.txt           the batch header record (pool, seq, times, root, net totals, net digest)
    batch/leaves.txt           every canonical leaf of the batch, in leaf order
    batch/inputs.jsonl         the raw input row of each leaf, with the log seq it came in
    batch/net_instructions.csv the net instructions, exactly the bytes the header's net digest covers
    batch/events.json          the batch's events (cleared, anchored, final, ...)
    log/entries.json           the log segment: each step's input and transition entry with hashes
    log/<seq>.input            each step's payload, as logged (Arrow IPC for trades, JSON otherwise)
    log/<seq>.transition.json  each step's transition body
    log/config_changes.json    every config change logged before the batch cleared
    checkpoint_at_close.json   the checkpoint signed at the clearing step, with its consistency
                               proof to the proof's (later) checkpoint
    keys.json                  the store's public keys (clearlane.keys.v1)
    config.toml                the configuration the store was created with
    verify.py                  clearlane's standalone verifier (stdlib + cryptography)
    renet.py                   re-derives, re-hashes and re-nets everything above (stdlib only)

``python renet.py`` in the unpacked bundle reproduces the batch's leaves from the raw inputs,
its Merkle root and its netting result, and walks the log segment to the signed log head;
``clearlane dispute-check BUNDLE`` does the same and also holds ``inputs.jsonl`` against the
Arrow payloads of the logged entries.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text

from clearlane.adapters.sql import audit_tables
from clearlane.adapters.sql.store import Store
from clearlane.core.model.inputs import EVENTS_KIND
from clearlane.core.proofs import verify as verify_module
from clearlane.core.proofs.canonical import spaced_json
from clearlane.core.proofs.codec import read_table
from clearlane.core.proofs.hashchain import net_lines
from clearlane.core.proofs.verify import canonical_document
from clearlane.evidence.prove import EvidenceError, Prover
from clearlane.evidence.standalone import renet
from clearlane.node.report import trade_lifecycle
from clearlane.node.signing import public_key_doc

__all__ = ["build_bundle", "check_bundle"]

_README = """clearlane dispute bundle for trade {trade_id} (batch {batch_id})

Check it:
  python renet.py          (in this directory; Python 3.11+, plus `cryptography` for the signatures)
  clearlane dispute-check {name}
  clearlane verify-proof proof.json --pubkeys keys.json

renet.py derives every leaf of the batch again from batch/inputs.jsonl and config.toml, rebuilds
the RFC 9162 Merkle root from batch/leaves.txt, nets the obligations again (the result must be
batch/net_instructions.csv byte for byte; `sha256sum batch/net_instructions.csv` is the net digest
in batch/header.txt), recomputes the hash chain of log/entries.json up to the log head signed in
checkpoint_at_close.json, and verifies proof.json and checkpoint_at_close.json with keys.json.
Every format is described in clearlane's docs/AUDIT.md.
"""

_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def _input_rows(
    store: Store, seqs: list[int], ids: list[str]
) -> tuple[list[dict[str, Any]], dict[int, bytes]]:
    """The raw input row of each flow (in leaf order) and the payload bytes of the entries."""
    wanted = set(ids)
    by_id: dict[str, dict[str, Any]] = {}
    payloads: dict[int, bytes] = {}
    for seq in sorted(set(seqs)):
        row = store.rows("SELECT kind, payload FROM input_log WHERE seq = :s", s=seq)[0]
        payloads[seq] = bytes(row["payload"])
        if row["kind"] == "trades":
            table = read_table(payloads[seq])
            hit = table.filter(
                pc.is_in(table.column("trade_id"), value_set=pa.array(sorted(wanted), pa.string()))
            )
            for record in hit.to_pylist():
                if record["trade_id"] in by_id:
                    continue  # a later duplicate of the same id was a no-op
                by_id[record["trade_id"]] = {
                    "seq": seq,
                    "kind": "trade",
                    "trade_id": record["trade_id"],
                    "symbol": record["symbol"],
                    "buyer": record["buyer"],
                    "seller": record["seller"],
                    "qty_mantissa": record["qty_mantissa"],
                    "qty_exp": record["qty_exp"],
                    "price_mantissa": record["price_mantissa"],
                    "price_exp": record["price_exp"],
                    "exch_batch_id": record["exch_batch_id"],
                }
        elif row["kind"] in ("payment", EVENTS_KIND):
            logged = json.loads(payloads[seq])
            # A run of small inputs (EventRun) holds its payments as members of its "events".
            members = logged["events"] if row["kind"] == EVENTS_KIND else [{"type": "payment", **logged}]
            for payment in members:
                if payment.get("type") == "payment" and payment["payment_id"] in wanted:
                    by_id.setdefault(
                        payment["payment_id"],
                        {
                            "seq": seq,
                            "kind": "payment",
                            **{k: payment[k] for k in ("payment_id", "payer", "payee", "asset", "amount")},
                        },
                    )
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise EvidenceError(
            f"no logged input for {len(missing)} flows of the batch (first: {missing[0]})", tampered=True
        )
    return [by_id[i] for i in ids], payloads


def build_bundle(store: Store, trade_id: str, out: Path) -> dict[str, Any]:
    """Write the dispute bundle of ``trade_id`` to ``out`` (a zip); returns a short summary."""
    prover = Prover(store)
    batch_id = prover.batch_of(trade_id)
    batch = prover.batch_tree(batch_id)
    proof = prover.proof(trade_id)
    close_seq = int(batch.row["log_seq"])
    checkpoints = audit_tables.read_checkpoints(store.engine)
    at_close = next(((i, cp) for i, cp in checkpoints if cp.log_seq >= close_seq), None)
    if at_close is None:
        raise EvidenceError(f"no signed checkpoint covers the step that cleared {batch_id}")
    latest_id = checkpoints[-1][0]
    consistency = prover.consistency(at_close[0], latest_id)
    first_seq = int(batch.source_seqs.min())
    end_seq = at_close[1].log_seq

    ids = batch.leaves.to_pylist()
    flow_ids = [t.split("|")[4] for t in ids]
    inputs, _ = _input_rows(store, batch.source_seqs.tolist(), flow_ids)
    rows, changes = _log_rows(store, first_seq, end_seq, close_seq)
    entries, files = _log_files(rows)
    files.update(_batch_files(store, batch_id, batch.row, ids, inputs))
    files.update(
        {
            "README.txt": _README.format(trade_id=trade_id, batch_id=batch_id, name=out.name).encode(),
            "proof.json": canonical_document(proof),
            "lifecycle.json": (
                json.dumps(trade_lifecycle(store, trade_id), indent=1, default=str) + "\n"
            ).encode(),
            "log/entries.json": (json.dumps(entries, indent=1) + "\n").encode(),
            "log/config_changes.json": _config_changes(changes),
            "checkpoint_at_close.json": canonical_document(consistency),
            "keys.json": _keys_file(store),
            "config.toml": (store.get_meta("config_toml") or "").encode(),
            "verify.py": Path(verify_module.__file__).read_bytes(),
            "renet.py": Path(renet.__file__).read_bytes(),
        }
    )
    _write_zip(out, files)
    return {
        "batch_id": batch_id,
        "flows": len(ids),
        "log_entries": len(entries),
        "first_seq": first_seq,
        "close_seq": close_seq,
        "checkpoint_at_close": at_close[0],
        "files": len(files),
    }


def _log_rows(store: Store, first_seq: int, end_seq: int, close_seq: int) -> tuple[list[Any], list[Any]]:
    """The log entries from the batch's first input to the checkpoint at its close, and the
    configuration changes up to its close."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT i.seq, i.at_ms, i.kind, i.source_id, i.payload, i.prev_hash, i.hash, t.body, t.hash AS thash "
                "FROM input_log i JOIN transition_log t ON t.seq = i.seq WHERE i.seq BETWEEN :a AND :b ORDER BY i.seq"
            ),
            {"a": first_seq, "b": end_seq},
        ).all()
        changes = conn.execute(
            text(
                "SELECT seq, payload FROM input_log WHERE kind = 'config_change' AND seq <= :b ORDER BY seq"
            ),
            {"b": close_seq},
        ).all()
    return list(rows), list(changes)


def _log_files(rows: list[Any]) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Each log entry's payload and transition as files, and the index of them (log/entries.json)."""
    entries = []
    files: dict[str, bytes] = {}
    for r in rows:
        seq = int(r.seq)
        files[f"log/{seq}.input"] = bytes(r.payload)
        files[f"log/{seq}.transition.json"] = bytes(r.body)
        entries.append(
            {
                "seq": seq,
                "at_ms": int(r.at_ms),
                "kind": r.kind,
                "source_id": r.source_id,
                "prev_hash": bytes(r.prev_hash).hex(),
                "hash": bytes(r.hash).hex(),
                "payload_file": f"log/{seq}.input",
                "transition_file": f"log/{seq}.transition.json",
                "transition_hash": bytes(r.thash).hex(),
            }
        )
    return entries, files


def _batch_files(
    store: Store, batch_id: str, row: dict[str, Any], ids: list[str], inputs: list[dict[str, Any]]
) -> dict[str, bytes]:
    """The batch/ folder: header, leaves, the inputs behind them, net instructions and events."""
    net = read_table(bytes(row["net"]))
    header = next(
        t for _, t in audit_tables.records_for(store.engine, batch_id) if t.startswith("clearlane.batch.v1|")
    )
    return {
        "batch/header.txt": (header + "\n").encode(),
        "batch/leaves.txt": ("\n".join(ids) + "\n").encode(),
        "batch/inputs.jsonl": b"".join(spaced_json(r) + b"\n" for r in inputs),
        "batch/net_instructions.csv": net_lines(
            net.column("participant").combine_chunks(),
            net.column("asset").combine_chunks(),
            net.column("net_minor").to_numpy(),
        ),
        "batch/events.json": (json.dumps(store.batch(batch_id)["events"], indent=1) + "\n").encode(),  # type: ignore[index]
    }


def _config_changes(changes: list[Any]) -> bytes:
    return (
        json.dumps(
            [{"seq": int(c.seq), "changes": json.loads(bytes(c.payload))["changes"]} for c in changes],
            indent=1,
        )
        + "\n"
    ).encode()


def _keys_file(store: Store) -> bytes:
    keys = [
        {"key_id": k.key_id, "public_key": k.public_key, "log_seq": k.log_seq}
        for k in audit_tables.read_keys(store.engine)
    ]
    return (json.dumps(public_key_doc(store.get_meta("store_id") or "", keys), indent=1) + "\n").encode()


def _write_zip(out: Path, files: dict[str, bytes]) -> None:
    """Names sorted and one fixed timestamp, so the same bundle is the same bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])


def check_bundle(path: Path) -> list[str]:
    """Unpack and check a bundle: the inputs against the logged payloads, then :mod:`renet`."""
    workdir = Path(tempfile.mkdtemp(prefix="clearlane-dispute-"))
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise renet.BundleError(f"unsafe path in the bundle: {name}")
            archive.extractall(workdir)
        inputs = [json.loads(line) for line in (workdir / "batch" / "inputs.jsonl").read_text().splitlines()]
        payloads: dict[int, Any] = {}
        for row in inputs:
            seq = int(row["seq"])
            if seq not in payloads:
                data = (workdir / "log" / f"{seq}.input").read_bytes()
                payloads[seq] = read_table(data) if row["kind"] == "trade" else json.loads(data)
            logged = payloads[seq]
            if row["kind"] == "trade":
                hit = (
                    logged.filter(pc.equal(logged.column("trade_id"), row["trade_id"]))
                    .slice(0, 1)
                    .to_pylist()
                )
                same = bool(hit) and all(hit[0][k] == v for k, v in row.items() if k not in ("seq", "kind"))
            else:
                # A payment logged alone, or a member of a run of small inputs ({"events": [...]},
                # kind "events"; a payment's own fields never include "events").
                members = logged["events"] if isinstance(logged.get("events"), list) else [logged]
                same = any(
                    all(member.get(k) == v for k, v in row.items() if k not in ("seq", "kind"))
                    for member in members
                    if member.get("payment_id") == row.get("payment_id")
                )
            if not same:
                raise renet.BundleError(
                    f"inputs.jsonl row {row.get('trade_id') or row.get('payment_id')} is not "
                    f"the row logged at seq {seq}"
                )
        done = [f"{len(inputs)} raw inputs are the rows of the logged payloads"]
        return done + renet.check(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
