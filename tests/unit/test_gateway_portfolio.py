"""The gateway's portfolio pieces that need no broker: formatting, the list's filters,
the upload size limit, routes and their OpenAPI document."""
from decimal import Decimal

import pytest
from werkzeug.datastructures import MultiDict

from gateway import uploads
from gateway.ui import portfolio
from gateway.ui._common import dpd_class
from gateway.app import create_app

from .helpers import SUPERVISOR


@pytest.fixture
def app():
    return create_app(testing=True)


@pytest.mark.parametrize("language", ["es", "en"])
def test_pesos_read_the_mexican_way_in_both_languages(app, language):
    with app.test_request_context(headers={"Cookie": f"lang={language}"}):
        assert portfolio.money("3265") == "$3,265.00"
        assert portfolio.money(Decimal("1234567.5"), "MXN") == "$1,234,567.50"
        assert portfolio.money(None) == "" and portfolio.money("n/a") == ""


def test_phones_are_grouped():
    assert portfolio.phone("5558897228") == "55 5889 7228"
    assert portfolio.phone("4421234567") == "442 123 4567"
    assert portfolio.phone("58897228") == "58897228"


def test_days_past_due_buckets():
    assert [dpd_class(d) for d in (0, 1, 30, 31, 90, 91)] == \
        ["dpd-0", "dpd-30", "dpd-30", "dpd-90", "dpd-90", "dpd-late"]


def test_list_filters_from_the_url(app):
    with app.test_request_context():
        filters, errors = portfolio.Filters.from_args(MultiDict({
            "q": " 5512 ", "institucion": "2", "etapa": "litigation", "estatus": "7",
            "morosidad_min": "30", "morosidad_max": "abc", "saldo_min": "$1,000.50",
            "orden": "-balance"}))
        assert errors == {"morosidad_max": "Escriba un número entero"}
        assert filters.query(3) == {
            "page": 3, "per_page": portfolio.PER_PAGE, "sort": "-balance", "q": "5512",
            "institution_id": 2, "stage": "litigation", "status_id": 7, "dpd_min": 30,
            "balance_min": "1000.50"}
        assert filters.narrowed and filters.active
        plain, _ = portfolio.Filters.from_args(MultiDict({"orden": "drop table", "etapa": "x"}))
        assert plain.sort == portfolio.DEFAULT_SORT and plain.stage == "" and not plain.active


def test_portfolio_pages_ask_anonymous_visitors_to_log_in(app):
    client = app.test_client()
    for path in ("/cartera", "/deudores/1", "/importaciones", "/importaciones/1"):
        response = client.get(path)
        assert response.status_code == 302 and "/login?next=" in response.headers["Location"]


def test_only_the_upload_endpoints_lift_the_size_limit(app):
    client = app.test_client()
    big = b"x" * (3 * 1024 * 1024)
    # anywhere else a 3 MB body is refused before anything reads it
    assert client.post("/api/v1/statuses", data=big,
                       content_type="application/json").status_code in (401, 413)
    with app.test_request_context("/api/v1/imports/upload", method="POST"):
        from flask import request
        app.preprocess_request()
        assert request.max_content_length == uploads.MAX_UPLOAD_BYTES
    with app.test_request_context("/api/v1/statuses", method="POST"):
        from flask import request
        app.preprocess_request()
        assert request.max_content_length == 2 * 1024 * 1024


def test_openapi_documents_the_portfolio_api(app):
    paths = app.test_client().get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/accounts", "/api/v1/accounts/{account_id}", "/api/v1/debtors/{debtor_id}",
                 "/api/v1/debtors/{debtor_id}/notes", "/api/v1/statuses",
                 "/api/v1/institutions/{institution_id}/statuses",
                 "/api/v1/institutions/{institution_id}/import-layouts", "/api/v1/imports",
                 "/api/v1/imports/upload", "/api/v1/imports/{job_id}/report.csv"):
        assert path in paths, path
    upload = paths["/api/v1/imports/upload"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    query = {p["name"] for p in paths["/api/v1/accounts"]["get"]["parameters"]}
    assert {"q", "institution_id", "stage", "status_id", "dpd_min", "sort", "page"} <= query


# --- the import screens with a stand-in portfolio service -----------------------------------

class FakePortfolio:
    def __init__(self):
        self.job = {"id": 7, "institution_id": 1, "layout_id": 3, "kind": "portfolio",
                    "file_name": "bancomer_cartera.csv", "size_bytes": 2048, "state": "running",
                    "total_rows": 200, "processed_rows": 50, "imported_rows": 48,
                    "rejected_rows": 2, "message": "", "created_at": "2026-11-23T10:00:00+00:00"}

    def list_institutions(self):
        return [{"id": 1, "code": "BANCOMER", "name": "BBVA Bancomer", "currency": "MXN"}]

    def list_layouts(self, institution_id):
        return [{"id": 3, "institution_id": 1, "name": "Cartera mensual", "kind": "portfolio",
                 "file_format": "csv"}]

    def list_imports(self, query):
        return {"items": [self.job], "total": 1, "page": 1, "per_page": 15, "pages": 1}

    def get_import(self, job_id):
        return dict(self.job)

    def import_problems(self, job_id, page, per_page):
        return {"items": [{"row_number": 4, "column": "saldo", "problem": "No es un importe"}],
                "total": 2, "page": 1, "per_page": per_page, "pages": 1}


SUPERVISOR_PERMISSIONS = ["portfolio.read", "portfolio.read_all", "portfolio.write",
                          "portfolio.import"]


@pytest.fixture
def fake():
    return FakePortfolio()


@pytest.fixture
def services(fake):
    return {"portfolio": fake}


def test_import_screens_render_and_follow_the_job_until_it_ends(signed_in, fake):
    app = signed_in(SUPERVISOR_PERMISSIONS, user=SUPERVISOR)
    client = app.test_client()
    listing = client.get("/importaciones").get_data(as_text=True)
    assert 'id="upload-form"' in listing and "Cartera mensual" in listing
    assert "bancomer_cartera.csv" in listing and 'enctype="multipart/form-data"' in listing

    running = client.get("/importaciones/7").get_data(as_text=True)
    assert 'data-events="/importaciones/7/eventos"' in running and 'value="25"' in running
    assert 'data-refresh="/importaciones/7/progreso"' in running and "import-progress.js" in running
    assert 'id="problems"' not in running

    fake.job.update(state="done", processed_rows=200, imported_rows=198)
    done = client.get("/importaciones/7/progreso").get_data(as_text=True)
    assert "data-events" not in done and 'value="100"' in done and 'data-state="done"' in done
    assert "No es un importe" in done and "/importaciones/7/reporte.csv" in done


def test_an_upload_without_a_file_is_shown_again_with_the_problem(signed_in):
    app = signed_in(SUPERVISOR_PERMISSIONS, user=SUPERVISOR)
    response = app.test_client().post("/importaciones", data={
        "csrf_token": "csrf", "institution_id": "1", "layout_id": "3"})
    assert response.status_code == 422
    assert "Seleccione un archivo CSV o XLSX" in response.get_data(as_text=True)
