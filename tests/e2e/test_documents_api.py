"""Documents through the gateway, as the mobile app or a partner uses them: the presigned
upload (the file goes straight to the local S3 server, never through the gateway), the
completion, the folder with its versions, a download of the same bytes under the
original name, refusals that name their field, and a share link opened by someone
without a login (its password form, the throttle, revocation).

Acts on the folder of a demo debtor of institution 1 assigned to gestor1; the documents
and links it makes are named ``e2e-docs-<run>`` and removed at the end.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

import pytest
import requests

from .helpers import Api, sql, token

RUN = secrets.token_hex(3)
PDF = b"%PDF-1.4\n% e2e documentos\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


@pytest.fixture(scope="module")
def world(stack, demo_users):
    base = stack.base_url
    gestor_id = sql("SELECT id FROM auth.users WHERE username = 'gestor1'")[0][0]
    debtor_id = sql("SELECT debtor_id FROM portfolio.accounts WHERE institution_id = 1 "
                    "AND assigned_agent_id = :a ORDER BY id LIMIT 1", a=gestor_id)[0][0]
    yield {"base": base, "debtor": debtor_id,
           "gestor": Api(base, token(base, "gestor1", demo_users)),
           "supervisor": Api(base, token(base, "supervisor", demo_users)),
           "cliente": Api(base, token(base, "cliente", demo_users))}
    sql("DELETE FROM documents.share_links WHERE label LIKE :p", p=f"e2e-docs-{RUN}%")
    sql("DELETE FROM documents.documents WHERE name LIKE :p", p=f"e2e-docs-{RUN}%")


def upload(api: Api, debtor_id: int, name: str, content: bytes, **extra) -> dict:
    ticket = api.ok("POST", "/api/v1/documents/uploads", {
        "debtor_id": debtor_id, "filename": name, "size": len(content), **extra}, status=201)
    sent = requests.post(ticket["url"], data=ticket["fields"], files={"file": (name, content)},
                         timeout=30)
    assert sent.status_code < 300, sent.text
    return api.ok("POST", f"/api/v1/documents/uploads/{ticket['upload_id']}/complete", status=201)


def test_upload_version_and_download_through_the_api(world):
    gestor, debtor = world["gestor"], world["debtor"]
    name = f"e2e-docs-{RUN}-contrato.pdf"
    first = upload(gestor, debtor, name, PDF, category="contrato",
                   md5=hashlib.md5(PDF).hexdigest())
    assert first["latest"]["content_type"] == "application/pdf"
    second = upload(gestor, debtor, name, PDF + b"% v2\n")
    assert second["id"] == first["id"] and second["latest_version"] == 2
    folder = gestor.ok("GET", f"/api/v1/debtors/{debtor}/documents?q=e2e-docs-{RUN}")
    assert [(d["name"], [v["version"] for v in d["versions"]]) for d in folder["items"]] \
        == [(name, [2, 1])]
    old = second["versions"][1]["id"]
    link = gestor.ok("GET", f"/api/v1/documents/versions/{old}/download")
    got = requests.get(link["url"], timeout=30)
    assert got.content == PDF and name in got.headers["Content-Disposition"]
    # the creditor (the Cliente user of institution 1) reads its debtors' documents too
    assert world["cliente"].ok("GET", f"/api/v1/documents/{first['id']}")["name"] == name


@pytest.mark.parametrize("change, field", [
    ({"size": 0}, "size"), ({"filename": "../x.pdf"}, "filename"),
    ({"category": "nada"}, "category"), ({"size": "diez"}, "size"),
])
def test_bad_upload_requests_answer_422_naming_the_field(world, change, field):
    body = {"debtor_id": world["debtor"], "filename": "ok.pdf", "size": 10, **change}
    response = world["gestor"].call("POST", "/api/v1/documents/uploads", body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


def test_a_disguised_executable_is_refused_through_the_gateway(world):
    gestor = world["gestor"]
    exe = b"MZ\x90\x00" + bytes(300)
    ticket = gestor.ok("POST", "/api/v1/documents/uploads", {
        "debtor_id": world["debtor"], "filename": f"e2e-docs-{RUN}-virus.pdf", "size": len(exe)},
        status=201)
    requests.post(ticket["url"], data=ticket["fields"], files={"file": ("v.pdf", exe)}, timeout=30)
    response = gestor.call("POST", f"/api/v1/documents/uploads/{ticket['upload_id']}/complete")
    assert response.status_code == 422 and "file" in response.json()["error"]["fields"]
    assert requests.get(f"{ticket['url']}/{ticket['fields']['key']}", timeout=30).status_code == 404


def test_a_share_link_opened_without_login(world):
    supervisor, debtor = world["supervisor"], world["debtor"]
    upload(world["gestor"], debtor, f"e2e-docs-{RUN}-ine.pdf", PDF)
    expires = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    link = supervisor.ok("POST", "/api/v1/share-links", {
        "debtor_id": debtor, "expires_at": expires, "password": "clave-e2e",
        "label": f"e2e-docs-{RUN} banco"}, status=201)
    assert link["url"].endswith("/s/" + link["token"])
    holder = requests.Session()
    asked = holder.get(link["url"], timeout=30)
    assert asked.status_code == 401 and 'name="password"' in asked.text
    wrong = holder.post(link["url"], data={"password": "no-es"}, timeout=30)
    assert wrong.status_code == 403 and "Contraseña incorrecta" in wrong.text
    opened = holder.post(link["url"], data={"password": "clave-e2e"}, timeout=30)
    assert opened.status_code == 200 and f"e2e-docs-{RUN}-ine.pdf" in opened.text
    # the grant cookie lets the holder download without typing the password again
    href = opened.text.split('class="shared-download"')[0].rsplit('href="', 1)[1].split('"')[0]
    got = holder.get(world["base"] + href, timeout=30)
    assert got.status_code == 200 and got.content.startswith(b"%PDF")
    log = supervisor.ok("GET", f"/api/v1/share-links/{link['id']}/accesses")["items"]
    assert [a["outcome"] for a in log] == ["downloaded", "listed", "wrong_password"]

    supervisor.ok("POST", f"/api/v1/share-links/{link['id']}/revoke")
    gone = holder.get(link["url"], timeout=30)
    assert gone.status_code == 410 and "revocada" in gone.text
    assert requests.get(world["base"] + "/s/no-existe-" + RUN, timeout=30).status_code == 404


def test_a_share_links_password_throttle_says_when_to_retry(world):
    expires = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    link = world["supervisor"].ok("POST", "/api/v1/share-links", {
        "debtor_id": world["debtor"], "expires_at": expires, "password": "clave-e2e",
        "label": f"e2e-docs-{RUN} espera"}, status=201)
    for _ in range(5):
        assert requests.post(link["url"], data={"password": "no-es"}, timeout=30).status_code == 403
    waiting = requests.post(link["url"], data={"password": "clave-e2e"}, timeout=30)
    assert waiting.status_code == 429 and waiting.headers["Retry-After"] == str(15 * 60)
