"""Which format a file is, and reading it into statements or batch reports.

Detection looks at the first 4 KiB only: an ISO 20022 namespace (camt.052/053/054), the batch
report's JSON ``format`` or CSV header, or an MT940 ``:20:`` tag. ``--format`` overrides it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from clearlane.core.errors import InputError
from clearlane.core.recon import batchreport
from clearlane.core.recon.records import BatchReport, Statement
from clearlane.node.recon import camt, mt940

STATEMENT_FORMATS = ("camt.053", "camt.054", "camt.052", "mt940")
REPORT_FORMATS = ("batch.csv", "batch.json")
FORMATS = STATEMENT_FORMATS + REPORT_FORMATS


class SourceFormatError(InputError, ValueError, code="RECON_FORMAT_UNKNOWN"):
    """A file whose format cannot be recognised, or a format name that does not exist."""


def detect_format(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", errors="replace")
    except OSError as error:
        raise SourceFormatError(f"{path}: cannot be read ({error.strerror})") from None
    stripped = head.lstrip("\ufeff \t\r\n")
    if stripped.startswith("<"):
        for fmt in ("camt.053", "camt.054", "camt.052"):
            if fmt in head:
                return fmt
    # The only JSON source (its "format" member is checked on parse); "{1:" is a SWIFT block.
    if stripped.startswith("{") and stripped[1:].lstrip().startswith('"'):
        return "batch.json"
    if stripped.startswith(",".join(batchreport.CSV_COLUMNS)):
        return "batch.csv"
    if ":20:" in head and (":60F:" in head or ":60M:" in head or ":25:" in head):
        return "mt940"
    raise SourceFormatError(f"{path.name}: not camt.052/053/054, MT940 or a batch report (use --format)")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise SourceFormatError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def read_statements(path: Path, fmt: str) -> Iterator[Statement]:
    if fmt == "mt940":
        return mt940.iter_statements(path)
    return camt.iter_statements(path)


def read_batch_reports(path: Path, fmt: str, scales: Mapping[str, int]) -> list[BatchReport]:
    if fmt == "batch.json":
        return batchreport.parse_json(path.read_text(encoding="utf-8"), scales)
    with path.open(encoding="utf-8", newline="") as handle:
        return list(batchreport.iter_csv(handle, scales))


__all__ = [
    "FORMATS",
    "SourceFormatError",
    "check_format",
    "detect_format",
    "read_batch_reports",
    "read_statements",
]
