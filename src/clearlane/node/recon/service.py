"""Reconciliation's use cases: import a file once, run the matcher and the batch-report
comparison for a period, and keep one exception case per break.

A run is ``completed`` only when every source of its period proves itself complete (each
statement's opening + movements = closing, and at least one external source); otherwise it is
``incomplete`` and closes nothing automatically (Formance's "fail, never truncate"). Cases are
identified by (kind, rule, fingerprint, period): a break seen again recurs on its open case, a
break no longer seen by a complete run auto-resolves it, and a rule that would open more than
``flood_max`` new cases in one run opens one flood-guard case instead.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from clearlane.core.cases import (
    Action,
    Case,
    CaseEvent,
    CaseKind,
    CaseState,
    CaseSubject,
    Resolution,
    act,
    case_id,
    open_case,
    severity_for,
)
from clearlane.core.errors import NotFound
from clearlane.core.recon.amounts import currency_scale
from clearlane.core.recon.baselayer import RULE as BASE_LAYER_RULE
from clearlane.core.recon.breaks import Break, compare_batch_reports
from clearlane.core.recon.codes import Reason
from clearlane.core.recon.eod import JOURNAL_KINDS
from clearlane.core.recon.matching import EXTERNAL, INTERNAL, MatchRules, match
from clearlane.core.recon.records import ReconRecord, Statement, date_ms, period_of
from clearlane.node.ports import ImportRecord, ReconStore, RunRecord
from clearlane.node.recon.sources import (
    REPORT_FORMATS,
    check_format,
    detect_format,
    read_batch_reports,
    read_statements,
)

ALL_PERIODS = "all"
# What bank statements settle: the participants' net instructions. L1 transactions settle on
# the base layer between participants and are matched against chain records instead.
INTERNAL_KINDS = ("net_instruction",)
# Every kind the clearing store gives (``--internal`` / the run body's ``internal`` choose).
ALL_INTERNAL_KINDS = ("net_instruction", "l1_transaction", *JOURNAL_KINDS)
FLOOD_MAX = 200


@dataclass
class ImportResult:
    file_name: str
    format: str
    imported: list[ImportRecord] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (what, the earlier import)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def statement_records(import_id: str, stmt: Statement) -> list[ReconRecord]:
    """The booked lines of a statement as external records; a batch entry whose details all
    carry amounts that add up is debulked into one record per detail (1:N matching needs them)."""
    fallback = date_ms(stmt.closing.date if stmt.closing else None) or 0
    out: list[ReconRecord] = []
    for e in stmt.entries:
        if e.status != "BOOK":
            continue
        at_ms = date_ms(e.value_date) or date_ms(e.booking_date) or fallback
        bank_ref = e.refs.account_servicer_ref or ""
        parts = [d.amount_minor for d in e.details]
        if len(parts) < 2 or None in parts or sum(p or 0 for p in parts) != abs(e.amount_minor):
            out.append(ReconRecord(f"{import_id}:{e.index}", "statement_line", e.currency, e.amount_minor, at_ms,
                                   e.refs.best(), "", bank_ref))  # fmt: skip
            continue
        sign = -1 if e.amount_minor < 0 else 1
        for j, d in enumerate(e.details):
            out.append(
                ReconRecord(f"{import_id}:{e.index}.{j}", "statement_line", e.currency, sign * (d.amount_minor or 0),
                            at_ms, d.refs.best() or e.refs.best(), "", d.refs.account_servicer_ref or f"{bank_ref}.{j}")
            )  # fmt: skip
    return out


def _import_statements(
    store: ReconStore, path: Path, fmt: str, sha: str, now_ms: int, result: ImportResult
) -> None:
    for stmt in read_statements(path, fmt):
        key, digest = stmt.identity_key(), stmt.content_digest()
        earlier = store.find_import(key, digest)
        if earlier is not None:
            result.duplicates.append((key, earlier))
            continue
        import_id = "stm-" + digest[:20]
        records = statement_records(import_id, stmt)
        when = date_ms(stmt.closing.date if stmt.closing else None) or (records[0].at_ms if records else 0)
        record = ImportRecord(
            import_id, "statement", fmt, path.name, sha, key, digest, period_of(when), now_ms, len(records),
            stmt.balance_gap(),
        )  # fmt: skip
        store.add_import(record, records, [])
        result.imported.append(record)


def import_file(store: ReconStore, path: Path, *, fmt: str | None, now_ms: int) -> ImportResult:
    """Import a statement or batch-report file; what was imported before is ignored."""
    fmt = check_format(fmt) if fmt else detect_format(path)
    sha = _sha256(path)
    result = ImportResult(path.name, fmt)
    if fmt not in REPORT_FORMATS:
        _import_statements(store, path, fmt, sha, now_ms, result)
        return result
    earlier = store.find_import(None, sha)
    if earlier is not None:
        result.duplicates.append((path.name, earlier))
        return result
    reports = read_batch_reports(path, fmt, store.asset_scales())
    end_ms = min((r.end_ms for r in reports), default=0)
    record = ImportRecord(
        "rep-" + sha[:20],
        "batch_report",
        fmt,
        path.name,
        sha,
        None,
        sha,
        period_of(end_ms),
        now_ms,
        len(reports),
        None,
    )
    store.add_import(record, [], reports)
    result.imported.append(record)
    return result


@dataclass
class RunReport:
    run: RunRecord
    breaks: list[Break]
    opened: int = 0
    recurred: int = 0
    reopened: int = 0
    auto_resolved: int = 0
    flooded: dict[str, int] = field(default_factory=dict)
    # Every case change the run made, in order: what the drivers publish as ``exception.*``.
    changes: list[tuple[Case, CaseEvent]] = field(default_factory=list)

    def save(self, store: ReconStore, change: tuple[Case, CaseEvent]) -> None:
        store.save_case(*change)
        self.changes.append(change)


def _rule_of(code: Reason, rules: MatchRules) -> str:
    if 500 <= code.value < 600:
        return BASE_LAYER_RULE
    if code.value >= 400:
        return "recon.batch-report/1"
    if code.value >= 300:
        return "recon.statement/1"
    return f"recon.match/{rules.version}"


def _statement_breaks(imports: list[ImportRecord]) -> list[Break]:
    return [
        Break(Reason.STATEMENT_UNBALANCED, i.identity_key or i.import_id,
              f"opening + movements differs from closing by {i.balance_gap_minor} minor units")
        for i in imports if i.kind == "statement" and i.balance_gap_minor
    ]  # fmt: skip


def run(
    store: ReconStore,
    *,
    period: str | None,
    rules: MatchRules,
    now_ms: int,
    late_grace_ms: int = 5_000,
    flood_max: int = FLOOD_MAX,
    internal_kinds: tuple[str, ...] = INTERNAL_KINDS,
    base_layer: bool = True,
) -> RunReport:
    """Match the period's external records against the store's, compare batch reports, and
    bring the cases up to date. Deterministic in its inputs (``now_ms`` names the run).

    Only internal records of ``internal_kinds`` in an asset the external side covers take part:
    a bank account statement in USD says nothing about BTC net instructions. ``base_layer``:
    also hold the store's anchors and L1 settlements to the chain as the adapter reported it."""
    imports = store.imports(period)
    external = store.external_records(period)
    assets = {r.asset for r in external}
    internal = [r for r in store.internal_records(period, internal_kinds) if r.asset in assets]
    result = match(external, internal, rules)
    by_side = {(EXTERNAL, r.record_id): r for r in external} | {(INTERNAL, r.record_id): r for r in internal}
    breaks = _statement_breaks(imports) + result.breaks(by_side)
    reports = store.batch_reports(period)
    if reports:
        breaks += compare_batch_reports(reports, store.exchange_batches(period), late_grace_ms=late_grace_ms)
    if base_layer:
        breaks += store.base_layer().breaks(period)
    complete = bool(imports) and not any(i.balance_gap_minor for i in imports)
    label = period or ALL_PERIODS
    lines = "\n".join(
        f"{o.side}|{o.record_id}|{o.outcome.value}|{o.reason.value}|{o.group_id}" for o in result.outcomes
    )
    run_id = "run-" + hashlib.sha256(f"{label}|{rules.version}|{now_ms}".encode()).hexdigest()[:16]
    record = RunRecord(
        run_id, label, rules.version, "completed" if complete else "incomplete", now_ms, result.counts(),
        len(breaks), hashlib.sha256(lines.encode()).hexdigest(),
    )  # fmt: skip
    store.add_run(record, result.outcomes)
    report = RunReport(record, breaks)
    _sync_cases(store, report, label, rules, store.asset_scales(), flood_max)
    return report


def _subject(b: Break, rule: str, period: str, scales: dict[str, int]) -> CaseSubject:
    scale = scales.get(b.asset, currency_scale(b.asset)) if b.asset else 2
    return CaseSubject(
        CaseKind.EXCEPTION, rule, b.fingerprint, period, b.subject, b.code.value, b.code.name, b.asset,
        b.amount_minor, severity_for(b.amount_minor, scale),
    )  # fmt: skip


def _sync_cases(
    store: ReconStore,
    report: RunReport,
    period: str,
    rules: MatchRules,
    scales: dict[str, int],
    flood_max: int,
) -> None:
    run_id, now_ms = report.run.run_id, report.run.at_ms
    new: dict[str, list[Break]] = defaultdict(list)
    seen: set[str] = set()
    for b in report.breaks:
        rule = _rule_of(b.code, rules)
        cid = case_id(CaseKind.EXCEPTION, rule, b.fingerprint, period)
        if cid in seen:
            continue
        seen.add(cid)
        existing = store.case(cid)
        if existing is None:
            new[rule].append(b)
        elif existing.state.active:
            report.save(store, act(existing, Action.RECUR, actor="recon", at_ms=now_ms, note=None))
            report.recurred += 1
        elif existing.state is CaseState.RESOLVED:
            note = f"seen again in run {run_id}"
            report.save(store, act(existing, Action.REOPEN, actor="recon", at_ms=now_ms, note=note))
            report.reopened += 1
    for rule, breaks in sorted(new.items()):
        if len(breaks) > flood_max:
            report.flooded[rule] = len(breaks)
            breaks = [_flood_break(rule, len(breaks), run_id)]
        for b in breaks:
            report.save(
                store,
                open_case(_subject(b, rule, period, scales), actor="recon", at_ms=now_ms, detail=b.detail),
            )
            report.opened += 1
    if report.run.status == "completed":
        _auto_resolve(store, report, period, seen)


def _flood_break(rule: str, count: int, run_id: str) -> Break:
    detail = f"{count} new breaks in one run (more than the flood guard allows): see run {run_id}'s outcomes"
    return Break(Reason.FLOOD_GUARD, f"flood:{rule}:{run_id}", detail)


def _auto_resolve(store: ReconStore, report: RunReport, period: str, seen: set[str]) -> None:
    """A complete run that no longer sees a break closes its case (this period's only)."""
    for case in store.cases(active_only=True, kind=CaseKind.EXCEPTION.value):
        if case.period != period or case.case_id in seen or case.reason_code == Reason.FLOOD_GUARD:
            continue
        note = f"not seen in complete run {report.run.run_id}"
        moved = act(
            case, Action.RESOLVE, actor="recon", at_ms=report.run.at_ms, note=note, resolution=Resolution.AUTO
        )
        report.save(store, moved)
        report.auto_resolved += 1


def act_on_case(
    store: ReconStore,
    cid: str,
    action: Action,
    *,
    actor: str,
    now_ms: int,
    note: str | None = None,
    owner: str | None = None,
    until_ms: int | None = None,
    resolution: Resolution | None = None,
    expected_version: int | None = None,
) -> Case:
    """One operator action on a case (assign, acknowledge, snooze, resolve, accept, reopen...)."""
    case = store.case(cid)
    if case is None:
        raise NotFound(f"case {cid}: no such case")
    moved, event = act(
        case, action, actor=actor, at_ms=now_ms, note=note, owner=owner, until_ms=until_ms,
        resolution=resolution, expected_version=expected_version,
    )  # fmt: skip
    store.save_case(moved, event)
    return moved


__all__ = ["ImportResult", "RunReport", "act_on_case", "import_file", "run", "statement_records"]
