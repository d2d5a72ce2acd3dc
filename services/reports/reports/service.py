"""Entrypoints of the reports service: report schedules (each user their own) and the
timer that runs the due ones.

The figures are never this service's: a run asks the service that owns them, with the
schedule owner's identity as it is at run time (``auth.identity_for``), so a schedule
can never show more than its owner may see now.
"""
from __future__ import annotations

import base64
import logging
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from nameko.exceptions import RemoteError
from nameko.timer import timer
from sqlalchemy import delete, func, select

from recaudo_common import references, report_catalogue
from recaudo_common.acting import ActingRpc
from recaudo_common.db import Database
from recaudo_common.errors import DomainError, NotFound
from recaudo_common.identity import Identity
from recaudo_common.service import ServiceBase, rpc
from recaudo_common.validation import load

from . import schedules
from .models import KEEP_RUNS, Base, Run, Schedule
from .contracts import RunOut, ScheduleOut, ScheduleWrite

log = logging.getLogger(__name__)
DUE_BATCH = 20


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ReportsService(ServiceBase):
    name = "reports"
    db = Database(Base)
    acting = ActingRpc()

    # --- schedules ------------------------------------------------------------------------------

    def _own(self, session, identity: Identity, schedule_id, lock=False) -> Schedule:
        schedule = session.get(Schedule, schedule_id, with_for_update=lock or None) \
            if isinstance(schedule_id, int) and not isinstance(schedule_id, bool) else None
        if schedule is None or schedule.owner_id != identity.user_id:
            raise NotFound("Envío programado no encontrado")
        return schedule

    def _out(self, session, schedule: Schedule) -> dict:
        last = session.execute(select(Run).where(Run.schedule_id == schedule.id)
                               .order_by(Run.id.desc()).limit(1)).scalar_one_or_none()
        return {**ScheduleOut().dump(schedule), "last_run": RunOut().dump(last) if last else None}

    @rpc
    def list_schedules(self):
        """The caller's own scheduled reports, with how each last went."""
        identity = self.caller.require("reports.view")
        with self.db.session() as session:
            rows = session.execute(select(Schedule).where(Schedule.owner_id == identity.user_id)
                                   .order_by(Schedule.id)).scalars().all()
            return [self._out(session, s) for s in rows]

    @rpc
    def save_schedule(self, data, schedule_id=None):
        """Create or change a schedule. The report is asked once now with the caller's own
        identity, so a filter the owning service does not know, or an institution out of
        the caller's scope, is refused here rather than at 7 a.m. tomorrow."""
        identity = self.caller.require("reports.view")
        data = schedules.normalise(load(ScheduleWrite(), data))
        if data["institution_id"] is not None:
            references.require_institution(self.acting.caller.portfolio, identity,
                                           data["institution_id"])
        probe = Schedule(**{k: v for k, v in data.items() if k != "active"})
        first, last = schedules.period(data["frequency"],
                                       _now().astimezone(ZoneInfo(data["time_zone"])).date())
        report_catalogue.run(self.acting.caller, report_catalogue.REPORTS[data["report"]],
                      schedules.query_for(probe, first, last))
        with self.db.session() as session:
            if schedule_id is None:
                schedule = Schedule(owner_id=identity.user_id, **data)
                session.add(schedule)
            else:
                schedule = self._own(session, identity, schedule_id, lock=True)
                for name, value in data.items():
                    setattr(schedule, name, value)
                schedule.updated_at = func.now()
            schedule.next_run_at = schedules.next_run(schedule, _now())
            session.flush()
            session.refresh(schedule)
            return self._out(session, schedule)

    @rpc
    def delete_schedule(self, schedule_id):
        identity = self.caller.require("reports.view")
        with self.db.session() as session:
            session.delete(self._own(session, identity, schedule_id, lock=True))

    @rpc
    def list_runs(self, schedule_id):
        identity = self.caller.require("reports.view")
        with self.db.session() as session:
            self._own(session, identity, schedule_id)
            rows = session.execute(select(Run).where(Run.schedule_id == schedule_id)
                                   .order_by(Run.id.desc())).scalars().all()
            return RunOut(many=True).dump(rows)

    @rpc
    def run_file(self, run_id):
        """A run's file (base64), for its schedule's owner."""
        identity = self.caller.require("reports.view")
        with self.db.session() as session:
            run = session.get(Run, run_id) if isinstance(run_id, int) else None
            if run is None or run.content is None:
                raise NotFound("Archivo no encontrado")
            self._own(session, identity, run.schedule_id)
            return {"filename": run.filename, "content_type": run.content_type,
                    "content_b64": base64.b64encode(run.content).decode()}

    @rpc
    def run_schedule(self, schedule_id):
        """Run a schedule now, for the period it would cover today, as the caller (its
        owner); its next regular run does not move."""
        identity = self.caller.require("reports.view")
        with self.db.session() as session:
            schedule = self._own(session, identity, schedule_id)
            zone = ZoneInfo(schedule.time_zone)
        return self._execute(schedule_id, _now().astimezone(zone).date(),
                             token=self.acting.caller_token)

    # --- the runner -------------------------------------------------------------------------------

    @timer(interval=60)
    def run_due(self):
        """Every minute: claim the due schedules (moving each to its next time first, so a
        crash mid-run does not repeat a mailing), then run each as its owner."""
        now = _now()
        with self.db.session() as session:
            due = session.execute(
                select(Schedule).where(Schedule.active, Schedule.next_run_at <= now)
                .order_by(Schedule.next_run_at).limit(DUE_BATCH)
                .with_for_update(skip_locked=True)).scalars().all()
            claimed = []
            for schedule in due:
                day = schedule.next_run_at.astimezone(ZoneInfo(schedule.time_zone)).date()
                schedule.next_run_at = schedules.next_run(schedule, now)
                claimed.append((schedule.id, day))
        for schedule_id, day in claimed:
            try:
                self._execute(schedule_id, day)
            except Exception:   # one schedule's failure never stops the others
                log.exception("scheduled report %s failed", schedule_id)

    def _execute(self, schedule_id: int, day, token: str | None = None) -> dict:
        with self.db.session() as session:
            schedule = session.get(Schedule, schedule_id)
            session.expunge(schedule)
        first, last = schedules.period(schedule.frequency, day)
        run = {"schedule_id": schedule_id, "period_from": first, "period_to": last}
        try:
            if token is None:
                token = self.acting.system.auth.identity_for(schedule.owner_id)["identity"]
        except NotFound:
            with self.db.session() as session:   # the owner is gone or disabled: stop
                session.get(Schedule, schedule_id).active = False
            return self._record({**run, "state": "failed",
                                 "message": "Quien lo programó ya no está activo; se detuvo."})
        owner = self.acting.as_(token)
        try:
            rendered = schedules.render(owner, schedule, first, last)
        except DomainError as exc:
            return self._record({**run, "state": "failed",
                                 "message": f"El reporte fue rechazado: {exc.message}"})
        run.update(filename=rendered["filename"], content_type=rendered["content_type"],
                   content=rendered["content"], size_bytes=len(rendered["content"]))
        try:
            owner.messaging.send_report({**schedules.email(schedule, rendered, first, last),
                                         "idempotency_key": f"report-{schedule_id}-{first}-{last}"})
        except RemoteError as exc:
            return self._record({**run, "state": "failed", "message": str(exc)[:500]})
        except DomainError as exc:
            return self._record({**run, "state": "failed",
                                 "message": f"Mensajería lo rechazó: {exc.message}"})
        return self._record({**run, "state": "sent",
                             "message": f"Enviado a {len(schedule.recipients)} destinatarios"})

    def _record(self, values: dict) -> dict:
        """Keep the run (and only the last KEEP_RUNS of its schedule)."""
        with self.db.session() as session:
            run = Run(**values)
            session.add(run)
            session.flush()
            keep = select(Run.id).where(Run.schedule_id == run.schedule_id) \
                .order_by(Run.id.desc()).limit(KEEP_RUNS)
            session.execute(delete(Run).where(Run.schedule_id == run.schedule_id,
                                              Run.id.not_in(keep)))
            return RunOut().dump(run)
