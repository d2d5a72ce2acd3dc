"""an SMS remembers the preventive campaign it was sent for (its delivery report counts
in the campaign's report)

Revision ID: a4d7e2c9f316
Revises: eb6581ad0a4c
Create Date: 2026-12-08 00:20:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'a4d7e2c9f316'
down_revision = 'eb6581ad0a4c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('sms_messages', sa.Column('campaign_id', sa.Integer(), nullable=True),
                  schema='messaging')


def downgrade() -> None:
    op.drop_column('sms_messages', 'campaign_id', schema='messaging')
