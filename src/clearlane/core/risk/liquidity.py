"""Intraday liquidity metrics from a time series of per-participant liquidity needs.

The need of participant ``p`` at sample ``t`` is its net debit not yet final, in USD cents: the
projected net debit of its open batches, plus its net debit in batches cleared but not final,
plus its gross L1 debits pending (what it must fund before its obligations are final). From it:

- ``peak_need``: the maximum need over the day, and the time of the first sample reaching it;
- ``largest_net_debit``: the largest single batch net debit the participant had to pay (the
  CLS-style largest pay-in; fed separately, per cleared batch);
- ``breaches``: maximal runs of samples where the need exceeds the buffer (collateral plus
  credit × buffer %), each with its start, end (the first sample back under, or the last sample)
  and peak excess — Mojaloop's net-debit-cap breaches with times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Breach:
    start_ms: int
    end_ms: int
    peak_excess: int  # cents


@dataclass(frozen=True, slots=True)
class LiquidityMetrics:
    peak_need: I64  # (participants,) cents
    peak_at_ms: I64  # (participants,) -1 when never in need
    breaches: list[list[Breach]]  # per participant


def metrics(times_ms: I64, need: I64, buffer: I64) -> LiquidityMetrics:
    """``times_ms`` (T,) non-decreasing, ``need`` (T, P) cents ≥ 0, ``buffer`` (T, P) or (P,)."""
    times_ms = np.asarray(times_ms, dtype=np.int64)
    need = np.asarray(need, dtype=np.int64).reshape(len(times_ms), -1)
    n_p = need.shape[1]
    buffer = np.broadcast_to(np.asarray(buffer, dtype=np.int64), need.shape)
    if len(times_ms) == 0:
        empty = np.zeros(n_p, dtype=np.int64)
        return LiquidityMetrics(empty, empty - 1, [[] for _ in range(n_p)])
    peak = need.max(axis=0)
    at = np.where(peak > 0, times_ms[np.argmax(need, axis=0)], -1)
    excess = need - buffer
    breaches: list[list[Breach]] = [[] for _ in range(n_p)]
    for p in np.flatnonzero((excess > 0).any(axis=0)).tolist():
        breaches[p] = _runs(times_ms, excess[:, p])
    return LiquidityMetrics(peak.astype(np.int64), at.astype(np.int64), breaches)


def _runs(times_ms: I64, excess: I64) -> list[Breach]:
    over = excess > 0
    edges = np.diff(np.concatenate([[0], over.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive
    out = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        end_ms = int(times_ms[e]) if e < len(times_ms) else int(times_ms[-1])
        out.append(Breach(int(times_ms[s]), end_ms, int(excess[s:e].max())))
    return out
