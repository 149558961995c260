"""sql owns durable state and is the only package that speaks SQL: the append-only, hash-chained
input log and the committed output of each engine step (trade records, batches, L1 groups,
ledger, rejects, the chain outbox) in one database transaction per step (``store``), one set of
SQLAlchemy Core tables (``schema``), API keys (``keys``), webhook tables (``webhooks``), the
worker's partition lock (``locks``), the flow-id archive (``flowids``), the audit tables, the
pipelined writer and SQLite's multi-row bulk insert (``multirow``). SQLite (WAL) is the embedded
default, PostgreSQL by URL; the schema is managed by Alembic migrations shipped in
``migrations``."""

from clearlane.adapters.sql.store import Store, StoreError

__all__ = ["Store", "StoreError"]
