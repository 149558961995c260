"""sim owns the trading-day generator (reference data, a power-law day of trades and opening
collateral, reproducible from a seed) and, later, replay and failure injection."""

from clearlane.sim.generator import DayPaths, GeneratedDay, generate_day

__all__ = ["DayPaths", "GeneratedDay", "generate_day"]
