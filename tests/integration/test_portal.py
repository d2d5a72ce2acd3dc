"""The debtor portal's services over RabbitMQ against the real database: auth's personal
links (single use, expiring, locked after five wrong answers, another institution's
refused, every refusal in the same words), the second factor checked by the portfolio,
the debtor session (15 idle minutes) and its principal reaching only its own debtor's
accounts; the activities service's portal actions inside and outside the limits, each in
the account's hash-chained history as a ``portal`` entry.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests

from activities.service import ActivitiesService
from auth.service import AuthService
from documents.service import DocumentsService
from recaudo_common.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, \
    PermissionDenied

from decimal import Decimal

from nameko.standalone.events import event_dispatcher

from .helpers import scalar, sql, wait_for
from .activities_world import (  # noqa: F401 (fixtures)
    ACC1, ACC2, GESTOR1, GESTOR2, GESTOR_PERMS, SUPERVISOR, QuietPortfolioService, _truncate,
    admin, as_user, call, gestor1, payment, portfolio_rows, saved_tables, signed, today)

APPROVER_PERMS = GESTOR_PERMS | {"portfolio.read_all", "promises.approve"}

DEBTOR = ACC1[0]            # the debtor of ACC1[0] has that id too (one account each)
BIRTH = "1980-05-17"
LIMITS = {"max_instalments": 3, "min_first_payment": "100.00", "max_plan_days": 60,
          "offer_expiry_days": 5, "discount_bands": [{"stage": "delinquent", "thresholds": [
              {"up_to_pct": "15"}, {"up_to_pct": "40", "approver": "supervisor"}]}]}


def _clean(engine):
    _truncate(engine)
    sql(engine, "TRUNCATE activities.approvals, activities.plan_limits")
    sql(engine, "TRUNCATE auth.portal_sessions, auth.portal_links, auth.portal_settings")


@pytest.fixture
def services(saved_tables, portfolio_rows, engine, container_factory, rabbit_config):
    _clean(engine)
    sql(engine, "UPDATE portfolio.debtors SET birth_date = :b, tax_id = 'GOMJ800517AB1' "
                "WHERE id = :d", b=BIRTH, d=DEBTOR)
    for cls in (QuietPortfolioService, ActivitiesService, AuthService):
        container_factory(cls, rabbit_config).start()
    yield
    _clean(engine)


@pytest.fixture
def anon(services, rpc_proxy):
    return rpc_proxy()



@pytest.fixture
def staff(services, rpc_proxy):
    def make(user_id=GESTOR1, permissions=("portfolio.read", "activities.read", "activities.log"),
             institutions=(1,)):
        return rpc_proxy(signed(user_id, set(permissions), institutions))
    return make


def _open(anon, link, answer=BIRTH, institution_id=1):
    return anon.auth.open_portal_link({"institution_id": institution_id, "token": link["token"],
                                       "answer": answer})


def test_a_link_opens_once_with_the_right_answer_and_every_refusal_reads_the_same(
        staff, anon, engine):
    before = scalar(engine, "SELECT coalesce(max(id), 0) FROM auth.audit_log")
    link = staff().auth.create_portal_link(DEBTOR, {"sent_to": "deudor@example.com"})
    assert link["token"].startswith("pl_") and len(link["token"]) > 40
    assert link["second_factor"] == "birth_date"
    assert scalar(engine, "SELECT count(*) FROM auth.portal_links WHERE token_hash = :t",
                  t=link["token"]) == 0                                # stored hashed
    with pytest.raises(NotFound):                                    # not their debtor
        staff(GESTOR2, institutions=(2,)).auth.create_portal_link(DEBTOR, {})

    refusals = []
    for attempt in ({"answer": "1980-05-18"}, {"institution_id": 2},
                    {"link": {"token": "pl_no-existe"}}):
        with pytest.raises(NotAuthenticated) as refused:
            _open(anon, attempt.get("link", link), attempt.get("answer", BIRTH),
                  attempt.get("institution_id", 1))
        refusals.append(str(refused.value))
    assert len(set(refusals)) == 1                                   # nothing told apart
    opened = _open(anon, link, "17/05/1980")
    assert opened["debtor_id"] == DEBTOR and opened["session_token"].startswith("ps_")
    with pytest.raises(NotAuthenticated) as reused:
        _open(anon, link)
    assert str(reused.value) == refusals[0]
    actions = [a for (a,) in sql(engine, "SELECT action FROM auth.audit_log WHERE id > :b "
                                         "ORDER BY id", b=before)]
    assert actions[0] == "portal_link_created" and "portal_session_opened" in actions
    assert actions.count("portal_factor_failed") == 1 and actions.count("portal_link_refused") >= 3


def test_five_wrong_answers_lock_the_link_for_thirty_minutes(staff, anon, engine):
    link = staff().auth.create_portal_link(DEBTOR, {})
    for _ in range(5):
        with pytest.raises(NotAuthenticated):
            _open(anon, link, "2000-01-01")
    locked_until = scalar(engine, "SELECT locked_until FROM auth.portal_links")
    assert timedelta(minutes=29) < locked_until - datetime.now(timezone.utc) \
        <= timedelta(minutes=30)
    with pytest.raises(NotAuthenticated):
        _open(anon, link)                                            # right, but locked
    sql(engine, "UPDATE auth.portal_links SET locked_until = now() - interval '1 second'")
    assert _open(anon, link)["debtor_id"] == DEBTOR


def test_an_expired_link_is_refused_and_other_factors_follow_the_institution(
        staff, anon, admin, engine, rpc_proxy):
    link = staff().auth.create_portal_link(DEBTOR, {})
    sql(engine, "UPDATE auth.portal_links SET expires_at = now() - interval '1 second'")
    with pytest.raises(NotAuthenticated):
        _open(anon, link)
    manager = rpc_proxy(signed(1, {"institutions.manage"}, None)).auth
    assert manager.save_portal_settings(1, {"second_factor": "rfc_last4"})["second_factor"] \
        == "rfc_last4"
    assert anon.auth.portal_settings(1)["second_factor"] == "rfc_last4"
    with pytest.raises(InvalidInput):
        manager.save_portal_settings(1, {"second_factor": "colour"})
    link = staff().auth.create_portal_link(DEBTOR, {})
    with pytest.raises(NotAuthenticated):
        _open(anon, link, BIRTH)
    assert _open(anon, link, "7ab1")["debtor_id"] == DEBTOR
    manager.save_portal_settings(1, {"second_factor": "account_last4"})
    link = staff().auth.create_portal_link(DEBTOR, {})
    assert _open(anon, link, str(DEBTOR)[-4:])["debtor_id"] == DEBTOR


def test_a_link_for_an_sms_keeps_the_number_it_goes_to_and_opens_like_any(
        staff, anon, engine):
    link = staff().auth.create_portal_link(DEBTOR, {"channel": "sms", "sent_to": "5512345678"})
    assert scalar(engine, "SELECT channel || ' ' || sent_to FROM auth.portal_links"
                          " WHERE id = :i", i=link["link_id"]) == "sms 5512345678"
    assert _open(anon, link)["debtor_id"] == DEBTOR
    for wrong in ({"channel": "sms", "sent_to": "deudor@example.com"},
                  {"channel": "email", "sent_to": "5512345678"}, {"channel": "fax"}):
        with pytest.raises(InvalidInput) as err:
            staff().auth.create_portal_link(DEBTOR, wrong)
        assert set(err.value.fields) <= {"sent_to", "channel"}, err.value.fields


@pytest.fixture
def debtor(staff, anon, rpc_proxy):
    opened = _open(anon, staff().auth.create_portal_link(DEBTOR, {}))
    resolved = anon.auth.resolve_portal_session(opened["session_token"])
    proxy = rpc_proxy({"identity": resolved["identity"]})
    proxy.session_token = opened["session_token"]
    return proxy


def test_a_debtor_session_reaches_only_its_own_debtor_and_dies_idle(debtor, anon, engine):
    overview = debtor.portfolio.portal_overview()
    assert [a["account"]["id"] for a in overview["accounts"]] == [DEBTOR]
    assert overview["accounts"][0]["account"]["balance"] == "5000.00"
    with pytest.raises(NotFound):
        debtor.portfolio.portal_account(ACC1[1])                     # another debtor's
    with pytest.raises(NotFound):
        debtor.activities.portal_promise({"account_id": ACC2, "promise": {
            "amount": "100", "due_date": today().isoformat()}})
    with pytest.raises(PermissionDenied):
        debtor.portfolio.get_account(DEBTOR)                         # no staff permission
    with pytest.raises(PermissionDenied):
        debtor.activities.account_promises(DEBTOR)
    assert debtor.activities.portal_record_access() == {"recorded": 1}
    assert sql(engine, "SELECT kind, agent_id, details->>'portal' FROM activities.activities") \
        == [("portal", 0, "access")]

    sql(engine, "UPDATE auth.portal_sessions SET last_seen_at = now() - interval '16 minutes'")
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_portal_session(debtor.session_token)
    assert "portal_session_expired" in [a for (a,) in sql(engine, "SELECT action FROM auth.audit_log")]


def test_a_debtors_promises_settlement_dispute_preferences_and_callback(
        debtor, admin, gestor1, engine):
    admin.save_plan_limits(1, LIMITS)
    day = today()
    inside = debtor.activities.portal_promise({"account_id": DEBTOR, "promise": {
        "instalments": [{"due_date": (day + timedelta(days=3)).isoformat(), "amount": "500"},
                        {"due_date": (day + timedelta(days=33)).isoformat(), "amount": "500"}]}})
    assert inside["promise"]["state"] == "pending" and inside["approval"] is None
    outside = debtor.activities.portal_promise({"account_id": DEBTOR, "promise": {
        "amount": "50", "due_date": (day + timedelta(days=3)).isoformat()}})
    assert outside["promise"] is None and outside["approval"]["channel"] == "portal"
    assert [r["field"] for r in outside["approval"]["reasons"]] == ["promise.amount"]

    for bad, field in (({"amount": "100", "due_date": (day - timedelta(days=1)).isoformat()},
                        "due_date"),
                       ({"amount": "-5", "due_date": day.isoformat()}, "amount"),
                       ({"amount": "10.001", "due_date": day.isoformat()}, "amount")):
        with pytest.raises(InvalidInput) as refused:
            debtor.activities.portal_promise({"account_id": DEBTOR, "promise": bad})
        assert field in refused.value.fields["promise"], refused.value.fields

    view = debtor.activities.portal_view()
    (account,) = view["accounts"]
    assert account["offer"] == {"account_id": DEBTOR, "discount_pct": "15.00",
                                "balance": "5000.00", "amount": "4250.00",
                                "pay_by": (day + timedelta(days=5)).isoformat(),
                                "max_pct": "40.00"}
    accepted = debtor.activities.portal_accept_offer({"account_id": DEBTOR})
    assert accepted["promise"]["amount"] == "4250.00"
    assert accepted["promise"]["due_date"] == account["offer"]["pay_by"]
    with pytest.raises(Conflict):                      # accepted once
        debtor.activities.portal_accept_offer({"account_id": DEBTOR})
    assert debtor.activities.portal_view()["accounts"][0]["offer"] is None

    opened = debtor.activities.portal_dispute({"account_id": DEBTOR,
                                               "reason": "No reconozco el cargo"})
    assert opened["owner_id"] == GESTOR1 and opened["state"] == "open"
    prefs = debtor.activities.portal_preferences({"channels": {"sms": False, "call": True},
                                                  "contact_from": "09:00",
                                                  "contact_until": "18:00"})
    assert prefs["consent"]["sms"]["withdrawn_at"] and prefs["consent"]["sms"]["source"] == "portal"
    asked = debtor.activities.portal_callback({"account_id": DEBTOR, "callback_at": (
        datetime.now(timezone.utc) + timedelta(hours=2)).isoformat(), "note": "Por la tarde"})
    assert scalar(engine, "SELECT agent_id FROM activities.agenda_items WHERE id = :i",
                  i=asked["agenda_item_id"]) == GESTOR1

    entries = [p for (p,) in sql(engine, "SELECT details->>'portal' FROM activities.activities "
                                         "WHERE kind = 'portal' ORDER BY id")]
    assert entries == ["promise", "promise", "settlement", "dispute", "preferences", "callback"]
    assert admin.verify_chain(DEBTOR)["ok"] is True
    history = gestor1.account_history(DEBTOR, {})["items"]
    assert {h["kind"] for h in history} == {"portal"} and len(history) == 6


def test_a_settlement_paid_closes_the_debt_by_an_adjustment(debtor, admin, engine,
                                                            rabbit_config):
    admin.save_plan_limits(1, LIMITS)
    accepted = debtor.activities.portal_accept_offer({"account_id": DEBTOR})
    dispatch = event_dispatcher(rabbit_config)
    dispatch("portfolio", "payment_received", payment(DEBTOR, "4250.00", today(), 7))
    try:
        assert wait_for(lambda: sql(engine, "SELECT kind, amount, reference FROM "
                                            "portfolio.movements WHERE account_id = :a", a=DEBTOR)
                        == [("adjustment", Decimal("-5000.00"),
                             f"LIQ-{accepted['promise']['id']}")])
        assert scalar(engine, "SELECT balance FROM portfolio.accounts WHERE id = :a",
                      a=DEBTOR) == 0
        assert scalar(engine, "SELECT state FROM activities.promises WHERE id = :p",
                      p=accepted["promise"]["id"]) == "kept"
    finally:
        sql(engine, "DELETE FROM portfolio.movements WHERE account_id = :a", a=DEBTOR)
        sql(engine, "UPDATE portfolio.accounts SET balance = 5000 WHERE id = :a", a=DEBTOR)


# --- a dispute keeps the document the debtor sent with it -----------------------------------------

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
DOC_TABLES = "documents.share_accesses, documents.share_links, documents.versions, " \
             "documents.documents, documents.uploads"


@pytest.fixture
def documents(services, s3_server, engine, container_factory, rabbit_config):
    """The documents service (and its S3) beside the portal's services."""
    sql(engine, f"TRUNCATE {DOC_TABLES} RESTART IDENTITY CASCADE")
    container_factory(DocumentsService, rabbit_config).start()
    yield
    sql(engine, f"TRUNCATE {DOC_TABLES} RESTART IDENTITY CASCADE")


def _post(ticket, content, name):
    sent = requests.post(ticket["url"], data=ticket["fields"], files={"file": (name, content)},
                         timeout=10)
    assert sent.status_code < 300, sent.text


def test_a_dispute_keeps_the_debtors_document_and_both_sides_download_it(
        documents, debtor, staff, engine):
    ticket = debtor.documents.portal_request_upload({"account_id": DEBTOR,
                                                     "filename": "estado.pdf", "size": len(PDF)})
    _post(ticket, PDF, "estado.pdf")
    version_id = debtor.documents.portal_complete_upload(ticket["upload_id"])["latest"]["id"]
    # what is not the debtor's own upload is refused on the field, and no dispute opens
    agent = staff(permissions=("portfolio.read", "activities.read", "activities.log",
                               "documents.read", "documents.upload"))
    theirs = agent.documents.request_upload({"debtor_id": DEBTOR, "filename": "interno.pdf",
                                             "size": len(PDF), "category": "otro"})
    _post(theirs, PDF, "interno.pdf")
    internal = agent.documents.complete_upload(theirs["upload_id"])["latest"]["id"]
    for wrong in (internal, version_id + 1000):
        with pytest.raises(InvalidInput) as err:
            debtor.activities.portal_dispute({"account_id": DEBTOR, "reason": "No es mío",
                                              "document_version_id": wrong})
        assert list(err.value.fields) == ["document_version_id"]
    assert scalar(engine, "SELECT count(*) FROM activities.disputes WHERE account_id = :a",
                  a=DEBTOR) == 0
    with pytest.raises(NotFound):                       # nor downloads the agency's own file
        debtor.documents.portal_download_url(internal)

    opened = debtor.activities.portal_dispute({"account_id": DEBTOR, "reason": "Ya pagué",
                                               "document_version_id": version_id})
    assert (opened["document_version_id"], opened["document_name"]) == (version_id, "estado.pdf")
    # the documents service filed it with the dispute, in the debtor's folder
    assert scalar(engine, "SELECT dispute_id FROM documents.documents d JOIN documents.versions"
                          " v ON v.document_id = d.id WHERE v.id = :v", v=version_id) \
        == opened["id"]
    [shown] = debtor.activities.portal_view()["accounts"][0]["disputes"]
    assert shown["document_version_id"] == version_id
    assert requests.get(debtor.documents.portal_download_url(version_id)["url"],
                        timeout=10).content == PDF
    [listed] = agent.activities.account_disputes(DEBTOR)
    assert (listed["document_version_id"], listed["document_name"]) == (version_id, "estado.pdf")
    assert requests.get(agent.documents.download_url(version_id)["url"], timeout=10).content == PDF
    details = scalar(engine, "SELECT details FROM activities.activities WHERE kind = 'portal'"
                             " AND details->>'portal' = 'dispute'")
    assert details["document_version_id"] == version_id


TIERED = {**LIMITS, "discount_bands": [{"stage": "delinquent", "thresholds": [
    {"up_to_pct": "15"}, {"up_to_pct": "40", "approver": "supervisor"},
    {"up_to_pct": "60", "approver": "administrator"}]}]}


def test_a_settlement_above_the_free_discount_waits_for_its_approver_then_is_kept(
        debtor, admin, as_user, engine, rabbit_config):
    """A larger discount than the offer's is asked, not granted: an approval naming the
    level the band requires; the debtor sees it pending (and no offer meanwhile); only when
    approved is its promise made, and paying it closes the debt as any settlement."""
    admin.save_plan_limits(1, TIERED)
    with pytest.raises(InvalidInput) as refused:            # above the band's last threshold
        debtor.activities.portal_accept_offer({"account_id": DEBTOR, "discount_pct": "61"})
    assert "60.00" in refused.value.fields["discount_pct"][0]
    asked = debtor.activities.portal_accept_offer({"account_id": DEBTOR, "discount_pct": "30"})
    assert asked["promise"] is None
    approval = asked["approval"]
    assert approval["kind"] == "settlement" and approval["approver"] == "supervisor"
    assert approval["state"] == "pending" and approval["channel"] == "portal"
    assert approval["terms"]["amount"] == "3500.00"
    assert approval["terms"]["settlement"]["discount_pct"] == "30.00"
    assert [r["field"] for r in approval["reasons"]] == ["discount_pct"]
    assert scalar(engine, "SELECT count(*) FROM activities.promises") == 0
    (account,) = debtor.activities.portal_view()["accounts"]
    assert account["offer"] is None
    assert [(a["kind"], a["state"]) for a in account["approvals"]] == [("settlement", "pending")]
    with pytest.raises(Conflict):                               # one request at a time
        debtor.activities.portal_accept_offer({"account_id": DEBTOR})

    supervisor = as_user(SUPERVISOR, APPROVER_PERMS, None)
    (queued,) = supervisor.list_approvals({})["items"]
    assert queued["id"] == approval["id"] and queued["kind"] == "settlement"
    decided = supervisor.decide_approval(approval["id"], {"decision": "approve"})
    assert decided["state"] == "approved" and decided["promise_id"]
    assert scalar(engine, "SELECT amount FROM activities.promises WHERE id = :p",
                  p=decided["promise_id"]) == Decimal("3500.00")

    dispatch = event_dispatcher(rabbit_config)
    dispatch("portfolio", "payment_received", payment(DEBTOR, "3500.00", today(), 8))
    try:
        assert wait_for(lambda: sql(engine, "SELECT kind, amount, reference FROM "
                                            "portfolio.movements WHERE account_id = :a", a=DEBTOR)
                        == [("adjustment", Decimal("-5000.00"),
                             f"LIQ-{decided['promise_id']}")])
    finally:
        sql(engine, "DELETE FROM portfolio.movements WHERE account_id = :a", a=DEBTOR)
        sql(engine, "UPDATE portfolio.accounts SET balance = 5000 WHERE id = :a", a=DEBTOR)


def test_a_settlement_for_an_administrator_refused_is_told_to_the_debtor(
        debtor, admin, as_user, engine):
    admin.save_plan_limits(1, TIERED)
    asked = debtor.activities.portal_accept_offer({"account_id": DEBTOR, "discount_pct": "50"})
    approval = asked["approval"]
    assert approval["approver"] == "administrator"
    supervisor = as_user(SUPERVISOR, APPROVER_PERMS, None)
    with pytest.raises(PermissionDenied):                  # above the supervisor's level
        supervisor.decide_approval(approval["id"], {"decision": "approve"})
    admin.decide_approval(approval["id"], {"decision": "reject", "note": "Descuento muy alto"})
    assert scalar(engine, "SELECT count(*) FROM activities.promises") == 0
    (account,) = debtor.activities.portal_view()["accounts"]
    assert [(a["state"], a["note"]) for a in account["approvals"]] \
        == [("rejected", "Descuento muy alto")]
    assert account["offer"]["discount_pct"] == "15.00"      # the offer stands again
    entries = [d for (d,) in sql(engine, "SELECT description FROM activities.activities "
                                         "WHERE kind = 'portal' ORDER BY id")]
    assert entries == ["Convenio de liquidación aceptado en el portal (requiere aprobación)"]
