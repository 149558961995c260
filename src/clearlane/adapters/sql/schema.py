"""The store's tables as SQLAlchemy Core ``Table`` objects: the ONE description queries use.

The Alembic migrations (``migrations/versions``) create and evolve these tables; this module
mirrors their final shape (columns and types, not indexes or server defaults) so that reads
and writes outside the hot commit path are built with ``select()`` / ``insert()`` instead of
SQL strings, including the audit trail's (read and written by ``audit_tables.py``).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
_BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite autoincrements INTEGER only

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
input_log = sa.Table(
    "input_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("source_id", sa.Text, unique=True),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("prev_hash", sa.LargeBinary, nullable=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
)
engine_state = sa.Table(
    "engine_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("applied_seq", sa.BigInteger, nullable=False),
    sa.Column("state_root", sa.Text, nullable=False),
    sa.Column("log_head", sa.LargeBinary, nullable=False),
    sa.Column("now_ms", sa.BigInteger, nullable=False),
)
trade_chunks = sa.Table(
    "trade_chunks",
    metadata,
    sa.Column("log_seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("part", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("blob", sa.LargeBinary, nullable=False),
)
batches = sa.Table(
    "batches",
    metadata,
    sa.Column("batch_id", sa.Text, primary_key=True),
    sa.Column("pool", sa.Text, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("opened_at_ms", sa.BigInteger, nullable=False),
    sa.Column("cleared_at_ms", sa.BigInteger, nullable=False),
    sa.Column("flows", sa.Integer, nullable=False),
    sa.Column("obligations", sa.Integer, nullable=False),
    sa.Column("gross_usd", sa.Float, nullable=False),
    sa.Column("net_usd", sa.Float, nullable=False),
    sa.Column("root", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("anchor_tx", sa.Text),
    sa.Column("anchor_height", sa.BigInteger),
    sa.Column("anchored_at_ms", sa.BigInteger),
    sa.Column("anchor_block", sa.Text),
    sa.Column("final_at_ms", sa.BigInteger),
    sa.Column("unwound_at_ms", sa.BigInteger),
    sa.Column("log_seq", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.LargeBinary, nullable=False),
    sa.Column("net", sa.LargeBinary, nullable=False),
)
batch_events = sa.Table(
    "batch_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.Text, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("log_seq", sa.BigInteger, nullable=False),
)
l1_groups = sa.Table(
    "l1_groups",
    metadata,
    sa.Column("group_id", sa.Text, primary_key=True),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("flows", sa.Integer, nullable=False),
    sa.Column("open_flows", sa.Integer, nullable=False),
    sa.Column("log_seq", sa.BigInteger, nullable=False),
    sa.Column("blob", sa.LargeBinary, nullable=False),
)
ledger_accounts = sa.Table(
    "ledger_accounts",
    metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("lane", sa.Text, nullable=False),
    sa.Column("floor_minor", sa.BigInteger),
    sa.Column("posted_minor", sa.BigInteger, nullable=False),
    sa.Column("pending_debits_minor", sa.BigInteger, nullable=False),
    sa.Column("pending_credits_minor", sa.BigInteger, nullable=False),
)
rejects = sa.Table(
    "rejects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("log_seq", sa.BigInteger),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("row", sa.BigInteger),
    sa.Column("input_id", sa.Text),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("field", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("log_seq", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("secret_sha256", sa.LargeBinary, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("participant", sa.Text),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("revoked_ms", sa.BigInteger),
)
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("endpoint_id", sa.Text, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("participant", sa.Text),
    sa.Column("pool", sa.Text),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("previous_secret", sa.Text),  # 0011: still signs until previous_secret_until_ms
    sa.Column("previous_secret_until_ms", sa.BigInteger),
)
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("log_seq", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_ms", sa.BigInteger),
    sa.UniqueConstraint("endpoint_id", "event_id", name="webhook_deliveries_endpoint_event"),
)
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.BigInteger, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Float, nullable=False),
)

# HTTP Idempotency-Key (migration 0011): the first response to (scope, key), until it expires.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False),
)

# The audit trail (migration 0002), read and written by audit_tables.py.
transition_log = sa.Table(
    "transition_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("body", sa.LargeBinary),
    sa.Column("prev_hash", sa.LargeBinary),
    sa.Column("hash", sa.LargeBinary),
    sa.Column("state_root", sa.Text),
)
audit_records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.Text),
    sa.Column("ref", sa.Text),
    sa.Column("log_seq", sa.BigInteger),
    sa.Column("record", sa.Text),
    sa.Column("hash", sa.LargeBinary),
)
checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tree_size", sa.BigInteger),
    sa.Column("tree_root", sa.LargeBinary),
    sa.Column("log_seq", sa.BigInteger),
    sa.Column("log_head", sa.LargeBinary),
    sa.Column("state_root", sa.Text),
    sa.Column("chain_tip", sa.BigInteger),
    sa.Column("at_ms", sa.BigInteger),
    sa.Column("key_id", sa.Text),
    sa.Column("body", sa.Text),
    sa.Column("signature", sa.LargeBinary),
)
audit_keys = sa.Table(
    "audit_keys",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("public_key", sa.LargeBinary),
    sa.Column("action", sa.Text),
    sa.Column("prev_key_id", sa.Text),
    sa.Column("log_seq", sa.BigInteger),
    sa.Column("at_ms", sa.BigInteger),
    sa.Column("statement", sa.Text),
    sa.Column("sig_new", sa.LargeBinary),
    sa.Column("sig_prev", sa.LargeBinary),
)
