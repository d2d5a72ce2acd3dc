"""agenda items accept an idempotency key: an app that retries a scheduling stores it once

Revision ID: b7e2c91d4a30
Revises: 647bc2b27661
Create Date: 2026-12-07 12:20:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'b7e2c91d4a30'
down_revision = '647bc2b27661'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('agenda_items', sa.Column('idempotency_key', sa.String(length=100),
                                            nullable=True), schema='activities')
    op.create_unique_constraint('uq_agenda_items_idempotency', 'agenda_items',
                                ['created_by', 'idempotency_key'], schema='activities')


def downgrade() -> None:
    op.drop_constraint('uq_agenda_items_idempotency', 'agenda_items', schema='activities',
                       type_='unique')
    op.drop_column('agenda_items', 'idempotency_key', schema='activities')
