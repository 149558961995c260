"""The in-memory :class:`~clearlane.node.ports.ReconStore` (tests, demos, the benchmark): the
same answers as the SQL one, with the internal side handed in at construction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from clearlane.core.cases import Case, CaseError, CaseEvent
from clearlane.core.recon.baselayer import BaseLayerRecords
from clearlane.core.recon.breaks import ExchangeBatchSummary
from clearlane.core.recon.codes import Outcome
from clearlane.core.recon.eod import JournalLine
from clearlane.core.recon.matching import RecordOutcome
from clearlane.core.recon.records import BatchReport, ReconRecord, period_of
from clearlane.node.ports import ImportRecord, RunRecord

_ACTIVE = ("open", "assigned", "in_review", "snoozed")


@dataclass
class MemoryReconStore:
    internal: list[ReconRecord] = field(default_factory=list)
    ledger: list[JournalLine] = field(default_factory=list)
    batches: dict[str, ExchangeBatchSummary] = field(default_factory=dict)
    scales: dict[str, int] = field(default_factory=dict)
    chain: BaseLayerRecords = field(default_factory=BaseLayerRecords)
    _imports: dict[str, ImportRecord] = field(default_factory=dict)
    _external: list[ReconRecord] = field(default_factory=list)
    _reports: list[tuple[str, BatchReport]] = field(default_factory=list)
    _runs: list[tuple[RunRecord, list[RecordOutcome]]] = field(default_factory=list)
    _cases: dict[str, Case] = field(default_factory=dict)
    _events: dict[str, list[CaseEvent]] = field(default_factory=dict)

    def find_import(self, identity_key: str | None, content_digest: str | None) -> str | None:
        for record in self._imports.values():
            if (identity_key and record.identity_key == identity_key) or (
                content_digest and record.content_digest == content_digest
            ):
                return record.import_id
        return None

    def add_import(
        self, record: ImportRecord, external: Sequence[ReconRecord], reports: Sequence[BatchReport]
    ) -> None:
        self._imports[record.import_id] = record
        self._external.extend(external)
        self._reports.extend((record.import_id, r) for r in reports)

    def imports(self, period: str | None) -> list[ImportRecord]:
        return [i for _, i in sorted(self._imports.items()) if period is None or i.period == period]

    def external_records(self, period: str | None) -> list[ReconRecord]:
        return [r for r in self._external if period is None or period_of(r.at_ms) == period]

    def batch_reports(self, period: str | None) -> list[BatchReport]:
        return [
            r
            for _, r in sorted(self._reports, key=lambda x: x[0])
            if period is None or period_of(r.end_ms) == period
        ]

    def internal_records(self, period: str | None, kinds: Collection[str] | None = None) -> list[ReconRecord]:
        return [
            r
            for r in self.internal
            if (period is None or period_of(r.at_ms) == period) and (kinds is None or r.kind in kinds)
        ]

    def journal(self, until_ms: int | None = None) -> list[JournalLine]:
        return [line for line in self.ledger if until_ms is None or line.at_ms < until_ms]

    def base_layer(self) -> BaseLayerRecords:
        return self.chain

    def exchange_batches(self, period: str | None) -> dict[str, ExchangeBatchSummary]:
        return {
            k: b for k, b in self.batches.items() if period is None or period_of(b.last_received_ms) == period
        }

    def asset_scales(self) -> dict[str, int]:
        return dict(self.scales)

    def add_run(self, run: RunRecord, outcomes: Sequence[RecordOutcome]) -> None:
        self._runs.append((run, list(outcomes)))

    def runs(self) -> list[RunRecord]:
        return sorted((r for r, _ in self._runs), key=lambda r: (r.at_ms, r.run_id))

    def run_outcomes(self, run_id: str, *, breaks_only: bool = False) -> list[RecordOutcome]:
        found = next((o for r, o in self._runs if r.run_id == run_id), [])
        kept = [o for o in found if not breaks_only or o.outcome is not Outcome.MATCHED]
        return sorted(kept, key=lambda o: (o.side, o.record_id))

    def case(self, case_id: str) -> Case | None:
        return self._cases.get(case_id)

    def cases(self, *, active_only: bool = False, kind: str | None = None) -> list[Case]:
        found = [
            c
            for c in self._cases.values()
            if (not active_only or c.state.value in _ACTIVE) and (kind is None or c.kind.value == kind)
        ]
        return sorted(found, key=lambda c: (c.opened_at_ms, c.case_id))

    def save_case(self, case: Case, event: CaseEvent) -> None:
        current = self._cases.get(case.case_id)
        expected = None if case.version == 1 else case.version - 1
        if (current.version if current else None) != expected:
            raise CaseError("CASE_VERSION_CONFLICT", f"case {case.case_id}: changed by someone else")
        self._cases[case.case_id] = case
        self._events.setdefault(case.case_id, []).append(event)

    def case_events(self, case_id: str) -> list[CaseEvent]:
        return list(self._events.get(case_id, []))


__all__ = ["MemoryReconStore"]
