"""Issue 25's settings as administrator screens, in headless Chromium on a phone (390 px):

* the plan and settlement limits of institution 1: a discount band added, with a second
  threshold needing a supervisor, saved and read back through the API; a band whose days
  end before they start is refused with the message next to that row's field;
* the portal's second factor and link lifetime; a lifetime of 0 hours refused at its field;
* the collection CLABE (a bad one refused at its field) and a payment provider whose
  secret is shown once (and a new one on rotation), a bad name refused;
* a partner's webhook subscription: http:// refused at the URL, an https one created with
  its secret shown once, paused, its delivery log paged (25 a page) with each delivery's
  answer and "Reenviar" making a failed delivery pending again, then removed;
* none of these pages is wider than the phone.

What the module changes of institution 1 is put back after.
"""
from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import expect

from portfolio.contracts import clabe_check_digit

from .helpers import Api, login, overflow, sql, token

RUN = secrets.token_hex(3)
INSTITUTION = 1
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def world(stack, demo_users):
    admin = Api(stack.base_url, token(stack.base_url, "admin", demo_users))
    limits = admin.ok("GET", f"/api/v1/institutions/{INSTITUTION}/plan-limits")
    portal = admin.ok("GET", f"/api/v1/institutions/{INSTITUTION}/portal-settings")
    payments = admin.ok("GET", f"/api/v1/institutions/{INSTITUTION}/payment-settings")
    yield {"admin": admin, "password": demo_users}
    admin.ok("PUT", f"/api/v1/institutions/{INSTITUTION}/plan-limits",
             {k: limits[k] for k in ("max_instalments", "min_first_payment",
                                     "min_first_payment_pct", "max_plan_days",
                                     "offer_expiry_days", "discount_bands")})
    admin.ok("PUT", f"/api/v1/institutions/{INSTITUTION}/portal-settings",
             {k: portal[k] for k in ("second_factor", "link_ttl_hours")})
    admin.ok("PUT", f"/api/v1/institutions/{INSTITUTION}/payment-settings",
             {k: payments[k] for k in ("clabe", "bank_name", "beneficiary", "convenio")})


def _phone(new_page, world):
    page = new_page(viewport=PHONE)
    login(page, "admin", world["password"])
    return page


def _fits(page, what):
    result = overflow(page)
    assert result["scrollWidth"] <= result["innerWidth"], (what, result)


def _error(page, name):
    return page.locator(f'[id="err-{name}"]')


def _submit(page, selector):
    with page.expect_navigation():
        page.click(selector)


def test_plan_limits_with_a_discount_band_and_a_band_refused_at_its_field(world, new_page,
                                                                         screenshots):
    page = _phone(new_page, world)
    page.goto("/admin/")
    page.click("#tab-limits")
    page.goto(f"/admin/limites?institucion={INSTITUTION}")
    page.fill("#max_instalments", "7")
    page.fill("#max_plan_days", "200")
    _submit(page, "#add-band")
    last = page.locator("tr.band-row").count() - 1
    assert last >= 0
    band = f"bands-{last}"
    page.select_option(f"#{band}-stage", "delinquent")
    page.fill(f"#{band}-dpd_from", "31")
    page.fill(f"#{band}-dpd_to", "90")
    page.fill(f"#{band}-t0-pct", "10")
    _submit(page, "#save-limits")
    expect(page.locator("#notice")).to_contain_text("Límites guardados")
    page.fill(f"#{band}-t1-pct", "25")
    page.select_option(f"#{band}-t1-approver", "supervisor")
    _submit(page, "#save-limits")
    expect(page.locator("#notice")).to_be_visible()
    _fits(page, "limits")
    page.screenshot(path=str(screenshots / "admin-limits-phone.png"), full_page=True)

    saved = world["admin"].ok("GET", f"/api/v1/institutions/{INSTITUTION}/plan-limits")
    assert saved["max_instalments"] == 7 and saved["max_plan_days"] == 200
    assert saved["discount_bands"][last] == {
        "stage": "delinquent", "dpd_from": 31, "dpd_to": 90,
        "thresholds": [{"up_to_pct": "10.00", "approver": None},
                       {"up_to_pct": "25.00", "approver": "supervisor"}]}

    # bad input: the days end before they start -> next to that row's "hasta"
    page.fill(f"#{band}-dpd_to", "5")
    _submit(page, "#save-limits")
    expect(_error(page, f"discount_bands.{last}.dpd_to")).to_be_visible()
    expect(page.locator(f"#{band}-dpd_to")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{band}-dpd_to")).to_have_value("5")      # kept as typed
    assert world["admin"].ok("GET", f"/api/v1/institutions/{INSTITUTION}/plan-limits")[
        "discount_bands"][last]["dpd_to"] == 90

    # the row goes with "Quitar" (saved only with the form)
    _submit(page, f"#remove-band-{last}")
    expect(page.locator(f"#{band}-stage")).to_have_count(0)


def test_portal_settings_and_a_lifetime_refused_at_its_field(world, new_page):
    page = _phone(new_page, world)
    page.goto(f"/admin/portal?institucion={INSTITUTION}")
    page.check("#second-factor-account_last4")
    page.fill("#link_ttl_hours", "48")
    _submit(page, "#save-portal")
    expect(page.locator("#notice")).to_contain_text("portal guardada")
    assert world["admin"].ok("GET", f"/api/v1/institutions/{INSTITUTION}/portal-settings") == {
        "institution_id": INSTITUTION, "second_factor": "account_last4", "link_ttl_hours": 48}
    _fits(page, "portal")

    page.fill("#link_ttl_hours", "0")
    _submit(page, "#save-portal")
    expect(_error(page, "link_ttl_hours")).to_contain_text("entre 1 y 720")
    assert world["admin"].ok("GET", f"/api/v1/institutions/{INSTITUTION}/portal-settings")[
        "link_ttl_hours"] == 48


def test_payment_details_and_a_provider_whose_secret_is_shown_once(world, new_page,
                                                                    screenshots):
    page = _phone(new_page, world)
    page.goto(f"/admin/pagos?institucion={INSTITUTION}")
    page.fill("#clabe", "123")
    _submit(page, "#save-payments")
    expect(_error(page, "clabe")).to_contain_text("CLABE")

    clabe = "01218000" + "123456789"
    clabe += clabe_check_digit(clabe)
    page.fill("#clabe", clabe)
    page.fill("#convenio", "CONV-" + RUN)
    _submit(page, "#save-payments")
    expect(page.locator("#notice")).to_contain_text("Datos de cobro guardados")
    saved = world["admin"].ok("GET", f"/api/v1/institutions/{INSTITUTION}/payment-settings")
    assert saved["clabe"] == clabe and saved["convenio"] == "CONV-" + RUN
    _fits(page, "payments")

    page.fill("#provider-name", "Nombre Malo!")
    _submit(page, "#create-provider")
    expect(_error(page, "name")).to_be_visible()

    name = f"banco-ui-{RUN}"
    page.fill("#provider-name", name)
    _submit(page, "#create-provider")
    secret = page.locator("#provider-secret-value").inner_text().strip()
    assert len(secret) >= 32
    _fits(page, "provider secret")
    page.screenshot(path=str(screenshots / "admin-provider-secret-phone.png"), full_page=True)
    _submit(page, "#providers-back")
    row = page.locator(f'tr[data-provider="{name}"]')
    expect(row).to_be_visible()
    assert secret not in page.content()

    row.locator("summary").click()
    _submit(page, f'tr[data-provider="{name}"] .rotate-secret')
    rotated = page.locator("#provider-secret-value").inner_text().strip()
    assert rotated and rotated != secret

    page.goto(f"/admin/pagos?institucion={INSTITUTION}")
    _submit(page, f'tr[data-provider="{name}"] .toggle-provider')
    expect(page.locator("#notice")).to_contain_text("desactivado")
    providers = world["admin"].ok("GET", "/api/v1/payment-providers")
    assert next(p for p in providers if p["name"] == name)["active"] is False


def _deliveries(subscription_id: int, count: int) -> None:
    """``count`` failed deliveries in the subscription's log (as the sender leaves them),
    on accounts 1001.. in that order."""
    sql("INSERT INTO messaging.webhook_deliveries (subscription_id, event_id, event_type, "
        "account_id, occurred_at, payload, state, attempts, last_status_code, "
        "last_latency_ms, last_error) SELECT :s, gen_random_uuid(), 'payment_received', "
        "1000 + n, now(), '{}'::jsonb, 'failed', 3, 500, 120, '' "
        "FROM generate_series(1, :c) AS n ORDER BY n", s=subscription_id, c=count)


def test_a_partner_subscription_its_delivery_log_and_resend(world, new_page, screenshots):
    page = _phone(new_page, world)
    page.goto("/admin/webhooks")
    page.select_option("#institution_id", str(INSTITUTION))
    page.fill("#url", "http://socio.example/hook")
    page.check("#event-payment_received")
    page.fill("#contact_email", "socio@socio.example")
    _submit(page, "#create-subscription")
    expect(_error(page, "url")).to_contain_text("https")
    expect(page.locator("#event-payment_received")).to_be_checked()   # kept as typed

    url = f"https://1.1.1.1/recaudo-{RUN}"
    page.fill("#url", url)
    page.check("#event-promise_made")
    _submit(page, "#create-subscription")
    secret = page.locator("#subscription-secret").inner_text().strip()
    assert secret.startswith("whsec_")
    _fits(page, "subscription secret")
    _submit(page, "#subscriptions-back")
    assert secret not in page.content()
    subscription = next(s for s in world["admin"].ok("GET", "/api/v1/webhook-subscriptions")
                        if s["url"] == url)
    row = f'tr[data-subscription="{subscription["id"]}"]'
    _submit(page, f"{row} .pause")
    expect(page.locator("#notice")).to_contain_text("pausa")
    expect(page.locator(row)).to_contain_text("en pausa")
    _fits(page, "subscriptions")

    _deliveries(subscription["id"], 27)
    page.click(f"{row} .deliveries-link")
    expect(page.locator("#deliveries-table tbody tr")).to_have_count(25)
    expect(page.locator("#deliveries-table tbody tr").first).to_contain_text("500")
    expect(page.locator("#deliveries-table tbody tr").first).to_contain_text("120 ms")
    _fits(page, "deliveries")
    page.screenshot(path=str(screenshots / "admin-webhook-deliveries-phone.png"), full_page=True)
    page.click("#page-next")
    expect(page.locator("#deliveries-table tbody tr")).to_have_count(2)
    first = page.locator("#deliveries-table tbody tr").first
    delivery = first.get_attribute("data-delivery")
    expect(first.locator(".state")).to_contain_text("fallida")
    _submit(page, f'tr[data-delivery="{delivery}"] .resend')
    expect(page.locator("#notice")).to_contain_text("pendiente")
    expect(page.locator(f'tr[data-delivery="{delivery}"] .state')).to_contain_text("pendiente")
    assert "pagina=2" in page.url

    page.goto("/admin/webhooks")
    page.locator(f"{row} summary").click()
    _submit(page, f"{row} .delete")
    expect(page.locator("#notice")).to_contain_text("eliminada")
    expect(page.locator(row)).to_have_count(0)


def test_a_collector_reads_the_limits_but_reaches_no_other_settings(world, new_page):
    page = new_page()
    login(page, "gestor1", world["password"])
    assert page.goto(f"/admin/limites?institucion={INSTITUTION}").status == 200
    expect(page.locator("#max_instalments")).to_be_disabled()
    expect(page.locator("#save-limits")).to_have_count(0)
    for path in ("/admin/pagos", "/admin/webhooks"):
        assert page.goto(path).status == 403, path
    assert page.goto("/admin/limites?institucion=999999").status == 404


def test_the_screens_speak_english_when_chosen(world, new_page, stack):
    page = new_page(viewport=PHONE)
    login(page, "admin", world["password"])
    page.context.add_cookies([{"name": "lang", "value": "en", "url": stack.base_url}])
    for path, heading in (("/admin/limites", "Limits and settlements"),
                          ("/admin/portal", "Debtor portal"),
                          ("/admin/pagos", "Collection and providers"),
                          ("/admin/webhooks", "Partner webhooks")):
        page.goto(path)
        expect(page.locator("h1")).to_have_text(heading)
    page.goto(f"/admin/portal?institucion={INSTITUTION}")
    page.fill("#link_ttl_hours", "0")
    _submit(page, "#save-portal")
    expect(_error(page, "link_ttl_hours")).to_contain_text("720")
    expect(_error(page, "link_ttl_hours")).not_to_contain_text("Debe")
