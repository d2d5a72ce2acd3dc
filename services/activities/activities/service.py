"""Entrypoints of the activities service.

Accounts belong to the portfolio service: whether the caller may see one (and its
institution and debtor) is asked there, by RPC carrying the caller's own identity,
so the same scope rules (institution, assigned accounts) apply here as there.
"""
from __future__ import annotations

import logging
from datetime import date

from nameko.rpc import RpcProxy
from nameko.timer import timer
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from recaudo_common import contracts, references
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.service import ServiceBase, event_handler, rpc
from recaudo_common.validation import load

from . import (agenda, catalogue, chain, compliance, disputes, log, productivity, promises,
               reports)
from .limits_rpc import LimitsEntrypoints
from .portal_rpc import PortalEntrypoints
from .models import Activity, Base, ChainHead, InstitutionSettings, Promise, ResultCode, Team, \
    TeamMember
from .contracts import (ActivityWrite, AgendaQuery, AgendaWrite, ComplianceQuery, ContactCheck,
                        CorrectionWrite, Delegate, PolicyWrite, PreferencesWrite,
                        DisputeReportQuery, DisputeResolve, DisputeWrite, HistoryQuery,
                        OverdueQuery, ProductivityQuery, ProductivityReportQuery,
                        PromiseReportQuery, ResultCodeOut, ResultCodeWrite, SettingsOut,
                        SettingsWrite, SupervisorDayQuery, KINDS)

logger = logging.getLogger(__name__)


class ActivitiesService(LimitsEntrypoints, PortalEntrypoints, ServiceBase):
    name = "activities"
    db = Database(Base)
    portfolio = RpcProxy("portfolio")
    #: the debtor portal's dispute files its document there (portal_rpc.py)
    documents = RpcProxy("documents")

    def _account(self, identity, account_id, contacts: bool = False) -> dict:
        """The portfolio's account as the caller may see it, or NotFound (no existence leak).
        With ``contacts``, the portfolio's contact view of it instead (the account under
        ``"account"``, with what the contact policy needs), in the same single call."""
        if not isinstance(account_id, int) or isinstance(account_id, bool):
            raise InvalidInput("Cuenta inválida", {"account_id": ["Se esperaba un número"]})
        if contacts:
            view = self.portfolio.get_contact_view(account_id)
            identity.require_institution(view["account"]["institution_id"])
            return view
        account = self.portfolio.get_account(account_id)
        identity.require_institution(account["institution_id"])
        return account

    # --- the contact log -------------------------------------------------------------

    @rpc
    def log_activity(self, data):
        """Log a contact; a retry with the same idempotency key answers the first entry,
        found before anything else is asked: no portfolio call, no judging again. An
        outbound call is judged by the contact policy, so its account is asked for with
        the debtor's contacts (still one portfolio call)."""
        identity = self.caller.require("activities.log")
        data = load(ActivityWrite(), data)
        key = data.get("idempotency_key")
        earlier = self._logged(identity, key)
        if earlier is not None:
            return earlier
        contacts = None
        if log.needs_contacts(data):
            contacts = self._account(identity, data["account_id"], contacts=True)
            account = contacts["account"]
        else:
            account = self._account(identity, data["account_id"])
        try:
            with self.db.session() as session:
                return log.log_activity(session, self.db, identity, account, data, contacts)
        except IntegrityError:
            # the same key raced in (on this account's chain or another's): the winner's
            # entry stands
            earlier = self._logged(identity, key)
            if earlier is None:
                raise
            return earlier

    def _logged(self, identity, key) -> dict | None:
        """The caller's own entry logged under ``key``, described (None if none). Keys are
        per user, so a retry only ever answers its author's entry; the author must still
        reach its institution."""
        if not key:
            return None
        with self.db.session() as session:
            earlier = log.find_by_key(session, identity.user_id, key)
            if earlier is None:
                return None
            identity.require_institution(earlier.institution_id)
            return log.describe(session, earlier)

    @rpc
    def correct_activity(self, activity_id, data):
        """Append a correction of an entry (the author, their supervisor or an admin)."""
        identity = self.caller.require("activities.log")
        data = load(CorrectionWrite(), data)
        self._visible_activity(identity, activity_id)   # one it cannot read: like missing
        with self.db.session() as session:
            return log.correct_activity(session, self.db, identity, int(activity_id), data)

    def _visible_activity(self, identity, activity_id) -> Activity:
        """The entry if the caller may read its account, else NotFound (no existence leak:
        a write on it answers exactly as a read does)."""
        with self.db.session() as session:
            activity = session.get(Activity, int(activity_id))
            if activity is None or not identity.may_access_institution(activity.institution_id):
                raise NotFound("Gestión no encontrada")
            session.expunge(activity)
        try:
            self._account(identity, activity.account_id)
        except NotFound:
            raise NotFound("Gestión no encontrada") from None
        return activity

    @rpc
    def get_activity(self, activity_id):
        identity = self.caller.require("activities.read")
        activity = self._visible_activity(identity, activity_id)
        with self.db.session() as session:
            return log.describe(session, session.get(Activity, activity.id))

    @rpc
    def account_history(self, account_id, query=None):
        """The account's log, newest first, a page at a time."""
        identity = self.caller.require("activities.read")
        query = load(HistoryQuery(), query or {})
        account = self._account(identity, account_id)
        with self.db.session() as session:
            return log.history(session, account["id"], query["page"], query["per_page"])

    @rpc
    def verify_chain(self, account_id):
        """Recompute the account's hash chain: ok, or the first entry that breaks it.

        Whoever manages activities checks any account in their scope; a supervisor answers
        for their team's logs: the accounts assigned to their agents or with entries of
        theirs (any other answers as missing)."""
        identity = self.caller.identity
        supervisor = bool(identity.team) and identity.has("activities.read")
        if not (identity.has("activities.manage") or supervisor):
            identity = self.caller.require("activities.manage")   # PermissionDenied
        if not isinstance(account_id, int) or isinstance(account_id, bool):
            raise InvalidInput("Cuenta inválida", {"account_id": ["Se esperaba un número"]})
        with self.db.session() as session:
            head = session.get(ChainHead, account_id)
            if head is None or not identity.may_access_institution(head.institution_id):
                raise NotFound("La cuenta no tiene gestiones")
            if not identity.has("activities.manage") and \
                    not self._teams_log(session, identity, account_id):
                raise NotFound("La cuenta no tiene gestiones")
            return chain.verify(session, account_id)

    def _teams_log(self, session, identity, account_id: int) -> bool:
        """Is the account's log the caller's team's: assigned to one of their agents, or
        with an entry of theirs or their agents'?"""
        people = (identity.user_id, *identity.team)
        if session.execute(select(Activity.id).where(
                Activity.account_id == account_id, Activity.agent_id.in_(people))
                .limit(1)).first():
            return True
        try:
            return self._account(identity, account_id).get("assigned_agent_id") in people
        except NotFound:
            return False

    # --- the result-code catalogue and institution settings ----------------------------

    def _catalogue(self, session, identity, institution_id: int) -> None:
        """The institution's catalogue, made the first time: only for an institution the
        portfolio knows (and the caller may see), so no orphan catalogue is ever kept."""
        if session.get(InstitutionSettings, institution_id) is None:
            references.require_institution(self.portfolio, identity, institution_id)
            catalogue.ensure_catalogue(session, institution_id)

    @rpc
    def list_result_codes(self, institution_id, include_inactive=False):
        identity = self.caller.identity
        identity.require_institution(institution_id)
        with self.db.session() as session:
            self._catalogue(session, identity, institution_id)
            query = select(ResultCode).where(ResultCode.institution_id == institution_id)
            if not include_inactive:
                query = query.where(ResultCode.active)
            rows = session.execute(query.order_by(ResultCode.sort_order, ResultCode.code)
                                   ).scalars().all()
            return ResultCodeOut(many=True).dump(rows)

    @rpc
    def save_result_code(self, data, code_id=None):
        """Add a code to an institution's catalogue or edit one (codes are deactivated,
        never deleted: the log refers to them)."""
        identity = self.caller.require("activities.manage")
        data = load(ResultCodeWrite(), data)
        identity.require_institution(data["institution_id"])
        with self.db.session() as session:
            self._catalogue(session, identity, data["institution_id"])
            clash = session.execute(select(ResultCode.id).where(
                ResultCode.institution_id == data["institution_id"],
                ResultCode.code == data["code"], ResultCode.id != (code_id or 0))).first()
            taken = Conflict("Ya existe ese código", {"code": ["Ya existe en esta institución"]})
            if clash:
                raise taken
            if code_id is None:
                code = ResultCode(**data)
                session.add(code)
            else:
                code = session.get(ResultCode, code_id, with_for_update=True)
                if code is None or not identity.may_access_institution(code.institution_id) \
                        or code.institution_id != data["institution_id"]:
                    raise NotFound("Código no encontrado")
                for field, value in data.items():
                    setattr(code, field, value)
            try:
                session.flush()
            except IntegrityError:   # the same code added by a concurrent call since the check
                raise taken from None
            return ResultCodeOut().dump(code)

    @rpc
    def get_settings(self, institution_id):
        identity = self.caller.identity
        identity.require_institution(institution_id)
        with self.db.session() as session:
            self._catalogue(session, identity, institution_id)
            return SettingsOut().dump(catalogue.settings_of(session, institution_id))

    @rpc
    def save_settings(self, institution_id, data):
        identity = self.caller.require("activities.manage")
        identity.require_institution(institution_id)
        data = load(SettingsWrite(), data)
        with self.db.session() as session:
            self._catalogue(session, identity, institution_id)
            settings = catalogue.settings_of(session, institution_id)
            for field, value in data.items():
                setattr(settings, field, value)
            session.flush()
            return SettingsOut().dump(settings)

    # --- promises --------------------------------------------------------------------------

    @rpc
    def account_promises(self, account_id):
        identity = self.caller.require("activities.read")
        account = self._account(identity, account_id)
        with self.db.session() as session:
            return promises.for_account(session, account["id"])

    @rpc
    def expire_promises(self, today=None):
        """Settle the promises of the caller's institutions past due on ``today`` (ISO date;
        default: each institution's own today). The daily timer does this for everyone."""
        identity = self.caller.require("activities.manage")
        if today is not None:
            try:
                today = date.fromisoformat(today)
            except (TypeError, ValueError):
                raise InvalidInput("Fecha inválida", {"today": ["Se esperaba AAAA-MM-DD"]}) from None
        return {"settled": self._expire(identity.institutions, today)}

    @timer(interval=3600)
    def expire_promises_daily(self):
        """Hourly, so each institution's day turns over in its own zone within the hour;
        settling is idempotent (only pending promises change)."""
        settled = self._expire(None, None)
        if settled:
            logger.info("promises settled as past due: %d", settled)

    def _expire(self, institution_ids, today) -> int:
        with self.db.session() as session:
            pending = select(Promise.institution_id).where(Promise.state == "pending").distinct()
            if institution_ids is not None:
                pending = pending.where(Promise.institution_id.in_(list(institution_ids) or [-1]))
            ids = session.execute(pending).scalars().all()
            zones = dict(session.execute(select(InstitutionSettings.institution_id,
                                                InstitutionSettings.time_zone)
                                         .where(InstitutionSettings.institution_id.in_(ids or [-1]))
                                         ).all())
        by_day: dict[date, list[int]] = {}
        for institution_id in ids:
            day = today or catalogue.today_in(zones.get(institution_id))
            by_day.setdefault(day, []).append(institution_id)
        settled = 0
        for day, institutions in by_day.items():
            with self.db.session() as session:
                settled += promises.expire(session, self.db, day, institutions)
        return settled

    @event_handler("portfolio", "payment_received")
    def on_payment_received(self, payload):
        """Credit the payment to whoever worked the account and apply it to its promises."""
        payment = contracts.PaymentReceived().load(payload)
        with self.db.session() as session:
            if self.db.first_time(session, payment["event_id"], "payment_received"):
                promises.apply_payment(session, self.db, payment)

    # --- disputes --------------------------------------------------------------------------

    @rpc
    def open_dispute(self, data):
        """Open an aclaración on an account (a collector on the phone, or whoever manages them)."""
        identity = self.caller.identity
        if not (identity.has("activities.log") or identity.has("disputes.manage")):
            raise PermissionDenied("Falta el permiso disputes.manage",
                                   {"permission": ["disputes.manage"]})
        data = load(DisputeWrite(), data)
        account = self._account(identity, data["account_id"])
        with self.db.session() as session:
            return disputes.open_dispute(session, self.db, identity, account, data)

    @rpc
    def resolve_dispute(self, dispute_id, data):
        identity = self.caller.require("disputes.manage")
        data = load(DisputeResolve(), data)
        with self.db.session() as session:
            return disputes.resolve(session, self.db, identity, int(dispute_id), data)

    @rpc
    def account_disputes(self, account_id):
        identity = self.caller.require("activities.read")
        account = self._account(identity, account_id)
        with self.db.session() as session:
            return disputes.for_account(session, account["id"])

    @rpc
    def overdue_disputes(self, query=None):
        identity = self.caller.require("disputes.manage")
        query = load(OverdueQuery(), query or {})
        with self.db.session() as session:
            return disputes.overdue(session, identity, query)

    # --- the agenda --------------------------------------------------------------------------

    @rpc
    def schedule_callback(self, data):
        """Put a callback or visit on the caller's agenda, a colleague's or a team's; a retry
        with the same idempotency key answers the first item."""
        identity = self.caller.require("activities.log")
        data = load(AgendaWrite(), data)
        key = data.get("idempotency_key")
        account = self._account(identity, data["account_id"])
        try:
            with self.db.session() as session:
                return (agenda.find_by_key(session, identity, key)
                        or agenda.schedule(session, self.db, identity, account, data))
        except IntegrityError:  # the same key raced in: the winner's item stands
            with self.db.session() as session:
                earlier = agenda.find_by_key(session, identity, key)
                if earlier is None:
                    raise
                return earlier

    @rpc
    def delegate_agenda_item(self, item_id, data):
        identity = self.caller.require("activities.log")
        data = load(Delegate(), data)
        with self.db.session() as session:
            return agenda.delegate(session, self.db, identity, int(item_id), data)

    @rpc
    def mark_agenda_done(self, item_id):
        identity = self.caller.require("activities.log")
        with self.db.session() as session:
            return agenda.mark_done(session, self.db, identity, int(item_id))

    @rpc
    def agenda_for(self, query):
        """Calendar view (day or week) of an agent or a team."""
        identity = self.caller.require("activities.read")
        query = load(AgendaQuery(), query)
        with self.db.session() as session:
            return agenda.agenda_for(session, identity, query, query["time_zone"])

    @rpc
    def create_ics_token(self):
        """A new private calendar-feed token for the caller, shown once (the old one dies)."""
        identity = self.caller.require("activities.read")
        with self.db.session() as session:
            return {"token": agenda.new_token(session, identity.user_id)}

    @rpc
    def revoke_ics_token(self):
        identity = self.caller.require("activities.read")
        with self.db.session() as session:
            agenda.revoke_token(session, identity.user_id)

    @rpc
    def ics_feed(self, token):
        """The calendar of the agent whose private token this is. The token is the credential
        (calendar apps cannot log in), so no caller identity is required."""
        with self.db.session() as session:
            return agenda.feed(session, token)

    # --- productivity --------------------------------------------------------------------------

    @rpc
    def productivity(self, query):
        identity = self.caller.require("activities.read")
        query = load(ProductivityQuery(), query)
        with self.db.session() as session:
            return productivity.query(session, identity, query)

    # --- reports (reports.py): reports.view, within the caller's institutions -----------------

    @rpc
    def report_productivity(self, query):
        identity = self.caller.require("reports.view")
        query = load(ProductivityReportQuery(), query)
        with self.db.session() as session:
            return reports.productivity(session, identity, query)

    @rpc
    def report_promises(self, query):
        identity = self.caller.require("reports.view")
        query = load(PromiseReportQuery(), query)
        with self.db.session() as session:
            return reports.promises(session, identity, query)

    @rpc
    def report_disputes(self, query):
        identity = self.caller.require("reports.view")
        query = load(DisputeReportQuery(), query)
        with self.db.session() as session:
            return reports.disputes(session, identity, query)

    @rpc
    def supervisor_day(self, query):
        """The live dashboard's counters: one day, per agent and per hour."""
        identity = self.caller.require("reports.view")
        query = load(SupervisorDayQuery(), query)
        with self.db.session() as session:
            return reports.supervisor_day(session, identity, query)

    # --- contact compliance (compliance.py) ---------------------------------------------------

    @rpc
    def list_contact_policies(self, jurisdiction=None):
        """Every version of every jurisdiction's policy (or one's): for administrators and
        compliance officers."""
        identity = self.caller.identity
        if not (identity.has("compliance.manage") or identity.has("activities.manage")):
            identity.require("compliance.manage")
        if jurisdiction is not None and not (isinstance(jurisdiction, str)
                                             and len(jurisdiction) <= 2):
            raise InvalidInput("Jurisdicción inválida", {"jurisdiction": ["Dos letras o *"]})
        with self.db.session() as session:
            return compliance.list_policies(session, jurisdiction)

    @rpc
    def save_contact_policy(self, jurisdiction, data):
        """A compliance officer writes a new version of a jurisdiction's policy."""
        identity = self.caller.require("compliance.manage")
        if not isinstance(jurisdiction, str) or not (
                jurisdiction == "*" or (len(jurisdiction) == 2 and jurisdiction.isalpha())):
            raise InvalidInput("Jurisdicción inválida", {"jurisdiction": ["Dos letras o *"]})
        data = load(PolicyWrite(), data)
        with self.db.session() as session:
            return compliance.save_policy(session, identity, jurisdiction.upper(), data)

    @rpc
    def judge_contact(self, account_id, channel, to=None, at=None):
        """The engine's verdict on contacting the account's debtor on ``channel`` at ``to``
        (for services sending on their own channels): allowed, rule, reason, policy version."""
        self.caller.require("activities.read")
        if channel not in KINDS:
            raise InvalidInput("Canal inválido", {"channel": ["Canal desconocido"]})
        view = self._account(self.caller.identity, account_id, contacts=True)
        with self.db.session() as session:
            verdict = compliance.judge(session, view, channel, to)
        return {"allowed": verdict.allowed, "rule": verdict.rule, "reason": verdict.reason,
                "policy_version": verdict.policy_version}

    @rpc
    def check_contact(self, data):
        """Judge a contact another service is about to make (messaging's sends) under the
        stored policy in force, logging a refusal or an override (``compliance.check``)."""
        identity = self.caller.require("activities.read")
        data = load(ContactCheck(), data)
        view = self._account(identity, data["account_id"], contacts=True)
        with self.db.session() as session:
            return compliance.check(session, identity, view, data["channel"], data["to"],
                                    data["override"])

    def _compliance_query(self, query) -> dict:
        return load(ComplianceQuery(), query or {})

    @rpc
    def compliance_log(self, query=None):
        """Refused and overridden verdicts, newest first, in the caller's institutions."""
        identity = self.caller.require("compliance.manage")
        query = self._compliance_query(query)
        with self.db.session() as session:
            return compliance.list_log(session, identity, query)

    @rpc
    def compliance_log_csv(self, query=None):
        identity = self.caller.require("compliance.manage")
        query = self._compliance_query(query)
        with self.db.session() as session:
            return compliance.log_csv(session, identity, query)

    @rpc
    def debtor_compliance(self, debtor_id):
        """The debtor's preferences and their refused or overridden verdicts (the 360° view),
        for whoever may read the debtor's activities."""
        identity = self.caller.require("activities.read")
        debtor = self.portfolio.debtor_scope(debtor_id)
        identity.require_institution(debtor["institution_id"])
        query = self._compliance_query({"debtor_id": debtor["id"], "per_page": 50})
        with self.db.session() as session:
            log_page = compliance.list_log(session, identity, query)
            return {"preferences": compliance.preferences_of(session, debtor["id"]) or None,
                    "log": log_page["items"]}

    @rpc
    def save_debtor_preferences(self, debtor_id, data):
        """What the debtor asked for about being contacted (consent per channel, cease,
        attorney, inconvenient times, language), recorded by who heard it."""
        identity = self.caller.require("activities.log")
        data = load(PreferencesWrite(), data)
        debtor = self.portfolio.debtor_scope(debtor_id)
        identity.require_institution(debtor["institution_id"])
        views = [self.portfolio.get_contact_view(a) for a in debtor["account_ids"]]
        with self.db.session() as session:
            saved = compliance.save_preferences(session, identity, debtor, data)
            for view in views:   # the debtor's word may hold or free their debts in the queues
                compliance.announce_hold(session, self.db, view)
            return saved

    # --- projections ---------------------------------------------------------------------------

    @event_handler("auth", "team_changed")
    def on_team_changed(self, payload):
        """Teams scope the shared agenda and the productivity by team."""
        team = contracts.TeamChanged().load(payload)
        with self.db.session() as session:
            if not self.db.first_time(session, team["event_id"], "team_changed"):
                return
            statement = insert(Team).values(team_id=team["team_id"], name=team["name"],
                                            supervisor_id=team["supervisor_id"])
            session.execute(statement.on_conflict_do_update(
                index_elements=[Team.team_id],
                set_={"name": statement.excluded.name,
                      "supervisor_id": statement.excluded.supervisor_id}))
            session.execute(delete(TeamMember).where(TeamMember.team_id == team["team_id"]))
            if team["members"]:
                session.execute(insert(TeamMember).values([
                    {"team_id": team["team_id"], "agent_id": m} for m in set(team["members"])]))
