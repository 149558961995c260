"""The SQL :class:`~clearlane.node.ports.ReconStore`: reconciliation's tables (migration 0006)
beside the clearing store's, and the read of the clearing store's own records — net
instructions from ``batches``, Layer-1 transactions and exchange batches from ``trade_chunks`` —
that the matcher compares statements and batch reports with.
"""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from clearlane.adapters.sql import schema
from clearlane.adapters.sql.store import Store
from clearlane.core.cases import (
    Case,
    CaseError,
    CaseEvent,
    case_from_row,
    case_row,
    event_from_row,
    event_row,
)
from clearlane.core.config import parse_config
from clearlane.core.model import ids
from clearlane.core.model.chain import event_from_dict, tx_submission_from_dict
from clearlane.core.proofs.codec import read_table
from clearlane.core.recon.baselayer import AnchorClaim, BaseLayerRecords, L1Claim, chain_view
from clearlane.core.recon.breaks import ExchangeBatchSummary
from clearlane.core.recon.codes import Outcome, Reason
from clearlane.core.recon.eod import JOURNAL_KINDS, JournalLine, Leg, journal_records
from clearlane.core.recon.matching import RecordOutcome
from clearlane.core.recon.records import BatchReport, ReconRecord, period_of
from clearlane.node.ports import ImportRecord, RunRecord

_md = schema.metadata
_txt, _big, _int = sa.Text, sa.BigInteger, sa.Integer
imports = sa.Table(
    "recon_imports", _md,
    *(sa.Column(n, _txt, primary_key=n == "import_id") for n in ("import_id", "kind", "format", "file_name", "file_sha256")),
    sa.Column("identity_key", _txt), sa.Column("content_digest", _txt), sa.Column("period", _txt),
    sa.Column("imported_at_ms", _big), sa.Column("records", _int), sa.Column("balance_gap_minor", _big),
)  # fmt: skip
external = sa.Table(
    "recon_external", _md,
    sa.Column("record_id", _txt, primary_key=True), sa.Column("import_id", _txt), sa.Column("kind", _txt),
    sa.Column("asset", _txt), sa.Column("amount_minor", _big), sa.Column("at_ms", _big),
    sa.Column("period", _txt), sa.Column("reference", _txt), sa.Column("account", _txt),
    sa.Column("source_ref", _txt),
)  # fmt: skip
batch_reports = sa.Table(
    "recon_batch_reports", _md,
    sa.Column("import_id", _txt, primary_key=True), sa.Column("exchange_batch_id", _txt, primary_key=True),
    sa.Column("end_ms", _big), sa.Column("period", _txt), sa.Column("trade_count", _big),
    sa.Column("digest", _txt), sa.Column("totals", _txt), sa.Column("trade_ids", _txt),
)  # fmt: skip
runs = sa.Table(
    "recon_runs", _md,
    *(sa.Column(n, _txt, primary_key=n == "run_id") for n in ("run_id", "period", "rules_version", "status")),
    sa.Column("at_ms", _big), sa.Column("counts", _txt), sa.Column("breaks", _int), sa.Column("outcomes_sha256", _txt),
)  # fmt: skip
outcomes = sa.Table(
    "recon_outcomes", _md,
    *(sa.Column(n, _txt, primary_key=True) for n in ("run_id", "side", "record_id")),
    sa.Column("outcome", _txt), sa.Column("reason_code", _int), sa.Column("group_id", _txt),
)  # fmt: skip
cases = sa.Table(
    "cases", _md,
    *(sa.Column(n, _txt, primary_key=n == "case_id") for n in
      ("case_id", "kind", "rule", "fingerprint", "period", "subject")),
    sa.Column("reason_code", _int), sa.Column("reason", _txt), sa.Column("severity", _txt), sa.Column("asset", _txt),
    sa.Column("amount_minor", _big), sa.Column("state", _txt), sa.Column("owner", _txt),
    *(sa.Column(n, _big) for n in ("opened_at_ms", "due_at_ms", "updated_at_ms", "snoozed_until_ms")),
    sa.Column("resolution", _txt), sa.Column("occurrences", _int), sa.Column("version", _int), sa.Column("head", _txt),
    sa.Column("ack_until_ms", _big), sa.Column("silenced_by", _txt),  # migration 0009 (alerts)
)  # fmt: skip
case_events = sa.Table(
    "case_events", _md,
    sa.Column("case_id", _txt, primary_key=True), sa.Column("version", _int, primary_key=True),
    *(sa.Column(n, _txt) for n in ("action", "prev_state", "new_state", "actor")), sa.Column("at_ms", _big),
    *(sa.Column(n, _txt) for n in ("note", "detail", "prev_hash", "hash")),
)  # fmt: skip

_INSERT_ROWS = 10_000
INTERNAL_KINDS = ("net_instruction", "l1_transaction", *JOURNAL_KINDS)
# The clearing store's journal (migration 0001), read-only here.
ledger_entries = sa.Table(
    "ledger_entries", sa.MetaData(),
    sa.Column("entry_id", _txt, primary_key=True), sa.Column("kind", _txt), sa.Column("ref", _txt),
    sa.Column("at_ms", _big), sa.Column("pending", sa.Boolean), sa.Column("timeout_at_ms", _big),
    sa.Column("status", _txt), sa.Column("status_at_ms", _big), sa.Column("legs", sa.LargeBinary),
)  # fmt: skip


def _where_period(table: sa.Table, period: str | None) -> Any:
    return sa.true() if period is None else table.c.period == period


class SqlReconStore:
    """Reconciliation's storage in the clearing store's database (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # -- imports
    def find_import(self, identity_key: str | None, content_digest: str | None) -> str | None:
        keys = [imports.c.identity_key == identity_key] if identity_key else []
        keys += [imports.c.content_digest == content_digest] if content_digest else []
        if not keys:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(imports.c.import_id).where(sa.or_(*keys))).first()
        return None if row is None else str(row[0])

    def add_import(
        self, record: ImportRecord, external_records: Sequence[ReconRecord], reports: Sequence[BatchReport]
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(imports).values(**record.__dict__))
            rows = [_external_row(record.import_id, r) for r in external_records]
            for start in range(0, len(rows), _INSERT_ROWS):
                conn.execute(sa.insert(external), rows[start : start + _INSERT_ROWS])
            report_rows = [_report_row(record.import_id, r) for r in reports]
            for start in range(0, len(report_rows), _INSERT_ROWS):
                conn.execute(sa.insert(batch_reports), report_rows[start : start + _INSERT_ROWS])

    def imports(self, period: str | None) -> list[ImportRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(imports).where(_where_period(imports, period)).order_by(imports.c.import_id)
            )
            return [ImportRecord(**dict(r)) for r in rows.mappings()]

    def external_records(self, period: str | None) -> list[ReconRecord]:
        c = external.c
        query = sa.select(
            c.record_id, c.kind, c.asset, c.amount_minor, c.at_ms, c.reference, c.account, c.source_ref
        )
        with self.engine.connect() as conn:
            return [ReconRecord(*row) for row in conn.execute(query.where(_where_period(external, period)))]

    def batch_reports(self, period: str | None) -> list[BatchReport]:
        c = batch_reports.c
        query = sa.select(c.exchange_batch_id, c.end_ms, c.trade_count, c.digest, c.totals, c.trade_ids)
        with self.engine.connect() as conn:
            rows = conn.execute(query.where(_where_period(batch_reports, period)).order_by(c.import_id))
            return [
                BatchReport(b, e, n, d, tuple((a, int(v)) for a, v in json.loads(t)), None if i is None else tuple(i.split("\n")))
                for b, e, n, d, t, i in rows
            ]  # fmt: skip

    # -- the clearing store's side
    def asset_scales(self) -> dict[str, int]:
        text = self.store.get_meta("config_toml")
        if text is None:
            return {}
        config = parse_config(tomllib.loads(text), source="<store>")
        return {a.code: a.scale for a in config.assets}

    def internal_records(self, period: str | None, kinds: Collection[str] | None = None) -> list[ReconRecord]:
        """Each source is read only when one of its kinds is asked for (the trade chunks and
        the journal are scans)."""
        want = set(INTERNAL_KINDS if kinds is None else kinds)
        out: list[ReconRecord] = []
        if "net_instruction" in want:
            out.extend(self._net_instructions(period))
        if "l1_transaction" in want:
            out.extend(self._l1_transactions(period))
        if want & set(JOURNAL_KINDS):
            records = journal_records(self.journal(), want)
            out.extend(r for r in records if period is None or period_of(r.at_ms) == period)
        return out

    def journal(self, until_ms: int | None = None) -> list[JournalLine]:
        """``ledger_entries`` with legs resolved through ``ledger_accounts`` — the balances view
        materialised at checkpoints: an account made after the last one reads as
        ``account:<index>`` on no participant (it is left out of statements until then)."""
        a, e = schema.ledger_accounts.c, ledger_entries.c
        with self.engine.connect() as conn:
            accounts = {
                i: (o, s, p, ln)
                for i, o, s, p, ln in conn.execute(sa.select(a.idx, a.owner, a.asset, a.purpose, a.lane))
            }
            query = sa.select(e.entry_id, e.kind, e.ref, e.at_ms, e.pending, e.status, e.status_at_ms, e.legs)
            if until_ms is not None:
                query = query.where(e.at_ms < until_ms)
            rows = conn.execute(query.order_by(e.at_ms, e.entry_id)).all()
        out = []
        for entry_id, kind, ref, at_ms, pending, status, status_at, blob in rows:
            table = read_table(bytes(blob)).to_pydict()
            legs = tuple(
                Leg(*accounts.get(int(i), (f"account:{i}", "?", "?", "?")), int(amount))
                for i, amount in zip(table["account"], table["amount_minor"], strict=True)
            )
            out.append(
                JournalLine(entry_id, kind, ref, int(at_ms), bool(pending), status, int(status_at), legs)
            )
        return out

    def _net_instructions(self, period: str | None) -> Iterator[ReconRecord]:
        b = schema.batches.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(b.batch_id, b.cleared_at_ms, b.net).where(b.state != "unwound")
            ).all()
        for batch_id, cleared_ms, net_blob in rows:
            if period is not None and period_of(cleared_ms) != period:
                continue
            net = read_table(bytes(net_blob)).to_pydict()
            for participant, asset, minor in zip(
                net["participant"], net["asset"], net["net_minor"], strict=True
            ):
                if minor:
                    ref = ids.net_instruction_ref(batch_id, participant)
                    # The house's view: a participant's net debit is money coming in.
                    yield ReconRecord(
                        f"net:{ref}:{asset}", "net_instruction", asset, -minor, cleared_ms, ref, participant
                    )

    def _trade_tables(self) -> Iterator[Any]:
        t = schema.trade_chunks.c
        with self.engine.connect() as conn:
            for (blob,) in conn.execute(sa.select(t.blob).order_by(t.log_seq, t.part)):
                yield read_table(bytes(blob))

    def _l1_transactions(self, period: str | None) -> Iterator[ReconRecord]:
        for table in self._trade_tables():
            cols = table.select(
                ["flow_id", "quote", "quote_minor", "received_ms", "buyer", "lane", "reject_code"]
            )
            for flow_id, quote, minor, at_ms, buyer, lane, reject in zip(
                *cols.to_pydict().values(), strict=True
            ):
                if lane == "L1" and reject == 0 and (period is None or period_of(at_ms) == period):
                    yield ReconRecord(f"l1:{flow_id}", "l1_transaction", quote, minor, at_ms, flow_id, buyer)

    def base_layer(self) -> BaseLayerRecords:
        """Clearlane's anchors (``batches``) and L1 settlements (``l1_groups``), the chain as the
        adapter reported it (the logged ``chain`` entries, folded) and each anchor's payload
        as submitted (``outbox``)."""
        b, g, i, o = schema.batches.c, schema.l1_groups.c, schema.input_log.c, schema.outbox.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(b.batch_id, b.state, b.root, b.anchor_tx, b.anchor_height, b.cleared_at_ms)
            ).all()
            groups = [bytes(r[0]) for r in conn.execute(sa.select(g.blob).order_by(g.group_id))]
            logged = [
                bytes(r[0])
                for r in conn.execute(sa.select(i.payload).where(i.kind == "chain").order_by(i.seq))
            ]
            sent = [
                bytes(r[0])
                for r in conn.execute(sa.select(o.payload).where(o.kind == "anchor").order_by(o.id))
            ]
        anchors = tuple(
            AnchorClaim(str(bid), str(state), bytes(root).hex(), tx, height, int(at))
            for bid, state, root, tx, height, at in rows
        )
        l1: list[L1Claim] = []
        for blob in groups:
            t = read_table(blob).select(["flow_id", "attempt", "included_height", "submitted_ms"]).to_pydict()
            l1 += [L1Claim(*row) for row in zip(*t.values(), strict=True)]
        events = [event_from_dict(e) for data in logged for e in json.loads(data).get("events", [])]
        payloads = {}
        for data in sent:
            tx = tx_submission_from_dict(json.loads(data))
            payloads[tx.tx_id] = tx.payload_hash.hex()
        return BaseLayerRecords(anchors, tuple(l1), chain_view(events), payloads)

    def exchange_batches(self, period: str | None) -> dict[str, ExchangeBatchSummary]:
        trades: dict[str, set[str]] = defaultdict(set)
        totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        last: dict[str, int] = {}
        names = ["exch_batch_id", "flow_id", "base", "qty_minor", "quote", "quote_minor", "received_ms"]
        for table in self._trade_tables():
            for batch, flow, base, qty, quote, amount, at in zip(
                *table.select(names).to_pydict().values(), strict=True
            ):
                if batch is None or (period is not None and period_of(at) != period):
                    continue
                trades[batch].add(flow)
                totals[batch][base] += qty
                totals[batch][quote] += amount
                last[batch] = max(last.get(batch, at), at)
        return {
            b: ExchangeBatchSummary(b, frozenset(trades[b]), tuple(sorted(totals[b].items())), last[b])
            for b in trades
        }

    # -- runs and cases
    def add_run(self, run: RunRecord, record_outcomes: Sequence[RecordOutcome]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(runs).values(
                    **(run.__dict__ | {"counts": json.dumps(dict(run.counts), sort_keys=True)})
                )
            )
            rows = [
                {"run_id": run.run_id, "side": o.side, "record_id": o.record_id, "outcome": o.outcome.value,
                 "reason_code": o.reason.value, "group_id": o.group_id}
                for o in record_outcomes
            ]  # fmt: skip
            for start in range(0, len(rows), _INSERT_ROWS):
                conn.execute(sa.insert(outcomes), rows[start : start + _INSERT_ROWS])

    def runs(self) -> list[RunRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.at_ms, runs.c.run_id)).mappings().all()
        return [RunRecord(**(dict(r) | {"counts": json.loads(r["counts"])})) for r in rows]

    def run_outcomes(self, run_id: str, *, breaks_only: bool = False) -> list[RecordOutcome]:
        c = outcomes.c
        query = sa.select(c.side, c.record_id, c.outcome, c.reason_code, c.group_id).where(c.run_id == run_id)
        if breaks_only:
            query = query.where(c.outcome != Outcome.MATCHED.value)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(c.side, c.record_id)).all()
        return [RecordOutcome(s, r, Outcome(o), Reason(code), g) for s, r, o, code, g in rows]

    def case(self, case_id: str) -> Case | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(cases).where(cases.c.case_id == case_id)).mappings().first()
        return None if row is None else case_from_row(dict(row))

    def cases(self, *, active_only: bool = False, kind: str | None = None) -> list[Case]:
        query = sa.select(cases).order_by(cases.c.opened_at_ms, cases.c.case_id)
        if active_only:
            query = query.where(cases.c.state.in_(("open", "assigned", "in_review", "snoozed")))
        if kind is not None:
            query = query.where(cases.c.kind == kind)
        with self.engine.connect() as conn:
            return [case_from_row(dict(r)) for r in conn.execute(query).mappings()]

    def save_case(self, case: Case, event: CaseEvent) -> None:
        row = case_row(case)
        with self.engine.begin() as conn:
            if case.version == 1:
                exists = conn.execute(
                    sa.select(cases.c.case_id).where(cases.c.case_id == case.case_id)
                ).first()
                if exists is not None:
                    raise CaseError("CASE_VERSION_CONFLICT", f"case {case.case_id}: already exists")
                conn.execute(sa.insert(cases).values(**row))
            else:
                stmt = sa.update(cases).where(
                    cases.c.case_id == case.case_id, cases.c.version == case.version - 1
                )
                if conn.execute(stmt.values(**row)).rowcount != 1:
                    raise CaseError("CASE_VERSION_CONFLICT", f"case {case.case_id}: changed by someone else")
            conn.execute(sa.insert(case_events).values(**event_row(event)))

    def case_events(self, case_id: str) -> list[CaseEvent]:
        query = sa.select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.version)
        with self.engine.connect() as conn:
            return [event_from_row(dict(r)) for r in conn.execute(query).mappings()]


def _external_row(import_id: str, r: ReconRecord) -> dict[str, Any]:
    return {
        "record_id": r.record_id, "import_id": import_id, "kind": r.kind, "asset": r.asset,
        "amount_minor": r.amount_minor, "at_ms": r.at_ms, "period": period_of(r.at_ms),
        "reference": r.reference, "account": r.account, "source_ref": r.source_ref,
    }  # fmt: skip


def _report_row(import_id: str, r: BatchReport) -> dict[str, Any]:
    return {
        "import_id": import_id, "exchange_batch_id": r.exchange_batch_id, "end_ms": r.end_ms,
        "period": period_of(r.end_ms), "trade_count": r.trade_count, "digest": r.digest,
        "totals": json.dumps([[a, str(v)] for a, v in r.totals]),
        "trade_ids": None if r.trade_ids is None else "\n".join(r.trade_ids),
    }  # fmt: skip


__all__ = ["SqlReconStore"]
