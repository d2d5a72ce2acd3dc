"""baseline: outbox and processed events

Revision ID: b7e1c0a4d9f2
Revises: 
Create Date: 2026-11-23 16:50:00.000000
"""
from recaudo_common.migrations import create_plumbing_tables, drop_plumbing_tables

revision = 'b7e1c0a4d9f2'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("reports")


def downgrade() -> None:
    drop_plumbing_tables("reports")
