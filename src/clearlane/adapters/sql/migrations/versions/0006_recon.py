"""Reconciliation (issue 13): imported statements and batch reports, their external records,
runs with one outcome per record, and the generic cases (exceptions now; alerts and disputes
share them by ``kind``) with their append-only, hash-chained events.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "recon_imports",
        sa.Column("import_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("file_sha256", sa.Text, nullable=False),
        sa.Column("identity_key", sa.Text, unique=True),
        sa.Column("content_digest", sa.Text, unique=True),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("imported_at_ms", sa.BigInteger, nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("balance_gap_minor", sa.BigInteger),
    )
    op.create_table(
        "recon_external",
        sa.Column("record_id", sa.Text, primary_key=True),
        sa.Column("import_id", sa.Text, nullable=False, index=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("asset", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("period", sa.Text, nullable=False, index=True),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("source_ref", sa.Text, nullable=False),
    )
    op.create_table(
        "recon_batch_reports",
        sa.Column("import_id", sa.Text, primary_key=True),
        sa.Column("exchange_batch_id", sa.Text, primary_key=True),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("period", sa.Text, nullable=False, index=True),
        sa.Column("trade_count", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("totals", sa.Text, nullable=False),
        sa.Column("trade_ids", sa.Text),
    )
    op.create_table(
        "recon_runs",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("rules_version", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("breaks", sa.Integer, nullable=False),
        sa.Column("outcomes_sha256", sa.Text, nullable=False),
    )
    op.create_table(
        "recon_outcomes",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("side", sa.Text, primary_key=True),
        sa.Column("record_id", sa.Text, primary_key=True),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason_code", sa.Integer, nullable=False),
        sa.Column("group_id", sa.Text),
    )
    _cases()


def _cases() -> None:
    op.create_table(
        "cases",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("reason_code", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("asset", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False, index=True),
        sa.Column("owner", sa.Text),
        sa.Column("opened_at_ms", sa.BigInteger, nullable=False),
        sa.Column("due_at_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
        sa.Column("snoozed_until_ms", sa.BigInteger),
        sa.Column("resolution", sa.Text),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("head", sa.Text, nullable=False),
    )
    op.create_table(
        "case_events",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("prev_state", sa.Text),
        sa.Column("new_state", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.Text, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "case_events",
        "cases",
        "recon_outcomes",
        "recon_runs",
        "recon_batch_reports",
        "recon_external",
        "recon_imports",
    ):
        op.drop_table(table)
