"""The activity projection: trades by lane and state, rejects by code, duplicates, latency
histograms per lane and hop, the two timelines (a fine one for the last two hours, a coarse
one for the day and more) with their latency, volume, batch, trade and queue figures, and the
recent alerts."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.model.codes import RejectCode
from clearlane.node.projections.common import (
    BATCH_STATE_NAMES,
    F64,
    HOPS,
    I64,
    NBINS,
    STATE_KEYS,
    Bucket,
    H,
    Layout,
    Mask,
    S,
    Timeline,
    hist,
)

ALERTS_KEPT = 200


class Activity:
    """See the module docstring."""

    def __init__(self, layout: Layout, bucket_ms: int, retention_buckets: int) -> None:
        self.layout = layout
        k = layout.n_pools
        self.counts = np.zeros((k + 1, len(STATE_KEYS)), dtype=np.int64)
        self.rejected_total = 0
        self.rejects_by_code: dict[str, int] = {}
        self.duplicates = 0
        self.latency = np.zeros((k + 1, len(HOPS), NBINS), dtype=np.int64)
        self.timelines = [
            Timeline(bucket_ms, max(1, 7_200_000 // bucket_ms), k),
            Timeline(max(bucket_ms, 60_000), retention_buckets, k),
        ]
        self.alerts: list[dict[str, Any]] = []
        self.alerts_by_kind: dict[str, int] = {}  # engine alerts by kind (clearlane_alerts_total)

    def records(
        self, table: pa.Table, pool: I64, live: Mask, l2: Mask, rejected: Mask, client: Mask | None = None
    ) -> None:
        """A chunk's trades by lane and state, its rejects by code, the timeline's trade counts
        (of ``client`` rows only when given: canaries are not client volume)."""
        l1_key = self.layout.l1
        l1 = live & (pool < 0)
        np.add.at(self.counts[:, S["received"]], np.where(l2, pool, l1_key)[live], 1)
        np.add.at(self.counts[:, S["batched"]], pool[l2], 1)
        self.counts[l1_key, S["submitted"]] += int(l1.sum())
        n_rej = int(rejected.sum())
        if n_rej:
            self.rejected_total += n_rej
            codes = table.column("reject_code").to_numpy()[rejected]
            for code, count in zip(*np.unique(codes, return_counts=True), strict=True):
                slug = RejectCode(int(code)).slug
                self.rejects_by_code[slug] = self.rejects_by_code.get(slug, 0) + int(count)
        counted = live if client is None else live & client
        per_lane = np.bincount(np.where(l2, pool, l1_key)[counted], minlength=self.layout.n_pools + 1)
        for bucket in self.buckets(int(table.column("received_ms").to_numpy()[-1])):
            bucket.trades += per_lane

    def move(self, lane: int, src: str, dst: str, n: int) -> None:
        """``n`` trades of a lane go from state ``src`` to ``dst``."""
        self.counts[lane, S[src]] -= n
        self.counts[lane, S[dst]] += n

    def batch_moved(self, k: int, n: int, src: int, dst: int, trades_from: str | None = None) -> None:
        """A batch of ``n`` trades went from batch state ``src`` to ``dst``: its trades follow
        (by default from the trade state named like ``src``)."""
        self.move(k, trades_from or BATCH_STATE_NAMES[src], BATCH_STATE_NAMES[dst], n)

    def batch_volume(self, k: int, gross_usd: float, net_usd: float, at_ms: int) -> None:
        for bucket in self.buckets(at_ms):
            bucket.gross_usd[k] += gross_usd
            bucket.net_usd[k] += net_usd
            bucket.batches[k] += 1

    def buckets(self, at_ms: int) -> list[Bucket]:
        return [t.bucket(at_ms) for t in self.timelines]

    def add_latency(self, lane: int, hop: str, h: I64, at_ms: int) -> None:
        """A histogram of one hop into the lane's totals and into every timeline's bucket."""
        self.latency[lane, H[hop]] += h
        for bucket in self.buckets(at_ms):
            bucket.latency[lane, H[hop]] += h

    def observe_api(self, lane_keys: npt.NDArray[np.int64], latency_ms: F64, at_ms: int) -> None:
        """The service hop: HTTP receipt -> durably committed (wall clock), per lane key."""
        for lk in np.unique(lane_keys).tolist():
            self.add_latency(lk, "received_routed", hist(latency_ms[lane_keys == lk]), at_ms)

    def sample_queues(self, at_ms: int, queues: dict[str, int]) -> None:
        for bucket in self.buckets(at_ms):
            for name, value in queues.items():
                if value > bucket.queues.get(name, -1):
                    bucket.queues[name] = value

    def alert(self, severity: str, message: str, at_ms: int) -> None:
        self.alerts.append(
            {"id": f"alert-{len(self.alerts) + 1}", "severity": severity, "message": message, "at_ms": at_ms}
        )
        if len(self.alerts) > ALERTS_KEPT:
            del self.alerts[:-ALERTS_KEPT]
