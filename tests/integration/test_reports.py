"""The reports' figures on a small fixed data set, computed by hand below, through the real
services over RabbitMQ and the real database: productivity, promises and disputes
(activities), aging and roll rates (portfolio), recovery and champion vs challenger
(queues). Also: each report refuses another institution (404, like missing) and a
caller without ``reports.view`` (403), and unknown filter values name the field.

The data live in institutions 9101 and 9102 (made here, removed after) with ids far from
anything else, so the suite can share the database with others. Productivity and
promise figures are written into the rollup the activities service keeps (its
equality with the raw log is ``test_activities``' business); aging snapshots are
written as the daily snapshot writes them and the rollups are rebuilt by the RPC;
payments reach the queues service as ``payment_received`` events through the broker.
"""
from __future__ import annotations

import base64
import io
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import text
from sqlalchemy.orm import Session

from activities.models import Base as ActivitiesBase
from activities.service import ActivitiesService
from portfolio.models import Base as PortfolioBase
from portfolio.service import PortfolioService
from queues import reports as queue_reports
from queues.models import Base as QueuesBase
from queues.service import QueuesService
from recaudo_common import contracts
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign

from .helpers import fire_together, record, sql, wait_for

I1, I2 = 9101, 9102
A1, A2, OTHER = 9111, 9112, 9113
TEAM = 9191
Q11, Q12, Q21 = 910011, 910012, 910021
S_CHAMP, S_CHALL = 910001, 910002
ACC = 910100          # portfolio account ids ACC + n
ACT = 910_000_000     # dummy activity / account ids for promises and disputes


class QuietPortfolio(PortfolioService):
    db = Database(PortfolioBase, relay=False)


class QuietActivities(ActivitiesService):
    db = Database(ActivitiesBase, relay=False)


class QuietQueues(QueuesService):
    db = Database(QueuesBase, relay=False)


def identity(user_id, permissions, institutions, team=()):
    return {"identity": sign(Identity(user_id=user_id, username=f"u{user_id}", profile="x",
                                      permissions=frozenset(permissions),
                                      institutions=institutions, team=tuple(team)))}


REPORTS = {"reports.view"}
CLIENTE = {"portfolio.read", "portfolio.read_all", "activities.read", "documents.read",
           "reports.view"}


# --- the fixed data set ----------------------------------------------------------------------

def _cleanup(engine):
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in (
                "DELETE FROM activities.productivity_daily WHERE institution_id IN (:a, :b)",
                "DELETE FROM activities.promises WHERE institution_id IN (:a, :b)",
                "DELETE FROM activities.disputes WHERE institution_id IN (:a, :b)",
                "DELETE FROM activities.payments WHERE institution_id IN (:a, :b)",
                "DELETE FROM activities.activities WHERE institution_id IN (:a, :b)",
                "DELETE FROM activities.team_members WHERE team_id = :team",
                "DELETE FROM activities.teams WHERE team_id = :team",
                "DELETE FROM portfolio.aging_snapshots WHERE institution_id IN (:a, :b)",
                "DELETE FROM portfolio.aging_daily WHERE institution_id IN (:a, :b)",
                "DELETE FROM portfolio.aging_rolls WHERE institution_id IN (:a, :b)",
                "DELETE FROM portfolio.statuses WHERE institution_id IN (:a, :b)",
                "DELETE FROM portfolio.institutions WHERE id IN (:a, :b)",
                "DELETE FROM queues.recovery_daily WHERE institution_id IN (:a, :b)",
                "DELETE FROM queues.assigned_daily WHERE institution_id IN (:a, :b)",
                "DELETE FROM queues.assignments WHERE institution_id IN (:a, :b)",
                "DELETE FROM queues.account_facts WHERE institution_id IN (:a, :b)",
                "DELETE FROM queues.queues WHERE strategy_id IN (:sa, :sb)",
                "DELETE FROM queues.strategies WHERE id IN (:sa, :sb)"):
            conn.execute(text(statement), {"a": I1, "b": I2, "team": TEAM, "sa": S_CHAMP,
                                           "sb": S_CHALL})
        conn.execute(text("UPDATE queues.strategies SET challenger_id = NULL "
                          "WHERE challenger_id IN (:sa, :sb)"), {"sa": S_CHAMP, "sb": S_CHALL})


def _productivity(conn):
    rows = [  # day, agent, institution, queue, counts
        ("2025-03-03", A1, I1, Q11, dict(calls=4, visits=1, notes=1, contacts=3, promises_made=2,
                                         promised_amount=1000, promises_kept=1, kept_amount=400,
                                         amount_recovered=400)),
        ("2025-03-04", A1, I1, 0, dict(calls=2, promises_broken=1)),
        ("2025-03-03", A2, I1, Q11, dict(calls=5, emails=1, contacts=2, promises_made=1,
                                         promised_amount=Decimal("250.50"),
                                         amount_recovered=Decimal("100.25"))),
        ("2025-03-03", A2, I2, Q11, dict(calls=7)),          # another institution
        ("2025-04-01", A1, I1, Q11, dict(calls=9)),          # after the range
    ]
    for day, agent, institution, queue, counts in rows:
        columns = ", ".join(counts)
        conn.execute(text(
            f"INSERT INTO activities.productivity_daily (day, agent_id, institution_id, queue_id,"
            f" {columns}) VALUES (:day, :agent, :institution, :queue, "
            + ", ".join(f":{c}" for c in counts) + ")"),
            {"day": day, "agent": agent, "institution": institution, "queue": queue, **counts})
    conn.execute(text("INSERT INTO activities.teams (team_id, name, supervisor_id) "
                      "VALUES (:t, 'Equipo reportes', :s)"), {"t": TEAM, "s": OTHER})
    conn.execute(text("INSERT INTO activities.team_members (team_id, agent_id) VALUES "
                      "(:t, :a1), (:t, :a2)"), {"t": TEAM, "a1": A1, "a2": A2})


def _activity(conn, n, institution, agent):
    """A bare log entry a promise can hang from (the chain is not what this suite tests)."""
    conn.execute(text(
        "INSERT INTO activities.activities (id, institution_id, account_id, debtor_id, agent_id,"
        " logged_by, kind, direction, started_at, recorded_at, seq, prev_hash, hash)"
        " VALUES (:id, :i, :id, :id, :g, :g, 'call', 'outbound', now(), now(), 1, :h, :h)"),
        {"id": ACT + n, "i": institution, "g": agent, "h": "0" * 64})


def _promises(conn):
    promises = [  # n, agent, amount, paid, state
        (1, A1, 600, 100, "pending"), (2, A2, Decimal("250.50"), 0, "pending"),
        (3, A1, 400, 400, "kept")]
    for n, agent, amount, paid, state in promises:
        _activity(conn, n, I1, agent)
        conn.execute(text(
            "INSERT INTO activities.promises (id, activity_id, institution_id, account_id,"
            " debtor_id, agent_id, queue_id, amount, due_date, paid_amount, state, made_on)"
            " VALUES (:id, :id, :i, :id, :id, :g, :q, :amount, '2025-03-20', :paid, :state,"
            " '2025-03-03')"),
            {"id": ACT + n, "i": I1, "g": agent, "q": Q11, "amount": amount, "paid": paid,
             "state": state})


def _disputes(conn):
    rows = [  # n, institution, opened (UTC), due, state, outcome, resolved (UTC)
        (11, I1, "2025-03-02 18:00+00", "2025-03-12", "resolved", "confirmed_debt",
         "2025-03-10 18:00+00"),
        (12, I1, "2025-03-05 18:00+00", "2025-03-15", "resolved", "cancelled",
         "2025-03-20 18:00+00"),
        (13, I1, "2025-03-25 18:00+00", "2025-04-04", "open", None, None),
        (14, I1, "2025-03-28 18:00+00", "2099-01-01", "open", None, None),
        (15, I1, "2025-01-10 18:00+00", "2025-01-20", "resolved", "corrected_balance",
         "2025-01-20 18:00+00"),
        (16, I2, "2025-03-05 18:00+00", "2025-03-15", "open", None, None),
    ]
    for n, institution, opened, due, state, outcome, resolved in rows:
        conn.execute(text(
            "INSERT INTO activities.disputes (id, institution_id, account_id, debtor_id, reason,"
            " opened_by, owner_id, opened_at, due_date, state, outcome, resolved_at, resolved_by)"
            " VALUES (:id, :i, :id, :id, 'No reconoce el cargo', :g, :g, :opened, :due, :state,"
            " :outcome, :resolved, :by)"),
            {"id": ACT + n, "i": institution, "g": A1, "opened": opened, "due": due,
             "state": state, "outcome": outcome, "resolved": resolved,
             "by": A1 if state == "resolved" else None})


#: account -> {day: (days past due, balance, stage, status)}; "S1"/"S2" are 9101's statuses
SNAPSHOTS = {
    1: {"2025-01-31": (0, 100, "current", "S1"), "2025-02-28": (0, 100, "current", "S1")},
    2: {"2025-01-31": (10, 200, "delinquent", "S1"), "2025-02-15": (25, 200, "delinquent", "S1"),
        "2025-02-28": (40, 200, "delinquent", "S1")},
    3: {"2025-01-31": (45, 300, "delinquent", "S2"), "2025-02-28": (0, 250, "current", "S2")},
    4: {"2025-01-31": (75, 400, "delinquent", "S2"), "2025-02-28": (105, 400, "delinquent", "S2")},
    5: {"2025-01-31": (120, 500, "delinquent", "S1"), "2025-02-28": (150, 500, "delinquent", "S1")},
    6: {"2025-01-31": (200, 600, "litigation", "S2"), "2025-02-28": (230, 600, "litigation", "S2")},
    7: {"2025-02-28": (5, 700, "delinquent", "S2")},                      # new in February
    8: {"2025-01-31": (0, 100, "current", "S1"), "2025-02-28": (20, 100, "delinquent", "S1")},
}


def _portfolio(conn) -> dict:
    for institution in (I1, I2):
        conn.execute(text("INSERT INTO portfolio.institutions (id, code, name) VALUES "
                          "(:i, :c, :n)"), {"i": institution, "c": f"RPT{institution}",
                                            "n": f"Reportes {institution}"})
    statuses = {}
    for code in ("S1", "S2"):
        statuses[code] = conn.execute(text(
            "INSERT INTO portfolio.statuses (institution_id, code, name) VALUES (:i, :c, :c) "
            "RETURNING id"), {"i": I1, "c": code}).scalar_one()
    statuses["other"] = conn.execute(text(
        "INSERT INTO portfolio.statuses (institution_id, code, name) VALUES (:i, 'S1', 'S1') "
        "RETURNING id"), {"i": I2}).scalar_one()
    for n, days in SNAPSHOTS.items():
        for day, (dpd, balance, stage, status) in days.items():
            conn.execute(text(
                "INSERT INTO portfolio.aging_snapshots (snapshot_date, account_id, institution_id,"
                " balance, overdue_amount, days_past_due, stage, status_id) VALUES"
                " (:d, :a, :i, :b, :o, :dpd, :stage, :s)"),
                {"d": day, "a": ACC + n, "i": I1, "b": balance, "o": balance if dpd else 0,
                 "dpd": dpd, "stage": stage, "s": statuses[status]})
    for day in ("2025-01-31", "2025-02-28"):   # institution 9102: one account, 1-30 both times
        conn.execute(text(
            "INSERT INTO portfolio.aging_snapshots (snapshot_date, account_id, institution_id,"
            " balance, overdue_amount, days_past_due, stage, status_id) VALUES"
            " (:d, :a, :i, 50, 50, 10, 'delinquent', NULL)"), {"d": day, "a": ACC + 99, "i": I2})
    return statuses


def _queues(conn):
    conn.execute(text(
        "INSERT INTO queues.strategies (id, institution_id, name, state, created_by) VALUES "
        "(:b, :i, 'Reportes retadora', 'draft', 1)"), {"b": S_CHALL, "i": I1})
    conn.execute(text(
        "INSERT INTO queues.strategies (id, institution_id, name, state, created_by,"
        " challenger_id, challenger_share) VALUES (:a, :i, 'Reportes campeona', 'draft', 1,"
        " :b, 50)"), {"a": S_CHAMP, "b": S_CHALL, "i": I1})
    for queue, strategy, position, name in ((Q11, S_CHAMP, 1, "Temprana"),
                                            (Q12, S_CHAMP, 2, "Tardía"),
                                            (Q21, S_CHALL, 1, "Retadora")):
        conn.execute(text(
            "INSERT INTO queues.queues (id, strategy_id, position, name, conditions, sort,"
            " team_id) VALUES (:q, :s, :p, :n, '{}', '[]', :t)"),
            {"q": queue, "s": strategy, "p": position, "n": name, "t": TEAM})
    for n, queue, arm, balance in ((1, Q11, "champion", 1000), (2, Q12, "champion", 2000),
                                   (3, Q21, "challenger", 1500), (4, Q21, "challenger", 500)):
        conn.execute(text(
            "INSERT INTO queues.account_facts (account_id, institution_id, debtor_id, stage,"
            " balance) VALUES (:a, :i, :a, 'delinquent', :b)"),
            {"a": ACT + 100 + n, "i": I1, "b": balance})
        conn.execute(text(
            "INSERT INTO queues.assignments (account_id, institution_id, queue_id, arm, rank)"
            " VALUES (:a, :i, :q, :arm, :n)"),
            {"a": ACT + 100 + n, "i": I1, "q": queue, "arm": arm, "n": n})
    # an earlier snapshot in the range: the report must take the last one (31 March)
    conn.execute(text(
        "INSERT INTO queues.assigned_daily (day, institution_id, queue_id, arm, accounts, balance)"
        " VALUES ('2025-03-15', :i, :q, 'champion', 1, 1200)"), {"i": I1, "q": Q11})


@pytest.fixture(scope="module")
def data(migrated_database, engine):
    _cleanup(engine)
    with engine.begin() as conn:
        _productivity(conn)
        _promises(conn)
        _disputes(conn)
        statuses = _portfolio(conn)
        _queues(conn)
    with Session(engine) as session:   # what the rebuild and the daily timer run
        queue_reports.snapshot_assigned(session, date(2025, 3, 31), I1)
        session.commit()
    yield {"statuses": statuses}
    _cleanup(engine)


@pytest.fixture
def services(data, container_factory, rabbit_config):
    for service in (QuietPortfolio, QuietActivities, QuietQueues):
        container_factory(service, rabbit_config).start()


@pytest.fixture
def as_caller(services, rpc_proxy):
    def make(permissions=REPORTS, institutions=(I1,), user_id=OTHER, team=()):
        return rpc_proxy(identity(user_id, permissions, institutions, team))
    return make


MARCH = {"date_from": "2025-03-01", "date_to": "2025-03-31"}


# --- activities: productivity, promises, disputes --------------------------------------------

def test_productivity_by_agent_day_team_and_queue(as_caller):
    proxy = as_caller()
    report = proxy.activities.report_productivity({**MARCH, "group_by": ["agent"]})
    a1, a2 = report["rows"]
    assert a1["agent_id"] == A1 and a2["agent_id"] == A2
    # A1: 4 + 2 calls, 1 visit, 1 note = 8 activities; 3 contacts of 7 reachable
    assert (a1["activities"], a1["calls"], a1["visits"], a1["notes"]) == (8, 6, 1, 1)
    assert a1["contacts"] == 3 and a1["contact_rate"] == "0.4286"
    assert (a1["promises_made"], a1["promised_amount"]) == (2, "1000.00")
    assert (a1["promises_kept"], a1["kept_amount"], a1["promises_broken"]) == (1, "400.00", 1)
    assert a1["kept_rate"] == "0.5000" and a1["amount_recovered"] == "400.00"
    # A2 (institution 9101 only: the 7 calls of 9102 are out of scope)
    assert (a2["activities"], a2["calls"], a2["emails"], a2["contacts"]) == (6, 5, 1, 2)
    assert a2["contact_rate"] == "0.3333" and a2["kept_rate"] is None
    assert (a2["promised_amount"], a2["amount_recovered"]) == ("250.50", "100.25")
    totals = report["totals"]
    assert (totals["activities"], totals["contacts"], totals["contact_rate"]) == (14, 5, "0.3846")
    assert (totals["promised_amount"], totals["amount_recovered"]) == ("1250.50", "500.25")

    by_day = proxy.activities.report_productivity({**MARCH, "group_by": ["day"]})["rows"]
    assert [(r["day"], r["activities"]) for r in by_day] == [("2025-03-03", 12),
                                                             ("2025-03-04", 2)]
    by_team = proxy.activities.report_productivity({**MARCH, "group_by": ["team"]})["rows"]
    assert [(r["team_id"], r["activities"]) for r in by_team] == [(TEAM, 14)]
    by_queue = proxy.activities.report_productivity({**MARCH, "group_by": ["queue"]})["rows"]
    assert [(r["queue_id"], r["activities"]) for r in by_queue] == [(0, 2), (Q11, 12)]
    one = proxy.activities.report_productivity({**MARCH, "agent_id": A2, "team_id": TEAM})
    assert [r["agent_id"] for r in one["rows"]] == [A2]


def test_promises_kept_broken_and_pending_by_agent(as_caller):
    report = as_caller().activities.report_promises({**MARCH, "group_by": ["agent"]})
    a1, a2 = report["rows"]
    assert (a1["agent_id"], a1["made"], a1["promised_amount"]) == (A1, 2, "1000.00")
    assert (a1["kept"], a1["kept_amount"], a1["broken"]) == (1, "400.00", 1)
    assert (a1["pending"], a1["pending_amount"], a1["kept_rate"]) == (1, "500.00", "0.5000")
    assert (a2["agent_id"], a2["made"], a2["kept"], a2["broken"]) == (A2, 1, 0, 0)
    assert (a2["pending"], a2["pending_amount"], a2["kept_rate"]) == (1, "250.50", None)
    assert report["totals"]["pending_amount"] == "750.50" and report["totals"]["made"] == 3
    by_queue = as_caller().activities.report_promises({**MARCH, "group_by": ["queue"]})["rows"]
    assert [(r["queue_id"], r["made"], r["broken"], r["pending"]) for r in by_queue] == \
        [(0, 0, 1, 0), (Q11, 3, 0, 2)]


def test_disputes_open_overdue_and_resolved_by_outcome(as_caller):
    report = as_caller().activities.report_disputes(MARCH)
    (row,) = report["rows"]
    assert row["institution_id"] == I1
    assert (row["opened"], row["open"], row["overdue"]) == (4, 2, 1)
    assert (row["resolved"], row["resolved_in_sla"]) == (2, 1)
    assert (row["confirmed_debt"], row["corrected_balance"], row["cancelled"]) == (1, 0, 1)
    by_owner = as_caller().activities.report_disputes({**MARCH, "group_by": ["agent"]})
    assert [r["agent_id"] for r in by_owner["rows"]] == [A1]


# --- portfolio: aging and roll rates ----------------------------------------------------------

@pytest.fixture
def rollups(as_caller):
    admin = as_caller({"institutions.manage"}, None)
    assert admin.portfolio.rebuild_aging_rollups(
        {"date_from": "2025-01-01", "date_to": "2025-02-28"})["days"] >= 3


def test_aging_by_bucket_and_stage(as_caller, rollups, data):
    proxy = as_caller()
    report = proxy.portfolio.report_aging({"as_of": "2025-03-15", "group_by": ["stage"]})
    assert report["snapshot_date"] == "2025-02-28"
    rows = {(r["stage"], r["bucket"]): r for r in report["rows"]}
    assert set(rows) == {("current", "current"), ("delinquent", "1_30"),
                         ("delinquent", "31_60"), ("delinquent", "91_180"),
                         ("litigation", "over_180")}
    assert (rows["current", "current"]["accounts"], rows["current", "current"]["balance"]) \
        == (2, "350.00")
    assert (rows["delinquent", "1_30"]["accounts"], rows["delinquent", "1_30"]["balance"]) \
        == (2, "800.00")
    late = rows["delinquent", "91_180"]
    assert (late["accounts"], late["balance"], late["overdue_amount"]) == (2, "900.00", "900.00")
    assert (late["share_accounts"], late["share_balance"]) == ("0.2500", "0.3158")
    assert report["totals"] == {"accounts": 8, "balance": "2850.00", "overdue_amount": "2500.00"}

    s1 = data["statuses"]["S1"]
    narrowed = proxy.portfolio.report_aging({"as_of": "2025-03-15", "stage": "delinquent",
                                             "status_id": s1, "group_by": ["status"]})
    assert [(r["status_id"], r["bucket"], r["accounts"], r["balance"])
            for r in narrowed["rows"]] == [(s1, "1_30", 1, "100.00"), (s1, "31_60", 1, "200.00"),
                                           (s1, "91_180", 1, "500.00")]
    assert proxy.portfolio.report_aging({"as_of": "2025-02-20"})["snapshot_date"] == "2025-02-15"
    empty = proxy.portfolio.report_aging({"as_of": "2024-12-31"})
    assert empty["snapshot_date"] is None and empty["rows"] == []
    with pytest.raises(InvalidInput) as refused:
        proxy.portfolio.report_aging({"status_id": data["statuses"]["other"]})
    assert "status_id" in refused.value.fields
    with pytest.raises(InvalidInput) as refused:
        proxy.portfolio.report_aging({"stage": "perdida"})
    assert "stage" in refused.value.fields


def test_roll_rates_month_to_month(as_caller, rollups):
    report = as_caller().portfolio.report_roll_rates({"date_from": "2025-02-01",
                                                      "date_to": "2025-02-28"})
    moves = {(r["from_bucket"], r["to_bucket"]): r for r in report["rows"]}
    assert {k: (v["accounts"], v["share"], v["direction"]) for k, v in moves.items()} == {
        ("current", "current"): (1, "0.5000", "same"),
        ("current", "1_30"): (1, "0.5000", "worse"),
        ("1_30", "31_60"): (1, "1.0000", "worse"),
        ("31_60", "current"): (1, "1.0000", "better"),
        ("61_90", "91_180"): (1, "1.0000", "worse"),
        ("91_180", "91_180"): (1, "1.0000", "same"),
        ("over_180", "over_180"): (1, "1.0000", "same"),
    }
    assert all(r["from_date"] == "2025-01-31" and r["to_date"] == "2025-02-28"
               for r in report["rows"])
    assert report["months"] == [{"month": "2025-02", "accounts": 7, "rolled_forward": 3,
                                 "roll_forward_rate": "0.4286"}]


# --- queues: recovery and champion vs challenger ------------------------------------------------

def _pay(dispatch, n, amount, day, movement):
    dispatch("portfolio", "payment_received", contracts.PaymentReceived().dump({
        "event_id": uuid.uuid4(), "occurred_at": datetime.now(timezone.utc),
        "account_id": ACT + 100 + n, "institution_id": I1, "movement_id": ACT + movement,
        "amount": Decimal(amount), "value_date": date.fromisoformat(day),
        "reference": f"R{movement}"}))


@pytest.fixture
def payments(services, rabbit_config, engine):
    dispatch = event_dispatcher(rabbit_config)
    for n, amount, day, movement in ((1, "300.00", "2025-03-05", 1), (1, "200.00", "2025-03-20", 2),
                                     (3, "150.00", "2025-03-05", 3), (4, "100.00", "2025-03-06", 4),
                                     (9, "50.00", "2025-03-05", 5),      # in no queue
                                     (1, "999.00", "2025-04-02", 6)):    # after the range
        _pay(dispatch, n, amount, day, movement)
    assert wait_for(lambda: sql(engine, "SELECT coalesce(sum(payments), 0) FROM "
                                        "queues.recovery_daily WHERE institution_id = :i",
                                i=I1)[0][0] == 6)
    yield
    sql(engine, "DELETE FROM queues.recovery_daily WHERE institution_id = :i", i=I1)


def test_recovery_collected_against_assigned(as_caller, payments):
    proxy = as_caller()
    report = proxy.queues.report_recovery(MARCH)
    rows = {r["queue_id"]: r for r in report["rows"]}
    assert {q: (r["payments"], r["collected"], r["accounts_assigned"], r["balance_assigned"],
                r["recovery_rate"]) for q, r in rows.items()} == {
        0: (1, "50.00", 0, "0.00", None),
        Q11: (2, "500.00", 1, "1000.00", "0.5000"),
        Q12: (0, "0.00", 1, "2000.00", "0.0000"),
        Q21: (2, "250.00", 2, "2000.00", "0.1250"),
    }
    assert rows[Q11]["queue"] == "Temprana"
    assert report["totals"] == {"payments": 5, "collected": "800.00", "accounts_assigned": 4,
                                "balance_assigned": "5000.00", "recovery_rate": "0.1600"}
    by_day = proxy.queues.report_recovery({**MARCH, "group_by": ["day"]})
    assert [(r["day"], r["payments"], r["collected"], r["balance_assigned"])
            for r in by_day["rows"]] == [
        ("2025-03-05", 3, "500.00", "0.00"), ("2025-03-06", 1, "100.00", "0.00"),
        ("2025-03-15", 0, "0.00", "1200.00"), ("2025-03-20", 1, "200.00", "0.00"),
        ("2025-03-31", 0, "0.00", "5000.00")]
    assert by_day["totals"]["balance_assigned"] == "5000.00"
    with pytest.raises(InvalidInput) as refused:
        proxy.queues.report_recovery({**MARCH, "queue_id": 987654})
    assert "queue_id" in refused.value.fields


def test_champion_against_challenger(as_caller, payments):
    report = as_caller().queues.report_champion_challenger(MARCH)
    assert report["assigned_on"] == "2025-03-31"
    assert [(r["strategy"], r["arm"], r["accounts_assigned"], r["balance_assigned"],
             r["payments"], r["collected"], r["recovery_rate"], r["collected_per_account"])
            for r in report["rows"]] == [
        ("Reportes campeona", "champion", 2, "3000.00", 2, "500.00", "0.1667", "250.00"),
        ("Reportes retadora", "challenger", 2, "2000.00", 2, "250.00", "0.1250", "125.00")]


# --- who may see what ----------------------------------------------------------------------------

CALLS = [
    ("activities", "report_productivity", MARCH),
    ("activities", "report_promises", MARCH),
    ("activities", "report_disputes", MARCH),
    ("portfolio", "report_aging", {}),
    ("portfolio", "report_roll_rates", MARCH),
    ("queues", "report_recovery", MARCH),
    ("queues", "report_champion_challenger", MARCH),
]


@pytest.mark.parametrize("service,method,query", CALLS, ids=[c[1] for c in CALLS])
def test_every_report_keeps_to_the_callers_institution(as_caller, service, method, query):
    cliente = as_caller(CLIENTE, (I1,))
    call = lambda proxy, q: getattr(getattr(proxy, service), method)(q)  # noqa: E731
    call(cliente, {**query, "institution_id": I1})
    with pytest.raises(NotFound):                      # another institution: like missing
        call(cliente, {**query, "institution_id": I2})
    with pytest.raises(PermissionDenied):
        call(as_caller({"activities.read", "portfolio.read"}, (I1,)), query)


def test_bad_ranges_and_unknown_filters_name_the_field(as_caller):
    proxy = as_caller()
    for bad, field in (({"date_from": "2025-03-31", "date_to": "2025-03-01"}, "date_to"),
                       ({"date_from": "2024-01-01", "date_to": "2025-03-01"}, "date_to"),
                       ({**MARCH, "team_id": 987654}, "team_id"),
                       ({**MARCH, "agent_id": 987654}, "agent_id"),
                       ({**MARCH, "group_by": ["planet"]}, "group_by"),
                       ({**MARCH, "colour": "red"}, "colour")):
        with pytest.raises(InvalidInput) as refused:
            proxy.activities.report_productivity(bad)
        assert field in refused.value.fields, (bad, refused.value.fields)


def test_the_supervisors_day_counts_one_day(as_caller):
    proxy = as_caller(REPORTS, (I1,), user_id=OTHER, team=(A1, A2))
    day = proxy.activities.supervisor_day({"day": "2025-03-03"})
    assert [a["agent_id"] for a in day["agents"]] == [A1, A2]
    assert day["totals"]["activities"] == 12 and day["totals"]["contacts"] == 5
    assert len(day["hours"]) == 24


# --- scheduled reports (the reports service) -------------------------------------------------------

from nameko.rpc import rpc as nameko_rpc  # noqa: E402
from nameko.testing.services import entrypoint_hook  # noqa: E402
from openpyxl import load_workbook  # noqa: E402

from auth.models import Base as AuthBase  # noqa: E402
from auth.service import AuthService  # noqa: E402
from recaudo_common.report_exports import xlsx_header_row  # noqa: E402
from reports.models import Base as ReportsBase  # noqa: E402
from reports.service import ReportsService  # noqa: E402

SENT: list[dict] = []


class QuietAuth(AuthService):
    db = Database(AuthBase, relay=False)


class QuietReports(ReportsService):
    db = Database(ReportsBase, relay=False)


class MessagingWithReports:
    """Stands in for the messaging service's ``send_report`` (the contract the reports
    service calls), recording what it was asked to send and with whose identity."""

    name = "messaging"

    @nameko_rpc
    def send_report(self, message):
        SENT.append(message)
        return {"queued": len(message["recipients"])}


class MessagingRefusing:
    """A messaging service whose mail server refuses the report."""

    name = "messaging"

    @nameko_rpc
    def send_report(self, message):
        raise Conflict("El servidor de correo no aceptó el reporte",
                       {"recipients": ["550 no such user"]})


@pytest.fixture
def owner(data, engine):
    """A user of institution 9101 holding reports.view (removed after)."""
    sql(engine, "DELETE FROM auth.users WHERE username = 'reportes-dueno'")
    sql(engine, "DELETE FROM auth.profiles WHERE name = 'Reportes prueba'")
    profile = sql(engine, "INSERT INTO auth.profiles (name, permissions) VALUES "
                          "('Reportes prueba', ARRAY['reports.view', 'activities.read']) "
                          "RETURNING id")[0][0]
    user = sql(engine, "INSERT INTO auth.users (username, display_name, profile_id, "
                       "institutions) VALUES ('reportes-dueno', 'Dueño', :p, ARRAY[:i]) "
                       "RETURNING id", p=profile, i=I1)[0][0]
    yield user
    sql(engine, "DELETE FROM reports.schedules WHERE owner_id = :u", u=user)
    sql(engine, "DELETE FROM auth.users WHERE id = :u", u=user)
    sql(engine, "DELETE FROM auth.profiles WHERE id = :p", p=profile)


def _scheduling(container_factory, rabbit_config, messaging):
    SENT.clear()
    for service in (QuietAuth, messaging):
        container_factory(service, rabbit_config).start()
    reports = container_factory(QuietReports, rabbit_config)
    reports.start()
    return reports


MONTHLY = {"report": "productivity", "institution_id": I1, "frequency": "monthly",
           "month_day": 1, "hour": 7, "format": "xlsx", "filters": {"group_by": ["agent"]},
           "recipients": ["Direccion@Banco.MX", "cobranza@banco.mx"]}


def _owner_proxy(as_caller, owner):
    return as_caller({"reports.view", "activities.read"}, (I1,), user_id=owner).reports


def test_a_monthly_schedule_runs_as_its_owner_and_mails_the_xlsx(
        services, owner, as_caller, container_factory, rabbit_config, engine):
    runner = _scheduling(container_factory, rabbit_config, MessagingWithReports)
    mine = _owner_proxy(as_caller, owner)
    schedule = mine.save_schedule(MONTHLY)
    assert schedule["recipients"] == ["direccion@banco.mx", "cobranza@banco.mx"]
    assert schedule["weekday"] is None and schedule["next_run_at"] > "2025"
    # due on 1 April 2025 at 07:00 Mexico City: the run covers March
    sql(engine, "UPDATE reports.schedules SET next_run_at = '2025-04-01 13:00+00' "
                "WHERE id = :s", s=schedule["id"])
    with entrypoint_hook(runner, "run_due") as run_due:
        run_due()
    (message,) = SENT
    assert message["recipients"] == ["direccion@banco.mx", "cobranza@banco.mx"]
    assert "2025-03-01 – 2025-03-31" in message["subject"]
    attachment = message["attachment"]
    assert attachment["filename"] == "reporte-productividad-2025-03-31.xlsx"
    sheet = load_workbook(io.BytesIO(base64.b64decode(attachment["content_b64"]))).active
    header = xlsx_header_row(sheet)
    rows = list(sheet.iter_rows(min_row=header, values_only=True))
    got = {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert (got[f"#{A1}"]["Gestiones"], got[f"#{A1}"]["Contactos"]) == (8, 3)
    assert (got[f"#{A2}"]["Gestiones"], got["Total"]["Gestiones"]) == (6, 14)
    (run,) = mine.list_runs(schedule["id"])
    assert (run["state"], run["period_from"], run["period_to"]) == \
        ("sent", "2025-03-01", "2025-03-31")
    again = mine.list_schedules()[0]
    assert again["next_run_at"] > datetime.now(timezone.utc).isoformat()   # moved on
    assert again["last_run"]["id"] == run["id"]


@pytest.mark.instances(2)
def test_a_due_schedule_fired_on_two_instances_at_once_is_mailed_once(
        services, owner, as_caller, container_factory, instances, rabbit_config, engine):
    _scheduling(container_factory, rabbit_config, MessagingWithReports)
    schedule = _owner_proxy(as_caller, owner).save_schedule(MONTHLY)
    sql(engine, "UPDATE reports.schedules SET next_run_at = '2025-04-01 13:00+00' "
                "WHERE id = :s", s=schedule["id"])
    fire_together(instances["reports"], "run_due")
    runs = sql(engine, "SELECT state FROM reports.runs WHERE schedule_id = :s", s=schedule["id"])
    record("timer_scheduled_reports", {"instances_fired": 2, "mailings": len(SENT),
                                       "runs": len(runs)})
    assert len(SENT) == 1 and runs == [("sent",)]
    fire_together(instances["reports"], "run_due")          # moved on: nothing due
    assert len(SENT) == 1


def test_a_refused_send_is_a_failed_run_and_its_file_is_kept(
        services, owner, as_caller, container_factory, rabbit_config):
    _scheduling(container_factory, rabbit_config, MessagingRefusing)
    mine = _owner_proxy(as_caller, owner)
    schedule = mine.save_schedule({**MONTHLY, "report": "aging", "format": "csv",
                                   "filters": {"group_by": ["stage"]}})
    run = mine.run_schedule(schedule["id"])
    assert run["state"] == "failed" and "no aceptó" in run["message"]
    file = mine.run_file(run["id"])
    assert file["filename"].endswith(".csv")
    assert base64.b64decode(file["content_b64"]).decode("utf-8-sig").startswith("Etapa,")
    with pytest.raises(NotFound):                         # someone else's run
        as_caller({"reports.view"}, (I1,), user_id=OTHER).reports.run_file(run["id"])


def test_schedules_refuse_bad_input_naming_the_field(services, owner, as_caller,
                                                     container_factory, rabbit_config):
    _scheduling(container_factory, rabbit_config, MessagingRefusing)
    mine = _owner_proxy(as_caller, owner)
    for change, field in (({"frequency": "weekly"}, "weekday"),
                          ({"month_day": 31}, "month_day"),
                          ({"recipients": ["no es correo"]}, "recipients"),
                          ({"recipients": []}, "recipients"),
                          ({"filters": {"stage": "current"}}, "filters"),
                          ({"filters": {"team_id": 987654}}, "team_id"),  # the service's own
                          ({"report": "planets"}, "report"),
                          ({"hour": 24}, "hour")):
        with pytest.raises(InvalidInput) as refused:
            mine.save_schedule({**MONTHLY, **change})
        assert field in refused.value.fields, (change, refused.value.fields)
    with pytest.raises(NotFound):
        mine.save_schedule({**MONTHLY, "institution_id": I2})
    with pytest.raises(PermissionDenied):
        as_caller({"activities.read"}, (I1,), user_id=owner).reports.list_schedules()
    assert mine.list_schedules() == []


def test_a_disabled_owners_schedule_stops(services, owner, as_caller, container_factory,
                                          rabbit_config, engine):
    runner = _scheduling(container_factory, rabbit_config, MessagingWithReports)
    mine = _owner_proxy(as_caller, owner)
    schedule = mine.save_schedule(MONTHLY)
    sql(engine, "UPDATE auth.users SET active = false WHERE id = :u", u=owner)
    sql(engine, "UPDATE reports.schedules SET next_run_at = now() - interval '1 minute' "
                "WHERE id = :s", s=schedule["id"])
    with entrypoint_hook(runner, "run_due") as run_due:
        run_due()
    assert SENT == []
    state = sql(engine, "SELECT active FROM reports.schedules WHERE id = :s", s=schedule["id"])
    assert state == [(False,)]
    assert sql(engine, "SELECT state FROM reports.runs WHERE schedule_id = :s",
               s=schedule["id"]) == [("failed",)]


def test_only_the_platform_may_ask_for_a_users_identity(services, owner, as_caller,
                                                       container_factory, rabbit_config):
    _scheduling(container_factory, rabbit_config, MessagingRefusing)
    with pytest.raises(PermissionDenied):
        as_caller({"users.manage", "reports.view"}, None).auth.identity_for(owner)
