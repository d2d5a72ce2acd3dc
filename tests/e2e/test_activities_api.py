"""The activities API against the running stack: a collector logs a call with a promise on
an account of theirs (a retry with the same ``Idempotency-Key`` stores it once), bad
input answers 422 naming the field and stores nothing, an account out of their reach
answers 404; the history, the promise, the hash chain, a dispute opened and resolved
once, a callback in the agenda and its private calendar feed, and the productivity row.

Everything here is logged on demo accounts of institution 1 assigned to ``gestor1``;
the log is append-only, so nothing is removed at the end (the ``.ics`` token is
revoked and the dispute resolved, which releases the account in the queues). The calls
are outbound, so the contact policy judges them: institution 1's window is opened to the
whole day for the module (and put back after), and a call to a do-not-call number is
refused (409) unless an administrator justifies it.
"""
from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta, timezone

import pytest

from recaudo_common.demo import USER_IDS

from .helpers import Api, sql, token

RUN = secrets.token_hex(3)
INSTITUTION = 1


def now() -> datetime:
    return datetime.now(timezone.utc)


def accounts_of(username: str, institution_id: int, count: int) -> list[tuple[int, int]]:
    """(account id, debtor id) of demo accounts assigned to a collector, newest first
    (the queues suites work the oldest ones)."""
    return [tuple(r) for r in sql(
        "SELECT id, debtor_id FROM portfolio.accounts WHERE institution_id = :i "
        "AND assigned_agent_id = :a AND lawyer_id IS NULL ORDER BY id DESC LIMIT :n",
        i=institution_id, a=USER_IDS[username], n=count)]


@pytest.fixture(scope="module")
def world(stack, demo_users):
    clients = {}

    def api(username: str) -> Api:
        if username not in clients:
            clients[username] = Api(stack.base_url, token(stack.base_url, username, demo_users))
        return clients[username]

    codes = {c["code"]: c for c in api("admin").ok(
        "GET", f"/api/v1/institutions/{INSTITUTION}/result-codes")}
    other_codes = {c["code"]: c for c in api("admin").ok(
        "GET", "/api/v1/institutions/2/result-codes")}
    window = sql("SELECT contact_from, contact_until, jurisdiction FROM portfolio.institutions "
                 "WHERE id = :i",
                 i=INSTITUTION)[0]
    # any hour (no seeded jurisdiction: the default policy, the institution's window only)
    sql("UPDATE portfolio.institutions SET contact_from = '00:00', contact_until = '23:59:59',"
        " jurisdiction = 'ZZ' WHERE id = :i", i=INSTITUTION)
    mine = accounts_of("gestor1", INSTITUTION, 3)
    theirs = accounts_of("gestor2", INSTITUTION, 1)[0]
    state = {"api": api, "codes": codes, "other_codes": other_codes, "account": mine[0],
             "dispute_account": mine[1], "callback_account": mine[2], "theirs": theirs,
             "base_url": stack.base_url}
    yield state
    api("gestor1").call("DELETE", "/api/v1/agenda/ics-token")
    sql("UPDATE portfolio.institutions SET contact_from = :f, contact_until = :u, "
        "jurisdiction = :j WHERE id = :i", f=window[0], u=window[1], j=window[2], i=INSTITUTION)


def a_call(world, **changes) -> dict:
    started = now() - timedelta(minutes=3)
    body = {"account_id": world["account"][0], "kind": "call", "direction": "outbound",
            "phone": "5512345678", "started_at": started.isoformat(),
            "ended_at": (started + timedelta(minutes=2)).isoformat(),
            "result_code_id": world["codes"]["PP"]["id"],
            "description": f"Promete pagar el viernes ({RUN})",
            "promise": {"amount": "1500.00", "due_date": (date.today() + timedelta(days=7)).isoformat()}}
    body.update(changes)
    return body


def history(world, account_id: int, username: str = "gestor1") -> dict:
    return world["api"](username).ok("GET", f"/api/v1/accounts/{account_id}/activities"
                                            "?per_page=50")


def fields_of(response) -> dict:
    assert response.status_code == 422, (response.status_code, response.text[:500])
    return response.json()["error"]["fields"]


@pytest.fixture(scope="module")
def logged(world):
    """A call with a promise, logged by gestor1 with an idempotency key."""
    key = f"e2e-{RUN}-promesa"
    body = a_call(world)
    response = world["api"]("gestor1").call("POST", "/api/v1/activities", body,
                                            headers={"Idempotency-Key": key})
    assert response.status_code == 201, response.text
    return {"activity": response.json(), "key": key, "body": body}


def test_a_call_with_a_promise_is_logged_once(world, logged):
    activity = logged["activity"]
    assert activity["account_id"] == world["account"][0]
    assert activity["agent_id"] == USER_IDS["gestor1"]
    assert activity["result_code"] == "PP" and activity["contact_made"] is True
    assert activity["kind"] == "call" and activity["seq"] >= 1 and len(activity["hash"]) == 64
    promise = activity["promise"]
    assert promise["state"] == "pending" and promise["amount"] == "1500.00"
    assert promise["due_date"] == logged["body"]["promise"]["due_date"]
    assert [i["amount"] for i in promise["instalments"]] == ["1500.00"]

    before = history(world, world["account"][0])["total"]
    again = world["api"]("gestor1").call("POST", "/api/v1/activities", logged["body"],
                                         headers={"Idempotency-Key": logged["key"]})
    assert again.status_code == 201, again.text
    assert again.json()["id"] == activity["id"]
    assert again.json()["promise"]["id"] == promise["id"]
    assert history(world, world["account"][0])["total"] == before

    promises = world["api"]("gestor1").ok("GET",
                                          f"/api/v1/accounts/{world['account'][0]}/promises")
    assert [p["id"] for p in promises].count(promise["id"]) == 1


def test_the_history_shows_it_newest_first_and_the_chain_verifies(world, logged):
    page = history(world, world["account"][0])
    # on the first page (other suites' entries of the last minutes may sort above it: the
    # call started three minutes before it was logged)
    entry = next(i for i in page["items"] if i["id"] == logged["activity"]["id"])
    assert entry["result_label"] == "Promesa de pago" and entry["description"].endswith(f"({RUN})")
    assert page["page"] == 1 and page["total"] >= 1
    started = [i["started_at"] for i in page["items"]]
    assert started == sorted(started, reverse=True)
    one = world["api"]("gestor1").ok("GET", f"/api/v1/activities/{logged['activity']['id']}")
    assert one["hash"] == logged["activity"]["hash"]

    chain = world["api"]("admin").ok("GET", f"/api/v1/accounts/{world['account'][0]}/chain")
    assert chain["ok"] is True and chain["entries"] == page["total"]
    assert chain["broken_id"] is None
    # verifying is an administrator's tool
    refused = world["api"]("gestor1").call("GET", f"/api/v1/accounts/{world['account'][0]}/chain")
    assert refused.status_code == 403


def test_bad_input_answers_422_naming_the_field_and_stores_nothing(world, logged):
    gestor1 = world["api"]("gestor1")
    before = history(world, world["account"][0])["total"]
    started = now() - timedelta(minutes=5)

    def attempt(**changes):
        return gestor1.call("POST", "/api/v1/activities", a_call(world, **changes))

    assert "ended_at" in fields_of(attempt(started_at=started.isoformat(),
                                           ended_at=(started - timedelta(minutes=1)).isoformat()))
    assert "amount" in fields_of(attempt(promise={
        "amount": "-5", "due_date": (date.today() + timedelta(days=3)).isoformat()}))["promise"]
    assert "amount" in fields_of(attempt(promise={
        "amount": "0", "due_date": (date.today() + timedelta(days=3)).isoformat()}))["promise"]
    assert "due_date" in fields_of(attempt(promise={
        "amount": "100.00", "due_date": (date.today() - timedelta(days=3)).isoformat()}))["promise"]
    assert "promise" in fields_of(attempt(promise=None))       # "PP" needs one
    assert "result_code_id" in fields_of(attempt(
        result_code_id=world["other_codes"]["PP"]["id"]))      # institution 2's code
    assert "description" in fields_of(attempt(description="x" * 1_000_000))
    assert "kind" in fields_of(attempt(kind="telegrama"))
    assert "account_id" in fields_of(attempt(account_id="uno"))
    missing = gestor1.call("POST", "/api/v1/activities", {"kind": "call"})
    assert {"account_id", "started_at"} <= set(fields_of(missing))
    error = missing.json()["error"]
    assert error["code"] == "invalid_input" and error["message"]
    assert history(world, world["account"][0])["total"] == before


def test_an_account_out_of_reach_answers_like_a_missing_one(world):
    gestor1 = world["api"]("gestor1")
    for account_id in (world["theirs"][0], 999_999_999):
        answer = gestor1.call("POST", "/api/v1/activities", a_call(world, account_id=account_id))
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "not_found"
        assert gestor1.call("GET", f"/api/v1/accounts/{account_id}/activities").status_code == 404
    # the creditor reads the log of its institution but logs nothing
    assert world["api"]("cliente").call("POST", "/api/v1/activities",
                                         a_call(world)).status_code == 403
    assert world["api"]("cliente").call(
        "GET", f"/api/v1/accounts/{world['account'][0]}/activities").status_code == 200


def test_a_call_the_contact_policy_refuses_answers_409_unless_an_admin_justifies_it(world):
    account_id, debtor_id = world["account"]
    number = f"55{secrets.randbelow(10 ** 8):08d}"
    sql("INSERT INTO portfolio.phones (debtor_id, number, priority, do_not_call)"
        " VALUES (:d, :n, 9, true)", d=debtor_id, n=number)
    try:
        gestor1, admin = world["api"]("gestor1"), world["api"]("admin")
        before = history(world, account_id)["total"]
        body = a_call(world, phone=number, promise=None,
                      result_code_id=world["codes"]["NC"]["id"],
                      description=f"Llamada a un número vetado ({RUN})")
        refused = gestor1.call("POST", "/api/v1/activities", body)
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "conflict" and list(error["fields"])[0] == "phone"
        assert "no ser contactado" in error["fields"]["phone"][0]
        # the rule that refused and the policy version (no seeded jurisdiction: the default)
        assert (error["fields"]["rule"], error["fields"]["policy_version"]) == (
            ["do_not_contact"], ["*-1"])
        justified = {**body, "override": {"justification": f"Orden judicial vigente ({RUN})"}}
        assert gestor1.call("POST", "/api/v1/activities", justified).status_code == 403
        blank = admin.call("POST", "/api/v1/activities",
                           {**body, "override": {"justification": " " * 12}})
        assert "justification" in fields_of(blank)["override"]
        assert history(world, account_id)["total"] == before
        forced = admin.ok("POST", "/api/v1/activities", justified, status=201)
        record = forced["details"]["compliance_override"]
        assert "Orden judicial vigente" in record and "Autorizado por admin" in record
        assert history(world, account_id)["total"] == before + 1
    finally:
        sql("DELETE FROM portfolio.phones WHERE debtor_id = :d AND number = :n",
            d=debtor_id, n=number)


def test_a_correction_is_a_new_entry_that_references_the_original(world, logged):
    gestor1 = world["api"]("gestor1")
    original = logged["activity"]
    body = {k: v for k, v in a_call(world).items()
            if k not in ("account_id", "promise")}
    body["description"] = f"Corrección: promete pagar el lunes ({RUN})"
    fixed = gestor1.ok("POST", f"/api/v1/activities/{original['id']}/corrections", body,
                       status=201)
    assert fixed["corrects_id"] == original["id"] and fixed["seq"] > original["seq"]
    page = history(world, world["account"][0])
    by_id = {i["id"]: i for i in page["items"]}
    assert by_id[original["id"]]["corrected_by_id"] == fixed["id"]
    assert by_id[original["id"]]["description"] == original["description"]   # kept as it was
    twice = gestor1.call("POST", f"/api/v1/activities/{original['id']}/corrections", body)
    assert twice.status_code == 409, twice.text
    assert world["api"]("admin").ok(
        "GET", f"/api/v1/accounts/{world['account'][0]}/chain")["ok"] is True


def test_a_dispute_is_opened_and_resolved_once(world):
    supervisor = world["api"]("supervisor")
    account_id = world["dispute_account"][0]
    for stale in supervisor.ok("GET", f"/api/v1/accounts/{account_id}/disputes"):
        if stale["state"] == "open":    # left by an interrupted run
            supervisor.ok("POST", f"/api/v1/disputes/{stale['id']}/resolve",
                          {"outcome": "cancelled", "note": "limpieza"})
    opened = supervisor.ok("POST", "/api/v1/disputes", {
        "account_id": account_id, "reason": f"No reconoce el cargo ({RUN})",
        "evidence": "Estado de cuenta de marzo"}, status=201)
    assert opened["state"] == "open" and opened["due_date"] > date.today().isoformat()
    twice = supervisor.call("POST", "/api/v1/disputes", {"account_id": account_id,
                                                         "reason": "Otra"})
    assert twice.status_code == 409
    assert "corrected_balance" in fields_of(supervisor.call(
        "POST", f"/api/v1/disputes/{opened['id']}/resolve",
        {"outcome": "corrected_balance", "note": "Sin saldo"}))
    assert "outcome" in fields_of(supervisor.call(
        "POST", f"/api/v1/disputes/{opened['id']}/resolve", {"outcome": "quizá", "note": "x"}))
    resolved = supervisor.ok("POST", f"/api/v1/disputes/{opened['id']}/resolve",
                             {"outcome": "confirmed_debt", "note": "El cargo es correcto"})
    assert resolved["state"] == "resolved" and resolved["outcome"] == "confirmed_debt"
    again = supervisor.call("POST", f"/api/v1/disputes/{opened['id']}/resolve",
                            {"outcome": "cancelled", "note": "otra vez"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    listed = world["api"]("gestor1").ok("GET", f"/api/v1/accounts/{account_id}/disputes")
    assert listed[0]["id"] == opened["id"] and listed[0]["state"] == "resolved"
    # a collector opens one while on the phone, but only a manager resolves it
    assert world["api"]("gestor1").call(
        "POST", f"/api/v1/disputes/{opened['id']}/resolve",
        {"outcome": "cancelled", "note": "x"}).status_code == 403
    overdue = supervisor.ok("GET", "/api/v1/disputes/overdue")
    assert {"items", "total", "page", "pages"} <= set(overdue)


def test_a_scheduling_retried_with_its_idempotency_key_is_stored_once(world):
    """An app that lost the answer to ``POST /agenda`` sends it again with the same key."""
    gestor1 = world["api"]("gestor1")
    due = (now() + timedelta(days=2)).replace(microsecond=0)
    body = {"account_id": world["callback_account"][0], "kind": "callback",
            "due_at": due.isoformat(), "note": f"Reintento ({RUN})"}
    key = {"Idempotency-Key": f"e2e-{RUN}-agenda"}
    first = gestor1.call("POST", "/api/v1/agenda", body, headers=key)
    assert first.status_code == 201, first.text
    again = gestor1.call("POST", "/api/v1/agenda", body, headers=key)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    # the span's days are the reader's; a day either side of the UTC date holds the item
    span = (f"/api/v1/agenda?date_from={(due.date() - timedelta(days=1)).isoformat()}"
            f"&date_to={(due.date() + timedelta(days=1)).isoformat()}")
    mine = [i for i in gestor1.ok("GET", span) if i["note"] == body["note"]]
    assert [i["id"] for i in mine] == [first.json()["id"]]


def test_a_callback_reaches_the_agenda_and_the_private_calendar_feed(world):
    gestor1 = world["api"]("gestor1")
    due = (now() + timedelta(days=1)).replace(microsecond=0)
    started = now() - timedelta(minutes=1)
    logged = gestor1.ok("POST", "/api/v1/activities", {
        "account_id": world["callback_account"][0], "kind": "call",
        "started_at": started.isoformat(), "result_code": "LLM",
        "description": f"Pide que le llamen mañana ({RUN})", "callback_at": due.isoformat(),
        "callback_note": "Después de las 10"}, status=201)
    assert logged["agenda_item_id"] and logged["promise"] is None
    without = gestor1.call("POST", "/api/v1/activities", {
        "account_id": world["callback_account"][0], "kind": "call",
        "started_at": started.isoformat(), "result_code": "LLM"})
    assert "callback_at" in fields_of(without)

    day = due.date().isoformat()
    agenda = gestor1.ok("GET", f"/api/v1/agenda?date_from={date.today().isoformat()}"
                               f"&date_to={(date.today() + timedelta(days=2)).isoformat()}")
    assert logged["agenda_item_id"] in {i["id"] for i in agenda}
    assert "date_to" in fields_of(gestor1.call(
        "GET", f"/api/v1/agenda?date_from={day}&date_to=2000-01-01"))

    created = gestor1.ok("POST", "/api/v1/agenda/ics-token", status=201)
    assert created["token"].startswith("cal_") and created["url"].endswith(".ics")
    anonymous = Api(world["base_url"], None)
    feed = anonymous.call("GET", f"/ics/{created['token']}.ics")
    assert feed.status_code == 200, feed.text[:300]
    assert feed.headers["Content-Type"].startswith("text/calendar")
    assert feed.text.startswith("BEGIN:VCALENDAR\r\n")
    assert f"UID:agenda-{logged['agenda_item_id']}@" in feed.text
    assert "Después de las 10" in feed.text

    done = gestor1.ok("POST", f"/api/v1/agenda/{logged['agenda_item_id']}/done")
    assert done["done_at"]
    assert gestor1.call("POST", f"/api/v1/agenda/{logged['agenda_item_id']}/done"
                        ).status_code == 409
    assert gestor1.call("DELETE", "/api/v1/agenda/ics-token").status_code == 204
    assert anonymous.call("GET", f"/ics/{created['token']}.ics").status_code == 404
    assert anonymous.call("GET", "/ics/cal_no-existe.ics").status_code == 404


def test_productivity_counts_what_was_logged(world, logged):
    today = date.today()
    span = f"date_from={(today - timedelta(days=1)).isoformat()}" \
           f"&date_to={(today + timedelta(days=1)).isoformat()}"
    mine = world["api"]("gestor1").ok("GET", f"/api/v1/productivity?{span}")
    assert mine["group_by"] == ["agent"]
    rows = {r["agent_id"]: r for r in mine["rows"]}
    assert set(rows) == {USER_IDS["gestor1"]}            # a collector sees only their own
    row = rows[USER_IDS["gestor1"]]
    assert row["calls"] >= 1 and row["contacts"] >= 1 and row["promises_made"] >= 1
    assert float(row["promised_amount"]) >= 1500
    by_day = world["api"]("supervisor").ok(
        "GET", f"/api/v1/productivity?{span}&group_by=agent&group_by=day")
    assert by_day["group_by"] == ["day", "agent"]
    assert any(r["agent_id"] == USER_IDS["gestor1"] for r in by_day["rows"])
    assert "group_by" in fields_of(world["api"]("supervisor").call(
        "GET", f"/api/v1/productivity?{span}&group_by=semana"))
    assert "date_from" in fields_of(world["api"]("supervisor").call(
        "GET", "/api/v1/productivity"))
