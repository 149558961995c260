"""Audit: transition entries of the hash chain, audit records (checkpoint-tree leaves), signed
checkpoints and the signing-key history.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "transition_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.Column("state_root", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_records",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("ref", sa.Text, nullable=False, index=True),
        sa.Column("log_seq", sa.BigInteger, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("tree_root", sa.LargeBinary, nullable=False),
        sa.Column("log_seq", sa.BigInteger, nullable=False, index=True),
        sa.Column("log_head", sa.LargeBinary, nullable=False),
        sa.Column("state_root", sa.Text, nullable=False),
        sa.Column("chain_tip", sa.BigInteger, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "audit_keys",
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("prev_key_id", sa.Text),
        sa.Column("log_seq", sa.BigInteger, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("sig_new", sa.LargeBinary, nullable=False),
        sa.Column("sig_prev", sa.LargeBinary),
    )


def downgrade() -> None:
    for table in ("audit_keys", "checkpoints", "audit_records", "transition_log"):
        op.drop_table(table)
