"""campaigns: the SMS channel and the debtor's portal link in the message

Revision ID: c4e1a7d2f903
Revises: b81c2f7e4d10
Create Date: 2026-12-07 21:50:00.000000
"""
from alembic import op
import sqlalchemy as sa

revision = 'c4e1a7d2f903'
down_revision = 'b81c2f7e4d10'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('campaigns', sa.Column('portal_link', sa.Boolean(), server_default='false',
                                         nullable=False), schema='queues')
    op.drop_constraint(op.f('ck_campaigns_channel'), 'campaigns', schema='queues', type_='check')
    op.create_check_constraint(op.f('ck_campaigns_channel'), 'campaigns',
                               "channel IN ('email', 'sms', 'letter')", schema='queues')
    op.create_check_constraint(op.f('ck_campaigns_portal_link'), 'campaigns',
                               "NOT (portal_link AND channel = 'letter')", schema='queues')


def downgrade() -> None:
    op.execute("UPDATE queues.campaigns SET channel = 'email', state = 'paused' "
               "WHERE channel = 'sms'")
    op.drop_constraint(op.f('ck_campaigns_portal_link'), 'campaigns', schema='queues', type_='check')
    op.drop_constraint(op.f('ck_campaigns_channel'), 'campaigns', schema='queues', type_='check')
    op.create_check_constraint(op.f('ck_campaigns_channel'), 'campaigns',
                               "channel IN ('email', 'letter')", schema='queues')
    op.drop_column('campaigns', 'portal_link', schema='queues')
