"""Conformance: stored results per (connection, model, suite version, capability) and an org's
gate settings (on/off, thresholds, operator overrides).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conformance_results",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("suite", sa.String(length=64), nullable=False),
        sa.Column("suite_version", sa.Integer(), nullable=False),
        sa.Column("capability", sa.String(length=32), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=True),
        sa.Column("tokens_per_s", sa.Float(), nullable=True),
        sa.Column("cost_micro_usd", sa.Integer(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_conformance_results_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conformance_results")),
        sa.UniqueConstraint(
            "connection_id",
            "model",
            "suite",
            "suite_version",
            "capability",
            name="uq_conformance_results_key",
        ),
    )
    op.create_index(
        op.f("ix_conformance_results_connection_id"), "conformance_results", ["connection_id"], unique=False
    )
    with op.batch_alter_table("org_ai_settings") as batch:
        batch.add_column(
            sa.Column("conformance_gates", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("conformance_thresholds", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("conformance_overrides", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("org_ai_settings") as batch:
        batch.drop_column("conformance_overrides")
        batch.drop_column("conformance_thresholds")
        batch.drop_column("conformance_gates")
    op.drop_index(op.f("ix_conformance_results_connection_id"), table_name="conformance_results")
    op.drop_table("conformance_results")
