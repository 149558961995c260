"""clearlane: a Layer-2 clearing and settlement engine.

Trades and payments come in at the edge (``ingest``), are written to an append-only input
log (``store``), and are applied by a deterministic core (``engine``) that routes each trade
to a settlement lane, checks liquidity, collects L2 obligations into micro-batches, nets them
multilaterally, commits each batch with an RFC 9162 Merkle root (``audit``), posts the
double-entry ledger (``ledger``) and anchors batches on a base layer (``chain``).
See docs/ARCHITECTURE.md for the path of a trade.
"""

__version__ = "0.1.0"
