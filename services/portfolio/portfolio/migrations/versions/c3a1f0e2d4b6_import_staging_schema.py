"""import staging schema (portfolio_import): the per-job UNLOGGED staging tables of bulk imports

Revision ID: c3a1f0e2d4b6
Revises: be9476d7954c
Create Date: 2026-11-23 10:30:00.000000
"""
from alembic import op

revision = 'c3a1f0e2d4b6'
down_revision = 'be9476d7954c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Owned by the portfolio service: imports COPY each file into stage_<job> and parse it
    # into clean_<job> here (dropped when the job ends), outside the modelled schema.
    op.execute("CREATE SCHEMA IF NOT EXISTS portfolio_import")


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS portfolio_import CASCADE")
