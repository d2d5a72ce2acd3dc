"""The messaging API against the running stack, whose runner also starts the local mail
servers (dovecot for IMAP, the aiosmtpd sink for SMTP) the demo mailbox of institution 1
points at: a message APPENDed to the mailbox from a demo debtor's address is synced and
logged on the debtor's account; a template rendered in a preview is sent as email (it
reaches the sink with our headers) and as a fax (to the fax gateway's domain, with the
PDF); the server-side search finds a message; bad input answers 422 naming the field.

The contact window of institution 1 is opened to the whole day for the module and put
back after (``messaging_world`` in conftest.py). Templates are named ``E2E correo …``; messages and activities stay (the log
is append-only).
"""
from __future__ import annotations

import secrets

import pytest

from .helpers import INSTITUTION, append_mail, sink_messages, wait_for

RUN = secrets.token_hex(3)


@pytest.fixture(scope="module")
def world(messaging_world):
    return messaging_world


def test_inbound_mail_from_a_debtor_is_synced_and_logged_on_the_account(world):
    admin, gestor = world["api"]("admin"), world["api"]("gestor1")
    subject = f"Ya pagué {RUN}"
    append_mail(subject, f"Deudor <{world['address'].upper()}>", "Adjunto mi comprobante")
    result = admin.ok("POST", f"/api/v1/mailboxes/{world['mailbox']['id']}/sync")
    assert "error" not in result, result
    inbound = gestor.ok("GET", f"/api/v1/inbound-messages?debtor_id={world['debtor']}")["items"]
    mine = next(m for m in inbound if m["subject"] == subject)
    assert mine["state"] == "matched" and mine["matched_by"] == "sender"
    wait_for(lambda: gestor.ok("GET", f"/api/v1/inbound-messages/{mine['id']}")["activity_id"],
             what="the inbound activity")
    history = gestor.ok("GET", f"/api/v1/accounts/{mine['account_id']}/activities")["items"]
    assert any(a["kind"] == "email" and a["direction"] == "inbound" and subject in a["description"]
               for a in history)
    found = gestor.ok("GET", f"/api/v1/mailboxes/{world['mailbox']['id']}/search?subject={RUN}")
    assert found["total"] >= 1 and found["items"][0]["inbound_id"] == mine["id"]


def test_an_email_and_a_fax_reach_the_sink_and_are_logged(world):
    gestor = world["api"]("gestor1")
    body = {"account_id": world["account"], "template_id": world["template"]["id"]}
    preview = gestor.ok("POST", "/api/v1/messages/preview", body)
    assert preview["subject"].startswith("Aviso ") and "su saldo es $" in preview["text"]
    key = f"e2e-{RUN}-email"
    sent = gestor.call("POST", "/api/v1/messages/email", {**body, "to": world["address"]},
                       headers={"Idempotency-Key": key})
    assert sent.status_code == 201, sent.text
    again = gestor.call("POST", "/api/v1/messages/email", {**body, "to": world["address"]},
                        headers={"Idempotency-Key": key})
    assert again.json()["id"] == sent.json()["id"]
    message = sent.json()
    done = wait_for(lambda: (m := gestor.ok("GET", f"/api/v1/messages/{message['id']}"))["state"]
                    != "queued" and m, what="the email to be sent")
    assert done["state"] == "sent", done
    email = next(m for m in sink_messages() if m["X-Recaudo-Message-Id"] == message["uuid"])
    assert email["To"] == world["address"] and email["Subject"] == preview["subject"]

    fax = gestor.ok("POST", "/api/v1/messages/fax", {**body, "fax_number": "5512345678"},
                    status=201)
    assert fax["to_address"] == "5512345678@fax.recaudo.demo"
    wait_for(lambda: gestor.ok("GET", f"/api/v1/messages/{fax['id']}")["state"] == "sent",
             what="the fax to be sent")
    sent_fax = next(m for m in sink_messages() if m["X-Recaudo-Message-Id"] == fax["uuid"])
    (pdf,) = list(sent_fax.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    kinds = [(a["kind"], a["direction"]) for a in gestor.ok(
        "GET", f"/api/v1/accounts/{world['account']}/activities")["items"][:2]]
    assert ("fax", "outbound") in kinds and ("email", "outbound") in kinds
    listed = gestor.ok("GET", f"/api/v1/messages?debtor_id={world['debtor']}")["items"]
    assert {message["id"], fax["id"]} <= {m["id"] for m in listed}


def test_bad_input_answers_422_naming_the_field(world):
    admin, gestor = world["api"]("admin"), world["api"]("gestor1")
    answer = admin.call("POST", "/api/v1/templates", {
        "institution_id": INSTITUTION, "name": f"E2E correo {RUN} mala",
        "subject_es": "Hola", "text_es": "{{ debtor.contrasena }}"})
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"]["text_es"] == ["Campo desconocido: debtor.contrasena"]
    answer = gestor.call("POST", "/api/v1/messages/email", {
        "account_id": world["account"], "template_id": world["template"]["id"],
        "to": "esto-no-es-correo"})
    assert answer.status_code == 422 and "to" in answer.json()["error"]["fields"]
    answer = admin.call("POST", "/api/v1/mailboxes", {
        **{k: world["mailbox"][k] for k in ("institution_id", "address", "imap_host", "imap_user",
                                             "smtp_host")},
        "name": f"E2E {RUN}", "imap_port": 0, "imap_password": "x"})
    assert answer.status_code == 422 and "imap_port" in answer.json()["error"]["fields"]
    answer = gestor.call("GET", f"/api/v1/mailboxes/{world['mailbox']['id']}/search")
    assert answer.status_code == 422
