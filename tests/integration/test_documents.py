"""The documents service over RabbitMQ against the real database and a real S3 server
(s3rver), with the real portfolio and activities services answering its scope look-ups.

Files travel as a client would send them: a multipart POST to the presigned policy the
service answers, and a GET of the presigned download. Covered: the round trip with its
checksum, versions, refusals that leave neither metadata nor objects behind (an
executable renamed ``.pdf``, an empty or oversize file, a lying size or MD5, a bad
name, a completion without upload), scope (another institution's or another
collector's folder, guessed ids), share links (expiry, password and its throttle,
revocation, the access log, a link that cannot reach beyond its document) and the
sweep of uploads never completed.
"""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
import requests
from minio.error import S3Error
from sqlalchemy import text

from activities.service import ActivitiesService
from documents.service import DocumentsService
from portfolio.models import Base as PortfolioBase
from portfolio.service import PortfolioService
from recaudo_common import storage
from recaudo_common.db import Database
from recaudo_common.errors import Gone, InvalidInput, NotAuthenticated, NotFound, \
    PermissionDenied, Throttled
from recaudo_common.identity import Identity, sign

from .helpers import counting, fire_together, record, scalar, sql

BASE = 770_000_000
DEBTOR1, DEBTOR1B, DEBTOR2 = BASE + 1, BASE + 2, BASE + 50   # 1 and 1B: institution 1
GESTOR1, GESTOR2, SUPERVISOR = 7701, 7702, 7750

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(500)

TABLES = ("share_accesses", "share_links", "versions", "documents", "uploads", "outbox")
GESTOR_PERMS = {"portfolio.read", "activities.read", "activities.log", "documents.read",
                "documents.upload"}
SUPERVISOR_PERMS = GESTOR_PERMS | {"portfolio.read_all", "documents.share"}


def signed(user_id, permissions, institutions=(1,)):
    return {"identity": sign(Identity(user_id=user_id, username=f"user{user_id}", profile="x",
                                      permissions=frozenset(permissions),
                                      institutions=institutions))}


class QuietPortfolioService(PortfolioService):
    """Without its outbox relay: other suites' unpublished events stay off this vhost."""

    db = Database(PortfolioBase, relay=False)


@pytest.fixture(scope="module")
def portfolio_rows(migrated_database, engine):
    added = []
    for institution_id, code in ((1, "DTEST1"), (2, "DTEST2")):
        if not sql(engine, "SELECT 1 FROM portfolio.institutions WHERE id = :i", i=institution_id):
            sql(engine, "INSERT INTO portfolio.institutions (id, code, name) VALUES (:i, :c, :c)",
                i=institution_id, c=code)
            added.append(institution_id)
    rows = [(DEBTOR1, 1, GESTOR1), (DEBTOR1B, 1, GESTOR2), (DEBTOR2, 2, GESTOR2)]
    with engine.begin() as conn:
        for debtor_id, institution_id, agent in rows:
            conn.execute(text(
                "INSERT INTO portfolio.debtors (id, institution_id, customer_number, name)"
                " VALUES (:d, :i, 'DT' || :d, 'DEUDOR ' || :d)"), {"d": debtor_id, "i": institution_id})
            conn.execute(text(
                "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
                " product, original_amount, balance, stage, assigned_agent_id)"
                " VALUES (:d, :i, :d, 'DT' || :d, 'Tarjeta', 9000, 5000, 'delinquent', :g)"),
                {"d": debtor_id, "i": institution_id, "g": agent})
    yield
    ids = [r[0] for r in rows]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM portfolio.accounts WHERE id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE id = ANY(:ids)"), {"ids": ids})
        for institution_id in added:
            conn.execute(text("DELETE FROM portfolio.institutions WHERE id = :i"), {"i": institution_id})


def _truncate(engine):
    sql(engine, "TRUNCATE " + ", ".join(f"documents.{t}" for t in TABLES) + " RESTART IDENTITY CASCADE")


@pytest.fixture
def services(s3_server, portfolio_rows, engine, container_factory, rabbit_config):
    _truncate(engine)
    container_factory(QuietPortfolioService, rabbit_config).start()
    container_factory(ActivitiesService, rabbit_config).start()
    container_factory(DocumentsService, rabbit_config).start()
    yield
    _truncate(engine)


@pytest.fixture
def as_user(services, rpc_proxy):
    def make(user_id, permissions=GESTOR_PERMS, institutions=(1,)):
        return rpc_proxy(signed(user_id, permissions, institutions))
    return make


@pytest.fixture
def gestor1(as_user):
    return as_user(GESTOR1).documents


@pytest.fixture
def supervisor(as_user):
    return as_user(SUPERVISOR, SUPERVISOR_PERMS).documents


@pytest.fixture
def system(as_user):
    return as_user(0, {"*"}, None).documents


def post(ticket: dict, content: bytes, filename="x") -> requests.Response:
    """What a browser does with the ticket: a multipart POST straight to the object store."""
    response = requests.post(ticket["url"], data=ticket["fields"],
                             files={"file": (filename, content)}, timeout=10)
    assert response.status_code in (200, 201, 204), response.text
    return response


def upload(docs, content: bytes, name="contrato.pdf", debtor=DEBTOR1, **extra) -> dict:
    ticket = docs.request_upload({"debtor_id": debtor, "filename": name, "size": len(content),
                                  "category": "contrato", **extra})
    post(ticket, content, name)
    return docs.complete_upload(ticket["upload_id"])


def fetch(url: str) -> requests.Response:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    return response


def object_exists(key: str) -> bool:
    try:
        storage.client().stat_object(storage.bucket(), key)
        return True
    except S3Error:
        return False


def counts(engine) -> dict:
    return {t: scalar(engine, f"SELECT count(*) FROM documents.{t}") for t in TABLES}


# --- uploads, downloads and versions -------------------------------------------------------------

def test_upload_complete_download_round_trip_with_checksum(gestor1, engine):
    md5 = hashlib.md5(PDF).hexdigest()
    ticket = gestor1.request_upload({"debtor_id": DEBTOR1, "account_id": DEBTOR1,
                                     "filename": "Contrato firmado ñ.pdf", "size": len(PDF),
                                     "md5": md5.upper(), "category": "contrato"})
    key = ticket["fields"]["key"]
    assert key.startswith(f"documents/1/{DEBTOR1}/") and "Contrato" not in key
    assert ticket["max_bytes"] == len(PDF)
    assert not gestor1.folder(DEBTOR1)["items"]  # pending uploads are not documents
    post(ticket, PDF)
    document = gestor1.complete_upload(ticket["upload_id"])
    assert document["name"] == "Contrato firmado ñ.pdf" and document["latest_version"] == 1
    latest = document["latest"]
    assert latest["content_type"] == "application/pdf" and latest["size"] == len(PDF)
    assert latest["checksum"] == md5 and latest["previewable"]
    # a repeated completion answers the same version, adds nothing
    assert gestor1.complete_upload(ticket["upload_id"])["latest"]["id"] == latest["id"]
    assert counts(engine)["versions"] == 1 and counts(engine)["uploads"] == 0

    link = gestor1.download_url(latest["id"])
    response = fetch(link["url"])
    assert hashlib.md5(response.content).hexdigest() == md5
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "Contrato firmado ñ.pdf" in unquote(disposition.split("filename*=UTF-8''")[1])
    assert response.headers["Content-Type"] == "application/pdf"
    inline = fetch(gestor1.download_url(latest["id"], True)["url"])
    assert inline.headers["Content-Disposition"].startswith("inline;")

    event = sql(engine, "SELECT payload FROM documents.outbox WHERE event_type = 'document_added'")
    assert [row[0]["version_id"] for row in event] == [latest["id"]]


def test_same_name_makes_a_new_version_and_old_ones_stay_downloadable(gestor1):
    first = upload(gestor1, PDF, "estado.pdf")
    second = upload(gestor1, PDF + b"% segunda\n", "ESTADO.pdf")
    assert second["id"] == first["id"] and second["latest_version"] == 2
    assert [v["version"] for v in second["versions"]] == [2, 1]
    old, new = second["versions"][1], second["versions"][0]
    assert fetch(gestor1.download_url(old["id"])["url"]).content == PDF
    assert fetch(gestor1.download_url(new["id"])["url"]).content == PDF + b"% segunda\n"
    upload(gestor1, PNG, "identificacion.png", category="identificacion")
    page = gestor1.folder(DEBTOR1, {"sort": "name"})
    assert [d["name"] for d in page["items"]] == ["ESTADO.pdf", "identificacion.png"]
    assert page["total"] == 2
    assert [d["name"] for d in gestor1.folder(DEBTOR1, {"category": "identificacion"})["items"]] \
        == ["identificacion.png"]
    assert [d["name"] for d in gestor1.folder(DEBTOR1, {"q": "estado"})["items"]] == ["ESTADO.pdf"]


def test_a_disguised_executable_is_refused_and_leaves_nothing(gestor1, engine):
    ticket = gestor1.request_upload({"debtor_id": DEBTOR1, "filename": "contrato.pdf",
                                     "size": len(EXE)})
    post(ticket, EXE)
    with pytest.raises(InvalidInput) as refused:
        gestor1.complete_upload(ticket["upload_id"])
    assert "file" in refused.value.fields
    assert not object_exists(ticket["fields"]["key"])
    assert counts(engine)["uploads"] == 0 and counts(engine)["documents"] == 0


@pytest.mark.parametrize("content, name, reason", [
    (PNG, "foto.pdf", "no corresponde"),            # real image, lying name
    (b"hola\x00\x01\x02binario", "notas.txt", "no admitido"),
])
def test_content_that_does_not_match_an_allowed_type_is_refused(gestor1, engine, content, name,
                                                                 reason):
    ticket = gestor1.request_upload({"debtor_id": DEBTOR1, "filename": name, "size": len(content)})
    post(ticket, content)
    with pytest.raises(InvalidInput) as refused:
        gestor1.complete_upload(ticket["upload_id"])
    assert reason in refused.value.fields["file"][0]
    assert not object_exists(ticket["fields"]["key"]) and counts(engine)["documents"] == 0


def test_a_size_or_checksum_that_lies_is_refused(gestor1, engine):
    ticket = gestor1.request_upload({"debtor_id": DEBTOR1, "filename": "a.pdf", "size": 10})
    post(ticket, PDF)  # s3rver ignores the policy's cap; the completion does not
    with pytest.raises(InvalidInput, match="rechazado"):
        gestor1.complete_upload(ticket["upload_id"])
    ticket = gestor1.request_upload({"debtor_id": DEBTOR1, "filename": "b.pdf", "size": len(PDF),
                                     "md5": "0" * 32})
    post(ticket, PDF)
    with pytest.raises(InvalidInput) as refused:
        gestor1.complete_upload(ticket["upload_id"])
    assert "MD5" in refused.value.fields["file"][0]
    assert counts(engine)["documents"] == 0 and counts(engine)["uploads"] == 0


@pytest.mark.parametrize("change, field", [
    ({"size": 0}, "size"),
    ({"size": 51 * 1024 * 1024}, "size"),
    ({"filename": "../../etc/passwd"}, "filename"),
    ({"filename": "carta\\demanda.pdf"}, "filename"),
    ({"filename": "carta\x07.pdf"}, "filename"),
    ({"filename": ".."}, "filename"),
    ({"category": "video"}, "category"),
    ({"md5": "xyz"}, "md5"),
    ({"account_id": DEBTOR1B}, "account_id"),
    ({"activity_id": 999_999_999}, "activity_id"),
])
def test_bad_upload_requests_name_their_field_and_store_nothing(gestor1, engine, change, field):
    request = {"debtor_id": DEBTOR1, "filename": "ok.pdf", "size": 100, **change}
    with pytest.raises(InvalidInput) as refused:
        gestor1.request_upload(request)
    assert field in refused.value.fields
    assert counts(engine)["uploads"] == 0


def test_completing_an_upload_that_never_happened(gestor1, as_user, engine):
    ticket = gestor1.request_upload({"debtor_id": DEBTOR1, "filename": "a.pdf", "size": 10})
    with pytest.raises(InvalidInput) as refused:
        gestor1.complete_upload(ticket["upload_id"])
    assert "file" in refused.value.fields
    assert counts(engine)["uploads"] == 1  # still open: the file may yet arrive
    with pytest.raises(NotFound):
        gestor1.complete_upload(str(uuid.uuid4()))
    with pytest.raises(InvalidInput):
        gestor1.complete_upload("no-es-un-uuid")
    # someone else's upload is nobody else's to complete
    with pytest.raises(NotFound):
        as_user(GESTOR2).documents.complete_upload(ticket["upload_id"])


def test_a_document_can_be_attached_to_an_activity_of_the_debtor(as_user):
    user = as_user(GESTOR1)
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    activity = user.activities.log_activity({
        "account_id": DEBTOR1, "kind": "visit", "direction": "outbound",
        "started_at": start.isoformat(), "ended_at": (start + timedelta(minutes=2)).isoformat(),
        "result_code": "CT", "description": "Visita con acuse"})
    document = upload(user.documents, PNG, "acuse.png", account_id=DEBTOR1,
                      activity_id=activity["id"])
    assert document["activity_id"] == activity["id"]
    assert [d["id"] for d in user.documents.folder(DEBTOR1, {"activity_id": activity["id"]})["items"]] \
        == [document["id"]]


# --- scope ----------------------------------------------------------------------------------------

def test_nobody_reaches_a_folder_outside_their_scope(gestor1, as_user):
    document = upload(gestor1, PDF)
    version_id = document["latest"]["id"]
    other_institution = as_user(GESTOR2, GESTOR_PERMS, (2,)).documents
    same_institution_other_agent = as_user(GESTOR2).documents
    for docs in (other_institution, same_institution_other_agent):
        with pytest.raises(NotFound):
            docs.download_url(version_id)
        with pytest.raises(NotFound):
            docs.get_document(document["id"])
        with pytest.raises(NotFound):
            docs.folder(DEBTOR1)
        with pytest.raises(NotFound):
            docs.request_upload({"debtor_id": DEBTOR1, "filename": "x.pdf", "size": 10})
    with pytest.raises(NotFound):
        gestor1.request_upload({"debtor_id": DEBTOR2, "filename": "x.pdf", "size": 10})
    with pytest.raises(NotFound):
        gestor1.download_url(version_id + 1000)
    reader = as_user(GESTOR1, {"portfolio.read"}).documents
    with pytest.raises(PermissionDenied):
        reader.folder(DEBTOR1)
    assert as_user(SUPERVISOR, SUPERVISOR_PERMS).documents.get_document(document["id"])["id"] \
        == document["id"]


# --- share links ------------------------------------------------------------------------------------

def _resolve(docs, token, **extra):
    return docs.resolve_share_link({"token": token, "address": "203.0.113.9", **extra})


def test_a_share_link_with_password_expiry_and_access_log(gestor1, supervisor, as_user, engine):
    contract = upload(gestor1, PDF)
    id_card = upload(gestor1, PNG, "ine.png", category="identificacion")
    expires = datetime.now(timezone.utc) + timedelta(days=7)
    link = supervisor.create_share_link({"debtor_id": DEBTOR1, "expires_at": expires.isoformat(),
                                         "password": "s3creta!", "label": "Para el banco"})
    token = link["token"]
    assert link["has_password"] and link["state"] == "active" and link["label"] == "Para el banco"
    assert scalar(engine, "SELECT count(*) FROM documents.share_links WHERE token_hash = :t",
                  t=token) == 0  # only its digest is kept
    anonymous = as_user(0, set(), ()).documents  # no permissions: the token is the credential

    with pytest.raises(NotAuthenticated) as asked:
        _resolve(anonymous, token)
    assert "password" in asked.value.fields
    with pytest.raises(PermissionDenied):
        _resolve(anonymous, token, password="otra-cosa")
    opened = _resolve(anonymous, token, password="s3creta!")
    assert sorted(d["name"] for d in opened["documents"]) == ["contrato.pdf", "ine.png"]
    grant = opened["grant"]
    got = _resolve(anonymous, token, grant=grant, version_id=contract["latest"]["id"])
    assert fetch(got["download"]["url"]).content == PDF
    with pytest.raises(NotAuthenticated):  # a tampered grant counts for nothing
        _resolve(anonymous, token, grant=grant.replace(".", "x.", 1), version_id=id_card["latest"]["id"])

    log = supervisor.share_link_accesses(link["id"])["items"]
    assert [a["outcome"] for a in log] == ["downloaded", "listed", "wrong_password"]
    assert log[0]["version_id"] == contract["latest"]["id"] and log[0]["address"] == "203.0.113.9"
    listed = supervisor.list_share_links({"debtor_id": DEBTOR1})["items"]
    assert [(l["id"], l["accesses"]) for l in listed] == [(link["id"], 2)]

    sql(engine, "UPDATE documents.share_links SET expires_at = now() - interval '1 minute'")
    with pytest.raises(Gone):
        _resolve(anonymous, token, password="s3creta!")
    assert supervisor.list_share_links({"state": "all"})["items"][0]["state"] == "expired"
    assert supervisor.list_share_links()["items"] == []


def test_a_document_link_cannot_be_widened_to_the_rest_of_the_folder(gestor1, as_user, supervisor):
    contract = upload(gestor1, PDF)
    other = upload(gestor1, PNG, "ine.png")
    elsewhere = upload(as_user(GESTOR2).documents, PDF, debtor=DEBTOR1B)
    expires = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    link = supervisor.create_share_link({"debtor_id": DEBTOR1, "document_id": contract["id"],
                                         "expires_at": expires})
    anonymous = as_user(0, set(), ()).documents
    assert [d["id"] for d in _resolve(anonymous, link["token"])["documents"]] == [contract["id"]]
    for version_id in (other["latest"]["id"], elsewhere["latest"]["id"]):
        with pytest.raises(NotFound):
            _resolve(anonymous, link["token"], version_id=version_id)
    with pytest.raises(InvalidInput) as refused:  # a link of one folder naming another's document
        supervisor.create_share_link({"debtor_id": DEBTOR1, "document_id": elsewhere["id"],
                                      "expires_at": expires})
    assert "document_id" in refused.value.fields
    with pytest.raises(NotFound):
        _resolve(anonymous, "x" * 43)


def test_revocation_and_the_password_throttle(gestor1, supervisor, as_user, engine):
    upload(gestor1, PDF)
    expires = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    link = supervisor.create_share_link({"debtor_id": DEBTOR1, "expires_at": expires,
                                         "password": "correcta1"})
    anonymous = as_user(0, set(), ()).documents
    for _ in range(5):
        with pytest.raises(PermissionDenied):
            _resolve(anonymous, link["token"], password="mala-mala")
    with pytest.raises(Throttled) as throttled:  # even the right one waits now
        _resolve(anonymous, link["token"], password="correcta1")
    assert throttled.value.retry_after == 15 * 60   # for the gateway's Retry-After
    revoked = supervisor.revoke_share_link(link["id"])
    assert revoked["state"] == "revoked" and revoked["revoked_at"]
    with pytest.raises(Gone):
        _resolve(anonymous, link["token"], password="correcta1")
    outcomes = [a["outcome"] for a in supervisor.share_link_accesses(link["id"])["items"]]
    assert outcomes[:2] == ["revoked", "throttled"] and outcomes.count("wrong_password") == 5
    other = as_user(SUPERVISOR, SUPERVISOR_PERMS, (2,)).documents
    with pytest.raises(NotFound):
        other.revoke_share_link(link["id"])
    with pytest.raises(PermissionDenied):
        gestor1.create_share_link({"debtor_id": DEBTOR1, "expires_at": expires})


@pytest.mark.parametrize("change, field", [
    ({"expires_at": "2020-01-01T00:00:00+00:00"}, "expires_at"),
    ({"expires_at": (datetime.now(timezone.utc) + timedelta(days=400)).isoformat()}, "expires_at"),
    ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no zone
    ({"password": "123"}, "password"),
])
def test_bad_share_links_name_their_field(supervisor, engine, change, field):
    request = {"debtor_id": DEBTOR1,
               "expires_at": (datetime.now(timezone.utc) + timedelta(days=1)).isoformat(), **change}
    with pytest.raises(InvalidInput) as refused:
        supervisor.create_share_link(request)
    assert field in refused.value.fields
    assert counts(engine)["share_links"] == 0


def test_the_portal_lists_active_shared_documents_of_its_institution(gestor1, supervisor, as_user):
    document = upload(gestor1, PDF)
    expires = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    supervisor.create_share_link({"debtor_id": DEBTOR1, "expires_at": expires})
    client = as_user(9001, {"portfolio.read", "portfolio.read_all", "documents.read"}, (1,)).documents
    shared = client.shared_documents()["items"]
    assert [[d["id"] for d in link["documents"]] for link in shared] == [[document["id"]]]
    assert client.download_url(document["latest"]["id"])["url"]
    other_client = as_user(9002, {"portfolio.read", "portfolio.read_all", "documents.read"}, (2,))
    assert other_client.documents.shared_documents()["items"] == []
    with pytest.raises(NotFound):
        other_client.documents.download_url(document["latest"]["id"])


# --- the sweep --------------------------------------------------------------------------------------

def test_the_sweep_deletes_objects_of_uploads_never_completed(gestor1, system, engine):
    kept = upload(gestor1, PDF, "guardado.pdf")
    ticket = gestor1.request_upload({"debtor_id": DEBTOR1, "filename": "olvidado.pdf",
                                     "size": len(PDF)})
    post(ticket, PDF)
    fresh = gestor1.request_upload({"debtor_id": DEBTOR1, "filename": "en-curso.pdf", "size": 5})
    sql(engine, "UPDATE documents.uploads SET expires_at = now() - interval '1 second'"
                " WHERE id = :i", i=ticket["upload_id"])
    with pytest.raises(PermissionDenied):
        gestor1.sweep_uploads()
    assert system.sweep_uploads() == {"swept": 1}
    assert not object_exists(ticket["fields"]["key"])
    assert scalar(engine, "SELECT count(*) FROM documents.uploads") == 1  # the fresh one stays
    assert fresh["upload_id"] and object_exists(
        sql(engine, "SELECT object_key FROM documents.versions WHERE document_id = :d",
            d=kept["id"])[0][0])
    with pytest.raises(NotFound):
        gestor1.complete_upload(ticket["upload_id"])


@pytest.mark.instances(2)
def test_the_sweep_fired_on_two_instances_at_once_deletes_each_upload_once(
        gestor1, engine, instances, monkeypatch):
    from documents import folders

    tickets = [gestor1.request_upload({"debtor_id": DEBTOR1, "filename": f"olvidado-{i}.pdf",
                                       "size": len(PDF)}) for i in range(6)]
    for ticket in tickets:
        post(ticket, PDF)
    sql(engine, "UPDATE documents.uploads SET expires_at = now() - interval '1 second'")
    swept = counting(monkeypatch, folders, "sweep_expired")
    fire_together(instances["documents"], "sweep_uploads_timer")
    record("timer_upload_sweep", {"instances_fired": 2, "abandoned_uploads": len(tickets),
                                  "swept_per_batch": [n for n in swept if n]})
    assert sum(swept) == len(tickets)
    assert scalar(engine, "SELECT count(*) FROM documents.uploads") == 0
    assert not any(object_exists(t["fields"]["key"]) for t in tickets)

