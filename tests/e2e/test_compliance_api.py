"""Contact compliance through the API against the running stack (issue 24): institution 1
under the US policy for the module, a demo debtor of gestor1's moved to New York; seven
call attempts by two people on the debt, the eighth refused with 409 naming the rule and
the policy version, an administrator's justified override kept; the debtor's cease
request refusing the next call; the compliance log as a page and as CSV for whoever
holds ``compliance.manage`` (a collector gets 403), and on the debtor's 360° view; a new
policy version written by the compliance officer. All put back after (the logs are
append-only and stay)."""
from __future__ import annotations

import csv
import io
import secrets
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from recaudo_common.demo import USER_IDS

from .helpers import Api, login, sql, token

RUN = secrets.token_hex(3)
INSTITUTION = 1
NEW_YORK = ZoneInfo("America/New_York")
JUSTIFIED = {"justification": "Acuerdo de pago confirmado por escrito"}


@pytest.fixture(scope="module")
def world(stack, demo_users):
    clients = {}

    def api(username: str) -> Api:
        if username not in clients:
            clients[username] = Api(stack.base_url, token(stack.base_url, username, demo_users))
        return clients[username]

    account_id, debtor_id, zone = sql(
        "SELECT a.id, a.debtor_id, d.time_zone FROM portfolio.accounts a "
        "JOIN portfolio.debtors d ON d.id = a.debtor_id WHERE a.institution_id = :i "
        "AND a.assigned_agent_id = :g AND a.lawyer_id IS NULL AND NOT EXISTS ("
        "  SELECT 1 FROM activities.activities x WHERE x.debtor_id = a.debtor_id) "
        "AND (SELECT count(*) FROM portfolio.accounts o WHERE o.debtor_id = a.debtor_id) = 1 "
        "ORDER BY a.id DESC LIMIT 1", i=INSTITUTION, g=USER_IDS["gestor1"])[0]
    jurisdiction = sql("SELECT jurisdiction FROM portfolio.institutions WHERE id = :i",
                       i=INSTITUTION)[0][0]
    sql("UPDATE portfolio.institutions SET jurisdiction = 'US' WHERE id = :i", i=INSTITUTION)
    sql("UPDATE portfolio.debtors SET time_zone = 'America/New_York' WHERE id = :d", d=debtor_id)
    codes = {c["code"]: c["id"] for c in api("admin").ok(
        "GET", f"/api/v1/institutions/{INSTITUTION}/result-codes")}
    yield {"api": api, "account": account_id, "debtor": debtor_id, "codes": codes,
           "password": demo_users}
    sql("UPDATE portfolio.institutions SET jurisdiction = :j WHERE id = :i", j=jurisdiction,
        i=INSTITUTION)
    sql("UPDATE portfolio.debtors SET time_zone = :z WHERE id = :d", z=zone, d=debtor_id)
    sql("DELETE FROM activities.contact_policies WHERE note = :n", n=f"E2E {RUN}")
    sql("DELETE FROM activities.debtor_preferences WHERE debtor_id = :d", d=debtor_id)


def a_call(world, days_ago: int, hour: int, **changes) -> dict:
    day = datetime.now(NEW_YORK).date() - timedelta(days=days_ago)
    started = (datetime.combine(day, datetime.min.time(), tzinfo=NEW_YORK)
               + timedelta(hours=hour)).astimezone(timezone.utc)
    return {"account_id": world["account"], "kind": "call", "direction": "outbound",
            "phone": "2125550100", "started_at": started.isoformat(),
            "ended_at": (started + timedelta(minutes=1)).isoformat(),
            "result_code_id": world["codes"]["NC"], "description": f"No contesta ({RUN})",
            **changes}


def test_the_eighth_attempt_in_7_days_is_refused_naming_rule_and_version(world):
    api = world["api"]
    for days_ago, hour, who in ((6, 9, "gestor1"), (6, 15, "supervisor"), (5, 10, "gestor1"),
                                (4, 11, "supervisor"), (3, 12, "gestor1"), (2, 13, "supervisor"),
                                (2, 16, "gestor1")):
        api(who).ok("POST", "/api/v1/activities", a_call(world, days_ago, hour), status=201)
    refused = api("gestor1").call("POST", "/api/v1/activities", a_call(world, 1, 12))
    assert refused.status_code == 409, refused.text
    fields = refused.json()["error"]["fields"]
    assert fields["rule"] == ["call_frequency"] and fields["policy_version"] == ["US-1"]
    assert "7 intentos" in fields["reason"][0]
    # only with a permission and a justification
    assert api("gestor1").call("POST", "/api/v1/activities",
                               a_call(world, 1, 12, override=JUSTIFIED)).status_code == 403
    forced = api("admin").ok("POST", "/api/v1/activities",
                             a_call(world, 1, 13, override=JUSTIFIED), status=201)
    assert "Acuerdo de pago" in forced["details"]["compliance_override"]


def test_a_cease_request_refuses_the_next_call_and_the_360_view_says_why(world):
    api = world["api"]
    saved = api("gestor1").ok("PUT", f"/api/v1/debtors/{world['debtor']}/contact-preferences",
                              {"cease_at": datetime.now(timezone.utc).isoformat(),
                               "language": "en"})
    assert saved["language"] == "en" and saved["cease_at"]
    bad = api("gestor1").call("PUT", f"/api/v1/debtors/{world['debtor']}/contact-preferences",
                              {"language": "fr"})
    assert bad.status_code == 422 and "language" in bad.json()["error"]["fields"]
    refused = api("gestor1").call("POST", "/api/v1/activities", a_call(world, 0, 0))
    # a call at midnight is refused by the first rule that refuses: cease comes before the window
    assert refused.json()["error"]["fields"]["rule"] == ["cease_communication"]
    seen = api("gestor1").ok("GET", f"/api/v1/debtors/{world['debtor']}/compliance")
    assert seen["preferences"]["cease_at"]
    assert [e["rule"] for e in seen["log"]][:2] == ["cease_communication", "call_frequency"]
    # the debtor of another collector's account: like a missing one
    assert api("gestor1").call("GET", "/api/v1/debtors/999999999/compliance").status_code == 404


def test_the_compliance_log_is_for_the_compliance_officer_as_a_page_and_csv(world):
    api = world["api"]
    query = f"?account_id={world['account']}"
    page = api("admin").ok("GET", "/api/v1/compliance-log" + query)
    assert [(e["decision"], e["rule"]) for e in page["items"]] == [
        ("refused", "cease_communication"), ("overridden", "call_frequency"),
        ("refused", "call_frequency")]
    assert page["items"][1]["justification"] == JUSTIFIED["justification"]
    assert api("gestor1").call("GET", "/api/v1/compliance-log").status_code == 403
    answer = api("admin").call("GET", "/api/v1/compliance-log.csv" + query + "&decision=refused")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["rule"] for r in rows] == ["cease_communication", "call_frequency"]
    assert {r["policy_version"] for r in rows} == {"US-1"}
    bad = api("admin").call("GET", "/api/v1/compliance-log?decision=maybe")
    assert bad.status_code == 422 and "decision" in bad.json()["error"]["fields"]


def test_a_new_policy_version_is_written_with_who_and_when(world):
    api = world["api"]
    before = api("admin").ok("GET", "/api/v1/contact-policies?jurisdiction=US")
    written = api("admin").ok("POST", "/api/v1/contact-policies/US", {
        "effective_from": "2099-01-01T00:00:00+00:00", "note": f"E2E {RUN}",
        "rules": [{"rule": "window", "from": "09:00", "until": "20:00"}]}, status=201)
    assert written["version"] == max(v["version"] for v in before) + 1
    assert written["created_by"] == USER_IDS["admin"]
    assert written["rules"] == [{"rule": "window", "from": "09:00", "until": "20:00"}]
    bad = api("admin").call("POST", "/api/v1/contact-policies/US",
                            {"effective_from": "2099-01-01T00:00:00+00:00", "rules": []})
    assert bad.status_code == 422 and "rules" in bad.json()["error"]["fields"]
    assert api("supervisor").call("POST", "/api/v1/contact-policies/US", {
        "effective_from": "2099-01-01T00:00:00+00:00",
        "rules": [{"rule": "window"}]}).status_code == 403


def test_the_debtors_360_view_shows_their_word_and_the_refusals_in_plain_spanish(
        world, new_page, screenshots):
    page = new_page()
    login(page, "gestor1", world["password"])
    page.goto(f"/deudores/{world['debtor']}")
    page.click("#tab-cumplimiento")
    expect(page.locator("#panel-cumplimiento")).to_be_visible()
    expect(page.locator("#contact-preferences")).to_contain_text("Solicitado el")
    rows = page.locator("#compliance-log tbody tr")
    expect(rows.first).to_contain_text("Cese de comunicaciones")
    expect(rows.first).to_contain_text("Rechazado")
    expect(page.locator("#compliance-log")).to_contain_text("Frecuencia de llamadas")
    expect(page.locator("#compliance-log")).to_contain_text("US-1")
    page.screenshot(path=str(screenshots / "debtor-compliance-tab.png"), full_page=True)
