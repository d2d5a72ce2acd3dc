"""The free-text search of "Ver cartera" as Spanish speakers type, through the real
PortfolioService on the real broker and database: accents and case ignored, names in any
word order, e-mail prefixes without "@", phones in any common format (issue 18, item 2)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from portfolio.service import PortfolioService
from recaudo_common.identity import Identity, sign

INST, OTHER = 7201, 7202
BASE = 720_100_000
READER = Identity(user_id=51, username="buscadora", profile="Supervisor",
                  permissions=frozenset({"portfolio.read", "portfolio.read_all"}),
                  institutions=(INST,))

#: (customer number, name, phones, emails) of institution INST
DEBTORS = [
    ("S-1", "GUTIÉRREZ LÓPEZ ANA", ["5512345678"], ["ana.gutierrez@correo.mx"]),
    ("S-2", "MUÑOZ PÉREZ JUAN", ["3398765432"], []),
    ("S-3", "CISNEROS RODOLFO", ["8111112222"], []),
    ("S-4", "RODOLFO MARTÍNEZ LUIS", ["2221234567"], []),
    ("S-5", "PUGA SALAS PEDRO", ["6641239876"], ["pedro.puga10@hotmail.com"]),
    ("S-6", "DE LA CRUZ NÚÑEZ MARÍA", ["9991234567"], []),
]


def _remove(conn):
    for inst in (INST, OTHER):
        conn.execute(text("DELETE FROM portfolio.accounts WHERE institution_id = :i"), {"i": inst})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE institution_id = :i"), {"i": inst})
        conn.execute(text("DELETE FROM portfolio.institutions WHERE id = :i"), {"i": inst})


@pytest.fixture(scope="module")
def debtors(engine):
    """The debtors above with an account each, and a GUTIÉRREZ of another institution the
    reader may not see."""
    rows = DEBTORS + [("X-1", "GUTIÉRREZ OTRA PERSONA", ["5512345678"], [])]
    with engine.begin() as conn:
        _remove(conn)
        for inst in (INST, OTHER):
            conn.execute(text("INSERT INTO portfolio.institutions (id, code, name) "
                              "VALUES (:i, :c, :n)"),
                         {"i": inst, "c": f"BUS{inst}", "n": f"Búsqueda {inst}"})
        for n, (customer, name, phones, emails) in enumerate(rows, start=1):
            inst = OTHER if customer.startswith("X") else INST
            conn.execute(text("INSERT INTO portfolio.debtors (id, institution_id, "
                              "customer_number, name) VALUES (:id, :i, :c, :n)"),
                         {"id": BASE + n, "i": inst, "c": customer, "n": name})
            conn.execute(text("INSERT INTO portfolio.accounts (id, institution_id, debtor_id, "
                              "account_number, balance) VALUES (:id, :i, :id, :a, 1000)"),
                         {"id": BASE + n, "i": inst, "a": f"CTA-{customer}"})
            for number in phones:
                conn.execute(text("INSERT INTO portfolio.phones (debtor_id, number) "
                                  "VALUES (:d, :n)"), {"d": BASE + n, "n": number})
            for address in emails:
                conn.execute(text("INSERT INTO portfolio.emails (debtor_id, address) "
                                  "VALUES (:d, :a)"), {"d": BASE + n, "a": address})
    yield
    with engine.begin() as conn:
        _remove(conn)


@pytest.fixture
def portfolio(debtors, container_factory, rabbit_config, rpc_proxy):
    container_factory(PortfolioService, rabbit_config).start()
    return rpc_proxy({"identity": sign(READER)}).portfolio


def found(portfolio, q) -> list[str]:
    return sorted(item["customer_number"] for item in portfolio.list_accounts({"q": q})["items"])


@pytest.mark.parametrize("q", ["GUTIERREZ", "gutierrez", "Gutiérrez", "gutiérrez lopez"])
def test_names_ignore_accents_and_case(portfolio, q):
    assert found(portfolio, q) == ["S-1"]


def test_an_enye_typed_as_n(portfolio):
    assert found(portfolio, "MUNOZ") == ["S-2"]
    assert found(portfolio, "munoz perez") == ["S-2"]
    assert found(portfolio, "NUNEZ") == ["S-6"]


def test_names_in_any_word_order_each_word_matching(portfolio):
    assert found(portfolio, "Rodolfo Cisneros") == ["S-3"]
    assert found(portfolio, "CISNEROS RODOLFO") == ["S-3"]
    assert found(portfolio, "rodolfo") == ["S-3", "S-4"]
    # every word must match: a word no name holds finds nothing
    assert found(portfolio, "Rodolfo Cisneros Zapata") == []
    # short words narrow what the long ones found
    assert found(portfolio, "maria de la cruz") == ["S-6"]
    assert found(portfolio, "maria de la puga") == []


def test_email_prefix_without_at(portfolio):
    assert found(portfolio, "pedro.puga") == ["S-5"]
    assert found(portfolio, "PEDRO.PUGA10") == ["S-5"]
    assert found(portfolio, "pedro.puga10@") == ["S-5"]
    assert found(portfolio, "ana.gutierrez@correo") == ["S-1"]


@pytest.mark.parametrize("q", ["+52 55 1234 5678", "(55) 1234-5678", "5512345678",
                               "55 1234 5678", "55-1234-5678", "+52 1 55 1234 5678",
                               "525512345678", "1234 5678", "1234-5678", "551234"])
def test_phones_in_any_common_format(portfolio, q):
    assert found(portfolio, q) == ["S-1"]


def test_numbers_and_codes_still_match_exactly(portfolio):
    assert found(portfolio, "S-4") == ["S-4"]
    assert found(portfolio, "CTA-S-2") == ["S-2"]
    assert found(portfolio, "12345") == []          # 5 digits: a prefix only, of none
    assert found(portfolio, "GU") == []             # too short for a name
