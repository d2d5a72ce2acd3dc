"""The messaging service's pure parts: the template sandbox, message parsing and bounce
detection, safe patterns, matching precedence, password encryption and message building."""
from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from types import SimpleNamespace

import pytest

from messaging import crypto, delivery, mailsync, parsing, templates
from recaudo_common.errors import InvalidInput


# --- templates ---------------------------------------------------------------------------------

def test_a_template_sees_only_whitelisted_fields():
    templates.validate_sources({"subject_es": "Cuenta {{ account.account_number }}",
                                "text_es": "{% for x in [1, 2] %}{{ x }}{% endfor %} "
                                           "{{ debtor.name }} {{ account.balance|money }}"})
    with pytest.raises(InvalidInput) as err:
        templates.validate_sources({
            "subject_es": "{{ debtor.password }}", "text_es": "{{ config }}",
            "html_es": "{{ debtor.__class__.__mro__ }}", "text_en": "{{ debtor['secret'] }}"})
    assert err.value.fields == {
        "subject_es": ["Campo desconocido: debtor.password"],
        "text_es": ["Variable desconocida: config"],
        "html_es": ["Campo desconocido: debtor.__class__"],
        "text_en": ["Campo desconocido: debtor['secret']"]}


def test_a_syntax_error_names_the_template_field():
    with pytest.raises(InvalidInput) as err:
        templates.validate_sources({"subject_es": "ok", "text_es": "{% if %}"})
    assert list(err.value.fields) == ["text_es"]


def test_render_escapes_html_and_falls_back_to_spanish():
    source = {"subject_es": "Hola {{ debtor.name }}", "text_es": "Saldo <b>{{ account.balance|money }}</b>",
              "html_es": "", "subject_en": "", "text_en": "", "html_en": ""}
    out = templates.render(source, "en", templates.SAMPLE)
    assert out["language"] == "es" and out["subject"] == "Hola JUAN PÉREZ LÓPEZ"
    assert "&lt;b&gt;15,230.50&lt;/b&gt;" in out["html"]
    assert templates.render_pdf("Asunto", "Línea uno\n\nDos", "Banco").startswith(b"%PDF")


def test_a_missing_value_at_render_time_is_a_clear_error():
    source = {"subject_es": "x", "text_es": "{{ account.missing_at_runtime }}"}
    with pytest.raises(InvalidInput) as err:
        templates.render(source, "es", {"debtor": {}, "account": {}, "institution": {},
                                        "today": None})
    assert "text_es" in err.value.fields


# --- parsing ------------------------------------------------------------------------------------

def test_parse_reads_headers_body_and_attachments():
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "Ana <ANA@Cliente.test>", "Pago"
    msg["Message-ID"], msg["In-Reply-To"] = "<a1@x>", "<orig@recaudo.test>"
    msg.set_content("Hola")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="f.pdf")
    facts = parsing.parse(msg.as_bytes())
    assert (facts["from_address"], facts["from_name"], facts["message_id"]) == \
        ("ana@cliente.test", "Ana", "<a1@x>")
    assert facts["in_reply_to"] == "<orig@recaudo.test>" and facts["body_text"].strip() == "Hola"
    assert [(m["name"], m["size"]) for m, _ in facts["attachments"]] == [("f.pdf", 8)]
    assert facts["bounce"] is None


def test_a_malformed_message_still_parses_with_its_problem():
    facts = parsing.parse(b"\xff\xfe garbage without headers")
    assert facts["message_id"] == "" and facts["bounce"] is None


def test_a_dsn_names_our_message():
    uuid = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
    raw = ("From: MAILER-DAEMON@mx.test\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
           "--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
           "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
           "Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 no such user\r\n"
           f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nX-Recaudo-Message-Id: {uuid}\r\n"
           "--B--\r\n").encode()
    bounce = parsing.parse(raw)["bounce"]
    assert bounce == {"status": "5.1.1", "diagnostic": "smtp; 550 no such user",
                      "original": ("uuid", uuid)}


def test_patterns_refuse_catastrophic_shapes_and_find_numbers():
    for bad in (r"(a+)+$", r"(\d*)*", r"(x|y+)+z", r"(\w)\1", "[", "(a)(b)"):
        with pytest.raises(InvalidInput):
            parsing.check_pattern(bad)
    good = parsing.check_pattern(r"[Cc]uenta\s+(\d{8})")
    found = parsing.find_numbers([(good, "account_number")], "Sobre la cuenta 12345678",
                                 "y la cuenta 87654321 " + "x" * 100_000 + " cuenta 11111111")
    assert found == {"account_number": ["12345678", "87654321"]}   # text capped


def test_addresses():
    assert parsing.clean_address(" Ana@Cliente.TEST ") == "ana@cliente.test"
    for bad in ("no es correo", "a@b", "a@@b.com", "<a@b.com>", "a b@c.com"):
        with pytest.raises(InvalidInput) as err:
            parsing.clean_address(bad)
        assert "to" in err.value.fields


# --- matching precedence --------------------------------------------------------------------------

def test_match_prefers_replies_then_a_single_debtors_sender_then_patterns():
    original = SimpleNamespace(debtor_id=1, account_id=11, id=99)
    answer = {"emails": {"ana@x.test": [{"debtor_id": 2, "account_id": 21}],
                         "shared@x.test": [{"debtor_id": 3, "account_id": 31},
                                           {"debtor_id": 4, "account_id": 41}]},
              "account_numbers": {"55": {"debtor_id": 2, "account_id": 22},
                                  "66": {"debtor_id": 4, "account_id": 41}},
              "customer_numbers": {}}

    def facts(sender, numbers=(), reply=None):
        return {"in_reply_to": reply, "references": [], "from_address": sender,
                "numbers": {"account_number": list(numbers)}}
    assert mailsync._match(facts("ana@x.test", reply="<o>"), {"<o>": original}, answer)[
        "matched_by"] == "reply"
    assert mailsync._match(facts("ana@x.test"), {}, answer) == \
        {"matched_by": "sender", "debtor_id": 2, "account_id": 21}
    # the pattern picks which of the sender's accounts
    assert mailsync._match(facts("ana@x.test", ["55"]), {}, answer)["account_id"] == 22
    # an address two debtors share is settled by the pattern, or goes to triage
    assert mailsync._match(facts("shared@x.test", ["66"]), {}, answer)["debtor_id"] == 4
    assert mailsync._match(facts("shared@x.test"), {}, answer) is None
    assert mailsync._match(facts("nobody@x.test", ["55"]), {}, answer)["matched_by"] == "pattern"


# --- passwords and outbound messages ---------------------------------------------------------------

def test_passwords_are_encrypted_and_a_foreign_token_reads_as_none():
    token = crypto.encrypt("s3creta")
    assert "s3creta" not in token and crypto.decrypt(token) == "s3creta"
    assert crypto.decrypt("not-a-token") is None and crypto.decrypt(None) is None


def test_an_outbound_message_carries_our_id_and_its_attachment():
    row = SimpleNamespace(to_address="ana@cliente.test", subject="Aviso", message_id="<u@x.test>",
                          uuid="u-1", language="es", body_text="Hola", body_html="<p>Hola</p>")
    box = SimpleNamespace(name="Cobranza", address="cobranza@x.test")
    msg = delivery.build(row, box, [("carta.pdf", "application/pdf", b"%PDF")])
    assert msg["X-Recaudo-Message-Id"] == "u-1" and msg["Message-ID"] == "<u@x.test>"
    assert msg["From"] == "Cobranza <cobranza@x.test>"
    assert [p.get_filename() for p in msg.iter_attachments()] == ["carta.pdf"]
    assert delivery.backoff(1) == timedelta(seconds=delivery.BACKOFF)
    assert delivery.backoff(30) == timedelta(seconds=delivery.BACKOFF_MAX)
    assert isinstance(delivery._classify(451, b"later"), delivery.Temporary)
    assert isinstance(delivery._classify(550, "no"), delivery.Permanent)


def test_the_written_agreement_is_in_the_debtors_language_spanish_when_none():
    from datetime import date
    from decimal import Decimal

    from messaging.compliance import agreement_text
    from recaudo_common.contracts import AgreementMade

    view = {"institution": {"name": "Banco Uno"}, "account": {"id": 7, "account_number": "A-7"},
            "debtor": {"name": "Ana Ruiz"}}
    agreement = {"amount": Decimal("900"), "instalments": [
        {"number": 1, "due_date": date(2027, 1, 15), "amount": Decimal("450")},
        {"number": 2, "due_date": date(2027, 2, 15), "amount": Decimal("450")}]}
    subject, text, short = agreement_text({**agreement, "language": "en"}, view)
    assert subject == "Confirmation of your payment agreement"
    assert text.startswith("Dear Ana Ruiz:") and "2 payment(s) totalling $900.00" in text
    assert "  2. 2027-02-15: $450.00" in text
    assert short == ("Banco Uno: we confirm your payment agreement for account A-7: $900.00 "
                     "in 2 payment(s), the first on 2027-01-15.")
    subject, text, short = agreement_text({**agreement, "language": "es"}, view)
    assert subject == "Confirmación de su acuerdo de pago" and "15/01/2027" in short
    # an event written before the language travelled with it reads as Spanish
    loaded = AgreementMade().load({
        "event_id": "6f1c1f5e-1f8c-4a4e-9d7e-0b6c1c1f5e1f", "occurred_at": "2026-12-07T12:00:00Z",
        "promise_id": 1, "activity_id": 1, "account_id": 7, "debtor_id": 7, "institution_id": 1,
        "agent_id": 1, "amount": "900.00", "policy_version": "MX-1",
        "instalments": [{"number": 1, "due_date": "2027-01-15", "amount": "900.00"}]})
    assert loaded["language"] == "es"
