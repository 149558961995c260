"""projections owns the read models built from committed engine steps (live and on replay, so they
are identical after a restart): trades, batches, positions, liquidity, latency, rejects."""
