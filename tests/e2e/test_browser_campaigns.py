"""Preventive campaigns in headless Chromium: the supervisor creates a campaign (current
accounts with a due date ahead and a balance over an amount, by email, with a template and
a 20 % hold-out), sees the target count before saving, saves it, runs it now, and sees its
results come in (sent, refused and why, delivered from the stack's SMTP sink, the hold-out);
pauses and resumes it. The figures on the page are the API's report. Then an SMS campaign
with "incluir liga al portal": each contacted debtor's phone (the stack's fake SMSC) gets a
personal link that opens the portal on a phone, and messaging keeps no usable token.

The facts of institution 1 are resynced from the portfolio and its contact window opened
for the module (as the messaging suites do); the campaign and template made here
(``E2E campaña …``) are removed at the end.
"""
from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .helpers import INSTITUTION, Api, login, sql, token, wait_for

RUN = secrets.token_hex(3)
NAME = f"E2E campaña {RUN}"
SMS_NAME = f"E2E campaña SMS {RUN}"
BIRTH = "1979-03-21"
#: how many accounts the campaign's balance threshold leaves (ties may add a few)
TARGETS = 6


@pytest.fixture(scope="module")
def world(stack, demo_users):
    admin = Api(stack.base_url, token(stack.base_url, "admin", demo_users))
    supervisor = Api(stack.base_url, token(stack.base_url, "supervisor", demo_users))
    window = sql("SELECT contact_from, contact_until, jurisdiction FROM portfolio.institutions "
                 "WHERE id = :i",
                 i=INSTITUTION)[0]
    # any hour (no seeded jurisdiction: the default policy, the institution's window only)
    sql("UPDATE portfolio.institutions SET contact_from = '00:00', contact_until = '23:59:59',"
        " jurisdiction = 'ZZ' WHERE id = :i", i=INSTITUTION)
    supervisor.ok("POST", f"/api/v1/institutions/{INSTITUTION}/resync")
    threshold = sql(
        "SELECT balance FROM queues.account_facts WHERE institution_id = :i AND stage = 'current'"
        " AND next_due_date >= current_date ORDER BY balance DESC OFFSET :n LIMIT 1",
        i=INSTITUTION, n=TARGETS - 1)[0][0]
    template = admin.ok("POST", "/api/v1/templates", {
        "institution_id": INSTITUTION, "name": f"E2E campaña {RUN}",
        "subject_es": "Su pago de la cuenta {{ account.account_number }} vence pronto",
        "text_es": "Estimado(a) {{ debtor.name }}: le recordamos su próximo pago."}, status=201)
    sms_template = admin.ok("POST", "/api/v1/templates", {
        "institution_id": INSTITUTION, "name": f"E2E campaña SMS {RUN}",
        "subject_es": "Recordatorio",
        "text_es": "Su pago vence pronto. Consulte y pague: {{ portal_link }}"}, status=201)
    yield {"supervisor": supervisor, "template": template, "threshold": threshold,
           "password": demo_users, "sms_template": sms_template}
    sql("DELETE FROM queues.campaigns WHERE name LIKE 'E2E campaña %'")
    sql("UPDATE messaging.templates SET active = false WHERE name LIKE 'E2E campaña %'")
    sql("UPDATE portfolio.institutions SET contact_from = :f, contact_until = :u, "
        "jurisdiction = :j WHERE id = :i", f=window[0], u=window[1], j=window[2], i=INSTITUTION)


def test_a_supervisor_creates_runs_and_reads_a_preventive_campaign(world, new_page, screenshots):
    api = world["supervisor"]
    threshold = str(world["threshold"])
    conditions = {"all": [{"field": "stage", "op": "eq", "value": "current"},
                          {"field": "days_to_next_due", "op": "gte", "value": 0},
                          {"field": "balance", "op": "gte", "value": threshold}]}
    expected = api.ok("POST", "/api/v1/campaigns/preview", {
        "institution_id": INSTITUTION, "conditions": conditions, "holdout_share": 20})
    assert expected["targeted"] >= TARGETS

    page = new_page()
    login(page, "supervisor", world["password"])
    page.goto(f"/campanas/?institucion={INSTITUTION}")
    with page.expect_navigation():
        page.click("#new-campaign")
    page.fill("#name", NAME)
    rows = page.locator("#condition-rows .condition-row")
    # the form starts with "stage = current" and "days to the next due date between 0, 3"
    expect(rows.nth(0).locator("select[name=cond_field]")).to_have_value("stage")
    rows.nth(1).locator("select[name=cond_op]").select_option("gte")
    rows.nth(1).locator("input[name=cond_value]").fill("0")
    rows.nth(2).locator("select[name=cond_field]").select_option("balance")
    rows.nth(2).locator("select[name=cond_op]").select_option("gte")
    rows.nth(2).locator("input[name=cond_value]").fill(threshold)
    page.click("#add-condition")                        # campaigns.js adds a row
    expect(rows).to_have_count(5)
    page.select_option("#template_id", label=world["template"]["name"])
    page.fill("#holdout_share", "20")
    # the target count before saving, without leaving the page (htmx)
    page.click("#preview-campaign")
    expect(page.locator("#preview-result")).to_have_attribute(
        "data-targeted", str(expected["targeted"]))
    expect(page.locator("#name")).to_have_value(NAME)
    with page.expect_navigation():
        page.click("#save-campaign")
    expect(page.locator("#notice")).to_contain_text("Campaña creada")
    expect(page.locator("#campaign-name")).to_have_text(NAME)
    expect(page.locator("#no-runs")).to_be_visible()
    campaign_id = int(page.url.rstrip("/").split("/")[-1].split("?")[0])

    with page.expect_navigation():
        page.click("#run-campaign")
    expect(page.locator("#ran")).to_contain_text(f"tomó {expected['targeted']} cuentas")

    def settled():
        report = api.ok("GET", f"/api/v1/campaigns/{campaign_id}/report")
        return report["pending"] == 0 and report["delivered"] + report["delivery_failed"] \
            == report["sent"] and report
    report = wait_for(settled, what="the campaign's sends to be delivered", seconds=60)
    assert report["targeted"] == expected["targeted"] and report["sent"] > 0
    assert report["sent"] + report["refused"] + report["failed"] + report["held_out"] \
        == report["targeted"]
    page.reload()
    expect(page.locator("#kpi-targeted")).to_have_text(str(report["targeted"]))
    expect(page.locator("#kpi-sent")).to_have_text(str(report["sent"]))
    expect(page.locator("#kpi-refused")).to_have_text(str(report["refused"]))
    expect(page.locator("#kpi-delivered")).to_have_text(str(report["delivered"]))
    expect(page.locator("#kpi-pending")).to_have_text("0")
    contacted = page.locator("#outcome-table tr[data-group=contacted] td")
    expect(contacted.nth(1)).to_have_text(str(report["contacted"]["accounts"]))
    held = page.locator("#outcome-table tr[data-group=holdout] td")
    expect(held.nth(1)).to_have_text(str(report["holdout"]["accounts"]))
    for cause in report["refused_by_cause"]:
        expect(page.locator(f"#refusals-table tr[data-cause={cause['cause']}] td").nth(1)) \
            .to_have_text(str(cause["count"]))
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    page.screenshot(path=str(screenshots / "campaign-report.png"), full_page=True)

    with page.expect_navigation():
        page.click("#pause-campaign")
    expect(page.locator("#campaign-state")).to_have_attribute("data-state", "paused")
    expect(page.locator("#run-campaign")).to_have_count(0)
    with page.expect_navigation():
        page.click("#resume-campaign")
    expect(page.locator("#campaign-state")).to_have_attribute("data-state", "active")

    page.goto(f"/campanas/?institucion={INSTITUTION}")
    expect(page.locator(f"#campaigns-table tr[data-campaign='{NAME}']")).to_be_visible()

    # the same pages in English
    page.goto(f"/idioma/en?next=/campanas/{campaign_id}")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#run-campaign")).to_have_text("Run now")
    expect(page.locator("#campaign-report h2")).to_have_text("Results")
    expect(page.locator("#tab-campaigns")).to_have_text("Preventive campaigns")
    page.goto(f"/idioma/es?next=/campanas/{campaign_id}")


def test_a_supervisor_sends_an_sms_campaign_with_each_debtor_s_portal_link(
        world, new_page, browser, stack, screenshots):
    from messaging import kannel
    from recaudo_common.config import settings

    fakesmsc = Path(settings().var_dir) / "kannel"
    seen = len(kannel.received(fakesmsc))
    page = new_page()
    login(page, "supervisor", world["password"])
    page.goto(f"/campanas/nueva?institucion={INSTITUTION}")
    page.fill("#name", SMS_NAME)
    rows = page.locator("#condition-rows .condition-row")
    rows.nth(1).locator("select[name=cond_op]").select_option("gte")
    rows.nth(1).locator("input[name=cond_value]").fill("0")
    rows.nth(2).locator("select[name=cond_field]").select_option("balance")
    rows.nth(2).locator("select[name=cond_op]").select_option("gte")
    rows.nth(2).locator("input[name=cond_value]").fill(str(world["threshold"]))
    page.select_option("#channel", "sms")
    page.select_option("#template_id", label=world["sms_template"]["name"])
    page.fill("#holdout_share", "0")
    # a letter carries no link: refused, named next to the option
    page.select_option("#channel", "letter")
    page.check("#portal_link")
    with page.expect_navigation():
        page.click("#save-campaign")
    expect(page.locator("#portal-link-error")).to_be_visible()
    expect(page.locator("#portal_link")).to_be_checked()
    page.select_option("#channel", "sms")
    page.screenshot(path=str(screenshots / "campaign-sms-portal-link-form.png"), full_page=True)
    with page.expect_navigation():
        page.click("#save-campaign")
    expect(page.locator("#notice")).to_contain_text("Campaña creada")
    expect(page.locator("#campaign-portal-link")).to_be_visible()
    campaign_id = int(page.url.rstrip("/").split("/")[-1].split("?")[0])
    campaign = world["supervisor"].ok("GET", f"/api/v1/campaigns/{campaign_id}")
    assert (campaign["channel"], campaign["portal_link"]) == ("sms", True)

    with page.expect_navigation():
        page.click("#run-campaign")
    api = world["supervisor"]
    report = wait_for(lambda: (r := api.ok("GET", f"/api/v1/campaigns/{campaign_id}/report"))
                      ["pending"] == 0 and r, what="the campaign's sends", seconds=60)
    assert report["sent"] > 0, report
    link = re.compile(rf"^<\S+ (\d+) .*(/mi-cuenta/{INSTITUTION}/(pl_[A-Za-z0-9_-]+))")
    lines = wait_for(lambda: len(found := [m for m in map(link.match, kannel.received(
        fakesmsc)[seen:]) if m]) >= report["sent"] and found, 30, "the SMS at the SMSC")
    tokens = [m.group(3) for m in lines]
    by_phone: dict[str, set] = {}
    for m in lines:
        by_phone.setdefault(m.group(1), set()).add(m.group(3))
    assert all(len(links) == 1 for links in by_phone.values())   # one link per debtor
    sent = "SELECT count(*) FROM messaging.sms_messages WHERE body LIKE :t AND state = 'queued'"
    wait_for(lambda: all(sql(sent, t=f"%{t}%")[0][0] == 0 for t in tokens), 30,
             "the messages handed over")
    for token_part in tokens:       # no usable token at rest in messaging
        assert sql("SELECT count(*) FROM messaging.sms_messages WHERE body LIKE :t",
                   t=f"%{token_part}%")[0][0] == 0

    # the debtor opens their link on a phone
    number, path = lines[0].group(1), lines[0].group(2)
    debtor_id, account_id = sql(
        "SELECT p.debtor_id, a.id FROM portfolio.phones p JOIN portfolio.accounts a ON"
        " a.debtor_id = p.debtor_id WHERE p.number = :n AND a.institution_id = :i ORDER BY a.id"
        " LIMIT 1", n=number, i=INSTITUTION)[0]
    birth = sql("SELECT birth_date FROM portfolio.debtors WHERE id = :d", d=debtor_id)[0][0]
    sql("UPDATE portfolio.debtors SET birth_date = :b WHERE id = :d", b=BIRTH, d=debtor_id)
    phone = browser.new_context(base_url=stack.base_url, viewport={"width": 390, "height": 844},
                                is_mobile=True)
    phone.set_default_timeout(20_000)
    try:
        mobile = phone.new_page()
        mobile.goto(path)
        mobile.fill("#answer", BIRTH)
        with mobile.expect_navigation():
            mobile.click("#verify-submit")
        expect(mobile.locator(f"#balance-{account_id}")).to_be_visible()
        mobile.screenshot(path=str(screenshots / "campaign-sms-link-opened-390.png"),
                          full_page=True)
    finally:
        phone.close()
        sql("UPDATE portfolio.debtors SET birth_date = :b WHERE id = :d", b=birth, d=debtor_id)

    # the option in English
    page.goto(f"/idioma/en?next=/campanas/{campaign_id}/editar")
    expect(page.locator("label[for=portal_link]")).to_contain_text("Include the portal link")
    page.goto(f"/idioma/es?next=/campanas/{campaign_id}")
