"""Bulk import of portfolio and payment files (CSV, XLSX), streaming and set-based.

The flow (the RPCs are in ``service.py``):

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
import json
import logging
import re
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath

import psycopg
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from recaudo_common import storage
from recaudo_common.errors import Conflict, InvalidInput, NotFound
from recaudo_common.identity import Identity
from recaudo_common.localtime import today_in
from recaudo_common.validation import page_of

from . import aging
from . import import_sql as sql
from .contracts import (DATE_FORMATS, DECIMAL_SEPARATORS, DELIMITERS, ENCODINGS, FIELDS,
                        FILE_FORMATS, MANDATORY, SCHEDULE_FIELDS, THOUSANDS_SEPARATORS,
                        layout_problems, normalize_header)
from .import_sql import Column, Plan
from .models import ImportJob, ImportLayout, ImportProblem, Institution

log = logging.getLogger(__name__)

#: largest file accepted (declared at create_import, checked again at start)
MAX_IMPORT_BYTES = 1 << 30
#: valid rows merged per transaction (and announced per accounts_changed event)
CHUNK_ROWS = 20_000
#: chunks merged at the same time, each on its own connection
WORKERS = 2
#: bytes read from S3 at a time
READ_BYTES = 1 << 20
#: validation report lines stored per job (the counts stay exact beyond it)
MAX_PROBLEMS = 500_000
#: lines of the downloadable CSV report
REPORT_LINES = 100_000
MAX_COLUMNS = 500
MAX_HEADER_BYTES = 256 * 1024
#: how often progress is published while the file is read
PROGRESS_SECONDS = 1.0
UPLOAD_URL_TTL = timedelta(hours=1)
#: advisory lock class: one import at a time per institution
LOCK_CLASS = 0x52454341

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


def plan_for(job_id: int, layout: ImportLayout, headers: list[str],
             chunk_rows: int | None = None) -> Plan:
    """Where each of the layout's fields is in a file with these headers; raises
    ``ImportFailed`` naming the missing required columns."""
    kind = layout.kind
    position: dict[str, tuple[int, str]] = {}
    for index, header in enumerate(headers, start=1):
        position.setdefault(normalize_header(header), (index, str(header).strip()))
    required = set(layout.required or ()) | set(MANDATORY[kind])
    columns: dict[str, Column] = {}
    missing = []
    for name, header in layout.columns.items():
        spec = FIELDS[kind].get(name)
        if spec is None:
            continue
        hit = position.get(normalize_header(header))
        if hit is None:
            if name in required:
                missing.append(header)
            continue
        columns[name] = Column(name, spec.type, f"c{hit[0]}", hit[1], name in required,
                               spec.max_length, spec.minimum, spec.maximum)
    if missing:
        raise ImportFailed("Faltan columnas obligatorias en el archivo: " +
                           ", ".join(f"«{h}»" for h in missing))
    if kind == "portfolio":
        schedule = [f for f in SCHEDULE_FIELDS if f in columns]
        if schedule and len(schedule) != len(SCHEDULE_FIELDS):
            absent = [layout.columns[f] for f in SCHEDULE_FIELDS if f not in columns]
            raise ImportFailed("Faltan columnas del plan de pagos: " +
                               ", ".join(f"«{h}»" for h in absent))
        if not schedule:
            columns.pop("instalments_paid", None)
    return Plan(job_id=job_id, kind=kind, institution_id=layout.institution_id,
                columns=columns, date_format=layout.date_format,
                decimal_separator=layout.decimal_separator,
                thousands_separator=layout.thousands_separator,
                chunk_rows=chunk_rows or CHUNK_ROWS, file_columns=len(headers),
                headers={**{c.field: c.header for c in columns.values()}})


class ImportFailed(Exception):
    """The file cannot be imported; the message (Spanish) is the job's."""


class JobGone(Exception):
    """The job's row was deleted while it ran: stop, nothing to report to."""


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
    """``data`` went through ``schemas.LayoutWrite`` (which calls ``layout_problems``)."""
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


# --- running a job -------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Progress:
    """Publishes import_progressed (and the job's counters) at most every PROGRESS_SECONDS."""

    def __init__(self, db, job_id: int, institution_id: int):
        self.db, self.job_id, self.institution_id = db, job_id, institution_id
        self.last = 0.0

    def reading(self, fraction: float, estimated_rows: int, force=False) -> None:
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        with self.db.session() as session:
            job = session.get(ImportJob, self.job_id)
            if job is None:
                raise JobGone(self.job_id)
            job.total_rows = max(estimated_rows, 0)
            job.message = f"Leyendo el archivo: {min(int(fraction * 100), 99)} %"
            self.emit(session, job)

    def emit(self, session, job) -> None:
        self.db.emit(session, "import_progressed", {
            "job_id": job.id, "institution_id": job.institution_id,
            "processed_rows": job.processed_rows, "total_rows": job.total_rows,
            "imported_rows": job.imported_rows, "rejected_rows": job.rejected_rows})


def run_job(db, job_id: int, today: date | None = None) -> str | None:
    """Import job ``job_id`` (the ``import_requested`` handler). Idempotent: a job done or
    failed is skipped; one found running (a crash) restarts from scratch, which is safe
    because every merge is an upsert and movements are unique by reference. Returns the
    final state, or None when skipped."""
    with db.session() as session:
        job = session.get(ImportJob, job_id)
        if job is None or job.state in ("done", "failed"):
            return None
        institution_id = job.institution_id
    conn = db.engine.connect()
    try:
        # one import per institution at a time (a second one waits here)
        conn.execute(text("SELECT pg_advisory_lock(:c, :i)"), {"c": LOCK_CLASS, "i": institution_id})
        conn.commit()
        with db.session() as session:
            job = session.get(ImportJob, job_id, with_for_update=True)
            if job is None or job.state in ("done", "failed"):
                return None
            layout = session.get(ImportLayout, job.layout_id)
            session.expunge(layout)
            # the day the import counts days past due from: the institution's, not the server's
            zone = session.execute(select(Institution.time_zone).where(
                Institution.id == institution_id)).scalar_one_or_none()
            job.state, job.started_at, job.finished_at = "running", _now(), None
            job.total_rows = job.processed_rows = job.imported_rows = job.rejected_rows = 0
            job.message = "Leyendo el archivo"
            session.execute(ImportProblem.__table__.delete().where(ImportProblem.job_id == job_id))
            source, size, job_kind = job.source, job.size_bytes, job.kind
        _drop_leftovers(conn, job_id)
        progress = _Progress(db, job_id, institution_id)
        timings = {}
        try:
            began = time.perf_counter()
            plan = _load(conn, job_id, layout, source, size, progress)
            timings["read"] = time.perf_counter() - began
            work = _prepare(conn, db, plan)
            timings["prepare"] = time.perf_counter() - began - timings["read"]
            state, message = _merge(db, plan, work, today or today_in(zone))
            timings["merge"] = time.perf_counter() - began - sum(timings.values())
        except ImportFailed as failure:
            state, message = "failed", str(failure)
        _finish(db, job_id, state, message)
        _remove_object(source)
        log.info("import %s (%s): %s — %s [%s]", job_id, job_kind, state, message,
                 ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        return state
    except JobGone:
        log.warning("import %s was deleted while it ran; stopped", job_id)
        return None
    except Exception as exc:
        log.exception("import %s failed", job_id)
        try:
            _finish(db, job_id, "failed", f"Error interno: {type(exc).__name__}")
        except JobGone:
            pass
        except Exception:  # the database itself is gone: the job stays running
            log.exception("could not mark import %s failed", job_id)
        return "failed"
    finally:
        try:
            conn.rollback()  # whatever failed half-way
            _drop_tables(conn, job_id)
            conn.execute(text("SELECT pg_advisory_unlock_all()"))
            conn.commit()
        except Exception:
            log.exception("could not clean up after import %s", job_id)
        conn.invalidate()  # never hand a connection with session state back to the pool
        conn.close()


def _finish(db, job_id: int, state: str, message: str) -> None:
    with db.session() as session:
        job = session.get(ImportJob, job_id, with_for_update=True)
        if job is None:
            raise JobGone(job_id)
        job.state, job.message, job.finished_at = state, message[:2000], _now()
        if state == "done":
            job.processed_rows = job.total_rows
        db.emit(session, "import_finished", {
            "job_id": job.id, "institution_id": job.institution_id, "state": state,
            "imported_rows": job.imported_rows, "rejected_rows": job.rejected_rows,
            "message": job.message})


def _remove_object(key: str) -> None:
    """The uploaded file carries personal data: it goes once the job is over."""
    try:
        storage.client().remove_object(storage.bucket(), key)
    except Exception:
        log.warning("could not remove import object %s", key, exc_info=True)


STAGING_TABLES = ("stage", "flags", "deferred")


def _drop_tables(conn, job_id: int) -> None:
    for kind in STAGING_TABLES:
        conn.execute(text(f"DROP TABLE IF EXISTS portfolio_import.{kind}_{int(job_id)}"))
    conn.commit()


def _drop_leftovers(conn, job_id: int) -> None:
    """Tables of this job (a crash) or of jobs no longer running."""
    names = conn.execute(text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'portfolio_import' AND c.relkind = 'r'")).scalars().all()
    ids = {int(m.group(1)) for name in names
           if (m := re.fullmatch(r"(?:stage|flags|deferred)_(\d+)", name))}
    running = set()
    if ids:
        running = set(conn.execute(text(
            "SELECT id FROM portfolio.import_jobs WHERE id = ANY(:ids) AND state = 'running' "
            "AND id <> :job"), {"ids": sorted(ids), "job": job_id}).scalars())
    for stale in ids - running:
        _drop_tables(conn, stale)
    conn.commit()


# --- reading the file into the staging table -------------------------------------------

def _object_chunks(key: str):
    response = storage.client().get_object(storage.bucket(), key)
    try:
        yield from response.stream(READ_BYTES)
    finally:
        response.close()
        response.release_conn()


def _load(conn, job_id: int, layout: ImportLayout, source: str, size: int,
          progress: _Progress) -> Plan:
    chunks = _object_chunks(source)
    if layout.file_format == "xlsx":
        return _load_xlsx(conn, job_id, layout, chunks, progress)
    return _load_csv(conn, job_id, layout, chunks, size, progress)


def read_header(chunks, layout: ImportLayout) -> tuple[list[str], bytes, object]:
    """The header of a CSV (decoded with the layout's encoding) and the bytes read so far;
    returns (headers, buffered bytes, the rest of ``chunks``)."""
    chunks = iter(chunks)
    buffered = b""
    while b"\n" not in buffered and len(buffered) < MAX_HEADER_BYTES:
        piece = next(chunks, None)
        if piece is None:
            break
        buffered += piece
    if not buffered.strip():
        raise ImportFailed("El archivo está vacío")
    line = buffered.split(b"\n", 1)[0]
    if b"\n" not in buffered and len(buffered) >= MAX_HEADER_BYTES:
        raise ImportFailed("No se encontró el fin del encabezado: ¿es un archivo CSV?")
    if b"\x00" in line:
        raise ImportFailed("El archivo tiene caracteres nulos: ¿está en UTF-16? Guárdelo como "
                           f"CSV en {layout.encoding}")
    codec = ENCODINGS.get(layout.encoding, ("UTF8", "utf-8-sig"))[1]
    try:
        decoded = line.rstrip(b"\r").decode(codec)
    except UnicodeDecodeError:
        raise ImportFailed(f"El encabezado no está en la codificación {layout.encoding} del "
                           f"layout: revise la codificación del archivo") from None
    headers = next(csv.reader([decoded], delimiter=layout.delimiter), [])
    headers = [h.strip() for h in headers]
    if len(headers) > MAX_COLUMNS:
        raise ImportFailed(f"El archivo tiene {len(headers)} columnas (máximo {MAX_COLUMNS})")
    if not any(headers):
        raise ImportFailed("El encabezado está vacío")
    return headers, buffered, chunks


def without_trailing_blank_lines(chunks):
    """The same bytes, except that line breaks at the very end collapse into one (an
    editor's empty last lines would otherwise be rows with missing columns)."""
    held = b""
    for piece in chunks:
        if not piece:
            continue
        body = piece.rstrip(b"\r\n")
        if not body:
            held += piece
            continue
        if held:
            yield held
        yield body if len(body) == len(piece) else piece[:len(body)]
        held = piece[len(body):]
    if held:
        yield b"\r\n" if held.startswith(b"\r\n") else held[:1]


def _copy_error(err: psycopg.Error, layout: ImportLayout) -> ImportFailed:
    """PostgreSQL's COPY error, told in the file's terms (its line is the spreadsheet row)."""
    diag = err.diag
    primary = diag.message_primary or str(err)
    where = re.search(r"line (\d+)", diag.context or "")
    row = f" (fila {where.group(1)})" if where else ""
    if err.sqlstate in ("22021", "22P05") or "invalid byte sequence" in primary \
            or "has no equivalent" in primary:
        return ImportFailed(f"El archivo no está en la codificación {layout.encoding} del "
                            f"layout{row}. Nada se importó. Detalle: {primary}")
    known = {
        "extra data after last expected column": "la fila tiene más columnas que el encabezado",
        "missing data for column": "la fila tiene menos columnas que el encabezado",
        "unterminated CSV quoted field": "hay comillas sin cerrar",
        "literal carriage return found in data": "saltos de línea mezclados",
        "literal newline found in data": "saltos de línea mezclados",
        "unquoted carriage return found in data": "saltos de línea mezclados",
        "unquoted newline found in data": "saltos de línea mezclados",
    }
    reason = next((v for k, v in known.items() if primary.startswith(k)), None)
    if reason:
        return ImportFailed(f"CSV mal formado{row}: {reason}. Nada se importó. "
                            f"Detalle: {primary}")
    return ImportFailed(f"No se pudo leer el archivo{row}. Nada se importó. Detalle: {primary}")


def _load_csv(conn, job_id, layout, chunks, size, progress) -> Plan:
    headers, buffered, rest = read_header(chunks, layout)
    plan = plan_for(job_id, layout, headers)
    header_bytes = len(buffered.split(b"\n", 1)[0]) + 1
    lines = buffered.count(b"\n") - 1
    per_row = (len(buffered) - header_bytes) / lines if lines > 0 else 0
    estimate = int((size - header_bytes) / per_row) if per_row else 0
    pg_encoding = ENCODINGS.get(layout.encoding, ("UTF8",))[0]
    copy_sql = psycopg.sql.SQL(
        "COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv, HEADER true, "
        "DELIMITER {delim}, ENCODING {enc}, FREEZE true)").format(
        table=psycopg.sql.SQL(plan.stage), cols=psycopg.sql.SQL(sql.stage_columns(plan)),
        delim=psycopg.sql.Literal(layout.delimiter), enc=psycopg.sql.Literal(pg_encoding))

    def pieces():
        yield buffered
        yield from rest

    conn.execute(text(sql.stage_ddl(plan)))
    raw = conn.connection.driver_connection
    read = 0
    try:
        with raw.cursor() as cursor:
            with cursor.copy(copy_sql) as copy:
                for piece in without_trailing_blank_lines(pieces()):
                    copy.write(piece)
                    read += len(piece)
                    progress.reading(read / size if size else 0, estimate)
            rows = cursor.rowcount
    except psycopg.Error as err:
        conn.rollback()
        raise _copy_error(err, layout) from None
    conn.commit()
    if rows <= 0:
        raise ImportFailed("El archivo no tiene filas de datos (solo el encabezado)")
    return plan


def cell_text(value, layout: ImportLayout) -> str | None:
    """An XLSX cell as the layout's CSV would write it, so the same SQL validates both:
    dates in the layout's format, numbers exact (the shortest decimal that round-trips the
    spreadsheet's double) with the layout's decimal separator."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (datetime, date)):
        return value.strftime(layout.date_format)
    if isinstance(value, dtime):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, Decimal)):
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if not number.is_finite():
            return str(value)
        if number == number.to_integral_value():
            return str(int(number))
        return format(number, "f").replace(".", layout.decimal_separator)
    return str(value)


def _load_xlsx(conn, job_id, layout, chunks, progress) -> Plan:
    import openpyxl

    with tempfile.TemporaryFile() as spool:  # a zip needs seeking: spooled to disk, not RAM
        received = 0
        for piece in chunks:
            spool.write(piece)
            received += len(piece)
        if not received:
            raise ImportFailed("El archivo está vacío")
        spool.seek(0)
        try:
            book = openpyxl.load_workbook(spool, read_only=True, data_only=True)
            sheet = book.worksheets[0]
            rows = sheet.iter_rows(values_only=True)
            header = next(rows, None)
        except Exception as exc:
            raise ImportFailed(f"No es un archivo XLSX válido ({type(exc).__name__})") from None
        if header is None or not any(v not in (None, "") for v in header):
            raise ImportFailed("La primera hoja no tiene encabezado")
        headers = ["" if v is None else str(v).strip() for v in header]
        while headers and not headers[-1]:
            headers.pop()
        if len(headers) > MAX_COLUMNS:
            raise ImportFailed(f"El archivo tiene {len(headers)} columnas (máximo {MAX_COLUMNS})")
        plan = plan_for(job_id, layout, headers)
        width = len(headers)
        estimate = max((sheet.max_row or 0) - 1, 0)
        conn.execute(text(sql.stage_ddl(plan)))
        raw = conn.connection.driver_connection
        statement = (f"COPY {plan.stage} (row_number, {sql.stage_columns(plan)}) FROM STDIN "
                     f"WITH (FREEZE true)")
        written = 0
        try:
            with raw.cursor() as cursor:
                with cursor.copy(statement) as copy:
                    for number, row in enumerate(rows, start=2):
                        values = [cell_text(v, layout) for v in row[:width]]
                        if not any(v not in (None, "") for v in values):
                            continue
                        values += [None] * (width - len(values))
                        copy.write_row([number, *values])
                        written += 1
                        if written % 2000 == 0:
                            time.sleep(0)  # let the service's other green threads run
                            progress.reading(written / estimate if estimate else 0, estimate)
        except psycopg.Error as err:
            conn.rollback()
            raise _copy_error(err, layout) from None
        finally:
            book.close()
        conn.commit()
    if not written:
        raise ImportFailed("El archivo no tiene filas de datos (solo el encabezado)")
    return plan


# --- preparing: what the chunks cannot see alone ------------------------------------------

@dataclass
class Work:
    total: int
    ranges: list            # (lo, hi) row ranges of the parallel phase
    deferred_chunks: list   # chunk numbers of the deferred (sequential) phase


def _prepare(conn, db, plan: Plan) -> Work:
    """Index the staging rows, flag duplicates and customers spread over chunks, and
    publish the exact row count."""
    conn.execute(text("SET LOCAL work_mem = '256MB'"))
    conn.execute(text("SET LOCAL jit = off"))
    conn.execute(text(f"CREATE INDEX ON {plan.stage} USING brin (row_number)"))
    total, first, last = conn.execute(text(
        f"SELECT count(*), min(row_number), max(row_number) FROM {plan.stage}")).one()
    conn.execute(text(sql.flags_sql(plan)))
    conn.execute(text(f"CREATE INDEX ON {plan.flags} (row_number)"))
    deferred_chunks = []
    if plan.kind == "portfolio" and conn.execute(text(
            f"SELECT EXISTS (SELECT 1 FROM {plan.flags} WHERE deferred)")).scalar():
        conn.execute(text(f"CREATE INDEX ON {plan.stage} (row_number)"))
        conn.execute(text(sql.deferred_sql(plan)))
        deferred_chunks = list(conn.execute(text(
            f"SELECT DISTINCT chunk FROM {plan.deferred} ORDER BY chunk")).scalars())
    conn.execute(text(f"ANALYZE {plan.flags}"))
    conn.commit()
    step = plan.chunk_rows
    ranges = [(lo, min(lo + step - 1, last)) for lo in range(first, last + 1, step)]
    with db.session() as session:
        job = session.get(ImportJob, plan.job_id, with_for_update=True)
        if job is None:
            raise JobGone(plan.job_id)
        job.total_rows, job.message = total, "Importando"
        db.emit(session, "import_progressed", {
            "job_id": job.id, "institution_id": job.institution_id, "processed_rows": 0,
            "total_rows": total, "imported_rows": 0, "rejected_rows": 0})
    return Work(total, ranges, deferred_chunks)


# --- merging -------------------------------------------------------------------------------

RETRYABLE = {"40P01", "40001", "23505"}  # deadlock, serialization, a concurrent insert


class _Room:
    """How many more report lines may be stored (MAX_PROBLEMS per job), across workers."""

    def __init__(self, size: int):
        import threading

        self.left, self.lock = size, threading.Lock()

    def take(self, wanted: int) -> int:
        with self.lock:
            granted = max(min(wanted, self.left), 0)
            self.left -= granted
            return granted


#: the tables each kind of import writes (their planner statistics are kept current)
TARGET_TABLES = {
    "portfolio": ("accounts", "debtors", "phones", "emails", "addresses", "guarantors",
                  "instalments"),
    "payments": ("accounts", "movements", "instalments"),
}


class _Statistics:
    """ANALYZE the tables an import writes when it starts and each time it has added as
    many rows as they had at the last ANALYZE: an import that fills a table from empty
    would otherwise be planned with the statistics of the empty table (autovacuum lags)."""

    def __init__(self, engine, kind: str):
        import threading

        self.engine, self.tables = engine, TARGET_TABLES[kind]
        self.lock, self.busy = threading.Lock(), False
        self.size, self.added = 0, 0
        self.refresh()

    def refresh(self) -> None:
        names = ", ".join(f"portfolio.{t}" for t in self.tables)
        with self.engine.begin() as conn:
            conn.execute(text(f"ANALYZE {names}"))
            size = conn.execute(text("SELECT GREATEST(reltuples, 0) FROM pg_class WHERE oid = "
                                     "'portfolio.accounts'::regclass")).scalar()
        with self.lock:
            self.size, self.added, self.busy = int(size or 0), 0, False

    def grew(self, rows: int) -> None:
        with self.lock:
            self.added += rows
            due = not self.busy and self.added > max(self.size, 2 * CHUNK_ROWS)
            self.busy = self.busy or due
        if due:
            self.refresh()


def _merge(db, plan: Plan, work: Work, today: date) -> tuple[str, str]:
    """Every chunk: the row ranges ``WORKERS`` at a time, then the deferred ones in order."""
    statements = (sql.portfolio_merge(plan) if plan.kind == "portfolio"
                  else sql.payments_merge(plan))
    room = _Room(MAX_PROBLEMS)
    statistics = _Statistics(db.engine, plan.kind)

    def attempt(where: dict, deferred: bool):
        for attempt_no in (1, 2):
            try:
                result = _merge_chunk(db, plan, statements, where, deferred, today, room)
                statistics.grew(plan.chunk_rows)
                return result, None
            except DBAPIError as err:
                state = getattr(err.orig, "sqlstate", None)
                if attempt_no == 1 and state in RETRYABLE:
                    log.warning("import %s chunk %s: %s, retrying", plan.job_id, where, state)
                    continue
                log.exception("import %s chunk %s failed", plan.job_id, where)
                return None, _db_message(err)
            except Exception as err:  # reported like a database error; the others go on
                log.exception("import %s chunk %s failed", plan.job_id, where)
                return None, f"{type(err).__name__}: {err}"

    jobs = [({"lo": lo, "hi": hi}, False) for lo, hi in work.ranges]
    if WORKERS > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            results = list(pool.map(lambda item: attempt(*item), jobs))
    else:
        results = [attempt(*item) for item in jobs]
    deferred = [({"chunk": chunk}, True) for chunk in work.deferred_chunks]
    results += [attempt(*item) for item in deferred]

    failed, new_payments, lost = [], 0, 0
    for (where, is_deferred), (new, error) in zip(jobs + deferred, results):
        if error is None:
            new_payments += new
        else:
            failed.append(error)
            lost += _report_failed_chunk(db, plan, where, is_deferred, error)
    with db.session() as session:
        job = session.get(ImportJob, plan.job_id)
        if job is None:
            raise JobGone(plan.job_id)
        imported, rejected = job.imported_rows, job.rejected_rows
    message = f"{imported} filas importadas, {rejected} con problemas"
    if plan.kind == "payments":
        message += f"; {new_payments} pagos nuevos, {imported - new_payments} ya registrados"
    if failed:
        return "failed", (f"{message}. {lost} filas no se guardaron por un error "
                          f"(ver el reporte): {failed[0]}")
    return "done", message


def _db_message(err: DBAPIError) -> str:
    orig = err.orig
    diag = getattr(orig, "diag", None)
    return (getattr(diag, "message_primary", None) or str(orig)).splitlines()[0][:300]


def _merge_chunk(db, plan: Plan, statements: list[str], where: dict, deferred: bool,
                 today: date, room: _Room) -> int:
    """One chunk, one transaction: parse and validate its rows, report their problems,
    merge the valid ones, refresh aging, announce. Returns the new payments' count."""
    occurred = {"occurred_at": _now().isoformat(), "headers": "{}"}
    with db.session() as session:
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL jit = off"))  # compiling costs more than it saves here
        # A chunk looks up a few thousand keys in tables of millions: index probes, never a
        # scan of the whole table per chunk (let alone per row). The default costs assume
        # uncached disks and a table an import fills from empty has stale statistics (see
        # _Statistics): without these settings PostgreSQL picked nested loops over
        # sequential scans and an import of 1M rows into empty tables went quadratic. The
        # address and guarantor checks and the accounts_changed payload are per-row probes
        # (import_sql.PROBE), and the chunk's temporary tables are ANALYZEd once built.
        session.execute(text("SET LOCAL random_page_cost = 1.1"))
        session.execute(text("SET LOCAL enable_seqscan = off"))
        session.execute(text(sql.parse_sql(plan, deferred)), where)
        rows, rejected, problems = session.execute(text(sql.COUNT_SQL)).one()
        if problems:
            session.execute(text(sql.problems_sql(plan)),
                            {"room": room.take(problems), "headers": json.dumps(plan.headers)})
        new_payments = 0
        if rows > rejected:
            for statement in statements:
                session.execute(text(statement))
            ids = session.execute(text("SELECT DISTINCT account_id FROM imp_accounts")).scalars().all()
            if ids:
                aging.refresh(session, today, account_ids=list(ids))
                if plan.kind == "payments":
                    new_payments = session.execute(text(sql.PAYMENT_RECEIVED_SQL),
                                                   occurred).rowcount
                session.execute(text(sql.STAGE_CHANGED_SQL), occurred)
                session.execute(text(sql.ACCOUNTS_CHANGED_SQL), occurred)
                session.info["outbox_pending"] = True  # wake the relay at commit
        if rows:
            job = session.execute(text(
                "UPDATE portfolio.import_jobs SET processed_rows = processed_rows + :rows, "
                "imported_rows = imported_rows + :valid, rejected_rows = rejected_rows + :bad "
                "WHERE id = :job RETURNING id, institution_id, processed_rows, total_rows, "
                "imported_rows, rejected_rows"),
                {"rows": rows, "valid": rows - rejected, "bad": rejected,
                 "job": plan.job_id}).one()
            db.emit(session, "import_progressed", {
                "job_id": job.id, "institution_id": job.institution_id,
                "processed_rows": job.processed_rows, "total_rows": job.total_rows,
                "imported_rows": job.imported_rows, "rejected_rows": job.rejected_rows})
        return new_payments


def _report_failed_chunk(db, plan: Plan, where: dict, deferred: bool, error: str) -> int:
    """Every row of a chunk that rolled back goes into the report; returns how many."""
    with db.session() as session:
        result = session.execute(text(
            f"INSERT INTO portfolio.import_problems (job_id, row_number, \"column\", problem) "
            f"SELECT :job, s.row_number, '', left(:problem, 300) "
            f"{sql.chunk_rows_sql(plan, deferred)}"),
            {"job": plan.job_id, **where,
             "problem": f"No se importó: falló el bloque que la contenía ({error})"})
        session.execute(text(
            "UPDATE portfolio.import_jobs SET processed_rows = processed_rows + :n, "
            "rejected_rows = rejected_rows + :n WHERE id = :job"),
            {"n": result.rowcount, "job": plan.job_id})
        return result.rowcount


# --- demo layouts ----------------------------------------------------------------------------

DEMO_DIR = Path(__file__).resolve().parents[3] / "deploy" / "demo"

#: (institution id, layout name, demo file in deploy/demo, layout) — in import order
#: (each payments file pays accounts of its institution's portfolio file, listed before it);
#: every demo institution has a payments layout: the demo's past (``recaudo seed-live``)
#: imports the payments that keep promises through it
DEMO_LAYOUTS = [
    (1, "Cartera BANCOMER (CSV)", "bancomer_cartera.csv", {
        "kind": "portfolio", "file_format": "csv", "encoding": "utf-8", "delimiter": ",",
        "date_format": "%Y-%m-%d", "decimal_separator": ".", "thousands_separator": "",
        "columns": {
            "customer_number": "NUM_CLIENTE", "name": "NOMBRE", "kind": "TIPO_PERSONA",
            "tax_id": "RFC", "national_id": "CURP", "birth_date": "FECHA_NACIMIENTO",
            "account_number": "NUM_CUENTA", "product": "PRODUCTO",
            "original_amount": "MONTO_ORIGINAL", "balance": "SALDO",
            "opened_on": "FECHA_APERTURA", "phone1": "TELEFONO_CASA",
            "phone2": "TELEFONO_CELULAR", "email": "CORREO", "street": "CALLE",
            "neighborhood": "COLONIA", "municipality": "MUNICIPIO", "state": "ESTADO",
            "postal_code": "CP", "instalment_count": "PLAZO_MESES",
            "instalment_amount": "MENSUALIDAD", "first_due_date": "PRIMER_VENCIMIENTO",
            "instalments_paid": "MENSUALIDADES_PAGADAS",
            "guarantor_name": "AVAL", "guarantor_phone": "TELEFONO_AVAL"},
        "required": ["phone2"]}),
    (1, "Pagos BANCOMER (CSV)", "bancomer_pagos.csv", {
        "kind": "payments", "file_format": "csv", "encoding": "utf-8", "delimiter": ",",
        "date_format": "%Y-%m-%d", "decimal_separator": ".", "thousands_separator": "",
        "columns": {"account_number": "CUENTA", "amount": "IMPORTE",
                    "value_date": "FECHA_PAGO", "reference": "REFERENCIA"},
        "required": []}),
    (2, "Cartera CREDIMAS (CSV Latin-1)", "credimas_cartera.csv", {
        "kind": "portfolio", "file_format": "csv", "encoding": "latin-1", "delimiter": ";",
        "date_format": "%d/%m/%Y", "decimal_separator": ",", "thousands_separator": ".",
        "columns": {
            "customer_number": "No. Cliente", "name": "Nombre del acreditado",
            "tax_id": "R.F.C.", "account_number": "No. Crédito", "product": "Producto",
            "balance": "Saldo total", "overdue_amount": "Saldo vencido",
            "days_past_due": "Días de atraso", "stage": "Situación",
            "opened_on": "Fecha de disposición", "phone1": "Teléfono",
            "email": "Correo electrónico", "street": "Domicilio", "neighborhood": "Colonia",
            "municipality": "Municipio", "state": "Estado", "postal_code": "C.P."},
        "required": []}),
    (2, "Pagos CREDIMAS (CSV Latin-1)", "credimas_pagos.csv", {
        "kind": "payments", "file_format": "csv", "encoding": "latin-1", "delimiter": ";",
        "date_format": "%d/%m/%Y", "decimal_separator": ",", "thousands_separator": ".",
        "columns": {"account_number": "No. Crédito", "amount": "Importe pagado",
                    "value_date": "Fecha de pago", "reference": "Referencia"},
        "required": []}),
    (3, "Cartera AUTOFIN (XLSX)", "autofin_cartera.xlsx", {
        "kind": "portfolio", "file_format": "xlsx", "encoding": "utf-8", "delimiter": ",",
        "date_format": "%d/%m/%Y", "decimal_separator": ".", "thousands_separator": "",
        "columns": {
            "customer_number": "Cliente", "name": "Nombre", "kind": "Tipo",
            "tax_id": "RFC", "account_number": "Contrato", "product": "Vehículo",
            "original_amount": "Precio financiado", "balance": "Saldo insoluto",
            "opened_on": "Fecha contrato", "phone1": "Celular", "email": "Email",
            "street": "Dirección", "municipality": "Ciudad", "state": "Estado",
            "postal_code": "CP", "instalment_count": "Plazo",
            "instalment_amount": "Pago mensual", "first_due_date": "Primer pago",
            "instalments_paid": "Pagos realizados", "guarantor_name": "Aval"},
        "required": []}),
    (3, "Pagos AUTOFIN (XLSX)", "autofin_pagos.xlsx", {
        "kind": "payments", "file_format": "xlsx", "encoding": "utf-8", "delimiter": ",",
        "date_format": "%d/%m/%Y", "decimal_separator": ".", "thousands_separator": "",
        "columns": {"account_number": "Contrato", "amount": "Importe",
                    "value_date": "Fecha de pago", "reference": "Folio"},
        "required": []}),
]


def seed_layouts(engine=None) -> int:
    """The demo layouts of institutions 1-3 (idempotent: existing names are kept).
    Returns how many were created."""
    from sqlalchemy.dialects.postgresql import insert

    from recaudo_common.db import make_engine

    own = engine is None
    engine = engine or make_engine(pool_size=1)
    created = 0
    try:
        with engine.begin() as conn:
            present = set(conn.execute(select(Institution.id)).scalars())
            for institution_id, name, _, layout in DEMO_LAYOUTS:
                if institution_id not in present:
                    continue
                problems = layout_problems(layout)
                assert not problems, (name, problems)
                values = dict(layout, institution_id=institution_id, name=name,
                              required=sorted(set(layout["required"])
                                              | set(MANDATORY[layout["kind"]])))
                result = conn.execute(insert(ImportLayout).values(**values)
                                      .on_conflict_do_nothing().returning(ImportLayout.id))
                created += result.first() is not None
    finally:
        if own:
            engine.dispose()
    return created


# --- running an import without the service (CLI, demo seed) ----------------------------------

class LocalDatabase:
    """What ``run_job`` needs of ``self.db``, for a process that is not the service: the
    events it emits wait in the outbox until the service's relay publishes them."""

    def __init__(self, engine):
        from sqlalchemy.orm import sessionmaker

        from .models import Base

        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._outbox = Base.outbox

    def session(self):
        from contextlib import contextmanager

        @contextmanager
        def scope():
            session = self._sessions()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        return scope()

    def emit(self, session, event_type: str, payload: dict):
        from recaudo_common.contracts import schema_for

        event_id = uuid.uuid4()
        body = schema_for("portfolio", event_type).dump(
            dict(payload, event_id=event_id, occurred_at=_now()))
        session.execute(self._outbox.insert().values(event_id=event_id, event_type=event_type,
                                                     payload=body, headers={}))
        return event_id


def import_file(path, layout_id: int, created_by: int, engine=None) -> ImportJob:
    """Upload a local file to S3 and import it now, in this process (``recaudo`` CLI and
    the demo seed); returns the finished job."""
    from recaudo_common.db import make_engine

    own = engine is None
    engine = engine or make_engine(pool_size=WORKERS + 1)
    db = LocalDatabase(engine)
    path = Path(path)
    everything = Identity(user_id=created_by, username="cli", profile="cli",
                          permissions=frozenset({"portfolio.import"}), institutions=None)
    try:
        with db.session() as session:
            job, _ = create_job(session, everything, {"layout_id": layout_id,
                                                      "file_name": path.name,
                                                      "size_bytes": path.stat().st_size})
            job_id, source = job.id, job.source
        storage.client().fput_object(storage.bucket(), source, str(path))
        with db.session() as session:
            request_job(session, everything, job_id)
        run_job(db, job_id)
        with db.session() as session:
            return session.get(ImportJob, job_id)
    finally:
        if own:
            engine.dispose()
