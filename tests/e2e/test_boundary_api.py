"""Input at the boundary, against the running stack: every input class a fuzzer found
answering 500 now answers 4xx with the usual error body naming the field (API and UI);
redirects never leave the site; an unknown referenced institution is refused and nothing
stored; and every list endpoint reads each of its filters from the query string (the list
comes from the OpenAPI document, so a new filter is covered without touching this file).
"""
from __future__ import annotations

import secrets
from datetime import date, datetime, timezone

import pytest
import requests

from .helpers import Api, sql, token

RUN = secrets.token_hex(3)
INT4_MAX = 2 ** 31 - 1
INT8_MAX = 2 ** 63 - 1
UNKNOWN_INSTITUTION = 999_999


@pytest.fixture(scope="module")
def world(stack, demo_users):
    base = stack.base_url
    admin = Api(base, token(base, "admin", demo_users))
    account = admin.ok("GET", "/api/v1/accounts?institution_id=1&per_page=1")["items"][0]
    yield {"base": base, "admin": admin, "account": account,
           "anonymous": Api(base, None)}
    for table in ("portfolio.statuses", "activities.result_codes", "messaging.templates",
                  "messaging.match_patterns", "messaging.mailboxes", "queues.strategies",
                  "reports.schedules", "activities.institution_settings"):
        sql(f"DELETE FROM {table} WHERE institution_id = :i", i=UNKNOWN_INSTITUTION)
    sql("DELETE FROM messaging.mailboxes WHERE name = :n", n=f"e2e-filtros-{RUN}")


def _refused(answer: requests.Response, status: int, field: str | None = None) -> dict:
    assert answer.status_code == status, (answer.status_code, answer.text[:500])
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    if field is not None:
        assert any(name == field or name.startswith(field + ".") for name in error["fields"]), \
            error
    return error


# --- every input class the fuzzer found -------------------------------------------------------

def test_deep_json_answers_422_even_before_login(world):
    anonymous = world["anonymous"]
    deep = "[" * 1000 + "]" * 1000
    answer = anonymous.http.post(world["base"] + "/api/v1/auth/token", data=deep, timeout=30,
                                 headers={"Content-Type": "application/json"})
    assert _refused(answer, 422)["fields"]


def test_strategy_conditions_nested_500_deep_answer_422_naming_them(world):
    conditions = '{"all": [' * 500 + '{"all": []}' + "]}" * 500   # written out: too deep to dump
    body = ('{"institution_id": 1, "name": "e2e-profunda-%s", "queues": [{"name": "Profunda", '
            '"sort": [], "team_id": 1, "conditions": %s}]}' % (RUN, conditions))
    answer = world["admin"].http.post(world["base"] + "/api/v1/strategies", data=body,
                                      headers={"Content-Type": "application/json"}, timeout=30)
    _refused(answer, 422, "queues.0.conditions")


@pytest.mark.parametrize("path", [
    f"/api/v1/users/{INT4_MAX + 1}", f"/api/v1/institutions/{INT4_MAX + 1}",
    f"/api/v1/accounts/{INT8_MAX + 1}", f"/api/v1/debtors/{INT8_MAX + 1}",
    f"/api/v1/activities/{INT8_MAX + 1}", f"/api/v1/templates/{INT4_MAX + 1}",
    f"/api/v1/report-schedules/{INT4_MAX + 1}/runs", f"/api/v1/strategies/{INT4_MAX + 1}"])
def test_ids_beyond_their_column_answer_404_like_missing(world, path):
    _refused(world["admin"].call("GET", path), 404)


@pytest.mark.parametrize("query,field", [
    ("dpd_min=99999999999", "dpd_min"), ("institution_id=2147483648", "institution_id"),
    ("status_id=-2147483649", "status_id"), ("assigned_agent_id=9223372036854775808",
                                             "assigned_agent_id"),
    ("q=%00", "q"), ("q=a%00b", "q")])
def test_query_strings_out_of_range_or_with_nul_answer_422_naming_the_field(world, query, field):
    _refused(world["admin"].call("GET", "/api/v1/accounts?" + query), 422, field)


@pytest.mark.parametrize("method,path,body,field", [
    ("POST", "/api/v1/activities", {"account_id": 12345678901234567890, "kind": "note",
                                    "started_at": "2026-01-01T10:00:00Z"}, "account_id"),
    ("POST", "/api/v1/disputes", {"account_id": INT8_MAX + 1, "reason": "x"}, "account_id"),
    ("POST", "/api/v1/report-schedules", {"institution_id": INT4_MAX + 1}, "institution_id"),
    ("POST", "/api/v1/statuses", {"institution_id": INT4_MAX + 1, "code": "X", "name": "X"},
     "institution_id"),
    ("PATCH", "/api/v1/auth/me", {"display_name": "nul\u0000"}, "display_name"),
    ("PATCH", "/api/v1/auth/me", {"display_name": "\ud800"}, "display_name"),
])
def test_bodies_out_of_range_or_unstorable_answer_422_naming_the_field(world, method, path,
                                                                       body, field):
    import json
    answer = world["admin"].http.request(
        method, world["base"] + path, timeout=30, headers={"Content-Type": "application/json"},
        data=json.dumps(body))   # json.dumps writes a lone surrogate as \ud800, as a client would
    _refused(answer, 422, field)


def test_the_ui_answers_a_nul_in_a_search_with_a_page_not_a_crash(world, stack, demo_users):
    browser = requests.Session()
    page = browser.get(stack.url("/login"), timeout=30)
    import re
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    logged = browser.post(stack.url("/login"), timeout=30, allow_redirects=False, data={
        "csrf_token": csrf, "username": "admin", "password": demo_users})
    assert logged.status_code == 302, logged.text[:300]
    answer = browser.get(stack.url("/cartera?q=%00"), timeout=30)
    assert answer.status_code == 422 and "<html" in answer.text.lower()
    assert browser.get(stack.url("/cartera?q=juan"), timeout=30).status_code == 200
    # an id the gateway reads for itself, beyond its column: a page, not a crash
    assert browser.get(stack.url("/correo/buzones?editar=99999999999"), timeout=30
                       ).status_code == 422
    # a signed-in user's login page with next=: only this site's paths
    for target in ("/%09/evil.example", "//evil.example", "/%5Cevil.example"):
        moved = browser.get(stack.url(f"/login?next={target}"), timeout=30,
                            allow_redirects=False)
        assert moved.status_code == 302 and moved.headers["Location"] == "/", target


@pytest.mark.parametrize("target", ["/%09/evil.example", "/%0A/x", "/%0D%0ALocation:%20x",
                                    "//evil.example", "/%5C%5Cevil.example", "https://evil.example"])
def test_the_language_switch_never_redirects_off_site(world, stack, target):
    answer = requests.get(stack.url(f"/idioma/es?next={target}"), allow_redirects=False,
                          timeout=30)
    assert answer.status_code == 302 and answer.headers["Location"] == "/", target


# --- unknown referenced ids are refused, never stored ---------------------------------------------

@pytest.mark.parametrize("path,body", [
    ("/api/v1/statuses", {"code": "E2E", "name": "e2e", "sort_order": 1}),
    ("/api/v1/result-codes", {"code": "E2E", "label": "e2e"}),
    ("/api/v1/templates", {"name": "e2e", "subject_es": "Hola", "text_es": "Hola"}),
    ("/api/v1/match-patterns", {"name": "e2e", "target": "account_number",
                                "regex": r"F-(\d+)"}),
    ("/api/v1/mailboxes", {"name": "e2e", "address": "e2e@recaudo.test",
                           "imap_host": "127.0.0.1", "imap_port": 1, "imap_tls": False,
                           "imap_user": "e2e", "imap_password": "e2e-clave",
                           "smtp_host": "127.0.0.1", "smtp_port": 1, "smtp_security": "none"}),
    ("/api/v1/strategies", {"name": "e2e", "queues": [{
        "name": "Resto", "conditions": {"all": []}, "team_id": 1,
        "sort": [{"field": "account_id", "direction": "asc"}]}]}),
])
def test_an_unknown_institution_is_refused_and_nothing_is_stored(world, path, body):
    answer = world["admin"].call("POST", path, {**body, "institution_id": UNKNOWN_INSTITUTION})
    _refused(answer, 404, "institution_id")
    for table in ("portfolio.statuses", "activities.result_codes", "messaging.templates",
                  "messaging.match_patterns", "messaging.mailboxes", "queues.strategies",
                  "activities.institution_settings"):
        assert sql(f"SELECT count(*) FROM {table} WHERE institution_id = :i",
                   i=UNKNOWN_INSTITUTION)[0][0] == 0, table


def test_a_user_given_an_unknown_institution_is_refused_and_not_stored(world):
    admin = world["admin"]
    gestor = next(u for u in admin.ok("GET", "/api/v1/users?per_page=200")["items"]
                  if u["username"] == "gestor1")
    username = f"e2e-sin-inst-{RUN}"
    answer = admin.call("POST", "/api/v1/users", {
        "username": username, "display_name": "e2e", "password": "e2e-clave-muy-larga-1",
        "profile_id": gestor["profile_id"], "institutions": [1, UNKNOWN_INSTITUTION]})
    _refused(answer, 404, "institutions")
    assert sql("SELECT count(*) FROM auth.users WHERE username = :u", u=username)[0][0] == 0
    _refused(admin.call("PATCH", f"/api/v1/users/{gestor['id']}",
                        {"institutions": [UNKNOWN_INSTITUTION]}), 404, "institutions")
    assert sql("SELECT institutions FROM auth.users WHERE id = :i", i=gestor["id"]
               )[0][0] == gestor["institutions"]


def test_reading_an_unknown_institutions_catalogue_makes_none(world):
    admin = world["admin"]
    for path in (f"/api/v1/institutions/{UNKNOWN_INSTITUTION}/result-codes",
                 f"/api/v1/institutions/{UNKNOWN_INSTITUTION}/activity-settings"):
        _refused(admin.call("GET", path), 404)
    assert sql("SELECT count(*) FROM activities.result_codes WHERE institution_id = :i",
               i=UNKNOWN_INSTITUTION)[0][0] == 0


# --- every list endpoint reads each of its filters from the query string -----------------------

def _known_ids(world) -> dict:
    """Real ids for the filters that must name something that exists."""
    admin, account = world["admin"], world["account"]
    users = {u["username"]: u for u in admin.ok("GET", "/api/v1/users?per_page=200")["items"]}
    mailbox = admin.ok("POST", "/api/v1/mailboxes", {
        "institution_id": 1, "name": f"e2e-filtros-{RUN}", "address": "filtros@recaudo.test",
        "imap_host": "127.0.0.1", "imap_port": 1, "imap_tls": False, "imap_user": "e2e",
        "imap_password": "e2e-clave", "smtp_host": "127.0.0.1", "smtp_port": 1,
        "smtp_security": "none"}, status=201)
    teams = admin.ok("GET", "/api/v1/teams")
    queues = sql("SELECT id FROM queues.queues ORDER BY id LIMIT 1")
    return {
        "account_id": account["account_id"], "debtor_id": account["debtor_id"], "institution_id": 1,
        "agent_id": users["gestor1"]["id"], "assigned_agent_id": users["gestor1"]["id"],
        "profile_id": users["gestor1"]["profile_id"],
        "team_id": teams[0]["id"] if teams else 1,
        "queue_id": queues[0][0] if queues else 1,
        "status_id": sql("SELECT id FROM portfolio.statuses WHERE institution_id = 1 "
                         "ORDER BY id LIMIT 1")[0][0],
        "mailbox_id": mailbox["id"], "job_id": _first("portfolio.import_jobs"),
        "link_id": _first("documents.share_links"),
        # a partner's subscription, inactive: nothing is ever delivered to it
        "subscription_id": sql(
            "INSERT INTO messaging.webhook_subscriptions (institution_id, owner_id, "
            "contact_email, url, events, secret_sealed, active) VALUES (1, :owner, "
            "'filtros@recaudo.test', 'https://socio.example/e2e', '[]', 'e2e', false) "
            "RETURNING id", owner=users["admin"]["id"])[0][0]}


def _first(table: str) -> int:
    """The oldest row's id (1, missing, when there is none: the query string is still read
    before the service looks for it)."""
    rows = sql(f"SELECT id FROM {table} ORDER BY id LIMIT 1")
    return rows[0][0] if rows else 1


SPECIAL_VALUES = {"time_zone": "America/Mexico_City", "group_by": "institution",
                  "header_name": "X-Folio", "jurisdiction": "MX"}


def _value(name: str, schema: dict, known: dict):
    if name in SPECIAL_VALUES:
        return SPECIAL_VALUES[name]
    if schema.get("enum"):
        return schema["enum"][0]
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "array":
        return _value(name, schema.get("items", {}), known)
    if kind == "integer":
        return known.get(name, 1)
    if kind == "number":
        return "10.5"
    if kind == "boolean":
        return "true"
    if fmt == "date":
        return date.today().isoformat()
    if fmt == "date-time":
        return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return "a"


def _list_endpoint_filters(spec: dict):
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if not get:
            continue
        parameters = operations.get("parameters", []) + get.get("parameters", [])
        for parameter in parameters:
            if parameter["in"] == "query":
                yield path, [p["name"] for p in parameters if p["in"] == "path"], parameter


def test_every_list_endpoint_takes_each_of_its_filters_from_the_query_string(world):
    admin = world["admin"]
    spec = admin.ok("GET", "/api/v1/openapi.json")
    known = _known_ids(world)
    cases = list(_list_endpoint_filters(spec))
    assert len(cases) > 80, "the document lists the filters"
    wrong = []

    def problems_with(url: str, name: str, value) -> tuple[int, set]:
        answer = admin.http.get(world["base"] + url, params={name: value}, timeout=60)
        if answer.status_code < 400 or answer.status_code >= 500 or \
                not answer.headers.get("Content-Type", "").startswith("application/json"):
            return answer.status_code, set()
        return answer.status_code, set(answer.json()["error"]["fields"].get(name, ()))

    for path, path_names, parameter in cases:
        missing = [n for n in path_names if n not in known]
        assert not missing, f"{path}: give this test a real {missing} for the path"
        url, name = path.format(**known), parameter["name"]
        value = _value(name, parameter.get("schema", {}), known)
        status, problems = problems_with(url, name, value)
        # what the endpoint says of a value that is not of the filter's type at all: the
        # good value must not get that (a filter read and refused, "Equipo desconocido",
        # is the service's answer, not a parsing problem)
        unreadable = problems_with(url, name, "x")[1] if problems else set()
        if status >= 500 or problems & unreadable:
            wrong.append((path, name, value, status, sorted(problems)))
    assert wrong == [], "\n".join(map(str, wrong))
