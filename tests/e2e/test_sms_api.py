"""The SMS API against the running stack, whose runner also starts the local Kannel
(bearerbox, smsbox and the fakesmsc test SMSC) the demo institution's SMS settings point
at: a template previewed with its segment count is sent to a demo debtor's mobile, reaches
the fake SMSC and is reported delivered; a reply from that phone appears in the debtor's
conversation; "STOP" withdraws SMS consent and the next send answers 409; bad input
answers 422 naming the field.

The contact window of institution 1 is opened to the whole day for the module, and the
phone's do-not-contact mark lifted, after (``sms_world`` in conftest.py). Messages and activities stay (the log is kept).
"""
from __future__ import annotations

import secrets

import pytest

from messaging import kannel
from messaging.seed import DEMO_SMS_SENDER
from recaudo_common.config import settings

from .helpers import wait_for

RUN = secrets.token_hex(3)


@pytest.fixture(scope="module")
def world(sms_world):
    return sms_world


def _conversation(world) -> list:
    return world["gestor"].ok("GET", f"/api/v1/debtors/{world['debtor']}/sms")


def test_send_from_a_template_is_delivered_a_reply_is_matched_and_stop_refuses_the_next(world):
    gestor = world["gestor"]
    compose = {"account_id": world["account"], "template_id": world["template"]["id"]}
    preview = gestor.ok("POST", "/api/v1/sms/preview", compose)
    assert preview["text"].startswith("Hola, su saldo es $") and preview["encoding"] == "gsm7"
    assert preview["segments"] == 1 and world["number"] in preview["phones"]
    sent = gestor.ok("POST", "/api/v1/sms", {**compose, "phone": world["number"]}, status=201)
    assert sent["state"] == "queued"
    wait_for(lambda: any(m["uuid"] == sent["uuid"] and m["state"] == "delivered"
                         for m in _conversation(world)), 30, "the delivery report")
    port = settings().local_kannel_port
    kannel.inject(port, f"52{world['number']}", DEMO_SMS_SENDER, f"Recibido {RUN}")
    wait_for(lambda: any(m["direction"] == "inbound" and m["body"] == f"Recibido {RUN}"
                         for m in _conversation(world)), 30, "the reply")
    kannel.inject(port, world["number"], DEMO_SMS_SENDER, "STOP")

    def refused():
        answer = gestor.call("POST", "/api/v1/sms", {**compose, "phone": world["number"]})
        return answer.json() if answer.status_code == 409 else None
    answer = wait_for(refused, 30, "the opt-out to refuse the next send")
    assert "compliance" in answer["error"]["fields"]


def test_bad_input_names_the_field(world):
    gestor = world["gestor"]
    compose = {"account_id": world["account"], "template_id": world["template"]["id"]}
    for body, field in (({**compose, "phone": "abc"}, "phone"), (compose, "phone"),
                        ({**compose, "phone": "5500000001"}, "phone"),
                        ({"template_id": world["template"]["id"], "phone": "1234567"},
                         "account_id")):
        answer = gestor.call("POST", "/api/v1/sms", body)
        assert answer.status_code == 422, answer.text
        assert field in answer.json()["error"]["fields"], answer.text
