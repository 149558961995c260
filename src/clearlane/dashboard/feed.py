"""A simulated market streamed live into the engine at an accelerated clock (``clearlane demo``).

:class:`ObservedRunner` is the runner with observers: after every committed step it hands the
step's effects to each observer (the dashboard model). :class:`MarketFeed` is a background
thread that plays a generated trading day (:mod:`clearlane.sim.generator`) in engine time
``speed`` times faster than the wall clock: every tick it validates the trades executed since the
last tick at the edge (the same :class:`~clearlane.ingest.validate.TradeValidator` as files),
submits them as one log entry, and observes the simulated base layer up to the same instant, so
batches close, anchor and become final live. A small share of rows can be spoiled on purpose
(``bad_share``) so the reject path shows on the dashboard too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.engine.core import Effects, Engine
from clearlane.ingest.validate import TradeValidator
from clearlane.runner import Runner

Observer = Callable[[Effects, Engine], None]


class ObservedRunner(Runner):
    """A :class:`~clearlane.runner.Runner` that tells observers about every committed step."""

    observers: list[Observer]

    def submit(self, kind: str, payload: Any, at_ms: int, source_id: str | None = None) -> Effects | None:
        fx = super().submit(kind, payload, at_ms, source_id)
        if fx is not None:
            for observer in getattr(self, "observers", ()):
                observer(fx, self.engine)
        return fx


class MarketFeed:
    """Plays ``trades`` (the generator's input columns) into ``runner`` at ``speed``× real time."""

    def __init__(self, runner: Runner, trades: pa.Table, *, speed: float = 60.0, tick_s: float = 0.1,
                 start_ms: int | None = None, bad_share: float = 0.0, seed: int = 7,
                 on_rejects: Callable[[list[Any], list[tuple[str | None, str | None]], int], None] | None = None,
                 lock: Any = None, source: str = "demo") -> None:
        self.runner = runner
        self.trades = trades
        self.speed = float(speed)
        self.tick_s = float(tick_s)
        self.executed = trades.column("executed_at").to_numpy().astype(np.int64)
        self.start_ms = int(self.executed[0]) if start_ms is None and len(self.executed) else int(start_ms or 0)
        self.cursor = int(np.searchsorted(self.executed, self.start_ms, side="left"))
        self.validator = TradeValidator(runner.config)
        self.bad_share = bad_share
        self.rng = np.random.default_rng(seed)
        self.on_rejects = on_rejects
        self.lock = lock if lock is not None else threading.RLock()
        self.source = source
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.sim_now_ms = self.start_ms
        self.applied = 0
        self.error: BaseException | None = None
        self._t0 = 0.0

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        self._t0 = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="clearlane-market-feed", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)

    @property
    def done(self) -> bool:
        return self.cursor >= len(self.executed)

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        try:
            while not self.stop_event.is_set():
                began = time.monotonic()
                target = self.start_ms + int((began - self._t0) * self.speed * 1000)
                self.step(target)
                spent = time.monotonic() - began
                self.stop_event.wait(max(0.0, self.tick_s - spent))
        except BaseException as exc:  # surfaced by the caller (never silently lost)
            self.error = exc
            raise

    def step(self, to_ms: int) -> int:
        """Submit every trade executed up to ``to_ms`` and observe the chain up to it."""
        end = int(np.searchsorted(self.executed, to_ms, side="right"))
        with self.lock:
            engine = self.runner.engine
            if end > self.cursor:
                rows = self.trades.slice(self.cursor, end - self.cursor)
                index = f"{self.source}:{self.cursor}-{end}"
                self._submit_rows(rows, np.arange(self.cursor, end, dtype=np.int64) + 1, index)
                self.cursor = end
            at = max(to_ms, engine.now_ms, engine.chain_seen_ms)
            self.runner.advance_chain(at)
            self.sim_now_ms = at
        return end

    def _submit_rows(self, rows: pa.Table, row_numbers: Any, source_id: str) -> None:
        if self.bad_share > 0 and rows.num_rows:
            rows = self._spoil(rows)
        columns = {name: rows.column(name) for name in rows.column_names}
        valid, rejects = self.validator.validate(columns, row_numbers)
        if rejects and self.on_rejects is not None:
            who = self._who(rows, rejects, row_numbers)
            self.on_rejects(rejects, who, self.runner.engine.now_ms)
        if valid.num_rows:
            at_ms = int(valid.column("received_at_ms")[0].as_py())
            self.runner.submit("trades", valid, max(at_ms, self.runner.engine.now_ms), source_id)
            self.applied += valid.num_rows

    def _spoil(self, rows: pa.Table) -> pa.Table:
        """Give a few rows one more decimal than the asset allows (an edge reject)."""
        n = rows.num_rows
        bad = self.rng.random(n) < self.bad_share
        if not bad.any():
            return rows
        qty = rows.column("quantity").combine_chunks().cast(pa.string())
        spoiled = pc.if_else(pa.array(bad), pc.binary_join_element_wise(qty, pa.scalar("000000001"), ""), qty)
        index = rows.column_names.index("quantity")
        return rows.set_column(index, "quantity", spoiled)

    @staticmethod
    def _who(rows: pa.Table, rejects: list[Any], row_numbers: Any) -> list[tuple[str | None, str | None]]:
        first = int(row_numbers[0]) if len(row_numbers) else 0
        buyers = rows.column("buyer")
        sellers = rows.column("seller")
        out: list[tuple[str | None, str | None]] = []
        for r in rejects:
            i = (r.row or first) - first
            if 0 <= i < rows.num_rows:
                out.append((buyers[i].as_py(), sellers[i].as_py()))
            else:
                out.append((None, None))
        return out


class RuntimeFeed:
    """Plays ``trades`` into a running service :class:`~clearlane.service.runtime.Runtime` as
    a venue would: every tick, the trades executed up to the runtime's (accelerated) clock are
    submitted in one request-sized submission and the feed waits for the receipt (the step is
    committed by then). Spoiled rows (``bad_share``) go one by one so that only they are refused;
    their rejects are reported to ``on_rejects``."""

    def __init__(self, runtime: Any, trades: pa.Table, *, tick_s: float = 0.1, bad_share: float = 0.0, seed: int = 7,
                 on_rejects: Callable[[list[Any], list[tuple[str | None, str | None]], int], None] | None = None,
                 max_rows: int = 50_000) -> None:
        self.runtime = runtime
        self.trades = trades
        self.tick_s = tick_s
        self.executed = trades.column("executed_at").to_numpy().astype(np.int64)
        self.cursor = int(np.searchsorted(self.executed, runtime.clock.now_ms(), side="left"))
        self.bad_share = bad_share
        self.rng = np.random.default_rng(seed)
        self.on_rejects = on_rejects
        self.max_rows = max_rows
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.applied = 0
        self.refused = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="clearlane-market-feed", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self.stop_event.is_set():
                began = time.monotonic()
                self.step(self.runtime.clock.now_ms())
                self.stop_event.wait(max(0.0, self.tick_s - (time.monotonic() - began)))
        except BaseException as exc:  # surfaced by the caller (never silently lost)
            self.error = exc
            raise

    def step(self, to_ms: int) -> None:
        from clearlane.model.codes import Reject, RejectCode
        from clearlane.service.runtime import SubmissionRefused

        end = min(int(np.searchsorted(self.executed, to_ms, side="right")), self.cursor + self.max_rows)
        if end <= self.cursor:
            return
        rows = self.trades.slice(self.cursor, end - self.cursor).to_pylist()
        self.cursor = end
        bad = self.rng.random(len(rows)) < self.bad_share if self.bad_share > 0 else np.zeros(len(rows), dtype=np.bool_)
        good = [r for r, b in zip(rows, bad.tolist(), strict=True) if not b]
        if good:
            receipts = self.runtime.submit_trades(good).result(timeout=60)
            self.applied += len(receipts)
        for row, spoil in zip(rows, bad.tolist(), strict=True):
            if not spoil:
                continue
            row = {**row, "quantity": str(row["quantity"]) + "000000001"}
            try:
                self.runtime.submit_trades([row], single=True).result(timeout=60)
            except SubmissionRefused as refused:
                self.refused += 1
                if self.on_rejects is not None:
                    rejects = [Reject(RejectCode(e.code), e.field, e.reason, None, e.id or row["trade_id"]) for e in refused.errors]
                    self.on_rejects(rejects, [(row["buyer"], row["seller"])] * len(rejects), to_ms)
