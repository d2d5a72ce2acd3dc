"""baseline: outbox and processed events

Revision ID: 0111b32e5c59
Revises: 
Create Date: 2026-11-23 09:18:29.673167
"""
from recaudo_common.migrations import create_plumbing_tables, drop_plumbing_tables

revision = '0111b32e5c59'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("portfolio")


def downgrade() -> None:
    drop_plumbing_tables("portfolio")
