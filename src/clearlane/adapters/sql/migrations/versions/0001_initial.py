"""Initial schema: input log, engine state, trades, batches, L1 groups, ledger, rejects, outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "input_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("source_id", sa.Text, nullable=True, unique=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "engine_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("applied_seq", sa.BigInteger, nullable=False),
        sa.Column("state_root", sa.Text, nullable=False),
        sa.Column("log_head", sa.LargeBinary, nullable=False),
        sa.Column("now_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "trade_chunks",
        sa.Column("log_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("part", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("blob", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "batches",
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
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
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
    op.create_index("batches_pool_seq", "batches", ["pool", "seq"])
    op.create_table(
        "batch_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.Text, nullable=False, index=True),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("log_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "l1_groups",
        sa.Column("group_id", sa.Text, primary_key=True),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("flows", sa.Integer, nullable=False),
        sa.Column("open_flows", sa.Integer, nullable=False),
        sa.Column("log_seq", sa.BigInteger, nullable=False),
        sa.Column("blob", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "ledger_accounts",
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
    op.create_table(
        "ledger_entries",
        sa.Column("entry_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("ref", sa.Text, nullable=False, index=True),
        sa.Column("pending", sa.Boolean, nullable=False),
        sa.Column("timeout_at_ms", sa.BigInteger),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("status_at_ms", sa.BigInteger, nullable=False),
        sa.Column("legs", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "rejects",
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
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("log_seq", sa.BigInteger, nullable=False, index=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # These blobs are LZ4-compressed Arrow IPC already: PostgreSQL's own TOAST compression
        # (pglz) would spend CPU for nothing on every write, so they are stored as they are.
        for table, column in (
            ("input_log", "payload"),
            ("trade_chunks", "blob"),
            ("batches", "detail"),
            ("batches", "net"),
            ("l1_groups", "blob"),
        ):
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTERNAL")


def downgrade() -> None:
    for table in (
        "outbox",
        "rejects",
        "ledger_entries",
        "ledger_accounts",
        "l1_groups",
        "batch_events",
        "batches",
        "trade_chunks",
        "engine_state",
        "input_log",
        "meta",
    ):
        op.drop_table(table)
