"""baseline: outbox and processed events

Revision ID: fa7aeb779ef2
Revises: 
Create Date: 2026-11-23 09:18:31.121298
"""
from recaudo_common.migrations import create_plumbing_tables, drop_plumbing_tables

revision = 'fa7aeb779ef2'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("activities")


def downgrade() -> None:
    drop_plumbing_tables("activities")
