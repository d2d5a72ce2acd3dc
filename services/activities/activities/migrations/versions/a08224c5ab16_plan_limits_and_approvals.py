"""plan and settlement limits per institution, the approval queue of what is outside them,
and the contact log's ``portal`` kind (what a debtor did alone in the portal)

Revision ID: a08224c5ab16
Revises: d24c86dcd2ee
Create Date: 2026-12-07 17:30:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = 'a08224c5ab16'
down_revision = 'd24c86dcd2ee'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'plan_limits',
        sa.Column('institution_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('max_instalments', sa.Integer(), server_default='36', nullable=False),
        sa.Column('min_first_payment', sa.Numeric(14, 2), server_default='0', nullable=False),
        sa.Column('min_first_payment_pct', sa.Numeric(5, 2), server_default='0', nullable=False),
        sa.Column('max_plan_days', sa.Integer(), server_default='1095', nullable=False),
        sa.Column('offer_expiry_days', sa.Integer(), server_default='7', nullable=False),
        sa.Column('discount_bands', postgresql.JSONB(astext_type=sa.Text()),
                  server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column('updated_by', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.CheckConstraint('max_instalments BETWEEN 1 AND 120',
                           name=op.f('ck_plan_limits_instalments')),
        sa.CheckConstraint('min_first_payment >= 0', name=op.f('ck_plan_limits_first_payment')),
        sa.CheckConstraint('min_first_payment_pct BETWEEN 0 AND 100',
                           name=op.f('ck_plan_limits_first_payment_pct')),
        sa.CheckConstraint('max_plan_days BETWEEN 1 AND 3660', name=op.f('ck_plan_limits_plan_days')),
        sa.CheckConstraint('offer_expiry_days BETWEEN 1 AND 365',
                           name=op.f('ck_plan_limits_offer_expiry')),
        sa.PrimaryKeyConstraint('institution_id', name=op.f('pk_plan_limits')),
        schema='activities')
    op.create_table(
        'approvals',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.BigInteger(), nullable=False),
        sa.Column('debtor_id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=12), nullable=False),
        sa.Column('terms', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('reasons', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('approver', sa.String(length=20), nullable=False),
        sa.Column('state', sa.String(length=10), server_default='pending', nullable=False),
        sa.Column('channel', sa.String(length=10), server_default='agent', nullable=False),
        sa.Column('requested_by', sa.Integer(), nullable=False),
        sa.Column('activity_id', sa.BigInteger(), nullable=True),
        sa.Column('promise_id', sa.BigInteger(), nullable=True),
        sa.Column('decided_by', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('note', sa.Text(), server_default='', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.CheckConstraint("state IN ('pending', 'approved', 'rejected')",
                           name=op.f('ck_approvals_state')),
        sa.CheckConstraint("kind IN ('promise', 'settlement')", name=op.f('ck_approvals_kind')),
        sa.CheckConstraint("approver IN ('supervisor', 'administrator')",
                           name=op.f('ck_approvals_approver')),
        sa.ForeignKeyConstraint(['activity_id'], ['activities.activities.id'],
                                name=op.f('fk_approvals_activity_id_activities')),
        sa.ForeignKeyConstraint(['promise_id'], ['activities.promises.id'],
                                name=op.f('fk_approvals_promise_id_promises')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_approvals')),
        schema='activities')
    op.create_index('ix_approvals_pending', 'approvals', ['institution_id', 'created_at'],
                    schema='activities', postgresql_where=sa.text("state = 'pending'"))
    op.create_index('ix_approvals_account', 'approvals', ['account_id'], schema='activities')
    _kinds("'call', 'visit', 'email', 'fax', 'sms', 'letter', 'note', 'portal'")


def _kinds(kinds: str) -> None:
    op.drop_constraint('ck_activities_kind', 'activities', schema='activities')
    op.create_check_constraint(op.f('ck_activities_kind'), 'activities', f"kind IN ({kinds})",
                               schema='activities')


def downgrade() -> None:
    op.execute("DELETE FROM activities.approvals")
    _kinds("'call', 'visit', 'email', 'fax', 'sms', 'letter', 'note'")
    op.drop_table('approvals', schema='activities')
    op.drop_table('plan_limits', schema='activities')
