"""phones, emails: drop the debtor_id indexes their unique (debtor_id, …) indexes lead with

Every phone and e-mail an import writes paid for a second b-tree on debtor_id that no
query needs: the unique indexes on (debtor_id, number) and (debtor_id, address) answer
the lookups by debtor and the foreign key's cascade.

Revision ID: a4e8d1c09f37
Revises: f7d2c7ba46dd
Create Date: 2026-12-03 15:30:00.000000
"""
from alembic import op

revision = 'a4e8d1c09f37'
down_revision = 'f7d2c7ba46dd'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_portfolio_phones_debtor_id', table_name='phones', schema='portfolio')
    op.drop_index('ix_portfolio_emails_debtor_id', table_name='emails', schema='portfolio')


def downgrade() -> None:
    op.create_index('ix_portfolio_emails_debtor_id', 'emails', ['debtor_id'], schema='portfolio')
    op.create_index('ix_portfolio_phones_debtor_id', 'phones', ['debtor_id'], schema='portfolio')
