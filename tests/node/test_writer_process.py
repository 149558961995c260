"""The writer process (node/writer_process.py) and its wire form (node/wire.py): the same store
as the writer thread, an exact round trip of every step, failures surfaced, nothing left running.
(Its crash test is test_node.py's kill -9 test, mode ``writer-process``.)"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from clearlane.adapters.cli.main import app
from clearlane.adapters.embedded import open_node
from clearlane.adapters.sql.store import Store
from clearlane.core.model.events import BatchCleared, L1GroupUpdated, Step
from clearlane.node import wire
from clearlane.node.node import Node
from clearlane.node.writer import PendingStep, WriterError
from clearlane.node.writer_process import WriterProcess
from tests.conftest import EXAMPLE_CONFIG, T0, chunk
from tests.crash_worker import inputs

# Tables a clear writes, compared row by row (``meta``, ``audit_keys`` and ``checkpoints`` carry
# each store's random id: compared by what does not depend on it).
TABLES = (
    "input_log",
    "transition_log",
    "engine_state",
    "trade_chunks",
    "batches",
    "batch_events",
    "ledger_entries",
    "ledger_accounts",
    "outbox",
    "audit_records",
    "l1_groups",
    "rejects",
)


def _batches(chunks: int, rows: int) -> list[Any]:
    return [
        SimpleNamespace(trades=SimpleNamespace(table=chunk(part)), events=[], rejects=[])
        for part in inputs(chunks, rows)
    ]


def _clear(
    db: Path | str,
    keys: Path,
    *,
    process: bool,
    chunks: int = 12,
    rows: int = 300,
    schema: str | None = None,
) -> Node[Store]:
    node = open_node(db, EXAMPLE_CONFIG, keys=keys, writer_process=process, schema=schema)
    assert (node.writer_process is not None) == process
    node.submit(
        "collateral_deposit",
        {"deposit_id": "d1", "participant": "RTL-0001", "asset": "USD", "amount": "100000"},
        T0,
        "deposit-1",
    )
    node.clear_batches(_batches(chunks, rows), source="chunks")
    node.settle_until_quiet()
    return node


def _rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row, in key order; ``batches`` without its two blobs (compared decoded)."""
    with sqlite3.connect(db) as conn:
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        if table == "batches":
            columns = [c for c in columns if c not in ("detail", "net")]
        listed = ", ".join(columns)
        return conn.execute(f"SELECT {listed} FROM {table} ORDER BY {listed}").fetchall()


def test_same_store_as_the_writer_thread(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    thread = _clear(tmp_path / "thread.db", keys, process=False)
    process = _clear(tmp_path / "process.db", keys, process=True)
    try:
        assert process.engine.state_root() == thread.engine.state_root()
        assert process.auditor.head == thread.auditor.head and process.auditor.seq == thread.auditor.seq
        assert process.auditor.frontier.root() == thread.auditor.frontier.root()
    finally:
        thread.close()
        process.close()
    for table in TABLES:
        assert _rows(tmp_path / "process.db", table) == _rows(tmp_path / "thread.db", table), table
    # A cleared batch's blobs: the same tables (their bytes follow the arrays' layout, wire.py).
    blobs = "SELECT batch_id, detail, net FROM batches ORDER BY batch_id"
    with sqlite3.connect(tmp_path / "process.db") as a, sqlite3.connect(tmp_path / "thread.db") as b:
        mine, theirs = a.execute(blobs).fetchall(), b.execute(blobs).fetchall()
    assert len(mine) == len(theirs) > 100
    for x, y in zip(mine, theirs, strict=True):
        assert x[0] == y[0]
        for u, v in zip(x[1:], y[1:], strict=True):
            assert pa.ipc.open_stream(u).read_all().equals(pa.ipc.open_stream(v).read_all()), x[0]
    signed = "SELECT log_seq, tree_size, tree_root, log_head, state_root FROM checkpoints ORDER BY id"
    with sqlite3.connect(tmp_path / "process.db") as a, sqlite3.connect(tmp_path / "thread.db") as b:
        assert a.execute(signed).fetchall() == b.execute(signed).fetchall()
    # Reopened, the store replays to the same root and every hash, record and signature checks.
    from clearlane.evidence.check import check_store

    again = open_node(tmp_path / "process.db", keys=keys)
    try:
        report = check_store(again.store)
        assert report.ok, report.problems[:3]
    finally:
        again.close()


def _captured_steps(tmp_path: Path) -> list[PendingStep]:
    """Every step a small pipelined clear hands its writer (thread), before sealing."""
    steps: list[PendingStep] = []
    seal = Node._seal_pending

    def capture(node: Node[Any], pending: PendingStep) -> None:
        steps.append(
            PendingStep(
                pending.entry,
                pending.payload,
                pending.source_id,
                pending.step,
                "",
                pending.now_ms,
                None,
                dict(pending.meta),
                pending.pre_root,
                pending.tip_height,
            )
        )
        seal(node, pending)

    patch = pytest.MonkeyPatch()
    patch.setattr(Node, "_seal_pending", capture)
    try:
        _clear(tmp_path / "capture.db", tmp_path / "keys", process=False, chunks=6, rows=250).close()
    finally:
        patch.undo()
    return steps


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> list[PendingStep]:
    steps = _captured_steps(tmp_path_factory.mktemp("wire"))
    assert any(p.step.cleared() for p in steps) and any(p.step.submissions for p in steps)
    return steps


def _same_step(a: Step, b: Step) -> None:
    assert (a.seq, a.at_ms, a.duplicates, a.conflicts) == (b.seq, b.at_ms, b.duplicates, b.conflicts)
    assert [type(e) for e in a.events] == [type(e) for e in b.events]
    for x, y in zip(a.events, b.events, strict=True):
        if type(x) is BatchCleared:
            for name in wire._SCALARS:
                assert getattr(x, name) == getattr(y, name), name
            for name in ("flow_ids", "net_participant", "net_asset"):
                assert getattr(x, name).equals(getattr(y, name)), name
            for name in ("received_ms", "net_minor", "gross_minor"):
                assert np.array_equal(getattr(x, name), getattr(y, name)), name
        elif type(x) is L1GroupUpdated:
            assert x.group_id == y.group_id and x.table.equals(y.table) and x.opened == y.opened
        else:
            assert x == y
    assert [r.table for r in a.trade_records] == [r.table for r in b.trade_records]
    assert a.submissions == b.submissions
    la, lb = a.ledger, b.ledger
    assert lb.new_accounts == ()  # never read by the store (wire's docstring)
    assert la.status_changes == lb.status_changes
    assert np.array_equal(la.changed_accounts, lb.changed_accounts)
    assert len(la.new_entries) == len(lb.new_entries)
    for x, y in zip(la.new_entries, lb.new_entries, strict=True):
        assert (x.entry_id, x.kind, x.at_ms, x.pending, x.timeout_at_ms, x.ref) == (
            y.entry_id,
            y.kind,
            y.at_ms,
            y.pending,
            y.timeout_at_ms,
            y.ref,
        )
        assert np.array_equal(x.accounts, y.accounts) and np.array_equal(x.amounts_minor, y.amounts_minor)
        assert x.content_digest() == y.content_digest()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=6))
def test_wire_round_trip(captured: list[PendingStep], picks: list[int]) -> None:
    group = [captured[i % len(captured)] for i in picks]
    back = wire.loads(wire.dumps(group))
    assert len(back) == len(group)
    for sent, got in zip(group, back, strict=True):
        assert (got.entry.seq, got.entry.at_ms, got.entry.kind) == (
            sent.entry.seq,
            sent.entry.at_ms,
            sent.entry.kind,
        )
        assert got.entry.payload == (sent.entry.payload if isinstance(sent.entry.payload, dict) else None)
        assert (got.payload, got.source_id, got.now_ms, got.meta, got.pre_root, got.tip_height) == (
            sent.payload,
            sent.source_id,
            sent.now_ms,
            sent.meta,
            sent.pre_root,
            sent.tip_height,
        )
        assert got.audit is None and got.state_root == ""
        _same_step(sent.step, got.step)


def test_wire_is_compact(captured: list[PendingStep]) -> None:
    """A cleared batch's Arrow slices cross as their own values, not their parents' buffers:
    pickled as they are, every batch of a step carries its chunk's whole columns."""
    import io
    import pickle

    step = max(captured, key=lambda p: len(p.step.cleared())).step
    assert len(step.cleared()) > 5
    compact = io.BytesIO()
    wire._Pickler(compact).dump(step)
    assert len(compact.getvalue()) < 0.75 * len(pickle.dumps(step, protocol=5))


def test_a_sealed_step_does_not_cross(captured: list[PendingStep]) -> None:
    sealed = PendingStep(captured[0].entry, b"", None, captured[0].step, "r", 0, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sealed"):
        wire.dumps([sealed])


def _ready_node(tmp_path: Path, name: str) -> tuple[Node[Store], WriterProcess]:
    """A node on a new SQLite file with its writer process started and ready."""
    node = open_node(tmp_path / name, EXAMPLE_CONFIG, keys=tmp_path / "keys", writer_process=True)
    host = node.writer_process
    assert host is not None
    host.wait_ready()
    return node, host


def test_a_dead_writer_process_is_a_writer_error(tmp_path: Path) -> None:
    db = tmp_path / "dead.db"
    node, host = _ready_node(tmp_path, db.name)
    parts = _batches(8, 200)
    with pytest.raises(WriterError, match="writer process"), node.pipelined(process=True):
        for n, batch in enumerate(parts):
            node.submit("trades", batch.trades.table, T0 + n, f"dead#{n}")
            if n == 2:
                os.kill(host._process.pid, signal.SIGKILL)
                host._process.wait()
    node.close()
    # What was committed is a prefix of the log; the store reopens and replays it.
    again = open_node(db, keys=tmp_path / "keys")
    try:
        assert again.engine.applied_seq < 8
    finally:
        again.close()


def test_a_store_the_process_cannot_open(tmp_path: Path) -> None:
    host = WriterProcess(_cannot_open, None)
    try:
        for _ in range(2):  # asked again, the same answer
            with pytest.raises(WriterError, match=r"did not start: .*no such database"):
                host.wait_ready()
    finally:
        host.close()


def test_a_process_that_died_is_an_error_not_a_silent_thread(tmp_path: Path) -> None:
    node, host = _ready_node(tmp_path, "gone.db")
    os.kill(host._process.pid, signal.SIGKILL)
    host._process.wait()
    try:
        with pytest.raises(WriterError, match="exited"), node.pipelined(process=True):
            pass
    finally:
        node.close()


def _cannot_open() -> Store:
    raise OSError("no such database")


def test_stores_only_this_process_reaches_keep_the_thread(tmp_path: Path) -> None:
    memory = Store.open("sqlite:///:memory:")
    file = Store.open(tmp_path / "f.db")
    try:
        assert memory.reopener() is None
        opener = file.reopener()
        assert opener is not None
        other = opener()
        try:
            assert other.get_meta("store_id") == file.get_meta("store_id")
        finally:
            other.close()
    finally:
        memory.close()
        file.close()


def test_no_checkpoint_inside_a_process_session(tmp_path: Path) -> None:
    node = open_node(tmp_path / "c.db", EXAMPLE_CONFIG, keys=tmp_path / "keys", writer_process=True)
    try:
        with node.pipelined(process=True), pytest.raises(RuntimeError, match="writer-process session"):
            node.checkpoint()
    finally:
        node.close()


def test_close_stops_the_process(tmp_path: Path) -> None:
    node, host = _ready_node(tmp_path, "s.db")
    node.close()
    assert host._process.poll() is not None


runner = CliRunner()


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_clear_command_writer_option(tmp_path: Path, writer: str) -> None:
    rows = inputs(2, 40)[0] + inputs(2, 40)[1]
    path = tmp_path / "trades.csv"
    head = "trade_id,venue,symbol,buyer,seller,quantity,price,executed_at,exch_batch_id,lane_hint\n"
    lines = [
        f"{r['trade_id']},XCL,BTC/USD,{r['buyer']},{r['seller']},0.05,65000,2026-11-20T09:00:{i // 10:02d}.{i % 10}00Z,EB,"
        for i, r in enumerate(rows)
    ]
    path.write_text(head + "\n".join(lines) + "\n")
    db = tmp_path / f"{writer}.db"
    args = [
        "clear",
        str(path),
        "--db",
        str(db),
        "--config",
        str(EXAMPLE_CONFIG),
        "--writer",
        writer,
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT applied_seq FROM engine_state").fetchone()[0] > 1


def test_clear_command_refuses_an_unknown_writer(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("trade_id\n")
    result = runner.invoke(app, ["clear", str(path), "--db", str(tmp_path / "x.db"), "--writer", "fork"])
    assert result.exit_code == 2
    assert "--writer 'fork'" in result.output


def test_postgres_with_a_schema_same_root_as_the_thread(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL: the process reopens the same database and schema (``Store.reopener``) and
    clears to the writer thread's root on SQLite."""
    keys = tmp_path / "keys"
    thread = _clear(tmp_path / "thread.db", keys, process=False, chunks=6, rows=250)
    node = _clear(pg_url, keys, process=True, chunks=6, rows=250, schema="bulk")
    try:
        assert node.engine.state_root() == thread.engine.state_root()
    finally:
        node.close()
        thread.close()
    again = open_node(pg_url, keys=keys, schema="bulk")  # replays and checks every hash
    try:
        assert again.engine.state_root() == thread.engine.state_root()
    finally:
        again.close()
