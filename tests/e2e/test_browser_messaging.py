"""Email and letters in headless Chromium: gestor1 opens the "Correo" tab of a debtor of
theirs, previews a letter, is told next to the field that the address is not one, fixes
it, attaches one of the debtor's documents, sends, and sees the message in the list move
to "Enviado" (the sink got it with the document); an administrator sees
an unmatched message in the triage list and assigns it to an account, searches the
mailbox on the server, and is refused a template that uses an unknown field with the
problem next to the field.

Shares the API module's world (``messaging_world`` in conftest.py: the demo mailbox on
the stack's dovecot and sink, the contact window opened for the module, an ``E2E correo
…`` template).
"""
from __future__ import annotations

import secrets

import pytest
import requests
from playwright.sync_api import expect

from .helpers import append_mail, login, sink_messages, wait_for

RUN = secrets.token_hex(3)
PDF = b"%PDF-1.4\n% estado de cuenta\n%%EOF\n"


@pytest.fixture(scope="module")
def world(messaging_world):
    return messaging_world


def test_a_collector_previews_and_sends_a_letter_by_email(world, new_page, screenshots):
    # a document of the debtor to attach, uploaded as every client does
    gestor = world["api"]("gestor1")
    name = f"estado-{RUN}.pdf"
    ticket = gestor.ok("POST", "/api/v1/documents/uploads", {
        "debtor_id": world["debtor"], "filename": name, "size": len(PDF)}, status=201)
    stored = requests.post(ticket["url"], data=ticket["fields"], files={"file": (name, PDF)},
                           timeout=30)
    assert stored.status_code < 300, stored.text
    gestor.ok("POST", f"/api/v1/documents/uploads/{ticket['upload_id']}/complete", status=201)

    page = new_page()
    login(page, "gestor1", world["password"])
    page.goto(f"/deudores/{world['debtor']}?tab=correo")
    form = page.locator("#mail-form")
    expect(form).to_be_visible()
    page.select_option("#mail-account", str(world["account"]))
    page.select_option("#mail-template", label=world["template"]["name"])
    with page.expect_navigation():
        page.click("#mail-preview-button")
    expect(page.locator("#preview-subject")).to_contain_text("Aviso ")
    expect(page.locator("#preview-text")).to_contain_text("su saldo es $")
    page.fill("#mail-to", "no-es-un-correo")
    with page.expect_navigation():
        page.click("#mail-send-button")
    expect(page.locator("#mail-form .field-error")).to_contain_text("dirección de correo")
    expect(page.locator("#mail-to")).to_have_value("no-es-un-correo")   # nothing typed is lost
    page.fill("#mail-to", world["address"])
    page.locator("#mail-documents label", has_text=name).locator("input").check()
    with page.expect_navigation():
        page.click("#mail-send-button")
    expect(page.locator("#notice")).to_contain_text("cola")
    first = page.locator("#outbound tbody tr").first
    expect(first).to_contain_text(world["address"])

    def sent():
        page.reload()
        return page.locator("#outbound tbody tr").first.get_attribute("data-state") == "sent"
    wait_for(sent, what="the email to show as sent")
    expect(page.locator("#outbound tbody tr").first.locator(".message-state")).to_have_text("Enviado")
    uuid = page.locator("#outbound tbody tr").first.get_attribute("data-uuid")
    email = next(m for m in sink_messages() if m["X-Recaudo-Message-Id"] == uuid)
    assert [a.get_filename() for a in email.iter_attachments()] == [name]
    page.screenshot(path=str(screenshots / "messaging-debtor-tab.png"), full_page=True)


def test_an_admin_assigns_unmatched_mail_searches_and_edits_templates(world, new_page, screenshots):
    subject = f"Consulta sin datos {RUN}"
    append_mail(subject, "Alguien <alguien@desconocido.test>")
    admin = world["api"]("admin")
    admin.ok("POST", f"/api/v1/mailboxes/{world['mailbox']['id']}/sync")

    page = new_page()
    login(page, "admin", world["password"])
    page.click("#mail-link")
    row = page.locator("#triage tbody tr", has_text=subject)
    expect(row).to_be_visible()
    row.locator("input[name=account_id]").fill(str(world["account"]))
    with page.expect_navigation():
        row.locator("button[type=submit]").click()
    expect(page.locator("#notice")).to_contain_text("asignado")
    expect(page.locator("#triage tbody tr", has_text=subject)).to_have_count(0)

    page.click("#nav-search")
    page.fill("#subject", RUN)
    with page.expect_navigation():
        page.click("#search-button")
    expect(page.locator("#search-results tbody tr", has_text=subject)).to_be_visible()

    page.click("#nav-templates")
    page.fill("#tp-name", f"E2E correo {RUN} navegador")
    page.fill("#tp-subject-es", "Hola")
    page.fill("#tp-text-es", "{{ debtor.clave_secreta }}")
    with page.expect_navigation():
        page.click("#tp-save")
    expect(page.locator("#err-text_es")).to_contain_text("Campo desconocido: debtor.clave_secreta")
    page.click("#nav-mailboxes")
    expect(page.locator("#mailboxes tbody tr", has_text="cobranza@recaudo.demo")).to_be_visible()
    page.screenshot(path=str(screenshots / "messaging-mailboxes.png"), full_page=True)
