"""Breaks: what a reconciliation found wrong, in one shape whatever the source.

A break names its code (:class:`~clearlane.core.recon.codes.Reason`), its subject (the id it is
about), the asset and absolute amount at stake, and a human detail. Its ``fingerprint`` is what
identifies "the same break" across runs, so a case is opened once per (rule, fingerprint,
period) and not once per run. Also here: the exchange batch-report comparison, which only
needs sets and sums.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from clearlane.core.recon.codes import Reason
from clearlane.core.recon.records import BatchReport, trade_ids_digest


@dataclass(frozen=True, slots=True)
class Break:
    code: Reason
    subject: str
    detail: str
    asset: str = ""
    amount_minor: int = 0
    at_ms: int = 0

    @property
    def fingerprint(self) -> str:
        text = f"{self.code.value}|{self.subject}|{self.asset}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ExchangeBatchSummary:
    """Clearlane's own view of one exchange batch: the accepted trades that carried its id."""

    exchange_batch_id: str
    trade_ids: frozenset[str]
    totals: tuple[tuple[str, int], ...]
    last_received_ms: int


def _id_breaks(report: BatchReport, ours: ExchangeBatchSummary) -> list[Break]:
    subject = report.exchange_batch_id
    if report.trade_ids is None:
        out = []
        if report.trade_count != len(ours.trade_ids):
            detail = f"report counts {report.trade_count} trades, clearlane has {len(ours.trade_ids)}"
            out.append(Break(Reason.BATCH_COUNT_MISMATCH, subject, detail, at_ms=report.end_ms))
        elif report.digest != trade_ids_digest(tuple(ours.trade_ids)):
            detail = "same count, different trade ids (digest differs)"
            out.append(Break(Reason.BATCH_DIGEST_MISMATCH, subject, detail, at_ms=report.end_ms))
        return out
    theirs = set(report.trade_ids)
    missing = sorted(theirs - ours.trade_ids)
    extra = sorted(ours.trade_ids - theirs)
    out = [
        Break(Reason.BATCH_MISSING_TRADE, f"{subject}/{t}", "reported, never received", at_ms=report.end_ms)
        for t in missing
    ]
    out += [
        Break(Reason.BATCH_EXTRA_TRADE, f"{subject}/{t}", "received, not in the report", at_ms=report.end_ms)
        for t in extra
    ]
    return out


def _total_breaks(report: BatchReport, ours: ExchangeBatchSummary) -> list[Break]:
    theirs, mine = dict(report.totals), dict(ours.totals)
    out = []
    for asset in sorted(set(theirs) | set(mine)):
        gap = theirs.get(asset, 0) - mine.get(asset, 0)
        if gap:
            detail = f"report total {theirs.get(asset, 0)}, clearlane {mine.get(asset, 0)} (minor units)"
            out.append(
                Break(
                    Reason.BATCH_AMOUNT_MISMATCH,
                    report.exchange_batch_id,
                    detail,
                    asset,
                    abs(gap),
                    report.end_ms,
                )
            )
    return out


def compare_batch_reports(
    reports: Iterable[BatchReport],
    ours: Mapping[str, ExchangeBatchSummary],
    *,
    late_grace_ms: int,
    expect_all: bool = True,
) -> list[Break]:
    """Every break between the exchange's reports and clearlane's trades, in a stable order.

    ``expect_all``: the reports cover the whole period, so an exchange batch clearlane saw and
    no report names is a break too (false for a partial report, which then proves nothing).
    """
    out: list[Break] = []
    seen: set[str] = set()
    for report in sorted(reports, key=lambda r: r.exchange_batch_id):
        seen.add(report.exchange_batch_id)
        mine = ours.get(report.exchange_batch_id)
        if mine is None:
            detail = f"no trade of this exchange batch reached clearlane ({report.trade_count} reported)"
            out.append(Break(Reason.BATCH_UNKNOWN, report.exchange_batch_id, detail, at_ms=report.end_ms))
            continue
        id_breaks = _id_breaks(report, mine)
        out += id_breaks
        # Totals are only compared when the trade sets agree: a missing trade already explains
        # its amounts, and one cause should open one case.
        if not id_breaks:
            out += _total_breaks(report, mine)
        if mine.last_received_ms > report.end_ms + late_grace_ms:
            late_ms = mine.last_received_ms - report.end_ms
            detail = f"last trade reached clearlane {late_ms} ms after the batch end"
            out.append(Break(Reason.BATCH_LATE, report.exchange_batch_id, detail, at_ms=report.end_ms))
    if expect_all:
        for batch_id in sorted(set(ours) - seen):
            detail = f"{len(ours[batch_id].trade_ids)} trades received, no report names the batch"
            out.append(
                Break(Reason.BATCH_NOT_REPORTED, batch_id, detail, at_ms=ours[batch_id].last_received_ms)
            )
    return out


__all__ = ["Break", "ExchangeBatchSummary", "compare_batch_reports"]
