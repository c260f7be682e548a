"""Credits ledger: append-only entries (micro-USD, idempotency keys per org), the per-org
account row every ledger write locks first, and the open holds the sweeper expires.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02 10:12:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from billing.ledger_tables import APPEND_ONLY_DDL, DROP_APPEND_ONLY_DDL

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLOSING = sa.text("kind IN ('settle', 'release')")


def upgrade() -> None:
    op.create_table('ledger_accounts',
    sa.Column('org_id', sa.String(length=32), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('held', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('held >= 0 AND balance >= held', name=op.f('ck_ledger_accounts_covered')),
    sa.PrimaryKeyConstraint('org_id', name=op.f('pk_ledger_accounts'))
    )
    op.create_table('ledger_entries',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('org_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('hold_id', sa.String(length=32), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("amount >= 0 OR kind = 'adjustment'", name=op.f('ck_ledger_entries_amount')),
    sa.CheckConstraint("kind IN ('grant', 'purchase', 'hold', 'settle', 'release', 'refund', 'adjustment')", name=op.f('ck_ledger_entries_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('org_id', 'idempotency_key', name='uq_ledger_entries_org_key')
    )
    op.create_index('ix_ledger_entries_hold', 'ledger_entries', ['hold_id'], unique=False)
    op.create_index('ix_ledger_entries_org_created', 'ledger_entries', ['org_id', 'created_at'], unique=False)
    op.create_index('uq_ledger_entries_closing_hold', 'ledger_entries', ['hold_id'], unique=True, sqlite_where=_CLOSING, postgresql_where=_CLOSING)
    op.create_table('ledger_holds',
    sa.Column('hold_id', sa.String(length=32), nullable=False),
    sa.Column('org_id', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('hold_id', name=op.f('pk_ledger_holds'))
    )
    op.create_index(op.f('ix_ledger_holds_expires_at'), 'ledger_holds', ['expires_at'], unique=False)
    for statement in APPEND_ONLY_DDL.get(op.get_bind().dialect.name, ()):
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_APPEND_ONLY_DDL.get(op.get_bind().dialect.name, ()):
        op.execute(statement)
    op.drop_index(op.f('ix_ledger_holds_expires_at'), table_name='ledger_holds')
    op.drop_table('ledger_holds')
    op.drop_index('uq_ledger_entries_closing_hold', table_name='ledger_entries')
    op.drop_index('ix_ledger_entries_org_created', table_name='ledger_entries')
    op.drop_index('ix_ledger_entries_hold', table_name='ledger_entries')
    op.drop_table('ledger_entries')
    op.drop_table('ledger_accounts')
