"""Monthly budgets and per-key spend limits (`spend_caps`) and what was charged against them
per month (`spend_totals`); the legacy `org_ai_settings.monthly_budget_usd` moves into
`spend_caps` as micro-USD, and its column goes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MICRO = Decimal(1_000_000)


def upgrade() -> None:
    op.create_table('spend_caps',
    sa.Column('org_id', sa.String(length=32), nullable=False),
    sa.Column('api_key_id', sa.String(length=32), nullable=False),
    sa.Column('limit_micro_usd', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('limit_micro_usd >= 0', name=op.f('ck_spend_caps_limit')),
    sa.PrimaryKeyConstraint('org_id', 'api_key_id', name=op.f('pk_spend_caps'))
    )
    op.create_table('spend_totals',
    sa.Column('org_id', sa.String(length=32), nullable=False),
    sa.Column('api_key_id', sa.String(length=32), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('spent', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('spent >= 0', name=op.f('ck_spend_totals_spent')),
    sa.PrimaryKeyConstraint('org_id', 'api_key_id', 'month', name=op.f('pk_spend_totals'))
    )
    bind = op.get_bind()
    budgets = bind.execute(
        sa.text("SELECT org_id, monthly_budget_usd FROM org_ai_settings WHERE monthly_budget_usd IS NOT NULL")
    ).all()
    caps = sa.table(
        'spend_caps',
        sa.column('org_id', sa.String),
        sa.column('api_key_id', sa.String),
        sa.column('limit_micro_usd', sa.BigInteger),
        sa.column('updated_at', sa.DateTime(timezone=True)),
    )
    now = sa.func.current_timestamp()
    for org_id, usd in budgets:
        # The column held USD with two decimals (SQLite may hand back a float): exact in micro-USD.
        micro = int(Decimal(str(usd)).quantize(Decimal("0.01")) * _MICRO)
        bind.execute(caps.insert().values(org_id=org_id, api_key_id='', limit_micro_usd=micro, updated_at=now))
    with op.batch_alter_table('org_ai_settings') as batch:
        batch.drop_column('monthly_budget_usd')


def downgrade() -> None:
    with op.batch_alter_table('org_ai_settings') as batch:
        batch.add_column(sa.Column('monthly_budget_usd', sa.Numeric(precision=12, scale=2), nullable=True))
    bind = op.get_bind()
    budgets = bind.execute(sa.text("SELECT org_id, limit_micro_usd FROM spend_caps WHERE api_key_id = ''")).all()
    settings = sa.table('org_ai_settings', sa.column('org_id', sa.String), sa.column('monthly_budget_usd', sa.Numeric(12, 2)))
    for org_id, micro in budgets:
        # Cents were the old column's precision: a finer budget is rounded there.
        usd = (Decimal(int(micro)) / _MICRO).quantize(Decimal("0.01"))
        bind.execute(settings.update().where(settings.c.org_id == org_id).values(monthly_budget_usd=usd))
    op.drop_table('spend_totals')
    op.drop_table('spend_caps')
