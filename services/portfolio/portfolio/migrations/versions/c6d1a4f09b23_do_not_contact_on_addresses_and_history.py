"""do-not-contact managed: a flag on addresses too, and the history of every change

Phones (``do_not_call``) and e-mails (``do_not_contact``) had their flag; addresses get
theirs (letters and visits), and ``do_not_contact_changes`` keeps who set or lifted a
flag, when and why.

Revision ID: c6d1a4f09b23
Revises: b8f3d2e61a07
Create Date: 2026-12-07 13:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'c6d1a4f09b23'
down_revision = 'b8f3d2e61a07'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('addresses', sa.Column('do_not_contact', sa.Boolean(),
                                         server_default=sa.text('false'), nullable=False),
                  schema='portfolio')
    op.create_table(
        'do_not_contact_changes',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('debtor_id', sa.BigInteger(), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('contact_id', sa.BigInteger(), nullable=False),
        sa.Column('contact', sa.String(length=300), nullable=False),
        sa.Column('do_not_contact', sa.Boolean(), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('changed_by', sa.Integer(), nullable=True),
        sa.Column('changed_by_name', sa.String(length=80), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.CheckConstraint("channel IN ('phone', 'email', 'address')",
                           name=op.f('ck_do_not_contact_changes_channel')),
        sa.ForeignKeyConstraint(['debtor_id'], ['portfolio.debtors.id'], ondelete='CASCADE',
                                name=op.f('fk_do_not_contact_changes_debtor_id_debtors')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_do_not_contact_changes')),
        schema='portfolio')
    op.create_index(op.f('ix_portfolio_do_not_contact_changes_debtor_id'),
                    'do_not_contact_changes', ['debtor_id'], unique=False, schema='portfolio')


def downgrade() -> None:
    op.drop_index(op.f('ix_portfolio_do_not_contact_changes_debtor_id'),
                  table_name='do_not_contact_changes', schema='portfolio')
    op.drop_table('do_not_contact_changes', schema='portfolio')
    op.drop_column('addresses', 'do_not_contact', schema='portfolio')
