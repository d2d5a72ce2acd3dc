"""Files between mail and the documents service.

Inbound: a matched message's attachments become documents of the debtor, uploaded
the way every client uploads (``request_upload`` -> POST to the presigned form ->
``complete_upload``, which checks type and size). Outbound: the documents an agent
attaches are fetched through ``download_url`` when the message is sent; a fax's PDF
letter is stored as a document once it has gone.

A refusal by the documents service (a type it does not keep, a file over its limit)
is recorded on that attachment and is final; the service being unreachable leaves the
file where it is to be tried again.
"""
from __future__ import annotations

import hashlib
import logging
import mimetypes
from email import policy
from email.message import Message
from email.parser import BytesParser

import requests

from recaudo_common.errors import InvalidInput, NotFound, PermissionDenied

from . import parsing

log = logging.getLogger(__name__)
TIMEOUT = 60
#: the largest attachment an outbound message carries (servers commonly refuse ~25 MB)
OUTBOUND_MAX_BYTES = 20 * 1024 * 1024


class NotYet(Exception):
    """The documents service or the object store cannot be reached now: try later."""


class Refused(Exception):
    """A document that cannot be attached (gone, out of scope, too big)."""


def _upload(documents, debtor_id, account_id, activity_id, category, name, data: bytes) -> dict:
    ticket = documents.request_upload({
        "debtor_id": debtor_id, "account_id": account_id, "category": category,
        "filename": name, "size": len(data), "md5": hashlib.md5(data).hexdigest(),
        **({"activity_id": activity_id} if activity_id else {})})
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = requests.post(ticket["url"], data=ticket["fields"],
                             files={"file": (name, data, content_type)}, timeout=TIMEOUT)
    if response.status_code >= 300:
        raise NotYet(f"El almacén respondió {response.status_code}")
    return _ids(documents.complete_upload(ticket["upload_id"]))


def _ids(stored: dict) -> dict:
    """{"version_id", "document_id"} of what complete_upload answered (the document with
    its latest version, or the version itself)."""
    if "version_id" in stored:
        return {"version_id": stored["version_id"], "document_id": stored.get("document_id")}
    return {"version_id": stored["latest"]["id"], "document_id": stored["id"]}


def size_of(documents, version_id: int) -> int:
    """A document's size without downloading it (one byte asked for, the total answered)."""
    link = documents.download_url(version_id)
    response = requests.get(link["url"], headers={"Range": "bytes=0-0"}, timeout=TIMEOUT)
    response.raise_for_status()
    total = response.headers.get("Content-Range", "").rpartition("/")[2]
    return int(total) if total.isdigit() else int(response.headers.get("Content-Length", 0))


def store_inbound(row, documents, activity_id) -> list[dict]:
    """The row's attachment list with each one stored (version_id) or refused (error)."""
    msg = BytesParser(policy=policy.default).parsebytes(row.raw)
    files = parsing._attachments(msg)   # same order as when the row was made
    out = []
    for index, (meta, data) in enumerate(files):
        known = (row.attachments or [])[index] if index < len(row.attachments or []) else {}
        entry = {**meta, **{k: v for k, v in known.items() if k in ("version_id", "document_id",
                                                                     "error")}}
        if not entry.get("version_id") and not entry.get("error"):
            if not data:
                entry["error"] = "Adjunto vacío"
            else:
                try:
                    version = _upload(documents, row.debtor_id, row.account_id, activity_id,
                                      "otro", meta["name"], data)
                    entry.update(version_id=version["version_id"],
                                 document_id=version["document_id"])
                except InvalidInput as exc:
                    problems = "; ".join(f"{k}: {', '.join(map(str, v))}"
                                         for k, v in (exc.fields or {}).items())
                    entry["error"] = (f"{exc.message} ({problems})" if problems
                                      else exc.message)[:500]
                    log.info("inbound %s: attachment %r refused: %s", row.id, meta["name"],
                             entry["error"])
        out.append(entry)
    return out


def outbound_files(row, documents) -> list[tuple[str, str, bytes]]:
    files = []
    for item in row.attachments or []:
        if item.get("pending_document") and row.pdf is not None:
            files.append((item["name"], "application/pdf", row.pdf))
            continue
        if item.get("version_id") is None:
            continue
        try:
            link = documents.download_url(item["version_id"])
        except (NotFound, PermissionDenied) as exc:
            raise Refused(f"Documento {item['version_id']} no disponible: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the service is down: try later
            raise NotYet(f"Servicio de documentos no disponible: {exc}") from None
        try:
            response = requests.get(link["url"], timeout=TIMEOUT, stream=True)
            response.raise_for_status()
            data = response.raw.read(OUTBOUND_MAX_BYTES + 1, decode_content=True)
        except requests.RequestException as exc:
            raise NotYet(f"No se pudo descargar el documento {item['version_id']}: {exc}") from None
        if len(data) > OUTBOUND_MAX_BYTES:
            raise Refused(f"El documento {item['version_id']} excede "
                          f"{OUTBOUND_MAX_BYTES // (1024 * 1024)} MB")
        name = item.get("name") or _name_from(response) or f"documento-{item['version_id']}"
        content_type = response.headers.get("Content-Type") or \
            mimetypes.guess_type(name)[0] or "application/octet-stream"
        files.append((name, content_type.split(";")[0].strip(), data))
    return files


def _name_from(response) -> str | None:
    disposition = response.headers.get("Content-Disposition", "")
    if not disposition:
        return None
    header = Message()
    header["Content-Disposition"] = disposition   # filename and RFC 2231 filename*
    name = header.get_filename()
    return name[:200] if name else None


def store_fax_pdf(row, documents) -> bool:
    """Keep the fax's PDF as a document of the debtor (category "carta"). False: try
    again later (the PDF stays in the row)."""
    name = next((a["name"] for a in row.attachments or [] if a.get("pending_document")),
                f"fax-{row.uuid[:8]}.pdf")
    try:
        version = _upload(documents, row.debtor_id, row.account_id, row.activity_id, "carta",
                          name, row.pdf)
    except Exception as exc:  # noqa: BLE001 - kept in the row and tried again
        log.warning("fax %s: PDF not stored as a document yet: %s", row.uuid, exc)
        return False
    row.attachments = [{"name": name, "content_type": "application/pdf", "size": len(row.pdf),
                        "version_id": version["version_id"],
                        "document_id": version["document_id"]}]
    row.pdf = None
    return True
