"""Bulk import of portfolio and payment files (CSV, XLSX), streaming and set-based: the
layouts and jobs as the RPCs (``service.py``) see them. Running a job is ``import_run``
(reading the file: ``import_read``; merging it: ``import_merge``; its SQL: ``import_sql``);
what a layout may say is the contract's (``contracts``).

The flow:

1. ``create_job``: an admin picks a layout and names the file; the job gets a
   server-made object key ``imports/<institution>/<uuid>`` and the client a presigned
   PUT URL, so the file goes straight to S3 and never through the gateway.
2. ``request_job``: once uploaded (the object exists with the declared size) the
   service emits ``import_requested`` through its outbox and consumes it itself, so an
   import interrupted by a crash is redelivered and restarted, not lost.
3. ``run_job`` (the event handler):

   * reads the object in 1 MiB pieces; for CSV the header line is read here and the raw
     bytes go to PostgreSQL ``COPY … FROM STDIN`` (the server decodes the layout's
     encoding and parses the CSV; no Python per row); for XLSX openpyxl streams the rows
     (``read_only``) into ``COPY`` (``write_row``). A wrong encoding or a malformed file
     makes COPY fail: the job fails with the file row PostgreSQL names, nothing imported;
   * flags, in one pass over the whole file, what a chunk cannot see alone: keys repeated
     within the file and customers whose rows fall in more than one chunk;
   * then chunk by chunk (``CHUNK_ROWS`` rows, ``WORKERS`` chunks at a time, each on its
     own connection, in one transaction): parses and validates the chunk's rows in one
     statement (``import_sql.parse_sql``), stores their problems (the report), merges the
     valid ones with a handful of INSERT … SELECT / UPDATE … FROM statements, refreshes
     aging and announces one ``accounts_changed`` batch, its ``stage_changed`` and
     ``payment_received`` events and an ``import_progressed``. Rows of customers spread
     over chunks are merged last, one chunk at a time, so two transactions never write
     the same debtor and the file's last row of a customer wins. A chunk that fails rolls
     back alone and its rows are reported; the others stay.

Staging tables are UNLOGGED tables of the job in the ``portfolio_import`` schema (the
chunk workers use other connections, so they cannot be TEMP), dropped when the job ends;
one import per institution runs at a time (an advisory lock), others wait their turn.
Amounts are NUMERIC end to end; nothing here turns them into floats.
"""
from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import timedelta
from pathlib import PurePosixPath

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recaudo_common import storage
from recaudo_common.errors import Conflict, InvalidInput, NotFound
from recaudo_common.identity import Identity
from recaudo_common.validation import page_of

from .contracts import (DATE_FORMATS, DECIMAL_SEPARATORS, DELIMITERS, ENCODINGS, FIELDS,
                        FILE_FORMATS, MANDATORY, THOUSANDS_SEPARATORS)
from .models import ImportJob, ImportLayout, ImportProblem, Institution

#: largest file accepted (declared at create_import, checked again at start)
MAX_IMPORT_BYTES = 1 << 30

#: lines of the downloadable CSV report
REPORT_LINES = 100_000

UPLOAD_URL_TTL = timedelta(hours=1)


# --- the field catalogue -----------------------------------------------------------------

def catalogue() -> dict:
    """What the layout editor offers: fields per kind and the allowed formats."""
    return {
        "fields": {kind: [spec.as_dict(name) | {"mandatory": name in MANDATORY[kind]}
                          for name, spec in fields.items()]
                   for kind, fields in FIELDS.items()},
        "encodings": list(ENCODINGS),
        "delimiters": list(DELIMITERS),
        "date_formats": [{"format": f, "label": d.label, "example": d.example}
                         for f, d in DATE_FORMATS.items()],
        "decimal_separators": list(DECIMAL_SEPARATORS),
        "thousands_separators": list(THOUSANDS_SEPARATORS),
        "file_formats": list(FILE_FORMATS),
        "max_bytes": MAX_IMPORT_BYTES,
    }


# --- layouts -------------------------------------------------------------------------------

def visible_layout(session: Session, identity: Identity, layout_id) -> ImportLayout:
    layout = session.get(ImportLayout, layout_id) if isinstance(layout_id, int) else None
    if layout is None or not identity.may_access_institution(layout.institution_id):
        raise NotFound("Layout no encontrado")
    return layout


def list_layouts(session: Session, identity: Identity, institution_id) -> list[ImportLayout]:
    identity.require_institution(institution_id)
    return session.execute(select(ImportLayout)
                           .where(ImportLayout.institution_id == institution_id)
                           .order_by(ImportLayout.name)).scalars().all()


def save_layout(session: Session, identity: Identity, data: dict,
                layout_id=None) -> ImportLayout:
    """``data`` went through ``contracts.LayoutWrite`` (which calls ``layout_problems``)."""
    identity.require_institution(data["institution_id"])
    if session.get(Institution, data["institution_id"]) is None:
        raise NotFound("Institución no encontrada", {"institution_id": ["No existe"]})
    clash = session.execute(select(ImportLayout.id).where(
        ImportLayout.institution_id == data["institution_id"],
        ImportLayout.name == data["name"], ImportLayout.id != (layout_id or 0))).first()
    if clash:
        raise Conflict("Ya existe un layout con ese nombre",
                       {"name": ["Ya existe en esta institución"]})
    data = dict(data, required=sorted(set(data.get("required") or ())
                                      | set(MANDATORY[data["kind"]])))
    if layout_id is None:
        layout = ImportLayout(**data)
        session.add(layout)
    else:
        layout = visible_layout(session, identity, layout_id)
        for key, value in data.items():
            setattr(layout, key, value)
    session.flush()
    return layout


# --- jobs: creation, upload check, reading --------------------------------------------------

_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_file_name(file_name, file_format: str) -> str:
    name = (file_name or "").strip() if isinstance(file_name, str) else ""
    problem = None
    if not name:
        problem = "Falta el nombre del archivo"
    elif len(name) > 255:
        problem = "Nombre demasiado largo (máximo 255)"
    elif _BAD_NAME.search(name) or name in (".", ".."):
        problem = "El nombre no puede tener rutas ni caracteres de control"
    elif PurePosixPath(name).suffix.lower() != f".{file_format}":
        problem = f"Este layout espera un archivo .{file_format}"
    if problem:
        raise InvalidInput(problem, {"file_name": [problem]})
    return name


def check_size(size_bytes) -> int:
    if size_bytes == 0:
        raise InvalidInput("El archivo está vacío", {"size_bytes": ["El archivo está vacío"]})
    if size_bytes > MAX_IMPORT_BYTES:
        message = f"El archivo excede el máximo de {MAX_IMPORT_BYTES // (1 << 20)} MiB"
        raise InvalidInput(message, {"size_bytes": [message]})
    return size_bytes


def create_job(session: Session, identity: Identity, data: dict) -> tuple[ImportJob, str]:
    """A queued job and the presigned URL the file is PUT to."""
    layout = visible_layout(session, identity, data["layout_id"])
    name = check_file_name(data["file_name"], layout.file_format)
    size = check_size(data["size_bytes"])
    job = ImportJob(institution_id=layout.institution_id, layout_id=layout.id, kind=layout.kind,
                    file_name=name, source=f"imports/{layout.institution_id}/{uuid.uuid4()}",
                    size_bytes=size, state="queued", created_by=identity.user_id,
                    message="Esperando el archivo")
    session.add(job)
    session.flush()
    url = storage.client().presigned_put_object(storage.bucket(), job.source,
                                                expires=UPLOAD_URL_TTL)
    return job, url


def visible_job(session: Session, identity: Identity, job_id, lock=False) -> ImportJob:
    job = None
    if isinstance(job_id, int):
        stmt = select(ImportJob).where(ImportJob.id == job_id)
        job = session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()
    if job is None or not identity.may_access_institution(job.institution_id):
        raise NotFound("Importación no encontrada")
    return job


def request_job(session: Session, identity: Identity, job_id) -> ImportJob:
    """Check the upload and mark the job requested; the caller emits import_requested."""
    from minio.error import S3Error

    job = visible_job(session, identity, job_id, lock=True)
    if job.state != "queued":
        raise Conflict("La importación ya se inició", {"state": [job.state]})
    try:
        stat = storage.client().stat_object(storage.bucket(), job.source)
    except S3Error as err:
        if err.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            raise InvalidInput("El archivo aún no se ha subido",
                               {"file": ["El archivo aún no se ha subido"]}) from None
        raise
    if stat.size != job.size_bytes:
        message = (f"El archivo subido mide {stat.size} bytes y se declararon "
                   f"{job.size_bytes}")
        raise InvalidInput(message, {"file": [message]})
    job.message = "En cola"
    return job


def list_jobs(session: Session, identity: Identity, query: dict) -> dict:
    from .scope import institution_clause

    stmt = select(ImportJob).where(institution_clause(identity, ImportJob.institution_id))
    if query.get("institution_id") is not None:
        stmt = stmt.where(ImportJob.institution_id == query["institution_id"])
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(stmt.order_by(ImportJob.created_at.desc(), ImportJob.id.desc())
                           .offset((query["page"] - 1) * query["per_page"])
                           .limit(query["per_page"])).scalars().all()
    return page_of(rows, total, query["page"], query["per_page"])


def problems_page(session: Session, identity: Identity, job_id, page: int,
                  per_page: int) -> dict:
    job = visible_job(session, identity, job_id)
    base = select(ImportProblem).where(ImportProblem.job_id == job.id)
    total = session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    rows = session.execute(base.order_by(ImportProblem.row_number, ImportProblem.id)
                           .offset((page - 1) * per_page).limit(per_page)).scalars().all()
    return page_of(rows, total, page, per_page)


def report_csv(session: Session, identity: Identity, job_id) -> str:
    """The validation report as CSV (fila,columna,problema), at most REPORT_LINES lines."""
    job = visible_job(session, identity, job_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["fila", "columna", "problema"])
    rows = session.execute(
        select(ImportProblem.row_number, ImportProblem.column, ImportProblem.problem)
        .where(ImportProblem.job_id == job.id)
        .order_by(ImportProblem.row_number, ImportProblem.id).limit(REPORT_LINES + 1))
    count = 0
    for row in rows:
        if count == REPORT_LINES:
            total = session.execute(select(func.count()).select_from(ImportProblem)
                                    .where(ImportProblem.job_id == job.id)).scalar_one()
            writer.writerow(["", "", f"Reporte recortado: se muestran {REPORT_LINES} de "
                                     f"{total} problemas"])
            break
        writer.writerow([row.row_number, row.column, row.problem])
        count += 1
    return out.getvalue()
