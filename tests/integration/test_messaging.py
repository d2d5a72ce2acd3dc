"""The messaging service over RabbitMQ with real mail servers: Debian's dovecot (IMAP) and
an aiosmtpd sink, the real portfolio and activities services answering its look-ups and
logging its activities, the real database.

Messages APPENDed to the IMAP mailbox are synced and matched (sender, pattern, reply),
the rest waits in triage; a restarted service resumes after the last UID without
duplicates; a UIDVALIDITY change re-reads the folder without duplicating; outbound
mail reaches the sink with our headers; a temporary SMTP failure is retried; a fax
reaches the sink addressed to the fax gateway with its PDF; bounces find their message;
the contact policy refuses (and an admin overrides, on the record); bad input is a
clear error that writes nothing; a broken mailbox does not stop the others.

Institutions 8701/8702, their debtors and accounts are made for the module and removed
after; the messaging tables are emptied around every test.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient
from nameko.testing.services import entrypoint_hook
from sqlalchemy import text

from activities.service import ActivitiesService
from messaging import attachments, delivery, idle
from messaging.service import MessagingService
from portfolio.models import Base as PortfolioBase
from portfolio.service import PortfolioService
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign

from .helpers import fire_together, record, scalar, sql, wait_for

from .messaging_world import (_setup_sending, INST, OTHER, D1, D2, D3, GESTOR, ADMIN, USER,
                              PASSWORD, ACC_D1_2, TABLES, signed, GESTOR_PERMS,
                              QuietPortfolioService, portfolio_rows, _truncate, mail, services,
                              admin, gestor, mailbox_data, TEMPLATE, email, rows, events,
                              activities_of)


def test_inbound_mail_is_synced_and_matched_and_the_rest_waits_in_triage(
        admin, gestor, mail, imap_server, smtp_sink, engine):
    box = admin.save_mailbox(mailbox_data(imap_server, smtp_sink))
    assert "imap_password" not in box
    stored = scalar(engine, "SELECT imap_password FROM messaging.mailboxes")
    assert PASSWORD not in stored          # encrypted at rest
    admin.save_pattern({"institution_id": INST, "name": "Cuenta", "target": "account_number",
                        "regex": r"[Cc]uenta\s+(\d{8})"})
    before_d1 = len(activities_of(engine, D1))
    mail.append("INBOX", email("Ana <ANA@cliente.test>", "Pago", "Ya pagué, adjunto ficha"))
    mail.append("INBOX", email("desconocido@otro.test", "Sobre la cuenta 55667788", "Hola"))
    mail.append("INBOX", email("nadie@otro.test", "Hola", "Sin datos"))
    mail.append("INBOX", b"esto no es un correo \xff\xfe")
    result = admin.sync_mailbox(box["id"])
    assert result["fetched"] == 4 and result["new"] == 4
    assert result["matched"] == 2 and result["unmatched"] == 2
    got = rows(engine)
    assert [(r["state"], r["matched_by"], r["account_id"]) for r in got] == [
        ("matched", "sender", D1), ("matched", "pattern", ACC_D1_2),
        ("unmatched", None, None), ("unmatched", None, None)]
    # the sender matched only within the mailbox's institution (D3 has the same address)
    assert got[0]["debtor_id"] == D1
    assert got[3]["message_id"].startswith("<sha256.")
    # matched -> inbound email activities, logged by the platform
    assert wait_for(lambda: all(r["activity_id"] for r in rows(engine)[:2]))
    logged = activities_of(engine, D1)[before_d1:]
    assert [(a["kind"], a["direction"], a["result_code"]) for a in logged] == [
        ("email", "inbound", "CORREO_REC")]
    assert "Ya pagué" in logged[0]["description"]
    assert {e["state"] for e in events(engine, "message_received")} == {"matched", "unmatched"}

    # triage: the gestor sees the unmatched ones and assigns one by hand
    triage = gestor.list_inbound({"state": "unmatched"})
    assert triage["total"] == 2
    assigned = gestor.assign_inbound(triage["items"][0]["id"], {"account_id": D2})
    assert assigned["state"] == "assigned" and assigned["matched_by"] == "manual"
    assert activities_of(engine, D2)[-1]["agent_id"] == GESTOR
    with pytest.raises(Conflict):
        gestor.assign_inbound(triage["items"][0]["id"], {"account_id": D2})
    with pytest.raises(InvalidInput) as err:   # an account of another institution
        admin.assign_inbound(triage["items"][1]["id"], {"account_id": D3})
    assert "account_id" in err.value.fields
    assert gestor.list_inbound({"state": "unmatched"})["total"] == 1


def test_a_message_the_database_would_refuse_does_not_stop_the_mailbox(admin, mail, imap_server,
                                                                       smtp_sink, engine):
    box = admin.save_mailbox(mailbox_data(imap_server, smtp_sink))
    # a NUL character hidden in an encoded word: PostgreSQL text cannot hold it
    mail.append("INBOX", (b"From: =?utf-8?b?QW5hAA==?= <ana@cliente.test>\r\n"
                          b"Subject: =?utf-8?b?SG9sYQBBZGlvcw==?=\r\n"
                          b"Message-ID: <nul@cliente.test>\r\n\r\nCuerpo\r\n"))
    mail.append("INBOX", email("beto@cliente.test", "Después"))
    result = admin.sync_mailbox(box["id"])
    assert result["new"] == 2 and "error" not in result
    assert [r["subject"] for r in rows(engine)] == ["HolaAdios", "Después"]


def test_a_restarted_service_resumes_after_the_last_uid(
        admin, mail, imap_server, smtp_sink, engine, services, container_factory, rabbit_config):
    box = admin.save_mailbox(mailbox_data(imap_server, smtp_sink))
    for n in range(3):
        mail.append("INBOX", email("ana@cliente.test", f"Mensaje {n}"))
    assert admin.sync_mailbox(box["id"])["new"] == 3
    services.stop()
    mail.append("INBOX", email("ana@cliente.test", "Después del reinicio"))
    container_factory(MessagingService, rabbit_config).start()
    result = admin.sync_mailbox(box["id"])
    assert result["fetched"] == 1 and result["new"] == 1 and result["duplicates"] == 0
    assert admin.sync_mailbox(box["id"])["fetched"] == 0
    assert scalar(engine, "SELECT count(*) FROM messaging.inbound_messages") == 4
    assert scalar(engine, "SELECT count(DISTINCT uid) FROM messaging.inbound_messages") == 4


def test_new_mail_is_synced_at_once_where_the_server_offers_idle(admin, mail, imap_server,
                                                                  smtp_sink, engine):
    box = admin.save_mailbox(mailbox_data(imap_server, smtp_sink))
    admin.sync_mailbox(box["id"])                     # learns the server offers IDLE
    assert admin.get_mailbox(box["id"])["idle_supported"] is True
    time.sleep(1.5)                                   # the watcher is connected and idling
    mail.append("INBOX", email("ana@cliente.test", "Llega por IDLE"))
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM messaging.inbound_messages")
                    == 1, 10), "IDLE did not trigger a sync (the poll is every 30 s)"


def test_a_uidvalidity_change_resyncs_without_duplicates(admin, mail, imap_server, smtp_sink, engine):
    mail.create_folder("Recaudo")
    box = admin.save_mailbox(mailbox_data(imap_server, smtp_sink, imap_folder="Recaudo"))
    originals = [email("ana@cliente.test", f"Original {n}", message_id=f"<orig{n}@cliente.test>")
                 for n in range(3)]
    for raw in originals:
        mail.append("Recaudo", raw)
    assert admin.sync_mailbox(box["id"])["new"] == 3
    first = scalar(engine, "SELECT uidvalidity FROM messaging.mailboxes")
    # the folder is recreated: the server numbers it anew (a new UIDVALIDITY)
    mail.delete_folder("Recaudo")
    mail.create_folder("Recaudo")
    for raw in originals + [email("ana@cliente.test", "Nuevo")]:
        mail.append("Recaudo", raw)
    result = admin.sync_mailbox(box["id"])
    assert result["resynced"] and result["fetched"] == 4
    assert result["new"] == 1 and result["duplicates"] == 3
    assert scalar(engine, "SELECT uidvalidity FROM messaging.mailboxes") != first
    assert scalar(engine, "SELECT count(*) FROM messaging.inbound_messages") == 4


def test_a_broken_mailbox_is_reported_and_does_not_stop_the_others(
        admin, mail, imap_server, smtp_sink, engine, services):
    good = admin.save_mailbox(mailbox_data(imap_server, smtp_sink))
    wrong = admin.save_mailbox(mailbox_data(imap_server, smtp_sink, name="Mal",
                                            imap_password="no-es-esta"))
    away = admin.save_mailbox(mailbox_data(imap_server, smtp_sink, name="Lejos", imap_port=1))
    mail.append("INBOX", email("ana@cliente.test", "Hola"))
    assert "contraseña" in admin.sync_mailbox(wrong["id"])["error"]
    assert "inalcanzable" in admin.sync_mailbox(away["id"])["error"]
    assert admin.test_mailbox(wrong["id"])["ok"] is False
    assert admin.test_mailbox(good["id"])["ok"] is True
    # the timer's pass over every mailbox: the good one is synced all the same
    with entrypoint_hook(services, "sync_all") as sync_all:
        sync_all()
    boxes = {b["name"]: b for b in admin.list_mailboxes(INST)}
    assert boxes["Mal"]["last_error"] == "Usuario o contraseña IMAP incorrectos"
    assert boxes["Lejos"]["last_error"].startswith("Servidor IMAP inalcanzable")
    assert boxes["Cobranza"]["last_error"] is None and boxes["Cobranza"]["last_uid"] > 0
    assert scalar(engine, "SELECT count(*) FROM messaging.inbound_messages WHERE mailbox_id = :m",
                  m=good["id"]) == 1


def test_mailbox_search_runs_on_the_server(admin, gestor, mail, imap_server, smtp_sink,
                                           rpc_proxy):
    box = admin.save_mailbox(mailbox_data(imap_server, smtp_sink))
    mail.append("INBOX", email("ana@cliente.test", "Convenio de pago", "Quiero un convenio",
                               X_Folio="F-778"))
    mail.append("INBOX", email("beto@cliente.test", "Otro asunto", "Nada que ver"))
    assert gestor.search_mailbox(box["id"], {"sender": "ana@"})["total"] == 1
    found = gestor.search_mailbox(box["id"], {"subject": "convenio"})
    assert found["items"][0]["from_address"] == "ana@cliente.test"
    assert gestor.search_mailbox(box["id"], {"text": "nada que ver"})["total"] == 1
    assert gestor.search_mailbox(box["id"], {"header_name": "X-Folio",
                                             "header_value": "F-778"})["total"] == 1
    today = datetime.now(timezone.utc).date()
    assert gestor.search_mailbox(box["id"], {"since": (today + timedelta(days=2)).isoformat()}
                                 )["total"] == 0
    with pytest.raises(InvalidInput) as err:
        gestor.search_mailbox(box["id"], {})
    assert "_schema" in err.value.fields
    # scope: a gestor of the other institution does not see the mailbox (as if missing)
    outsider = rpc_proxy(signed(GESTOR + 1, GESTOR_PERMS, institutions=(OTHER,))).messaging
    with pytest.raises(NotFound):
        outsider.search_mailbox(box["id"], {"subject": "convenio"})


# --- outbound ----------------------------------------------------------------------------------



def _wait_state(admin, message_id, state, seconds=20):
    assert wait_for(lambda: admin.get_outbound(message_id)["state"] == state, seconds), \
        admin.get_outbound(message_id)
    return admin.get_outbound(message_id)


def test_an_email_reaches_the_sink_with_our_headers_and_is_logged(
        admin, gestor, imap_server, smtp_sink, engine):
    _, template = _setup_sending(admin, imap_server, smtp_sink)
    preview = gestor.preview({"account_id": D1, "template_id": template["id"]})
    assert preview["subject"] == f"Recordatorio de pago, cuenta ACC{D1}"
    assert "15,230.50" in preview["text"] and "<p>" in preview["html"]
    assert preview["emails"] == ["ana@cliente.test"]
    english = gestor.preview({"account_id": D1, "template_id": template["id"], "language": "en"})
    assert english["subject"].startswith("Payment reminder")
    sent = gestor.send_email({"account_id": D1, "template_id": template["id"],
                              "to": "ana@cliente.test", "idempotency_key": "k-1"})
    assert sent["state"] == "queued"
    again = gestor.send_email({"account_id": D1, "template_id": template["id"],
                               "to": "ana@cliente.test", "idempotency_key": "k-1"})
    assert again["id"] == sent["id"]
    done = _wait_state(admin, sent["id"], "sent")
    assert done["smtp_response"].startswith("250")
    (msg,) = smtp_sink.messages()
    assert msg["To"] == "ana@cliente.test" and msg["X-Recaudo-Message-Id"] == sent["uuid"]
    assert msg["Subject"] == preview["subject"] and msg["From"].endswith(f"<{USER}>")
    assert msg.get_body(("plain",)).get_content().startswith(f"Estimado(a) DEUDOR {D1}")
    assert msg.get_body(("html",)) is not None
    activity = activities_of(engine, D1)[-1]
    assert (activity["kind"], activity["direction"], activity["email"], activity["agent_id"]) == \
        ("email", "outbound", "ana@cliente.test", GESTOR)
    assert activity["id"] == sent["activity_id"]
    assert [e["message_uuid"] for e in events(engine, "message_sent")] == [sent["uuid"]]
    listed = gestor.list_outbound({"debtor_id": D1})
    assert [m["state"] for m in listed["items"]] == ["sent"]


@pytest.mark.instances(2)
def test_two_instances_send_each_message_once_and_take_in_each_mail_once(
        admin, gestor, mail, imap_server, smtp_sink, engine, instances):
    """Both instances' delivery timers (every 2 s), their mailbox sync and IDLE listeners
    run at once; fired together on top of that, each mailing still goes out once and each
    inbound mail is stored and logged once."""
    _, template = _setup_sending(admin, imap_server, smtp_sink)
    for n in range(4):
        mail.append("INBOX", email("ana@cliente.test", f"Respuesta {n}"))
    sent = [gestor.send_email({"account_id": D1, "template_id": template["id"],
                               "to": "ana@cliente.test", "idempotency_key": f"twin-{n}"})
            for n in range(6)]
    fire_together(instances["messaging"], "deliver_due")
    fire_together(instances["messaging"], "sync_all")
    for message in sent:
        _wait_state(admin, message["id"], "sent")
    logged = lambda: {r["activity_id"] for r in rows(engine)} - {None}  # noqa: E731
    assert wait_for(lambda: len(logged()) == 4, 40), rows(engine)
    outgoing = smtp_sink.messages()
    record("timers_mail_delivery_and_sync", {
        "instances": 2, "queued": len(sent), "smtp_messages": len(outgoing),
        "message_sent_events": len(events(engine, "message_sent")),
        "inbound_mails": 4, "inbound_stored": scalar(
            engine, "SELECT count(*) FROM messaging.inbound_messages"),
        "inbound_activities": scalar(engine, "SELECT count(*) FROM activities.activities "
                                             "WHERE id = ANY(:a)", a=list(logged()))})
    assert sorted(m["X-Recaudo-Message-Id"] for m in outgoing) == sorted(s["uuid"] for s in sent)
    assert len(events(engine, "message_sent")) == len(sent)
    assert scalar(engine, "SELECT count(*) FROM messaging.inbound_messages") == 4


def test_a_temporary_smtp_failure_is_retried_and_a_permanent_one_fails(
        admin, gestor, imap_server, smtp_sink, engine):
    _, template = _setup_sending(admin, imap_server, smtp_sink)
    retried = gestor.send_email({"account_id": D1, "template_id": template["id"],
                                 "to": "tempfail-ana@cliente.test"})
    refused = gestor.send_email({"account_id": D1, "template_id": template["id"],
                                 "to": "permfail-ana@cliente.test"})
    done = _wait_state(admin, retried["id"], "sent", 30)
    assert done["attempts"] == 3          # 451, 451, then accepted
    failed = _wait_state(admin, refused["id"], "failed")
    assert failed["last_error"].startswith("550") and failed["attempts"] == 1
    assert [e["message_uuid"] for e in events(engine, "message_failed")] == [refused["uuid"]]
    assert [m["To"] for m in smtp_sink.messages()] == ["tempfail-ana@cliente.test"]


def test_a_bounce_in_the_mailbox_is_matched_back_to_its_message(
        admin, gestor, mail, imap_server, smtp_sink, engine):
    box, template = _setup_sending(admin, imap_server, smtp_sink)
    sent = gestor.send_email({"account_id": D1, "template_id": template["id"],
                              "to": "ana@cliente.test"})
    _wait_state(admin, sent["id"], "sent")
    dsn = (f"From: MAILER-DAEMON@mx.cliente.test\r\nTo: {USER}\r\n"
           "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.cliente.test>\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
           "--B\r\nContent-Type: text/plain\r\n\r\nNo se pudo entregar.\r\n"
           "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
           "Final-Recipient: rfc822; ana@cliente.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
           "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
           f"X-Recaudo-Message-Id: {sent['uuid']}\r\nSubject: x\r\n--B--\r\n").encode()
    mail.append("INBOX", dsn)
    mail.append("INBOX", email("ana@cliente.test", "Re: recordatorio", "Ya pagué",
                               In_Reply_To=f"<{sent['uuid']}@recaudo.test>"))
    result = admin.sync_mailbox(box["id"])
    assert result["bounces"] == 1
    bounced = admin.get_outbound(sent["id"])
    assert bounced["state"] == "failed" and bounced["bounced_at"]
    assert "5.1.1" in bounced["last_error"]
    inbound = rows(engine)
    assert inbound[0]["state"] == "bounce" and inbound[0]["outbound_id"] == sent["id"]
    assert (inbound[1]["matched_by"], inbound[1]["outbound_id"]) == ("reply", sent["id"])
    assert events(engine, "message_failed")[-1]["bounced"] is True


def test_a_fax_reaches_the_gateway_domain_with_its_pdf(admin, gestor, imap_server, smtp_sink,
                                                        engine):
    _, template = _setup_sending(admin, imap_server, smtp_sink)
    sent = gestor.send_fax({"account_id": D1, "template_id": template["id"],
                            "fax_number": "+52 55 1234 5678".replace(" ", "")})
    assert sent["to_address"] == "525512345678@fax.recaudo.test"
    _wait_state(admin, sent["id"], "sent")
    (msg,) = smtp_sink.messages()
    assert msg["To"] == "525512345678@fax.recaudo.test"
    (pdf,) = list(msg.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content().startswith(b"%PDF")
    activity = activities_of(engine, D1)[-1]
    assert (activity["kind"], activity["phone"], activity["result_code"]) == \
        ("fax", "525512345678", "FAX_ENV")


def test_the_contact_policy_refuses_and_an_admin_overrides_on_the_record(
        admin, gestor, imap_server, smtp_sink, engine):
    _, template = _setup_sending(admin, imap_server, smtp_sink)
    base = {"account_id": D2, "template_id": template["id"]}
    with pytest.raises(Conflict) as err:
        gestor.send_email({**base, "to": "no-molestar@cliente.test"})
    assert "no ser contactado" in err.value.fields["compliance"][0]
    with pytest.raises(Conflict):
        gestor.send_fax({**base, "fax_number": "5599990000"})
    override = {"justification": "Orden judicial: notificación obligatoria"}
    with pytest.raises(PermissionDenied):
        gestor.send_email({**base, "to": "no-molestar@cliente.test", "override": override})
    # outside the contact hours in the debtor's zone
    local = datetime.now(timezone.utc).astimezone(__import__("zoneinfo").ZoneInfo(
        "America/Mexico_City"))
    start = (local + timedelta(hours=6)).strftime("%H:%M")
    end = (local + timedelta(hours=7)).strftime("%H:%M")
    sql(engine, "UPDATE portfolio.institutions SET contact_from = :f, contact_until = :u"
                " WHERE id = :i", f=start, u=end, i=INST)
    try:
        with pytest.raises(Conflict) as err:
            gestor.send_email({**base, "to": "beto@cliente.test"})
        assert "Fuera del horario" in err.value.fields["compliance"][0]
    finally:
        sql(engine, "UPDATE portfolio.institutions SET contact_from = '00:00',"
                    " contact_until = '23:59:59' WHERE id = :i", i=INST)
    assert scalar(engine, "SELECT count(*) FROM messaging.outbound_messages") == 0
    forced = admin.send_email({**base, "to": "no-molestar@cliente.test", "override": override})
    assert "Orden judicial" in forced["override_justification"]
    assert "Autorizado por" in forced["override_justification"]
    assert "Orden judicial" in activities_of(engine, D2)[-1]["description"]


def test_mailbox_search_with_an_ancient_date_and_accents_is_answered(admin, gestor, mail,
                                                                       imap_server, smtp_sink):
    """Year 1 used to go out as ``01-Jan-1`` (refused by the server), and the retry without
    CHARSET could not encode "señor": a server error. Dates now go in IMAP's own form and
    a search never loses its accents."""
    box = admin.save_mailbox(mailbox_data(imap_server, smtp_sink))
    mail.append("INBOX", email("ana@cliente.test", "Convenio del señor Peña", "Pagaré el lunes"))
    found = gestor.search_mailbox(box["id"], {"subject": "señor", "since": "0001-01-01",
                                              "before": "9999-12-31"})
    assert found["total"] == 1 and found["items"][0]["subject"] == "Convenio del señor Peña"
    assert gestor.search_mailbox(box["id"], {"text": "ñandú", "before": "0001-01-01"}
                                 )["total"] == 0


def test_an_unknown_institution_is_refused_and_nothing_is_stored(admin, imap_server, smtp_sink,
                                                                 engine):
    """Messaging keeps the portfolio's institution ids: it asks the portfolio first."""
    for save, data in (
            (admin.save_template, {**TEMPLATE, "institution_id": 999_999}),
            (admin.save_pattern, {"institution_id": 999_999, "name": "Folio",
                                  "target": "account_number", "regex": r"F-(\d+)"}),
            (admin.save_mailbox, mailbox_data(imap_server, smtp_sink, institution_id=999_999))):
        with pytest.raises(NotFound) as err:
            save(data)
        assert err.value.fields == {"institution_id": ["No existe"]}
    with pytest.raises(NotFound):
        admin.save_settings(999_999, {"fax_domain": "fax.recaudo.test"})
    for table in ("templates", "match_patterns", "mailboxes", "institution_settings"):
        assert scalar(engine, f"SELECT count(*) FROM messaging.{table} "
                              "WHERE institution_id = 999999") == 0


def test_a_number_beyond_its_column_is_refused_not_a_crash(admin):
    """The gateway bounds what it reads; a number that slips past still answers 422
    (``Database.session`` turns PostgreSQL's out-of-range error into InvalidInput)."""
    for call in (admin.get_template, admin.get_mailbox):
        with pytest.raises(InvalidInput):
            call(2 ** 40)


def test_bad_input_is_a_clear_error_that_writes_nothing(admin, gestor, imap_server, smtp_sink,
                                                         engine):
    _, template = _setup_sending(admin, imap_server, smtp_sink)
    with pytest.raises(InvalidInput) as err:
        admin.save_template({**TEMPLATE, "name": "Mala",
                             "text_es": "Hola {{ debtor.nombre_secreto }} {{ os }}"})
    assert err.value.fields["text_es"] == ["Campo desconocido: debtor.nombre_secreto",
                                           "Variable desconocida: os"]
    with pytest.raises(InvalidInput) as err:
        admin.save_template({**TEMPLATE, "name": "Mala2", "subject_es": "{{ debtor.name "})
    assert "subject_es" in err.value.fields
    with pytest.raises(InvalidInput) as err:
        gestor.send_email({"account_id": D1, "template_id": template["id"], "to": "no es correo"})
    assert "to" in err.value.fields
    with pytest.raises(InvalidInput) as err:
        admin.save_mailbox(mailbox_data(imap_server, smtp_sink, name="X", imap_port=70000,
                                        address="nope"))
    assert {"imap_port", "address"} <= set(err.value.fields)
    with pytest.raises(InvalidInput) as err:
        admin.save_pattern({"institution_id": INST, "name": "Lento", "target": "account_number",
                            "regex": r"(\d+)+$"})
    assert "regex" in err.value.fields
    with pytest.raises(InvalidInput) as err:
        gestor.send_fax({"account_id": D1, "template_id": template["id"], "fax_number": "abc"})
    assert "fax_number" in err.value.fields
    assert scalar(engine, "SELECT count(*) FROM messaging.outbound_messages") == 0
    assert scalar(engine, "SELECT count(*) FROM messaging.templates") == 1


def test_permissions_and_scope(admin, gestor, rpc_proxy, imap_server, smtp_sink):
    box, template = _setup_sending(admin, imap_server, smtp_sink)
    with pytest.raises(PermissionDenied):
        gestor.save_mailbox(mailbox_data(imap_server, smtp_sink, name="Otro"))
    with pytest.raises(PermissionDenied):
        gestor.sync_mailbox(box["id"])
    other = rpc_proxy(signed(GESTOR + 1, GESTOR_PERMS | {"messaging.manage"}, (OTHER,))).messaging
    with pytest.raises(NotFound):
        other.get_mailbox(box["id"])
    with pytest.raises(NotFound):
        other.search_mailbox(box["id"], {"subject": "x"})
    with pytest.raises(NotFound):
        other.send_email({"account_id": D1, "template_id": template["id"],
                          "to": "ana@cliente.test"})
    assert other.list_mailboxes() == []
    reader = rpc_proxy(signed(GESTOR, {"portfolio.read"})).messaging
    with pytest.raises(PermissionDenied):
        reader.list_outbound()


# --- attachments and documents -----------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def test_attachments_become_documents_and_documents_become_attachments(
        s3_server, admin, gestor, mail, imap_server, smtp_sink, engine, services,
        container_factory, rabbit_config, monkeypatch):
    from documents.service import DocumentsService

    container_factory(DocumentsService, rabbit_config).start()
    box, template = _setup_sending(admin, imap_server, smtp_sink)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ana@cliente.test", USER, "Mi comprobante"
    msg["Message-ID"] = f"<adjuntos-{time.time_ns()}@cliente.test>"
    msg.set_content("Adjunto el comprobante")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="comprobante.pdf")
    msg.add_attachment(b"MZ\x90\x00" + b"\x00" * 100, maintype="application",
                       subtype="octet-stream", filename="programa.exe")
    mail.append("INBOX", msg.as_bytes())
    admin.sync_mailbox(box["id"])
    (row,) = rows(engine)
    assert row["activity_id"] and row["raw"] is None
    stored, refused = row["attachments"]
    assert stored["name"] == "comprobante.pdf" and stored["version_id"]
    assert refused["name"] == "programa.exe" and refused["error"] and "version_id" not in refused
    # the stored PDF goes out attached to an email
    sent = gestor.send_email({"account_id": D1, "template_id": template["id"],
                              "to": "ana@cliente.test",
                              "document_version_ids": [stored["version_id"]]})
    _wait_state(admin, sent["id"], "sent")
    (out,) = smtp_sink.messages()
    (attached,) = list(out.iter_attachments())
    assert attached.get_filename() == "comprobante.pdf" and attached.get_content() == PDF
    with pytest.raises(InvalidInput) as err:
        gestor.send_email({"account_id": D1, "template_id": template["id"],
                           "to": "ana@cliente.test", "document_version_ids": [987654321]})
    assert "document_version_ids" in err.value.fields
    # a document over the limit (20 MB; here the PDF, with the limit made tiny) is refused
    # when the email is asked for, not after it was accepted
    monkeypatch.setattr(attachments, "OUTBOUND_MAX_BYTES", 10)
    with pytest.raises(InvalidInput) as err:
        gestor.send_email({"account_id": D1, "template_id": template["id"],
                           "to": "ana@cliente.test",
                           "document_version_ids": [stored["version_id"]]})
    assert "MB" in err.value.fields["document_version_ids"][0]
    # a sent fax's PDF letter is kept as a document of the debtor
    fax = gestor.send_fax({"account_id": D1, "template_id": template["id"],
                           "fax_number": "5512345678"})
    _wait_state(admin, fax["id"], "sent")
    with entrypoint_hook(services, "settle") as settle:
        settle()
    kept = admin.get_outbound(fax["id"])["attachments"]
    assert kept[0]["version_id"] and kept[0]["name"].endswith(".pdf")
    assert scalar(engine, "SELECT pdf IS NULL FROM messaging.outbound_messages WHERE id = :i",
                  i=fax["id"])


# --- scheduled reports (the reports service's send_report) --------------------------------------

def _report(to, **extra):
    import base64
    return {"recipients": to, "subject": "Recaudo · Productividad · 2026-10",
            "body": "Productividad de octubre: 14 filas en el archivo adjunto.",
            "institution_id": INST, "idempotency_key": "report-7-2026-10-01-2026-10-31",
            "attachment": {"filename": "reporte-productividad.csv", "content_type": "text/csv",
                           "content_b64": base64.b64encode(b"Gestor,Gestiones\n#1,14\n").decode()},
            **extra}


def test_a_report_reaches_each_recipient_with_its_file(admin, rpc_proxy, imap_server, smtp_sink,
                                                       engine):
    _setup_sending(admin, imap_server, smtp_sink)
    supervisor = rpc_proxy(signed(8750, {"reports.view"}, (INST,), "Supervisor")).messaging
    sent = supervisor.send_report(_report(["Direccion@Banco.test", "cobranza@banco.test"]))
    assert sent["sent"] == 2 and all(r.startswith("250") for r in sent["responses"])
    messages = smtp_sink.messages()
    assert sorted(m["To"] for m in messages) == ["cobranza@banco.test", "direccion@banco.test"]
    for msg in messages:
        assert msg["Subject"] == "Recaudo · Productividad · 2026-10"
        assert msg["From"].endswith(f"<{USER}>") and "report-7-2026-10-01" in msg["Message-ID"]
        (part,) = list(msg.iter_attachments())
        assert part.get_filename() == "reporte-productividad.csv"
        assert part.get_content() == "Gestor,Gestiones\n#1,14\n"
    # about no debtor: nothing is logged, nothing queued
    assert scalar(engine, "SELECT count(*) FROM messaging.outbound_messages") == 0


def test_a_report_is_refused_clearly(admin, rpc_proxy, imap_server, smtp_sink):
    supervisor = rpc_proxy(signed(8750, {"reports.view"}, (INST,), "Supervisor")).messaging
    with pytest.raises(InvalidInput) as refused:       # no mailbox to send from yet
        supervisor.send_report(_report(["a@banco.test"]))
    assert "mailbox_id" in refused.value.fields
    _setup_sending(admin, imap_server, smtp_sink)
    for change, field in (({"recipients": ["no es correo"]}, "recipients"),
                          ({"recipients": []}, "recipients"),
                          ({"attachment": {"filename": "x.csv", "content_type": "text/csv",
                                           "content_b64": "%%%"}}, "attachment")):
        with pytest.raises(InvalidInput) as refused:
            supervisor.send_report(_report(["a@banco.test"], **change))
        assert field in refused.value.fields
    with pytest.raises(NotFound):                      # another institution's mailbox
        rpc_proxy(signed(8751, {"reports.view"}, (OTHER,))).messaging.send_report(
            _report(["a@banco.test"]))
    with pytest.raises(PermissionDenied):
        rpc_proxy(signed(8752, {"messaging.send"})).messaging.send_report(_report(["a@banco.test"]))
    assert smtp_sink.messages() == []
