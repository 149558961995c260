"""Exact integer aggregation over int64 balance arrays.

Summing many int64 balances can exceed int64 even when every balance is in range, and numpy
wraps silently. Splitting each value into a signed high half and an unsigned low 32-bit half
keeps each partial sum far from overflow (up to 2**31 values), and the halves are recombined as
Python ints, so report totals are exact without a per-account Python loop.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_LOW_MASK = np.int64(0xFFFF_FFFF)
_MAX_VALUES_PER_SUM = 2**31


def exact_group_sums(
    values: npt.NDArray[np.int64], groups: npt.NDArray[np.int64], n_groups: int
) -> list[int]:
    """Sum ``values`` per group id in ``[0, n_groups)`` exactly, returning Python ints."""
    if values.shape != groups.shape:
        raise ValueError(f"values shape {values.shape} != groups shape {groups.shape}")
    if values.shape[0] >= _MAX_VALUES_PER_SUM:
        raise ValueError("too many values for an exact split sum")
    low = values & _LOW_MASK
    high = values >> 32
    low_sums = np.zeros(n_groups, dtype=np.int64)
    high_sums = np.zeros(n_groups, dtype=np.int64)
    np.add.at(low_sums, groups, low)
    np.add.at(high_sums, groups, high)
    return [(int(h) << 32) + int(lo) for h, lo in zip(high_sums.tolist(), low_sums.tolist(), strict=True)]


def exact_sum(values: npt.NDArray[np.int64]) -> int:
    """Exact sum of an int64 array as a Python int."""
    if values.shape[0] >= _MAX_VALUES_PER_SUM:
        raise ValueError("too many values for an exact split sum")
    low = int((values & _LOW_MASK).sum(dtype=np.int64))
    high = int((values >> 32).sum(dtype=np.int64))
    return (high << 32) + low
