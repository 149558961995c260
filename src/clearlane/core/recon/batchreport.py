"""The exchange batch report, format ``clearlane.exchange-batch-report/1`` (CSV and JSON).

One record per exchange batch: its id, its end time (RFC 3339, UTC), the number of trades, the
SHA-256 of its sorted trade ids joined by newlines, its totals per asset (base quantities and
quote amounts, decimals in the asset's scale) and optionally the trade ids themselves. Parsing
is strict and pure (text in, records out); reading files is the node's job. The format is
documented in docs/RECONCILIATION.md.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from clearlane.core.errors import InputError
from clearlane.core.money import DecimalError, format_minor, parse_decimal
from clearlane.core.recon.records import BatchReport

FORMAT = "clearlane.exchange-batch-report/1"
CSV_COLUMNS = ("exchange_batch_id", "batch_end", "trade_count", "trade_ids_sha256", "totals", "trade_ids")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class BatchReportError(InputError, ValueError, code="RECON_BATCH_REPORT_INVALID"):
    """A batch report row or document that does not follow the format."""


def _time_ms(text: Any, where: str) -> int:
    if not isinstance(text, str) or not text.endswith("Z"):
        raise BatchReportError(f"{where}.batch_end: {text!r} is not an RFC 3339 UTC time (…Z)")
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        raise BatchReportError(f"{where}.batch_end: {text!r} is not an RFC 3339 time") from None
    return int(moment.timestamp() * 1000)


def format_time(at_ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the report's time spelling."""
    moment = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"


def _totals(raw: Mapping[str, Any], scales: Mapping[str, int], where: str) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for asset, text in sorted(raw.items()):
        if asset not in scales:
            raise BatchReportError(f"{where}.totals.{asset}: unknown asset")
        try:
            out.append((asset, parse_decimal(str(text), scales[asset], allow_zero=True)))
        except DecimalError as error:
            raise BatchReportError(f"{where}.totals.{asset}: {error}") from None
    return tuple(out)


def _report(raw: Mapping[str, Any], scales: Mapping[str, int], where: str) -> BatchReport:
    batch_id = raw.get("exchange_batch_id")
    if not isinstance(batch_id, str) or not _ID.match(batch_id):
        raise BatchReportError(f"{where}.exchange_batch_id: {batch_id!r} is not an id")
    where = f"{where}[{batch_id}]"
    count = raw.get("trade_count")
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise BatchReportError(f"{where}.trade_count: {count!r} is not a non-negative integer")
    digest = raw.get("trade_ids_sha256")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise BatchReportError(f"{where}.trade_ids_sha256: not 64 lower-case hex digits")
    totals = raw.get("totals")
    if not isinstance(totals, Mapping):
        raise BatchReportError(f"{where}.totals: missing")
    ids = raw.get("trade_ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise BatchReportError(f"{where}.trade_ids: not a list of ids")
    return BatchReport(
        exchange_batch_id=batch_id,
        end_ms=_time_ms(raw.get("batch_end"), where),
        trade_count=count,
        digest=digest,
        totals=_totals(totals, scales, where),
        trade_ids=None if ids is None else tuple(ids),
    )


def parse_json(text: str, scales: Mapping[str, int]) -> list[BatchReport]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise BatchReportError(f"batch report: not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BatchReportError(f"batch report.format: expected {FORMAT!r}")
    batches = document.get("batches")
    if not isinstance(batches, list):
        raise BatchReportError("batch report.batches: missing")
    return [_report(b if isinstance(b, dict) else {}, scales, f"batches[{i}]") for i, b in enumerate(batches)]


def _csv_totals(text: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, text.split(";")):
        asset, sep, amount = part.partition(":")
        if not sep:
            raise BatchReportError(f"{where}.totals: {part!r} is not ASSET:amount")
        out[asset] = amount
    return out


def iter_csv(lines: Iterable[str], scales: Mapping[str, int]) -> Iterator[BatchReport]:
    """Stream the CSV form; the header must name exactly :data:`CSV_COLUMNS`."""
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
        raise BatchReportError(f"batch report header: expected {','.join(CSV_COLUMNS)}")
    for number, row in enumerate(reader, 2):
        where = f"line {number}"
        raw: dict[str, Any] = dict(row)
        raw["totals"] = _csv_totals(row["totals"] or "", where)
        raw["trade_ids"] = row["trade_ids"].split(";") if row["trade_ids"] else None
        yield _report(raw, scales, where)


def _plain(report: BatchReport, scales: Mapping[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "exchange_batch_id": report.exchange_batch_id,
        "batch_end": format_time(report.end_ms),
        "trade_count": report.trade_count,
        "trade_ids_sha256": report.digest,
        "totals": {a: format_minor(v, scales[a]) for a, v in report.totals},
    }
    if report.trade_ids is not None:
        out["trade_ids"] = list(report.trade_ids)
    return out


def render_json(reports: Iterable[BatchReport], scales: Mapping[str, int]) -> str:
    # "format" first, so a reader that sniffs the head of the file finds it.
    body = {"format": FORMAT, "batches": [_plain(r, scales) for r in reports]}
    return json.dumps(body, indent=1) + "\n"


def render_csv(reports: Iterable[BatchReport], scales: Mapping[str, int]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in reports:
        plain = _plain(r, scales)
        totals = ";".join(f"{a}:{v}" for a, v in plain["totals"].items())
        ids = ";".join(r.trade_ids) if r.trade_ids is not None else ""
        writer.writerow((r.exchange_batch_id, plain["batch_end"], r.trade_count, r.digest, totals, ids))
    return out.getvalue()


__all__ = ["CSV_COLUMNS", "FORMAT", "BatchReportError", "iter_csv", "parse_json", "render_csv", "render_json"]
