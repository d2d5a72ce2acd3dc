"""The compliance screens in headless Chromium (issue 24):

* gestor1 logs an outbound call on a debtor of theirs while the institution has no
  outbound number, under a jurisdiction whose stored policy says no hidden caller id: the
  form comes back saying why in plain Spanish next to "Número desde el que llama", naming
  the rule in words and the version; with the number typed there the call is logged;
* the administrator (a compliance officer) finds that refusal in the compliance log by
  account, rule and decision, and exports the same search as CSV;
* the administrator reads the MX policy (the version in force, the history with who
  wrote each version) and writes a new version effective in 2099 (it does not change
  what is in force today), seen at once in the history with their name;
* a collector reaches none of these screens (403).

Institution 1 is put under a made-up jurisdiction ("XQ") for the module, with a stored
policy of its own; both and the outbound number are put back after (the compliance log is
append-only and keeps the refusal).
"""
from __future__ import annotations

import csv
import io
import secrets

import pytest
from playwright.sync_api import expect

from recaudo_common.demo import USER_IDS

from .helpers import login
from .helpers import Api, sql, token

RUN = secrets.token_hex(3)
INSTITUTION = 1
JURISDICTION = "XQ"


@pytest.fixture(scope="module")
def world(stack, demo_users):
    admin = Api(stack.base_url, token(stack.base_url, "admin", demo_users))
    account_id, debtor_id = sql(
        "SELECT a.id, a.debtor_id FROM portfolio.accounts a WHERE a.institution_id = :i "
        "AND a.assigned_agent_id = :g AND a.lawyer_id IS NULL ORDER BY a.id LIMIT 1",
        i=INSTITUTION, g=USER_IDS["gestor1"])[0]
    jurisdiction = sql("SELECT jurisdiction FROM portfolio.institutions WHERE id = :i",
                       i=INSTITUTION)[0][0]
    number = sql("SELECT outbound_number FROM activities.institution_settings "
                 "WHERE institution_id = :i", i=INSTITUTION)[0][0]
    admin.ok("POST", f"/api/v1/contact-policies/{JURISDICTION}", {
        "effective_from": "2000-01-01T00:00:00+00:00", "note": f"E2E {RUN}",
        "rules": [{"rule": "caller_id"}]}, status=201)
    sql("UPDATE portfolio.institutions SET jurisdiction = :j WHERE id = :i", j=JURISDICTION,
        i=INSTITUTION)
    sql("UPDATE activities.institution_settings SET outbound_number = NULL "
        "WHERE institution_id = :i", i=INSTITUTION)
    yield {"account": account_id, "debtor": debtor_id, "password": demo_users,
           "base_url": stack.base_url}
    sql("UPDATE portfolio.institutions SET jurisdiction = :j WHERE id = :i", j=jurisdiction,
        i=INSTITUTION)
    sql("UPDATE activities.institution_settings SET outbound_number = :n "
        "WHERE institution_id = :i", n=number, i=INSTITUTION)
    sql("DELETE FROM activities.contact_policies WHERE note = :n", n=f"E2E {RUN}")


def test_a_call_with_no_known_outbound_number_is_refused_in_plain_spanish(
        world, new_page, screenshots):
    page = new_page()
    login(page, "gestor1", world["password"])
    page.goto(f"/deudores/{world['debtor']}?cuenta={world['account']}")
    page.click("#tab-gestiones")
    expect(page.locator("#panel-gestiones")).to_be_visible()
    form = page.locator("#activity-form")
    if not form.is_visible():
        page.click("#new-activity")
    expect(form).to_be_visible()
    page.select_option("#kind", "call")
    try:
        page.select_option("#result_code_id", label="NC · No contesta", timeout=5_000)
    finally:
        page.screenshot(path=str(screenshots / "compliance-activity-form.png"), full_page=True)
    page.fill("#description", f"Llamada sin número saliente ({RUN})")
    expect(page.locator("#caller_id")).to_be_visible()         # an outbound call
    expect(page.locator("#caller_id")).to_have_value("")       # the institution has none
    page.click("#save-activity")
    failure = page.locator("#err-caller_id")                   # next to the number's field
    expect(failure).to_contain_text("No se conoce el número desde el que se llama")
    expect(failure).to_contain_text("regla «Identificador de llamada», política XQ-1")
    expect(failure).not_to_contain_text("caller_id")
    page.screenshot(path=str(screenshots / "compliance-refusal-in-spanish.png"), full_page=True)

    # the number the agent calls from, typed in the form, is the call's known caller id
    page.fill("#caller_id", "55 5000 7777")
    with page.expect_navigation():
        page.click("#save-activity")
    expect(page.locator("#notice")).to_have_text("Gestión registrada.")
    assert sql("SELECT details->>'caller_id' FROM activities.activities WHERE account_id = :a "
               "AND description = :d", a=world["account"],
               d=f"Llamada sin número saliente ({RUN})") == [("5550007777",)]
    page.click("#new-activity")                                # the form, folded now
    expect(page.locator("#caller_id")).to_be_visible()
    page.select_option("#direction", "inbound")
    expect(page.locator("#caller_id")).to_be_hidden()          # only an outbound call has one


def test_the_officer_finds_the_refusal_in_the_log_and_exports_it(world, new_page, screenshots):
    page = new_page()
    login(page, "admin", world["password"])
    page.click("#admin-menu summary")
    with page.expect_navigation():
        page.click("#compliance-link")
    with page.expect_navigation():
        page.click("#tab-compliance-log")
    page.fill("#filter-account", str(world["account"]))
    page.select_option("#filter-rule", "caller_id")
    page.select_option("#filter-decision", "refused")
    with page.expect_navigation():
        page.click("#apply-filters")
    rows = page.locator("#compliance-entries tbody tr")
    expect(rows.first).to_contain_text("Identificador de llamada")
    expect(rows.first).to_contain_text("XQ-1")
    expect(rows.first).to_contain_text("Rechazado")
    expect(rows.first).to_contain_text("gestor1")
    page.screenshot(path=str(screenshots / "compliance-log.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#export-csv")
    text = open(download.value.path(), encoding="utf-8").read()
    found = list(csv.DictReader(io.StringIO(text)))
    assert found and {(r["rule"], r["policy_version"], r["decision"], r["account_id"])
                      for r in found} == {("caller_id", "XQ-1", "refused", str(world["account"]))}


def test_the_officer_reads_a_policy_and_writes_its_next_version(world, new_page, screenshots):
    page = new_page()
    login(page, "admin", world["password"])
    page.goto("/admin/cumplimiento/politicas")
    expect(page.locator("#policies tr[data-jurisdiction=MX]")).to_contain_text("MX-2")
    with page.expect_navigation():
        page.click("#open-MX")
    expect(page.locator("#in-force")).to_contain_text("MX-2")
    rules = page.locator("#current-rules")
    expect(rules).to_contain_text("Identificador de llamada")
    expect(rules).to_contain_text("Acuerdos por escrito")
    expect(rules).to_contain_text("07:00–22:00")
    versions = page.locator("#policy-versions tbody tr")
    before = versions.count()
    # the next version: a narrower window, no written agreement, from 2099 on
    page.fill("#window_from", "08:00")
    page.uncheck("#written_agreement_on")
    page.fill("#effective_from", "2099-01-01")
    page.fill("#note", f"E2E {RUN}")
    with page.expect_navigation():
        page.click("#save-policy")
    expect(page.locator("#notice")).to_contain_text("Nueva versión guardada")
    expect(versions).to_have_count(before + 1)
    newest = versions.first
    expect(newest).to_contain_text("admin")
    expect(newest).to_contain_text(f"E2E {RUN}")
    expect(newest).not_to_contain_text("Acuerdos por escrito")
    # still MX-2 in force today: the new version waits for its date
    expect(page.locator("#in-force")).to_contain_text("MX-2")
    page.screenshot(path=str(screenshots / "compliance-policy-editor.png"), full_page=True)
    # a date that is none comes back marked
    page.fill("#effective_from", "")
    page.evaluate("document.querySelector('#effective_from').removeAttribute('required')")
    with page.expect_navigation():
        page.click("#save-policy")
    expect(page.locator("#err-effective_from")).to_be_visible()


def test_a_collector_reaches_none_of_the_compliance_screens(world, new_page):
    page = new_page()
    login(page, "gestor1", world["password"])
    for path in ("/admin/cumplimiento/politicas", "/admin/cumplimiento/politicas/MX",
                 "/admin/cumplimiento/bitacora", "/admin/cumplimiento/bitacora.csv"):
        assert page.request.get(path).status == 403, path
    expect(page.locator("#compliance-link")).to_have_count(0)
