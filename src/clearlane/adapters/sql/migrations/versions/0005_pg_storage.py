"""PostgreSQL storage: no TOAST compression for the ledger journal's legs and the transition bodies.

pglz (the only TOAST compression of a server built without lz4) spent about two thirds of the
server's CPU on the NATS ingest benchmark compressing these (docs/PERFORMANCE.md); they are
written once and read by verification only. Nothing changes on SQLite or in the stored bytes.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"

COLUMNS = (("ledger_entries", "legs"), ("transition_log", "body"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in COLUMNS:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in COLUMNS:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTENDED")
