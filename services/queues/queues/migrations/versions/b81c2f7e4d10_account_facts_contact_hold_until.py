"""account facts learn until when the contact policy holds a debt (cease, attorney, call
frequency): the pull skips it till then

Revision ID: b81c2f7e4d10
Revises: 68684d7e8070
Create Date: 2026-12-07 13:35:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'b81c2f7e4d10'
down_revision = '68684d7e8070'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('account_facts', sa.Column('contact_hold_until', sa.DateTime(timezone=True),
                                             nullable=True), schema='queues')


def downgrade() -> None:
    op.drop_column('account_facts', 'contact_hold_until', schema='queues')
