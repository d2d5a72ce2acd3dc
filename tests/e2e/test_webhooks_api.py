"""Webhooks both ways against the running stack (issue 25, items 3 and 4): a partner's
integration user subscribes an HTTPS receiver on 127.0.0.1 (its own CA, which the
messaging service is restarted to trust, with loopback allowed: the test-only setting);
a collector logs a promise; the bank posts a signed payment under the account's reference;
the account is credited, the promise kept, and the receiver gets every event signed, in
order for the account, after a 500 it answered once; the delivery log shows each attempt
and "send again" sends once more. Every bad input of the issue for webhooks: a bad or old
signature, a replayed payment id, a negative or over-precise amount, a partner URL that is
not HTTPS or resolves to a private address."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests

from portfolio.payment_webhooks import signature
from recaudo_common.demo import USER_IDS

from .. import stack as runner
from ..partner_receiver import Receiver
from .helpers import Api, sql, token

from .webhooks_world import (RUN, INSTITUTION, BANK_SECRET, CREATED, SETTINGS, receiver, world,
                             post_payment, wait_for)


def test_partner_urls_must_be_public_https(world, receiver):
    partner = world["partner"]
    base = {"institution_id": INSTITUTION, "events": ["payment_received"],
            "contact_email": "ti@socio.example"}
    for url in ("http://socio.example/hooks", "https://10.0.0.8/hooks",
                "https://169.254.169.254/latest", "https://[fd00::1]/hooks"):
        answer = partner.call("POST", "/api/v1/webhook-subscriptions", {**base, "url": url})
        assert answer.status_code == 422, (url, answer.text)
        assert "url" in answer.json()["error"]["fields"]
    answer = partner.call("POST", "/api/v1/webhook-subscriptions", {**base, "url": receiver.url,
                                                                   "events": ["todo"]})
    assert answer.status_code == 422 and "events" in answer.json()["error"]["fields"]
    answer = partner.call("POST", "/api/v1/webhook-subscriptions",
                          {**base, "url": receiver.url, "institution_id": 2})
    assert answer.status_code == 404


def test_a_signed_payment_keeps_the_promise_and_the_partner_hears_it_in_order(world, receiver):
    admin, gestor, partner = world["admin"], world["gestor"], world["partner"]
    account = world["account"]
    made = partner.ok("POST", "/api/v1/webhook-subscriptions", {
        "institution_id": INSTITUTION, "url": receiver.url, "contact_email": "ti@socio.example",
        "events": ["activity_logged", "promise_made", "payment_received", "promise_kept"]},
        status=201)
    receiver.secrets.append(made["secret"])
    receiver.fail_first["payment_received"] = 1     # the first try of each payment: 500

    started = datetime.now(timezone.utc) - timedelta(minutes=2)
    logged = gestor.call("POST", "/api/v1/activities", {
        "account_id": account, "kind": "call", "direction": "inbound",
        "phone": "5512345678", "started_at": started.isoformat(),
        "ended_at": (started + timedelta(minutes=1)).isoformat(),
        "result_code_id": world["codes"]["PP"]["id"], "description": f"Promete ({RUN})",
        "promise": {"amount": "750.00", "due_date": (date.today() + timedelta(days=5)).isoformat()}},
        headers={"Idempotency-Key": f"webhooks-{RUN}"})
    assert logged.status_code == 201, logged.text
    promise_id = logged.json()["promise"]["id"]
    # the entry's events first (the demo's own history may still be queued before them)
    assert wait_for(lambda: {e["type"] for e in receiver.of_account(account)}
                    == {"activity_logged", "promise_made"}, 120), receiver.requests
    balance = Decimal(admin.ok("GET", f"/api/v1/accounts/{account}")["balance"])

    instructions = gestor.ok("GET", f"/api/v1/accounts/{account}/payment-instructions")
    assert len(instructions["reference"]) == 16 and instructions["spei_concept"] == \
        instructions["reference"]
    payment = {"payment_id": f"SPEI-{RUN}", "reference": instructions["reference"],
               "amount": "750.00", "paid_at": datetime.now(timezone.utc).isoformat()}
    answer = post_payment(world, payment)
    assert answer.status_code == 200 and answer.json()["status"] == "credited", answer.text
    assert Decimal(admin.ok("GET", f"/api/v1/accounts/{account}")["balance"]) == \
        balance - Decimal("750.00")

    def kept():
        promises = gestor.ok("GET", f"/api/v1/accounts/{account}/promises")
        return next(p for p in promises if p["id"] == promise_id)["state"] == "kept"
    assert wait_for(kept, 30)

    types = {"activity_logged", "promise_made", "payment_received", "promise_kept"}
    assert wait_for(lambda: types <= {e["type"] for e in receiver.of_account(account)}, 60), \
        receiver.requests
    got = receiver.of_account(account)
    order = [e["type"] for e in got]
    # besides the call's own entry, an MX institution sends the agreement in writing, and
    # that email (or SMS) is an entry too
    written = [e for e in got if e["type"] == "activity_logged"][1:]
    assert all(e["data"].get("kind") in ("email", "sms") for e in written), got
    assert set(order) == types and len(order) == len(types) + len(written), order
    assert order.index("payment_received") < order.index("promise_kept")
    assert max(order.index("activity_logged"), order.index("promise_made")) < \
        order.index("payment_received")
    assert all(r["signed"] for r in receiver.requests)
    paid = next(e for e in got if e["type"] == "payment_received")
    assert paid["data"]["amount"] == "750.00" and paid["data"]["reference"] == \
        f"{world['bank']['name']}:SPEI-{RUN}"
    assert [r["status"] for r in receiver.requests if r["event_id"] == paid["id"]] == [500, 200]

    log = partner.ok("GET", f"/api/v1/webhook-subscriptions/{made['id']}/deliveries")
    entry = next(d for d in log["items"] if d["event_id"] == paid["id"])
    assert entry["state"] == "delivered" and [a["status_code"] for a in entry["log"]] == [500, 200]
    again = partner.ok("POST", f"/api/v1/webhook-deliveries/{entry['id']}/resend")
    assert again["state"] == "pending"
    assert wait_for(lambda: len(receiver.of_account(account)) == 5, 30)

    # the bank retries: answered as the first time, nothing credited twice
    replay = post_payment(world, payment)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    conflict = post_payment(world, {**payment, "amount": "1.00"})
    assert conflict.status_code == 409 and "payment_id" in conflict.json()["error"]["fields"]
    assert Decimal(admin.ok("GET", f"/api/v1/accounts/{account}")["balance"]) == \
        balance - Decimal("750.00")


def test_bad_payment_webhooks_are_refused(world, receiver):
    reference = world["gestor"].ok(
        "GET", f"/api/v1/accounts/{world['account']}/payment-instructions")["reference"]
    payment = {"payment_id": f"BAD-{RUN}", "reference": reference, "amount": "10.00",
               "paid_at": datetime.now(timezone.utc).isoformat()}
    for kwargs in ({"secret": "otro-secreto-cualquiera-de-32-caracteres"}, {"age": 600}):
        answer = post_payment(world, payment, **kwargs)
        assert answer.status_code == 401, answer.text
        assert set(answer.json()) == {"error"}
    unsigned = requests.post(
        f"{world['base_url']}/api/v1/webhooks/payments/{world['bank']['name']}",
        json=payment, timeout=30)
    assert unsigned.status_code == 401
    for amount in ("-10.00", "10.001", "0"):
        answer = post_payment(world, {**payment, "amount": amount})
        assert answer.status_code == 422 and "amount" in answer.json()["error"]["fields"], amount
    unknown = post_payment(world, {**payment, "payment_id": f"UNK-{RUN}",
                                   "reference": "0000000000000098"})
    assert unknown.json()["status"] == "unmatched"
    triage = world["admin"].ok("GET", "/api/v1/payment-triage?per_page=200")
    assert f"UNK-{RUN}" in [i["payment_id"] for i in triage["items"]]
