"""The gateway's app factory, error table and UI shell, without a broker."""
import pytest
from flask import Blueprint

from gateway.app import create_app
from gateway.errors import HTTP_STATUS
from recaudo_common import errors


@pytest.fixture
def app():
    app = create_app(testing=True)
    bp = Blueprint("boom", __name__)

    @bp.get("/boom/<kind>")
    def boom(kind):
        raise getattr(errors, kind)("Mensaje", {"campo": ["problema"]})

    app.register_blueprint(bp)
    return app


@pytest.mark.parametrize("cls,status", sorted(HTTP_STATUS.items(), key=lambda i: i[1]))
def test_domain_errors_map_to_http_with_one_body(app, cls, status):
    response = app.test_client().get(f"/boom/{cls.__name__}")
    assert response.status_code == status
    assert response.json == {"error": {"code": cls.code, "message": "Mensaje",
                                       "fields": {"campo": ["problema"]}}}


def test_every_domain_error_has_a_status():
    assert set(HTTP_STATUS) == set(errors.EXPECTED)


def test_unknown_url_answers_json_404(app):
    response = app.test_client().get("/no/such/page")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_request_id_is_echoed_or_made(app):
    client = app.test_client()
    assert client.get("/no", headers={"X-Request-ID": "abcdef123456"}).headers["X-Request-ID"] == "abcdef123456"
    made = client.get("/no", headers={"X-Request-ID": "bad id!"}).headers["X-Request-ID"]
    assert made != "bad id!" and len(made) == 32


def test_home_is_spanish_by_default_and_english_by_choice(app):
    client = app.test_client()
    assert "Bienvenido a Recaudo" in client.get("/").get_data(as_text=True)
    switched = client.get("/idioma/en?next=/")
    assert switched.status_code == 302 and switched.headers["Location"] == "/"
    assert "Welcome to Recaudo" in client.get("/").get_data(as_text=True)


def test_language_switch_never_redirects_off_site(app):
    response = app.test_client().get("/idioma/en?next=//evil.example/")
    assert response.headers["Location"] == "/"


def test_openapi_document_lists_the_api(app):
    spec = app.test_client().get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/system/health" in spec["paths"]
