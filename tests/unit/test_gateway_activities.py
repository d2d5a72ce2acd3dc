"""The gateway's activities pieces that need no broker: the API's routes and their
validation, the 360° view's "Gestiones", "Promesas" and "Aclaraciones" tabs, the activity
form (its clock, its promise fields, a refused form shown again with nothing lost), the
agenda, productivity and the result-code catalogue, with stand-in services."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from gateway import auth
from gateway.ui import activities
from gateway.app import create_app
from recaudo_common.errors import Conflict, InvalidInput

GESTOR = ["portfolio.read", "queues.work", "activities.read", "activities.log"]
ADMIN = GESTOR + ["portfolio.read_all", "activities.manage", "disputes.manage",
                  "reports.view", "users.manage"]


@pytest.fixture
def app():
    return create_app(testing=True)


def test_openapi_documents_the_activities_api_and_the_calendar_feed(app):
    paths = app.test_client().get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/activities", "/api/v1/activities/{activity_id}/corrections",
                 "/api/v1/accounts/{account_id}/activities", "/api/v1/accounts/{account_id}/chain",
                 "/api/v1/institutions/{institution_id}/result-codes", "/api/v1/result-codes/{code_id}",
                 "/api/v1/institutions/{institution_id}/activity-settings",
                 "/api/v1/accounts/{account_id}/promises", "/api/v1/disputes",
                 "/api/v1/disputes/{dispute_id}/resolve", "/api/v1/disputes/overdue",
                 "/api/v1/agenda", "/api/v1/agenda/ics-token", "/api/v1/productivity",
                 "/ics/{token}.ics"):
        assert path in paths, path
    body = paths["/api/v1/activities"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/ActivityWrite")
    query = {p["name"] for p in paths["/api/v1/productivity"]["get"]["parameters"]}
    assert {"date_from", "date_to", "group_by", "team_id"} <= query


def test_openapi_documents_the_contact_policy_override_of_a_logging(app):
    schemas = app.test_client().get("/api/v1/openapi.json").json["components"]["schemas"]
    override = schemas["ActivityWrite"]["properties"]["override"]
    ref = next(o["$ref"] for o in override["anyOf"] if "$ref" in o)
    justification = schemas[ref.rsplit("/", 1)[1]]["properties"]["justification"]
    assert (justification["minLength"], justification["maxLength"]) == (10, 2000)


def test_the_api_wants_credentials_but_the_calendar_feed_does_not(app):
    client = app.test_client()
    assert client.post("/api/v1/activities", json={}).status_code == 401
    assert client.get("/api/v1/agenda").status_code == 401
    assert client.get("/agenda").status_code == 302          # the UI: to the login page
    # a made-up bearer is refused before anything else, also on the feed
    assert client.get("/ics/cal_x.ics", headers={"Authorization": "Basic x"}).status_code == 401


# --- with stand-in services ---------------------------------------------------------------------

NOW = datetime.now(timezone.utc)


class FakeActivities:
    def __init__(self):
        self.logged, self.refuse, self.history_items = [], None, []
        self.codes = [
            {"id": 11, "institution_id": 1, "code": "PP", "label": "Promesa de pago",
             "contact_made": True, "needs_promise": True, "invalidates_phone": False,
             "schedules_callback": False, "active": True, "sort_order": 1},
            {"id": 12, "institution_id": 1, "code": "LLM", "label": "Llamar más tarde",
             "contact_made": False, "needs_promise": False, "invalidates_phone": False,
             "schedules_callback": True, "active": True, "sort_order": 2}]

    def account_history(self, account_id, query):
        return {"items": self.history_items, "total": len(self.history_items),
                "page": query["page"], "per_page": query["per_page"],
                "pages": 1 if self.history_items else 0}

    def get_settings(self, institution_id):
        return {"institution_id": institution_id, "dispute_sla_days": 10,
                "attribution_days": 30, "time_zone": "America/Mexico_City",
                "outbound_number": "5550001111"}

    def account_limits(self, account_id):
        return {"institution_id": 1, "max_instalments": 3, "min_first_payment": "500.00",
                "min_first_payment_pct": "20.00", "max_plan_days": 60, "offer_expiry_days": 7,
                "discount_bands": [], "stage": "delinquent", "days_past_due": 45,
                "band": {"stage": "delinquent", "dpd_from": 0, "dpd_to": 90, "thresholds": [
                    {"up_to_pct": "10.00", "approver": None},
                    {"up_to_pct": "30.00", "approver": "supervisor"}]},
                "free_pct": "10.00", "top_pct": "30.00"}

    def check_promise(self, data):
        self.checked = data
        if data.get("settlement"):
            return {"within": False, "approver": "supervisor", "reasons": [
                {"field": "settlement.discount_pct",
                 "message": "Un descuento de 25.00% requiere la aprobación de un supervisor"}],
                "settlement": {"account_id": 100, "discount_pct": "25.00", "balance": "12000.00",
                               "amount": "9000.00", "pay_by": "2026-12-14"}}
        if data["promise"].get("instalments") and len(data["promise"]["instalments"]) > 3:
            return {"within": False, "approver": "supervisor",
                    "reasons": [{"field": "promise.instalments",
                                 "message": "Más de 3 parcialidades"}]}
        return {"within": True, "reasons": [], "approver": None}

    def list_result_codes(self, institution_id, include_inactive=False):
        return self.codes

    def log_activity(self, data):
        if self.refuse:
            raise self.refuse
        self.logged.append(data)
        return {"id": 1, **data}

    def account_promises(self, account_id):
        return [{"id": 5, "activity_id": 1, "amount": "1500.00", "due_date": "2026-12-04",
                 "paid_amount": "0.00", "state": "pending", "made_on": "2026-11-23",
                 "settled_on": None, "instalments": [
                     {"number": 1, "due_date": "2026-12-04", "amount": "1500.00",
                      "paid_amount": "0.00"}]}]

    def account_disputes(self, account_id):
        return []

    def account_approvals(self, account_id):
        return [{"id": 31, "kind": "settlement", "state": "rejected", "approver": "supervisor",
                 "note": "Descuento muy alto", "terms": {
                     "amount": "8400.00", "instalments": [],
                     "settlement": {"discount_pct": "30.00"}},
                 "reasons": [{"field": "settlement.discount_pct", "message": "Requiere"}]}]

    def agenda_for(self, query):
        self.agenda_query = query
        return [{"id": 9, "institution_id": 1, "account_id": 100, "debtor_id": 42,
                 "kind": "callback", "due_at": query["date_from"] + "T17:00:00+00:00",
                 "agent_id": 3, "team_id": None, "note": "Después de las 10",
                 "done_at": None}]

    def productivity(self, query):
        self.productivity_query = query
        row = {"agent_id": 3, "activities": 4, "calls": 3, "visits": 1, "contacts": 2,
               "promises_made": 1, "promised_amount": "1500.00", "promises_kept": 0,
               "promises_broken": 0, "amount_recovered": "0.00"}
        return {"rows": [row], "totals": dict(row), "group_by": query["group_by"],
                "date_from": query["date_from"], "date_to": query["date_to"]}

    def verify_chain(self, account_id):
        return {"account_id": account_id, "ok": False, "entries": 3, "broken_id": 77,
                "broken_seq": 2, "reason": "El contenido no corresponde a su huella"}


class FakePortfolio:
    def get_debtor(self, debtor_id):
        account = {"id": 100, "institution_id": 1, "debtor_id": debtor_id,
                   "account_number": "4152-0001", "currency": "MXN", "days_past_due": 45,
                   "balance": "12000.00", "overdue_amount": "3000.00", "stage": "delinquent"}
        return {"debtor": {"id": debtor_id, "institution_id": 1, "customer_number": "C-42",
                           "name": "María López", "kind": "person", "notes": "",
                           "tax_id": None, "national_id": None},
                "institution": {"id": 1, "code": "BANCOMER", "name": "BBVA Bancomer",
                                "currency": "MXN"},
                "phones": [{"id": 1, "number": "5512345678", "kind": "mobile", "priority": 1,
                            "do_not_call": False, "valid": True},
                           {"id": 2, "number": "5587654321", "kind": "home", "priority": 2,
                            "do_not_call": True, "valid": True}],
                "emails": [], "addresses": [], "guarantors": [],
                "accounts": [{"account": account, "status": None, "movements": [],
                              "instalments": []}]}

    def debtor_scope(self, debtor_id):
        return {"id": debtor_id, "institution_id": 1, "name": "María López",
                "account_ids": [100]}

    def list_institutions(self):
        return [{"id": 1, "code": "BANCOMER", "name": "BBVA Bancomer", "currency": "MXN"}]


class FakeAuth:
    def list_teams(self):
        return [{"id": 1, "name": "Equipo Centro", "supervisor_id": 2, "supervisor": "Supervisora",
                 "members": [{"id": 3, "display_name": "Gestor Uno"}]}]

    def user_names(self, user_ids):
        known = {2: "Supervisora", 3: "Gestor Uno", 7: "Abogada Externa"}   # 7: in no team
        return [{"id": i, "display_name": known[i]} for i in user_ids if i in known]


@pytest.fixture
def fake():
    return FakeActivities()


@pytest.fixture
def services(fake):
    return {"activities": fake, "portfolio": FakePortfolio(), "auth": FakeAuth()}


def test_the_history_tab_shows_the_form_and_an_empty_history(signed_in):
    app = signed_in(GESTOR)
    page = app.test_client().get("/deudores/42?tab=gestiones").get_data(as_text=True)
    for tab in ("tab-gestiones", "tab-promesas", "tab-aclaraciones"):
        assert f'id="{tab}"' in page
    assert 'id="activity-form"' in page and "activity-form.js" in page
    assert 'name="started_at"' in page and 'id="activity-clock"' in page
    assert 'data-needs-promise="1"' in page and 'data-schedules-callback="1"' in page
    assert 'value="5512345678"' in page and "No llamar" in page      # the debtor's phones
    assert 'id="history-empty"' in page
    assert 'id="verify-chain"' not in page                          # not an administrator


def test_the_history_grid_lists_entries_with_their_agent(signed_in, fake):
    app = signed_in(ADMIN)
    fake.history_items = [{
        "id": 8, "kind": "call", "phone": "5512345678", "started_at": "2026-11-23T16:05:00+00:00",
        "ended_at": "2026-11-23T16:08:00+00:00", "result_code": "PP",
        "result_label": "Promesa de pago", "description": "Paga el viernes", "agent_id": 3,
        "details": {"promise": {"amount": "1500.00"}}, "corrected_by_id": None,
        "corrects_id": None}]
    fake.history_items += [dict(fake.history_items[0], id=9, agent_id=7),
                           dict(fake.history_items[0], id=10, agent_id=99)]
    page = app.test_client().get("/deudores/42?tab=gestiones").get_data(as_text=True)
    # named by the auth service, teams or not; an id it does not name stays an id
    assert "Abogada Externa" in page[page.index('data-activity-id="9"'):]
    assert "#99" in page[page.index('data-activity-id="10"'):]
    row = page[page.index('data-activity-id="8"'):]
    assert "10:05" in row and "10:08" in row          # in the institution's zone (UTC-6)
    assert "Promesa de pago" in row and "Paga el viernes" in row and "Gestor Uno" in row
    assert "$1,500.00" in row
    assert 'id="verify-chain"' in page


def test_a_call_with_a_promise_is_sent_to_the_service(signed_in, fake):
    app = signed_in(GESTOR)
    started = (NOW - timedelta(minutes=2)).isoformat()
    due = (date.today() + timedelta(days=5)).isoformat()
    response = app.test_client().post("/deudores/42/gestiones", data={
        "csrf_token": "csrf", "account_id": "100", "kind": "call", "direction": "outbound",
        "phone": "5512345678", "started_at": started, "result_code_id": "11",
        "description": "Paga el viernes", "promise_amount": "$1,500.00",
        "promise_due_date": due, "idempotency_key": "k-1", "callback_at": ""})
    assert response.status_code == 302
    assert "tab=gestiones" in response.headers["Location"]
    assert "done=logged" in response.headers["Location"]
    sent = fake.logged[0]
    assert sent["promise"] == {"amount": "1500.00", "due_date": due}
    assert sent["started_at"] == started and sent["idempotency_key"] == "k-1"
    assert datetime.fromisoformat(sent["ended_at"]) >= datetime.fromisoformat(started)
    assert "callback_at" not in sent


def test_a_callback_is_read_in_the_institutions_zone(signed_in, fake):
    app = signed_in(GESTOR)
    app.test_client().post("/deudores/42/gestiones", data={
        "csrf_token": "csrf", "account_id": "100", "kind": "call",
        "started_at": NOW.isoformat(), "result_code_id": "12",
        "callback_at": "2026-12-01T10:30", "callback_note": "Tarde"})
    sent = fake.logged[0]
    assert sent["callback_at"] == "2026-12-01T10:30:00-06:00" and "promise" not in sent


def test_a_refused_form_comes_back_with_the_problems_and_nothing_lost(signed_in, fake):
    app = signed_in(GESTOR)
    fake.refuse = InvalidInput("Datos inválidos", {
        "promise": {"due_date": ["La fecha ya pasó"]}, "description": ["A lo más 4000 caracteres"]})
    started = (NOW - timedelta(minutes=1)).isoformat()
    response = app.test_client().post("/deudores/42/gestiones", data={
        "csrf_token": "csrf", "account_id": "100", "kind": "visit", "started_at": started,
        "result_code_id": "11", "description": "Texto que no se pierde",
        "promise_amount": "250", "promise_due_date": "2020-01-01", "idempotency_key": "k-2"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="err-promise_due_date"' in page and "La fecha ya pasó" in page
    assert 'id="err-description"' in page and "Texto que no se pierde" in page
    assert 'value="250"' in page and 'value="2020-01-01"' in page
    assert f'value="{started}"' in page and 'value="k-2"' in page     # same start, same key
    assert '<option value="visit" selected>' in page


POLICY_FORM = {"csrf_token": "csrf", "account_id": "100", "kind": "call", "direction": "outbound",
               "phone": "5587654321", "result_code_id": "12", "callback_at": "",
               "description": "Pidió que no le llamen", "idempotency_key": "k-3"}


def test_a_contact_policy_refusal_is_shown_next_to_its_field(signed_in, fake):
    app = signed_in(GESTOR)
    started = (NOW - timedelta(minutes=4)).isoformat()
    fake.refuse = Conflict("Fuera del horario permitido", {"started_at": [
        "Fuera del horario permitido (07:00-22:00 hora local del deudor; allí son las 23:10)"]})
    response = app.test_client().post("/deudores/42/gestiones",
                                      data={**POLICY_FORM, "started_at": started})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert 'id="err-started_at"' in page and "allí son las 23:10" in page
    assert f'value="{started}"' in page and "Pidió que no le llamen" in page   # nothing lost
    assert 'id="justification"' not in page            # a collector cannot override
    option = page[page.index('<option value="5587654321"'):]
    assert "disabled" in option[:option.index(">")]       # nor pick a do-not-call phone
    fake.refuse = Conflict("No llamar", {"phone": ["El deudor pidió no ser contactado"]})
    page = app.test_client().post("/deudores/42/gestiones", data={
        **POLICY_FORM, "started_at": started}).get_data(as_text=True)
    assert 'id="err-phone"' in page and "no ser contactado" in page


def test_an_administrator_overrides_a_refusal_with_a_justification(signed_in, fake):
    app = signed_in(ADMIN)
    client = app.test_client()
    form = client.get("/deudores/42?tab=gestiones").get_data(as_text=True)
    option = form[form.index('<option value="5587654321"'):]
    assert "disabled" not in option[:option.index(">")]   # an admin may pick a do-not-call phone
    assert 'id="justification"' in form
    started = (NOW - timedelta(minutes=4)).isoformat()
    fake.refuse = Conflict("No llamar", {"phone": ["El deudor pidió no ser contactado"]})
    page = client.post("/deudores/42/gestiones", data={**POLICY_FORM, "started_at": started}
                       ).get_data(as_text=True)
    assert 'id="err-phone"' in page and 'id="err-justification"' in page
    fake.refuse = None
    response = client.post("/deudores/42/gestiones", data={
        **POLICY_FORM, "started_at": started, "justification": "  Orden judicial vigente "})
    assert response.status_code == 302
    assert fake.logged[0]["override"] == {"justification": "Orden judicial vigente"}
    assert fake.logged[0]["phone"] == "5587654321"
    fake.refuse = InvalidInput("Datos inválidos", {"override": {"justification": [
        "Entre 10 y 2000 caracteres"]}})
    page = client.post("/deudores/42/gestiones", data={
        **POLICY_FORM, "started_at": started, "justification": "corta"}).get_data(as_text=True)
    assert 'id="err-override"' in page and 'value="corta"' in page


def test_an_amount_that_is_no_number_is_refused_before_the_service(signed_in, fake):
    app = signed_in(GESTOR)
    response = app.test_client().post("/deudores/42/gestiones", data={
        "csrf_token": "csrf", "account_id": "100", "kind": "call",
        "started_at": NOW.isoformat(), "result_code_id": "11", "promise_amount": "mil",
        "promise_due_date": "2030-01-01"})
    assert response.status_code == 422 and not fake.logged
    assert "Escriba un importe" in response.get_data(as_text=True)


def test_promises_tab_and_a_collector_without_the_log_permission(signed_in):
    app = signed_in(["portfolio.read", "activities.read"])
    client = app.test_client()
    promises = client.get("/deudores/42?tab=promesas").get_data(as_text=True)
    assert 'data-promise-id="5"' in promises and "Pendiente" in promises
    history = client.get("/deudores/42?tab=gestiones").get_data(as_text=True)
    assert 'id="activity-form"' not in history
    assert client.post("/deudores/42/gestiones", data={"csrf_token": "csrf"}).status_code == 403
    disputes = client.get("/deudores/42?tab=aclaraciones").get_data(as_text=True)
    assert 'id="disputes-empty"' in disputes and 'id="dispute-form"' not in disputes


def test_the_tabs_stay_hidden_without_activities_read(signed_in):
    app = signed_in(["portfolio.read"])
    page = app.test_client().get("/deudores/42").get_data(as_text=True)
    assert 'id="tab-gestiones"' not in page and 'id="agenda-link"' not in page


def test_agenda_week_and_productivity(signed_in, fake):
    app = signed_in(ADMIN)
    client = app.test_client()
    week = client.get("/agenda?vista=semana&fecha=2026-11-25").get_data(as_text=True)
    assert fake.agenda_query["date_from"] == "2026-11-23"
    assert fake.agenda_query["date_to"] == "2026-11-29"
    assert 'data-item-id="9"' in week and "Después de las 10" in week and 'id="create-feed"' in week
    assert 'id="agenda-link"' in week and 'id="productivity-link"' in week

    table = client.get("/productividad?desde=2026-11-01&hasta=2026-11-23&agrupar=agent"
                       "&agrupar=day").get_data(as_text=True)
    assert fake.productivity_query["group_by"] == ["agent", "day"]
    assert 'id="productivity-table"' in table and "Gestor Uno" in table and "$1,500.00" in table
    bad = client.get("/productividad?desde=ayer")
    assert bad.status_code == 422 and 'id="err-desde"' in bad.get_data(as_text=True)


def test_chain_check_and_result_code_catalogue(signed_in):
    app = signed_in(ADMIN)
    client = app.test_client()
    chain = client.get("/cuentas/100/cadena", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'id="chain-broken"' in chain and "77" in chain
    codes = client.get("/admin/codigos-resultado?institucion=1").get_data(as_text=True)
    assert 'data-code="PP"' in codes and 'id="tab-result-codes"' in codes
    assert 'id="settings-form"' in codes
    edit = client.get("/admin/codigos-resultado?institucion=1&editar=12").get_data(as_text=True)
    assert 'value="LLM"' in edit and 'name="code_id" value="12"' in edit
    assert client.get("/admin/codigos-resultado?editar=999").status_code == 404


def test_english_labels(signed_in):
    app = signed_in(GESTOR)
    client = app.test_client()
    client.set_cookie("lang", "en")
    page = client.get("/deudores/42?tab=gestiones").get_data(as_text=True)
    assert "Log an activity" in page and "Activity history" in page and ">Activities<" in page


def test_agent_names_are_asked_for_in_batches_the_auth_service_accepts():
    from auth.contracts import MAX_NAMES

    calls = []

    class Auth:
        def user_names(self, user_ids):
            calls.append(len(user_ids))
            return [{"id": i, "display_name": f"Gestor {i}"} for i in user_ids]

    class Proxy:
        auth = Auth()

    names = activities.agent_names(Proxy(), list(range(1, MAX_NAMES + 2)) + [None, 1])
    assert calls == [MAX_NAMES, 1]
    assert len(names) == MAX_NAMES + 1 and names[MAX_NAMES + 1] == f"Gestor {MAX_NAMES + 1}"
    assert activities.agent_names(Proxy(), [None]) == {} and calls == [MAX_NAMES, 1]


def test_a_logging_through_the_api_is_validated_once_by_the_service(signed_in, fake, monkeypatch):
    """The body goes to the service as sent (with the header's key): the gateway does not
    load it too; the service's refusal answers 422 naming the field."""
    from activities.contracts import ActivityWrite

    app = signed_in(GESTOR)
    loads = []
    real = ActivityWrite.load
    monkeypatch.setattr(ActivityWrite, "load",
                        lambda self, *a, **k: loads.append(1) or real(self, *a, **k))
    client = app.test_client()
    headers = {auth.CSRF_HEADER: "csrf", "Idempotency-Key": " api-1 "}
    body = {"account_id": 100, "kind": "call", "started_at": NOW.isoformat(),
            "result_code": "CT", "description": "Se habló con el titular"}
    answer = client.post("/api/v1/activities", json=body, headers=headers)
    assert answer.status_code == 201 and loads == []
    assert fake.logged == [{**body, "idempotency_key": "api-1"}]

    fake.refuse = InvalidInput("Datos inválidos", {"kind": ["Debe ser uno de: call."]})
    refused = client.post("/api/v1/activities", json={**body, "kind": "telegrama"},
                          headers=headers)
    assert refused.status_code == 422 and "kind" in refused.json["error"]["fields"]
    malformed = client.post("/api/v1/activities", data="{", headers=headers,
                            content_type="application/json")
    assert malformed.status_code == 400 and len(fake.logged) == 1


def test_the_form_shows_the_limits_of_the_account_and_the_institutions_caller_id(signed_in):
    app = signed_in(GESTOR)
    page = app.test_client().get("/deudores/42?tab=gestiones").get_data(as_text=True)
    limits = page[page.index('id="promise-limits"'):]
    assert "hasta 3 pagos" in limits and "$500.00" in limits and "20.00%" in limits
    assert "60 días" in limits and "Moroso" in limits and "45 días de atraso" in limits
    band = limits[limits.index('id="discount-band"'):]
    assert "hasta 10.00%: sin aprobación" in band and "hasta 30.00%: aprueba un supervisor" in band
    assert 'hx-get="/deudores/42/gestiones/limites?account_id=100"' in page
    assert 'id="caller_id"' in page and 'value="5550001111"' in page
    assert "Número desde el que llama" in page


def test_the_verdict_before_sending_is_the_services(signed_in, fake):
    client = signed_in(GESTOR).test_client()
    due = (date.today() + timedelta(days=5)).isoformat()
    within = client.get("/deudores/42/gestiones/limites", query_string={
        "account_id": "100", "promise_amount": "$1,500", "promise_due_date": due})
    assert within.status_code == 200 and 'id="promise-within"' in within.get_data(as_text=True)
    assert fake.checked == {"account_id": 100, "promise": {"amount": "1500", "due_date": due}}
    plan = {f"plan_{f}_{n}": (due if f == "due_date" else "100") for n in range(4)
            for f in ("due_date", "amount")}
    outside = client.get("/deudores/42/gestiones/limites",
                         query_string={"account_id": "100", **plan}).get_data(as_text=True)
    assert 'id="promise-needs-approval"' in outside and "Más de 3 parcialidades" in outside
    assert "un supervisor" in outside
    assert len(fake.checked["promise"]["instalments"]) == 4
    empty = client.get("/deudores/42/gestiones/limites", query_string={"account_id": "100"})
    assert empty.status_code == 200 and "promise-" not in empty.get_data(as_text=True)


def test_an_outbound_call_is_sent_with_the_number_it_went_out_from(signed_in, fake):
    client = signed_in(GESTOR).test_client()
    form = {"csrf_token": "csrf", "account_id": "100", "kind": "call", "direction": "outbound",
            "phone": "5512345678", "started_at": NOW.isoformat(), "result_code_id": "12",
            "callback_at": "2026-12-01T10:30", "caller_id": "55 5000 2222"}
    client.post("/deudores/42/gestiones", data=form)
    assert fake.logged[-1]["caller_id"] == "55 5000 2222"
    client.post("/deudores/42/gestiones", data={**form, "direction": "inbound"})
    assert "caller_id" not in fake.logged[-1]


def test_a_caller_id_refusal_is_told_next_to_the_field_in_plain_words(signed_in, fake):
    fake.refuse = Conflict("Llamada sin identificador", {
        "caller_id": ["La llamada debe salir de un número conocido"], "rule": ["caller_id"],
        "reason": ["La llamada debe salir de un número conocido"], "policy_version": ["MX-1"]})
    response = signed_in(GESTOR).test_client().post("/deudores/42/gestiones", data={
        "csrf_token": "csrf", "account_id": "100", "kind": "call", "direction": "outbound",
        "phone": "5512345678", "started_at": NOW.isoformat(), "result_code_id": "12",
        "callback_at": "2026-12-01T10:30", "caller_id": ""})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert 'id="err-caller_id"' in page
    assert "regla «Identificador de llamada», política MX-1" in page


def test_a_settlement_typed_in_the_form_is_judged_and_sent_as_one(signed_in, fake):
    client = signed_in(GESTOR).test_client()
    verdict = client.get("/deudores/42/gestiones/limites", query_string={
        "account_id": "100", "settlement_discount_pct": "25%", "promise_amount": "99"}
        ).get_data(as_text=True)
    assert fake.checked == {"account_id": 100,
                            "settlement": {"discount_pct": "25", "pay_by": None}}
    assert 'id="settlement-terms"' in verdict and "$9,000.00" in verdict
    assert 'id="promise-needs-approval"' in verdict and "25.00%" in verdict
    client.post("/deudores/42/gestiones", data={
        "csrf_token": "csrf", "account_id": "100", "kind": "call", "direction": "outbound",
        "phone": "5512345678", "started_at": NOW.isoformat(), "result_code_id": "11",
        "settlement_discount_pct": "25", "promise_due_date": "2026-12-10"})
    sent = fake.logged[-1]
    assert sent["settlement"] == {"discount_pct": "25", "pay_by": "2026-12-10"}
    assert "promise" not in sent


def test_a_settlement_refused_is_told_next_to_its_field(signed_in, fake):
    fake.refuse = InvalidInput("Descuento no permitido", {"settlement": {"discount_pct": [
        "El descuento máximo que puede pedirse es 40.00%"]}})
    response = signed_in(GESTOR).test_client().post("/deudores/42/gestiones", data={
        "csrf_token": "csrf", "account_id": "100", "kind": "visit", "started_at": NOW.isoformat(),
        "result_code_id": "11", "settlement_discount_pct": "90"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and 'id="err-settlement_discount_pct"' in page
    assert "40.00%" in page and 'value="90"' in page


def test_the_promises_tab_tells_the_agent_what_an_approver_refused(signed_in):
    page = signed_in(GESTOR).test_client().get("/deudores/42?tab=promesas").get_data(as_text=True)
    refused = page[page.index('id="account-approval-31"'):]
    assert "Rechazada" in refused and "Descuento muy alto" in refused
    assert "liquidación con 30.00% de descuento" in refused and "$8,400.00" in refused
