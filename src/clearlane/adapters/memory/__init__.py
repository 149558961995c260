"""memory owns the in-memory store: the node's ``Store`` port held in Python objects, for
tests, the demo and benchmarks. It keeps what the SQL store keeps (the hash-chained log, each
step's committed output, the audit trail, meta) and answers the same reads, but nothing
survives the process. It runs the same contract suite as SQLite and PostgreSQL
(:mod:`clearlane.testing.store_contract`)."""

from clearlane.adapters.memory.store import MemoryStore, MemoryStoreError

__all__ = ["MemoryStore", "MemoryStoreError"]
