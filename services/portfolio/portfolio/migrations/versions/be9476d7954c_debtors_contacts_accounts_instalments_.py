"""debtors, contacts, accounts, instalments, movements, statuses, aging snapshots, imports

Revision ID: be9476d7954c
Revises: 5d52d9864cd1
Create Date: 2026-11-23 09:38:51.089659
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = 'be9476d7954c'
down_revision = '5d52d9864cd1'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # trigram search on names
    op.create_table('aging_snapshots',
    sa.Column('snapshot_date', sa.Date(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.Column('balance', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('overdue_amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('days_past_due', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=12), nullable=False),
    sa.Column('status_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('snapshot_date', 'account_id', name=op.f('pk_aging_snapshots')),
    schema='portfolio'
    )
    op.create_index('ix_aging_snapshots_institution_date', 'aging_snapshots', ['institution_id', 'snapshot_date'], unique=False, schema='portfolio')
    op.create_table('debtors',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.Column('customer_number', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), server_default='person', nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('tax_id', sa.String(length=20), nullable=True),
    sa.Column('national_id', sa.String(length=20), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('time_zone', sa.String(length=60), nullable=True),
    sa.Column('notes', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('person', 'company')", name=op.f('ck_debtors_kind')),
    sa.ForeignKeyConstraint(['institution_id'], ['portfolio.institutions.id'], name=op.f('fk_debtors_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_debtors')),
    sa.UniqueConstraint('institution_id', 'customer_number', name='uq_debtors_customer'),
    schema='portfolio'
    )
    op.create_index('ix_debtors_customer_number', 'debtors', ['customer_number'], unique=False, schema='portfolio')
    op.create_index('ix_debtors_name_trgm', 'debtors', ['name'], unique=False, schema='portfolio', postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
    op.create_index('ix_debtors_tax_id', 'debtors', ['tax_id'], unique=False, schema='portfolio')
    op.create_table('import_layouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('file_format', sa.String(length=5), server_default='csv', nullable=False),
    sa.Column('encoding', sa.String(length=20), server_default='utf-8', nullable=False),
    sa.Column('delimiter', sa.String(length=1), server_default=',', nullable=False),
    sa.Column('date_format', sa.String(length=20), server_default='%Y-%m-%d', nullable=False),
    sa.Column('decimal_separator', sa.String(length=1), server_default='.', nullable=False),
    sa.Column('thousands_separator', sa.String(length=1), server_default='', nullable=False),
    sa.Column('columns', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('required', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("file_format IN ('csv', 'xlsx')", name=op.f('ck_import_layouts_file_format')),
    sa.CheckConstraint("kind IN ('portfolio', 'payments')", name=op.f('ck_import_layouts_kind')),
    sa.ForeignKeyConstraint(['institution_id'], ['portfolio.institutions.id'], name=op.f('fk_import_layouts_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_layouts')),
    sa.UniqueConstraint('institution_id', 'name', name='uq_import_layouts_name'),
    schema='portfolio'
    )
    op.create_table('statuses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=30), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('sort_order', sa.Integer(), server_default='0', nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['portfolio.institutions.id'], name=op.f('fk_statuses_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statuses')),
    sa.UniqueConstraint('institution_id', 'code', name='uq_statuses_institution_code'),
    schema='portfolio'
    )
    op.create_table('accounts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.Column('debtor_id', sa.BigInteger(), nullable=False),
    sa.Column('account_number', sa.String(length=40), nullable=False),
    sa.Column('product', sa.String(length=60), server_default='', nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='MXN', nullable=False),
    sa.Column('original_amount', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.Column('balance', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.Column('overdue_amount', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.Column('days_past_due', sa.Integer(), server_default='0', nullable=False),
    sa.Column('stage', sa.String(length=12), server_default='current', nullable=False),
    sa.Column('status_id', sa.Integer(), nullable=True),
    sa.Column('assigned_agent_id', sa.Integer(), nullable=True),
    sa.Column('lawyer_id', sa.Integer(), nullable=True),
    sa.Column('opened_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("stage IN ('current', 'delinquent', 'litigation')", name=op.f('ck_accounts_stage')),
    sa.CheckConstraint('balance >= 0 AND overdue_amount >= 0', name=op.f('ck_accounts_amounts')),
    sa.ForeignKeyConstraint(['debtor_id'], ['portfolio.debtors.id'], name=op.f('fk_accounts_debtor_id_debtors')),
    sa.ForeignKeyConstraint(['institution_id'], ['portfolio.institutions.id'], name=op.f('fk_accounts_institution_id_institutions')),
    sa.ForeignKeyConstraint(['status_id'], ['portfolio.statuses.id'], name=op.f('fk_accounts_status_id_statuses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('institution_id', 'account_number', name='uq_accounts_number'),
    schema='portfolio'
    )
    op.create_index('ix_accounts_account_number', 'accounts', ['account_number'], unique=False, schema='portfolio')
    op.create_index('ix_accounts_assigned_agent_id', 'accounts', ['assigned_agent_id'], unique=False, schema='portfolio')
    op.create_index('ix_accounts_institution_stage_dpd', 'accounts', ['institution_id', 'stage', 'days_past_due'], unique=False, schema='portfolio')
    op.create_index('ix_accounts_lawyer_id', 'accounts', ['lawyer_id'], unique=False, schema='portfolio')
    op.create_index(op.f('ix_portfolio_accounts_debtor_id'), 'accounts', ['debtor_id'], unique=False, schema='portfolio')
    op.create_table('addresses',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('debtor_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=12), server_default='home', nullable=False),
    sa.Column('street', sa.String(length=200), nullable=False),
    sa.Column('neighborhood', sa.String(length=120), nullable=True),
    sa.Column('municipality', sa.String(length=120), nullable=True),
    sa.Column('state', sa.String(length=60), nullable=True),
    sa.Column('postal_code', sa.String(length=10), nullable=True),
    sa.Column('country', sa.String(length=2), server_default='MX', nullable=False),
    sa.Column('time_zone', sa.String(length=60), nullable=True),
    sa.ForeignKeyConstraint(['debtor_id'], ['portfolio.debtors.id'], name=op.f('fk_addresses_debtor_id_debtors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_addresses')),
    schema='portfolio'
    )
    op.create_index(op.f('ix_portfolio_addresses_debtor_id'), 'addresses', ['debtor_id'], unique=False, schema='portfolio')
    op.create_table('emails',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('debtor_id', sa.BigInteger(), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('kind', sa.String(length=12), server_default='personal', nullable=False),
    sa.Column('do_not_contact', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.ForeignKeyConstraint(['debtor_id'], ['portfolio.debtors.id'], name=op.f('fk_emails_debtor_id_debtors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emails')),
    sa.UniqueConstraint('debtor_id', 'address', name='uq_emails_debtor_address'),
    schema='portfolio'
    )
    op.create_index('ix_emails_address', 'emails', ['address'], unique=False, schema='portfolio', postgresql_ops={'address': 'text_pattern_ops'})
    op.create_index(op.f('ix_portfolio_emails_debtor_id'), 'emails', ['debtor_id'], unique=False, schema='portfolio')
    op.create_table('guarantors',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('debtor_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('tax_id', sa.String(length=20), nullable=True),
    sa.Column('relationship', sa.String(length=60), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['debtor_id'], ['portfolio.debtors.id'], name=op.f('fk_guarantors_debtor_id_debtors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_guarantors')),
    schema='portfolio'
    )
    op.create_index(op.f('ix_portfolio_guarantors_debtor_id'), 'guarantors', ['debtor_id'], unique=False, schema='portfolio')
    op.create_table('import_jobs',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.Column('layout_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('state', sa.String(length=10), server_default='queued', nullable=False),
    sa.Column('total_rows', sa.Integer(), server_default='0', nullable=False),
    sa.Column('processed_rows', sa.Integer(), server_default='0', nullable=False),
    sa.Column('imported_rows', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rejected_rows', sa.Integer(), server_default='0', nullable=False),
    sa.Column('message', sa.Text(), server_default='', nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_import_jobs_state')),
    sa.ForeignKeyConstraint(['institution_id'], ['portfolio.institutions.id'], name=op.f('fk_import_jobs_institution_id_institutions')),
    sa.ForeignKeyConstraint(['layout_id'], ['portfolio.import_layouts.id'], name=op.f('fk_import_jobs_layout_id_import_layouts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_jobs')),
    schema='portfolio'
    )
    op.create_index('ix_import_jobs_institution_created', 'import_jobs', ['institution_id', 'created_at'], unique=False, schema='portfolio')
    op.create_table('phones',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('debtor_id', sa.BigInteger(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=12), server_default='mobile', nullable=False),
    sa.Column('priority', sa.Integer(), server_default='1', nullable=False),
    sa.Column('do_not_call', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('valid', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.ForeignKeyConstraint(['debtor_id'], ['portfolio.debtors.id'], name=op.f('fk_phones_debtor_id_debtors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_phones')),
    sa.UniqueConstraint('debtor_id', 'number', name='uq_phones_debtor_number'),
    schema='portfolio'
    )
    op.create_index('ix_phones_number', 'phones', ['number'], unique=False, schema='portfolio', postgresql_ops={'number': 'text_pattern_ops'})
    op.create_index(op.f('ix_portfolio_phones_debtor_id'), 'phones', ['debtor_id'], unique=False, schema='portfolio')
    op.create_table('import_problems',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('job_id', sa.BigInteger(), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('column', sa.String(length=80), nullable=False),
    sa.Column('problem', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['portfolio.import_jobs.id'], name=op.f('fk_import_problems_job_id_import_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_problems')),
    schema='portfolio'
    )
    op.create_index('ix_import_problems_job_row', 'import_problems', ['job_id', 'row_number'], unique=False, schema='portfolio')
    op.create_table('instalments',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('paid_amount', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['portfolio.accounts.id'], name=op.f('fk_instalments_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instalments')),
    sa.UniqueConstraint('account_id', 'number', name='uq_instalments_account_number'),
    schema='portfolio'
    )
    op.create_index('ix_instalments_unpaid', 'instalments', ['account_id', 'due_date'], unique=False, schema='portfolio', postgresql_where=sa.text('paid_amount < amount'))
    op.create_table('movements',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('value_date', sa.Date(), nullable=False),
    sa.Column('reference', sa.String(length=60), nullable=False),
    sa.Column('import_job_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('charge', 'payment', 'adjustment')", name=op.f('ck_movements_kind')),
    sa.ForeignKeyConstraint(['account_id'], ['portfolio.accounts.id'], name=op.f('fk_movements_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_movements')),
    sa.UniqueConstraint('account_id', 'kind', 'reference', name='uq_movements_reference'),
    schema='portfolio'
    )
    op.create_index('ix_movements_account_value_date', 'movements', ['account_id', 'value_date'], unique=False, schema='portfolio')
    # ### end Alembic commands ###


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index('ix_movements_account_value_date', table_name='movements', schema='portfolio')
    op.drop_table('movements', schema='portfolio')
    op.drop_index('ix_instalments_unpaid', table_name='instalments', schema='portfolio', postgresql_where=sa.text('paid_amount < amount'))
    op.drop_table('instalments', schema='portfolio')
    op.drop_index('ix_import_problems_job_row', table_name='import_problems', schema='portfolio')
    op.drop_table('import_problems', schema='portfolio')
    op.drop_index(op.f('ix_portfolio_phones_debtor_id'), table_name='phones', schema='portfolio')
    op.drop_index('ix_phones_number', table_name='phones', schema='portfolio', postgresql_ops={'number': 'text_pattern_ops'})
    op.drop_table('phones', schema='portfolio')
    op.drop_index('ix_import_jobs_institution_created', table_name='import_jobs', schema='portfolio')
    op.drop_table('import_jobs', schema='portfolio')
    op.drop_index(op.f('ix_portfolio_guarantors_debtor_id'), table_name='guarantors', schema='portfolio')
    op.drop_table('guarantors', schema='portfolio')
    op.drop_index(op.f('ix_portfolio_emails_debtor_id'), table_name='emails', schema='portfolio')
    op.drop_index('ix_emails_address', table_name='emails', schema='portfolio', postgresql_ops={'address': 'text_pattern_ops'})
    op.drop_table('emails', schema='portfolio')
    op.drop_index(op.f('ix_portfolio_addresses_debtor_id'), table_name='addresses', schema='portfolio')
    op.drop_table('addresses', schema='portfolio')
    op.drop_index(op.f('ix_portfolio_accounts_debtor_id'), table_name='accounts', schema='portfolio')
    op.drop_index('ix_accounts_lawyer_id', table_name='accounts', schema='portfolio')
    op.drop_index('ix_accounts_institution_stage_dpd', table_name='accounts', schema='portfolio')
    op.drop_index('ix_accounts_assigned_agent_id', table_name='accounts', schema='portfolio')
    op.drop_index('ix_accounts_account_number', table_name='accounts', schema='portfolio')
    op.drop_table('accounts', schema='portfolio')
    op.drop_table('statuses', schema='portfolio')
    op.drop_table('import_layouts', schema='portfolio')
    op.drop_index('ix_debtors_tax_id', table_name='debtors', schema='portfolio')
    op.drop_index('ix_debtors_name_trgm', table_name='debtors', schema='portfolio', postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
    op.drop_index('ix_debtors_customer_number', table_name='debtors', schema='portfolio')
    op.drop_table('debtors', schema='portfolio')
    op.drop_index('ix_aging_snapshots_institution_date', table_name='aging_snapshots', schema='portfolio')
    op.drop_table('aging_snapshots', schema='portfolio')
    # ### end Alembic commands ###
