"""The SMS tab in headless Chromium: gestor1 opens the "SMS" tab beside "Correo" on a
debtor of theirs, previews a template with its segment count, sends it to the debtor's
mobile and sees the message in the conversation move to "Entregado" (the delivery report
of the stack's Kannel and fake SMSC).

Shares the API module's world (``sms_world`` in conftest.py: the demo institution's SMS
settings on the stack's Kannel, the contact window opened for the module, an ``E2E SMS
…`` template).
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .helpers import login, wait_for


@pytest.fixture(scope="module")
def world(sms_world):
    return sms_world


def test_a_collector_previews_and_sends_an_sms_and_sees_it_delivered(world, new_page,
                                                                     screenshots):
    page = new_page()
    login(page, "gestor1", world["password"])
    page.goto(f"/deudores/{world['debtor']}?tab=sms")
    expect(page.locator("#sms-form")).to_be_visible()
    page.select_option("#sms-account", str(world["account"]))
    page.select_option("#sms-template", label=world["template"]["name"])
    page.select_option("#sms-phone", world["number"])
    with page.expect_navigation():
        page.click("#sms-preview-button")
    expect(page.locator("#sms-preview-text")).to_contain_text("su saldo es $")
    segments = page.locator("#sms-segments")
    expect(segments).to_contain_text("1 segmento")
    expect(segments).to_contain_text("GSM-7")
    with page.expect_navigation():
        page.click("#sms-send-button")
    expect(page.locator("#notice")).to_contain_text("cola")
    first = page.locator("#sms-conversation tbody tr[data-direction=outbound]").last
    expect(first).to_contain_text(world["number"])
    uuid = first.get_attribute("data-uuid")

    def delivered():
        page.reload()
        row = page.locator(f"#sms-conversation tr[data-uuid='{uuid}']")
        return row.get_attribute("data-state") == "delivered"
    wait_for(delivered, what="the SMS to show as delivered")
    expect(page.locator(f"#sms-conversation tr[data-uuid='{uuid}'] .sms-state")) \
        .to_have_text("Entregado")
    page.screenshot(path=str(screenshots / "sms-debtor-tab.png"), full_page=True)
