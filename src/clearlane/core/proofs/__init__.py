"""proofs owns what makes clearing provable: RFC 9162 Merkle trees and inclusion/consistency proofs
(``merkle``), the audit hash chain of input and transition entries (``hashchain``) and the
standalone verifier (``verify``: stdlib plus ``cryptography``; shipped verbatim in proof bundles).

The package init stays free of imports on purpose: ``verify`` must be usable (and copyable) without
numpy, numba or pyarrow, and ``merkle`` pulls those in only when it is imported itself.
"""
