"""The exchange batch report format (CSV and JSON, strict) and its comparison with clearlane's
own trades: every break the generator injects is found with its code, and nothing else."""

from __future__ import annotations

import pytest

from clearlane.core.recon.batchreport import BatchReportError, iter_csv, parse_json, render_csv, render_json
from clearlane.core.recon.breaks import ExchangeBatchSummary, compare_batch_reports
from clearlane.core.recon.codes import Reason
from clearlane.core.recon.records import BatchReport, trade_ids_digest
from clearlane.sim.generator import exchange_batch_reports, generate_day

SCALES = {"BTC": 8, "USD": 2}


def _report(**changes: object) -> BatchReport:
    ids = ("T1", "T2")
    fields: dict[str, object] = {
        "exchange_batch_id": "EB-1", "end_ms": 1_763_700_000_250, "trade_count": 2,
        "digest": trade_ids_digest(ids), "totals": (("BTC", 150_000_000), ("USD", 9_750_001)), "trade_ids": ids,
    }  # fmt: skip
    fields.update(changes)
    return BatchReport(**fields)  # type: ignore[arg-type]


def test_csv_and_json_round_trip() -> None:
    reports = [_report(), _report(exchange_batch_id="EB-2", trade_ids=None)]
    assert parse_json(render_json(reports, SCALES), SCALES) == reports
    assert list(iter_csv(render_csv(reports, SCALES).splitlines(keepends=True), SCALES)) == reports
    assert "BTC:1.50000000;USD:97500.01" in render_csv(reports, SCALES)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"format": "nope", "batches": []}', "format"),
        ('{"format": "clearlane.exchange-batch-report/1", "batches": [{"exchange_batch_id": "EB 1"}]}', "exchange_batch_id"),
        ('{"format": "clearlane.exchange-batch-report/1", "batches": [{"exchange_batch_id": "EB-1", "trade_count": -1}]}', "trade_count"),
    ],
)  # fmt: skip
def test_bad_json_names_the_field(text: str, field: str) -> None:
    with pytest.raises(BatchReportError, match=field):
        parse_json(text, SCALES)


def test_bad_csv_totals_name_the_asset() -> None:
    good = render_csv([_report()], SCALES)
    with pytest.raises(BatchReportError, match=r"totals\.USD"):
        list(iter_csv(good.replace("USD:97500.01", "USD:97500.001").splitlines(), SCALES))
    with pytest.raises(BatchReportError, match=r"totals\.XRP: unknown asset"):
        list(iter_csv(good.replace("USD:97500.01", "XRP:1").splitlines(), SCALES))
    with pytest.raises(BatchReportError, match="header"):
        list(iter_csv(["a,b\n"], SCALES))


def _ours(reports: list[BatchReport]) -> dict[str, ExchangeBatchSummary]:
    return {
        r.exchange_batch_id: ExchangeBatchSummary(
            r.exchange_batch_id, frozenset(r.trade_ids or ()), r.totals, r.end_ms - 1
        )
        for r in reports
    }


def test_generated_breaks_are_found_exactly() -> None:
    day = generate_day(trades=3000, participants=8, assets=3, seed=5)
    clean, none = exchange_batch_reports(day, seed=1)
    assert none == [] and compare_batch_reports(clean, _ours(clean), late_grace_ms=5_000) == []
    breaks = {"missing_trade": 3, "amount_mismatch": 2, "extra_trade": 2, "late_batch": 1}
    dirty, injected = exchange_batch_reports(day, seed=1, breaks=breaks)
    found = compare_batch_reports(dirty, _ours(clean), late_grace_ms=5_000)
    expected = {
        "missing_trade": Reason.BATCH_MISSING_TRADE, "amount_mismatch": Reason.BATCH_AMOUNT_MISMATCH,
        "extra_trade": Reason.BATCH_EXTRA_TRADE, "late_batch": Reason.BATCH_LATE,
    }  # fmt: skip
    assert sorted((b.subject.split("/")[0], b.code) for b in found) == sorted(
        (batch_id, expected[kind]) for batch_id, kind in injected
    )
    assert len(injected) == 8


def test_count_and_digest_without_ids_and_unreported_batches() -> None:
    ours = _ours([_report(), _report(exchange_batch_id="EB-9")])
    short = _report(trade_ids=None, trade_count=1)
    swapped = _report(trade_ids=None, digest=trade_ids_digest(["T1", "T3"]))
    codes = [b.code for b in compare_batch_reports([short], ours, late_grace_ms=0)]
    assert codes == [Reason.BATCH_COUNT_MISMATCH, Reason.BATCH_NOT_REPORTED]
    codes = [b.code for b in compare_batch_reports([swapped], ours, late_grace_ms=0, expect_all=False)]
    assert codes == [Reason.BATCH_DIGEST_MISMATCH]
    unknown = compare_batch_reports(
        [_report(exchange_batch_id="EB-X")], ours, late_grace_ms=0, expect_all=False
    )
    assert [b.code for b in unknown] == [Reason.BATCH_UNKNOWN]
