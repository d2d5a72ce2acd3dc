"""Strategy conditions and sort orders (queues.rules): validation of every field kind and
operator, good and bad, and the SQL each operator compiles to. The same operators are
run against PostgreSQL and compared with a Python filter in
tests/integration/test_queues.py."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from queues import contracts, rules
from queues.contracts import QueueWrite, StrategyWrite
from queues.models import AccountFacts

DIALECT = postgresql.dialect()


def sql(expression) -> str:
    """The expression as PostgreSQL text with the values inlined (for asserting shape)."""
    return str(expression.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True}))


def leaf(field, op, value=None, **extra):
    node = {"field": field, "op": op, **extra}
    if value is not None:
        node["value"] = value
    return node


def problems_of(node) -> list[str]:
    """The problems of one leaf wrapped in a group (flattened)."""
    return [p for ps in contracts.condition_problems({"all": [node]}).values() for p in ps]


# --- validation: good conditions ------------------------------------------------------

FIELDS_BY_KIND = {kind: [n for n, f in contracts.FIELDS.items() if f.kind == kind]
                  for kind in ("int", "money", "text", "bool")}

GOOD_VALUES = {"int": (5, "5", 0, -3), "money": ("1500.50", 1500, "0", 12.5),
               "text": ("Tarjeta de crédito",), "bool": (True, False)}


def test_every_field_has_a_known_kind_and_every_kind_is_covered():
    assert {f.kind for f in contracts.FIELDS.values()} == set(FIELDS_BY_KIND)
    assert all(FIELDS_BY_KIND.values())


@pytest.mark.parametrize("kind", ["int", "money"])
@pytest.mark.parametrize("op", ["eq", "ne", "lt", "lte", "gt", "gte"])
def test_numeric_fields_take_every_comparison(kind, op):
    for name in FIELDS_BY_KIND[kind]:
        for value in GOOD_VALUES[kind]:
            assert contracts.condition_problems(leaf(name, op, value)) == {}, (name, op, value)


@pytest.mark.parametrize("kind", ["int", "money"])
def test_numeric_fields_take_between_in_and_not_in(kind):
    low, high = ("1", "10") if kind == "int" else ("100.00", "2500.5")
    for name in FIELDS_BY_KIND[kind]:
        assert contracts.condition_problems(leaf(name, "between", [low, high])) == {}
        assert contracts.condition_problems(leaf(name, "between", [low, low])) == {}  # a one-point range
        assert contracts.condition_problems(leaf(name, "in", [low, high])) == {}
        assert contracts.condition_problems(leaf(name, "not_in", [low])) == {}


@pytest.mark.parametrize("op", ["eq", "ne", "in", "not_in"])
def test_text_fields_take_equality_and_lists(op):
    for name in FIELDS_BY_KIND["text"]:
        field = contracts.FIELDS[name]
        value = field.choices[0] if field.choices else "algo"
        node = leaf(name, op, [value] if op in ("in", "not_in") else value)
        assert contracts.condition_problems(node) == {}, node


@pytest.mark.parametrize("op", ["eq", "ne"])
def test_bool_fields_take_equality(op):
    for name in FIELDS_BY_KIND["bool"]:
        for value in (True, False):
            assert contracts.condition_problems(leaf(name, op, value)) == {}


@pytest.mark.parametrize("op", ["is_set", "is_not_set"])
def test_every_field_takes_is_set_without_a_value(op):
    for name in contracts.FIELDS:
        assert contracts.condition_problems(leaf(name, op)) == {}
        assert contracts.condition_problems({"field": name, "op": op, "value": None}) == {}


def test_stage_accepts_each_of_its_choices():
    for stage in ("current", "delinquent", "litigation"):
        assert contracts.condition_problems(leaf("stage", "eq", stage)) == {}
    assert contracts.condition_problems(leaf("stage", "in", ["current", "litigation"])) == {}


def test_nested_groups_up_to_the_depth_limit_are_valid():
    node = leaf("days_past_due", "gt", 30)
    for depth in range(contracts.MAX_DEPTH):
        node = {"any" if depth % 2 else "all": [node, leaf("balance", "gte", 1)]}
    assert contracts.condition_problems(node) == {}
    assert contracts.condition_problems({"all": []}) == {} and contracts.condition_problems({"any": []}) == {}


def test_exactly_the_leaf_limit_is_valid():
    tree = {"all": [leaf("days_past_due", "gte", i) for i in range(contracts.MAX_LEAVES)]}
    assert contracts.condition_problems(tree) == {}


# --- validation: bad conditions ---------------------------------------------------------

@pytest.mark.parametrize("node, expected", [
    (leaf("saldo_total", "eq", 1), "campo desconocido"),
    (leaf(None, "eq", 1), "campo desconocido"),
    ({"op": "eq", "value": 1}, "campo desconocido"),
    (leaf("balance", "like", "1"), "operador desconocido"),
    (leaf("balance", None, "1"), "operador desconocido"),
    ({"field": "balance", "value": 1}, "operador desconocido"),
    # unhashable field or operator names are refused, not a crash
    (leaf(["balance"], "eq", 1), "campo desconocido"),
    (leaf("balance", ["eq"], 1), "operador desconocido"),
    (leaf("balance", {"eq": 1}, 1), "operador desconocido"),
])
def test_unknown_fields_and_operators(node, expected):
    problems = problems_of(node)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize("node", [
    leaf("days_past_due", "eq", "treinta"),
    leaf("days_past_due", "eq", 30.5),
    leaf("days_past_due", "eq", True),          # a bool is not a number here
    leaf("days_past_due", "eq", [30]),
    leaf("status_id", "in", [1, "x"]),
    leaf("days_to_next_due", "lte", {"days": 5}),
    leaf("balance", "gt", "mucho"),
    leaf("balance", "gt", True),
    leaf("balance", "gt", [1]),
    leaf("balance", "gt", "NaN"),                # not a finite amount
    leaf("balance", "gt", "Infinity"),
    leaf("overdue_amount", "between", ["1", "sNaN"]),
    leaf("balance", "between", ["NaN", "10"]),
    leaf("open_dispute", "eq", "true"),
    leaf("open_dispute", "eq", 1),
    leaf("product", "eq", 7),
    leaf("product", "eq", ""),
    leaf("product", "eq", "x" * 101),
    leaf("stage", "eq", "moroso"),               # not one of the stage's choices
    leaf("stage", "in", ["current", "vencida"]),
    leaf("days_past_due", "eq"),                 # value missing
])
def test_wrong_types_are_refused(node):
    problems = problems_of(node)
    assert problems, node
    assert any("valor" in p or "valores permitidos" in p for p in problems), problems


@pytest.mark.parametrize("value", [[1, 2, 3], [1], [], 5, "1-5", None])
def test_between_needs_exactly_two_values(value):
    node = {"field": "days_past_due", "op": "between", "value": value}
    problems = problems_of(node)
    assert problems == ["entre requiere dos valores [desde, hasta]"], problems


def test_between_refuses_a_reversed_range():
    assert problems_of(leaf("balance", "between", ["10", "1"])) == [
        "el inicio del rango es mayor que el final"]


@pytest.mark.parametrize("value", [[], list(range(101)), "1,2", 3])
def test_lists_take_one_to_a_hundred_values(value):
    for op in ("in", "not_in"):
        problems = problems_of({"field": "status_id", "op": op, "value": value})
        assert problems == ["la lista requiere de 1 a 100 valores"], (op, value, problems)
    assert problems_of(leaf("status_id", "in", list(range(100)))) == []


@pytest.mark.parametrize("op", ["lt", "lte", "gt", "gte", "between"])
@pytest.mark.parametrize("name", ["stage", "product", "state", "open_promise", "do_not_contact"])
def test_ordered_operators_do_not_apply_to_text_or_bool(name, op):
    value = ["a", "b"] if op == "between" else "a"
    problems = problems_of(leaf(name, op, value))
    assert problems == [f"el operador {op} no aplica a {name}"], problems


def test_is_set_takes_no_value():
    assert problems_of(leaf("callback", "is_set")) == ["campo desconocido: 'callback'"]
    assert problems_of(leaf("state", "is_set", "Jalisco")) == ["no lleva valor"]


def test_too_deep():
    node = leaf("days_past_due", "gt", 30)
    for _ in range(contracts.MAX_DEPTH + 1):
        node = {"all": [node]}
    problems = contracts.condition_problems(node)
    assert list(problems.values()) == [[f"más de {contracts.MAX_DEPTH} niveles de anidación"]]
    (path,) = problems
    assert path == "conditions" + ".all[0]" * (contracts.MAX_DEPTH + 1)


def test_too_many_leaves():
    tree = {"any": [leaf("days_past_due", "gte", i) for i in range(contracts.MAX_LEAVES + 2)]}
    problems = contracts.condition_problems(tree)
    assert problems == {f"conditions.any[{i}]": [f"más de {contracts.MAX_LEAVES} condiciones"]
                        for i in (contracts.MAX_LEAVES, contracts.MAX_LEAVES + 1)}


def test_leaves_are_counted_across_nested_groups():
    half = contracts.MAX_LEAVES // 2 + 1
    tree = {"all": [{"any": [leaf("balance", "gt", i) for i in range(half)]},
                    {"any": [leaf("balance", "lt", i) for i in range(half)]}]}
    assert contracts.condition_problems(tree)


@pytest.mark.parametrize("node, expected", [
    (leaf("balance", "gt", 1, label="x"), "claves desconocidas: label"),
    ({"field": "balance", "op": "gt", "value": 1, "or": [], "not": 1},
     "claves desconocidas: not, or"),
    ({"all": [], "any": []}, 'un grupo es {"all": [...]} o {"any": [...]}'),
    ({"all": [], "name": "x"}, 'un grupo es {"all": [...]} o {"any": [...]}'),
    ({"all": {"field": "balance"}}, 'un grupo es {"all": [...]} o {"any": [...]}'),
    ("balance > 1", "se esperaba un objeto"),
    (["balance"], "se esperaba un objeto"),
    (None, "se esperaba un objeto"),
])
def test_unknown_keys_and_malformed_nodes(node, expected):
    assert problems_of(node) == [expected]


def test_every_problem_is_reported_at_once_with_its_path():
    tree = {"all": [leaf("days_past_due", "gt", 30),
                    leaf("saldo", "gt", 1),
                    {"any": [leaf("stage", "eq", "moroso"), leaf("balance", "lt", "x")]},
                    leaf("product", "gt", "a")]}
    problems = contracts.condition_problems(tree)
    assert set(problems) == {"conditions.all[1]", "conditions.all[2].any[0]",
                             "conditions.all[2].any[1]", "conditions.all[3]"}


def test_the_schema_turns_problems_into_field_errors():
    """QueueWrite carries the rule problems (with their paths) under "conditions"."""
    errors = QueueWrite().validate({"name": "x", "team_id": 1,
                                    "conditions": {"all": [leaf("saldo", "gt", 1)]},
                                    "sort": [{"field": "balance"}]})
    assert errors == {"conditions": ["conditions.all[0]: campo desconocido: 'saldo'"]}
    errors = QueueWrite().validate({"name": "x", "team_id": 1, "conditions": {"all": []},
                                    "sort": [{"field": "stage"}]})
    assert list(errors) == ["sort"]
    errors = StrategyWrite().validate({"institution_id": 1, "name": "x", "queues": []})
    assert errors == {"queues": ["Una estrategia lleva de 1 a 30 filas"]}


# --- compilation ------------------------------------------------------------------------

@pytest.mark.parametrize("node, expected", [
    (leaf("days_past_due", "eq", 30), "queues.account_facts.days_past_due = 30"),
    (leaf("days_past_due", "eq", "30"), "queues.account_facts.days_past_due = 30"),
    (leaf("days_past_due", "ne", 30),
     "queues.account_facts.days_past_due IS DISTINCT FROM 30"),
    (leaf("days_past_due", "lt", 30), "queues.account_facts.days_past_due < 30"),
    (leaf("days_past_due", "lte", 30), "queues.account_facts.days_past_due <= 30"),
    (leaf("days_past_due", "gt", 30), "queues.account_facts.days_past_due > 30"),
    (leaf("days_past_due", "gte", 30), "queues.account_facts.days_past_due >= 30"),
    (leaf("days_past_due", "between", [30, "60"]),
     "queues.account_facts.days_past_due BETWEEN 30 AND 60"),
    (leaf("status_id", "in", [1, "2"]), "queues.account_facts.status_id IN (1, 2)"),
    (leaf("status_id", "not_in", [1, 2]),
     "NOT coalesce(queues.account_facts.status_id IN (1, 2), false)"),
    (leaf("state", "is_set"), "queues.account_facts.state IS NOT NULL"),
    (leaf("state", "is_not_set"), "queues.account_facts.state IS NULL"),
    (leaf("balance", "gte", "1500.5"), "queues.account_facts.balance >= 1500.50"),
    (leaf("balance", "between", [100, "2500.555"]),
     "queues.account_facts.balance BETWEEN 100.00 AND 2500.56"),
    (leaf("stage", "eq", "current"), "queues.account_facts.stage = 'current'"),
    (leaf("stage", "in", ["current", "litigation"]),
     "queues.account_facts.stage IN ('current', 'litigation')"),
    (leaf("product", "ne", "Crédito PyME"),
     "queues.account_facts.product IS DISTINCT FROM 'Crédito PyME'"),
    (leaf("open_dispute", "eq", True), "queues.account_facts.open_dispute = true"),
    (leaf("do_not_contact", "ne", False),
     "queues.account_facts.do_not_contact IS DISTINCT FROM false"),
    (leaf("days_to_next_due", "lte", 5),
     "queues.account_facts.next_due_date - CURRENT_DATE <= 5"),
    (leaf("days_since_last_contact", "gt", 7),
     "CAST(EXTRACT(day FROM now() - queues.account_facts.last_contact_at) AS INTEGER) > 7"),
])
def test_each_operator_compiles_to_its_sql(node, expected):
    assert contracts.condition_problems(node) == {}
    assert sql(rules.compile_condition(node)) == expected


def test_every_operator_is_covered_above():
    covered = {"eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "not_in", "is_set",
               "is_not_set"}
    assert covered == set(contracts.OPERATORS)


def test_groups_compile_to_and_or_with_neutral_elements():
    tree = {"all": [leaf("stage", "eq", "delinquent"),
                    {"any": [leaf("days_past_due", "gt", 90), leaf("balance", "gte", 50000)]}]}
    assert sql(rules.compile_condition(tree)) == (
        "queues.account_facts.stage = 'delinquent' AND "
        "(queues.account_facts.days_past_due > 90 OR queues.account_facts.balance >= 50000.00)")
    # an empty group matches everything, whichever it is
    assert sql(rules.compile_condition({"all": []})) == "true"
    assert sql(rules.compile_condition({"any": []})) == "true"
    assert sql(rules.compile_condition({"any": [{"all": []}]})) == "true"


def test_values_are_bound_parameters_never_sql_text():
    hostile = "x'); DROP TABLE queues.assignments; --"
    compiled = rules.compile_condition(leaf("product", "eq", hostile)).compile(dialect=DIALECT)
    assert hostile not in str(compiled) and "%(" in str(compiled)
    assert list(compiled.params.values()) == [hostile]
    condition = rules.compile_condition(leaf("product", "in", [hostile, "b"]))
    compiled = condition.compile(dialect=DIALECT)
    assert hostile not in str(compiled)
    assert [hostile, "b"] in list(compiled.params.values())


def test_money_values_are_exact_decimals():
    compiled = rules.compile_condition(leaf("balance", "gt", 0.1)).compile(dialect=DIALECT)
    assert list(compiled.params.values()) == [Decimal("0.10")]


def test_a_compiled_condition_is_a_where_clause_over_account_facts():
    query = select(AccountFacts.account_id).where(
        rules.compile_condition({"all": [leaf("days_past_due", "between", [1, 30]),
                                         leaf("open_dispute", "eq", False)]}))
    text = sql(query)
    assert text.startswith("SELECT queues.account_facts.account_id \nFROM queues.account_facts")
    assert "WHERE queues.account_facts.days_past_due BETWEEN 1 AND 30 AND " \
           "queues.account_facts.open_dispute = false" in text


# --- sort orders ------------------------------------------------------------------------

@pytest.mark.parametrize("sort", [
    [{"field": "days_past_due", "direction": "desc"}],
    [{"field": "balance"}],
    [{"field": name, "direction": "asc"} for name in contracts.SORTABLE[:5]],
    [{"field": "account_id", "direction": "asc"}],
])
def test_valid_sorts(sort):
    assert contracts.sort_problems(sort) == []


@pytest.mark.parametrize("sort, bad", [
    ([], None),
    ([{"field": "balance"}] * 6, None),
    ("balance desc", None),
    (None, None),
    ([{"field": "stage"}], 0),                                   # not sortable
    ([{"field": "balance", "direction": "up"}], 0),
    ([{"field": "balance", "direction": "desc", "nulls": "first"}], 0),
    ([{"field": "balance"}, "days_past_due"], 1),
    ([{"field": "balance"}, {"field": "saldo"}, {"direction": "asc"}], 1),
])
def test_invalid_sorts(sort, bad):
    problems = contracts.sort_problems(sort)
    assert problems
    if bad is None:
        assert problems == ["indique de 1 a 5 criterios de orden"]
    else:
        assert all(p.startswith("criterio inválido") for p in problems)
        assert repr(sort[bad]) in problems[0]


def test_compile_sort_defaults_to_descending_nulls_last_and_breaks_ties_by_account():
    order = rules.compile_sort([{"field": "days_past_due"},
                                {"field": "balance", "direction": "asc"},
                                {"field": "days_to_next_due", "direction": "asc"}])
    assert [sql(o) for o in order] == [
        "queues.account_facts.days_past_due DESC NULLS LAST",
        "queues.account_facts.balance ASC NULLS LAST",
        "queues.account_facts.next_due_date - CURRENT_DATE ASC NULLS LAST",
        "queues.account_facts.account_id ASC",
    ]


def test_compile_sort_by_every_sortable_field():
    for name in contracts.SORTABLE:
        for direction in ("asc", "desc"):
            order = rules.compile_sort([{"field": name, "direction": direction}])
            assert len(order) == 2 and sql(order[0]).endswith(f"{direction.upper()} NULLS LAST")
    assert sql(rules.compile_sort([{"field": "days_since_last_contact"}])[0]).startswith(
        "CAST(EXTRACT(day FROM now() - queues.account_facts.last_contact_at)")
