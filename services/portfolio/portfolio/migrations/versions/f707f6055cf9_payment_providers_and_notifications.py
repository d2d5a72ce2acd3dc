"""payment providers (webhooks) and the payments they notified, with the triage list

Revision ID: f707f6055cf9
Revises: 6b9754905692
Create Date: 2026-12-07 17:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'f707f6055cf9'
down_revision = '6b9754905692'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'payment_providers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('secret_sealed', sa.Text(), nullable=False),
        sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.ForeignKeyConstraint(['institution_id'], ['portfolio.institutions.id'],
                                name=op.f('fk_payment_providers_institution_id_institutions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_providers')),
        sa.UniqueConstraint('name', name=op.f('uq_payment_providers_name')),
        schema='portfolio')
    op.create_table(
        'payment_notifications',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('provider_id', sa.Integer(), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('payment_id', sa.String(length=80), nullable=False),
        sa.Column('reference', sa.String(length=40), nullable=False),
        sa.Column('amount', sa.Numeric(14, 2), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('paid_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('account_id', sa.BigInteger(), nullable=True),
        sa.Column('movement_id', sa.BigInteger(), nullable=True),
        sa.Column('note', sa.String(length=300), server_default='', nullable=False),
        sa.Column('resolved_by', sa.Integer(), nullable=True),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('credited', 'unmatched', 'assigned', 'dismissed')",
                           name=op.f('ck_payment_notifications_status')),
        sa.ForeignKeyConstraint(['provider_id'], ['portfolio.payment_providers.id'],
                                name=op.f('fk_payment_notifications_provider_id_payment_providers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_notifications')),
        sa.UniqueConstraint('provider_id', 'payment_id', name='uq_payment_notifications_payment'),
        schema='portfolio')
    op.create_index('ix_payment_notifications_triage', 'payment_notifications',
                    ['institution_id', 'status', 'received_at'], unique=False, schema='portfolio')


def downgrade() -> None:
    op.drop_index('ix_payment_notifications_triage', table_name='payment_notifications',
                  schema='portfolio')
    op.drop_table('payment_notifications', schema='portfolio')
    op.drop_table('payment_providers', schema='portfolio')
