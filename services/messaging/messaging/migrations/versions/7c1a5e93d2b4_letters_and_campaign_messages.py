"""outbound_messages: letters (no mailbox) and the campaign a message was sent for

A preventive campaign (queues service) sends email or letters through messaging; a
letter is rendered to PDF and filed for the post, so it has no sending mailbox.

Revision ID: 7c1a5e93d2b4
Revises: ce9924414a2b
Create Date: 2026-12-07 06:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '7c1a5e93d2b4'
down_revision = 'ce9924414a2b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('outbound_messages', sa.Column('campaign_id', sa.Integer(), nullable=True),
                  schema='messaging')
    op.alter_column('outbound_messages', 'mailbox_id', existing_type=sa.Integer(),
                    nullable=True, schema='messaging')
    op.alter_column('outbound_messages', 'channel', existing_type=sa.String(length=5),
                    type_=sa.String(length=6), existing_nullable=False, schema='messaging')
    op.drop_constraint('ck_outbound_messages_channel', 'outbound_messages', schema='messaging')
    op.create_check_constraint('ck_outbound_messages_channel', 'outbound_messages',
                               "channel IN ('email', 'fax', 'letter')", schema='messaging')
    op.create_check_constraint('ck_outbound_messages_mailbox', 'outbound_messages',
                               "mailbox_id IS NOT NULL OR channel = 'letter'", schema='messaging')


def downgrade() -> None:
    op.drop_constraint('ck_outbound_messages_mailbox', 'outbound_messages', schema='messaging')
    op.drop_constraint('ck_outbound_messages_channel', 'outbound_messages', schema='messaging')
    op.execute("DELETE FROM messaging.outbound_messages WHERE channel = 'letter'")
    op.create_check_constraint('ck_outbound_messages_channel', 'outbound_messages',
                               "channel IN ('email', 'fax')", schema='messaging')
    op.alter_column('outbound_messages', 'channel', existing_type=sa.String(length=6),
                    type_=sa.String(length=5), existing_nullable=False, schema='messaging')
    op.alter_column('outbound_messages', 'mailbox_id', existing_type=sa.Integer(),
                    nullable=False, schema='messaging')
    op.drop_column('outbound_messages', 'campaign_id', schema='messaging')
