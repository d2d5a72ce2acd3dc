"""The gateway's messaging pieces that need no broker: the API's routes and validation, the
"Correo" tab (preview, a refused send shown again with the problem next to its field and
nothing lost, the contact policy's reason), the triage list and the mailbox search, with
stand-in services."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from gateway import auth
from gateway.ui import messaging, portfolio
from gateway.app import create_app
from recaudo_common.errors import Conflict, InvalidInput

GESTOR = ["portfolio.read", "activities.read", "activities.log", "messaging.send"]
ADMIN = GESTOR + ["messaging.manage", "portfolio.read_all"]


def test_openapi_documents_the_messaging_api():
    app = create_app(testing=True)
    paths = app.test_client().get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/mailboxes", "/api/v1/mailboxes/{mailbox_id}/search",
                 "/api/v1/mailboxes/{mailbox_id}/sync", "/api/v1/templates",
                 "/api/v1/messages/email", "/api/v1/messages/fax", "/api/v1/messages/preview",
                 "/api/v1/inbound-messages/{inbound_id}/assign",
                 "/api/v1/institutions/{institution_id}/messaging-settings"):
        assert path in paths, path
    assert app.test_client().post("/api/v1/messages/email", json={}).status_code == 401


class FakePortfolio:
    def get_debtor(self, debtor_id):
        account = {"id": 100, "institution_id": 1, "debtor_id": debtor_id,
                   "account_number": "4152-0001", "currency": "MXN", "days_past_due": 45,
                   "balance": "12000.00", "overdue_amount": "3000.00", "stage": "delinquent"}
        return {"debtor": {"id": debtor_id, "institution_id": 1, "customer_number": "C-42",
                           "name": "María López", "kind": "person", "notes": "",
                           "tax_id": None, "national_id": None},
                "institution": {"id": 1, "code": "BANCOMER", "name": "BBVA Bancomer",
                                "currency": "MXN"},
                "phones": [], "addresses": [], "guarantors": [],
                "emails": [{"id": 1, "address": "maria@correo.mx", "kind": "personal",
                            "do_not_contact": False}],
                "accounts": [{"account": account, "status": None, "movements": [],
                              "instalments": []}]}


class FakeMessaging:
    def __init__(self):
        self.sent, self.refuse = [], None

    def list_templates(self, institution_id, include_inactive=False):
        return [{"id": 5, "name": "Recordatorio", "text_en": ""}]

    def list_outbound(self, query):
        return {"items": [{"id": 1, "uuid": "u-1", "created_at": "2026-11-23T16:00:00+00:00",
                           "channel": "email", "to_address": "maria@correo.mx",
                           "fax_number": None, "subject": "Aviso", "state": "failed",
                           "attempts": 3, "last_error": "550 Buzón inexistente",
                           "override_justification": None}], "total": 1}

    def list_inbound(self, query):
        return {"items": [{"id": 7, "synced_at": "2026-11-23T16:00:00+00:00", "sent_at": None,
                           "from_address": "x@y.mx", "from_name": "X", "subject": "¿Quién?",
                           "attachments": [], "problem": None, "state": "unmatched"}],
                "total": 1, "page": 1, "per_page": 25, "pages": 1}

    def preview(self, body):
        return {"subject": "Aviso 4152-0001", "text": "Hola María", "html": "<p>Hola</p>",
                "language": "es", "emails": [], "fax_numbers": [], "debtor_id": 42}

    def send_email(self, body):
        if self.refuse:
            raise self.refuse
        self.sent.append(body)
        return {"id": 2}

    def list_mailboxes(self, institution_id=None):
        return [{"id": 3, "name": "Cobranza", "address": "cobranza@banco.mx"}]

    def search_mailbox(self, mailbox_id, query):
        self.searched = (mailbox_id, query)
        return {"total": 1, "items": [{"uid": 9, "message_id": "<a@b>", "from_name": "Ana",
                                       "from_address": "ana@x.mx", "subject": "Convenio",
                                       "date": "2026-11-20T10:00:00+00:00", "size": 10,
                                       "inbound_id": None}]}


@pytest.fixture
def signed_in(monkeypatch):
    services = {"messaging": FakeMessaging(), "portfolio": FakePortfolio()}

    def make(permissions):
        from flask import g

        def someone():
            g.user = {"id": 3, "username": "gestor1", "display_name": "Gestor Uno",
                      "permissions": permissions, "language": "es"}
            g.identity_token, g.csrf_token, g.auth_kind = "x", "csrf", "session"

        @contextmanager
        def rpc(context_data=None):
            yield type("Proxy", (), services)()

        monkeypatch.setattr(auth, "resolve_caller", someone)
        monkeypatch.setattr(portfolio, "rpc", rpc)
        monkeypatch.setattr(messaging, "rpc", rpc)
        return create_app(testing=True), services["messaging"]

    return make


def test_the_mail_tab_shows_the_form_and_the_delivery_states(signed_in):
    app, _ = signed_in(GESTOR)
    page = app.test_client().get("/deudores/42?tab=correo").get_data(as_text=True)
    assert 'id="mail-form"' in page and 'value="maria@correo.mx"' in page
    assert "Falló" in page and "550 Buzón inexistente" in page and "3 intentos" in page
    assert 'id="mail-justification"' not in page         # only administrators override


def test_a_preview_and_a_send(signed_in):
    app, fake = signed_in(GESTOR)
    client = app.test_client()
    form = {"csrf_token": "csrf", "channel": "email", "account_id": "100", "template_id": "5",
            "language": "es", "to": "maria@correo.mx", "key": "k-1"}
    page = client.post("/deudores/42/correo", data={**form, "action": "preview"}).get_data(as_text=True)
    assert "Aviso 4152-0001" in page and "Hola María" in page and not fake.sent
    response = client.post("/deudores/42/correo", data={**form, "action": "send"})
    assert response.status_code == 302 and "done=message_queued" in response.headers["Location"]
    assert fake.sent == [{"account_id": 100, "template_id": 5, "language": "es",
                          "to": "maria@correo.mx", "document_version_ids": [],
                          "idempotency_key": "k-1"}]


def test_a_refused_send_comes_back_with_the_problem_and_nothing_lost(signed_in):
    app, fake = signed_in(ADMIN)
    fake.refuse = InvalidInput("Datos inválidos", {"to": ["No es una dirección de correo válida"]})
    response = app.test_client().post("/deudores/42/correo", data={
        "csrf_token": "csrf", "channel": "email", "account_id": "100", "template_id": "5",
        "to": "no-es-correo", "action": "send"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="err-to"' in page and 'value="no-es-correo"' in page
    fake.refuse = Conflict("Fuera del horario", {"compliance": ["Fuera del horario permitido"]})
    response = app.test_client().post("/deudores/42/correo", data={
        "csrf_token": "csrf", "channel": "email", "account_id": "100", "template_id": "5",
        "to": "maria@correo.mx", "action": "send"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and 'id="mail-compliance"' in page
    assert 'id="err-justification"' in page               # an admin may send anyway


def test_triage_and_search(signed_in):
    app, fake = signed_in(GESTOR)
    client = app.test_client()
    page = client.get("/correo").get_data(as_text=True)
    assert 'data-inbound-id="7"' in page and "¿Quién?" in page
    page = client.get("/correo/buscar?mailbox_id=3&subject=convenio").get_data(as_text=True)
    assert fake.searched == (3, {"subject": "convenio"}) and "Convenio" in page
    assert client.get("/correo/buzones").status_code == 403   # messaging.manage only
