"""assignments resting_until and the ready index

An account worked today, waiting for a callback or on hold by a dispute rests: it keeps
its rank but leaves the pull's partial index (working.py). Existing placements rest as
their facts say.

Revision ID: a3f3504bd589
Revises: 5b0e7c3d9a14
Create Date: 2026-11-23 12:47:50.968245
"""
from alembic import op
import sqlalchemy as sa


revision = 'a3f3504bd589'
down_revision = '5b0e7c3d9a14'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('assignments', sa.Column('resting_until', sa.DateTime(timezone=True), nullable=True), schema='queues')
    op.create_index('ix_assignments_ready', 'assignments', ['agent_id', 'queue_id', 'rank'], unique=False, schema='queues', postgresql_where=sa.text('resting_until IS NULL'))
    op.create_index('ix_assignments_resting_until', 'assignments', ['resting_until'], unique=False, schema='queues', postgresql_where=sa.text('resting_until IS NOT NULL'))
    op.execute("""
        UPDATE queues.assignments a SET resting_until = CASE WHEN f.open_dispute
            THEN '9999-12-31 00:00+00'::timestamptz ELSE f.callback_at END
        FROM queues.account_facts f
        WHERE f.account_id = a.account_id AND (f.open_dispute OR f.callback_at > now())""")


def downgrade() -> None:
    op.drop_index('ix_assignments_resting_until', table_name='assignments', schema='queues', postgresql_where=sa.text('resting_until IS NOT NULL'))
    op.drop_index('ix_assignments_ready', table_name='assignments', schema='queues', postgresql_where=sa.text('resting_until IS NULL'))
    op.drop_column('assignments', 'resting_until', schema='queues')
