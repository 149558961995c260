"""core owns the pure, deterministic clearing core: money, the typed input and event records, reference
data (config), the engine (routing, liquidity, batching, netting, commitment, lifecycle, finality,
unwind), the double-entry ledger and the proofs (RFC 9162 Merkle trees, the audit hash chain, the
standalone verifier). It imports only the standard library, numpy, pyarrow, numba and pydantic:
no I/O, no clock, no randomness that is not an input. Nothing here imports ``node`` or ``adapters``.

The package init stays free of imports on purpose: ``core.proofs.verify`` must be usable (and
copyable) without numpy, numba or pyarrow."""
