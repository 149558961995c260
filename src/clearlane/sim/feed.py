"""A simulated market streamed live into the clearing service (``clearlane demo``).

:class:`RuntimeFeed` is a background thread that plays a generated trading day
(:mod:`clearlane.sim.generator`) into a running service :class:`~clearlane.node.runtime.Runtime`
the way a venue would: every tick, the trades executed up to the runtime's (accelerated) clock
are submitted and acknowledged; the runtime validates them at the edge, logs, applies and
publishes them, and moves the simulated base layer on, so batches close, anchor and become final
live. A small share of rows can be spoiled on purpose (``bad_share``) so the reject path shows:
the quantity gets ``000000001`` appended. The edge refuses it when it then has too many
decimals (``precision_exceeded``) or no longer fits the ledger's per-flow limit
(``amount_overflow``, docs/LIMITS.md); otherwise it is an absurd but valid trade, routed gross to
L1 by the liquidity check, whose settlement the engine splits or fails as data — such rows once
stopped the runtime minutes later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa


class RuntimeFeed:
    """Plays ``trades`` into a running service :class:`~clearlane.node.runtime.Runtime` as
    a venue would: every tick, the trades executed up to the runtime's (accelerated) clock are
    submitted in one request-sized submission and the feed waits for the receipt (the step is
    committed by then). Spoiled rows (``bad_share``) go one by one so that only they are refused;
    their rejects are reported to ``on_rejects``."""

    def __init__(
        self,
        runtime: Any,
        trades: pa.Table,
        *,
        tick_s: float = 0.1,
        bad_share: float = 0.0,
        seed: int = 7,
        on_rejects: Callable[[list[Any], list[tuple[str | None, str | None]], int], None] | None = None,
        max_rows: int = 50_000,
    ) -> None:
        self.runtime = runtime
        self.trades = trades
        self.tick_s = tick_s
        self.executed = trades.column("executed_at").to_numpy().astype(np.int64)
        self.cursor = int(np.searchsorted(self.executed, runtime.clock.now_ms(), side="left"))
        self.first = self.cursor  # the first row fed (the demo's start time of day)
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
        from clearlane.core.model.codes import Reject, RejectCode
        from clearlane.node.runtime import SubmissionRefused

        end = min(int(np.searchsorted(self.executed, to_ms, side="right")), self.cursor + self.max_rows)
        if end <= self.cursor:
            return
        rows = self.trades.slice(self.cursor, end - self.cursor).to_pylist()
        self.cursor = end
        bad = (
            self.rng.random(len(rows)) < self.bad_share
            if self.bad_share > 0
            else np.zeros(len(rows), dtype=np.bool_)
        )
        good = [r for r, b in zip(rows, bad.tolist(), strict=True) if not b]
        if good:
            receipts = self.runtime.submit_trades(good).result(timeout=60)
            self.applied += len(receipts)
        for row, spoil in zip(rows, bad.tolist(), strict=True):
            if not spoil:
                continue
            row = {**row, "quantity": str(row["quantity"]) + "000000001"}
            try:
                # Absurd but valid (the edge accepts it): it counts as applied.
                self.applied += len(self.runtime.submit_trades([row], single=True).result(timeout=60))
            except SubmissionRefused as refused:
                self.refused += 1
                if self.on_rejects is not None:
                    rejects = [
                        Reject(RejectCode(e.code), e.field, e.reason, None, e.id or row["trade_id"])
                        for e in refused.errors
                    ]
                    self.on_rejects(rejects, [(row["buyer"], row["seller"])] * len(rejects), to_ms)
