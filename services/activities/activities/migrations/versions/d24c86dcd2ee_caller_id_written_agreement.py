"""MX policy version 2 (no hidden caller id, every agreement in writing); the institution's
outbound number; who wrote a policy version, by name

Revision ID: d24c86dcd2ee
Revises: c4d1e0a7b921
Create Date: 2026-12-07 17:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'd24c86dcd2ee'
down_revision = 'c4d1e0a7b921'
branch_labels = None
depends_on = None

MX_2 = ('[{"rule": "do_not_contact"}, {"rule": "window", "from": "07:00", "until": "22:00"}, '
        '{"rule": "third_party"}, {"rule": "caller_id"}, {"rule": "written_agreement"}]')


def upgrade() -> None:
    op.add_column('contact_policies', sa.Column('created_by_name', sa.String(length=100),
                                                nullable=True), schema='activities')
    op.add_column('institution_settings', sa.Column('outbound_number', sa.String(length=40),
                                                    nullable=True), schema='activities')
    # the law is older than the seed: in force from the same date as version 1
    op.execute(sa.text(
        "INSERT INTO activities.contact_policies (jurisdiction, version, effective_from, rules, "
        "note) VALUES ('MX', 2, '2000-01-01T00:00:00+00:00', CAST(:rules AS jsonb), "
        "'Identificador de llamada visible y acuerdos por escrito') "
        "ON CONFLICT (jurisdiction, version) DO NOTHING").bindparams(rules=MX_2))


def downgrade() -> None:
    op.execute("DELETE FROM activities.contact_policies WHERE jurisdiction = 'MX' AND version = 2 "
               "AND created_by IS NULL")
    op.drop_column('institution_settings', 'outbound_number', schema='activities')
    op.drop_column('contact_policies', 'created_by_name', schema='activities')
