"""users' own time zone (null: the institution's)

Revision ID: b7d2e4f1a9c3
Revises: 9663090a191c
Create Date: 2026-12-07 12:20:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'b7d2e4f1a9c3'
down_revision = '9663090a191c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('users', sa.Column('time_zone', sa.String(length=60), nullable=True),
                  schema='auth')


def downgrade() -> None:
    op.drop_column('users', 'time_zone', schema='auth')
