"""Portfolio files uploaded through the gateway, for clients that cannot PUT to S3.

The normal path never touches the gateway: ``create_import`` answers a presigned S3
URL and the client PUTs the file there. The web UI (no CORS on the object store)
and curl users post a multipart form instead; the gateway then streams the file to
that same presigned URL. Werkzeug spools a large upload to a temporary file while
parsing the form, and ``requests`` streams it from there: the file is never held in
memory.

The app's 2 MB request limit stays for everything else. The upload endpoints are
named in ``LARGE_UPLOAD_ENDPOINTS``; ``allow_large_upload`` (a before_request that
runs before the CSRF check reads the form) raises the limit for those requests only.
"""
from __future__ import annotations

import logging
import os

import requests
from flask import request
from werkzeug.datastructures import FileStorage

from recaudo_common.errors import InvalidInput

log = logging.getLogger(__name__)

#: the most a portfolio file may weigh when it goes through the gateway
MAX_UPLOAD_BYTES = 1 << 30
#: endpoints that accept a portfolio file in a multipart form
LARGE_UPLOAD_ENDPOINTS = {"portfolio.upload_import", "portfolio_ui.imports"}
#: file endings a layout can read
ACCEPTED_SUFFIXES = (".csv", ".txt", ".xlsx")
#: (connect, read) seconds for the PUT to the object store
PUT_TIMEOUT = (10, 900)


class UploadFailed(Exception):
    """The object store refused or did not answer the PUT."""


def allow_large_upload():
    """before_request: lift the request size limit for the upload endpoints only."""
    if request.endpoint in LARGE_UPLOAD_ENDPOINTS and request.method == "POST":
        request.max_content_length = MAX_UPLOAD_BYTES


def file_size(upload: FileStorage) -> int:
    stream = upload.stream
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def check_file(upload: FileStorage | None) -> None:
    """``InvalidInput`` naming the ``file`` field when there is nothing usable to send."""
    if upload is None or not upload.filename:
        raise InvalidInput("Falta el archivo", {"file": ["Seleccione un archivo CSV o XLSX"]})
    if not upload.filename.lower().endswith(ACCEPTED_SUFFIXES):
        raise InvalidInput("Tipo de archivo no admitido",
                           {"file": ["Se admiten archivos .csv, .txt y .xlsx"]})


def put_to(url: str, upload: FileStorage, size: int) -> None:
    """Stream ``upload`` to the presigned ``url`` (never read into memory)."""
    upload.stream.seek(0)
    try:
        answer = requests.put(url, data=upload.stream, timeout=PUT_TIMEOUT, headers={
            "Content-Length": str(size),
            "Content-Type": upload.mimetype or "application/octet-stream"})
    except requests.RequestException as exc:
        log.warning("upload to the object store failed: %r", exc)
        raise UploadFailed(str(exc)) from exc
    if answer.status_code >= 300:
        log.warning("object store answered %s to the upload: %s", answer.status_code,
                    answer.text[:300])
        raise UploadFailed(f"HTTP {answer.status_code}")


def upload_import(proxy, layout_id, upload: FileStorage | None) -> dict:
    """create_import → PUT the file to its presigned URL → start_import; the job."""
    check_file(upload)
    size = file_size(upload)
    if size == 0:
        raise InvalidInput("El archivo está vacío", {"file": ["El archivo está vacío"]})
    name = os.path.basename(upload.filename.replace("\\", "/"))[:255]
    created = proxy.portfolio.create_import({"layout_id": layout_id, "file_name": name,
                                             "size_bytes": size})
    put_to(created["upload_url"], upload, size)
    return proxy.portfolio.start_import(created["job"]["id"])
