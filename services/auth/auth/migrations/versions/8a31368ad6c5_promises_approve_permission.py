"""the promises.approve permission given to the default Administrador and Supervisor
profiles that already exist (new databases get it from the seeded defaults)

Revision ID: 8a31368ad6c5
Revises: a45ea22b3709
Create Date: 2026-12-07 17:40:00
"""
from alembic import op

revision = '8a31368ad6c5'
down_revision = 'a45ea22b3709'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE auth.profiles SET permissions = array_append(permissions, "
               "'promises.approve') WHERE name IN ('Administrador', 'Supervisor') "
               "AND NOT ('promises.approve' = ANY(permissions))")


def downgrade() -> None:
    op.execute("UPDATE auth.profiles SET permissions = array_remove(permissions, "
               "'promises.approve')")
