"""Usage records: one row per LLM, STT or TTS segment, with its billing source.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:48:03.348806
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('usage_records',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('org_id', sa.String(length=32), nullable=False),
    sa.Column('agent_id', sa.String(length=32), nullable=True),
    sa.Column('api_key_id', sa.String(length=32), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('turn_id', sa.String(length=64), nullable=True),
    sa.Column('segment', sa.String(length=8), nullable=False),
    sa.Column('intent', sa.String(length=16), nullable=True),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('profile_id', sa.String(length=100), nullable=True),
    sa.Column('connection_id', sa.String(length=32), nullable=True),
    sa.Column('model', sa.String(length=255), nullable=True),
    sa.Column('billing_source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('cached_input_tokens', sa.Integer(), nullable=False),
    sa.Column('cache_write_tokens', sa.Integer(), nullable=False),
    sa.Column('reasoning_tokens', sa.Integer(), nullable=False),
    sa.Column('audio_seconds', sa.Float(), nullable=False),
    sa.Column('characters', sa.Integer(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_records'))
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index('ix_usage_records_org_created', ['org_id', 'created_at'], unique=False)
        batch_op.create_index('ix_usage_records_turn', ['turn_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_turn')
        batch_op.drop_index('ix_usage_records_org_created')

    op.drop_table('usage_records')
