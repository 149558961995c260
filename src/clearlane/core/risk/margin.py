"""The margin model: exposure held from cleared to final, margined over that window.

**Returns history.** :func:`returns_history` draws ``days`` daily log returns per asset from the
scenario's seed: a common market factor (weight 0.5) plus an idiosyncratic part, Student-t with
4 degrees of freedom (fat tails) scaled to each asset's daily volatility. A recorded history of
marks can be used instead (:func:`returns_from_marks`).

**The horizon rule.** Exposure in pool ``k`` is at risk for the pool's finality window ``w_k``
(cleared → final: anchor inclusion, confirmations, challenge window; under stress the *observed*
window) plus ``liquidation_days``: ``h_k = w_k / 1 day + liquidation_days``. Two ways to turn
daily returns into ``h``-day returns, selected by ``horizon``:

- ``sqrt_time`` (default): a portfolio's ``h``-day P&L in scenario ``t`` is
  ``Σ_k sqrt(h_k) · (x_k · r_t)`` — square-root-of-time scaling of each daily scenario, so the
  model is exact for i.i.d. returns and works for sub-day windows (minutes of finality);
- ``overlapping``: ``H = max(1, ceil(h))``-day overlapping sums of the daily returns (the FICC
  style for multi-day horizons); sub-day windows round up to one day, which is conservative.

**VaR.** Losses are ``-P&L``; the margin is the ``confidence`` empirical quantile of the losses
(``method="higher"``: never interpolated below an observed loss), floored at zero. It is
monotone in confidence and, for ``sqrt_time``, in horizon (tests hold both).

**SPAN-like grid.** :func:`span_grid` evaluates the same exposure on 16 scenarios per asset:
price moves of 0, ±1/3, ±2/3, ±1 scan range with volatility up and down (14) and two extreme
moves of ±2 scan ranges counted at 35 %. The scan range is ``z_c · σ_a · sqrt(h)``. Exposures
are linear, so volatility up/down give the same loss (kept for the familiar shape). Scanning
risk is the worst loss per asset, summed over assets (no inter-commodity credit: conservative).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

# Two-sided standard normal quantiles, enough for the confidence levels configs use.
_T_DOF = 4.0
_SPAN_MOVES = np.array(
    [0, 0, 1 / 3, 1 / 3, -1 / 3, -1 / 3, 2 / 3, 2 / 3, -2 / 3, -2 / 3, 1, 1, -1, -1, 2, -2]
)
_SPAN_WEIGHTS = np.array([1.0] * 14 + [0.35, 0.35])
SPAN_SCENARIOS = len(_SPAN_MOVES)


def returns_history(vols: F64, days: int, rng: np.random.Generator, *, factor: float = 0.5) -> F64:
    """Daily log returns, shape (days, assets): a common factor plus idiosyncratic Student-t
    noise, each scaled to unit variance, then to each asset's daily volatility ``vols``."""
    scale = math.sqrt(_T_DOF / (_T_DOF - 2.0))
    common = rng.standard_t(_T_DOF, size=(days, 1)) / scale
    own = rng.standard_t(_T_DOF, size=(days, len(vols))) / scale
    mixed = math.sqrt(factor) * common + math.sqrt(1.0 - factor) * own
    out: F64 = mixed * np.asarray(vols, dtype=np.float64)[None, :]
    return out


def returns_from_marks(marks: F64) -> F64:
    """Daily log returns from a (days+1, assets) history of positive marks."""
    marks = np.asarray(marks, dtype=np.float64)
    if marks.ndim != 2 or marks.shape[0] < 2 or (marks <= 0).any():
        raise ValueError("marks must be a (days+1, assets) array of positive numbers")
    out: F64 = np.diff(np.log(marks), axis=0)
    return out


def horizon_days(window_ms: F64 | float, liquidation_days: float) -> F64:
    """``h = window / 1 day + liquidation_days`` (module docstring)."""
    out: F64 = np.asarray(window_ms, dtype=np.float64) / 86_400_000.0 + liquidation_days
    return out


def overlapping(returns: F64, days: int) -> F64:
    """Overlapping ``days``-day sums of daily returns, shape (len - days + 1, assets)."""
    if days <= 1:
        return returns
    sums = np.cumsum(np.vstack([np.zeros((1, returns.shape[1])), returns]), axis=0)
    out: F64 = sums[days:] - sums[:-days]
    return out


def var_margin(
    exposure: F64,
    horizons: F64,
    returns: F64,
    *,
    confidence: float = 0.99,
    method: str = "sqrt_time",
) -> F64:
    """Historical VaR per participant.

    ``exposure``: USD exposure, shape (pools, participants, assets) — the value of what is
    held per pool (positive long); ``horizons``: h per pool, in days; ``returns``: daily log
    returns (days, assets). Returns the margin per participant (USD, ≥ 0).
    """
    exposure = np.asarray(exposure, dtype=np.float64)
    horizons = np.asarray(horizons, dtype=np.float64)
    if exposure.ndim != 3 or horizons.shape != (exposure.shape[0],):
        raise ValueError("exposure must be (pools, participants, assets) and horizons (pools,)")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    if method == "sqrt_time":
        weighted = np.tensordot(np.sqrt(np.maximum(horizons, 0.0)), exposure, axes=(0, 0))
        pnl = weighted @ returns.T  # (participants, days)
    elif method == "overlapping":
        parts = [
            exposure[k] @ overlapping(returns, max(1, math.ceil(float(horizons[k]) - 1e-12))).T
            for k in range(exposure.shape[0])
        ]
        # Align the pools' windows on their last day (each sum ends on the same day).
        length = min((p.shape[1] for p in parts), default=0)
        pnl = np.zeros((exposure.shape[1], length))
        for part in parts:
            pnl += part[:, part.shape[1] - length :]
    else:
        raise ValueError(f"unknown horizon method {method!r}")
    if pnl.shape[1] == 0:
        return np.zeros(exposure.shape[1])
    losses = -pnl
    out: F64 = np.maximum(np.quantile(losses, confidence, axis=1, method="higher"), 0.0)
    return out


def normal_quantile(p: float) -> float:
    """Φ⁻¹(p) by bisection on erf (stdlib only; monotone, 1e-12 accurate)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def span_grid(exposure: F64, horizons: F64, vols: F64, *, confidence: float = 0.99) -> tuple[F64, F64]:
    """SPAN-like scanning risk per participant and the 16-scenario risk array.

    Returns ``(scanning_risk (participants,), losses (participants, assets, 16))``.
    """
    exposure = np.asarray(exposure, dtype=np.float64)
    z = normal_quantile(confidence)
    # scan range per pool and asset, in return terms
    scan = z * np.sqrt(np.maximum(horizons, 0.0))[:, None] * np.asarray(vols, dtype=np.float64)[None, :]
    moves = scan[:, None, :, None] * _SPAN_MOVES[None, None, None, :]  # (k, 1, a, 16)
    losses = -(exposure[:, :, :, None] * moves).sum(axis=0) * _SPAN_WEIGHTS  # (p, a, 16)
    scanning: F64 = np.maximum(losses.max(axis=2), 0.0).sum(axis=1)
    return scanning, losses
