"""How the free-text search reads what people type (portfolio/search.py): the text's
normal form, phones as digits without a country code, and which indexes a text asks."""
import pytest
from sqlalchemy.dialects import postgresql

from portfolio.search import _debtor_ids_matching, phone_query, search_text


@pytest.mark.parametrize("typed, normal", [
    ("GUTIÉRREZ", "gutierrez"), ("MUÑOZ", "munoz"), ("Núñez  Peña", "nunez pena"),
    ("  José   Luis ", "jose luis"), ("GÜEMES", "guemes"), ("pedro.puga10", "pedro.puga10"),
])
def test_search_text_drops_case_accents_and_extra_spaces(typed, normal):
    assert search_text(typed) == normal


@pytest.mark.parametrize("typed, digits", [
    ("+52 55 1234 5678", "5512345678"), ("(55) 1234-5678", "5512345678"),
    ("5512345678", "5512345678"), ("525512345678", "5512345678"),
    ("+52 1 55 1234 5678", "5512345678"), ("5215512345678", "5512345678"),
    ("0052 55 1234 5678", "5512345678"), ("+1 (212) 555-0100", "2125550100"),
    ("1234 5678", "12345678"), ("55.1234.5678", "5512345678"), ("91000001", "91000001"),
])
def test_phone_query_is_the_national_digits(typed, digits):
    assert phone_query(typed) == digits


@pytest.mark.parametrize("typed", ["GUTIERREZ", "CTA-7", "55 12 AB", "pedro.puga", "", "+"])
def test_phone_query_refuses_what_is_not_a_number(typed):
    assert phone_query(typed) is None


def _sql(q: str) -> str:
    return str(_debtor_ids_matching(q).compile(dialect=postgresql.dialect(),
                                               compile_kwargs={"literal_binds": True})
               ).replace("%%", "%")


def test_each_name_word_is_matched_on_the_normalised_name():
    sql = _sql("Rodolfo Cisneros")
    assert "portfolio.search_text(portfolio.debtors.name) LIKE portfolio.search_text('%rodolfo%')" \
        in sql
    assert "portfolio.search_text('%cisneros%')" in sql
    assert "emails" not in sql          # two words are no e-mail address


def test_short_words_never_ask_the_trigram_index():
    sql = _sql("maria de la cruz")
    assert "LIKE portfolio.search_text('%de%')" not in sql
    assert "strpos(portfolio.search_text(portfolio.debtors.name), " \
           "portfolio.search_text('de')) > 0" in sql


def test_like_wildcards_typed_are_literal():
    assert "'%50\\%%'" in _sql("50% ABC")


def test_one_word_is_also_an_email_prefix():
    assert "portfolio.emails.address LIKE 'pedro.puga' || '%'" in _sql("Pedro.Puga")


def test_a_local_number_is_also_matched_at_the_end():
    sql = _sql("1234-5678")
    assert "reverse(portfolio.phones.number) LIKE '87654321' || '%'" in sql
    assert "reverse" not in _sql("5512345678")   # a whole number: its prefix is enough
