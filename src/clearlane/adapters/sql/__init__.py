"""store owns durable state: the append-only, hash-chained input log and the committed effects
of each engine step (trade records, batches, L1 groups, ledger, rejects, the chain outbox), in
one database transaction per step. SQLite (WAL) is the embedded default; the schema is managed by
Alembic migrations shipped in ``store/migrations``."""

from clearlane.adapters.sql.codec import decode_payload, encode_payload, read_table, write_table
from clearlane.adapters.sql.store import Store, StoreError

__all__ = ["Store", "StoreError", "decode_payload", "encode_payload", "read_table", "write_table"]
