"""Merging a staged file: first what the chunks cannot see alone (keys repeated in the
file, customers whose rows fall in several chunks), then chunk by chunk (``CHUNK_ROWS``
rows, ``WORKERS`` at a time, each in one transaction on its own connection) the rows
parsed, checked, reported and merged by ``import_sql``'s statements, aging refreshed and
the events announced; the customers spread over chunks last, one chunk at a time."""
from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from . import aging, import_read
from . import import_sql as sql
from .import_read import JobGone
from .import_sql import Plan
from .models import ImportJob

log = logging.getLogger(__name__)

#: chunks merged at the same time, each on its own connection
WORKERS = 2

#: validation report lines stored per job (the counts stay exact beyond it)
MAX_PROBLEMS = 500_000


@dataclass
class Work:
    total: int
    ranges: list            # (lo, hi) row ranges of the parallel phase
    deferred_chunks: list   # chunk numbers of the deferred (sequential) phase


def prepare(conn, db, plan: Plan) -> Work:
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


RETRYABLE = {"40P01", "40001", "23505"}  # deadlock, serialization, a concurrent insert


class _Room:
    """How many more report lines may be stored (MAX_PROBLEMS per job), across workers."""

    def __init__(self, size: int):
        
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
            due = not self.busy and self.added > max(self.size, 2 * import_read.CHUNK_ROWS)
            self.busy = self.busy or due
        if due:
            self.refresh()


def merge(db, plan: Plan, work: Work, today: date) -> tuple[str, str]:
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
    occurred = {"occurred_at": datetime.now(timezone.utc).isoformat(), "headers": "{}"}
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
