"""webhooks.manage for the seeded Administrador and Integración profiles already there

Revision ID: a45ea22b3709
Revises: b7d2e4f1a9c3
Create Date: 2026-12-07 17:55:00
"""
from alembic import op

revision = 'a45ea22b3709'
down_revision = 'b7d2e4f1a9c3'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE auth.profiles SET permissions = array_append(permissions, 'webhooks.manage') "
               "WHERE name IN ('Administrador', 'Integración') "
               "AND NOT 'webhooks.manage' = ANY(permissions)")


def downgrade() -> None:
    op.execute("UPDATE auth.profiles SET permissions = array_remove(permissions, 'webhooks.manage')")
