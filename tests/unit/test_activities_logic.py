"""Pure logic of the activities service: the hash chain's canonical hashing, the
iCalendar text (escaping and RFC 5545 folding) and the input schemas' refusals."""
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from activities import chain, ics, promises
from activities.contracts import ActivityWrite, DisputeResolve, ProductivityQuery
from recaudo_common.errors import InvalidInput
from recaudo_common.validation import load

T0 = datetime(2026, 3, 4, 17, 30, 12, 345678, tzinfo=timezone.utc)


def entry(**changes):
    base = {"account_id": 7, "seq": 1, "institution_id": 1, "debtor_id": 70, "agent_id": 3,
            "logged_by": 3, "queue_id": None, "kind": "call", "direction": "outbound",
            "phone": "5512345678", "email": None, "address": None, "started_at": T0,
            "ended_at": T0 + timedelta(minutes=3), "result_code_id": 2, "result_code": "PP",
            "contact_made": True, "description": "Promete pagar el viernes; ñandú",
            "details": {"promise": {"amount": "1500.00"}}, "corrects_id": None,
            "idempotency_key": "k1", "recorded_at": T0 + timedelta(minutes=4)}
    base.update(changes)
    return base


# --- the hash chain --------------------------------------------------------------------

def test_the_hash_is_deterministic_and_independent_of_the_time_zone_shown():
    local = ZoneInfo("America/Mexico_City")
    same = entry(started_at=T0.astimezone(local), ended_at=(T0 + timedelta(minutes=3)).astimezone(local))
    assert chain.entry_hash(chain.GENESIS, entry()) == chain.entry_hash(chain.GENESIS, same)
    assert len(chain.entry_hash(chain.GENESIS, entry())) == 64


@pytest.mark.parametrize("field,value", [
    ("description", "Promete pagar el sábado; ñandú"), ("result_code", "NC"), ("agent_id", 4),
    ("started_at", T0 + timedelta(microseconds=1)), ("details", {"promise": {"amount": "1500.01"}}),
    ("seq", 2), ("phone", None), ("corrects_id", 1)])
def test_changing_any_hashed_field_changes_the_hash(field, value):
    assert chain.entry_hash(chain.GENESIS, entry()) != chain.entry_hash(chain.GENESIS,
                                                                         entry(**{field: value}))


def test_each_link_depends_on_the_previous_hash():
    first = chain.entry_hash(chain.GENESIS, entry())
    assert chain.entry_hash(first, entry(seq=2)) != chain.entry_hash(chain.GENESIS, entry(seq=2))


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        chain.entry_hash(chain.GENESIS, entry(started_at=datetime(2026, 1, 1)))


# --- iCalendar ---------------------------------------------------------------------------

def test_text_values_are_escaped():
    assert ics.escape("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"


def test_long_lines_fold_at_75_octets_without_splitting_characters():
    line = "DESCRIPTION:" + "ñ" * 100
    folded = ics.fold(line)
    parts = folded.split("\r\n")
    assert all(len(p.encode()) <= 75 for p in parts)
    assert all(p.startswith(" ") for p in parts[1:])
    assert "".join([parts[0]] + [p[1:] for p in parts[1:]]) == line


def test_a_calendar_is_valid_rfc5545_text():
    due = datetime(2026, 3, 5, 16, 0, tzinfo=timezone.utc)
    text = ics.calendar("Agenda", [{"id": 9, "kind": "callback", "due_at": due, "account_id": 7,
                                    "note": "Llamar, después de las 4; " + "x" * 120}], now=T0)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")[:-1]
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    assert "VERSION:2.0" in lines and "UID:agenda-9@recaudo" in lines
    assert "DTSTART:20260305T160000Z" in lines and "DTEND:20260305T161500Z" in lines
    assert "DTSTAMP:20260304T173012Z" in lines
    assert all(len(line.encode()) <= 75 for line in lines)
    unfolded = text.replace("\r\n ", "")
    assert "DESCRIPTION:Llamar\\, después de las 4\\; " + "x" * 120 in unfolded
    assert unfolded.count("BEGIN:VEVENT") == unfolded.count("END:VEVENT") == 1


# --- input validation ----------------------------------------------------------------------

def activity(**changes):
    data = {"account_id": 1, "kind": "call", "started_at": "2026-03-04T10:00:00-06:00",
            "ended_at": "2026-03-04T10:05:00-06:00", "result_code": "CT", "description": "ok"}
    data.update(changes)
    return data


def refusal(schema, data) -> dict:
    with pytest.raises(InvalidInput) as err:
        load(schema, data)
    return err.value.fields


def test_a_valid_activity_loads():
    loaded = load(ActivityWrite(), activity(promise={"amount": "1500.50", "due_date": "2026-03-10"}))
    assert loaded["promise"]["amount"] == Decimal("1500.50") and loaded["direction"] == "outbound"


def test_end_before_start_names_ended_at():
    assert "ended_at" in refusal(ActivityWrite(), activity(ended_at="2026-03-04T09:59:00-06:00"))


def test_a_description_over_4000_characters_names_description():
    assert "description" in refusal(ActivityWrite(), activity(description="x" * (1024 * 1024)))
    load(ActivityWrite(), activity(description="x" * 4000))


def test_a_result_is_required_except_for_notes():
    assert "result_code" in refusal(ActivityWrite(), activity(result_code=None))
    load(ActivityWrite(), activity(kind="note", result_code=None))


@pytest.mark.parametrize("amount", ["0", "-5", "10.001", "NaN", "1e15"])
def test_bad_promise_amounts_are_refused(amount):
    problems = refusal(ActivityWrite(), activity(promise={"amount": amount, "due_date": "2026-03-10"}))
    assert "amount" in problems["promise"]


def test_a_plan_needs_increasing_dates_and_a_matching_total():
    plan = [{"due_date": "2026-03-10", "amount": "100.00"}, {"due_date": "2026-03-10", "amount": "50"}]
    assert "instalments" in refusal(ActivityWrite(), activity(promise={"instalments": plan}))["promise"]
    plan[1]["due_date"] = "2026-04-10"
    assert "amount" in refusal(ActivityWrite(), activity(promise={"instalments": plan,
                                                                 "amount": "999"}))["promise"]
    loaded = load(ActivityWrite(), activity(promise={"instalments": plan, "amount": "150.00"}))
    assert len(loaded["promise"]["instalments"]) == 2


def test_promise_dates_before_the_institutions_today_are_refused():
    today = date(2026, 3, 4)
    with pytest.raises(InvalidInput) as err:
        promises.plan_of({"amount": Decimal("10"), "due_date": date(2026, 3, 3)}, today)
    assert "due_date" in err.value.fields["promise"]
    plan = promises.plan_of({"instalments": [{"due_date": today, "amount": Decimal("5")},
                                             {"due_date": date(2026, 4, 4), "amount": Decimal("5")}]},
                            today)
    assert [p["number"] for p in plan] == [1, 2]
    assert promises.plan_details(plan)["amount"] == "10"


def test_a_corrected_balance_goes_only_with_its_outcome():
    assert "corrected_balance" in refusal(DisputeResolve(), {"outcome": "corrected_balance",
                                                             "note": "x"})
    assert "corrected_balance" in refusal(DisputeResolve(), {"outcome": "cancelled", "note": "x",
                                                             "corrected_balance": "10.00"})
    assert load(DisputeResolve(), {"outcome": "corrected_balance", "note": "x",
                                   "corrected_balance": "10.50"})["corrected_balance"] == Decimal("10.50")


def test_productivity_ranges_are_bounded():
    assert "date_to" in refusal(ProductivityQuery(), {"date_from": "2026-03-04", "date_to": "2026-03-01"})
    assert load(ProductivityQuery(), {"date_from": "2026-03-01", "date_to": "2026-03-04"})["group_by"] == ["agent"]


# --- the demo's past (issue 19: no false zeros right after make up) ----------------------------

def _demo_history(institution_id: int = 2):
    """The demo seed's drafting state without a database (only what ``_dispute`` reads)."""
    import random

    from activities import seed
    from recaudo_common import demo

    history = object.__new__(seed._History)
    history.institution_id = institution_id
    history.rnd = random.Random(7)
    history.zone = ZoneInfo(demo.ZONE)
    history.now = datetime.now(timezone.utc)
    history.today = history.now.astimezone(history.zone).date()
    history.open_disputes, history.disputes, history.balances = set(), [], {}
    return history


def test_the_demo_disputes_are_resolved_up_to_now_by_every_outcome():
    history = _demo_history()
    for n in range(300):
        account = {"account_id": n, "debtor_id": n, "balance": "12000.00"}
        history._dispute(account, 3, history.today - timedelta(days=n % 90))
    resolved = [d for d in history.disputes if d.state == "resolved"]
    assert all(d.opened_at < d.resolved_at <= history.now for d in resolved)
    # within the reports' default ranges (the month so far, the last 30 days) there are some
    recent = [d for d in resolved if (history.today - d.resolved_at.astimezone(
        history.zone).date()).days <= 3]
    assert recent
    assert {d.outcome for d in resolved} == {"confirmed_debt", "corrected_balance", "cancelled"}
    assert all((d.corrected_balance is not None) == (d.outcome == "corrected_balance")
               for d in resolved)
    assert all(Decimal("0") < d.corrected_balance < Decimal("12000.00")
               for d in resolved if d.corrected_balance is not None)
    assert any(d.state == "open" and d.due_date < history.today for d in history.disputes)


def test_the_demo_pays_some_promises_not_due_yet_today():
    history = _demo_history()
    account = {"account_id": 1}
    plan = [{"number": 1, "due_date": history.today + timedelta(days=3),
             "amount": Decimal("500.00")}]
    paid = [history._maybe_paid(account, plan, history.today - timedelta(days=1))
            for _ in range(200)]
    today = [p for p in paid if p]
    assert today and all(p == [{"account_id": 1, "institution_id": 2, "amount": Decimal("500.00"),
                                "number": 1, "value_date": history.today}] for p in today)
    assert len(today) < len(paid)


@pytest.mark.parametrize("institution_id", (1, 2, 3))
def test_the_demo_payments_are_written_in_the_institutions_layout_format(institution_id):
    """What ``seed-live`` uploads through each demo payments layout: the layout's headers,
    encoding, delimiter, date format and decimal separator (XLSX: real dates and numbers)."""
    import csv
    import io

    import openpyxl

    from activities.seed import _payments_file
    from portfolio.seed import DEMO_LAYOUTS

    [layout] = [v for i, _, _, v in DEMO_LAYOUTS if i == institution_id and v["kind"] == "payments"]
    columns = layout["columns"]
    header = [columns[c] for c in ("account_number", "amount", "value_date", "reference")]
    day = date(2026, 11, 30)
    content = _payments_file(layout, [("CTA-1", Decimal("1234.50"), day, "DEMO-1-1")])
    if layout["file_format"] == "xlsx":
        rows = list(openpyxl.load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True))
        assert rows[0] == tuple(header)
        assert rows[1][0] == "CTA-1" and rows[1][1] == 1234.5 and rows[1][2].date() == day
        return
    rows = list(csv.reader(io.StringIO(content.decode(layout["encoding"])),
                           delimiter=layout["delimiter"]))
    assert rows == [header, ["CTA-1", "1234.50".replace(".", layout["decimal_separator"]),
                             day.strftime(layout["date_format"]), "DEMO-1-1"]]
