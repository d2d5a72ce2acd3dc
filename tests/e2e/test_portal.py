"""The debtor portal through the whole stack: in headless Chromium at 390 px (a phone), a
debtor of the demo opens the personal link gestor1 made for them, fails and then passes
the second factor, sees their balance, proposes a plan inside the institution's limits,
accepts the settlement offer, has an executable refused and opens a dispute with a PDF,
and stops SMS - each step saved as ``var/.../screenshots/portal-*-390.png``; gestor1
then sees all of it in the account's history. Through the API a mobile app uses: a plan
outside the limits reaching the supervisor's approval queue and approved there, and every
bad input the issue lists (wrong second factor, expired, reused and another
institution's link, a promise in the past, a negative or over-precise amount, an
executable) answered as documented; a debtor's session reaches only that debtor's data
and nothing of the staff's API.

The institution's limits, portal setting and the debtor's date of birth are put back after.
"""
from __future__ import annotations

import secrets
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from playwright.sync_api import Page, expect

from recaudo_common import demo

from .helpers import login
from .helpers import Api, sql, token, wait_for

INSTITUTION = 1
BIRTH = "1979-03-21"
LIMITS = {"max_instalments": 3, "min_first_payment": "50.00", "min_first_payment_pct": "10",
          "max_plan_days": 90, "offer_expiry_days": 7, "discount_bands": [
              {"stage": None, "dpd_from": 0, "dpd_to": None, "thresholds": [
                  {"up_to_pct": "15", "approver": None},
                  {"up_to_pct": "40", "approver": "supervisor"}]}]}
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]"
       b"/Count 1>>endobj 3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")
EXE = b"MZ\x90\x00" + b"\x00" * 200


def _debtors(count: int) -> list[tuple[int, int]]:
    """(debtor, account) of gestor1 in the institution with one account, a balance, no open
    dispute and no portal entry yet."""
    return [tuple(r) for r in sql(
        "SELECT a.debtor_id, a.id FROM portfolio.accounts a WHERE a.institution_id = :i "
        "AND a.assigned_agent_id = :g AND a.balance > 1000 AND (SELECT count(*) FROM "
        "portfolio.accounts b WHERE b.debtor_id = a.debtor_id) = 1 AND NOT EXISTS (SELECT 1 "
        "FROM activities.disputes d WHERE d.account_id = a.id AND d.state = 'open') AND NOT "
        "EXISTS (SELECT 1 FROM activities.activities x WHERE x.account_id = a.id AND x.kind = "
        "'portal') ORDER BY a.id LIMIT :n", i=INSTITUTION, g=demo.USER_IDS["gestor1"],
        n=count)]


@pytest.fixture(scope="module")
def world(stack, demo_users):
    admin = Api(stack.base_url, token(stack.base_url, "admin", demo_users))
    before = admin.ok("GET", f"/api/v1/institutions/{INSTITUTION}/plan-limits")
    factor = admin.ok("GET", f"/api/v1/institutions/{INSTITUTION}/portal-settings")
    admin.ok("PUT", f"/api/v1/institutions/{INSTITUTION}/plan-limits", LIMITS)
    admin.ok("PUT", f"/api/v1/institutions/{INSTITUTION}/portal-settings",
             {"second_factor": "birth_date"})
    window = sql("SELECT contact_from, contact_until, jurisdiction FROM portfolio.institutions "
                 "WHERE id = :i", i=INSTITUTION)[0]
    # the link's email may go at any hour the suite runs (the institution's window only)
    sql("UPDATE portfolio.institutions SET contact_from = '00:00', contact_until = '23:59:59',"
        " jurisdiction = 'ZZ' WHERE id = :i", i=INSTITUTION)
    template = admin.ok("POST", "/api/v1/templates", {
        "institution_id": INSTITUTION, "name": f"Liga del portal {secrets.token_hex(4)}",
        "subject_es": "Su cuenta con {{ institution.name }}",
        "text_es": "Consulte y resuelva su cuenta aquí: {{ portal_link }}",
        "subject_en": "Your account", "text_en": "See your account here: {{ portal_link }}"},
        status=201)
    debtors = _debtors(4)
    assert len(debtors) == 4, "the demo has debtors of gestor1 for the portal"
    births = sql("SELECT id, birth_date FROM portfolio.debtors WHERE id = ANY(:d)",
                 d=[d for d, _ in debtors])
    sql("UPDATE portfolio.debtors SET birth_date = :b WHERE id = ANY(:d)", b=BIRTH,
        d=[d for d, _ in debtors])
    yield {"admin": admin, "debtors": debtors, "base_url": stack.base_url,
           "template_id": template["id"],
           "gestor": Api(stack.base_url, token(stack.base_url, "gestor1", demo_users)),
           "supervisor": Api(stack.base_url, token(stack.base_url, "supervisor", demo_users))}
    sql("UPDATE portfolio.institutions SET contact_from = :f, contact_until = :u, "
        "jurisdiction = :j WHERE id = :i", f=window[0], u=window[1], j=window[2], i=INSTITUTION)
    admin.call("PUT", f"/api/v1/templates/{template['id']}",
               {k: template[k] for k in ("institution_id", "name", "subject_es", "text_es",
                                         "subject_en", "text_en")} | {"active": False})
    for debtor_id, birth in births:
        sql("UPDATE portfolio.debtors SET birth_date = :b WHERE id = :d", b=birth, d=debtor_id)
    admin.ok("PUT", f"/api/v1/institutions/{INSTITUTION}/plan-limits",
             {k: before[k] for k in LIMITS})
    admin.ok("PUT", f"/api/v1/institutions/{INSTITUTION}/portal-settings",
             {k: factor[k] for k in ("second_factor", "link_ttl_hours")})


def _link(world, debtor_id: int) -> dict:
    return world["gestor"].ok("POST", f"/api/v1/debtors/{debtor_id}/portal-links",
                              {"sent_to": "deudor@example.com"}, status=201)


def _shot(page: Page, folder, step: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow} px at 390 px"
    page.screenshot(path=str(folder / f"portal-{step}-390.png"), full_page=True)


def _emailed_from_the_portal_tab(browser, stack, demo_users, screenshots, debtor_id) -> str:
    """gestor1 emails the link from the debtor's "Portal" tab; answers its address."""
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        login(page, "gestor1", demo_users)
        page.goto(f"/deudores/{debtor_id}?tab=portal")
        page.fill("#portal-to", "deudor@example.com")
        page.click("#portal-send")
        expect(page.locator("#portal-sent")).to_be_visible()
        page.screenshot(path=str(screenshots / "portal-0-agent-sends-link-1280.png"),
                        full_page=True)
        return page.locator("#portal-url").input_value()
    finally:
        context.close()


def test_a_debtor_resolves_their_debt_alone_from_a_phone(world, browser, stack, demo_users,
                                                         screenshots):
    debtor_id, account_id = world["debtors"][0]
    url = _emailed_from_the_portal_tab(browser, stack, demo_users, screenshots, debtor_id)
    link = {"url": url}
    body = sql("SELECT body_text, to_address FROM messaging.outbound_messages "
               "WHERE debtor_id = :d ORDER BY id DESC LIMIT 1", d=debtor_id)
    assert body == [(f"Consulte y resuelva su cuenta aquí: {url}", "deudor@example.com")]
    assert link["url"].startswith(world["base_url"] + f"/mi-cuenta/{INSTITUTION}/pl_")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        page.goto(link["url"])
        expect(page.locator("#answer")).to_be_visible()
        _shot(page, screenshots, "1-verify")
        page.fill("#answer", "1990-01-01")
        page.click("#verify-submit")
        expect(page.locator("#answer-error")).to_be_visible()
        _shot(page, screenshots, "2-wrong-answer")
        page.fill("#answer", BIRTH)
        with page.expect_navigation():
            page.click("#verify-submit")
        balance = sql("SELECT balance FROM portfolio.accounts WHERE id = :a", a=account_id)[0][0]
        expect(page.locator(f"#balance-{account_id}")).to_contain_text(f"{balance:,.2f}")
        _shot(page, screenshots, "3-balance")

        page.click(f"#open-plan-{account_id}")
        form = page.locator(f"#plan-form-{account_id}")
        today = date.today()
        for n, (days, amount) in enumerate(((3, "300.00"), (33, "300.00"))):
            form.locator(f"input[name=due_date_{n}]").fill((today + timedelta(days=days)).isoformat())
            form.locator(f"input[name=amount_{n}]").fill(amount)
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        expect(page.locator("#portal-done")).to_be_visible()
        expect(page.locator(f"#promises-{account_id} li[data-state=pending]")).to_have_count(1)
        _shot(page, screenshots, "4-plan-within-limits")

        with page.expect_navigation():
            page.click(f"#accept-offer-{account_id}")
        expect(page.locator("#portal-done")).to_be_visible()
        expect(page.locator(f"#promises-{account_id} li[data-state=pending]")).to_have_count(2)
        _shot(page, screenshots, "5-settlement-accepted")

        page.click(f"#open-dispute-{account_id}")
        form = page.locator(f"#dispute-form-{account_id}")
        form.locator("input[name=reason]").fill("No reconozco un cargo")
        form.locator("input[name=file]").set_input_files(
            {"name": "programa.pdf", "mimeType": "application/pdf", "buffer": EXE})
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        expect(page.locator("#dispute-error")).to_be_visible()
        _shot(page, screenshots, "6-executable-refused")
        form = page.locator(f"#dispute-form-{account_id}")
        form.locator("input[name=reason]").fill("No reconozco un cargo")
        form.locator("input[name=file]").set_input_files(
            {"name": "estado-de-cuenta.pdf", "mimeType": "application/pdf", "buffer": PDF})
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        expect(page.locator(".portal-dispute[data-state=open]")).to_be_visible()
        sent = page.locator(".portal-dispute .portal-dispute-document")
        expect(sent).to_have_text("estado-de-cuenta.pdf")    # the dispute shows its document
        assert page.request.get(urljoin(page.url, sent.get_attribute("href"))).body() == PDF
        _shot(page, screenshots, "7-dispute-with-pdf")

        page.uncheck("#channel-sms")
        with page.expect_navigation():
            page.click("#save-preferences")
        expect(page.locator("#portal-done")).to_be_visible()
        expect(page.locator("#channel-sms")).not_to_be_checked()
        _shot(page, screenshots, "8-sms-opted-out")
        page.click("#portal-lang-en")
        expect(page.locator("#portal-lang-es")).to_be_visible()
        _shot(page, screenshots, "9-english")
    finally:
        context.close()

    history = world["gestor"].ok("GET", f"/api/v1/accounts/{account_id}/activities")["items"]
    steps = [h["details"].get("portal") for h in history if h["kind"] == "portal"]
    assert any(h["kind"] == "email" and "deudor@example.com" in h["description"]
               for h in history)                      # the link's email, in the history too
    assert sorted(steps) == sorted(["access", "promise", "settlement", "dispute",
                                    "preferences"]), steps
    documents = sql("SELECT name FROM documents.documents WHERE debtor_id = :d", d=debtor_id)
    assert ("estado-de-cuenta.pdf",) in documents and ("programa.pdf",) not in documents
    consent = sql("SELECT consent->'sms'->>'withdrawn_at' FROM activities.debtor_preferences "
                  "WHERE debtor_id = :d", d=debtor_id)
    assert consent and consent[0][0]
    audit = [a for (a,) in sql("SELECT action FROM auth.audit_log WHERE details->>'debtor_id' "
                               "= :d ORDER BY id", d=str(debtor_id))]
    assert audit[:3] == ["portal_link_created", "portal_factor_failed", "portal_session_opened"]
    _agent_sees_the_disputed_document(world, browser, stack, demo_users, screenshots,
                                      debtor_id, account_id)


def _agent_sees_the_disputed_document(world, browser, stack, demo_users, screenshots,
                                      debtor_id, account_id):
    """The dispute the debtor opened with a PDF shows that PDF in the 360° view's dispute
    panel (downloaded through the documents service) and in the API."""
    (dispute,) = [d for d in world["gestor"].ok("GET", f"/api/v1/accounts/{account_id}/disputes")
                  if d["state"] == "open"]
    assert dispute["document_name"] == "estado-de-cuenta.pdf" and dispute["document_version_id"]
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        login(page, "gestor1", demo_users)
        page.goto(f"/deudores/{debtor_id}?tab=aclaraciones&cuenta={account_id}")
        link = page.locator(f"#disputes tr[data-dispute-id='{dispute['id']}'] .dispute-document a")
        expect(link).to_have_text("estado-de-cuenta.pdf")
        page.screenshot(path=str(screenshots / "portal-dispute-document-360-1280.png"),
                        full_page=True)
        assert page.request.get(link.get_attribute("href")).body() == PDF
    finally:
        context.close()


def _session(world, link: dict, answer=BIRTH, institution_id=INSTITUTION):
    return requests.post(world["base_url"] + "/api/v1/portal/session", timeout=30, json={
        "institution_id": institution_id, "token": link["url"].rsplit("/", 1)[1],
        "answer": answer})


def test_the_apps_bad_inputs_and_a_plan_outside_the_limits_reaching_approval(world):
    debtor_id, account_id = world["debtors"][1]
    link = _link(world, debtor_id)
    refusals = {_session(world, link, "2001-01-01").json()["error"]["message"],
                _session(world, link, institution_id=2).json()["error"]["message"],
                _session(world, {"url": "x/pl_no-existe"}).json()["error"]["message"]}
    assert len(refusals) == 1                      # one answer, whatever was wrong
    opened = _session(world, link)
    assert opened.status_code == 201, opened.text
    assert _session(world, link).status_code == 401          # used once
    expired = _link(world, debtor_id)
    sql("UPDATE auth.portal_links SET expires_at = now() - interval '1 second' "
        "WHERE id = :i", i=expired["link_id"])
    assert _session(world, expired).status_code == 401

    app = Api(world["base_url"], opened.json()["session_token"])
    me = app.ok("GET", "/api/v1/portal/me")
    assert [a["account"]["id"] for a in me["accounts"]] == [account_id]
    today = date.today()
    for promise, field in (({"amount": "100", "due_date": (today - timedelta(days=2)).isoformat()},
                            "due_date"),
                           ({"amount": "-1", "due_date": today.isoformat()}, "amount"),
                           ({"amount": "1.005", "due_date": today.isoformat()}, "amount")):
        answer = app.call("POST", "/api/v1/portal/promises",
                          {"account_id": account_id, "promise": promise})
        assert answer.status_code == 422 and field in answer.json()["error"]["fields"]["promise"]
    other_debtor, other_account = world["debtors"][2]
    assert app.call("POST", "/api/v1/portal/promises", {"account_id": other_account, "promise": {
        "amount": "100", "due_date": today.isoformat()}}).status_code == 404
    assert app.call("GET", f"/api/v1/accounts/{account_id}").status_code == 401
    assert app.call("GET", f"/api/v1/debtors/{debtor_id}").status_code == 401

    ticket = app.ok("POST", "/api/v1/portal/uploads", {"account_id": account_id,
                                                        "filename": "a.pdf", "size": len(EXE)},
                    status=201)
    requests.post(ticket["url"], data=ticket["fields"], files={"file": ("a.pdf", EXE)},
                  timeout=30).raise_for_status()
    refused = app.call("POST", f"/api/v1/portal/uploads/{ticket['upload_id']}/complete")
    assert refused.status_code == 422 and "file" in refused.json()["error"]["fields"]

    # a PDF goes in; once the institution shares the folder, the debtor sees and downloads it
    ticket = app.ok("POST", "/api/v1/portal/uploads", {"account_id": account_id,
                                                        "filename": "recibo.pdf", "size": len(PDF)},
                    status=201)
    requests.post(ticket["url"], data=ticket["fields"], files={"file": ("recibo.pdf", PDF)},
                  timeout=30).raise_for_status()
    stored = app.ok("POST", f"/api/v1/portal/uploads/{ticket['upload_id']}/complete", status=201)
    assert app.ok("GET", "/api/v1/portal/me")["documents"] == []        # not shared yet
    world["supervisor"].ok("POST", "/api/v1/share-links", {
        "debtor_id": debtor_id, "expires_at": (date.today() + timedelta(days=3)).isoformat()
        + "T00:00:00+00:00"}, status=201)
    (shared,) = app.ok("GET", "/api/v1/portal/me")["documents"]
    assert shared["id"] == stored["id"]
    version_id = shared["versions"][0]["id"]
    assert app.ok("GET", f"/api/v1/portal/documents/{version_id}/download")["name"] == "recibo.pdf"
    other = Api(world["base_url"], _session(world, _link(world, other_debtor)).json()[
        "session_token"])
    assert other.call("GET", f"/api/v1/portal/documents/{version_id}/download").status_code == 404

    plan = [{"due_date": (today + timedelta(days=d)).isoformat(), "amount": "100.00"}
            for d in (5, 35, 65, 85)]                              # 4 > 3 instalments
    made = app.ok("POST", "/api/v1/portal/promises", {"account_id": account_id,
                                                       "promise": {"instalments": plan}},
                  status=201)
    assert made["promise"] is None and made["approval"]["state"] == "pending"
    queue = world["supervisor"].ok("GET", "/api/v1/approvals")["items"]
    assert made["approval"]["id"] in [a["id"] for a in queue]
    assert world["gestor"].call("GET", "/api/v1/approvals").status_code == 403
    decided = world["supervisor"].ok("POST", f"/api/v1/approvals/{made['approval']['id']}/decision",
                                     {"decision": "approve", "note": "Cliente cumplido"})
    assert decided["state"] == "approved" and decided["promise_id"]
    states = [p["state"] for p in app.ok("GET", "/api/v1/portal/me")["accounts"][0]["promises"]]
    assert states == ["pending"]
    app.ok("DELETE", "/api/v1/portal/session", status=204)
    assert app.call("GET", "/api/v1/portal/me").status_code == 401


def test_a_supervisor_approves_a_portal_plan_on_the_approvals_page(world, browser, stack,
                                                                   screenshots, demo_users):
    debtor_id, account_id = world["debtors"][2]
    opened = _session(world, _link(world, debtor_id))
    app = Api(world["base_url"], opened.json()["session_token"])
    today = date.today()
    made = app.ok("POST", "/api/v1/portal/promises", {"account_id": account_id, "promise": {
        "amount": "20.00", "due_date": (today + timedelta(days=2)).isoformat()}}, status=201)
    approval_id = made["approval"]["id"]                       # under the 50.00 minimum
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        login(page, "supervisor", demo_users)
        page.click("#admin-menu summary")
        with page.expect_navigation():
            page.click("#approvals-link")
        card = page.locator(f"#approval-{approval_id}")
        expect(card).to_contain_text("50.00")                   # why: the first payment
        page.screenshot(path=str(screenshots / "portal-approvals-1280.png"), full_page=True)
        with page.expect_navigation():
            card.locator(f"#approve-{approval_id}").click()
        expect(page.locator("#notice")).to_be_visible()
        expect(page.locator(f"#approval-{approval_id}")).to_have_count(0)
    finally:
        context.close()
    (promise,) = app.ok("GET", "/api/v1/portal/me")["accounts"][0]["promises"]
    assert promise["amount"] == "20.00" and promise["state"] == "pending"


def _sms_debtor(world) -> tuple[int, int, int, str]:
    """(debtor, account, phone id, number) of gestor1 with one account, a mobile only they
    have and no portal entry yet, other than the module's debtors."""
    taken = [d for d, _ in world["debtors"]]
    return tuple(sql(
        "SELECT a.debtor_id, a.id, p.id, p.number FROM portfolio.accounts a JOIN "
        "portfolio.phones p ON p.debtor_id = a.debtor_id AND p.kind = 'mobile' AND NOT "
        "p.do_not_call WHERE a.institution_id = :i AND a.assigned_agent_id = :g AND "
        "a.balance > 0 AND a.debtor_id <> ALL(:taken) AND (SELECT count(*) FROM "
        "portfolio.accounts b WHERE b.debtor_id = a.debtor_id) = 1 AND (SELECT count(*) FROM "
        "portfolio.phones q WHERE q.number = p.number) = 1 AND NOT EXISTS (SELECT 1 FROM "
        "activities.activities x WHERE x.account_id = a.id AND x.kind = 'portal') "
        "ORDER BY a.id LIMIT 1", i=INSTITUTION, g=demo.USER_IDS["gestor1"], taken=taken)[0])


def test_an_agent_texts_the_link_the_phone_gets_it_and_the_debtor_opens_it(
        world, browser, stack, demo_users, screenshots):
    from messaging import kannel
    from recaudo_common.config import settings

    debtor_id, account_id, phone_id, number = _sms_debtor(world)
    birth = sql("SELECT birth_date FROM portfolio.debtors WHERE id = :d", d=debtor_id)[0][0]
    sql("UPDATE portfolio.debtors SET birth_date = :b WHERE id = :d", b=BIRTH, d=debtor_id)
    fakesmsc = Path(settings().var_dir) / "kannel"
    try:
        # a phone the debtor asked not to be texted on: refused, with the rule and reason
        sql("UPDATE portfolio.phones SET do_not_call = true WHERE id = :p", p=phone_id)
        refused = world["gestor"].call("POST", f"/api/v1/debtors/{debtor_id}/portal-links", {
            "channel": "sms", "phone": number, "account_id": account_id})
        assert refused.status_code == 409, refused.text
        assert {"compliance", "rule", "reason"} <= set(refused.json()["error"]["fields"])
        bad = world["gestor"].call("POST", f"/api/v1/debtors/{debtor_id}/portal-links", {
            "channel": "sms", "account_id": account_id})
        assert bad.status_code == 422 and "phone" in bad.json()["error"]["fields"]
        sql("UPDATE portfolio.phones SET do_not_call = false WHERE id = :p", p=phone_id)

        context = browser.new_context(base_url=stack.base_url,
                                      viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        page = context.new_page()
        try:
            login(page, "gestor1", demo_users)
            page.goto(f"/deudores/{debtor_id}?tab=portal")
            page.check("#portal-channel-sms")
            page.select_option("#portal-phone", number)
            page.click("#portal-send")
            expect(page.locator("#portal-sent")).to_contain_text("SMS")
            page.screenshot(path=str(screenshots / "portal-0-agent-texts-link-1280.png"),
                            full_page=True)
            url = page.locator("#portal-url").input_value()
            token_part = url.rsplit("/", 1)[1]
            # the fake SMSC (the phone network) got it, in one GSM-7 segment
            line = wait_for(lambda: next((m for m in kannel.received(fakesmsc)
                                          if token_part in m), None), 30, "the SMS at the SMSC")
            assert number in line
            (body, encoding, segments), = sql(
                "SELECT body, encoding, segments FROM messaging.sms_messages WHERE debtor_id = :d"
                " ORDER BY id DESC LIMIT 1", d=debtor_id)
            assert (encoding, segments) == ("gsm7", 1) and body.endswith("un solo uso)")
            # the conversation and the history show the link without its token
            page.goto(f"/deudores/{debtor_id}?tab=sms")
            expect(page.locator("#sms-conversation")).to_contain_text("/pl_***")
            assert token_part not in page.content()
        finally:
            context.close()
        history = world["gestor"].ok("GET", f"/api/v1/accounts/{account_id}/activities")["items"]
        (texted,) = [h for h in history if h["kind"] == "sms"
                     and h["details"].get("portal") == "link_sent"]
        assert number in texted["description"] and token_part not in texted["description"]

        # the debtor opens it on their phone
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.set_default_timeout(20_000)
        page = phone.new_page()
        try:
            page.goto(url)
            page.fill("#answer", BIRTH)
            with page.expect_navigation():
                page.click("#verify-submit")
            expect(page.locator(f"#balance-{account_id}")).to_be_visible()
            _shot(page, screenshots, "0-opened-from-sms")
        finally:
            phone.close()
    finally:
        sql("UPDATE portfolio.phones SET do_not_call = false WHERE id = :p", p=phone_id)
        sql("UPDATE portfolio.debtors SET birth_date = :b WHERE id = :d", b=birth, d=debtor_id)


def test_a_larger_discount_asked_waits_for_the_supervisor_and_is_active_once_approved(
        world, browser, stack, screenshots, demo_users):
    """Through the app's API the debtor asks for 30 % off (the offer gives 15 % at once):
    above the band's last threshold is refused naming the field; 30 % is pending approval
    (no offer, no promise meanwhile), which the debtor reads on the portal at 390 px; the
    supervisor approves it on /aprobaciones, which names the level required, and the
    settlement's lump sum is then a promise to pay."""
    debtor_id, account_id = world["debtors"][3]
    app = Api(world["base_url"], _session(world, _link(world, debtor_id)).json()["session_token"])
    (account,) = app.ok("GET", "/api/v1/portal/me")["accounts"]
    assert (account["offer"]["discount_pct"], account["offer"]["max_pct"]) == ("15.00", "40.00")
    too_much = app.call("POST", "/api/v1/portal/settlements",
                        {"account_id": account_id, "discount_pct": "41"})
    assert too_much.status_code == 422 and "discount_pct" in too_much.json()["error"]["fields"]
    asked = app.ok("POST", "/api/v1/portal/settlements",
                   {"account_id": account_id, "discount_pct": "30"}, status=201)
    approval = asked["approval"]
    assert asked["promise"] is None and approval["kind"] == "settlement"
    assert approval["approver"] == "supervisor" and approval["state"] == "pending"
    balance = sql("SELECT balance FROM portfolio.accounts WHERE id = :a", a=account_id)[0][0]
    assert approval["terms"]["amount"] == f"{balance * 70 / 100:.2f}"
    (account,) = app.ok("GET", "/api/v1/portal/me")["accounts"]
    assert account["offer"] is None and account["promises"] == []
    assert app.call("POST", "/api/v1/portal/settlements",
                    {"account_id": account_id}).status_code == 409

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.set_default_timeout(20_000)
    page = phone.new_page()
    try:
        page.goto(_link(world, debtor_id)["url"])
        page.fill("#answer", BIRTH)
        with page.expect_navigation():
            page.click("#verify-submit")
        pending = page.locator(f"#approval-{approval['id']}")
        expect(pending).to_contain_text("pendiente de aprobación")
        expect(pending).to_contain_text("30.00% de descuento")
        expect(page.locator(f"#accept-offer-{account_id}")).to_have_count(0)
        _shot(page, screenshots, "settlement-pending")
    finally:
        phone.close()

    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        login(page, "supervisor", demo_users)
        page.goto("/aprobaciones")
        card = page.locator(f"#approval-{approval['id']}")
        expect(card.locator(f"#settlement-{approval['id']}")).to_contain_text("30.00%")
        expect(card.locator(f"#approver-{approval['id']}")).to_contain_text("Supervisor")
        with page.expect_navigation():
            card.locator(f"#approve-{approval['id']}").click()
        expect(page.locator("#notice")).to_be_visible()
    finally:
        context.close()
    (promise,) = app.ok("GET", "/api/v1/portal/me")["accounts"][0]["promises"]
    assert promise["amount"] == approval["terms"]["amount"] and promise["state"] == "pending"
    assert promise["due_date"] == approval["terms"]["settlement"]["pay_by"]
