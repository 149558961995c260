"""Flow-id runs: every accepted trade and payment id's hash and record location, on disk.

The service keeps only a bounded hot tier of ids in memory; older ids are found here
(``store/flowids.py``): sorted runs of (64-bit keyed hash, packed location) cut in blocks of
a few thousand ids, one row per block, so a probe reads one small row per run.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "flow_id_runs",
        sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("ids", sa.BigInteger, nullable=False),
        sa.Column("blocks", sa.Integer, nullable=False),
    )
    op.create_table(
        "flow_id_blocks",
        sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("block", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_hash", sa.BigInteger, nullable=False),  # signed view of the uint64
        sa.Column("hashes", sa.LargeBinary, nullable=False),  # sorted uint64, little-endian
        sa.Column("locs", sa.LargeBinary, nullable=False),  # int64 seq << 32 | part << 24 | row
    )


def downgrade() -> None:
    op.drop_table("flow_id_blocks")
    op.drop_table("flow_id_runs")
