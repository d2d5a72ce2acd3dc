"""The portfolio screens in headless Chromium: "Cartera" with live search, the debtor's
360° view with its tabs, notes, the page without JavaScript, and a portfolio import
watched to the end through its progress bar.

Runs against the test stack with the demo users and portfolio (``demo_users``).
Screenshots go to ``var/test/screenshots`` (cartera.png, deudor.png, importacion.png).
"""
from __future__ import annotations

import re
import secrets

import pytest
import requests
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text

from recaudo_common.config import settings

from .helpers import ROOT, click_menu_link, watch_errors

RUN = secrets.token_hex(3)
DEMO_CSV = ROOT / "deploy" / "demo" / "bancomer_cartera.csv"
TABS = ["Notas", "Gestiones", "Promesas", "Aclaraciones", "Cumplimiento", "Contacto", "Contrato",
        "Domicilio", "Movimientos", "Avales", "Portal", "Documentos", "Correo", "SMS"]
# the activities tabs follow "Notas"; the debtor portal's link (Portal) follows the portfolio's;
# messaging's (Correo, SMS) come last


@pytest.fixture()
def page(new_page, demo_users):
    return new_page(viewport={"width": 1366, "height": 900}, timeout=15_000)


@pytest.fixture(scope="module")
def debtor(demo_users) -> dict:
    """A demo debtor of institution 1 with a callable phone only they have."""
    engine = create_engine(settings().database_url)
    with engine.connect() as conn:
        row = conn.execute(text("""
            SELECT d.id, d.name, d.customer_number, p.number AS phone
            FROM portfolio.debtors d JOIN portfolio.phones p ON p.debtor_id = d.id
            WHERE d.institution_id = 1 AND p.valid AND NOT p.do_not_call
              AND (SELECT count(*) FROM portfolio.phones o WHERE o.number = p.number) = 1
            ORDER BY d.id LIMIT 1""")).one()
    engine.dispose()
    return dict(row._mapping)


def log_in(page: Page, username: str, password: str, next_path: str = "/") -> None:
    page.goto(f"/login?next={next_path}")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#login-submit")
    expect(page.locator("#user-menu")).to_be_visible()


def test_supervisor_finds_a_debtor_by_phone_and_opens_the_360_view(page, demo_users, debtor,
                                                                   screenshots):
    errors = watch_errors(page)
    log_in(page, "supervisor", demo_users)
    with page.expect_navigation():
        page.click("#cartera-link")
    expect(page.locator("h1")).to_have_text("Cartera")
    rows = page.locator("#accounts-table tbody tr")
    expect(rows).to_have_count(25)
    headers = page.locator("#accounts-table thead th")
    expect(headers).to_have_text([re.compile(h, re.I) for h in (
        "Núm. cliente", "Nombre", "Morosidad", "Teléfono", "Etapa", "Saldo", "Vencido")])
    expect(rows.first.locator("td").nth(5)).to_have_text(re.compile(r"^\$[\d,]+\.\d\d$"))
    page.screenshot(path=str(screenshots / "cartera.png"))

    # live search: typing the phone refreshes the table (htmx) and the address bar
    search = page.locator("#q")
    search.click()
    search.press_sequentially(debtor["phone"], delay=20)
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_have_attribute("data-debtor-id", str(debtor["id"]))
    expect(row.locator("td").nth(1)).to_contain_text(debtor["name"])
    expect(page).to_have_url(re.compile(rf"q={debtor['phone']}"))
    page.screenshot(path=str(screenshots / "cartera-busqueda.png"))

    # sorting by a header keeps the search
    with page.expect_response(re.compile(r"/cartera\?")):
        page.click("#accounts-table th a[data-sort='balance']")
    expect(page).to_have_url(re.compile(r"orden=-balance"))
    expect(rows).to_have_count(1)

    with page.expect_navigation():
        row.locator("a.debtor-link").click()
    expect(page.locator("#debtor-name")).to_have_text(debtor["name"])
    expect(page.locator("#customer-number")).to_have_text(debtor["customer_number"])
    expect(page.locator("#debtor-balance")).to_have_text(re.compile(r"^\$[\d,]+\.\d\d$"))
    tabs = page.locator("nav.tabs a")
    expect(tabs).to_have_text([re.compile(rf"^{t}") for t in TABS])
    expect(page.locator("#tab-notas")).to_have_attribute("aria-current", "page")
    expect(page.locator("textarea#notes")).to_be_visible()   # a supervisor may write
    page.screenshot(path=str(screenshots / "deudor.png"), full_page=True)

    page.click("#tab-contacto")
    expect(page.locator("#tab-contacto")).to_have_attribute("aria-current", "page")
    digits = debtor["phone"]
    expect(page.locator("#phones")).to_contain_text(f"{digits[:2]} {digits[2:6]} {digits[6:]}")
    expect(page).to_have_url(re.compile(r"tab=contacto"))
    page.click("#tab-contrato")
    expect(page.locator(".instalments-table tbody tr").first).to_be_visible()
    page.screenshot(path=str(screenshots / "deudor-contrato.png"), full_page=True)
    for tab in ("domicilio", "movimientos", "avales"):
        page.click(f"#tab-{tab}")
        expect(page.locator(f"#panel-{tab}")).to_be_visible()
    assert errors == []


def test_notes_are_saved_in_place(page, demo_users, debtor):
    errors = watch_errors(page)
    log_in(page, "supervisor", demo_users, f"/deudores/{debtor['id']}")
    notes = page.locator("textarea#notes")
    before = notes.input_value()
    try:
        notes.fill(f"Prefiere llamadas por la tarde ({RUN})")
        page.click("#save-notes")
        expect(page.locator("#notice")).to_have_text("Notas guardadas.")
        page.reload()
        expect(page.locator("textarea#notes")).to_have_value(f"Prefiere llamadas por la tarde ({RUN})")
    finally:
        page.locator("textarea#notes").fill(before)
        page.click("#save-notes")
        expect(page.locator("#notice")).to_be_visible()
    assert errors == []


def test_a_phone_marked_do_not_contact_with_a_reason_shows_in_the_history(page, demo_users):
    """Issue 18: the contact tab marks a phone "no contactar" with a reason; the phone shows
    it and the history says who, when and why."""
    engine = create_engine(settings().database_url)
    with engine.connect() as conn:
        target = conn.execute(text("""
            SELECT d.id, p.id AS phone_id, p.number FROM portfolio.debtors d
            JOIN portfolio.phones p ON p.debtor_id = d.id
            WHERE d.institution_id = 1 AND NOT p.do_not_call
            ORDER BY d.id DESC, p.id LIMIT 1 OFFSET 3""")).one()
    engine.dispose()
    errors = watch_errors(page)
    log_in(page, "supervisor", demo_users, f"/deudores/{target.id}?tab=contacto")
    reason = f"Pidió no ser llamado a este número ({RUN})"
    formatted = f"{target.number[:2]} {target.number[2:6]} {target.number[6:]}"

    def save(flag: str, why: str, notice: bool = True):
        page.select_option("#dnc-contact", f"phone:{target.phone_id}")
        page.select_option("#dnc-action", flag)
        page.fill("#dnc-reason", why)
        page.click("#dnc-save")
        if notice:
            expect(page.locator("#notice")).to_have_text("Marca de no contactar guardada.")

    save("1", reason)
    try:
        newest = page.locator("#dnc-history tbody tr").first
        expect(newest).to_contain_text(reason)
        expect(newest).to_contain_text("supervisor")
        expect(newest).to_contain_text("Marcado")
        expect(newest.locator("td").nth(3)).to_have_text(formatted)
        expect(page.locator("#phones tr", has_text=formatted)).to_contain_text("No llamar")
        page.reload()                                   # kept, not only shown
        expect(page.locator("#dnc-history tbody tr").first).to_contain_text(reason)
    finally:
        save("0", "Fin de la prueba")
    expect(page.locator("#dnc-history tbody tr").first).to_contain_text("Marca quitada")
    assert errors == []


def test_the_list_works_without_javascript_and_in_english(browser, stack, demo_users, debtor):
    context = browser.new_context(base_url=stack.base_url, java_script_enabled=False)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        log_in(page, "cliente", demo_users, "/cartera")
        page.fill("#q", debtor["customer_number"])
        page.click("details.more-filters > summary")
        page.select_option("#filter-institution", "1")
        with page.expect_navigation():
            page.click("#search-submit")
        rows = page.locator("#accounts-table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-debtor-id", str(debtor["id"]))
        # a creditor sees only its own institution, and cannot write notes
        expect(page.locator("#filter-institution option")).to_have_count(2)   # "Todas" + 1
        with page.expect_navigation():
            rows.first.locator("a.debtor-link").click()
        expect(page.locator("textarea#notes")).to_have_count(0)
        # the tabs are plain links too
        with page.expect_navigation():
            page.click("#tab-contrato")
        expect(page.locator("#panel-contrato")).to_be_visible()
        # English
        page.goto("/idioma/en?next=/cartera")
        expect(page.locator("h1")).to_have_text("Portfolio")
        expect(page.locator("#accounts-table thead th").first).to_have_text(
            re.compile("Customer no.", re.I))
        expect(page.locator("#q")).to_have_attribute(
            "placeholder", "Search by name, customer number, account, phone or email")
    finally:
        context.close()


def test_empty_search_shows_the_empty_state(page, demo_users):
    log_in(page, "supervisor", demo_users, "/cartera?q=zzqx-nadie")
    expect(page.locator("#empty-state")).to_contain_text("Ninguna cuenta coincide")
    expect(page.locator("#accounts-table")).to_have_count(0)


def test_collector_does_not_see_imports(page, demo_users):
    log_in(page, "gestor1", demo_users, "/")
    expect(page.locator("#cartera-link")).to_be_visible()
    expect(page.locator("#imports-link")).to_have_count(0)
    response = page.goto("/importaciones")
    assert response.status == 403


def test_import_a_portfolio_file_and_watch_it_finish(page, stack, demo_users, screenshots):
    token = requests.post(stack.url("/api/v1/auth/token"), timeout=30, json={
        "username": "supervisor", "password": demo_users}).json()["access_token"]
    layouts = requests.get(stack.url("/api/v1/institutions/1/import-layouts"), timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
    assert layouts.status_code == 200, layouts.text
    portfolio_layouts = [l for l in layouts.json() if l.get("kind", "portfolio") == "portfolio"]
    assert portfolio_layouts, "the demo seed makes BANCOMER's portfolio layout"

    errors = watch_errors(page)
    log_in(page, "supervisor", demo_users, "/")
    with page.expect_navigation():
        click_menu_link(page, "#imports-link")
    page.select_option("#institution", "1")
    expect(page.locator("#layout option").first).to_be_attached()
    page.select_option("#layout", str(portfolio_layouts[0]["id"]))
    page.set_input_files("#file", str(DEMO_CSV))
    with page.expect_navigation():
        page.click("#upload-submit")
    expect(page).to_have_url(re.compile(r"/importaciones/\d+$"))
    expect(page.locator("#job-title")).to_have_text(DEMO_CSV.name)
    # the panel polls itself every second until the job is done, then stops
    expect(page.locator("#job-progress")).to_have_attribute("data-state", "done", timeout=120_000)
    expect(page.locator("#job-bar")).to_have_attribute("value", "100")
    expect(page.locator("#job-progress")).not_to_have_attribute("data-events", re.compile("."))
    total = int(page.locator("#count-total").inner_text().replace(",", ""))
    imported = int(page.locator("#count-imported").inner_text().replace(",", ""))
    rejected = int(page.locator("#count-rejected").inner_text().replace(",", ""))
    assert total > 0 and imported + rejected == total
    if rejected:
        expect(page.locator("#problems tbody tr").first).to_be_visible()
        expect(page.locator("#report-link")).to_have_attribute(
            "href", re.compile(r"/importaciones/\d+/reporte\.csv$"))
    else:
        expect(page.locator("#no-problems")).to_be_visible()
    page.screenshot(path=str(screenshots / "importacion.png"), full_page=True)
    with page.expect_navigation():
        click_menu_link(page, "#imports-link")
    expect(page.locator("#imports-table tbody tr").first).to_contain_text(DEMO_CSV.name)
    assert errors == []


def test_the_progress_bar_follows_the_import_events(page, stack, demo_users):
    """A payments file of 45,000 rows for accounts that do not exist (three chunks, every
    row rejected, nothing changes): the panel's event stream shows progress mid-way, fed
    by the service's import_progressed events, and the bar ends at 100."""
    token = requests.post(stack.url("/api/v1/auth/token"), timeout=30, json={
        "username": "supervisor", "password": demo_users}).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    layouts = requests.get(stack.url("/api/v1/institutions/1/import-layouts"), timeout=30,
                           headers=bearer).json()
    layout = next(l for l in layouts if l["kind"] == "payments")
    rows = 45_000
    body = "CUENTA,IMPORTE,FECHA_PAGO,REFERENCIA\n" + "".join(
        f"NO-EXISTE-{RUN}-{n},100.00,2026-01-15,R{n}\n" for n in range(rows))
    created = requests.post(stack.url("/api/v1/imports"), timeout=30, headers=bearer, json={
        "layout_id": layout["id"], "file_name": f"pagos-{RUN}.csv",
        "size_bytes": len(body.encode())}).json()
    job_id = created["job"]["id"]
    assert requests.put(created["upload_url"], data=body.encode(), timeout=60).ok

    errors = watch_errors(page)
    log_in(page, "supervisor", demo_users, f"/importaciones/{job_id}")
    expect(page.locator("#job-progress")).to_have_attribute("data-state", "queued")
    # a second listener beside the panel's, recording every event the stream sends
    page.evaluate("""url => { window.seen = [];
        const source = new EventSource(url);
        for (const kind of ["progress", "finished"]) source.addEventListener(kind,
            e => window.seen.push([kind, JSON.parse(e.data)])); }""",
                  f"/importaciones/{job_id}/eventos")
    page.wait_for_function("() => window.seen.length > 0")   # functions: the CSP forbids eval
    started = requests.post(stack.url(f"/api/v1/imports/{job_id}/start"), timeout=30,
                            headers=bearer)
    assert started.status_code == 202, started.text
    expect(page.locator("#job-progress")).to_have_attribute("data-state", "done", timeout=120_000)
    expect(page.locator("#job-bar")).to_have_attribute("value", "100")
    # counts are shown in the page's locale (es: 45.000)
    assert int(re.sub(r"\D", "", page.locator("#count-rejected").inner_text())) == rows
    page.wait_for_function("() => window.seen.some(([kind]) => kind === 'finished')")
    seen = page.evaluate("window.seen")
    assert seen[0] == ["progress", seen[0][1]] and seen[0][1]["state"] == "queued"
    midway = [p for kind, p in seen if kind == "progress"
              and 0 < (p.get("processed_rows") or 0) < rows]
    assert midway, seen
    assert seen[-1][0] == "finished" and seen[-1][1]["state"] == "done"
    assert seen[-1][1]["rejected_rows"] == rows
    assert errors == []


def test_an_administrator_keeps_the_status_catalogue_in_the_ui(page, demo_users):
    """Issue 18: the status catalogue had no screen (API only)."""
    code = f"E2E_{RUN.upper()}"
    engine = create_engine(settings().database_url)
    try:
        log_in(page, "admin", demo_users, "/admin/estatus?institucion=1")
        expect(page.locator("h1")).to_have_text("Estatus de cuenta")
        page.fill("#status-code", code.lower())           # saved upper case
        page.fill("#status-name", "Convenio en firma")
        with page.expect_navigation():
            page.click("#save-status")
        expect(page.locator("#notice")).to_have_text("Estatus guardado.")
        row = page.locator(f"#statuses tr[data-code='{code}']")
        expect(row).to_contain_text("Convenio en firma")

        # the same code again: refused beside the field, nothing lost
        page.fill("#status-code", code)
        page.fill("#status-name", "Otro")
        page.click("#save-status")
        expect(page.locator("#err-code")).to_contain_text("Ya existe")
        expect(page.locator("#status-name")).to_have_value("Otro")

        page.goto("/admin/estatus?institucion=1")
        page.click(f"#edit-status-{code}")
        page.uncheck("#status-active")
        with page.expect_navigation():
            page.click("#save-status")
        expect(page.locator(f"#statuses tr[data-code='{code}']")).to_have_class(
            re.compile("inactive"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT active FROM portfolio.statuses WHERE code = :c"),
                                {"c": code}).scalar_one() is False
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM portfolio.statuses WHERE code = :c"), {"c": code})
        engine.dispose()


def test_a_collector_has_no_status_screen(page, demo_users):
    log_in(page, "gestor1", demo_users)
    assert page.goto("/admin/estatus").status == 403
