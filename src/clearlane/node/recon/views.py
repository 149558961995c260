"""Reconciliation as JSON for the drivers (HTTP, dashboard, CLI): imported statements and batch
reports, runs with their counts, and a run's breaks — every outcome but ``matched``, joined
with the record it is about (amount as a decimal, reference, account, time)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clearlane.core.errors import NotFound
from clearlane.core.money import format_minor
from clearlane.core.recon.amounts import currency_scale
from clearlane.core.recon.records import ReconRecord
from clearlane.node.events import iso
from clearlane.node.ports import ImportRecord, ReconStore, RunRecord


def import_view(record: ImportRecord) -> dict[str, Any]:
    return {
        "import_id": record.import_id, "kind": record.kind, "format": record.format,
        "file_name": record.file_name, "file_sha256": record.file_sha256, "identity_key": record.identity_key,
        "content_digest": record.content_digest, "period": record.period,
        "imported_at_ms": record.imported_at_ms, "imported_at": iso(record.imported_at_ms),
        "records": record.records, "balance_gap_minor": record.balance_gap_minor,
        "balanced": not record.balance_gap_minor,
    }  # fmt: skip


def run_view(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id, "period": record.period, "rules_version": record.rules_version,
        "status": record.status, "at_ms": record.at_ms, "at": iso(record.at_ms), "counts": dict(record.counts),
        "breaks": record.breaks, "outcomes_sha256": record.outcomes_sha256,
    }  # fmt: skip


def find_run(store: ReconStore, run_id: str | None, period: str | None = None) -> RunRecord:
    """The run named, or the latest one (of ``period`` if given)."""
    runs = [r for r in store.runs() if period is None or r.period == period]
    if run_id is not None:
        runs = [r for r in runs if r.run_id == run_id]
    if not runs:
        raise NotFound(f"run {run_id or 'latest'}: no such run")
    return runs[-1]


def _record_view(record: ReconRecord | None, scales: Mapping[str, int]) -> dict[str, Any]:
    if record is None:
        return {}
    scale = scales.get(record.asset, currency_scale(record.asset))
    return {
        "kind": record.kind, "asset": record.asset, "amount_minor": record.amount_minor,
        "amount": format_minor(record.amount_minor, scale), "at_ms": record.at_ms, "at": iso(record.at_ms),
        "reference": record.reference or None, "account": record.account or None,
        "source_ref": record.source_ref or None,
    }  # fmt: skip


def _kind_of_id(record_id: str) -> str:
    """The internal kind a record id names (``net:…``, ``l1:…``, else ``<kind>:…``)."""
    prefix = record_id.split(":", 1)[0]
    return {"net": "net_instruction", "l1": "l1_transaction"}.get(prefix, prefix)


def run_breaks(store: ReconStore, run: RunRecord, scales: Mapping[str, int]) -> list[dict[str, Any]]:
    """Every outcome of ``run`` that is not ``matched``, with its record. Internal records are
    read only when the run has internal breaks (reading them scans the clearing store)."""
    outcomes = store.run_outcomes(run.run_id, breaks_only=True)
    period = None if run.period == "all" else run.period
    records: dict[str, ReconRecord] = {}
    if any(o.side == "external" for o in outcomes):
        records.update((r.record_id, r) for r in store.external_records(period))
    kinds = {_kind_of_id(o.record_id) for o in outcomes if o.side == "internal"}
    if kinds:
        records.update((r.record_id, r) for r in store.internal_records(period, kinds))
    return [
        {
            "side": o.side,
            "record_id": o.record_id,
            "outcome": o.outcome.value,
            "reason_code": o.reason.value,
            "reason": o.reason.name,
            "group_id": o.group_id,
        }
        | _record_view(records.get(o.record_id), scales)
        for o in outcomes
    ]


__all__ = ["find_run", "import_view", "run_breaks", "run_view"]
