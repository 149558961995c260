"""risk owns the pure rules of stress testing and margin (numpy only, no I/O, no clock):

- :mod:`.scenario` — the stress scenario (TOML, validated), its seeded named random streams, and
  the compilation of its base-layer faults into a ``[chain.faults]`` table;
- :mod:`.margin` — a returns history, historical VaR over the finality window and a SPAN-like
  16-scenario grid;
- :mod:`.waterfall` — a default's loss waterfall (collateral → default fund → house → creditors),
  conservation checked;
- :mod:`.cover` — Cover-1 / Cover-2: the defaulters causing the largest stressed obligation and
  the shortfall against prefunded resources;
- :mod:`.liquidity` — intraday liquidity metrics from a time series (peak need, largest net
  debit, buffer breaches with their times).
- :mod:`.shrink` — shrinking a failing stress case (faults, their parameters, the seed) to a
  minimal one, and printing it as scenario TOML.

The node (``node/stress.py``) replays a day and feeds these rules; nothing here knows a store.
"""
