"""Reading an import's file into its staging table: the header found and matched to the
layout (``plan_for``), then CSV bytes straight into PostgreSQL ``COPY`` (the server decodes
and parses them) or XLSX rows streamed by openpyxl into ``COPY``. A file that cannot be
read fails the job (``ImportFailed``) naming what PostgreSQL or openpyxl said, nothing
imported."""
from __future__ import annotations

import csv
import re
import tempfile
import time
from datetime import date, datetime, time as dtime
from decimal import Decimal

import psycopg
from sqlalchemy import text

from recaudo_common import storage

from . import import_sql as sql
from .contracts import ENCODINGS, FIELDS, MANDATORY, SCHEDULE_FIELDS, normalize_header
from .import_sql import Column, Plan
from .models import ImportLayout


#: valid rows merged per transaction (and announced per accounts_changed event)
CHUNK_ROWS = 20_000

#: bytes read from S3 at a time
READ_BYTES = 1 << 20

#: a file's widest header, in columns and in bytes (beyond: not a CSV of ours)
MAX_COLUMNS = 500
MAX_HEADER_BYTES = 256 * 1024


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


def _object_chunks(key: str):
    response = storage.client().get_object(storage.bucket(), key)
    try:
        yield from response.stream(READ_BYTES)
    finally:
        response.close()
        response.release_conn()


def load_file(conn, job_id: int, layout: ImportLayout, source: str, size: int,
          progress) -> Plan:
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
