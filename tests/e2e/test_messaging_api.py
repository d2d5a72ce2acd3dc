"""The messaging API against the running stack, whose runner also starts the local mail
servers (dovecot for IMAP, the aiosmtpd sink for SMTP) the demo mailbox of institution 1
points at: a message APPENDed to the mailbox from a demo debtor's address is synced and
logged on the debtor's account; a template rendered in a preview is sent as email (it
reaches the sink with our headers) and as a fax (to the fax gateway's domain, with the
PDF); the server-side search finds a message; bad input answers 422 naming the field.

The contact window of institution 1 is opened to the whole day for the module and put
back after. Templates are named ``E2E correo …``; messages and activities stay (the log
is append-only).
"""
from __future__ import annotations

import secrets
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from imapclient import IMAPClient

from recaudo_common.config import settings
from recaudo_common.demo import USER_IDS

from .test_queues_api import Api, sql, token, wait_for

RUN = secrets.token_hex(3)
INSTITUTION = 1
ROOT = Path(__file__).resolve().parents[2]
DEMO_USER, DEMO_PASSWORD = "cobranza@recaudo.demo", "recaudo-demo"


def sink_messages() -> list:
    directory = ROOT / settings().var_dir / "mail" / "sink"
    files = sorted(directory.glob("*.eml"), key=lambda p: int(p.name.split("-")[0]))
    return [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in files]


@pytest.fixture(scope="module")
def world(stack, demo_users):
    clients = {}

    def api(username: str) -> Api:
        if username not in clients:
            clients[username] = Api(stack.base_url, token(stack.base_url, username, demo_users))
        return clients[username]

    window = sql("SELECT contact_from, contact_until, jurisdiction FROM portfolio.institutions "
                 "WHERE id = :i",
                 i=INSTITUTION)[0]
    # any hour (no seeded jurisdiction: the default policy, the institution's window only)
    sql("UPDATE portfolio.institutions SET contact_from = '00:00', contact_until = '23:59:59',"
        " jurisdiction = 'ZZ' WHERE id = :i", i=INSTITUTION)
    account_id, debtor_id, address = sql(
        "SELECT a.id, a.debtor_id, e.address FROM portfolio.accounts a"
        " JOIN portfolio.emails e ON e.debtor_id = a.debtor_id AND NOT e.do_not_contact"
        " WHERE a.institution_id = :i AND a.assigned_agent_id = :g"
        # every account of the debtor is gestor1's: mail matched by its sender lands on one
        # of them, which gestor1 must be able to open
        " AND NOT EXISTS (SELECT 1 FROM portfolio.accounts o WHERE o.debtor_id = a.debtor_id"
        "                 AND o.assigned_agent_id IS DISTINCT FROM :g)"
        " ORDER BY a.id DESC LIMIT 1",
        i=INSTITUTION, g=USER_IDS["gestor1"])[0]
    mailbox = next(b for b in api("admin").ok("GET", f"/api/v1/mailboxes?institution_id={INSTITUTION}")
                   if b["address"] == DEMO_USER)
    template = api("admin").ok("POST", "/api/v1/templates", {
        "institution_id": INSTITUTION, "name": f"E2E correo {RUN}-{secrets.token_hex(2)}",
        "subject_es": "Aviso {{ account.account_number }}",
        "text_es": "Hola {{ debtor.name }}, su saldo es ${{ account.balance|money }}.",
        "subject_en": "Notice {{ account.account_number }}",
        "text_en": "Hello {{ debtor.name }}."}, status=201)
    yield {"api": api, "account": account_id, "debtor": debtor_id, "address": address,
           "mailbox": mailbox, "template": template, "base_url": stack.base_url,
           "password": demo_users}
    sql("UPDATE portfolio.institutions SET contact_from = :f, contact_until = :u, "
        "jurisdiction = :j WHERE id = :i", f=window[0], u=window[1], j=window[2], i=INSTITUTION)
    sql("UPDATE messaging.templates SET active = false WHERE name LIKE 'E2E correo %'")


def _append(subject: str, sender: str, body: str = "Hola") -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, DEMO_USER, subject
    msg["Message-ID"] = f"<e2e-{RUN}-{time.time_ns()}@cliente.test>"
    msg.set_content(body)
    client = IMAPClient("127.0.0.1", port=settings().local_imap_port, ssl=False, timeout=20)
    try:
        client.login(DEMO_USER, DEMO_PASSWORD)
        client.append("INBOX", msg.as_bytes())
    finally:
        client.logout()


def test_inbound_mail_from_a_debtor_is_synced_and_logged_on_the_account(world):
    admin, gestor = world["api"]("admin"), world["api"]("gestor1")
    subject = f"Ya pagué {RUN}"
    _append(subject, f"Deudor <{world['address'].upper()}>", "Adjunto mi comprobante")
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
