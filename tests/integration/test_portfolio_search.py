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


# --- the caller's scope: the same rows whichever way the clause is written ---------------

COLLECTOR, COLLEAGUE, TEAM_LEAD = 71, 72, 73
READ_ONLY = frozenset({"portfolio.read"})


def _scoped(user_id, team=()):
    return Identity(user_id=user_id, username=f"u{user_id}", profile="Gestor",
                    permissions=READ_ONLY, institutions=(INST, OTHER), team=team)


@pytest.fixture
def assigned(debtors, engine):
    """In INST: S-1 assigned to COLLECTOR, S-2 with COLLECTOR as its lawyer, S-3 a callback
    COLLECTOR holds, S-4 a callback COLLECTOR held (done: it opens nothing), S-5 assigned
    to COLLEAGUE, S-6 nobody's; X-1 (OTHER) assigned to COLLECTOR too."""
    ids = {customer: BASE + n for n, (customer, *_) in
           enumerate(DEBTORS + [("X-1",)], start=1)}
    with engine.begin() as conn:
        for customer, agent, lawyer in (("S-1", COLLECTOR, None), ("S-2", None, COLLECTOR),
                                        ("S-5", COLLEAGUE, None), ("X-1", COLLECTOR, None)):
            conn.execute(text("UPDATE portfolio.accounts SET assigned_agent_id = :a, "
                              "lawyer_id = :l WHERE id = :id"),
                         {"a": agent, "l": lawyer, "id": ids[customer]})
        for item, (customer, agent, done) in enumerate(
                (("S-3", COLLECTOR, False), ("S-4", None, True)), start=BASE):
            conn.execute(text("INSERT INTO portfolio.callback_holders (item_id, account_id, "
                              "agent_id, changed_at, done) VALUES (:i, :a, :g, now(), :d)"),
                         {"i": item, "a": ids[customer], "g": agent, "d": done})
    yield ids
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM portfolio.callback_holders WHERE item_id >= :b"),
                     {"b": BASE})
        conn.execute(text("UPDATE portfolio.accounts SET assigned_agent_id = NULL, "
                          "lawyer_id = NULL WHERE id > :b AND id < :b + 100"), {"b": BASE})


def _seen(rpc_proxy, identity, query) -> list[str]:
    page = rpc_proxy({"identity": sign(identity)}).portfolio.list_accounts(query)
    assert page["total"] == len(page["items"])
    return sorted(item["customer_number"] for item in page["items"])


@pytest.mark.parametrize("query", [{}, {"institution_id": INST}, {"sort": "name"},
                                   {"sort": "-balance", "dpd_min": 0}])
def test_a_collector_sees_assigned_lawyered_and_held_accounts_only(
        assigned, portfolio, rpc_proxy, query):
    """Assigned, as lawyer, or holding a pending callback; not a colleague's, nobody's, a
    callback done; another institution only when the identity reaches it."""
    expected = ["S-1", "S-2", "S-3"] + ([] if query.get("institution_id") else ["X-1"])
    assert _seen(rpc_proxy, _scoped(COLLECTOR), query) == expected
    only_inst = Identity(user_id=COLLECTOR, username="g", profile="Gestor",
                         permissions=READ_ONLY, institutions=(INST,))
    assert _seen(rpc_proxy, only_inst, query) == ["S-1", "S-2", "S-3"]
    assert _seen(rpc_proxy, _scoped(COLLEAGUE), query) == ["S-5"]
    assert _seen(rpc_proxy, _scoped(TEAM_LEAD, team=(COLLEAGUE,)), query) == ["S-5"]
    assert _seen(rpc_proxy, _scoped(TEAM_LEAD, team=(COLLECTOR, COLLEAGUE)), query) == \
        ["S-1", "S-2", "S-3", "S-5", "X-1"][:5 if not query.get("institution_id") else 4]
    assert _seen(rpc_proxy, _scoped(99), query) == []


@pytest.mark.parametrize("q, expected", [("gutierrez", ["S-1", "X-1"]), ("munoz", ["S-2"]),
                                         ("cisneros", ["S-3"]), ("rodolfo", ["S-3"]),
                                         ("puga", []), ("5512345678", ["S-1", "X-1"]),
                                         ("CTA-S-4", [])])
def test_a_collectors_search_keeps_to_their_scope(assigned, portfolio, rpc_proxy, q, expected):
    assert _seen(rpc_proxy, _scoped(COLLECTOR), {"q": q}) == expected
    assert _seen(rpc_proxy, _scoped(COLLEAGUE), {"q": q}) == (["S-5"] if q == "puga" else [])


def test_the_scope_is_answered_by_indexes(assigned, engine):
    """A collector's accounts come from the agent's, the lawyer's and the primary key's
    indexes combined (BitmapOr): a sub-select inside the OR made the scope a filter over
    every account the other conditions left (the whole portfolio for "Ver cartera")."""
    from sqlalchemy import func, select

    from portfolio.models import Account
    from portfolio.scope import account_clause

    everywhere = Identity(user_id=COLLECTOR, username="g", profile="Gestor",
                          permissions=READ_ONLY, institutions=None)   # no institution index
    statement = select(func.count()).select_from(Account).where(account_clause(everywhere))
    sql = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))   # a few rows: force the choice
        plan = conn.execute(text(f"EXPLAIN {sql}")).scalars().all()
    assert any("BitmapOr" in line for line in plan), "\n".join(plan)
    assert not any("SubPlan" in line for line in plan), "\n".join(plan)
