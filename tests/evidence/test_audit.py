"""Tamper-evident audit: hash chain, proofs, signed checkpoints, key rotation, tamper detection,
dispute bundles. Everything runs against real SQLite stores written by the node."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from clearlane.adapters.cli.main import app
from clearlane.adapters.embedded import open_node
from clearlane.adapters.sql import audit_tables
from clearlane.adapters.sql.store import Store, StoreError
from clearlane.core.model.inputs import EVENTS_KIND, event_run_payload
from clearlane.core.proofs import verify as verify_module
from clearlane.core.proofs.codec import read_table, write_table
from clearlane.core.proofs.hashchain import Frontier, table_digest
from clearlane.core.proofs.merkle import forest_roots, hash_leaves, merkle_root
from clearlane.core.proofs.verify import ProofError, canonical_document, load_pubkeys, verify_proof_document
from clearlane.evidence.check import check_store
from clearlane.evidence.dispute import build_bundle, check_bundle
from clearlane.evidence.prove import Prover
from clearlane.node.node import Node, default_key_dir
from clearlane.node.signing import KeyStore, KeyStoreError, Signer
from tests.conftest import EXAMPLE_CONFIG, T0, chunk, trade
from tests.crash_worker import inputs

cli = CliRunner()
VERIFY_PY = Path(verify_module.__file__).resolve()


def _fill(node: Node, first: int, chunks: int, rows: int) -> None:
    for c, part in enumerate(inputs(first + chunks, rows)[first:], start=first):
        if c == first:
            part = [
                *part,
                trade(10_000 + c, "NOBODY", "MM-ALPHA", at=part[-1]["received_at_ms"]),
            ]  # an engine reject
        node.submit("trades", chunk(part), part[0]["received_at_ms"], f"chunk-{c}")
        node.advance(part[-1]["received_at_ms"], f"chunk-{c}.chain")
    at = max(node.engine.now_ms, T0)
    node.submit(
        "payment",
        {
            "payment_id": f"PAY-{first}",
            "payer": "BRK-NORTH",
            "payee": "MM-BETA",
            "asset": "USD",
            "amount": "125.50",
        },
        at,
        f"payment-{first}",
    )
    node.settle_until_quiet()


def _deposit(node: Node) -> None:
    """RTL-0001's opening deposit (d1, 100,000 USD), as every store here starts."""
    node.submit(
        "collateral_deposit",
        {"deposit_id": "d1", "participant": "RTL-0001", "asset": "USD", "amount": "100000"},
        T0,
        "deposit-1",
    )


def build_store(db: Path, chunks: int = 3, rows: int = 100, keys: Path | None = None) -> None:
    node = open_node(db, EXAMPLE_CONFIG, keys=keys)
    _deposit(node)
    _fill(node, 0, chunks, rows)
    node.close()


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("audit") / "base.db"
    build_store(db)
    return db


def _copy(db: Path, target: Path) -> Path:
    shutil.copyfile(db, target)
    for suffix in ("-wal", "-shm"):
        if Path(str(db) + suffix).exists():
            shutil.copyfile(str(db) + suffix, str(target) + suffix)
    return target


def _first_problem(db: Path) -> str:
    store = Store.open(db, create=False)
    try:
        report = check_store(store)
    finally:
        store.close()
    assert not report.ok, "tampering went unnoticed"
    return str(report.problems[0])


def _l2_trade(db: Path) -> str:
    store = Store.open(db, create=False)
    try:
        row = store.rows("SELECT batch_id FROM batches WHERE state = 'final' ORDER BY log_seq LIMIT 1")[0]
        detail = read_table(bytes(store.batch(row["batch_id"])["detail"]))  # type: ignore[index]
    finally:
        store.close()
    return str(detail.column("flow_id")[0])


# ---------------------------------------------------------------------- the clean store
def test_clean_store_verifies_and_has_signed_checkpoints(base_db: Path) -> None:
    store = Store.open(base_db, create=False)
    report = check_store(store)
    assert report.ok, [str(p) for p in report.problems]
    assert report.batches > 3 and report.checkpoints >= 2 and report.trades == 300 + 1 + 1
    kinds = {r["kind"] for r in store.rows("SELECT DISTINCT kind FROM audit_records")}
    assert {"batch", "anchor", "final"} <= kinds
    assert (
        store.scalar("SELECT COUNT(*) FROM rejects") >= 1
        and store.scalar("SELECT COUNT(*) FROM l1_groups") >= 1
    )
    store.close()
    result = cli.invoke(app, ["verify", "--db", str(base_db)])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output


def test_audit_on_both_backends(db_target: str, tmp_path: Path) -> None:
    """Checkpoints, proofs, consistency and the store walk work the same on PostgreSQL."""
    node = open_node(db_target, EXAMPLE_CONFIG, keys=tmp_path / "keys")
    _fill(node, 0, 2, 60)
    node.rotate_key(KeyStore(tmp_path / "keys"))
    _fill(node, 2, 1, 60)
    node.close()
    store = Store.open(db_target, create=False)
    report = check_store(store)
    assert report.ok, [str(p) for p in report.problems]
    prover = Prover(store)
    flow = str(
        read_table(
            bytes(
                store.batch(
                    store.rows("SELECT batch_id FROM batches ORDER BY log_seq LIMIT 1")[0]["batch_id"]
                )["detail"]
            )
        ).column("flow_id")[0]
    )  # type: ignore[index]
    assert verify_proof_document(canonical_document(prover.proof(flow)))["summary"]["state"] == "final"
    ids = [i for i, _ in audit_tables.read_checkpoints(store.engine)]
    verify_module.verify_consistency_document(canonical_document(prover.consistency(ids[0], ids[-1])))
    store.close()


def test_chain_head_is_part_of_the_state_root(tmp_path: Path, base_db: Path) -> None:
    """Replaying the log recomputes every transition; a changed transition changes the root."""
    db = _copy(base_db, tmp_path / "c.db")
    node = open_node(db, signing=False)
    root = node.engine.state_root()
    node.engine.seal(bytes(32))
    assert node.engine.state_root() != root
    node.close()
    with sqlite3.connect(db) as conn:
        body = conn.execute("SELECT body FROM transition_log WHERE seq = 2").fetchone()[0]
        conn.execute("UPDATE transition_log SET body = ? WHERE seq = 2", (body.replace(b'"v":1', b'"v":1 '),))
    with pytest.raises(StoreError, match="transition entry 2"):
        open_node(db, signing=False)


# ---------------------------------------------------------------------- tamper detection
def _flip_blob(
    table: str, column: str, where: str, position: int = -40
) -> Callable[[sqlite3.Connection], None]:
    def tamper(conn: sqlite3.Connection) -> None:
        rowid, value = conn.execute(f"SELECT rowid, {column} FROM {table} WHERE {where}").fetchone()
        data = bytearray(value if isinstance(value, bytes) else value.encode())
        data[position] ^= 0x01
        new = bytes(data) if isinstance(value, bytes) else data.decode()
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (new, rowid))

    return tamper


def _sql(*statements: str) -> Callable[[sqlite3.Connection], None]:
    def tamper(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return tamper


def _swap(table: str, key: str, columns: str, a: str, b: str) -> Callable[[sqlite3.Connection], None]:
    """Reorder two rows: each takes the other's content, keys stay."""

    def tamper(conn: sqlite3.Connection) -> None:
        cols = [c.strip() for c in columns.split(",")]
        ra = conn.execute(f"SELECT {columns} FROM {table} WHERE {key} = {a}").fetchone()
        rb = conn.execute(f"SELECT {columns} FROM {table} WHERE {key} = {b}").fetchone()
        sets = ", ".join(f"{c} = ?" for c in cols)
        conn.execute(f"UPDATE {table} SET {sets} WHERE {key} = {a}", rb)
        conn.execute(f"UPDATE {table} SET {sets} WHERE {key} = {b}", ra)

    return tamper


FIRST_CHUNK = "log_seq = (SELECT MIN(log_seq) FROM trade_chunks)"
FIRST_BATCH = "batch_id = (SELECT batch_id FROM batches ORDER BY log_seq, batch_id LIMIT 1)"
TAMPERS: list[tuple[str, Callable[[sqlite3.Connection], None], str]] = [
    (
        "flip input payload",
        _flip_blob("input_log", "payload", "seq = 3"),
        "input_log seq 3: hash does not match",
    ),
    ("flip input time", _sql("UPDATE input_log SET at_ms = at_ms + 1 WHERE seq = 4"), "input_log seq 4"),
    ("flip transition body", _flip_blob("transition_log", "body", "seq = 5", 10), "transition_log seq 5"),
    (
        "flip trade record blob",
        _flip_blob("trade_chunks", "blob", FIRST_CHUNK),
        "trade_chunks log_seq 2 part 0",
    ),
    ("flip batch root", _flip_blob("batches", "root", FIRST_BATCH, 0), "batches fast-00000001"),
    ("flip batch net blob", _flip_blob("batches", "net", FIRST_BATCH), "batches fast-00000001"),
    (
        "edit batch state",
        _sql(f"UPDATE batches SET final_at_ms = final_at_ms + 1 WHERE {FIRST_BATCH}"),
        "batches fast-00000001: final_at_ms",
    ),
    ("edit batch event", _sql("UPDATE batch_events SET at_ms = at_ms - 5 WHERE id = 3"), "batch_events id 3"),
    ("flip outbox", _flip_blob("outbox", "payload", "id = 2", 12), "outbox id 2"),
    ("edit reject", _sql("UPDATE rejects SET reason = 'fine' WHERE id = 1"), "rejects id 1"),
    ("flip l1 group", _flip_blob("l1_groups", "blob", "group_id = 'l1-00000001'"), "l1_groups l1-00000001"),
    (
        "flip journal legs",
        _flip_blob("ledger_entries", "legs", "entry_id = 'deposit:d1'"),
        "ledger_entries deposit:d1",
    ),
    (
        "edit journal status",
        _sql(
            "UPDATE ledger_entries SET status = 'voided' WHERE entry_id LIKE 'l2_hold:%' "
            "AND rowid = (SELECT MIN(rowid) FROM ledger_entries WHERE entry_id LIKE 'l2_hold:%')"
        ),
        "ledger_entries l2_hold:",
    ),
    (
        "edit balance",
        _sql("UPDATE ledger_accounts SET posted_minor = posted_minor + 1 WHERE idx = 7"),
        "ledger_accounts idx 7",
    ),
    ("edit audit record", _flip_blob("audit_records", "record", "idx = 1", 25), "audit_records idx 1"),
    ("flip checkpoint signature", _flip_blob("checkpoints", "signature", "id = 1", 5), "checkpoints id 1"),
    (
        "edit checkpoint column",
        _sql("UPDATE checkpoints SET tree_size = tree_size - 1 WHERE id = 2"),
        "checkpoints id 2",
    ),
    (
        "edit state root",
        _sql("UPDATE engine_state SET state_root = 'ab' || substr(state_root, 3)"),
        "engine_state",
    ),
    (
        "edit config",
        _sql("UPDATE meta SET value = replace(value, 'seed = 7', 'seed = 8') WHERE key = 'config_toml'"),
        "meta config_digest",
    ),
    (
        "edit source id",
        _sql("UPDATE input_log SET source_id = 'x' || source_id WHERE seq = 7"),
        "input_log seq 7",
    ),
    ("delete input entry", _sql("DELETE FROM input_log WHERE seq = 6"), "input_log seq 6: missing"),
    (
        "delete trade chunk",
        _sql(f"DELETE FROM trade_chunks WHERE {FIRST_CHUNK}"),
        "trade_chunks log_seq 2 part 0: missing",
    ),
    ("delete batch event", _sql("DELETE FROM batch_events WHERE id = 4"), "batch_events"),
    ("delete audit record", _sql("DELETE FROM audit_records WHERE idx = 2"), "audit_records idx 2"),
    (
        "delete journal entry",
        _sql("DELETE FROM ledger_entries WHERE entry_id = 'deposit:d1'"),
        "ledger_entries deposit:d1",
    ),
    ("delete checkpoint", _sql("DELETE FROM checkpoints WHERE id = 1"), "checkpoints id 1: missing"),
    (
        "reorder input entries",
        _swap("input_log", "seq", "at_ms, kind, payload, hash", "3", "4"),
        "input_log seq 3",
    ),
    (
        "reorder trade chunks",
        _swap("trade_chunks", "log_seq", "rows, blob", "2", "4"),
        "trade_chunks log_seq 2",
    ),
    (
        "reorder batch events",
        _swap("batch_events", "id", "batch_id, event, at_ms, detail, log_seq", "2", "3"),
        "batch_events id 2",
    ),
    (
        "reorder audit records",
        _swap("audit_records", "idx", "kind, ref, record, hash", "0", "1"),
        "audit_records idx 0",
    ),
]


@pytest.mark.parametrize(("name", "tamper", "first"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_tampering_names_the_first_bad_record(
    tmp_path: Path, base_db: Path, name: str, tamper: Callable[[sqlite3.Connection], None], first: str
) -> None:
    db = _copy(base_db, tmp_path / "t.db")
    with sqlite3.connect(db) as conn:
        tamper(conn)
    assert first in _first_problem(db)


def test_verify_cli_exits_1_and_names_the_record(tmp_path: Path, base_db: Path) -> None:
    db = _copy(base_db, tmp_path / "t.db")
    with sqlite3.connect(db) as conn:
        _flip_blob("trade_chunks", "blob", FIRST_CHUNK)(conn)
    result = cli.invoke(app, ["verify", "--db", str(db)])
    assert result.exit_code == 1
    assert "first bad record: trade_chunks log_seq 2 part 0" in result.output


BLOB_COLUMNS = [
    ("input_log", "payload", "seq"),
    ("transition_log", "body", "seq"),
    ("trade_chunks", "blob", "log_seq"),
    ("batches", "detail", "batch_id"),
    ("batches", "net", "batch_id"),
    ("l1_groups", "blob", "group_id"),
    ("ledger_entries", "legs", "entry_id"),
    ("checkpoints", "body", "id"),
    ("audit_records", "record", "idx"),
    ("outbox", "payload", "id"),
    ("audit_keys", "statement", "key_id"),
]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_byte_is_found(tmp_path: Path, base_db: Path, data: st.DataObject) -> None:
    table, column, _ = data.draw(st.sampled_from(BLOB_COLUMNS), label="column")
    db = _copy(base_db, tmp_path / "fuzz.db")
    with sqlite3.connect(db) as conn:
        rowids = [r[0] for r in conn.execute(f"SELECT rowid FROM {table}")]
        rowid = data.draw(st.sampled_from(rowids), label="row")
        value = conn.execute(f"SELECT {column} FROM {table} WHERE rowid = ?", (rowid,)).fetchone()[0]
        raw = bytearray(value if isinstance(value, bytes) else value.encode())
        position = data.draw(st.integers(0, len(raw) - 1), label="byte")
        raw[position] ^= data.draw(st.integers(1, 255), label="xor") if isinstance(value, bytes) else 0x01
        new: Any = bytes(raw) if isinstance(value, bytes) else raw.decode("utf-8", "replace")
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (new, rowid))
    _first_problem(db)


# ---------------------------------------------------------------------- proofs
@pytest.fixture(scope="module")
def proof_bytes(base_db: Path) -> bytes:
    store = Store.open(base_db, create=False)
    data = Prover(store).proof_bytes(_l2_trade(base_db))
    store.close()
    return data


def test_proof_verifies_offline_and_names_everything(proof_bytes: bytes) -> None:
    result = verify_proof_document(proof_bytes)
    summary = result["summary"]
    assert (
        summary["state"] == "final"
        and summary["anchor"]["confirmations"] >= summary["anchor"]["confirmations_required"]
    )
    assert summary["batch"]["net_totals"] and summary["obligations"]
    assert summary["checkpoint"]["tree_size"] > 0


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_to_a_proof_is_refused(proof_bytes: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(proof_bytes) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != proof_bytes[position]), label="byte")
    changed = bytearray(proof_bytes)
    changed[position] = value
    with pytest.raises(ProofError):
        verify_proof_document(bytes(changed))


def test_a_number_beyond_float_range_is_refused_as_malformed() -> None:
    """``1e999`` parses as infinity, which the canonical form cannot write back: the document is
    refused as malformed (a flipped byte turned a decimal point into ``e``), not a crash."""
    for number in (b"1e999", b"-1e999", b"12e45678"):
        with pytest.raises(ProofError, match="out of range"):
            verify_proof_document(b'{\n "format": ' + number + b"\n}\n")


def test_proof_cli_and_pinned_keys(tmp_path: Path, base_db: Path) -> None:
    flow = _l2_trade(base_db)
    out = tmp_path / "p.json"
    assert cli.invoke(app, ["proof", flow, "--db", str(base_db), "--out", str(out)]).exit_code == 0
    pins = tmp_path / "keys.json"
    assert cli.invoke(app, ["keys", "export", "--db", str(base_db), "--out", str(pins)]).exit_code == 0
    result = cli.invoke(app, ["verify-proof", str(out), "--pubkeys", str(pins)])
    assert result.exit_code == 0 and "verified" in result.output and "pinned" in result.output
    stranger = KeyStore(tmp_path / "other").create()
    pins.write_text(
        json.dumps(
            {
                "format": "clearlane.keys.v1",
                "keys": [{"key_id": stranger.key_id, "public_key": stranger.public_key.hex()}],
            }
        )
    )
    result = cli.invoke(app, ["verify-proof", str(out), "--pubkeys", str(pins)])
    assert result.exit_code == 1 and "PROOF_UNTRUSTED_KEY" in result.output
    l1 = Store.open(base_db, create=False)
    l1_trade = l1.rows("SELECT blob FROM l1_groups LIMIT 1")[0]
    l1.close()
    l1_id = str(read_table(bytes(l1_trade["blob"])).column("flow_id")[0])
    result = cli.invoke(app, ["proof", l1_id, "--db", str(base_db), "--out", str(tmp_path / "l1.json")])
    assert result.exit_code == 1 and "Layer-1" in result.output
    assert cli.invoke(app, ["proof", "NOPE", "--db", str(base_db)]).exit_code == 1


_VERIFIER_ONLY = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("third_party_verify", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
data = open(sys.argv[2], "rb").read()
result = module.verify_proof_document(data)
try:
    module.verify_proof_document(data.replace(b'"index": 0', b'"index": 1', 1))
    refused = "ACCEPTED"
except module.ProofError as exc:
    refused = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"clearlane", "numpy", "numba", "pyarrow", "sqlalchemy"})
print(json.dumps({"state": result["summary"]["state"], "refused": refused, "heavy": heavy}))
"""


def test_proof_verified_by_a_process_that_imports_only_the_verifier(
    tmp_path: Path, proof_bytes: bytes
) -> None:
    proof = tmp_path / "proof.json"
    proof.write_bytes(proof_bytes)
    copied = tmp_path / "verify.py"
    copied.write_bytes(VERIFY_PY.read_bytes())
    done = subprocess.run(
        [sys.executable, "-I", "-c", _VERIFIER_ONLY, str(copied), str(proof)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["state"] == "final" and out["refused"].startswith("PROOF_") and out["heavy"] == []
    cli_run = subprocess.run(
        [sys.executable, "-I", str(copied), str(proof)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert cli_run.returncode == 0 and "verified" in cli_run.stderr


def test_consistency_between_checkpoints(tmp_path: Path, base_db: Path) -> None:
    out = tmp_path / "c.json"
    result = cli.invoke(app, ["consistency", "1", "--db", str(base_db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert cli.invoke(app, ["verify-proof", str(out)]).exit_code == 0
    doc = json.loads(out.read_bytes())
    doc["proof"][0] = "00" * 32
    out.write_bytes(canonical_document(doc))
    result = cli.invoke(app, ["verify-proof", str(out)])
    assert result.exit_code == 1 and "PROOF_ROOT_MISMATCH" in result.output


def test_proof_generation_reuses_the_batch_tree(base_db: Path) -> None:
    store = Store.open(base_db, create=False)
    prover = Prover(store)
    batch_id = store.rows("SELECT batch_id FROM batches ORDER BY flows DESC LIMIT 1")[0]["batch_id"]
    tree = prover.batch_tree(batch_id)
    assert prover.batch_tree(batch_id) is tree
    docs = [prover.proof(flow) for flow in list(tree.index)[:10]]
    for doc in docs:
        verify_proof_document(canonical_document(doc))
    store.close()


# ---------------------------------------------------------------------- keys
def test_key_files_are_owner_only_and_never_leak(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "k")
    signer = keys.create()
    path = tmp_path / "k" / f"{signer.key_id}.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    pem = path.read_bytes()
    assert signer.key_id in repr(signer) and b"PRIVATE" not in repr(signer).encode()
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(signer)
    os.chmod(path, 0o644)
    with pytest.raises(KeyStoreError, match="too open"):
        keys.load(signer.key_id)
    os.chmod(path, 0o600)
    path.write_bytes(pem[:40] + b"garbage" + pem[47:])
    with pytest.raises(KeyStoreError) as info:
        keys.load(signer.key_id)
    body = pem.split(b"\n")[1].decode()
    assert body[:20] not in str(info.value) and "garbage" not in str(info.value)


def _private_raw(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,  # type: ignore[union-attr]
        serialization.NoEncryption(),
    )


def test_key_rotation_across_a_replay(tmp_path: Path) -> None:
    db = tmp_path / "rot.db"
    keydir = default_key_dir(db)
    node = open_node(db, EXAMPLE_CONFIG)
    old = node.auditor.signer
    assert isinstance(old, Signer)
    old_pem = (keydir / f"{old.key_id}.key").read_bytes()
    _deposit(node)
    _fill(node, 0, 2, 80)
    early_checkpoint = audit_tables.latest_checkpoint(node.store.engine)
    assert early_checkpoint is not None
    record = node.rotate_key(KeyStore(keydir))
    new_pem = (keydir / f"{record.key_id}.key").read_bytes()
    _fill(node, 2, 2, 80)
    root = node.engine.state_root()
    node.close()

    # The rotation is a log entry signed by both keys; the old private key is gone, its public key stays.
    assert not (keydir / f"{old.key_id}.key").exists() and (keydir / f"{old.key_id}.pub").exists()
    store = Store.open(db, create=False)
    assert [k.action for k in audit_tables.read_keys(store.engine)] == ["init", "rotate"]
    assert store.scalar("SELECT COUNT(*) FROM input_log WHERE kind = 'key_rotation'") == 1
    signers = {cp.key_id for _, cp in audit_tables.read_checkpoints(store.engine)}
    assert signers == {old.key_id, record.key_id}
    assert check_store(store).ok
    # A trade cleared before the rotation: provable under the new key and under the retired one.
    prover = Prover(store)
    flow = _l2_trade(db)
    verify_proof_document(canonical_document(prover.proof(flow)))
    verify_proof_document(canonical_document(prover.proof(flow, early_checkpoint[1])))
    # Pinning only the first key still trusts the second, through the signed rotation.
    pins = {
        old.key_id: load_pubkeys(
            json.dumps(
                {
                    "format": "clearlane.keys.v1",
                    "keys": [{"key_id": old.key_id, "public_key": old.public_key.hex()}],
                }
            ).encode()
        )[old.key_id]
    }
    assert verify_proof_document(canonical_document(prover.proof(flow)), pins)["trust"] == "pinned keys"
    # The retired key cannot sign for the log after its retirement.
    forged = prover.proof(flow)
    from cryptography.hazmat.primitives import serialization

    old_key = serialization.load_pem_private_key(old_pem, password=None)
    body = forged["checkpoint"]["body"].replace(f"key_id {record.key_id}", f"key_id {old.key_id}")
    forged["checkpoint"] = {"body": body, "signature": old_key.sign(body.encode()).hex()}  # type: ignore[union-attr]
    with pytest.raises(ProofError, match="PROOF_UNTRUSTED_KEY"):
        verify_proof_document(canonical_document(forged))
    # Secrets never reach the database or its WAL.
    store.close()
    blob = db.read_bytes() + (Path(str(db) + "-wal").read_bytes() if Path(str(db) + "-wal").exists() else b"")
    for pem in (old_pem, new_pem):
        assert _private_raw(pem) not in blob and pem.split(b"\n")[1] not in blob

    # Replay: recovery re-applies the rotation and resumes signing with the new key.
    again = open_node(db)
    assert again.engine.state_root() == root and again.auditor.signer is not None
    assert again.auditor.signer.key_id == record.key_id
    _fill(again, 4, 1, 40)
    again.close()
    result = cli.invoke(app, ["replay", "--db", str(db), "--into", str(tmp_path / "replica.db")])
    assert result.exit_code == 0 and "identical" in result.output
    result = cli.invoke(app, ["verify", "--db", str(db)])
    assert result.exit_code == 0, result.output


def test_keys_cli(tmp_path: Path) -> None:
    result = cli.invoke(app, ["keys", "init", "--keys", str(tmp_path / "k")])
    assert result.exit_code == 0 and "created key" in result.output
    assert "active key" in cli.invoke(app, ["keys", "init", "--keys", str(tmp_path / "k")]).output
    db = tmp_path / "k.db"
    build_store(db, chunks=1, rows=30, keys=tmp_path / "k")
    result = cli.invoke(app, ["keys", "rotate", "--db", str(db), "--keys", str(tmp_path / "k")])
    assert result.exit_code == 0 and "rotated" in result.output, result.output
    result = cli.invoke(app, ["keys", "rotate", "--db", str(db), "--keys", str(tmp_path / "elsewhere")])
    assert result.exit_code == 2 and "not found" in result.output
    exported = json.loads(cli.invoke(app, ["keys", "export", "--db", str(db)]).output)
    assert [k["valid_until_seq"] is None for k in exported["keys"]] == [False, True]


# ---------------------------------------------------------------------- dispute bundles
def test_dispute_bundle_reproduces_the_netting(tmp_path: Path, base_db: Path) -> None:
    flow = _l2_trade(base_db)
    bundle = tmp_path / "d.zip"
    result = cli.invoke(app, ["dispute", flow, "--db", str(base_db), "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["dispute-check", str(bundle)])
    assert result.exit_code == 0 and "reproduces" in result.output, result.output
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(unpacked)
        names = set(archive.namelist())
    assert {
        "proof.json",
        "lifecycle.json",
        "batch/net_instructions.csv",
        "batch/leaves.txt",
        "log/entries.json",
        "renet.py",
        "verify.py",
        "keys.json",
    } <= names
    life = json.loads((unpacked / "lifecycle.json").read_text())
    assert [t["state"] for t in life["transitions"]][-1] == "final"
    done = subprocess.run(
        [sys.executable, "renet.py"], cwd=unpacked, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    # A changed raw input no longer gives the committed leaves.
    inputs_file = unpacked / "batch" / "inputs.jsonl"
    rows = [json.loads(line) for line in inputs_file.read_text().splitlines()]
    rows[0]["qty_mantissa"] += 1
    inputs_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = subprocess.run(
        [sys.executable, "renet.py"], cwd=unpacked, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1 and "leaf 0 derived from the raw input differs" in done.stderr
    tampered = tmp_path / "t.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "batch/net_instructions.csv":
                data = data.replace(b",", b";", 1)
            dst.writestr(name, data)
    with pytest.raises(Exception, match="net instructions"):
        check_bundle(tampered)
    store = Store.open(base_db, create=False)
    info = build_bundle(store, flow, tmp_path / "again" / "d.zip")
    store.close()
    assert (tmp_path / "again" / "d.zip").read_bytes() == bundle.read_bytes() and info["flows"] >= 1


# ---------------------------------------------------------------------- encodings
@settings(max_examples=60, deadline=None)
@given(sizes=st.integers(0, 70))
def test_frontier_root_is_rfc9162(sizes: int) -> None:
    leaves = [f"r{i}".encode() for i in range(sizes)]
    frontier = Frontier()
    frontier.extend(leaves)
    assert frontier.root() == merkle_root(hash_leaves(leaves, backend="hashlib"), backend="hashlib")


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=8), backend=st.sampled_from(["hashlib", None]))
def test_forest_roots_equal_one_root_per_tree(sizes: list[int], backend: str | None) -> None:
    rng = np.random.default_rng(sum(sizes))
    leaves = rng.integers(0, 256, (sum(sizes), 32), dtype=np.uint8)
    roots = forest_roots(leaves, sizes, backend=backend)
    bounds = np.cumsum([0, *sizes])
    for i in range(len(sizes)):
        assert roots[i].tobytes() == merkle_root(leaves[bounds[i] : bounds[i + 1]], backend="hashlib")


def test_table_digest_survives_ipc_and_rechunking() -> None:
    table = pa.table(
        {
            "id": pa.array(["a", None, "ccc"]),
            "n": pa.array([1, 2, None], pa.int64()),
            "d": pa.array(["x", "y", "x"]).dictionary_encode(),
            "f": pa.array([0.5, 1.5, 2.5]),
            "b": pa.array([True, False, True]),
        }
    )
    digest = table_digest(table)
    assert table_digest(read_table(write_table(table))) == digest
    assert table_digest(pa.concat_tables([table.slice(0, 1), table.slice(1)])) == digest
    changed = table.set_column(1, "n", pa.array([1, 2, 0], pa.int64()))
    assert table_digest(changed) != digest
    assert table_digest(table.slice(1)) != digest
    assert np.array_equal(
        read_table(write_table(table)).column("n").is_null().to_numpy(zero_copy_only=False),
        [False, False, True],
    )


def test_dispute_bundle_of_a_payment_logged_in_a_run(tmp_path: Path) -> None:
    """Payments from a file are logged as one run (an ``events`` entry, EventRun): the bundle
    finds a payment among the run's members and its batch still nets again byte for byte."""
    db = tmp_path / "run.db"
    node = open_node(db, EXAMPLE_CONFIG)
    _deposit(node)
    _fill(node, 0, 1, 20)  # trades first: the base layer starts with the first anchor
    payments = [
        {
            "type": "payment",
            "payment_id": f"RUN-PAY-{i}",
            "payer": "RTL-0001",
            "payee": "MM-BETA",
            "asset": "USD",
            "amount": f"{10 + i}.25",
            "lane_hint": "fast",
        }
        for i in range(3)
    ]
    node.submit(EVENTS_KIND, event_run_payload(payments), node.engine.now_ms, "payments#0.0")
    node.settle_until_quiet()
    node.close()
    store = Store.open(db, create=False)
    try:
        kinds = [row["kind"] for row in store.rows("SELECT kind FROM input_log ORDER BY seq")]
        batched = store.rows("SELECT state FROM batches")
    finally:
        store.close()
    assert EVENTS_KIND in kinds and batched, (kinds, batched)
    bundle = tmp_path / "p.zip"
    result = cli.invoke(app, ["dispute", "RUN-PAY-1", "--db", str(db), "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["dispute-check", str(bundle)])
    assert result.exit_code == 0 and "reproduces" in result.output, result.output


def test_a_blob_whose_arrays_point_past_their_buffers_is_a_finding() -> None:
    """The IPC reader accepts a stream whose string offsets run past the data (it checks the
    framing only); reading such a table can fail anywhere, or read other memory. The checker
    validates every decoded blob, so it is reported as not decoding — never a crash, never a
    result that depends on what lies past the buffer (a CI run once met one: a flipped byte)."""
    import struct

    from clearlane.core.proofs.codec import read_table, write_table
    from clearlane.evidence.check import _prepare_chunk

    blob = write_table(pa.table({"flow_id": pa.array(["aaa", "bbb"])}), compress=False)
    offsets = struct.pack("<3i", 0, 3, 6)
    at = blob.find(offsets)
    assert at > 0
    bad = blob[:at] + struct.pack("<3i", 0, 3, 1 << 30) + blob[at + len(offsets) :]
    assert read_table(bad).num_rows == 2  # decodes: the reader does not look inside
    prep = _prepare_chunk(bad, None, pa.array([], pa.string()), pa.array([], pa.string()))  # type: ignore[arg-type]
    assert prep.error == "blob does not decode (ArrowInvalid)"
