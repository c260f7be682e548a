"""Commercial terms: each org's subscription and grace period, and the BYOK surcharge reported to Stripe.

`stripe_customers` learns the org's subscription (id, status), its grace period (until when, for
which failed invoice) and the time of its last paid invoice. `usage_reports` holds each batch of
BYOK surcharge sent to Stripe as one meter event (its id is the event's `identifier`), and
`usage_records.report_id` the batch a record's surcharge went in. Records from before this
revision were charged to credits and are marked `credits`, so upgrading reports nothing old.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-02 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNREPORTED = "report_id IS NULL AND billing_source != 'platform' AND cost_micro_usd > 0"


def upgrade() -> None:
    with op.batch_alter_table("stripe_customers") as batch:
        batch.add_column(sa.Column("subscription_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("subscription_status", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("grace_invoice_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("last_paid_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "usage_reports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_reports")),
    )
    op.create_index("ix_usage_reports_sent", "usage_reports", ["sent_at"])
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("report_id", sa.String(length=32), nullable=True))
    op.execute(f"UPDATE usage_records SET report_id = 'credits' WHERE {UNREPORTED}")
    op.create_index(
        "ix_usage_records_unreported",
        "usage_records",
        ["org_id"],
        sqlite_where=sa.text(UNREPORTED),
        postgresql_where=sa.text(UNREPORTED),
    )


def downgrade() -> None:
    op.drop_index("ix_usage_records_unreported", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("report_id")
    op.drop_index("ix_usage_reports_sent", table_name="usage_reports")
    op.drop_table("usage_reports")
    with op.batch_alter_table("stripe_customers") as batch:
        batch.drop_column("last_paid_at")
        batch.drop_column("grace_invoice_id")
        batch.drop_column("grace_until")
        batch.drop_column("subscription_status")
        batch.drop_column("subscription_id")
