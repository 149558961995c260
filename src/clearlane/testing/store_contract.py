"""The store contract: one suite every implementation of :class:`clearlane.node.ports.Store`
must pass (memory, SQLite and PostgreSQL in clearlane's own tests).

Shipped in the package, like eventsourcing's test cases, so that a new store is checked by the
same tests as the built-in ones. Subclass :class:`StoreContract` in a ``test_*.py`` file under a
name starting with ``Test`` and implement :meth:`StoreContract.create_store` (and
:meth:`StoreContract.reopen` for a durable store)::

    class TestMyStore(StoreContract):
        def create_store(self, tmp_path, request):
            return MyStore.open(tmp_path / "db")

The steps committed here are synthetic but complete (hash-chained input and transition
entries, trade records, a cleared batch and its update, an L1 group, submissions, rejects,
audit records, keys and checkpoints): the suite checks what a store keeps and answers, not
what the engine decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from clearlane.core.engine.core import LogEntry
from clearlane.core.ledger import LedgerChanges
from clearlane.core.model import events as ev
from clearlane.core.model import ids as model_ids
from clearlane.core.model.chain import TxSubmission
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.inputs import log_payload
from clearlane.core.proofs.codec import encode_payload
from clearlane.core.proofs.hashchain import genesis_hash, input_hash, transition_hash
from clearlane.node import ports
from clearlane.node.auditor import AuditStep, Checkpoint, KeyRecord

T0 = 1_700_000_000_000
BATCH = "fast-000001"
GROUP = "L1-000001"


@dataclass
class StepArgs:
    """The arguments of one ``commit_step`` (also a ``StepToCommit`` for ``commit_steps``)."""

    entry: LogEntry
    payload: bytes
    source_id: str | None
    step: ev.Step
    state_root: str
    now_ms: int
    audit: AuditStep | None
    meta: dict[str, str] = field(default_factory=dict)

    def commit(self, store: ports.Store) -> bytes:
        assert self.audit is not None
        return store.commit_step(
            self.entry, self.payload, self.source_id, self.step, self.state_root, self.now_ms, self.audit
        )


class StepMaker:
    """Consecutive steps, hash-chained from the genesis of a fixed configuration digest."""

    def __init__(self) -> None:
        self.prev = genesis_hash("contract")
        self.seq = 0
        self.records = 0

    def make(self, kind: str, payload: Any, source_id: str | None, out: ev.Step | None = None) -> StepArgs:
        """The next step; its output ``out`` is built for seq ``self.seq + 1`` by the caller, or empty."""
        self.seq += 1
        seq, at_ms = self.seq, T0 + self.seq * 100
        data = encode_payload(kind, payload)
        digest = input_hash(self.prev, seq, at_ms, kind, data)
        body = f"transition {seq}".encode()
        head = transition_hash(digest, seq, body)
        record = f"clearlane.batch.v1|{BATCH}|{seq}"
        audit = AuditStep(
            seq,
            self.prev,
            digest,
            body,
            head,
            [(self.records, record, hashlib.sha256(record.encode()).digest())],
        )
        self.records += 1
        self.prev = head
        root = f"root-{seq}"
        audit.state_root = root
        entry = LogEntry(seq, at_ms, kind, log_payload(kind, payload))  # as the node logs it
        return StepArgs(entry, data, source_id, out or output(seq, at_ms), root, at_ms, audit)


def trades(ids: list[str]) -> pa.Table:
    return pa.table({"flow_id": ids, "lane": ["L2"] * len(ids), "amount_minor": list(range(len(ids)))})


def tx(tx_id: str, kind: Any, ref: str, at_ms: int) -> TxSubmission:
    return TxSubmission(tx_id, kind, ref, hashlib.sha256(tx_id.encode()).digest(), at_ms)


NO_LEDGER_CHANGES = LedgerChanges((), (), (), np.zeros(0, np.int64))


def output(
    seq: int,
    at_ms: int,
    events: tuple[ev.Event, ...] = (),
    tables: tuple[pa.Table, ...] = (),
    submissions: tuple[TxSubmission, ...] = (),
) -> ev.Step:
    """An engine step output, as the engine would hand it to the store."""
    records = tuple(ev.TradeRecords(t) for t in tables)
    return ev.Step(seq, at_ms, events, records, submissions, NO_LEDGER_CHANGES, 0)


def clearing_output(seq: int, at_ms: int, table: pa.Table) -> ev.Step:
    """A step that records trades, clears one batch, opens an L1 group, submits and rejects."""
    batch = ev.BatchCleared(
        batch_id=BATCH,
        pool="fast",
        seq=1,
        opened_at_ms=at_ms - 50,
        cleared_at_ms=at_ms,
        flows=2,
        obligations=2,
        gross_usd=20.5,
        net_usd=10.25,
        root=hashlib.sha256(b"batch").digest(),
        flow_ids=pa.array(["T1", "T2"]),
        received_ms=np.array([at_ms - 40, at_ms - 30], np.int64),
        net_participant=pa.array(["A", "B"]),
        net_asset=pa.array(["USD", "USD"]),
        net_minor=np.array([-100, 100], np.int64),
        gross_minor=np.array([100], np.int64),
    )
    group = ev.L1GroupUpdated(
        GROUP,
        pa.table({"flow_id": ["T3", "T4"], "final_ms": [-1, -1]}),
        ev.L1GroupOpened(GROUP, model_ids.unwound_origin(BATCH), at_ms, 2),
    )
    reject = ev.Rejected(
        Reject(RejectCode.UNKNOWN_PARTICIPANT, "participant", "no such participant", None, "d2")
    )
    submissions = (tx("tx-a", "anchor", BATCH, at_ms), tx("tx-l1", "l1_settle", "T3", at_ms))
    return output(seq, at_ms, (batch, group, reject), (table,), submissions)


def anchoring_output(seq: int, at_ms: int) -> ev.Step:
    """A later step: the batch is anchored and one L1 flow of the group is final."""
    anchored = ev.BatchAnchored(BATCH, at_ms, "tx-a", 7, hashlib.sha256(b"block 7").digest())
    group = ev.L1GroupUpdated(GROUP, pa.table({"flow_id": ["T3", "T4"], "final_ms": [at_ms, -1]}))
    return output(seq, at_ms, (anchored, group), (), (tx("tx-b", "anchor", "other", at_ms),))


def fake_ledger(posted: list[int]) -> Any:
    """What ``write_balances`` reads of a ledger: balances, account keys and floors."""
    n = len(posted)
    purpose = SimpleNamespace(value="cash")
    return SimpleNamespace(
        n_accounts=n,
        balances=lambda: (np.array(posted, dtype=np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)),
        account_key=lambda i: SimpleNamespace(owner=f"P{i}", asset="USD", purpose=purpose, lane="L2"),
        floor=lambda i: None if i else -500,
        accounts_table=lambda: SimpleNamespace(
            owner=[f"P{i}" for i in range(n)],
            asset=["USD"] * n,
            purpose=["cash"] * n,
            lane=["L2"] * n,
            has_floor=np.arange(n) == 0,
            floor_minor=np.where(np.arange(n) == 0, -500, 0),
        ),
    )


class StoreContract:
    """The contract (see the module docstring). Tests take the ``store`` fixture."""

    def create_store(self, tmp_path: Path, request: pytest.FixtureRequest) -> ports.Store:
        """A new, empty store."""
        raise NotImplementedError

    def reopen(self, store: ports.Store) -> ports.Store:
        """The same store as a restarted process sees it (a store in memory: itself)."""
        return store

    @pytest.fixture
    def store(self, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ports.Store]:
        opened = self.create_store(tmp_path, request)
        yield opened
        opened.close()

    # ------------------------------------------------------------------ helpers
    def day(self, store: ports.Store) -> StepMaker:
        """Commit four steps (one alone, three as a group) and return their maker."""
        maker = StepMaker()
        maker.make("collateral_deposit", {"deposit_id": "d1", "amount": "10"}, "src#0").commit(store)
        table = trades(["T1", "T2", "T3", "T4"])
        clearing = maker.make("trades", table, "src#1", clearing_output(2, T0 + 200, table))
        later = maker.make(
            "trades", trades(["T1", "T5"]), "src#2", output(3, T0 + 300, tables=(trades(["T1", "T5"]),))
        )
        anchoring = maker.make("chain", {"to_ms": T0 + 400}, None, anchoring_output(4, T0 + 400))
        anchoring.meta = {"published_seq": "4"}
        store.commit_steps([clearing, later, anchoring])
        return maker

    # ------------------------------------------------------------------ tests
    def test_a_new_store_is_empty_and_keeps_meta(self, store: ports.Store) -> None:
        assert store.engine_state() is None and store.log_head() is None
        assert list(store.iter_log()) == []
        assert store.get_meta("k") is None
        store.set_meta("k", "one")
        store.set_meta("k", "two")
        assert store.get_meta("k") == "two"
        assert store.outbox_after(0) == [] and store.find_trade("T1") is None

    def test_the_log_is_in_order_and_hash_chained(self, store: ports.Store) -> None:
        maker = self.day(store)
        prev = genesis_hash("contract")
        transitions = list(store.iter_transitions())
        stored = list(store.iter_log())
        assert [s.entry.seq for s in stored] == [t.seq for t in transitions] == [1, 2, 3, 4]
        for s, t in zip(stored, transitions, strict=True):
            e = s.entry
            assert s.prev_hash == prev
            assert s.hash == input_hash(prev, e.seq, e.at_ms, e.kind, s.payload)
            assert t.prev_hash == s.hash and t.state_root == f"root-{e.seq}"
            prev = transition_hash(s.hash, e.seq, t.body)
            assert t.hash == prev
        assert store.log_head() == prev == maker.prev
        assert [s.source_id for s in stored] == ["src#0", "src#1", "src#2", None]
        assert stored[0].entry.payload == log_payload(
            "collateral_deposit", {"deposit_id": "d1", "amount": "10"}
        )
        logged = stored[1].entry.payload
        assert isinstance(logged, pa.Table) and logged.equals(trades(["T1", "T2", "T3", "T4"]))
        assert [s.entry.seq for s in store.iter_log(1, 3)] == [2, 3]
        assert [s.entry.seq for s in store.iter_log(3)] == [4]
        assert store.log_payload(2) == ("trades", stored[1].payload)
        assert store.log_payload(99) is None

    def test_engine_state_round_trips_and_group_meta_commits(self, store: ports.Store) -> None:
        maker = self.day(store)
        state = store.engine_state()
        assert state == {"applied_seq": 4, "state_root": "root-4", "log_head": maker.prev, "now_ms": T0 + 400}
        assert store.get_meta("published_seq") == "4"
        again = self.reopen(store)
        assert again.engine_state() == state
        assert [s.hash for s in again.iter_log()] == [s.hash for s in store.iter_log()]

    def test_source_ids_are_logged_once(self, store: ports.Store) -> None:
        maker = self.day(store)
        assert store.has_source("src#1") and not store.has_source("src#9")
        assert store.source_ids_between("src#", "src$") == {"src#0", "src#1", "src#2"}
        assert store.source_ids_between("src#1", "src#2") == {"src#1"}
        with pytest.raises(Exception):  # noqa: B017 - each store raises its own error type
            maker.make("collateral_deposit", {"deposit_id": "d9"}, "src#1").commit(store)
        assert store.engine_state() is not None and store.engine_state()["applied_seq"] == 4  # type: ignore[index]
        assert [s.entry.seq for s in store.iter_log()] == [1, 2, 3, 4]

    def test_a_group_commit_is_all_or_nothing(self, store: ports.Store) -> None:
        maker = StepMaker()
        maker.make("collateral_deposit", {"deposit_id": "d1"}, "src#0").commit(store)
        fine = maker.make("trades", trades(["T1"]), "src#1", output(2, T0 + 200, tables=(trades(["T1"]),)))
        clash = maker.make("collateral_deposit", {"deposit_id": "d2"}, "src#0")  # logged already
        with pytest.raises(Exception):  # noqa: B017 - each store raises its own error type
            store.commit_steps([fine, clash])
        assert [s.entry.seq for s in store.iter_log()] == [1]
        assert store.find_trade("T1") is None and not store.has_source("src#1")
        assert store.engine_state()["applied_seq"] == 1  # type: ignore[index]
        assert len(list(store.iter_transitions())) == 1

    def test_outbox_after_commit(self, store: ports.Store) -> None:
        self.day(store)
        assert [t.tx_id for t in store.outbox_after(0)] == ["tx-a", "tx-l1", "tx-b"]
        assert store.outbox_after(2) == [tx("tx-b", "anchor", "other", T0 + 400)]
        assert store.outbox_after(4) == []

    def test_trade_reads(self, store: ports.Store) -> None:
        self.day(store)
        newest = store.find_trade("T1")  # logged twice: the newest chunk wins
        assert newest is not None and newest["log_seq"] == 3 and newest["flow_id"] == "T1"
        oldest = store.find_trade("T4")
        assert oldest == {"flow_id": "T4", "lane": "L2", "amount_minor": 3, "log_seq": 2}
        assert store.find_trade("nope") is None
        chunk = store.trade_chunk(2, 0)
        assert chunk is not None and chunk.equals(trades(["T1", "T2", "T3", "T4"]))
        assert store.trade_chunk(1, 0) is None

    def test_batch_and_l1_group_reads(self, store: ports.Store) -> None:
        self.day(store)
        batch = store.batch(BATCH)
        assert batch is not None
        assert {
            k: batch[k] for k in ("pool", "seq", "flows", "obligations", "state", "attempts", "log_seq")
        } == {
            "pool": "fast",
            "seq": 1,
            "flows": 2,
            "obligations": 2,
            "state": "anchored",
            "attempts": 1,
            "log_seq": 2,
        }
        assert (batch["anchor_tx"], batch["anchor_height"], batch["final_at_ms"]) == ("tx-a", 7, None)
        assert bytes(batch["root"]) == hashlib.sha256(b"batch").digest()
        assert (batch["gross_usd"], batch["net_usd"]) == (20.5, 10.25)
        assert batch["events"] == [
            {"event": "cleared", "at_ms": T0 + 200, "detail": hashlib.sha256(b"batch").hexdigest()},
            {"event": "anchored", "at_ms": T0 + 400, "detail": "tx-a@7"},
        ]
        assert store.batch("nope") is None
        group = store.l1_group(GROUP)
        assert group is not None and (group["flows"], group["open_flows"], group["log_seq"]) == (2, 1, 2)
        assert store.l1_group_for_batch(BATCH) == group
        assert store.l1_group("nope") is None and store.l1_group_for_batch("nope") is None

    def test_rejects(self, store: ports.Store) -> None:
        self.day(store)
        assert store.reject_reason("d2", 104) == {"field": "participant", "reason": "no such participant"}
        assert store.reject_reason("d2", 105) is None
        bad = Reject(RejectCode.BAD_ID, "trade_id", "too long", 3, "X")
        store.replace_rejects("nats:s:9:fast", [bad])
        store.replace_rejects("nats:s:9:fast", [bad])  # a retry replaces, never adds
        rows = store.rejects_after(0)
        assert [(r["source"], r["log_seq"], r["input_id"], r["code"]) for r in rows] == [
            ("engine", 2, "d2", 104),
            ("nats:s:9:fast", None, "X", 102),
        ]
        assert rows[0]["source_id"] == "src#1" and rows[1]["source_id"] is None
        assert store.rejects_after(int(rows[-1]["id"])) == []

    def test_balances_are_materialised(self, store: ports.Store) -> None:
        store.write_balances(fake_ledger([5, -5, 0]), 4)
        store.write_balances(fake_ledger([7, -7]), 5)  # a rewrite replaces every row
        rows = store.balances()
        assert [(r["idx"], r["owner"], r["posted_minor"], r["floor_minor"]) for r in rows] == [
            (0, "P0", 7, -500),
            (1, "P1", -7, None),
        ]
        assert rows[0]["purpose"] == "cash" and rows[0]["pending_debits_minor"] == 0
        assert store.get_meta("balances_seq") == "5"

    def test_audit_trail(self, store: ports.Store) -> None:
        self.day(store)
        hashes = store.audit_record_hashes()
        assert (
            len(hashes) == 4
            and hashes[0] == hashlib.sha256(f"clearlane.batch.v1|{BATCH}|1".encode()).digest()
        )
        key = KeyRecord("k1", b"\x01" * 32, "init", None, 0, T0, "statement", b"\x02" * 64, None)
        store.add_audit_key(key)
        assert store.audit_keys() == [key]
        assert store.latest_checkpoint() is None
        cps = [
            Checkpoint(n, b"\x03" * 32, n, b"\x04" * 32, f"root-{n}", 0, T0, "k1", f"body {n}", b"s")
            for n in (2, 4)
        ]
        for cp in cps:
            store.add_checkpoint(cp)
        assert store.latest_checkpoint() == cps[-1]
        assert [t.seq for t in store.iter_transitions(1, 3)] == [2, 3]
