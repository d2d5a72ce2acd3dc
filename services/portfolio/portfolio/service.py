"""Entrypoints of the portfolio service."""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone

from nameko.timer import timer
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert

from recaudo_common import contracts
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.service import ServiceBase, event_handler, rpc
from recaudo_common.validation import load

from . import aging, contacts, matching, payment_webhooks, payments, reports, search
from .models import (Account, AgingSnapshot, Base, CallbackHolder, Debtor, Institution, Phone,
                     Status)
from .contracts import (AccountFactsOut, AccountOut, AccountPage, AccountQuery, AccountUpdate,
                        ContactView, DebtorView, DoNotContactChangeOut, DoNotContactWrite,
                        InstitutionOut, NotesUpdate, StatusOut, StatusWrite)
from .contracts import (NotificationOut, NotificationPage, PaymentInstructionsOut,
                        PaymentSettingsOut, PaymentSettingsWrite, ProviderOut, ProviderWrite,
                        TriageAssign, TriageDismiss, TriageQuery)
from .scope import institution_clause
from . import import_run, imports
from .contracts import AgingReportQuery, RollRateQuery, RollupRebuild
from .contracts import (ImportCreate, ImportCreated, ImportJobOut, ImportJobPage, ImportProblemPage,
                        ImportQuery, LayoutOut, LayoutWrite)
from .portal_rpc import PortalEntrypoints

log = logging.getLogger(__name__)
#: one instance each for every call: their nested schemas are built once, not per call
CONTACT_VIEW = ContactView()
DEBTOR_VIEW = DebtorView()


class PortfolioService(PortalEntrypoints, ServiceBase):
    name = "portfolio"
    db = Database(Base)

    # --- institutions and their catalogues ------------------------------------------

    @rpc
    def list_institutions(self):
        """The institutions the caller may act for (a creditor sees only its own)."""
        identity = self.caller.identity
        with self.db.session() as session:
            rows = session.execute(select(Institution)
                                   .where(institution_clause(identity, Institution.id))
                                   .order_by(Institution.name)).scalars().all()
            return InstitutionOut(many=True).dump(rows)

    @rpc
    def get_institution(self, institution_id):
        identity = self.caller.identity
        with self.db.session() as session:
            institution = session.get(Institution, institution_id)
            if institution is None or not identity.may_access_institution(institution.id):
                raise NotFound("Institución no encontrada")
            return InstitutionOut().dump(institution)

    @rpc
    def list_statuses(self, institution_id):
        identity = self.caller.identity
        identity.require_institution(institution_id)
        with self.db.session() as session:
            rows = session.execute(select(Status).where(Status.institution_id == institution_id)
                                   .order_by(Status.sort_order, Status.name)).scalars().all()
            return StatusOut(many=True).dump(rows)

    @rpc
    def save_status(self, data, status_id=None):
        """Add or edit a status of an institution's catalogue."""
        identity = self.caller.require("institutions.manage")
        data = load(StatusWrite(), data)
        identity.require_institution(data["institution_id"])
        with self.db.session() as session:
            if session.get(Institution, data["institution_id"]) is None:
                raise NotFound("Institución no encontrada", {"institution_id": ["No existe"]})
            clash = session.execute(select(Status.id).where(
                Status.institution_id == data["institution_id"], Status.code == data["code"],
                Status.id != (status_id or 0))).first()
            if clash:
                raise Conflict("Ya existe ese código", {"code": ["Ya existe en esta institución"]})
            if status_id is None:
                status = Status(**data)
                session.add(status)
            else:
                status = session.get(Status, status_id)
                if status is None or not identity.may_access_institution(status.institution_id):
                    raise NotFound("Estatus no encontrado")
                for field, value in data.items():
                    setattr(status, field, value)
            session.flush()
            return StatusOut().dump(status)

    # --- the portfolio --------------------------------------------------------------------

    @rpc
    def list_accounts(self, query=None):
        """"Ver cartera": filters, free-text search, sorting and pages, within scope."""
        identity = self.caller.identity
        query = load(AccountQuery(), query or {})
        with self.db.session() as session:
            return AccountPage().dump(search.list_accounts(session, identity, query))

    @rpc
    def get_debtor(self, debtor_id):
        """The debtor's 360° view."""
        identity = self.caller.identity
        with self.db.session() as session:
            return DEBTOR_VIEW.dump(search.get_debtor(session, identity, debtor_id))

    @rpc
    def debtor_scope(self, debtor_id):
        """The debtor's institution, name and the accounts the caller may see, or NotFound."""
        identity = self.caller.identity
        with self.db.session() as session:
            return search.debtor_scope(session, identity, debtor_id)

    @rpc
    def get_account(self, account_id):
        identity = self.caller.identity
        with self.db.session() as session:
            return AccountOut().dump(search.visible_account(session, identity, account_id))

    @rpc
    def get_contact_view(self, account_id):
        """The account (as ``get_account``, same scope) with its debtor, institution and
        contacts: what logging a contact checks against the contact policy, in one call."""
        identity = self.caller.identity
        with self.db.session() as session:
            return CONTACT_VIEW.dump(search.contact_view(session, identity, account_id))

    @rpc
    def update_account(self, account_id, data):
        """Stage, status, collector or lawyer set by hand (litigation is set here)."""
        identity = self.caller.require("portfolio.write")
        data = load(AccountUpdate(), data)
        with self.db.session() as session:
            account = search.visible_account(session, identity, account_id)
            if data.get("status_id") is not None:
                status = session.get(Status, data["status_id"])
                if status is None or status.institution_id != account.institution_id:
                    raise InvalidInput("Estatus de otra institución",
                                       {"status_id": ["No pertenece a la institución"]})
            old_stage = account.stage
            for field, value in data.items():
                setattr(account, field, value)
            session.flush()
            if account.stage != old_stage:
                self.db.emit(session, "stage_changed", {
                    "account_id": account.id, "institution_id": account.institution_id,
                    "old_stage": old_stage, "new_stage": account.stage})
            self.db.emit(session, "accounts_changed",
                         {"accounts": aging.facts(session, [account.id])})
            return AccountOut().dump(account)

    @rpc
    def update_notes(self, debtor_id, data):
        identity = self.caller.require("portfolio.write")
        data = load(NotesUpdate(), data)
        with self.db.session() as session:
            search.debtor_scope(session, identity, debtor_id)  # in scope, or NotFound
            session.get(Debtor, debtor_id).notes = data["notes"]

    @rpc
    def set_do_not_contact(self, debtor_id, data):
        """Mark one of the debtor's phones, e-mails or addresses do-not-contact (or lift
        the mark) with a reason, kept in its history; the queues learn it with the
        accounts' facts (``accounts_changed``: a debtor with no phone left to call)."""
        identity = self.caller.identity
        data = load(DoNotContactWrite(), data)
        contacts.require_permission(identity, data["do_not_contact"])
        with self.db.session() as session:
            search.debtor_scope(session, identity, debtor_id)  # in scope, or NotFound
            change = contacts.set_flag(session, identity, debtor_id, data)
            account_ids = session.execute(select(Account.id).where(
                Account.debtor_id == debtor_id)).scalars().all()
            if account_ids:
                self.db.emit(session, "accounts_changed",
                             {"accounts": aging.facts(session, account_ids)})
            return DoNotContactChangeOut().dump(change)

    # --- payments from outside the files (payments.py) --------------------------------------

    @rpc
    def payment_instructions(self, account_id):
        """How to pay an account: its reference (SPEI concept, OXXO-style reference), the
        institution's CLABE, bank, beneficiary and convenio, the amount due. Whoever may
        read the account (the debtor portal too)."""
        identity = self.caller.identity
        with self.db.session() as session:
            return PaymentInstructionsOut().dump(payments.instructions(session, identity,
                                                                        account_id))

    @rpc
    def get_payment_settings(self, institution_id):
        identity = self.caller.require("institutions.manage")
        with self.db.session() as session:
            return PaymentSettingsOut().dump(payments.get_settings(session, identity,
                                                                   institution_id))

    @rpc
    def save_payment_settings(self, institution_id, data):
        """The institution's collection CLABE, bank, beneficiary and convenio."""
        identity = self.caller.require("institutions.manage")
        data = load(PaymentSettingsWrite(), data)
        with self.db.session() as session:
            return PaymentSettingsOut().dump(payments.save_settings(session, identity,
                                                                    institution_id, data))

    @rpc
    def receive_payment_webhook(self, provider, body, timestamp, signature):
        """A provider's signed payment (payment_webhooks.py). The signature is the
        credential (providers cannot log in), so no caller identity is required."""
        with self.db.session() as session:
            return payment_webhooks.receive(session, provider, body, timestamp, signature)

    @rpc
    def list_payment_providers(self):
        identity = self.caller.require("institutions.manage")
        with self.db.session() as session:
            return ProviderOut(many=True).dump(payment_webhooks.list_providers(session, identity))

    @rpc
    def save_payment_provider(self, data, provider_id=None):
        """Add or edit a payment provider (its secret is sealed and never shown back)."""
        identity = self.caller.require("institutions.manage")
        data = load(ProviderWrite(), data)
        with self.db.session() as session:
            return ProviderOut().dump(payment_webhooks.save_provider(session, identity, data,
                                                                     provider_id))

    @rpc
    def payment_triage(self, query=None):
        """Payments whose reference named no account (or in another state), newest first."""
        identity = self.caller.require("portfolio.write")
        query = load(TriageQuery(), query or {})
        with self.db.session() as session:
            return NotificationPage().dump(payment_webhooks.triage_page(session, identity, query))

    @rpc
    def assign_triaged_payment(self, notification_id, data):
        identity = self.caller.require("portfolio.write")
        data = load(TriageAssign(), data)
        with self.db.session() as session:
            return NotificationOut().dump(payment_webhooks.assign(session, identity,
                                                                  notification_id, data))

    @rpc
    def dismiss_triaged_payment(self, notification_id, data):
        identity = self.caller.require("portfolio.write")
        data = load(TriageDismiss(), data)
        with self.db.session() as session:
            return NotificationOut().dump(payment_webhooks.dismiss(session, identity,
                                                                   notification_id, data))

    # --- for the messaging service -------------------------------------------------------------

    @rpc
    def match_debtors(self, institution_id, emails=(), account_numbers=(), customer_numbers=(),
                      phones=()):
        """Debtors of an institution by email address, phone number (any form: compared by
        digits), account or customer number, each with the account to log an inbound
        message on (whole-portfolio readers only)."""
        identity = self.caller.require("portfolio.read_all")
        identity.require_institution(institution_id)
        with self.db.session() as session:
            return matching.match(session, int(institution_id), emails, account_numbers,
                                  customer_numbers, phones)

    # --- for the queues service -------------------------------------------------------------

    @rpc
    def account_facts_page(self, institution_id, after_id=0, limit=5000):
        """The ranking facts of an institution's accounts, by id pages (a full resync)."""
        identity = self.caller.require("queues.manage")
        identity.require_institution(institution_id)
        limit = max(1, min(int(limit), 10_000))
        with self.db.session() as session:
            ids = session.execute(select(Account.id).where(
                Account.institution_id == institution_id, Account.id > int(after_id))
                .order_by(Account.id).limit(limit)).scalars().all()
            facts = sorted(aging.facts(session, ids), key=lambda f: f["account_id"])
            return AccountFactsOut(many=True).dump(facts)

    @event_handler("queues", "assignments_changed")
    def on_assignments_changed(self, payload):
        """Keep the projection of who collects each account (it scopes collectors' reads)."""
        schema = contracts.AssignmentsChanged()
        payload = schema.load(payload)
        accounts, agents = schema.pairs(payload)
        with self.db.session() as session:
            if not self.db.first_time(session, payload["event_id"], "assignments_changed"):
                return
            # accounts already held by that collector are not rewritten
            session.execute(text("""
                UPDATE portfolio.accounts a SET assigned_agent_id = c.agent_id
                FROM unnest(CAST(:accounts AS bigint[]), CAST(:agents AS int[]))
                     AS c(account_id, agent_id)
                WHERE a.id = c.account_id AND a.assigned_agent_id IS DISTINCT FROM c.agent_id
            """), {"accounts": accounts, "agents": agents})

    @event_handler("activities", "callback_scheduled")
    def on_callback_scheduled(self, payload):
        """Who holds a pending callback (scheduled, or delegated anew): it opens the account
        to them. A callback for a whole team opens nothing beyond the team's own accounts.
        Events of one item may arrive out of order: the latest (by ``occurred_at``) wins,
        so a done callback stays done whatever older news of it arrives after."""
        payload = contracts.CallbackScheduled().load(payload)
        with self.db.session() as session:
            if not self.db.first_time(session, payload["event_id"], "callback_scheduled"):
                return
            row = insert(CallbackHolder).values(
                item_id=payload["item_id"], account_id=payload["account_id"],
                agent_id=payload.get("agent_id"), changed_at=payload["occurred_at"])
            session.execute(row.on_conflict_do_update(
                index_elements=[CallbackHolder.item_id],
                set_={"account_id": row.excluded.account_id, "agent_id": row.excluded.agent_id,
                      "changed_at": row.excluded.changed_at, "done": False},
                where=CallbackHolder.changed_at <= row.excluded.changed_at))

    @event_handler("activities", "callback_done")
    def on_callback_done(self, payload):
        payload = contracts.CallbackDone().load(payload)
        with self.db.session() as session:
            if not self.db.first_time(session, payload["event_id"], "callback_done"):
                return
            row = insert(CallbackHolder).values(
                item_id=payload["item_id"], account_id=payload["account_id"], agent_id=None,
                changed_at=payload["occurred_at"], done=True)
            session.execute(row.on_conflict_do_update(
                index_elements=[CallbackHolder.item_id],
                set_={"account_id": row.excluded.account_id, "agent_id": None, "done": True,
                      "changed_at": row.excluded.changed_at},
                where=CallbackHolder.changed_at <= row.excluded.changed_at))

    @event_handler("activities", "activity_logged")
    def on_activity_logged(self, payload):
        """A result that invalidates the phone used (wrong number, disconnected) marks it
        invalid: it is no longer the debtor's contact number in lists or the pull."""
        payload = contracts.ActivityLogged().load(payload)
        if not (payload["invalidates_phone"] and payload["phone"]):
            return
        digits = "".join(ch for ch in payload["phone"] if ch.isdigit())
        with self.db.session() as session:
            if self.db.first_time(session, payload["event_id"], "activity_logged"):
                session.execute(update(Phone).where(Phone.debtor_id == payload["debtor_id"],
                                                    Phone.number == digits)
                                .values(valid=False))

    # --- aging --------------------------------------------------------------------------------

    @timer(interval=3600, eager=True)
    def daily_aging(self):
        """At start-up and then hourly: every institution whose today (in its own zone) has
        no aging snapshot yet gets one (days past due and stages refreshed first), exactly
        once however many instances run (``aging.missing_snapshots`` locks)."""
        now = datetime.now(timezone.utc)
        with self.db.session() as session:
            for institution_id, day in aging.missing_snapshots(session, now):
                rows = self._snapshot(session, institution_id, day)
                log.info("aging snapshot of institution %s on %s: %s accounts",
                         institution_id, day, rows)

    def _snapshot(self, session, institution_id: int, day) -> int:
        self._refresh_and_announce(session, day, institution_id=institution_id)
        return aging.snapshot(session, day, institution_id)

    def _refresh_and_announce(self, session, today, **which) -> int:
        """Refresh aging and emit what changed (batched for the queues projection)."""
        changed = aging.refresh(session, today, **which)
        for row in changed:
            if row.old_stage != row.new_stage:
                self.db.emit(session, "stage_changed", {
                    "account_id": row.id, "institution_id": row.institution_id,
                    "old_stage": row.old_stage, "new_stage": row.new_stage})
        ids = [row.id for row in changed]
        for start in range(0, len(ids), 1000):
            self.db.emit(session, "accounts_changed",
                         {"accounts": aging.facts(session, ids[start:start + 1000])})
        return len(ids)

    # --- reports (reports.py): reports.view, within the caller's institutions -----------------

    @rpc
    def report_aging(self, query=None):
        identity = self.caller.require("reports.view")
        query = load(AgingReportQuery(), query or {})
        with self.db.session() as session:
            return reports.aging(session, identity, query)

    @rpc
    def report_roll_rates(self, query):
        identity = self.caller.require("reports.view")
        query = load(RollRateQuery(), query)
        with self.db.session() as session:
            return reports.roll_rates(session, identity, query)

    @rpc
    def snapshot_aging(self, institution_id=None):
        """Refresh aging and take today's snapshot (the institution's today, in its zone)
        now: taken if missing, retaken if not (the day's rows replaced). One institution
        for an administrator of it; every institution only for an all-institution one."""
        identity = self.caller.require("institutions.manage")
        if institution_id is None and not identity.all_institutions:
            raise PermissionDenied("Sólo para quien administra todas las instituciones",
                                   {"permission": ["institutions.manage"]})
        now = datetime.now(timezone.utc)
        with self.db.session() as session:
            query = select(Institution).order_by(Institution.id)
            if institution_id is not None:
                query = query.where(Institution.id == institution_id)
            institutions = [i for i in session.execute(query).scalars()
                            if identity.may_access_institution(i.id)]
            if institution_id is not None and not institutions:
                raise NotFound("Institución no encontrada")
            aging.lock_snapshots(session)
            taken = [{"institution_id": i.id,
                      "snapshot_date": aging.institution_today(i.time_zone, now).isoformat()}
                     for i in institutions]
            for row in taken:
                row["accounts"] = self._snapshot(session, row["institution_id"],
                                                 date.fromisoformat(row["snapshot_date"]))
        if institution_id is not None:
            return taken[0]
        return {"snapshot_date": max((t["snapshot_date"] for t in taken), default=None),
                "accounts": sum(t["accounts"] for t in taken), "institutions": taken}

    @rpc
    def rebuild_aging_rollups(self, query):
        """Rebuild the aging rollups of the snapshots in a range (after a backfill)."""
        identity = self.caller.require("institutions.manage")
        if not identity.all_institutions:
            raise PermissionDenied("Sólo para quien administra todas las instituciones",
                                   {"permission": ["institutions.manage"]})
        query = load(RollupRebuild(), query)
        with self.db.session() as session:
            days = session.execute(select(AgingSnapshot.snapshot_date).where(
                AgingSnapshot.snapshot_date.between(query["date_from"], query["date_to"]))
                .distinct().order_by(AgingSnapshot.snapshot_date)).scalars().all()
            for day in days:   # a few statements per day, never per account
                aging.refresh_rollups(session, day)
            return {"days": len(days)}

    # --- bulk imports of portfolio and payment files (imports.py, import_run.py) ---------------

    @rpc
    def import_catalogue(self):
        """Fields a layout can map, per kind, and the encodings/formats it may use."""
        self.caller.require("portfolio.import")
        return imports.catalogue()

    @rpc
    def list_layouts(self, institution_id):
        identity = self.caller.require("portfolio.import")
        with self.db.session() as session:
            return LayoutOut(many=True).dump(imports.list_layouts(session, identity,
                                                                  institution_id))

    @rpc
    def get_layout(self, layout_id):
        identity = self.caller.require("portfolio.import")
        with self.db.session() as session:
            return LayoutOut().dump(imports.visible_layout(session, identity, layout_id))

    @rpc
    def save_layout(self, data, layout_id=None):
        """Create or edit an institution's import layout (column mapping and formats): an
        administrator's catalogue, like the statuses."""
        identity = self.caller.require("institutions.manage")
        data = load(LayoutWrite(), data)
        with self.db.session() as session:
            return LayoutOut().dump(imports.save_layout(session, identity, data, layout_id))

    @rpc
    def create_import(self, data):
        """A queued import job and the presigned URL to PUT the file to (then start_import)."""
        identity = self.caller.require("portfolio.import")
        data = load(ImportCreate(), data)
        with self.db.session() as session:
            job, url = imports.create_job(session, identity, data)
            return ImportCreated().dump({
                "job": job, "upload_url": url,
                "upload_expires_in": int(imports.UPLOAD_URL_TTL.total_seconds())})

    @rpc
    def start_import(self, job_id):
        """The file is uploaded: check it and queue the import (import_requested)."""
        identity = self.caller.require("portfolio.import")
        with self.db.session() as session:
            job = imports.request_job(session, identity, job_id)
            self.db.emit(session, "import_requested",
                         {"job_id": job.id, "institution_id": job.institution_id})
            return ImportJobOut().dump(job)

    @rpc
    def get_import(self, job_id):
        identity = self.caller.require("portfolio.import")
        with self.db.session() as session:
            return ImportJobOut().dump(imports.visible_job(session, identity, job_id))

    @rpc
    def list_imports(self, query=None):
        identity = self.caller.require("portfolio.import")
        query = load(ImportQuery(), query or {})
        with self.db.session() as session:
            return ImportJobPage().dump(imports.list_jobs(session, identity, query))

    @rpc
    def import_problems(self, job_id, page=1, per_page=50):
        """The validation report, a page at a time (row, column, problem)."""
        identity = self.caller.require("portfolio.import")
        paging = load(ImportQuery(), {"page": page, "per_page": per_page})
        with self.db.session() as session:
            return ImportProblemPage().dump(imports.problems_page(
                session, identity, job_id, paging["page"], paging["per_page"]))

    @rpc
    def import_report_csv(self, job_id):
        """The validation report as CSV text: fila,columna,problema."""
        identity = self.caller.require("portfolio.import")
        with self.db.session() as session:
            return imports.report_csv(session, identity, job_id)

    @event_handler("portfolio", "import_requested")
    def on_import_requested(self, payload):
        """Run the import (this service consumes its own event: a crash mid-import leaves
        the message unacknowledged, so the restarted service runs the job again)."""
        import_run.run_job(self.db, contracts.ImportRequested().load(payload)["job_id"])
