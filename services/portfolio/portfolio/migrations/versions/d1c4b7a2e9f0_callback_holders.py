"""callback_holders: a pending callback opens its account to the agent holding it

Revision ID: d1c4b7a2e9f0
Revises: a4e8d1c09f37
Create Date: 2026-12-07 12:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'd1c4b7a2e9f0'
down_revision = 'a4e8d1c09f37'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'callback_holders',
        sa.Column('item_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('account_id', sa.BigInteger(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('done', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.PrimaryKeyConstraint('item_id', name=op.f('pk_callback_holders')),
        schema='portfolio')
    op.create_index(op.f('ix_portfolio_callback_holders_agent_id'), 'callback_holders',
                    ['agent_id'], unique=False, schema='portfolio')


def downgrade() -> None:
    op.drop_index(op.f('ix_portfolio_callback_holders_agent_id'), table_name='callback_holders',
                  schema='portfolio')
    op.drop_table('callback_holders', schema='portfolio')
