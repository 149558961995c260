"""Trust score per source: availability × freshness × agreement × completeness, each the share
of good observations over a window (1 h and 24 h).

A monitor samples each source once per evaluation: did it have data (availability), was it
within its heartbeat (freshness), did it agree with the other sources within band (agreement,
counted only when there was something to compare), and how many of the items it should have
reported did it report (completeness). Samples are kept as counters per minute in a ring of
1,440 minutes, so memory is fixed and a score is a sum over at most 1,440 buckets.
A source never sampled scores 0 (no data is not trust); a component with nothing to judge is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MINUTE_MS = 60_000
RING = 1_440  # minutes in 24 h
WINDOWS_MS = {"1h": 3_600_000, "24h": 86_400_000}

# Counter columns per minute.
SAMPLES, AVAILABLE, FRESH, COMPARED, AGREED, EXPECTED, GOT = range(7)


@dataclass(frozen=True)
class Score:
    availability: float
    freshness: float
    agreement: float
    completeness: float

    @property
    def value(self) -> float:
        return self.availability * self.freshness * self.agreement * self.completeness

    def as_dict(self) -> dict[str, float]:
        return {
            "score": round(self.value, 6),
            "availability": round(self.availability, 6),
            "freshness": round(self.freshness, 6),
            "agreement": round(self.agreement, 6),
            "completeness": round(self.completeness, 6),
        }


class TrustRing:
    """One source's counters per minute over the last 24 h."""

    def __init__(self) -> None:
        self.counts: npt.NDArray[np.int64] = np.zeros((RING, 7), dtype=np.int64)
        self.minute: npt.NDArray[np.int64] = np.full(RING, -1, dtype=np.int64)

    def record(
        self,
        at_ms: int,
        *,
        available: bool,
        fresh: bool,
        agreed: bool | None = None,
        got: int = 0,
        expected: int = 0,
    ) -> None:
        if got < 0 or expected < 0:
            raise ValueError("counts of items cannot be negative")
        m = at_ms // MINUTE_MS
        slot = m % RING
        if self.minute[slot] != m:
            self.minute[slot] = m
            self.counts[slot] = 0
        row = self.counts[slot]
        row[SAMPLES] += 1
        row[AVAILABLE] += int(available)
        row[FRESH] += int(available and fresh)
        if agreed is not None:
            row[COMPARED] += 1
            row[AGREED] += int(agreed)
        row[EXPECTED] += expected
        row[GOT] += min(got, expected)

    def score(self, now_ms: int, window_ms: int) -> Score:
        now_m = now_ms // MINUTE_MS
        first = now_m - window_ms // MINUTE_MS + 1
        live = (self.minute >= first) & (self.minute <= now_m)
        c = self.counts[live].sum(axis=0)
        if c[SAMPLES] == 0:
            return Score(0.0, 0.0, 0.0, 0.0)
        availability = c[AVAILABLE] / c[SAMPLES]
        freshness = c[FRESH] / c[AVAILABLE] if c[AVAILABLE] else 0.0
        agreement = c[AGREED] / c[COMPARED] if c[COMPARED] else 1.0
        completeness = c[GOT] / c[EXPECTED] if c[EXPECTED] else 1.0
        return Score(float(availability), float(freshness), float(agreement), float(completeness))

    def scores(self, now_ms: int) -> dict[str, Score]:
        return {name: self.score(now_ms, ms) for name, ms in WINDOWS_MS.items()}
