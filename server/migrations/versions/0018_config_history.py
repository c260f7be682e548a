"""Configuration history: one row per version of an org's non-secret configuration
(routing matrix, agents, connections' order and status), for `patchbay config history|rollback`.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "config_history",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_history")),
        sa.UniqueConstraint("org_id", "version", name="uq_config_history_org_version"),
    )
    op.create_index("ix_config_history_org_created", "config_history", ["org_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_config_history_org_created", table_name="config_history")
    op.drop_table("config_history")
