"""baseline: outbox and processed events

Revision ID: a74071349db3
Revises: 
Create Date: 2026-11-23 09:18:30.468962
"""
from recaudo_common.migrations import create_plumbing_tables, drop_plumbing_tables

revision = 'a74071349db3'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("queues")


def downgrade() -> None:
    drop_plumbing_tables("queues")
