"""baseline: outbox and processed events

Revision ID: 02a7bc49d55f
Revises: 
Create Date: 2026-11-23 09:18:31.801351
"""
from recaudo_common.migrations import create_plumbing_tables, drop_plumbing_tables

revision = '02a7bc49d55f'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("documents")


def downgrade() -> None:
    drop_plumbing_tables("documents")
