"""baseline: outbox and processed events

Revision ID: 41dd8b32d978
Revises: 
Create Date: 2026-11-23 09:18:32.468699
"""
from recaudo_common.migrations import create_plumbing_tables, drop_plumbing_tables

revision = '41dd8b32d978'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("messaging")


def downgrade() -> None:
    drop_plumbing_tables("messaging")
