"""Integrators (issue 17): webhook secret rotation with an overlap window (the previous secret
and when it stops signing) and the HTTP ``Idempotency-Key`` table (the first response to a key,
replayed to a repeat until the key expires).

Revision ID: 0011
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"


def upgrade() -> None:
    op.add_column("webhook_endpoints", sa.Column("previous_secret", sa.Text, nullable=True))
    op.add_column("webhook_endpoints", sa.Column("previous_secret_until_ms", sa.BigInteger, nullable=True))
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_column("webhook_endpoints", "previous_secret_until_ms")
    op.drop_column("webhook_endpoints", "previous_secret")
