"""Document transfer: a 20 MB file up and down through presigned URLs (the way the web UI
and the app move documents) against the ``minio`` SDK putting and getting the same bytes
straight into the same bucket, in the same run; and the latency of the presigning
calls through the gateway (``POST /api/v1/documents/uploads`` and the download URL), beside the bare
authenticated round trip to the documents service (``/api/v1/system/ping/documents``).

The presigned round is the whole flow a client goes through: ask the gateway for the
policy, POST the file to the object store, ask for the completion (which reads the
object's first bytes to judge its type), then ask for a download URL and GET the file.
Targets (issue 7): presigned throughput ≥ 0.9× the SDK's; presign p99 < 20 ms.

Sizes: ``--bench-requests`` caps the presign calls per cell; the transfers run
``ROUNDS`` times each.
"""
from __future__ import annotations

import io
import os
import statistics
import time
import uuid
from contextlib import contextmanager

import psycopg
import pytest
import requests
import urllib3

from recaudo_common import storage
from recaudo_common.config import settings

from .bench import measure, print_table

INSTITUTION = 9007
DEBTOR = 9_007_000_001
SIZE = 20 * 1024 * 1024
ROUNDS = 7
PASSWORD = "bench-documentos-clave-2024"
PERMISSIONS = ["portfolio.read", "portfolio.read_all", "documents.read", "documents.upload"]


def _dsn() -> str:
    return settings().database_url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def db():
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        cleanup(conn)
        yield conn
        cleanup(conn)


def cleanup(db) -> None:
    keys = [k for (k,) in db.execute(
        "SELECT v.object_key FROM documents.versions v JOIN documents.documents d "
        "ON d.id = v.document_id WHERE d.institution_id = %s", [INSTITUTION])]
    keys += [k for (k,) in db.execute(
        "SELECT object_key FROM documents.uploads WHERE institution_id = %s", [INSTITUTION])]
    for key in keys:
        storage.client().remove_object(storage.bucket(), key)
    for statement in ("DELETE FROM documents.documents WHERE institution_id = %s",
                      "DELETE FROM documents.uploads WHERE institution_id = %s",
                      "DELETE FROM portfolio.accounts WHERE institution_id = %s",
                      "DELETE FROM portfolio.debtors WHERE institution_id = %s",
                      "DELETE FROM portfolio.institutions WHERE id = %s"):
        db.execute(statement, [INSTITUTION])
    db.execute("DELETE FROM auth.sessions WHERE user_id IN "
               "(SELECT id FROM auth.users WHERE username = 'bench-docs')")
    db.execute("DELETE FROM auth.api_tokens WHERE user_id IN "
               "(SELECT id FROM auth.users WHERE username = 'bench-docs')")
    db.execute("DELETE FROM auth.users WHERE username = 'bench-docs'")
    db.execute("DELETE FROM auth.profiles WHERE name LIKE 'bench-documents-%%'")


def setup_world(db, stack_url) -> str:
    """A debtor of a benchmark institution and a bearer token of a user who may upload."""
    from auth.credentials import hash_password

    db.execute("INSERT INTO portfolio.institutions (id, code, name) VALUES (%s, 'BENCHDOC', "
               "'Benchmark documentos') ON CONFLICT (id) DO NOTHING", [INSTITUTION])
    profile = db.execute(
        "INSERT INTO auth.profiles (name, description, permissions) VALUES (%s, 'benchmark', %s) "
        "RETURNING id", [f"bench-documents-{os.getpid()}", PERMISSIONS]).fetchone()[0]
    db.execute("INSERT INTO auth.users (username, display_name, profile_id, password_hash, "
               "password_changed_at, institutions) VALUES ('bench-docs', 'Bench', %s, %s, now(), %s)",
               [profile, hash_password(PASSWORD), [INSTITUTION]])
    db.execute("INSERT INTO portfolio.debtors (id, institution_id, customer_number, name) "
               "VALUES (%s, %s, 'BD1', 'DEUDOR BENCH')", [DEBTOR, INSTITUTION])
    db.execute("INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number, "
               "product, original_amount, balance, stage) VALUES (%s, %s, %s, 'BD1', 'Tarjeta', "
               "9000, 5000, 'delinquent')", [DEBTOR, INSTITUTION, DEBTOR])
    answer = requests.post(f"{stack_url}/api/v1/auth/token", timeout=60,
                           json={"username": "bench-docs", "password": PASSWORD})
    answer.raise_for_status()
    return answer.json()["access_token"]


def _pdf(size: int) -> bytes:
    head = b"%PDF-1.4\n% benchmark\n"
    return head + os.urandom(size - len(head))


def direct_round(content: bytes) -> tuple[float, float]:
    """Seconds to put and to get ``content`` with the SDK (its default 5 MiB parts)."""
    client, bucket, key = storage.client(), storage.bucket(), f"bench/direct/{uuid.uuid4()}"
    started = time.perf_counter()
    client.put_object(bucket, key, io.BytesIO(content), len(content),
                      content_type="application/pdf")
    put = time.perf_counter() - started
    started = time.perf_counter()
    response = client.get_object(bucket, key)
    try:
        got = response.read()
    finally:
        response.close()
        response.release_conn()
    get = time.perf_counter() - started
    assert got == content
    client.remove_object(bucket, key)
    return put, get


#: the HTTP client of the presigned transfers: urllib3, as the SDK uses, so the comparison
#: is of the paths (presigned URL vs SDK call), not of two client libraries
TRANSFER = urllib3.PoolManager(timeout=300.0)


def presigned_round(stack_url: str, http: requests.Session, content: bytes, n: int) -> dict:
    """Seconds of each step of a client's upload (ticket, POST, completion) and download
    (URL, GET) of ``content`` through presigned URLs."""
    steps, started = {}, time.perf_counter()

    def lap(name):
        nonlocal started
        now = time.perf_counter()
        steps[name], started = now - started, now

    ticket = http.post(f"{stack_url}/api/v1/documents/uploads", timeout=60, json={
        "debtor_id": DEBTOR, "filename": f"bench-{n}.pdf", "size": len(content)}).json()
    lap("ticket")
    sent = TRANSFER.request("POST", ticket["url"], fields={
        **ticket["fields"], "file": ("bench.pdf", content, "application/pdf")})
    assert sent.status < 300, sent.data[:300]
    lap("post")
    done = http.post(f"{stack_url}/api/v1/documents/uploads/{ticket['upload_id']}/complete",
                     timeout=60)
    assert done.status_code == 201, done.text
    lap("complete")
    version = done.json()["latest"]["id"]
    url = http.get(f"{stack_url}/api/v1/documents/versions/{version}/download", timeout=60).json()["url"]
    lap("url")
    got = TRANSFER.request("GET", url).data
    lap("get")
    assert got == content
    return steps


def presign_client(stack_url: str, token: str, kind: str):
    @contextmanager
    def client():
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        version = None
        if kind == "download":
            page = http.get(f"{stack_url}/api/v1/debtors/{DEBTOR}/documents", timeout=60).json()
            version = page["items"][0]["latest"]["id"]

        def call():
            if kind == "ping":   # the floor: one authenticated gateway -> documents round trip
                answer = http.get(f"{stack_url}/api/v1/system/ping/documents", timeout=60)
                ok = answer.status_code == 200
            elif kind == "upload":
                answer = http.post(f"{stack_url}/api/v1/documents/uploads", timeout=60, json={
                    "debtor_id": DEBTOR, "filename": "presign.pdf", "size": 1000})
                ok = answer.status_code == 201
            else:
                answer = http.get(f"{stack_url}/api/v1/documents/versions/{version}/download",
                                  timeout=60)
                ok = answer.status_code == 200
            if not ok:
                raise RuntimeError(f"{answer.status_code}: {answer.text[:200]}")
        try:
            yield call
        finally:
            http.close()
    return client


def _mb_s(seconds: list[float]) -> float:
    return SIZE / (1024 * 1024) / statistics.median(seconds)


def test_transfer_of_20_mb_presigned_versus_the_sdk_and_presign_latency(stack_url, bench_limits,
                                                                         db):
    token = setup_world(db, stack_url)
    content = _pdf(SIZE)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    direct = [direct_round(content) for _ in range(ROUNDS)]
    presigned = [presigned_round(stack_url, http, content, n) for n in range(ROUNDS)]

    def steps(*names):
        return [sum(p[name] for name in names) for p in presigned]

    rows = [
        ("SDK put_object", _mb_s([p for p, _ in direct]), None),
        ("presigned POST (the transfer)", _mb_s(steps("post")), "put"),
        ("presigned upload, whole flow (ticket + POST + completion)",
         _mb_s(steps("ticket", "post", "complete")), "put"),
        ("SDK get_object", _mb_s([g for _, g in direct]), None),
        ("presigned GET (the transfer)", _mb_s(steps("get")), "get"),
        ("presigned download, whole flow (URL + GET)", _mb_s(steps("url", "get")), "get"),
    ]
    baseline = {"put": rows[0][1], "get": rows[3][1]}
    print(f"\n20 MB transfers, median of {ROUNDS} rounds each (target ≥ 0.9× the SDK):")
    print(f"  {'':<58} {'MB/s':>8} {'× SDK':>7}")
    for label, rate, against in rows:
        ratio = f"{rate / baseline[against]:.2f}" if against else ""
        print(f"  {label:<58} {rate:8.1f} {ratio:>7}")
    for name in ("ticket", "complete", "url"):
        print(f"  median {name} call: {statistics.median(steps(name)) * 1000:.1f} ms")

    limits = dict(bench_limits, requests=min(bench_limits["requests"], 1000))
    results = [measure(f"{kind} via gateway, {c} clients",
                       presign_client(stack_url, token, kind), concurrency=c, **limits)
               for kind in ("ping", "upload", "download") for c in (1, 8)]
    print_table(results, title="Presigning through the gateway (target p99 < 20 ms); "
                               "ping: the bare round trip to the documents service")
    assert all(r.count and not r.errors for r in results), [r.first_error for r in results]
