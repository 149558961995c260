"""The sources the monitor compares, and what each last said.

* **Marks** (price per whole unit, per asset): the engine's own marks (source ``clearlane``,
  what risk is valued at) and any number of external feeds pushed through
  :meth:`Sources.mark` (``POST /v1/monitoring/marks``), each with its heartbeat.
* **Flow counts per exchange batch**: the venue's feed (what it says it sent,
  :meth:`Sources.count`), the exchange's batch report (``clearlane.exchange-batch-report/1``,
  core/recon/batchreport.py, :meth:`Sources.batch_reports`) and clearlane's records (counted
  from every committed step by exchange batch id, bounded to the most recent ids).
* **The base layer**: its tip height as clearlane last observed it; a tip that does not move
  for its heartbeat is stale (a stale feed emits nothing, so only polling catches it).

Everything is keyed by engine time. Values are integers (marks in 10^-10 USD)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow.compute as pc

from clearlane.core.engine.core import LogEntry
from clearlane.core.errors import InputError
from clearlane.core.model.events import Step
from clearlane.core.money import DecimalError, parse_decimal
from clearlane.core.monitor.divergence import MARK_SCALE, Reading
from clearlane.core.recon.records import BatchReport

CLEARLANE = "clearlane"
BASE_LAYER = "base_layer"
VENUE = "venue"
BATCH_REPORT = "batch_report"
EXCH_BATCHES_KEPT = 10_000


class MonitorInputError(InputError, code="MONITOR_INPUT_INVALID"):
    """A reading pushed to the monitor that is not well formed (field and reason named)."""


@dataclass
class Sources:
    assets: list[str]
    marks: dict[tuple[str, str], Reading] = field(default_factory=dict)
    heartbeat_ms: dict[str, int] = field(default_factory=dict)
    counts: dict[str, OrderedDict[str, int]] = field(default_factory=dict)  # source → exch batch → n
    count_at_ms: dict[str, int] = field(default_factory=dict)
    tip: tuple[int, int] = (-1, 0)  # (height, engine ms it was first seen at)

    # ------------------------------------------------------------------ marks
    def mark(self, source: str, asset: str, mark_usd: str, at_ms: int) -> Reading:
        """An external feed's mark (decimal text, strictly parsed)."""
        if not source or source in (CLEARLANE, BASE_LAYER):
            raise MonitorInputError(f"source: {source!r} is reserved or empty")
        if asset not in self.assets:
            raise MonitorInputError(f"asset: {asset!r} is not a configured asset")
        try:
            value = parse_decimal(mark_usd, MARK_SCALE, allow_zero=False)
        except DecimalError as exc:
            raise MonitorInputError(f"mark_usd: {exc}") from None
        reading = Reading(source, asset, value, at_ms)
        self.marks[(source, asset)] = reading
        return reading

    def engine_marks(self, marks_usd: dict[str, float], at_ms: int) -> None:
        for asset, usd in marks_usd.items():
            value = round(usd * 10**MARK_SCALE)
            # The engine's mark is always current (it is what risk uses now): fresh at every look.
            self.marks[(CLEARLANE, asset)] = Reading(CLEARLANE, asset, value, at_ms)

    @property
    def mark_sources(self) -> list[str]:
        return sorted({s for s, _ in self.marks})

    # ------------------------------------------------------------------ flow counts
    def count(self, source: str, exch_batch_id: str, trades: int, at_ms: int) -> None:
        if source in (CLEARLANE, BASE_LAYER) or not source:
            raise MonitorInputError(f"source: {source!r} is reserved or empty")
        if trades < 0:
            raise MonitorInputError("trades: must be >= 0")
        self._put(source, exch_batch_id, trades, at_ms, add=False)

    def batch_reports(self, reports: Iterable[BatchReport], at_ms: int) -> int:
        n = 0
        for r in reports:
            self._put(BATCH_REPORT, r.exchange_batch_id, r.trade_count, at_ms, add=False)
            n += 1
        return n

    def on_step(self, entry: LogEntry, fx: Step) -> None:
        """Runtime step listener: clearlane's records per exchange batch id (a step's counts
        added together, then the book trimmed to its most recent ids)."""
        for table in fx.tables():
            if table.num_rows == 0 or "exch_batch_id" not in table.column_names:
                continue
            column = table.column("exch_batch_id")
            if column.null_count == len(column):
                continue
            counts = pc.value_counts(pc.drop_null(column))
            self._add_many(
                CLEARLANE, counts.field("values").to_pylist(), counts.field("counts").to_pylist(), entry.at_ms
            )

    def _put(self, source: str, key: str, n: int, at_ms: int, *, add: bool) -> None:
        book = self.counts.setdefault(source, OrderedDict())
        book[key] = book.get(key, 0) + n if add else n
        book.move_to_end(key)
        while len(book) > EXCH_BATCHES_KEPT:
            book.popitem(last=False)
        self.count_at_ms[source] = at_ms

    def _add_many(self, source: str, keys: list[str], ns: list[int], at_ms: int) -> None:
        """:meth:`_put` with ``add`` for many ids at once (a step's distinct exchange batches:
        thousands at 50,000 trades/s), trimming once after all of them."""
        book = self.counts.setdefault(source, OrderedDict())
        get, to_end = book.get, book.move_to_end
        for key, n in zip(keys, ns, strict=True):
            book[key] = get(key, 0) + n
            to_end(key)
        for _ in range(len(book) - EXCH_BATCHES_KEPT):
            book.popitem(last=False)
        self.count_at_ms[source] = at_ms

    def compared_batches(self) -> list[str]:
        """Exchange batches some outside source (venue or batch report) reported."""
        keys: set[str] = set()
        for source, book in self.counts.items():
            if source != CLEARLANE:
                keys.update(book)
        return sorted(keys)

    # ------------------------------------------------------------------ base layer
    def tip_seen(self, height: int, at_ms: int) -> None:
        if height != self.tip[0]:
            self.tip = (height, at_ms)
