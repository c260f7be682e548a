"""Platform connections: a connection without an org is the operator's, routable by every org.

`connections.org_id` becomes nullable (NULL: a platform connection, billed `platform`); the
org-scoped unique constraint cannot see NULLs, so a partial unique index keeps platform
profile ids (`provider:name`) unique among themselves. Their keys are vault records of the
reserved scope `:platform` (routing/platform.py), which no org id can equal.

Why a NULL org rather than a reserved operator org row or a separate `owner` column: a
reserved org would appear wherever orgs are listed, billed, counted or joined (members, API
keys, ledger, usage) and every one of those would need to skip it; an `owner` column would say
again what `org_id` already says. NULL keeps the foreign key and its cascade for org rows, and
"no org" is exactly what a platform connection is.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLATFORM_ONLY = sa.text("org_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.alter_column("org_id", existing_type=sa.String(length=32), nullable=True)
    op.create_index(
        "uq_connections_platform_profile",
        "connections",
        ["provider", "name"],
        unique=True,
        sqlite_where=_PLATFORM_ONLY,
        postgresql_where=_PLATFORM_ONLY,
    )


def downgrade() -> None:
    op.drop_index("uq_connections_platform_profile", table_name="connections")
    # Platform connections cannot exist without the nullable column; their keys go with them.
    op.execute("DELETE FROM connections WHERE org_id IS NULL")
    vault = sa.table("vault_secrets", sa.column("org_id", sa.String))
    op.execute(vault.delete().where(vault.c.org_id == ":platform"))
    with op.batch_alter_table("connections") as batch:
        batch.alter_column("org_id", existing_type=sa.String(length=32), nullable=False)
