"""The portfolio API against the running stack: "ver cartera" (search, filters, sorting,
pages), the debtor's 360° view, notes, account changes, statuses, imports, and who sees
what (a creditor only its institution, a collector only the accounts assigned to them).

The demo portfolio (5,000 debtors over three institutions) comes from ``recaudo seed``
in demo mode (the ``demo_users`` fixture seeds users and portfolio together). Answers
are checked against the test database itself, read with SQL, so rows other tests add
(imports) do not break them.
"""
from __future__ import annotations

import math
import secrets
import time
import unicodedata
from decimal import Decimal

import pytest
import requests
from sqlalchemy import create_engine, text

from recaudo_common.config import settings
from recaudo_common.demo import USER_IDS

from .conftest import ROOT

DEMO_CSV = ROOT / "deploy" / "demo" / "bancomer_cartera.csv"
RUN = secrets.token_hex(3)


# --- fixtures ----------------------------------------------------------------------------

class Api:
    def __init__(self, base_url: str, token: str):
        self.base_url, self.http = base_url, requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **params):
        response = self.call("GET", path, params=params)
        assert response.status_code == 200, (path, params, response.text[:500])
        return response.json()


@pytest.fixture(scope="module")
def api(stack, demo_users):
    """username -> an Api client with that demo user's access token."""
    clients = {}

    def client(username: str) -> Api:
        if username not in clients:
            answer = requests.post(stack.url("/api/v1/auth/token"), timeout=30, json={
                "username": username, "password": demo_users})
            assert answer.status_code == 200, answer.text
            clients[username] = Api(stack.base_url, answer.json()["access_token"])
        return clients[username]

    return client


@pytest.fixture(scope="module")
def db(demo_users):
    engine = create_engine(settings().database_url)

    def query(sql: str, **params):
        with engine.connect() as conn:
            return conn.execute(text(sql), params).all()

    yield query
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM portfolio.statuses WHERE code LIKE :prefix"),
                     {"prefix": f"E2E_{RUN.upper()}%"})
    engine.dispose()


@pytest.fixture(scope="module")
def sample(db):
    """A demo debtor of institution 1 with a valid phone and an email, and one of
    institution 2 (for the scope checks)."""
    row = db("""
        SELECT d.id, d.name, d.customer_number, a.id AS account_id, a.account_number,
               (SELECT number FROM portfolio.phones p WHERE p.debtor_id = d.id AND p.valid
                ORDER BY p.priority LIMIT 1) AS phone,
               (SELECT address FROM portfolio.emails e WHERE e.debtor_id = d.id LIMIT 1) AS email
        FROM portfolio.debtors d JOIN portfolio.accounts a ON a.debtor_id = d.id
        WHERE d.institution_id = 1 AND d.kind = 'person'
          AND EXISTS (SELECT 1 FROM portfolio.emails e WHERE e.debtor_id = d.id)
          AND EXISTS (SELECT 1 FROM portfolio.phones p WHERE p.debtor_id = d.id AND p.valid)
        ORDER BY d.id LIMIT 1""")[0]
    other = db("""SELECT d.id, a.id FROM portfolio.debtors d
                  JOIN portfolio.accounts a ON a.debtor_id = d.id
                  WHERE d.institution_id = 2 ORDER BY d.id LIMIT 1""")[0]
    return {**row._mapping, "other_debtor_id": other[0], "other_account_id": other[1]}


def _ids(page) -> list[int]:
    return [item["debtor_id"] for item in page["items"]]


def _plain(text: str) -> str:
    """Lower case without accents, as the search compares names."""
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c)).lower()


# --- the list: sorting, filters, pages ------------------------------------------------------

def test_list_answers_rows_most_delinquent_first(api, db):
    page = api("supervisor").get("/api/v1/accounts", per_page=50)
    assert page["page"] == 1 and page["per_page"] == 50 and len(page["items"]) == 50
    assert set(page["items"][0]) >= {
        "account_id", "account_number", "debtor_id", "customer_number", "name",
        "days_past_due", "phone", "assigned_agent_id", "institution_id", "institution",
        "stage", "status", "balance", "overdue_amount", "currency"}
    dpd = [item["days_past_due"] for item in page["items"]]
    assert dpd == sorted(dpd, reverse=True)
    accounts = db("SELECT count(*) FROM portfolio.accounts")[0][0]
    assert page["total"] == min(accounts, 10_000)
    assert page["total_is_exact"] is (accounts <= 10_000)
    assert page["items"][0]["days_past_due"] == db(
        "SELECT max(days_past_due) FROM portfolio.accounts")[0][0]


@pytest.mark.parametrize("sort,order", [
    ("balance", "a.balance"), ("-balance", "a.balance DESC"),
    ("-overdue_amount", "a.overdue_amount DESC"), ("days_past_due", "a.days_past_due"),
    ("name", "d.name"), ("-customer_number", "d.customer_number DESC"),
    ("account_number", "a.account_number"),
])
def test_list_sorts_by_each_column(api, db, sort, order):
    """The same order as the database's (its collation decides text), ties by account id."""
    items = api("supervisor").get("/api/v1/accounts", sort=sort, per_page=100)["items"]
    expected = db(f"""SELECT a.id FROM portfolio.accounts a
                      JOIN portfolio.debtors d ON d.id = a.debtor_id
                      ORDER BY {order}, a.id LIMIT 100""")
    assert [i["account_id"] for i in items] == [row[0] for row in expected]


def test_filters_narrow_the_list(api, db):
    client = api("supervisor")
    statuses = client.get("/api/v1/institutions/1/statuses")
    in_process = next(s for s in statuses if s["code"] == "EN_GESTION")
    page = client.get("/api/v1/accounts", institution_id=1, stage="delinquent",
                      status_id=in_process["id"], dpd_min=30, dpd_max=120,
                      balance_min="10000", balance_max="200000", per_page=200)
    assert page["items"]
    for item in page["items"]:
        assert item["institution_id"] == 1 and item["institution"] == "BANCOMER"
        assert item["stage"] == "delinquent" and item["status"] == in_process["name"]
        assert 30 <= item["days_past_due"] <= 120
        assert Decimal("10000") <= Decimal(item["balance"]) <= Decimal("200000")
    expected = db("""SELECT count(*) FROM portfolio.accounts WHERE institution_id = 1
                     AND stage = 'delinquent' AND status_id = :status
                     AND days_past_due BETWEEN 30 AND 120 AND balance BETWEEN 10000 AND 200000""",
                  status=in_process["id"])[0][0]
    assert page["total"] == expected

    litigation = client.get("/api/v1/accounts", stage="litigation", per_page=200)
    assert litigation["items"] and {i["stage"] for i in litigation["items"]} == {"litigation"}
    mine = client.get("/api/v1/accounts", assigned_agent_id=USER_IDS["gestor2"], per_page=200)
    assert mine["items"] and {i["assigned_agent_id"] for i in mine["items"]} == \
        {USER_IDS["gestor2"]}


def test_pages_do_not_overlap_and_count_right(api):
    client = api("supervisor")
    first = client.get("/api/v1/accounts", institution_id=3, per_page=25, sort="account_number")
    second = client.get("/api/v1/accounts", institution_id=3, per_page=25, page=2,
                        sort="account_number")
    assert first["pages"] == math.ceil(first["total"] / 25) and first["pages"] > 2
    assert second["page"] == 2 and len(second["items"]) == 25
    assert not {i["account_id"] for i in first["items"]} & {i["account_id"] for i in second["items"]}
    beyond = client.get("/api/v1/accounts", institution_id=3, per_page=25,
                        page=first["pages"] + 1)
    assert beyond["items"] == [] and beyond["total"] == first["total"]


# --- free-text search ------------------------------------------------------------------------

def test_search_by_phone_name_numbers_and_email(api, sample):
    client = api("supervisor")
    by_phone = client.get("/api/v1/accounts", q=sample["phone"])
    assert sample["id"] in _ids(by_phone)
    assert client.get("/api/v1/accounts", q=sample["phone"][:6])["total"] >= by_phone["total"]

    fragment = max(sample["name"].split(), key=len)[1:-1].lower()   # inside a word, any case
    by_name = client.get("/api/v1/accounts", q=fragment, per_page=200)
    assert all(_plain(fragment) in _plain(item["name"]) for item in by_name["items"])
    assert sample["id"] in _ids(client.get("/api/v1/accounts", q=sample["name"]))
    # one or two letters are no name search (no index serves them): exact codes only
    two = fragment[:2]
    assert all(two in (item["customer_number"], item["account_number"])
               for item in client.get("/api/v1/accounts", q=two)["items"])

    assert _ids(client.get("/api/v1/accounts", q=sample["customer_number"],
                           institution_id=1)) == [sample["id"]]
    assert _ids(client.get("/api/v1/accounts", q=sample["account_number"])) == [sample["id"]]
    assert sample["id"] in _ids(client.get("/api/v1/accounts", q=sample["email"]))
    assert sample["id"] in _ids(client.get("/api/v1/accounts", q=sample["email"][:8] + "@")) \
        or "@" not in sample["email"][:8]
    nothing = client.get("/api/v1/accounts", q="zzqx-nadie-se-llama-asi")
    assert nothing["items"] == [] and nothing["total"] == 0


# --- the 360° view, notes, account changes ---------------------------------------------------

def test_search_as_people_type(api, db, sample):
    """Issue 18: without accents or case, names in any word order (every word matching),
    an e-mail's start without "@", a phone with country code, spaces and dashes."""
    client = api("supervisor")
    accented = db("""SELECT d.id, d.name FROM portfolio.debtors d WHERE d.name ~ '[ÁÉÍÓÚÑ]'
                     AND EXISTS (SELECT 1 FROM portfolio.accounts a WHERE a.debtor_id = d.id)
                     ORDER BY d.id LIMIT 1""")
    assert accented, "the demo portfolio has names with accents"
    debtor_id, name = accented[0]
    words = name.split()
    typed = " ".join(reversed([_plain(w).upper() for w in words]))   # NUNEZ ... in reverse
    found = client.get("/api/v1/accounts", q=typed, per_page=200)
    assert debtor_id in _ids(found)
    assert all(all(_plain(w) in _plain(item["name"]) for w in words) for item in found["items"])
    assert debtor_id not in _ids(client.get("/api/v1/accounts", q=typed + " ZZQXW"))

    local = sample["email"].split("@")[0]
    assert sample["id"] in _ids(client.get("/api/v1/accounts", q=local, per_page=200))
    number = sample["phone"]
    assert len(number) == 10, number
    for typed in (f"+52 {number[:2]} {number[2:6]} {number[6:]}",
                  f"({number[:2]}) {number[2:6]}-{number[6:]}", f"52{number}",
                  f"{number[2:6]} {number[6:]}"):
        assert sample["id"] in _ids(client.get("/api/v1/accounts", q=typed, per_page=200)), typed


def test_debtor_360_view(api, db, sample):
    view = api("supervisor").get(f"/api/v1/debtors/{sample['id']}")
    assert set(view) == {"debtor", "institution", "phones", "emails", "addresses",
                         "guarantors", "accounts", "do_not_contact_history"}
    assert view["debtor"]["customer_number"] == sample["customer_number"]
    assert view["institution"]["code"] == "BANCOMER"
    assert len(view["phones"]) == db("SELECT count(*) FROM portfolio.phones WHERE debtor_id = :d",
                                     d=sample["id"])[0][0]
    assert sample["email"] in [e["address"] for e in view["emails"]]
    assert view["addresses"] and view["addresses"][0]["street"]
    account = view["accounts"][0]
    assert account["account"]["account_number"] == sample["account_number"]
    assert account["instalments"] and {"number", "due_date", "amount", "paid_amount"} <= \
        set(account["instalments"][0])
    paid = db("SELECT count(*) FROM portfolio.movements WHERE account_id = :a",
              a=sample["account_id"])[0][0]
    assert len(account["movements"]) == min(paid, 500)
    single = api("supervisor").get(f"/api/v1/accounts/{sample['account_id']}")
    assert single["debtor_id"] == sample["id"] and single["balance"] == account["account"]["balance"]

    missing = api("supervisor").call("GET", "/api/v1/debtors/999999999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_do_not_contact_is_managed_through_the_api(api, db):
    """Issue 18: a collector records a debtor's request not to be called (with a reason),
    only an editor lifts it; addresses are marked too; every change is in the history."""
    row = db("""SELECT d.id, p.id AS phone_id, p.number, x.id AS address_id,
                       (SELECT o.id FROM portfolio.phones o WHERE o.debtor_id <> d.id
                        ORDER BY o.id LIMIT 1) AS foreign_phone
                FROM portfolio.debtors d
                JOIN portfolio.accounts a ON a.debtor_id = d.id AND a.assigned_agent_id = :agent
                JOIN portfolio.phones p ON p.debtor_id = d.id AND NOT p.do_not_call
                JOIN portfolio.addresses x ON x.debtor_id = d.id AND NOT x.do_not_contact
                WHERE d.institution_id = 1 ORDER BY d.id DESC, p.id, x.id LIMIT 1""",
             agent=USER_IDS["gestor1"])[0]
    path = f"/api/v1/debtors/{row.id}/do-not-contact"
    collector, supervisor = api("gestor1"), api("supervisor")

    def body(channel, contact_id, flag=True, reason=f"Lo pidió en la llamada ({RUN})"):
        return {"channel": channel, "contact_id": contact_id, "do_not_contact": flag,
                "reason": reason}

    marked = collector.call("POST", path, json=body("phone", row.phone_id))
    assert marked.status_code == 201, marked.text
    change = marked.json()
    assert change["contact"] == row.number and change["do_not_contact"] is True
    assert change["changed_by"] == USER_IDS["gestor1"] and change["changed_at"]
    try:
        lift = body("phone", row.phone_id, False, "Se equivocó")
        assert collector.call("POST", path, json=lift).status_code == 403
        again = supervisor.call("POST", path, json=body("phone", row.phone_id))
        assert again.status_code == 409 and "do_not_contact" in again.json()["error"]["fields"]
        blank = supervisor.call("POST", path, json=body("phone", row.phone_id, reason=" "))
        assert blank.status_code == 422 and "reason" in blank.json()["error"]["fields"]
        foreign = supervisor.call("POST", path, json=body("phone", row.foreign_phone))
        assert foreign.status_code == 404
        assert supervisor.call("POST", path, json=body("address", row.address_id)).status_code \
            == 201
        view = supervisor.get(f"/api/v1/debtors/{row.id}")
        assert next(p for p in view["phones"] if p["id"] == row.phone_id)["do_not_call"]
        assert next(a for a in view["addresses"] if a["id"] == row.address_id)["do_not_contact"]
        history = view["do_not_contact_history"]
        assert [(h["channel"], h["changed_by_name"]) for h in history[:2]] == [
            ("address", "supervisor"), ("phone", "gestor1")]
        assert history[1]["reason"] == f"Lo pidió en la llamada ({RUN})"
    finally:
        for channel, contact_id in (("phone", row.phone_id), ("address", row.address_id)):
            supervisor.call("POST", path, json=body(channel, contact_id, False, "Fin de la prueba"))
    view = supervisor.get(f"/api/v1/debtors/{row.id}")
    assert not next(p for p in view["phones"] if p["id"] == row.phone_id)["do_not_call"]
    assert view["do_not_contact_history"][0]["reason"] == "Fin de la prueba"


def test_notes_are_replaced_by_who_may_write(api, sample):
    path = f"/api/v1/debtors/{sample['id']}/notes"
    before = api("supervisor").get(f"/api/v1/debtors/{sample['id']}")["debtor"]["notes"]
    try:
        answer = api("supervisor").call("PUT", path, json={"notes": f"Llamar después de las 6 {RUN}"})
        assert answer.status_code == 204, answer.text
        assert api("cliente").get(f"/api/v1/debtors/{sample['id']}")["debtor"]["notes"] == \
            f"Llamar después de las 6 {RUN}"
        refused = api("cliente").call("PUT", path, json={"notes": "no"})
        assert refused.status_code == 403
        too_long = api("supervisor").call("PUT", path, json={"notes": "x" * 10_001})
        assert too_long.status_code == 422 and "notes" in too_long.json()["error"]["fields"]
    finally:
        api("supervisor").call("PUT", path, json={"notes": before})


def test_account_stage_and_status_change(api, db, sample):
    client = api("supervisor")
    path = f"/api/v1/accounts/{sample['account_id']}"
    before = client.get(path)
    statuses = {s["code"]: s["id"] for s in client.get("/api/v1/institutions/1/statuses")}
    try:
        changed = client.call("PATCH", path, json={"status_id": statuses["PROMESA"]})
        assert changed.status_code == 200, changed.text
        assert changed.json()["status_id"] == statuses["PROMESA"]
        assert db("SELECT status_id FROM portfolio.accounts WHERE id = :a",
                  a=sample["account_id"])[0][0] == statuses["PROMESA"]
        # a status of another institution is refused, naming the field
        foreign = client.get("/api/v1/institutions/2/statuses")[0]["id"]
        refused = client.call("PATCH", path, json={"status_id": foreign})
        assert refused.status_code == 422 and "status_id" in refused.json()["error"]["fields"]
        bad_stage = client.call("PATCH", path, json={"stage": "perdida"})
        assert bad_stage.status_code == 422 and "stage" in bad_stage.json()["error"]["fields"]
        # a collector reads but does not edit; a creditor neither
        assert api("gestor1").call("PATCH", path, json={"stage": "current"}).status_code == 403
        assert api("cliente").call("PATCH", path, json={"stage": "current"}).status_code == 403
    finally:
        client.call("PATCH", path, json={"status_id": before["status_id"],
                                         "stage": before["stage"]})


# --- statuses -------------------------------------------------------------------------------

def test_statuses_catalogue(api):
    admin = api("admin")
    code = f"E2E_{RUN.upper()}"
    created = admin.call("POST", "/api/v1/statuses", json={
        "institution_id": 3, "code": code, "name": "Prueba e2e", "sort_order": 99})
    assert created.status_code == 201, created.text
    status = created.json()
    assert status["code"] == code and status["active"] is True
    updated = admin.call("PUT", f"/api/v1/statuses/{status['id']}", json={
        "institution_id": 3, "code": code, "name": "Prueba e2e (editada)", "active": False})
    assert updated.status_code == 200 and updated.json()["name"] == "Prueba e2e (editada)"
    listed = admin.get("/api/v1/institutions/3/statuses")
    assert code in [s["code"] for s in listed]
    duplicate = admin.call("POST", "/api/v1/statuses", json={
        "institution_id": 3, "code": code, "name": "Otra"})
    assert duplicate.status_code == 409 and "code" in duplicate.json()["error"]["fields"]
    bad = admin.call("POST", "/api/v1/statuses", json={"institution_id": 3, "code": "mal código",
                                                       "name": ""})
    assert bad.status_code == 422 and {"code", "name"} <= set(bad.json()["error"]["fields"])
    # the catalogue is edited with institutions.manage only
    assert api("supervisor").call("POST", "/api/v1/statuses", json={
        "institution_id": 3, "code": code + "X", "name": "No"}).status_code == 403
    # out of scope answers like missing
    assert api("cliente").call("GET", "/api/v1/institutions/2/statuses").status_code == 404


# --- scope ----------------------------------------------------------------------------------

def test_creditor_sees_only_its_institution(api, db, sample):
    client = api("cliente")
    page = client.get("/api/v1/accounts", per_page=200, sort="-balance")
    assert page["items"] and {i["institution_id"] for i in page["items"]} == {1}
    assert page["total"] == min(db(
        "SELECT count(*) FROM portfolio.accounts WHERE institution_id = 1")[0][0], 10_000)
    assert client.get("/api/v1/accounts", institution_id=2)["total"] == 0
    assert client.call("GET", f"/api/v1/accounts/{sample['other_account_id']}").status_code == 404
    assert client.call("GET", f"/api/v1/debtors/{sample['other_debtor_id']}").status_code == 404
    # the same objects exist for a supervisor
    supervisor = api("supervisor")
    assert supervisor.call("GET", f"/api/v1/debtors/{sample['other_debtor_id']}").status_code == 200
    # searching an institution-2 debtor's exact numbers finds nothing either
    other = db("SELECT customer_number FROM portfolio.debtors WHERE id = :d",
               d=sample["other_debtor_id"])[0][0]
    assert sample["other_debtor_id"] not in _ids(client.get("/api/v1/accounts", q=other))


def test_collector_sees_only_the_accounts_assigned_to_them(api, db):
    gestor = USER_IDS["gestor1"]
    client = api("gestor1")
    page = client.get("/api/v1/accounts", per_page=200)
    # theirs: assigned to them, theirs as lawyer, or opened to them by a callback on their
    # agenda (the demo delegates some)
    theirs = db("""SELECT id FROM portfolio.accounts WHERE institution_id IN (1, 2)
                   AND (assigned_agent_id = :g OR lawyer_id = :g OR id IN (
                        SELECT account_id FROM portfolio.callback_holders WHERE agent_id = :g))""",
                g=gestor)
    expected = {row[0] for row in theirs}
    assert expected and page["total"] == len(expected)
    assert {i["account_id"] for i in page["items"]} <= expected
    assert {i["institution_id"] for i in page["items"]} <= {1, 2}
    someone_elses = db("""SELECT id, debtor_id FROM portfolio.accounts
                          WHERE assigned_agent_id = :other AND institution_id = 1 LIMIT 1""",
                       other=USER_IDS["gestor2"])[0]
    assert client.call("GET", f"/api/v1/accounts/{someone_elses[0]}").status_code == 404
    assert client.call("GET", f"/api/v1/debtors/{someone_elses[1]}").status_code == 404
    mine = page["items"][0]
    assert client.call("GET", f"/api/v1/debtors/{mine['debtor_id']}").status_code == 200


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("params,field", [
    ({"sort": "saldo"}, "sort"), ({"dpd_min": "-1"}, "dpd_min"), ({"dpd_max": "muchos"}, "dpd_max"),
    ({"per_page": "1000"}, "per_page"), ({"page": "0"}, "page"), ({"stage": "perdida"}, "stage"),
    ({"balance_min": "mil"}, "balance_min"), ({"institution_id": "uno"}, "institution_id"),
    ({"q": "x" * 101}, "q"),
])
def test_bad_query_parameters_answer_422_naming_the_field(api, params, field):
    answer = api("supervisor").call("GET", "/api/v1/accounts", params=params)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == "invalid_input"
    assert field in body["error"]["fields"]


def test_the_request_size_limit_still_holds_outside_uploads(api):
    answer = api("admin").call("POST", "/api/v1/statuses", data=b"x" * (3 * 1024 * 1024),
                               headers={"Content-Type": "application/json"})
    assert answer.status_code == 413


def test_upload_without_a_file_names_the_field(api):
    answer = api("supervisor").call("POST", "/api/v1/imports/upload", data={"layout_id": "1"})
    assert answer.status_code == 422, answer.text
    assert "file" in answer.json()["error"]["fields"]
    no_layout = api("supervisor").call("POST", "/api/v1/imports/upload",
                                       files={"file": ("x.csv", b"a,b\n1,2\n")})
    assert no_layout.status_code == 422 and "layout_id" in no_layout.json()["error"]["fields"]


# --- imports ---------------------------------------------------------------------------------

def _layouts(client: Api) -> list[dict]:
    answer = client.call("GET", "/api/v1/institutions/1/import-layouts")
    assert answer.status_code == 200, answer.text
    return answer.json()


def _wait_done(client: Api, job_id: int, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        job = client.get(f"/api/v1/imports/{job_id}")
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def test_upload_through_the_gateway_imports_the_demo_file(api):
    client = api("supervisor")
    layouts = [l for l in _layouts(client) if l["kind"] == "portfolio"]
    with DEMO_CSV.open("rb") as handle:
        answer = client.call("POST", "/api/v1/imports/upload", data={"layout_id": layouts[0]["id"]},
                             files={"file": (DEMO_CSV.name, handle, "text/csv")}, timeout=120)
    assert answer.status_code == 202, answer.text
    job = _wait_done(client, answer.json()["id"])
    assert job["state"] == "done", job
    assert job["file_name"] == DEMO_CSV.name
    assert job["size_bytes"] == DEMO_CSV.stat().st_size
    assert job["processed_rows"] == job["total_rows"] > 0
    assert job["imported_rows"] + job["rejected_rows"] == job["total_rows"]
    listed = client.get("/api/v1/imports", institution_id=1)
    assert job["id"] in [j["id"] for j in listed["items"]]
    problems = client.get(f"/api/v1/imports/{job['id']}/problems", per_page=10)
    assert problems["total"] >= (1 if job["rejected_rows"] else 0)
    report = client.call("GET", f"/api/v1/imports/{job['id']}/report.csv")
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/csv")
    assert f"errores_importacion_{job['id']}.csv" in report.headers["Content-Disposition"]


def test_create_import_answers_a_presigned_url_then_start(api):
    client = api("supervisor")
    layouts = [l for l in _layouts(client) if l["kind"] == "portfolio"]
    body = DEMO_CSV.read_bytes()
    created = client.call("POST", "/api/v1/imports", json={
        "layout_id": layouts[0]["id"], "file_name": DEMO_CSV.name, "size_bytes": len(body)})
    assert created.status_code == 201, created.text
    job, url = created.json()["job"], created.json()["upload_url"]
    assert job["state"] == "queued" and url.startswith("http")
    assert requests.put(url, data=body, timeout=60).status_code in (200, 204)
    started = client.call("POST", f"/api/v1/imports/{job['id']}/start")
    assert started.status_code == 202, started.text
    assert _wait_done(client, job["id"])["state"] == "done"
    # a creditor may not import: the permission is checked before anything else
    assert api("cliente").call("POST", "/api/v1/imports", json={
        "layout_id": layouts[0]["id"], "file_name": "x.csv", "size_bytes": 1}).status_code == 403
    assert api("cliente").call("GET", "/api/v1/institutions/2/import-layouts").status_code == 403
