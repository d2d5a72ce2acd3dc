"""A debtor's folder: uploads straight to S3, their verification, versions and downloads.

The bytes never pass through the gateway or this service's RPC: ``request_upload``
hands out a presigned POST policy for a key the server made
(``documents/<institution>/<debtor>/<upload uuid>``) with a size cap, the client sends
the file to the object store, and ``complete_upload`` checks what arrived (size, MD5,
what its first bytes say it is) before it becomes a version. Whatever fails the check is
deleted; whatever is never completed is deleted by the sweep when its upload expires.
"""
from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from minio.datatypes import PostPolicy
from minio.error import S3Error
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from recaudo_common import storage
from recaudo_common.errors import InvalidInput, NotFound
from recaudo_common.identity import Identity
from recaudo_common.validation import page_of

from . import sniff
from .models import Document, Upload, Version
from .contracts import MAX_DOCUMENT_BYTES, DocumentOut, VersionOut

log = logging.getLogger(__name__)

UPLOAD_TTL = timedelta(minutes=30)
DOWNLOAD_TTL = timedelta(minutes=5)
#: expired uploads swept per transaction
SWEEP_BATCH = 500

_SORTS = {"name": func.lower(Document.name), "updated_at": Document.updated_at,
          "category": Document.category}

UPSERT_DOCUMENT = text("""
    INSERT INTO documents.documents AS d
           (institution_id, debtor_id, account_id, activity_id, dispute_id, category, name,
            latest_version)
    VALUES (:institution_id, :debtor_id, :account_id, :activity_id, :dispute_id, :category,
            :name, 1)
    ON CONFLICT (debtor_id, lower(name)) DO UPDATE
       SET latest_version = d.latest_version + 1, updated_at = now(), name = excluded.name,
           account_id = coalesce(excluded.account_id, d.account_id),
           activity_id = coalesce(excluded.activity_id, d.activity_id),
           dispute_id = coalesce(excluded.dispute_id, d.dispute_id)
    RETURNING d.id, d.latest_version, d.category
""")


class Refusal(Exception):
    """What arrived may not be stored; its object is already deleted."""


def _refuse(key: str, reason: str) -> Refusal:
    storage.client().remove_object(storage.bucket(), key)
    return Refusal(reason)


def request_upload(session: Session, identity: Identity, debtor: dict, data: dict) -> dict:
    """Record a pending upload and answer the presigned POST that may write it."""
    if data["account_id"] and data["account_id"] not in debtor["account_ids"]:
        raise InvalidInput("Datos inválidos", {"account_id": ["La cuenta no es de este deudor"]})
    upload_id = uuid.uuid4()
    key = f"documents/{debtor['institution_id']}/{debtor['id']}/{upload_id}"
    expires_at = datetime.now(timezone.utc) + UPLOAD_TTL
    session.add(Upload(id=upload_id, object_key=key, institution_id=debtor["institution_id"],
                       debtor_id=debtor["id"], account_id=data["account_id"],
                       activity_id=data["activity_id"], dispute_id=data["dispute_id"],
                       category=data["category"], name=data["filename"],
                       declared_size=data["size"], declared_md5=data["md5"],
                       uploaded_by=identity.user_id, expires_at=expires_at))
    policy = PostPolicy(storage.bucket(), expires_at)
    policy.add_equals_condition("key", key)
    policy.add_content_length_range_condition(1, data["size"])
    form = storage.public_client().presigned_post_policy(policy)
    return {"upload_id": upload_id, "url": storage.public_url(),
            "fields": {"key": key, **form}, "max_bytes": data["size"], "expires_at": expires_at}


def _md5_of(key: str) -> str:
    """The object's MD5 read back (only when the ETag is not one: a multipart upload)."""
    digest = hashlib.md5()
    response = storage.client().get_object(storage.bucket(), key)
    try:
        for piece in response.stream(1 << 20):
            digest.update(piece)
    finally:
        response.close()
        response.release_conn()
    return digest.hexdigest()


def verify_upload(upload: Upload) -> tuple[sniff.Kind, int, str]:
    """What arrived for ``upload``: its kind, size and MD5. ``Refusal`` when it may not be
    stored (the object is deleted), ``InvalidInput`` when nothing arrived (the upload stays
    open until it expires)."""
    client, bucket = storage.client(), storage.bucket()
    try:
        stat = client.stat_object(bucket, upload.object_key)
    except S3Error as err:
        if err.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            raise InvalidInput("No se recibió el archivo",
                               {"file": ["El archivo no llegó al almacén; súbalo de nuevo"]}) from None
        raise
    size = stat.size or 0
    if size == 0:
        raise _refuse(upload.object_key, "El archivo está vacío")
    if size > MAX_DOCUMENT_BYTES:
        raise _refuse(upload.object_key, "El archivo excede el tamaño máximo")
    if size != upload.declared_size:
        raise _refuse(upload.object_key,
                      f"Se anunciaron {upload.declared_size} bytes y llegaron {size}")
    etag = (stat.etag or "").strip('"').lower()
    checksum = etag if len(etag) == 32 and "-" not in etag else _md5_of(upload.object_key)
    if upload.declared_md5 and checksum != upload.declared_md5:
        raise _refuse(upload.object_key, "La suma MD5 no coincide: el archivo llegó alterado")
    response = client.get_object(bucket, upload.object_key, offset=0, length=sniff.SNIFF_BYTES)
    try:
        head = response.read()
    finally:
        response.close()
        response.release_conn()
    try:
        kind = sniff.kind_of(head, upload.name)
    except sniff.Refused as refused:
        raise _refuse(upload.object_key, str(refused)) from None
    return kind, size, checksum


def store_version(session: Session, upload: Upload, kind: sniff.Kind, size: int,
                  checksum: str) -> tuple[Document, Version] | None:
    """Turn the verified upload into the next version of its folder's document of that
    name; ``None`` when another call already did (the upload row is gone)."""
    claimed = session.execute(delete(Upload).where(Upload.id == upload.id)
                              .returning(Upload.id)).first()
    if claimed is None:
        return None
    row = session.execute(UPSERT_DOCUMENT, {
        "institution_id": upload.institution_id, "debtor_id": upload.debtor_id,
        "account_id": upload.account_id, "activity_id": upload.activity_id,
        "dispute_id": upload.dispute_id, "category": upload.category,
        "name": upload.name}).one()
    version = Version(document_id=row.id, version=row.latest_version, upload_id=upload.id,
                      object_key=upload.object_key, name=upload.name,
                      content_type=kind.content_type, size=size, checksum=checksum,
                      uploaded_by=upload.uploaded_by)
    session.add(version)
    session.flush()
    return session.get(Document, row.id), version


def version_for_upload(session: Session, upload_id) -> Version | None:
    return session.execute(select(Version).where(Version.upload_id == upload_id)).scalar_one_or_none()


def describe_version(version: Version) -> dict:
    data = VersionOut().dump(version)
    data["previewable"] = any(k.content_type == version.content_type and k.previewable
                              for k in sniff.ALLOWED)
    return data


def describe(session: Session, document: Document, all_versions: bool = True) -> dict:
    versions = session.execute(select(Version).where(Version.document_id == document.id)
                               .order_by(Version.version.desc())).scalars().all()
    data = DocumentOut(exclude=("latest", "versions")).dump(document)
    described = [describe_version(v) for v in versions]
    data["latest"] = described[0] if described else None
    data["versions"] = described if all_versions else described[:1]
    return data


def folder(session: Session, debtor: dict, query: dict) -> dict:
    """A page of the debtor's documents, each with its versions (newest first)."""
    where = [Document.debtor_id == debtor["id"]]
    for name in ("category", "account_id", "activity_id", "dispute_id"):
        if query.get(name) is not None:
            where.append(getattr(Document, name) == query[name])
    if query.get("q"):
        pattern = "%" + query["q"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(Document.name.ilike(pattern))
    total = session.execute(select(func.count()).select_from(Document).where(*where)).scalar_one()
    sort = query["sort"]
    column = _SORTS[sort.lstrip("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    documents = session.execute(select(Document).where(*where).order_by(order, Document.id.desc())
                                .offset((query["page"] - 1) * query["per_page"])
                                .limit(query["per_page"])).scalars().all()
    by_document: dict[int, list[dict]] = {d.id: [] for d in documents}
    for version in session.execute(select(Version).where(Version.document_id.in_(list(by_document)))
                                   .order_by(Version.document_id, Version.version.desc())).scalars():
        by_document[version.document_id].append(describe_version(version))
    items = []
    for document in documents:
        data = DocumentOut(exclude=("latest", "versions")).dump(document)
        data["versions"] = by_document[document.id]
        data["latest"] = data["versions"][0] if data["versions"] else None
        items.append(data)
    return page_of(items, total, query["page"], query["per_page"])


def content_disposition(name: str, inline: bool) -> str:
    """RFC 6266: an ASCII fallback and the exact UTF-8 name."""
    fallback = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def download(version: Version, inline: bool = False) -> dict:
    """A short-lived presigned GET that names the file as it was uploaded."""
    inline = inline and describe_version(version)["previewable"]
    url = storage.public_client().presigned_get_object(
        storage.bucket(), version.object_key, expires=DOWNLOAD_TTL,
        response_headers={"response-content-disposition": content_disposition(version.name, inline),
                          "response-content-type": version.content_type})
    return {"url": url, "expires_at": datetime.now(timezone.utc) + DOWNLOAD_TTL,
            "name": version.name, "content_type": version.content_type}


def find_version(session: Session, version_id: int) -> tuple[Document, Version]:
    found = session.execute(select(Document, Version).join(Version, Version.document_id == Document.id)
                            .where(Version.id == version_id)).first()
    if found is None:
        raise NotFound("Documento no encontrado")
    return found


def sweep_expired(session: Session, now: datetime | None = None) -> int:
    """Delete the objects and rows of uploads never completed in time (one batch)."""
    expired = session.execute(select(Upload).where(Upload.expires_at < (now or func.now()))
                              .order_by(Upload.expires_at).limit(SWEEP_BATCH)
                              .with_for_update(skip_locked=True)).scalars().all()
    if not expired:
        return 0
    client, bucket = storage.client(), storage.bucket()
    for upload in expired:
        try:
            client.remove_object(bucket, upload.object_key)  # absent objects are no error
        except S3Error:
            log.exception("could not delete the orphan object %s", upload.object_key)
            continue
        session.delete(upload)
    return len(expired)
