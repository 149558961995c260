"""audit owns the hash chain, RFC 9162 Merkle trees, inclusion/consistency proofs and (later) signed
checkpoints; `clearlane.audit.verify` is importable on its own.

The package init stays free of imports on purpose: ``verify`` must be usable (and copyable) without
numpy, numba or pyarrow, and ``merkle`` pulls those in only when it is imported itself.
"""
