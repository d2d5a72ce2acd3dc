"""API validation messages follow the request's language: ``Accept-Language``, then the
user's setting, Spanish by default (issue 18: they came in marshmallow's English)."""
import pytest

from gateway.app import create_app
from gateway.validation import localize, localize_fields


@pytest.fixture(scope="module")
def app():
    return create_app(testing=True)


def _problems(app, body, **headers):
    response = app.test_client().post("/api/v1/auth/token", json=body, headers=headers)
    assert response.status_code == 422
    return response.json["error"]


def test_validation_messages_are_spanish_by_default(app):
    error = _problems(app, {"username": 5})
    assert error["message"] == "Datos inválidos"
    assert error["fields"] == {"username": ["Debe ser un texto."],
                               "password": ["Falta este dato."]}


def test_an_api_request_asks_for_english_with_accept_language(app):
    error = _problems(app, {"username": 5}, **{"Accept-Language": "en-US,en;q=0.9"})
    assert error["message"] == "Invalid data"
    assert error["fields"]["username"] == ["Must be text."]
    assert error["fields"]["password"] == ["This is required."]
    # a language the platform does not speak: Spanish
    assert _problems(app, {}, **{"Accept-Language": "fr"})["fields"]["password"] == \
        ["Falta este dato."]


def test_marshmallow_messages_with_values_keep_them(app):
    with app.test_request_context("/api/v1/x", headers={"Accept-Language": "es"}):
        assert localize("Must be greater than or equal to 1 and less than or equal to 200.") \
            == "Debe estar entre 1 y 200."
        assert localize("Longer than maximum length 80.") == "Use a lo más 80 caracteres."
        assert localize("Must be one of: es, en.") == "Debe ser uno de: es, en."
        assert localize("Not a valid aware datetime.").startswith("Fecha y hora inválidas")
        # the services' own (Spanish) messages pass as they are when not in the catalogue
        assert localize("La cuenta no tiene gestiones") == "La cuenta no tiene gestiones"
        assert localize_fields({"q": {"0": {"name": ["Unknown field."]}}}) == \
            {"q": {"0": {"name": ["Campo desconocido."]}}}
    with app.test_request_context("/api/v1/x", headers={"Accept-Language": "en"}):
        assert localize("Must be greater than or equal to 1 and less than or equal to 200.") \
            == "Must be between 1 and 200."
        assert localize("Zona horaria desconocida") == "Unknown time zone"


def test_the_ui_does_not_follow_the_browsers_header(app):
    """The UI's language is the menu's choice or the user's: a browser always sends
    Accept-Language, and the product is Spanish first."""
    page = app.test_client().get("/", headers={"Accept-Language": "en-US"})
    assert "Bienvenido a Recaudo" in page.get_data(as_text=True)


def test_the_uis_own_api_calls_follow_the_menu_not_the_browser(app):
    from flask import g

    from gateway.i18n import select_locale
    with app.test_request_context("/api/v1/x", headers={"Accept-Language": "en-US"}):
        g.auth_kind, g.user = "session", {"language": "es"}
        assert select_locale() == "es"
    with app.test_request_context("/api/v1/x", headers={"Accept-Language": "en-US"}):
        g.auth_kind, g.user = "token", {"language": "es"}
        assert select_locale() == "en"
    with app.test_request_context("/api/v1/x"):
        g.auth_kind, g.user = "token", {"language": "en"}      # then the user's setting
        assert select_locale() == "en"
