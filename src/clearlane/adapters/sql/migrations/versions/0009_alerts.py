"""Alerts (issue 15): the acknowledgement TTL and the covering silences on the generic cases,
and the silences themselves (Alertmanager's model: matchers and a time window).

Revision ID: 0009
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("ack_until_ms", sa.BigInteger))
        batch.add_column(sa.Column("silenced_by", sa.Text))
    op.create_table(
        "silences",
        sa.Column("silence_id", sa.Text, primary_key=True),
        sa.Column("matchers", sa.Text, nullable=False),
        sa.Column("starts_at_ms", sa.BigInteger, nullable=False),
        sa.Column("ends_at_ms", sa.BigInteger, nullable=False, index=True),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("silences")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("silenced_by")
        batch.drop_column("ack_until_ms")
