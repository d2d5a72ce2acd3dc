"""The webhooks suites' world: a demo institution with its payment provider and bank details, an HTTPS receiver of partners' deliveries on 127.0.0.1, and the signed payment a bank posts (shared by test_webhooks_api and test_browser_payment_triage)."""
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

RUN = secrets.token_hex(3)
INSTITUTION = 1
BANK_SECRET = "secreto-del-banco-" + secrets.token_hex(16)
CREATED = 201
SETTINGS = {"RECAUDO_WEBHOOK_ALLOW_LOOPBACK": "1", "RECAUDO_WEBHOOK_TIMEOUT_SECONDS": "3",
            "RECAUDO_WEBHOOK_RETRY_BASE_SECONDS": "0.5"}


@pytest.fixture(scope="module")
def receiver(stack):
    """The partner's receiver, and the messaging service run by this module with the CA of
    the receiver trusted and loopback allowed (the stack's own instance stopped meanwhile,
    so it takes no delivery; started again at the end): the supervisor would start it
    with its own environment, without the test-only settings."""
    found = Receiver()
    env = {**os.environ, **SETTINGS, "RECAUDO_WEBHOOK_CA_BUNDLE": str(found.ca_bundle),
           "PSYCOPG_WAIT_FUNC": "wait_select", "PYTHONUNBUFFERED": "1"}
    log = open(stack.var_dir / "log" / "messaging-webhooks-e2e.log", "ab")
    stack.stop("messaging")
    proc = subprocess.Popen([runner.PYTHON, "-m", "recaudo_common.run", "messaging"],
                            cwd=runner.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        stack.wait_healthy()
        yield found
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        found.stop()
        stack.start("messaging")
        stack.wait_healthy()


@pytest.fixture(scope="module")
def world(stack, demo_users, receiver):
    admin = Api(stack.base_url, token(stack.base_url, "admin", demo_users))
    gestor = Api(stack.base_url, token(stack.base_url, "gestor2", demo_users))
    profiles = {p["name"]: p["id"] for p in admin.ok("GET", "/api/v1/profiles")}
    user = admin.ok("POST", "/api/v1/users", {
        "username": f"socio-{RUN}-{secrets.token_hex(2)}", "display_name": "Socio", "password": "socio-clave-segura-2024",
        "profile_id": profiles["Integración"], "institutions": [INSTITUTION]}, status=CREATED)
    key = admin.ok("POST", "/api/v1/api-keys", {"user_id": user["id"], "name": f"socio {RUN}"},
                   status=201)["key"]
    partner = Api(stack.base_url, key)
    bank = admin.ok("POST", "/api/v1/payment-providers", {
        "name": f"banco-{RUN}-{secrets.token_hex(2)}", "institution_id": INSTITUTION, "secret": BANK_SECRET}, status=CREATED)
    account_id = sql(
        "SELECT a.id FROM portfolio.accounts a WHERE a.institution_id = :i "
        "AND a.assigned_agent_id = :g AND a.lawyer_id IS NULL AND a.balance > 2000 "
        "AND NOT EXISTS (SELECT 1 FROM activities.promises p WHERE p.account_id = a.id "
        "AND p.state = 'pending') ORDER BY a.id DESC OFFSET 2 LIMIT 1",
        i=INSTITUTION, g=USER_IDS["gestor2"])[0][0]
    codes = {c["code"]: c for c in admin.ok("GET", f"/api/v1/institutions/{INSTITUTION}/result-codes")}
    return {"admin": admin, "gestor": gestor, "partner": partner, "bank": bank,
            "account": account_id, "codes": codes, "base_url": stack.base_url}


def post_payment(world, payload, *, secret=BANK_SECRET, age=0, body=None):
    body = body if body is not None else json.dumps(payload)
    stamp = str(int(time.time()) - age)
    return requests.post(f"{world['base_url']}/api/v1/webhooks/payments/{world['bank']['name']}",
                         data=body, timeout=30, headers={
                             "Content-Type": "application/json", "X-Recaudo-Timestamp": stamp,
                             "X-Recaudo-Signature": signature(secret, stamp, body)})


def wait_for(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()
