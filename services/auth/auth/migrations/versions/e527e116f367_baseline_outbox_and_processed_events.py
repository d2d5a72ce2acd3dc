"""baseline: outbox and processed events

Revision ID: e527e116f367
Revises: 
Create Date: 2026-11-23 09:18:29.016994
"""
from recaudo_common.migrations import create_plumbing_tables, drop_plumbing_tables

revision = 'e527e116f367'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("auth")


def downgrade() -> None:
    drop_plumbing_tables("auth")
