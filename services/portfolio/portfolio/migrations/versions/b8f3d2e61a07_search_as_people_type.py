"""search as people type: names without accents or case, phones by their last digits

``portfolio.search_text(text)``: lower case without accents (``unaccent``), declared
IMMUTABLE so an index can hold it (``unaccent`` itself is only STABLE: its dictionary
could change; this one is named, and never does). The names' trigram index moves onto
it (the plain one served only the case-insensitive, accent-exact match it replaces),
and phones get a b-tree on their reversed digits: a number typed without its area code
is a suffix (``reverse(number) LIKE '87654321%'``).

Revision ID: b8f3d2e61a07
Revises: d1c4b7a2e9f0
Create Date: 2026-12-07 12:20:00.000000
"""
from alembic import op

revision = 'b8f3d2e61a07'
down_revision = 'd1c4b7a2e9f0'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public")
    op.execute("""
        CREATE FUNCTION portfolio.search_text(text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$""")
    op.drop_index('ix_debtors_name_trgm', table_name='debtors', schema='portfolio')
    op.execute("CREATE INDEX ix_debtors_name_search ON portfolio.debtors "
               "USING gin (portfolio.search_text(name) gin_trgm_ops)")
    op.execute("CREATE INDEX ix_phones_number_reversed ON portfolio.phones "
               "(reverse(number) text_pattern_ops)")


def downgrade() -> None:
    op.drop_index('ix_phones_number_reversed', table_name='phones', schema='portfolio')
    op.drop_index('ix_debtors_name_search', table_name='debtors', schema='portfolio')
    op.create_index('ix_debtors_name_trgm', 'debtors', ['name'], unique=False,
                    schema='portfolio', postgresql_using='gin',
                    postgresql_ops={'name': 'gin_trgm_ops'})
    op.execute("DROP FUNCTION portfolio.search_text(text)")
