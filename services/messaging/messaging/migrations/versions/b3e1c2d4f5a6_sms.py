"""SMS: each institution's gateway settings and the messages to and from debtors' phones

Revision ID: b3e1c2d4f5a6
Revises: 7c1a5e93d2b4
Create Date: 2026-12-07 13:15:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'b3e1c2d4f5a6'
down_revision = '7c1a5e93d2b4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sms_settings',
        sa.Column('institution_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('gateway_url', sa.String(length=300), nullable=False),
        sa.Column('username', sa.String(length=120), nullable=False),
        sa.Column('password', sa.Text(), nullable=False),
        sa.Column('inbound_token', sa.Text(), nullable=False),
        sa.Column('sender_id', sa.String(length=20), nullable=False),
        sa.Column('opt_out_words', sa.String(length=300), server_default='BAJA,STOP',
                  nullable=False),
        sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
        sa.PrimaryKeyConstraint('institution_id', name=op.f('pk_sms_settings')),
        sa.UniqueConstraint('sender_id', name=op.f('uq_sms_settings_sender_id')),
        schema='messaging')
    op.create_table(
        'sms_messages',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('uuid', postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('debtor_id', sa.BigInteger(), nullable=True),
        sa.Column('account_id', sa.BigInteger(), nullable=True),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('encoding', sa.String(length=5), server_default='gsm7', nullable=False),
        sa.Column('segments', sa.Integer(), server_default='1', nullable=False),
        sa.Column('template_id', sa.Integer(), nullable=True),
        sa.Column('language', sa.String(length=2), server_default='es', nullable=False),
        sa.Column('state', sa.String(length=9), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('gateway_id', sa.String(length=100), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('activity_id', sa.BigInteger(), nullable=True),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('override_justification', sa.Text(), nullable=True),
        sa.Column('idempotency_key', sa.String(length=100), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.CheckConstraint("direction IN ('outbound', 'inbound')",
                           name=op.f('ck_sms_messages_direction')),
        sa.CheckConstraint("state IN ('queued', 'sent', 'delivered', 'failed', 'received')",
                           name=op.f('ck_sms_messages_state')),
        sa.CheckConstraint("encoding IN ('gsm7', 'ucs2')", name=op.f('ck_sms_messages_encoding')),
        sa.ForeignKeyConstraint(['template_id'], ['messaging.templates.id'],
                                name=op.f('fk_sms_messages_template_id_templates')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_messages')),
        sa.UniqueConstraint('uuid', name=op.f('uq_sms_messages_uuid')),
        sa.UniqueConstraint('gateway_id', name=op.f('uq_sms_messages_gateway_id')),
        sa.UniqueConstraint('created_by', 'idempotency_key', name='uq_sms_idempotency'),
        schema='messaging')
    op.create_index('ix_sms_due', 'sms_messages', ['next_attempt_at'], schema='messaging',
                    postgresql_where=sa.text("state = 'queued'"))
    op.create_index('ix_sms_debtor', 'sms_messages', ['debtor_id', 'created_at'],
                    schema='messaging')


def downgrade() -> None:
    op.drop_table('sms_messages', schema='messaging')
    op.drop_table('sms_settings', schema='messaging')
