"""Partners' webhooks: deliveries per second and the latency from commit to delivery on
127.0.0.1 (the issue's closing figures), against the whole stack.

A bank posts ``PAYMENTS`` signed payments to the gateway (``CLIENTS`` threads), each to
another account of institution 1; each answer comes after the portfolio committed the
movement and its ``payment_received`` (the commit). The messaging service (run here with
the test-only loopback allowance and the receiver's CA; the stack's own instance stopped
meanwhile) delivers every event to an HTTPS receiver on 127.0.0.1 checking signatures.
Printed: deliveries/s over the whole burst and p50/p99/max from each payment's answer to
its delivery; then messaging's own rate, delivering a backlog of as many events (posted
while it was stopped) from its first delivery to its last; against a baseline taken in the same run: the same number of signed POSTs
sent straight to the receiver by the same number of threads (what HTTPS on this machine
costs by itself). Nothing is asserted on a figure; every payment must be delivered once.

``RECAUDO_BENCH_WEBHOOKS_BEFORE=/path/to/another/checkout`` (e.g. main's) also runs that
checkout's messaging service first, in the same run, against the same stack and receiver
(another burst of payments): before and after side by side. The receiver's count of TLS
connections is printed for each.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import create_engine, text

from messaging.partner_hooks import signature as delivery_signature
from portfolio.payment_webhooks import signature
from recaudo_common.config import settings

from tests import stack
from tests.partner_receiver import Receiver

PAYMENTS = int(os.environ.get("RECAUDO_BENCH_WEBHOOKS", "300"))
CLIENTS = 8
SECRET = "secreto-del-banco-de-la-prueba-de-rendimiento"


def _pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round((len(ordered) - 1) * q / 100)))] * 1000


def _row(label, count, seconds, latencies):
    return (f"{label:<34} {count:>6} {count / seconds:>10.1f} {_pct(latencies, 50):>8.1f} "
            f"{_pct(latencies, 99):>8.1f} {max(latencies) * 1000:>8.1f}")


def test_webhook_deliveries_per_second_and_commit_to_delivery_latency(stack_url):
    subprocess.run([stack.PYTHON, "-m", "recaudo_common.cli", "seed"], check=True,
                   env={**os.environ, "RECAUDO_DEMO": "1"}, cwd=stack.ROOT,
                   capture_output=True, timeout=600)
    receiver = Receiver()
    env = {**os.environ, "RECAUDO_WEBHOOK_ALLOW_LOOPBACK": "1",
           "RECAUDO_WEBHOOK_CA_BUNDLE": str(receiver.ca_bundle),
           "PSYCOPG_WAIT_FUNC": "wait_select", "PYTHONUNBUFFERED": "1"}
    log = open(stack.ROOT / settings().var_dir / "log" / "messaging-bench.log", "ab")
    variants = [("this checkout", None)]
    if os.environ.get("RECAUDO_BENCH_WEBHOOKS_BEFORE"):
        variants.insert(0, ("before", os.environ["RECAUDO_BENCH_WEBHOOKS_BEFORE"]))
    stack.stop("messaging")
    try:
        _measure(stack_url, receiver, variants, env, log)
    finally:
        log.close()
        receiver.stop()
        stack.start("messaging")


def _measure(base, receiver, variants, env, log):
    running = [stack.service("messaging", env, log, variants[0][1])]
    try:
        _measure_with(base, receiver, variants, env, log, running)
    finally:
        _stop(running)


def _measure_with(base, receiver, variants, env, log, running):
    http = requests.Session()
    deadline = time.monotonic() + 60
    while http.get(f"{base}/healthz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the stack is not healthy"
        time.sleep(0.5)
    login = http.post(f"{base}/api/v1/auth/token", timeout=30,
                      json={"username": "admin", "password": "recaudo-demo"}).json()
    http.headers["Authorization"] = "Bearer " + login["access_token"]
    run = str(int(time.time()))
    bank = f"banco-bench-{run}"
    assert http.post(f"{base}/api/v1/payment-providers", timeout=30, json={
        "name": bank, "institution_id": 1, "secret": SECRET}).status_code == 201
    made = http.post(f"{base}/api/v1/webhook-subscriptions", timeout=30, json={
        "institution_id": 1, "url": receiver.url, "events": ["payment_received"],
        "contact_email": "bench@socio.example"})
    assert made.status_code == 201, made.text
    receiver.secrets.append(made.json()["secret"])

    engine = create_engine(settings().database_url)
    with engine.connect() as conn:
        accounts = conn.execute(text(
            "SELECT id FROM portfolio.accounts WHERE institution_id = 1 AND balance > 100 "
            "ORDER BY id LIMIT :n"), {"n": PAYMENTS}).scalars().all()
    engine.dispose()
    def reference(account):
        answer = http.get(f"{base}/api/v1/accounts/{account}/payment-instructions", timeout=30)
        assert answer.status_code == 200, f"{account}: {answer.status_code} {answer.text[:300]}"
        return answer.json()["reference"]
    with ThreadPoolExecutor(CLIENTS) as pool:
        references = list(pool.map(reference, accounts))

    # baseline: signed POSTs straight to the receiver, same count and threads
    local = threading.local()

    def direct(n):
        session = getattr(local, "s", None) or requests.Session()
        local.s = session
        body = json.dumps({"id": f"base-{n}", "type": "baseline", "account_id": -n - 1,
                           "data": {}})
        stamp = str(int(time.time()))
        started = time.perf_counter()
        answer = session.post(receiver.url, data=body, verify=str(receiver.ca_bundle), timeout=30,
                              headers={"X-Recaudo-Event-Id": f"base-{n}", "X-Recaudo-Timestamp": stamp,
                                       "X-Recaudo-Signature": delivery_signature(
                                           receiver.secrets[0], stamp, f"base-{n}", body)})
        assert answer.status_code == 200
        return time.perf_counter() - started

    began = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        base_latencies = list(pool.map(direct, range(PAYMENTS)))
    base_seconds = time.perf_counter() - began

    rows = []
    for phase, (label, checkout) in enumerate(variants):
        if phase:   # the previous variant's messaging stopped, this one's started
            _stop(running)
            running.append(stack.service("messaging", env, log, checkout))
            time.sleep(5)   # its queues bound before the burst
        # (1) the burst, messaging running: commit -> delivery latency
        with receiver.lock:
            seen = len(receiver.requests)
        started = time.time()
        answered = _pay(base, bank, f"{run}{phase}", references)
        got = _delivered(receiver, answered, label)
        latencies = [b["received_at"] - answered[b["data"]["reference"]] for b in got]
        seconds = max(b["received_at"] for b in got) - started
        with receiver.lock:
            connections = len({r["connection"] for r in receiver.requests[seen:]})
        # (2) a backlog: the events wait in the broker while messaging is stopped, then it
        # delivers them all - its own deliveries/s, first delivery to last
        _stop(running)
        answered = _pay(base, bank, f"{run}{phase}b", references)
        running.append(stack.service("messaging", env, log, checkout))
        drained = sorted(b["received_at"] for b in _delivered(receiver, answered, label))
        rows.append((label, seconds, latencies, connections,
                     (len(drained) - 1) / (drained[-1] - drained[0])))

    print(f"\nwebhooks: {PAYMENTS} payments, {CLIENTS} client threads, 127.0.0.1, "
          f"one messaging instance (shared 2-core machine: other work was running; "
          f"load {os.getloadavg()[0]:.1f})"
          + "".join(f"; {label}: messaging of {checkout}" for label, checkout in variants
                    if checkout))
    print(f"{'':<34} {'count':>6} {'per s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f" {'TLS conns':>9}")
    print(_row("baseline: POST to receiver", PAYMENTS, base_seconds, base_latencies))
    for label, seconds, latencies, connections, drain in rows:
        print(_row(f"commit -> delivery ({label})", PAYMENTS, seconds, latencies)
              + f" {connections:>9}")
        print(f"  median commit->delivery / median bare POST: "
              f"{statistics.median(latencies) / statistics.median(base_latencies):.1f}x; "
              f"a backlog of {PAYMENTS} delivered at {drain:.1f}/s "
              f"({drain / (PAYMENTS / base_seconds):.2f}x the bare POSTs' rate)")


def _stop(running):
    while running:
        proc = running.pop()
        proc.terminate()
        proc.wait(20)


def _pay(base, bank, run, references) -> dict:
    """PAYMENTS signed payments from CLIENTS threads: when each was answered (committed)."""
    answered = {}
    local = threading.local()

    def pay(n):
        session = getattr(local, "p", None) or requests.Session()
        local.p = session
        body = json.dumps({"payment_id": f"B{run}-{n}", "reference": references[n],
                           "amount": "1.00", "paid_at": "2026-12-07T12:00:00Z"})
        stamp = str(int(time.time()))
        answer = session.post(f"{base}/api/v1/webhooks/payments/{bank}", data=body, timeout=60,
                              headers={"Content-Type": "application/json",
                                       "X-Recaudo-Timestamp": stamp,
                                       "X-Recaudo-Signature": signature(SECRET, stamp, body)})
        assert answer.status_code == 200 and answer.json()["status"] == "credited", answer.text
        answered[f"{bank}:B{run}-{n}"] = time.time()

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(pay, range(PAYMENTS)))
    return answered


def _delivered(receiver, answered, label) -> list[dict]:
    """The deliveries of ``answered``'s payments, once all came (five minutes at most)."""
    deadline = time.monotonic() + 300

    def delivered():
        with receiver.lock:
            return [b for b in receiver.accepted if b["type"] == "payment_received"
                    and b["data"]["reference"] in answered]
    while len(delivered()) < len(answered) and time.monotonic() < deadline:
        time.sleep(0.2)
    got = delivered()
    assert len(got) == len(answered), f"{label}: {len(got)} of {len(answered)} delivered"
    assert len({b["id"] for b in got}) == len(got) and all(r["signed"] for r in receiver.requests)
    return got
