"""Request log: one row per /v1 or realtime request of an org; the org's content-logging flag.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("turn_id", sa.String(length=64), nullable=True),
        sa.Column("api_key_id", sa.String(length=32), nullable=True),
        sa.Column("agent_id", sa.String(length=32), nullable=True),
        sa.Column("surface", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("intent", sa.String(length=16), nullable=True),
        sa.Column("route", sa.JSON(), nullable=True),
        sa.Column("connection", sa.String(length=100), nullable=True),
        sa.Column("served_model", sa.String(length=255), nullable=True),
        sa.Column("billing_source", sa.String(length=16), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.Column("error_class", sa.String(length=32), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("content_request", sa.Text(), nullable=True),
        sa.Column("content_response", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_log")),
    )
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.create_index("ix_request_log_org_created", ["org_id", "created_at"], unique=False)
        batch_op.create_index("ix_request_log_created", ["created_at"], unique=False)
    # Plain ALTER TABLE (SQLite >= 3.35 drops columns too): a batch copy of `orgs` would drop the
    # table every other one refers to, and SQLite runs the ON DELETE CASCADEs of a dropped table.
    op.add_column("orgs", sa.Column("content_logging", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    op.drop_column("orgs", "content_logging")
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_index("ix_request_log_created")
        batch_op.drop_index("ix_request_log_org_created")
    op.drop_table("request_log")
