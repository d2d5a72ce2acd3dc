"""debtor portal: per-institution portal settings (second factor, link lifetime), personal
links (hashed, single use, expiring, locking) and debtor sessions

Revision ID: d395bceb135e
Revises: 8a31368ad6c5
Create Date: 2026-12-07 17:50:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = 'd395bceb135e'
down_revision = '8a31368ad6c5'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'portal_settings',
        sa.Column('institution_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('second_factor', sa.String(length=20), server_default='birth_date',
                  nullable=False),
        sa.Column('link_ttl_hours', sa.Integer(), server_default='72', nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.PrimaryKeyConstraint('institution_id', name=op.f('pk_portal_settings')),
        schema='auth')
    op.create_table(
        'portal_links',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('debtor_id', sa.BigInteger(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=10), server_default='email', nullable=False),
        sa.Column('sent_to', sa.String(length=254), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('failed_attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_links')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_portal_links_token_hash')),
        schema='auth')
    op.create_index('ix_portal_links_debtor', 'portal_links', ['debtor_id'], schema='auth')
    op.create_table(
        'portal_sessions',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('link_id', sa.BigInteger(), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('debtor_id', sa.BigInteger(), nullable=False),
        sa.Column('language', sa.String(length=5), server_default='es', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('address', postgresql.INET(), nullable=True),
        sa.ForeignKeyConstraint(['link_id'], ['auth.portal_links.id'],
                                name=op.f('fk_portal_sessions_link_id_portal_links')),
        sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_portal_sessions')),
        schema='auth')
    op.create_index(op.f('ix_auth_portal_sessions_debtor_id'), 'portal_sessions', ['debtor_id'],
                    schema='auth')


def downgrade() -> None:
    op.drop_table('portal_sessions', schema='auth')
    op.drop_table('portal_links', schema='auth')
    op.drop_table('portal_settings', schema='auth')
