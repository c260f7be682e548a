"""Vault: sealed secrets, rotation progress, and connections.secret_id -> vault_secrets.id.

The foundation (0001) never stored a plaintext key, so there is nothing to re-encrypt here;
legacy `openrouterApiKey` values are imported through `Vault.put` by
`patchbay migrate legacy-settings`, which writes only ciphertext.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vault_secrets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("wrap_nonce", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_secrets")),
        sa.UniqueConstraint("org_id", "owner_id", "field", name="uq_vault_secrets_owner_field"),
    )
    with op.batch_alter_table("vault_secrets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vault_secrets_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vault_secrets_key_version"), ["key_version"], unique=False)

    op.create_table(
        "vault_rotations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("target_version", sa.String(length=16), nullable=False),
        sa.Column("cursor", sa.String(length=32), nullable=False),
        sa.Column("rewrapped", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_rotations")),
    )

    # SQLite cannot add a constraint in place; batch mode rebuilds the table (rows are kept).
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_connections_secret_id_vault_secrets"),
            "vault_secrets",
            ["secret_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_connections_secret_id_vault_secrets"), type_="foreignkey")

    op.drop_table("vault_rotations")
    with op.batch_alter_table("vault_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vault_secrets_key_version"))
        batch_op.drop_index(batch_op.f("ix_vault_secrets_org_id"))

    op.drop_table("vault_secrets")
