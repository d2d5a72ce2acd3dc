"""Running an import job: the ``import_requested`` handler's work (one import per
institution at a time, an advisory lock), from the staged file to the job's end state,
publishing ``import_progressed`` as it goes; and ``import_file``, the same run in this
process for the command line and the demo's past, through the same ``ServiceDatabase``
(its events wait in the outbox for the running service's relay)."""
from __future__ import annotations

import logging
import re
import time
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import select, text

from recaudo_common import storage
from recaudo_common.db import Database, make_engine
from recaudo_common.identity import Identity
from recaudo_common.localtime import today_in

from . import import_merge, import_read
from .import_merge import WORKERS
from .import_read import ImportFailed, JobGone
from .imports import create_job, request_job
from .models import Base, ImportJob, ImportLayout, ImportProblem, Institution

log = logging.getLogger(__name__)

#: how often progress is published while the file is read
PROGRESS_SECONDS = 1.0

#: advisory lock class: one import at a time per institution
LOCK_CLASS = 0x52454341


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
            plan = import_read.load_file(conn, job_id, layout, source, size, progress)
            timings["read"] = time.perf_counter() - began
            work = import_merge.prepare(conn, db, plan)
            timings["prepare"] = time.perf_counter() - began - timings["read"]
            state, message = import_merge.merge(db, plan, work, today or today_in(zone))
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


def import_file(path, layout_id: int, created_by: int, engine=None) -> ImportJob:
    """Upload a local file to S3 and import it now, in this process (``recaudo`` CLI and
    the demo seed), through the service's own ``ServiceDatabase``; returns the finished job."""
    own = engine is None
    engine = engine or make_engine(pool_size=WORKERS + 1)
    db = Database.outside(Base, engine, "portfolio")
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
