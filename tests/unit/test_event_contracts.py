"""Event contracts: the bulk rows of ``accounts_changed`` are checked as a nested schema
would check them, in one pass of plain type tests."""
from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from marshmallow import ValidationError

from recaudo_common.contracts import AccountsChanged, AssignmentsChanged


def facts(n: int = 1, **changes) -> list[dict]:
    row = {"account_id": 1, "institution_id": 1, "debtor_id": 7, "stage": "delinquent",
           "status_id": None, "days_past_due": 45, "balance": Decimal("1200.50"),
           "overdue_amount": Decimal("300.00"), "product": "Tarjeta", "state": "Jalisco",
           "time_zone": "America/Mexico_City", "next_due_date": date(2026, 12, 15),
           "do_not_contact": False}
    return [{**row, "account_id": i + 1, **changes} for i in range(n)]


def wire(rows: list[dict]) -> dict:
    """The event as the outbox sends it."""
    return AccountsChanged().dump({"event_id": uuid.uuid4(),
                                   "occurred_at": datetime.now(timezone.utc), "accounts": rows})


def test_facts_go_out_as_text_and_come_back_as_sent():
    sent = wire(facts(3))
    assert sent["accounts"][0]["balance"] == "1200.50"
    assert sent["accounts"][0]["next_due_date"] == "2026-12-15"
    assert AccountsChanged().load(sent)["accounts"] == sent["accounts"]


def test_optional_columns_may_be_absent():
    sent = wire(facts())
    for name in ("state", "time_zone", "next_due_date", "do_not_contact"):
        del sent["accounts"][0][name]
    AccountsChanged().load(sent)


@pytest.mark.parametrize("column, value, problem", [
    ("account_id", "1", "int"), ("account_id", True, "int"), ("balance", "mucho", "decimal"),
    ("balance", "NaN", "decimal"), ("next_due_date", "2026-13-01", "date"),
    ("do_not_contact", "no", "bool"), ("stage", None, "nulo"), ("product", 3, "str")])
def test_a_bad_row_is_refused_naming_its_index_and_column(column, value, problem):
    sent = wire(facts(3))
    sent["accounts"][2][column] = value
    with pytest.raises(ValidationError) as refused:
        AccountsChanged().load(sent)
    message = refused.value.messages["accounts"][2][column][0]
    assert problem in message


def test_a_missing_or_unknown_column_is_refused():
    sent = wire(facts(2))
    del sent["accounts"][0]["debtor_id"]
    sent["accounts"][1]["color"] = "rojo"
    with pytest.raises(ValidationError) as refused:
        AccountsChanged().load(sent)
    assert set(refused.value.messages["accounts"]) == {0, 1}
    assert "debtor_id" in refused.value.messages["accounts"][0]
    assert "color" in refused.value.messages["accounts"][1]


def test_an_import_chunk_of_twenty_thousand_rows_loads_whole():
    assert len(AccountsChanged().load(wire(facts(20_000)))["accounts"]) == 20_000


# --- assignments_changed: two columns, or the older list of objects -----------------------

def collectors(**payload) -> dict:
    return AssignmentsChanged().dump({"event_id": uuid.uuid4(),
                                      "occurred_at": datetime.now(timezone.utc), **payload})


def test_collectors_go_out_as_two_columns_and_come_back_as_pairs():
    schema = AssignmentsChanged()
    sent = collectors(account_ids=[10, 11, 12], agent_ids=[101, None, 101])
    assert "assignments" not in sent
    assert schema.pairs(schema.load(sent)) == ([10, 11, 12], [101, None, 101])


def test_collectors_in_the_older_form_still_load():
    schema = AssignmentsChanged()
    sent = collectors(assignments=[{"account_id": 10, "agent_id": 101},
                                   {"account_id": 11, "agent_id": None}])
    assert schema.pairs(schema.load(sent)) == ([10, 11], [101, None])


@pytest.mark.parametrize("payload", [
    {"account_ids": [1, 2], "agent_ids": [5]},                 # columns of unequal length
    {"account_ids": [1, None], "agent_ids": [5, 5]},           # an account must be named
    {"account_ids": [1, "2"], "agent_ids": [5, 5]},            # ids are integers
    {"account_ids": [1, True], "agent_ids": [5, 5]},           # not booleans
    {"account_ids": [1]},                                      # half of the pairs
    {},                                                        # nothing at all
    {"account_ids": [1], "agent_ids": [5],
     "assignments": [{"account_id": 1, "agent_id": 5}]},       # both forms
])
def test_a_bad_collector_batch_is_refused(payload):
    sent = collectors()
    sent.update(payload)
    with pytest.raises(ValidationError):
        AssignmentsChanged().load(sent)


def test_a_million_collectors_load_fast():
    sent = collectors(account_ids=list(range(1_000_000)), agent_ids=[7] * 1_000_000)
    started = time.perf_counter()
    AssignmentsChanged().load(sent)
    assert time.perf_counter() - started < 1.0
