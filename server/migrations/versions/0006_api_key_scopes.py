"""API key scopes: a model list, an expiry and the last-used time; names unique among an org's live keys.

Names were optional and not unique; from now on a new key needs one. Live keys of one org that
share a name get their prefix appended (all but the oldest) so the unique index can be built;
keys without a name keep none (they list as their prefix).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = sa.text("revoked_at IS NULL")


def _rename_duplicate_names() -> None:
    keys = sa.table(
        "api_keys",
        sa.column("id", sa.String),
        sa.column("org_id", sa.String),
        sa.column("name", sa.String),
        sa.column("prefix", sa.String),
        sa.column("created_at", sa.DateTime),
        sa.column("revoked_at", sa.DateTime),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(keys.c.id, keys.c.org_id, keys.c.name, keys.c.prefix)
        .where(keys.c.revoked_at.is_(None), keys.c.name.is_not(None))
        .order_by(keys.c.org_id, keys.c.created_at, keys.c.id)
    ).all()
    seen: set[tuple[str, str]] = set()
    for key_id, org_id, name, prefix in rows:
        if (org_id, name) in seen:
            conn.execute(
                sa.update(keys).where(keys.c.id == key_id).values(name=f"{name[: 128 - len(prefix) - 1]} {prefix}")
            )
        seen.add((org_id, name))


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("models", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    _rename_duplicate_names()
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(
            "uq_api_keys_org_live_name",
            ["org_id", "name"],
            unique=True,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("uq_api_keys_org_live_name", sqlite_where=_LIVE, postgresql_where=_LIVE)
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("models")
