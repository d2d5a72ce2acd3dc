"""contact compliance: versioned policies per jurisdiction (seeded MX, US, default), the
append-only compliance log, debtor preferences and consent

Revision ID: c4d1e0a7b921
Revises: b7e2c91d4a30
Create Date: 2026-12-07 13:15:00
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

#: the policies first seeded, as they were (frozen here: the engine's ``SEEDED`` moves on)
SEEDED = {
    "MX": {"jurisdiction": "MX", "version": 1, "rules": [
        {"rule": "do_not_contact"}, {"rule": "window", "from": "07:00", "until": "22:00"},
        {"rule": "third_party"}]},
    "US": {"jurisdiction": "US", "version": 1, "rules": [
        {"rule": "do_not_contact"}, {"rule": "cease_communication"}, {"rule": "attorney"},
        {"rule": "window", "from": "08:00", "until": "21:00"}, {"rule": "inconvenient_time"},
        {"rule": "call_frequency", "attempts": 7, "days": 7}]},
    "*": {"jurisdiction": "*", "version": 1, "rules": [
        {"rule": "do_not_contact"}, {"rule": "window"}]},
}

revision = 'c4d1e0a7b921'
down_revision = 'b7e2c91d4a30'
branch_labels = None
depends_on = None


def upgrade() -> None:
    policies = op.create_table(
        'contact_policies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('jurisdiction', sa.String(length=2), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
        sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('note', sa.Text(), server_default='', nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_policies')),
        sa.UniqueConstraint('jurisdiction', 'version', name='uq_contact_policies_version'),
        schema='activities')
    op.bulk_insert(policies, [
        {"jurisdiction": p["jurisdiction"], "version": p["version"], "rules": p["rules"],
         "effective_from": datetime(2000, 1, 1, tzinfo=timezone.utc),
         "note": "Versión inicial"} for p in SEEDED.values()])
    op.create_table(
        'compliance_log',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('debtor_id', sa.BigInteger(), nullable=False),
        sa.Column('account_id', sa.BigInteger(), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=100), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('to', sa.String(length=254), nullable=True),
        sa.Column('rule', sa.String(length=40), nullable=False),
        sa.Column('policy_version', sa.String(length=20), nullable=False),
        sa.Column('decision', sa.String(length=10), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('justification', sa.Text(), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("decision IN ('refused', 'overridden')", name=op.f('ck_compliance_log_decision')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_compliance_log')),
        schema='activities')
    op.create_index('ix_compliance_log_debtor', 'compliance_log', ['debtor_id', 'at'], schema='activities')
    op.create_index('ix_compliance_log_institution', 'compliance_log', ['institution_id', 'at'],
                    schema='activities')
    op.execute("""
        CREATE FUNCTION activities.compliance_log_append_only() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'the compliance log is append-only'; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER compliance_log_append_only BEFORE UPDATE OR DELETE ON activities.compliance_log
        FOR EACH ROW EXECUTE FUNCTION activities.compliance_log_append_only();""")
    op.create_table(
        'debtor_preferences',
        sa.Column('debtor_id', sa.BigInteger(), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('consent', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('cease_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attorney', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('inconvenient', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column('language', sa.String(length=5), nullable=True),
        sa.Column('updated_by', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('debtor_id', name=op.f('pk_debtor_preferences')),
        schema='activities')


def downgrade() -> None:
    op.drop_table('debtor_preferences', schema='activities')
    op.execute("DROP TRIGGER compliance_log_append_only ON activities.compliance_log; "
               "DROP FUNCTION activities.compliance_log_append_only();")
    op.drop_table('compliance_log', schema='activities')
    op.drop_table('contact_policies', schema='activities')
