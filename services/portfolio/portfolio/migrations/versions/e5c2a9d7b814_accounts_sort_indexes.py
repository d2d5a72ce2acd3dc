"""accounts: indexes on days_past_due and balance, the sorts of "Ver cartera"

Page 1 of the account list across institutions (a supervisor's default view, sorted by
days past due, or by balance) walked no index and sorted every account: 0.7-0.9 s on a
million accounts. With these it reads ~50 index entries (tests/perf/test_bench_search.py).

Revision ID: e5c2a9d7b814
Revises: c3a1f0e2d4b6
Create Date: 2026-11-23 11:00:00.000000
"""
from alembic import op

revision = 'e5c2a9d7b814'
down_revision = 'c3a1f0e2d4b6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_accounts_days_past_due', 'accounts', ['days_past_due'], unique=False,
                    schema='portfolio')
    op.create_index('ix_accounts_balance', 'accounts', ['balance'], unique=False,
                    schema='portfolio')


def downgrade() -> None:
    op.drop_index('ix_accounts_balance', table_name='accounts', schema='portfolio')
    op.drop_index('ix_accounts_days_past_due', table_name='accounts', schema='portfolio')
