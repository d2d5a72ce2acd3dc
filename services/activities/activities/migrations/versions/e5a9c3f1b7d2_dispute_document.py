"""A dispute keeps the document the debtor sent with it (its version in the documents
service, and its name to show without asking)

Revision ID: e5a9c3f1b7d2
Revises: a08224c5ab16
Create Date: 2026-12-07 20:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'e5a9c3f1b7d2'
down_revision = 'a08224c5ab16'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('disputes', sa.Column('document_version_id', sa.BigInteger(), nullable=True),
                  schema='activities')
    op.add_column('disputes', sa.Column('document_name', sa.String(length=255), nullable=True),
                  schema='activities')


def downgrade() -> None:
    op.drop_column('disputes', 'document_name', schema='activities')
    op.drop_column('disputes', 'document_version_id', schema='activities')
