"""API validation messages follow the request's language through the whole stack: a
program's ``Accept-Language`` first, then the user's own setting, Spanish by default
(issue 18: "Not a valid integer." while everything else spoke Spanish)."""
from __future__ import annotations

import pytest
import requests

from .helpers import wait_for


@pytest.fixture()
def gestor(stack, demo_users):
    http = requests.Session()
    token = http.post(stack.url("/api/v1/auth/token"), timeout=30, json={
        "username": "gestor1", "password": demo_users}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    yield http
    http.headers.pop("Accept-Language", None)
    http.patch(stack.url("/api/v1/auth/me"), json={"language": "es"}, timeout=30)


def _refused(http, stack, **headers) -> dict:
    """A refusal of the service (an unknown time zone) and one of the gateway's schema."""
    service = http.patch(stack.url("/api/v1/auth/me"), json={"time_zone": "Marte/Olimpo"},
                         headers=headers, timeout=30)
    schema = http.get(stack.url("/api/v1/accounts"), params={"page": "uno"}, headers=headers,
                      timeout=30)
    assert service.status_code == 422 and schema.status_code == 422, (service.text, schema.text)
    return {"service": service.json()["error"]["fields"]["time_zone"],
            "schema": schema.json()["error"]["fields"]["page"],
            "message": schema.json()["error"]["message"]}


def test_spanish_by_default_then_the_users_setting_then_the_request(stack, gestor):
    assert _refused(gestor, stack) == {"service": ["Zona horaria desconocida"],
                                       "schema": ["Debe ser un número entero."],
                                       "message": "Datos inválidos"}
    gestor.patch(stack.url("/api/v1/auth/me"), json={"language": "en"}, timeout=30)
    # the gateways' identity caches forget the user's summary on auth's event
    wait_for(lambda: _refused(gestor, stack)["message"] == "Invalid data",
             what="the user's language to reach the gateway")
    assert _refused(gestor, stack) == {"service": ["Unknown time zone"],
                                       "schema": ["Must be a whole number."],
                                       "message": "Invalid data"}
    assert _refused(gestor, stack, **{"Accept-Language": "es-MX,es;q=0.9"})["schema"] == \
        ["Debe ser un número entero."]
