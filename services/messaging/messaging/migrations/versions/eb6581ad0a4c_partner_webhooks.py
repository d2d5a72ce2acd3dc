"""partners' webhooks: subscriptions, deliveries in order per account, the attempts' log

Revision ID: eb6581ad0a4c
Revises: b3e1c2d4f5a6
Create Date: 2026-12-07 17:50:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = 'eb6581ad0a4c'
down_revision = 'b3e1c2d4f5a6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhook_subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('contact_email', sa.String(length=254), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('events', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('secret_sealed', sa.Text(), nullable=False),
        sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
        sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('paused_reason', sa.String(length=300), server_default='', nullable=False),
        sa.Column('failures_in_row', sa.Integer(), server_default='0', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions')),
        schema='messaging')
    op.create_index(op.f('ix_messaging_webhook_subscriptions_institution_id'),
                    'webhook_subscriptions', ['institution_id'], unique=False, schema='messaging')
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('subscription_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.UUID(as_uuid=False), nullable=False),
        sa.Column('event_type', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.BigInteger(), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('state', sa.String(length=10), server_default='pending', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('leased_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.String(length=300), server_default='', nullable=False),
        sa.Column('last_latency_ms', sa.Integer(), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')",
                           name=op.f('ck_webhook_deliveries_state')),
        sa.ForeignKeyConstraint(['subscription_id'], ['messaging.webhook_subscriptions.id'],
                                ondelete='CASCADE',
                                name=op.f('fk_webhook_deliveries_subscription_id_webhook_subscriptions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
        sa.UniqueConstraint('subscription_id', 'event_id', name='uq_webhook_deliveries_event'),
        schema='messaging')
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['next_attempt_at'],
                    unique=False, schema='messaging',
                    postgresql_where=sa.text("state = 'pending'"))
    op.create_index('ix_webhook_deliveries_chain', 'webhook_deliveries',
                    ['subscription_id', 'account_id', 'occurred_at', 'id'], unique=False,
                    schema='messaging', postgresql_where=sa.text("state = 'pending'"))
    op.create_index('ix_webhook_deliveries_log', 'webhook_deliveries', ['subscription_id', 'id'],
                    unique=False, schema='messaging')
    op.create_table(
        'webhook_attempts',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('delivery_id', sa.BigInteger(), nullable=False),
        sa.Column('attempted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.String(length=300), server_default='', nullable=False),
        sa.Column('latency_ms', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['delivery_id'], ['messaging.webhook_deliveries.id'],
                                ondelete='CASCADE',
                                name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts')),
        schema='messaging')
    op.create_index(op.f('ix_messaging_webhook_attempts_delivery_id'), 'webhook_attempts',
                    ['delivery_id'], unique=False, schema='messaging')


def downgrade() -> None:
    op.drop_table('webhook_attempts', schema='messaging')
    op.drop_table('webhook_deliveries', schema='messaging')
    op.drop_table('webhook_subscriptions', schema='messaging')
