"""Documents in headless Chromium: gestor1 opens the "Documentos" tab of a debtor's 360°
view, drops a PDF on the upload zone (the browser sends it straight to the local S3
server with a progress bar, then the service verifies it), sees it listed, and
downloads it back byte for byte; a supervisor shares the folder and the address works.
"""
from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import expect

from .helpers import login, sql

RUN = secrets.token_hex(3)
PDF = b"%PDF-1.4\n% navegador\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


@pytest.fixture(scope="module")
def debtor_id(stack, demo_users):
    gestor_id = sql("SELECT id FROM auth.users WHERE username = 'gestor1'")[0][0]
    yield sql("SELECT debtor_id FROM portfolio.accounts WHERE institution_id = 1 "
              "AND assigned_agent_id = :a ORDER BY id LIMIT 1", a=gestor_id)[0][0]
    sql("DELETE FROM documents.share_links WHERE label LIKE :p", p=f"navegador-{RUN}%")
    sql("DELETE FROM documents.documents WHERE name LIKE :p", p=f"navegador-{RUN}%")


def test_a_collector_uploads_a_pdf_and_downloads_it_back(debtor_id, demo_users, new_page,
                                                         screenshots, tmp_path):
    name = f"navegador-{RUN}-contrato.pdf"
    page = new_page()
    login(page, "gestor1", demo_users)
    page.goto(f"/deudores/{debtor_id}?tab=documentos")
    expect(page.locator("#panel-documentos")).to_be_visible()
    page.select_option("#doc-category", "contrato")
    page.set_input_files("#doc-files", files=[{"name": name, "mimeType": "application/pdf",
                                                "buffer": PDF}])
    row = page.locator("#documents tr", has_text=name)
    expect(row).to_be_visible(timeout=20_000)          # the tab reloads once it is stored
    expect(row).to_contain_text("Contrato")
    page.screenshot(path=str(screenshots / "documents-tab.png"), full_page=True)
    with page.expect_download() as download:
        row.locator("a.doc-download").click()
    saved = tmp_path / "back.pdf"
    download.value.save_as(saved)
    assert saved.read_bytes() == PDF
    assert download.value.suggested_filename == name


def test_a_refused_file_says_why_in_the_page(debtor_id, demo_users, new_page):
    page = new_page()
    login(page, "gestor1", demo_users)
    page.goto(f"/deudores/{debtor_id}?tab=documentos")
    page.set_input_files("#doc-files", files=[{"name": f"navegador-{RUN}-x.pdf",
                                                "mimeType": "application/pdf",
                                                "buffer": b"MZ\x90\x00" + bytes(100)}])
    failed = page.locator("#upload-list li.failed")
    expect(failed).to_contain_text("programas", timeout=20_000)
    expect(page.locator("#documents tr", has_text=f"navegador-{RUN}-x.pdf")).to_have_count(0)


def test_a_supervisor_shares_the_folder_and_the_address_opens_it(debtor_id, demo_users,
                                                                 new_page):
    page = new_page()
    login(page, "supervisor", demo_users)
    page.goto(f"/deudores/{debtor_id}?tab=documentos")
    page.fill("#share-label", f"navegador-{RUN} para el banco")
    page.click("#create-link")
    address = page.locator("#new-link-url")
    expect(address).to_be_visible()
    url = address.input_value()
    holder = new_page()
    holder.goto(url)
    expect(holder.locator("h1")).to_contain_text(f"navegador-{RUN} para el banco")
