"""payment references per account and the institutions' bank details

Revision ID: 6b9754905692
Revises: c6d1a4f09b23
Create Date: 2026-12-07 17:20:00
"""
from alembic import op
import sqlalchemy as sa

revision = '6b9754905692'
down_revision = 'c6d1a4f09b23'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'payment_settings',
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('clabe', sa.String(length=18), nullable=True),
        sa.Column('bank_name', sa.String(length=80), server_default='', nullable=False),
        sa.Column('beneficiary', sa.String(length=120), server_default='', nullable=False),
        sa.Column('convenio', sa.String(length=20), server_default='', nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.ForeignKeyConstraint(['institution_id'], ['portfolio.institutions.id'],
                                name=op.f('fk_payment_settings_institution_id_institutions')),
        sa.PrimaryKeyConstraint('institution_id', name=op.f('pk_payment_settings')),
        schema='portfolio')
    op.create_table(
        'payment_references',
        sa.Column('account_id', sa.BigInteger(), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('reference', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['portfolio.accounts.id'], ondelete='CASCADE',
                                name=op.f('fk_payment_references_account_id_accounts')),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_payment_references')),
        sa.UniqueConstraint('institution_id', 'reference', name='uq_payment_references_reference'),
        schema='portfolio')


def downgrade() -> None:
    op.drop_table('payment_references', schema='portfolio')
    op.drop_table('payment_settings', schema='portfolio')
