"""assignments: (agent_id, queue_id, rank) index for the next-account pull

The pull walks the caller's own accounts of a queue, then nobody's, in rank order and
stops at the first free ones; the old (agent_id) index made it sort the whole queue on
every pull. The new index also serves every lookup by agent, so it replaces that one.

Revision ID: 5b0e7c3d9a14
Revises: d926644d4674
Create Date: 2026-11-23 10:45:00
"""
from alembic import op

revision = '5b0e7c3d9a14'
down_revision = 'd926644d4674'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_assignments_agent_queue_rank', 'assignments',
                    ['agent_id', 'queue_id', 'rank'], unique=False, schema='queues')
    op.drop_index('ix_assignments_agent', table_name='assignments', schema='queues')


def downgrade() -> None:
    op.create_index('ix_assignments_agent', 'assignments', ['agent_id'], unique=False,
                    schema='queues')
    op.drop_index('ix_assignments_agent_queue_rank', table_name='assignments', schema='queues')
