"""Entrypoints of the queues service."""
from __future__ import annotations

import json
import logging
from datetime import timedelta

from nameko.rpc import RpcProxy
from nameko.timer import timer
from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert

from recaudo_common import contracts, references
from recaudo_common.acting import ActingRpc
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, DomainError, InvalidInput, NotFound
from recaudo_common.identity import Identity
from recaudo_common.localtime import today_in
from recaudo_common.service import ServiceBase, event_handler, rpc
from recaudo_common.validation import load

from . import campaigns, placement, reports, working
from .contracts import (FIELDS, OPERATORS, SORTABLE, CampaignOut, CampaignPreviewOf, CampaignWrite,
                        ChampionQuery, MoveAccounts, QueueOut, Reassign, RecoveryQuery, StrategyOut,
                        StrategyWrite, WorklistQuery)
from .models import (AccountFacts, Base, Campaign, CampaignRun,
                     InstitutionRules, Lease, Queue, Strategy, TeamMember)

log = logging.getLogger(__name__)

FACT_COLUMNS = ("institution_id", "debtor_id", "stage", "status_id", "days_past_due", "balance",
                "overdue_amount", "product", "state", "time_zone", "next_due_date",
                "do_not_contact")


class QueuesService(ServiceBase):
    name = "queues"
    db = Database(Base)
    portfolio = RpcProxy("portfolio")
    acting = ActingRpc()

    # --- strategies -----------------------------------------------------------------

    @rpc
    def condition_catalogue(self):
        """Fields, operators and sortable fields the strategy editor offers."""
        self.caller.identity  # any authenticated caller
        return {"fields": [{"name": n, "label": f.label, "kind": f.kind, "choices": list(f.choices)}
                           for n, f in FIELDS.items()],
                "operators": OPERATORS, "sortable": list(SORTABLE)}

    @rpc
    def list_strategies(self, institution_id):
        identity = self.caller.require("queues.manage")
        identity.require_institution(institution_id)
        with self.db.session() as session:
            rows = session.execute(select(Strategy).where(Strategy.institution_id == institution_id)
                                   .order_by(Strategy.state, Strategy.name)).scalars().all()
            return [self._strategy_out(session, s) for s in rows]

    @rpc
    def get_strategy(self, strategy_id):
        identity = self.caller.require("queues.manage")
        with self.db.session() as session:
            return self._strategy_out(session, self._strategy(session, identity, strategy_id))

    @rpc
    def save_strategy(self, data, strategy_id=None):
        """Create a draft strategy, or replace a draft's queues (an active one is copied)."""
        identity = self.caller.require("queues.manage")
        data = load(StrategyWrite(), data)
        references.require_institution(self.portfolio, identity, data["institution_id"])
        with self.db.session() as session:
            self._check_teams(session, data["queues"])
            if data["challenger_id"]:
                challenger = self._strategy(session, identity, data["challenger_id"])
                if challenger.institution_id != data["institution_id"] or challenger.id == strategy_id:
                    raise InvalidInput("Retadora inválida",
                                       {"challenger_id": ["Debe ser otra estrategia de la institución"]})
            # before a new strategy is added: autoflush would make it clash with itself
            clash = session.execute(select(Strategy.id).where(
                Strategy.institution_id == data["institution_id"], Strategy.name == data["name"],
                Strategy.id != (strategy_id or 0))).first()
            if clash:
                raise Conflict("Ya existe una estrategia con ese nombre",
                               {"name": ["Ya existe en esta institución"]})
            if strategy_id is None:
                strategy = Strategy(institution_id=data["institution_id"], name=data["name"],
                                    created_by=identity.user_id)
                session.add(strategy)
            else:
                strategy = self._strategy(session, identity, strategy_id, lock=True)
                if strategy.state != "draft" or strategy.institution_id != data["institution_id"]:
                    raise Conflict("Sólo se editan borradores; guarde una copia con otro nombre")
                session.execute(delete(Queue).where(Queue.strategy_id == strategy.id))
            strategy.name = data["name"]
            strategy.challenger_id = data["challenger_id"]
            strategy.challenger_share = data["challenger_share"]
            session.flush()
            session.add_all([Queue(strategy_id=strategy.id, position=i + 1, **q)
                             for i, q in enumerate(data["queues"])])
            session.flush()
            return self._strategy_out(session, strategy)

    @rpc
    def simulate_strategy(self, strategy_id):
        """What applying would do, per queue, without changing anything."""
        identity = self.caller.require("queues.manage")
        with self.db.session() as session:
            strategy = self._strategy(session, identity, strategy_id)
            result = placement.simulate(session, strategy)
            session.rollback()
            return result

    @rpc
    def apply_strategy(self, strategy_id):
        """Make it the institution's active strategy and rebuild its queues now."""
        identity = self.caller.require("queues.manage")
        with self.db.session() as session:
            strategy = self._strategy(session, identity, strategy_id)
            # the institution's lock first: a second apply (of this strategy or another)
            # is told Conflict at once instead of queueing behind the strategy's row lock
            placement.lock_institution(session, strategy.institution_id)
            session.refresh(strategy, with_for_update=True)
            if strategy.state == "archived":
                raise Conflict("La estrategia está archivada")
            session.execute(update(Strategy).where(
                Strategy.institution_id == strategy.institution_id, Strategy.state == "active",
                Strategy.id != strategy.id).values(state="archived"))
            strategy.state = "active"
            session.flush()
            return self._rebuild(session, strategy)

    @rpc
    def rebuild_queues(self, institution_id):
        identity = self.caller.require("queues.manage")
        identity.require_institution(institution_id)
        with self.db.session() as session:
            strategy = session.execute(select(Strategy).where(
                Strategy.institution_id == institution_id, Strategy.state == "active")
            ).scalar_one_or_none()
            if strategy is None:
                raise NotFound("La institución no tiene estrategia activa")
            return self._rebuild(session, strategy)

    @timer(interval=3600)
    def nightly_rebuild(self):
        """Re-place every institution whose active strategy was last applied a day ago."""
        with self.db.session() as session:
            due = session.execute(select(Strategy.id).where(
                Strategy.state == "active",
                Strategy.applied_at < func.now() - timedelta(hours=24))).scalars().all()
        for strategy_id in due:
            try:
                with self.db.session() as session:
                    # still due, and not being rebuilt by another instance's timer: one that
                    # listed it too gets nothing here (locked, or applied since)
                    strategy = session.execute(select(Strategy).where(
                        Strategy.id == strategy_id, Strategy.state == "active",
                        Strategy.applied_at < func.now() - timedelta(hours=24))
                        .with_for_update(skip_locked=True)).scalar_one_or_none()
                    if strategy is not None:
                        self._rebuild(session, strategy)
            except Conflict:
                log.info("nightly rebuild of strategy %s skipped: one is running", strategy_id)

    def _rebuild(self, session, strategy: Strategy) -> dict:
        result = placement.rebuild(self.db, session, strategy)
        strategy.applied_at = func.now()
        counts, unplaced = {str(q): n for q, n in result["counts"].items()}, result["unplaced"]
        self.db.emit(session, "queues_rebuilt", {
            "institution_id": strategy.institution_id, "strategy_id": strategy.id,
            "counts": counts, "unplaced": unplaced})
        reports.snapshot_assigned(   # the institution's day, not the server's
            session, today_in(campaigns.institution_zone(session, strategy.institution_id)),
            strategy.institution_id, totals=result["totals"])
        return {"strategy_id": strategy.id, "counts": counts, "unplaced": unplaced,
                "collector_changes": result["collector_changes"]}

    def _announce(self, session, account_ids: list, agent_id) -> None:
        """``assignments_changed`` for accounts that all went to ``agent_id``."""
        for start in range(0, len(account_ids), placement.ANNOUNCE_BATCH):
            batch = account_ids[start:start + placement.ANNOUNCE_BATCH]
            self.db.emit(session, "assignments_changed", {
                "account_ids": batch, "agent_ids": [agent_id] * len(batch)})

    # --- working the queue ---------------------------------------------------------------

    @rpc
    def next_account(self):
        """Lease the caller's next account (or answer the one they already hold): one
        statement, its own transaction."""
        identity = self.caller.identity
        with self.db.one_statement() as conn:
            return working.next_account(conn, identity)

    @rpc
    def pull_outlook(self):
        """What waits in the caller's queues and why none of it may be handed out now."""
        identity = self.caller.identity
        with self.db.session() as session:
            return working.pull_outlook(session, identity)

    @rpc
    def release_account(self, account_id):
        identity = self.caller.identity
        with self.db.session() as session:
            working.release(session, identity, account_id)

    @rpc
    def my_worklist(self, query=None):
        identity = self.caller.identity
        query = load(WorklistQuery(), query or {})
        with self.db.session() as session:
            return working.worklist(session, identity, query["page"], query["per_page"])

    # --- supervising -----------------------------------------------------------------------

    @rpc
    def queue_board(self, strategy_id):
        identity = self.caller.require("queues.manage")
        with self.db.session() as session:
            return working.board(session, self._strategy(session, identity, strategy_id))

    @rpc
    def freeze_queue(self, queue_id, frozen=True):
        identity = self.caller.require("queues.manage")
        with self.db.session() as session:
            queue = self._queue(session, identity, queue_id)
            queue.frozen = bool(frozen)
            return {"queue_id": queue.id, "frozen": queue.frozen}

    @rpc
    def move_accounts(self, data):
        identity = self.caller.require("queues.manage")
        data = load(MoveAccounts(), data)
        with self.db.session() as session:
            queue = self._queue(session, identity, data["queue_id"])
            return {"moved": working.move_accounts(session, data["account_ids"], queue)}

    @rpc
    def reassign_agent(self, data):
        """Give one collector's accounts to another (or back to the queue)."""
        identity = self.caller.require("queues.manage")
        data = load(Reassign(), data)
        with self.db.session() as session:
            moved = working.reassign_agent(session, identity.institutions, data["from_agent_id"],
                                           data["to_agent_id"])
            self._announce(session, moved, data["to_agent_id"])
            return {"moved": len(moved)}

    # --- the projection ------------------------------------------------------------------------

    @event_handler("portfolio", "accounts_changed")
    def on_accounts_changed(self, payload):
        payload = contracts.AccountsChanged().load(payload)
        with self.db.session() as session:
            if self.db.first_time(session, payload["event_id"], "accounts_changed"):
                upsert_facts(session, payload["accounts"])

    # --- the contact log (activities) moves accounts in the queues ---------------------------

    @event_handler("activities", "activity_logged")
    def on_activity_logged(self, payload):
        """The agent's lease ends, the facts learn the contact (and the promise the entry
        made, in this one transaction), and the account rests until its callback or
        tomorrow."""
        payload = contracts.ActivityLogged().load(payload)
        with self.db.session() as session:
            if not self.db.first_time(session, payload["event_id"], "activity_logged"):
                return
            account = AccountFacts.account_id == payload["account_id"]
            last = AccountFacts.last_contact_at
            # the latest contact wins, whatever order the entries arrive in
            session.execute(update(AccountFacts).where(
                account, or_(last.is_(None), last <= payload["started_at"])).values(
                last_contact_at=payload["started_at"],
                last_result_code=payload["result_code"], updated_at=func.now()))
            facts = {}
            if payload.get("callback_at"):
                facts["callback_at"] = payload["callback_at"]
            if payload["promise_id"] is not None:
                facts.update(open_promise=True, broken_promise=False)
            if facts:
                session.execute(update(AccountFacts).where(account).values(
                    **facts, updated_at=func.now()))
            working.end_lease_after_activity(session, payload["account_id"], payload["agent_id"],
                                             payload["started_at"])

    @event_handler("activities", "callback_scheduled")
    def on_callback_scheduled(self, payload):
        payload = contracts.CallbackScheduled().load(payload)
        self._facts_changed(payload, "callback_scheduled", callback_at=payload["due_at"])

    @event_handler("activities", "dispute_opened")
    def on_dispute_opened(self, payload):
        """On hold: no one is handed the account while the dispute is open."""
        payload = contracts.DisputeOpened().load(payload)
        self._facts_changed(payload, "dispute_opened", open_dispute=True)

    @event_handler("activities", "dispute_resolved")
    def on_dispute_resolved(self, payload):
        payload = contracts.DisputeResolved().load(payload)
        self._facts_changed(payload, "dispute_resolved", open_dispute=False)

    @event_handler("activities", "contact_hold_changed")
    def on_contact_hold_changed(self, payload):
        """The contact policy holds (or frees) the debt: the pull skips it until then."""
        payload = contracts.ContactHoldChanged().load(payload)
        with self.db.session() as session:
            if self._update_facts(session, payload, "contact_hold_changed",
                                  contact_hold_until=payload["hold_until"]):
                working.hold(session, payload["account_id"], payload["hold_until"])

    @event_handler("activities", "promise_made")
    def on_promise_made(self, payload):
        """A promise its entry's ``activity_logged`` brought (``with_entry``) was taken there:
        nothing to do, not even a transaction."""
        payload = contracts.PromiseMade().load(payload)
        if payload["with_entry"]:
            return
        self._facts_changed(payload, "promise_made", open_promise=True, broken_promise=False)

    @event_handler("activities", "promise_kept")
    def on_promise_kept(self, payload):
        payload = contracts.PromiseKept().load(payload)
        self._facts_changed(payload, "promise_kept", open_promise=False, broken_promise=False)

    @event_handler("activities", "promise_broken")
    def on_promise_broken(self, payload):
        """A broken promise comes back to the front of its queue."""
        payload = contracts.PromiseBroken().load(payload)
        with self.db.session() as session:
            if self._update_facts(session, payload, "promise_broken", open_promise=False,
                                  broken_promise=True):
                working.to_the_front(session, payload["account_id"])

    def _facts_changed(self, payload, handler: str, **facts) -> None:
        with self.db.session() as session:
            if self._update_facts(session, payload, handler, **facts):
                working.rest_from_facts(session, payload["account_id"])

    def _update_facts(self, session, payload, handler: str, **facts) -> bool:
        """Once per event: set ``facts`` on the account's projection; False if seen."""
        if not self.db.first_time(session, payload["event_id"], handler):
            return False
        session.execute(update(AccountFacts)
                        .where(AccountFacts.account_id == payload["account_id"])
                        .values(**facts, updated_at=func.now()))
        return True

    @timer(interval=60)
    def wake_rested(self):
        """Accounts whose rest (worked today, callback) is over go back in the pull's way."""
        with self.db.session() as session:
            woken = working.wake_rested(session)
        if woken:
            log.info("%d rested accounts are ready again", woken)

    @event_handler("auth", "team_changed")
    def on_team_changed(self, payload):
        payload = contracts.TeamChanged().load(payload)
        with self.db.session() as session:
            if not self.db.first_time(session, payload["event_id"], "team_changed"):
                return
            session.execute(delete(TeamMember).where(TeamMember.team_id == payload["team_id"]))
            if payload["members"]:
                session.execute(insert(TeamMember).values([
                    {"team_id": payload["team_id"], "agent_id": m} for m in payload["members"]]))

    @event_handler("auth", "user_disabled")
    def on_user_disabled(self, payload):
        """A disabled collector holds nothing: leases end, accounts go back to the queue."""
        payload = contracts.UserDisabled().load(payload)
        with self.db.session() as session:
            if not self.db.first_time(session, payload["event_id"], "user_disabled"):
                return
            agent = payload["user_id"]
            session.execute(delete(Lease).where(Lease.agent_id == agent))
            session.execute(delete(TeamMember).where(TeamMember.agent_id == agent))
            moved = working.reassign_agent(session, None, agent, None)
            self._announce(session, moved, None)

    @rpc
    def resync_facts(self, institution_id):
        """Rebuild this institution's projection from the portfolio service, in batches."""
        identity = self.caller.require("queues.manage")
        identity.require_institution(institution_id)
        institution = self.portfolio.get_institution(institution_id)
        with self.db.session() as session:
            session.execute(insert(InstitutionRules).values(
                institution_id=institution_id, time_zone=institution["time_zone"],
                contact_from=institution["contact_from"], contact_until=institution["contact_until"])
                .on_conflict_do_update(index_elements=[InstitutionRules.institution_id], set_={
                    "time_zone": institution["time_zone"],
                    "contact_from": institution["contact_from"],
                    "contact_until": institution["contact_until"]}))
        with self.db.session() as session:
            started = session.execute(select(func.now())).scalar_one()
        after, total = 0, 0
        while True:
            page = self.portfolio.account_facts_page(institution_id, after, 5000)
            if not page:
                break
            with self.db.session() as session:
                upsert_facts(session, page)
            after, total = page[-1]["account_id"], total + len(page)
        with self.db.session() as session:  # accounts the portfolio no longer has
            session.execute(delete(AccountFacts).where(
                AccountFacts.institution_id == institution_id,
                AccountFacts.updated_at < started))
        return {"institution_id": institution_id, "accounts": total}

    # --- reports (reports.py): reports.view, within the caller's institutions -----------------

    @event_handler("portfolio", "payment_received")
    def on_payment_received(self, payload):
        """Credit the payment to the queue and arm the account is in (recovery rollup)."""
        payment = contracts.PaymentReceived().load(payload)
        with self.db.session() as session:
            if self.db.first_time(session, payment["event_id"], "payment_received"):
                reports.record_payment(session, payment)
                campaigns.record_payment(session, payment)

    @timer(interval=3600)
    def daily_assigned_snapshot(self):
        """Once a day per institution, what every queue and arm holds, dated by the
        institution's own day (rebuilds also snapshot their own)."""
        with self.db.session() as session:
            if self.db.only_one(session, "assigned_snapshot"):
                reports.snapshot_missing_days(session)

    @rpc
    def report_queues(self, institution_id=None):
        """The queues a report can be filtered by (names for the filters and rows)."""
        identity = self.caller.require("reports.view")
        with self.db.session() as session:
            return reports.queue_names(session, identity, institution_id)

    @rpc
    def report_recovery(self, query):
        identity = self.caller.require("reports.view")
        query = load(RecoveryQuery(), query)
        with self.db.session() as session:
            return reports.recovery(session, identity, query)

    @rpc
    def report_champion_challenger(self, query):
        identity = self.caller.require("reports.view")
        query = load(ChampionQuery(), query)
        with self.db.session() as session:
            return reports.champion_challenger(session, identity, query)

    # --- preventive campaigns (campaigns.py) -------------------------------------------------
    # Managed with queues.manage and messaging.send (a campaign sends messages); read with
    # queues.manage or reports.view. Runs and sends act as the platform (system identity):
    # the campaign is the institution's, checked against the caller when it is saved.

    def _campaign_manager(self) -> Identity:
        identity = self.caller.require("queues.manage")
        return identity.require("messaging.send")

    def _campaign_reader(self) -> Identity:
        identity = self.caller.identity
        if not identity.has("reports.view"):
            identity.require("queues.manage")
        return identity

    def _campaign(self, session, identity: Identity, campaign_id, lock=False) -> Campaign:
        campaign = session.get(Campaign, campaign_id, with_for_update=lock or None) \
            if isinstance(campaign_id, int) else None
        if campaign is None or not identity.may_access_institution(campaign.institution_id):
            raise NotFound("Campaña no encontrada")
        return campaign

    def _check_template(self, data: dict) -> None:
        """The template must be an active one of the campaign's institution (asked of
        messaging as the platform: the caller's scope was checked on the institution)."""
        try:
            template = self.acting.system.messaging.get_template(data["template_id"])
        except NotFound:
            template = None
        if template is None or template["institution_id"] != data["institution_id"]:
            raise InvalidInput("Plantilla inválida", {"template_id": [
                "No existe una plantilla con ese id en la institución"]})
        if not template["active"]:
            raise InvalidInput("Plantilla inactiva", {"template_id": ["La plantilla está inactiva"]})
        # a template printing the link can only be filled when the campaign sends one
        prints_link = any("portal_link" in (template.get(f"{part}_{lang}") or "")
                          for part in ("subject", "text", "html") for lang in ("es", "en"))
        if prints_link and not data.get("portal_link"):
            raise InvalidInput("Plantilla con liga al portal", {"portal_link": [
                "La plantilla imprime la liga al portal: marque «Incluir liga al portal»"]})

    @rpc
    def list_campaigns(self, institution_id=None):
        identity = self._campaign_reader()
        query = select(Campaign).order_by(Campaign.institution_id, Campaign.name)
        if institution_id is not None:
            identity.require_institution(institution_id)
            query = query.where(Campaign.institution_id == institution_id)
        elif not identity.all_institutions:
            query = query.where(Campaign.institution_id.in_(list(identity.institutions) or [-1]))
        with self.db.session() as session:
            rows = session.execute(query).scalars().all()
            last = dict(session.execute(select(CampaignRun.campaign_id, func.max(CampaignRun.day))
                                        .group_by(CampaignRun.campaign_id)).all())
            return [{**CampaignOut().dump(c), "last_run_day": last.get(c.id)} for c in rows]

    @rpc
    def get_campaign(self, campaign_id):
        identity = self._campaign_reader()
        with self.db.session() as session:
            return CampaignOut().dump(self._campaign(session, identity, campaign_id))

    @rpc
    def preview_campaign(self, data):
        """How many accounts the conditions pick today (before saving), and the hold-out."""
        identity = self._campaign_manager()
        data = load(CampaignPreviewOf(), data)
        identity.require_institution(data["institution_id"])
        with self.db.session() as session:
            if data["campaign_id"] is not None:
                campaign = self._campaign(session, identity, data["campaign_id"])
                if campaign.institution_id != data["institution_id"]:
                    raise NotFound("Campaña no encontrada", {"campaign_id": ["No existe"]})
            return campaigns.preview(session, data["institution_id"], data["conditions"],
                                     data["holdout_share"], data["campaign_id"])

    @rpc
    def save_campaign(self, data, campaign_id=None):
        identity = self._campaign_manager()
        data = load(CampaignWrite(), data)
        identity.require_institution(data["institution_id"])
        self._check_template(data)
        with self.db.session() as session:
            clash = session.execute(select(Campaign.id).where(
                Campaign.institution_id == data["institution_id"], Campaign.name == data["name"],
                Campaign.id != (campaign_id or 0))).first()
            if clash:
                raise Conflict("Ya existe una campaña con ese nombre",
                               {"name": ["Ya existe en esta institución"]})
            if campaign_id is None:
                campaign = Campaign(created_by=identity.user_id, **data)
                session.add(campaign)
            else:
                campaign = self._campaign(session, identity, campaign_id, lock=True)
                if campaign.institution_id != data["institution_id"]:
                    raise InvalidInput("Institución distinta", {"institution_id": [
                        "Una campaña no cambia de institución"]})
                for key, value in data.items():
                    setattr(campaign, key, value)
                campaign.updated_at = func.now()
            session.flush()
            session.refresh(campaign)
            return CampaignOut().dump(campaign)

    @rpc
    def set_campaign_state(self, campaign_id, state):
        """Pause (no runs, pending sends wait) or resume a campaign."""
        identity = self._campaign_manager()
        if state not in ("active", "paused"):
            raise InvalidInput("Estado inválido", {"state": ["active o paused"]})
        with self.db.session() as session:
            campaign = self._campaign(session, identity, campaign_id, lock=True)
            campaign.state, campaign.updated_at = state, func.now()
            session.flush()
            session.refresh(campaign)
            return CampaignOut().dump(campaign)

    @rpc
    def run_campaign(self, campaign_id):
        """Pick the campaign's accounts now (a manual run; the day's scheduled run still
        happens and skips what was picked for the same due date); the sends follow."""
        identity = self._campaign_manager()
        with self.db.session() as session:
            campaign = self._campaign(session, identity, campaign_id, lock=True)
            if campaign.state != "active":
                raise Conflict("La campaña está en pausa", {"state": ["Reanúdela para ejecutarla"]})
            zone = campaigns.institution_zone(session, campaign.institution_id)
            run = campaigns.manual_run(session, campaign, campaigns.local_now(zone).date(),
                                       identity.user_id)
            campaigns.pick(session, campaign, run, zone)
            self._announce_run(session, campaign, run)
            return {"run_id": run.id, "day": run.day, "targeted": run.targeted,
                    "held_out": run.held_out}

    @rpc
    def campaign_report(self, campaign_id):
        identity = self._campaign_reader()
        with self.db.session() as session:
            campaign = self._campaign(session, identity, campaign_id)
            return {**campaigns.report(session, campaign), "campaign": CampaignOut().dump(campaign)}

    def _announce_run(self, session, campaign: Campaign, run: CampaignRun) -> None:
        self.db.emit(session, "campaign_ran", {
            "campaign_id": campaign.id, "run_id": run.id, "institution_id": campaign.institution_id,
            "day": run.day, "kind": run.kind, "targeted": run.targeted, "held_out": run.held_out})

    @timer(interval=60)
    def run_scheduled_campaigns(self):
        """Each active campaign's run of the day, once its hour has come in the institution's
        zone: whichever instance inserts the (campaign, day) run row picks the accounts."""
        with self.db.session() as session:
            active = session.execute(select(Campaign.id, Campaign.institution_id).where(
                Campaign.state == "active")).all()
        ran = 0
        for campaign_id, institution_id in active:
            with self.db.session() as session:
                campaign = session.get(Campaign, campaign_id)
                zone = campaigns.institution_zone(session, institution_id)
                day = campaigns.due_today(campaign, zone)
                if day is None or session.execute(select(CampaignRun.id).where(
                        CampaignRun.campaign_id == campaign_id, CampaignRun.day == day,
                        CampaignRun.kind == "scheduled")).first():
                    continue
                run = campaigns.claim_scheduled_run(session, campaign, day)
                if run is None:
                    continue   # another instance made it first
                campaigns.pick(session, campaign, run, zone)
                self._announce_run(session, campaign, run)
                ran += 1
                log.info("campaign %s: run %s of %s picked %d accounts (%d held out)",
                         campaign_id, run.id, day, run.targeted, run.held_out)
        return ran

    @timer(interval=campaigns.SEND_INTERVAL)
    def send_campaign_messages(self):
        """Send what the runs picked, a batch at a time; each target's outcome commits with
        its batch. A send messaging refuses for a reason of its own fails that target; an
        unreachable messaging leaves the rest pending for the next tick."""
        sent = 0
        while True:
            with self.db.session() as session:
                batch = campaigns.claim_pending(session)
                if not batch:
                    return sent
                for target, campaign in batch:
                    try:
                        answer = self.acting.system.messaging.send_campaign_message(
                            campaigns.message_request(target, campaign))
                    except DomainError as exc:
                        problems = "; ".join(f"{k}: {', '.join(map(str, v))}"
                                             for k, v in (exc.fields or {}).items())
                        campaigns.record_failure(target, f"{exc.message} {problems}".strip())
                        continue
                    except Exception:  # noqa: BLE001 - messaging away: retried next tick
                        log.exception("campaign %s: target %s not sent yet", campaign.id,
                                      target.id)
                        return sent
                    campaigns.record_answer(target, answer)
                    sent += 1

    @event_handler("messaging", "message_sent")
    def on_message_sent(self, payload):
        payload = contracts.MessageSent().load(payload)
        if payload.get("campaign_id"):
            with self.db.session() as session:
                if self.db.first_time(session, payload["event_id"], "message_sent"):
                    campaigns.record_delivery(session, payload, True)

    @event_handler("messaging", "message_failed")
    def on_message_failed(self, payload):
        payload = contracts.MessageFailed().load(payload)
        if payload.get("campaign_id"):
            with self.db.session() as session:
                if self.db.first_time(session, payload["event_id"], "message_failed"):
                    campaigns.record_delivery(session, payload, False)

    # --- helpers ------------------------------------------------------------------------------

    def _strategy(self, session, identity: Identity, strategy_id, lock=False) -> Strategy:
        strategy = session.get(Strategy, strategy_id, with_for_update=lock or None)
        if strategy is None or not identity.may_access_institution(strategy.institution_id):
            raise NotFound("Estrategia no encontrada")
        return strategy

    def _queue(self, session, identity: Identity, queue_id) -> Queue:
        queue = session.get(Queue, queue_id)
        if queue is None:
            raise NotFound("Fila no encontrada")
        self._strategy(session, identity, queue.strategy_id)
        return queue

    def _check_teams(self, session, queues) -> None:
        known = set(session.execute(select(TeamMember.team_id).distinct()).scalars())
        problems = {f"queues.{i}.team_id": ["El equipo no existe o no tiene gestores"]
                    for i, q in enumerate(queues) if q["team_id"] not in known}
        if problems:
            raise InvalidInput("Filas sin equipo de gestores", problems)

    def _strategy_out(self, session, strategy: Strategy) -> dict:
        queues = session.execute(select(Queue).where(Queue.strategy_id == strategy.id)
                                 .order_by(Queue.position)).scalars().all()
        return {**StrategyOut().dump(strategy), "queues": QueueOut(many=True).dump(queues)}


#: the facts' columns as an event carries them (JSON), with their SQL types
FACT_TYPES = {"account_id": "bigint", "institution_id": "integer", "debtor_id": "bigint",
              "stage": "varchar", "status_id": "integer", "days_past_due": "integer",
              "balance": "numeric", "overdue_amount": "numeric", "product": "varchar",
              "state": "varchar", "time_zone": "varchar", "next_due_date": "date",
              "do_not_contact": "boolean"}
assert set(FACT_TYPES) == {"account_id", *FACT_COLUMNS}
#: One statement per batch whatever its size (an import announces 20,000 accounts at a
#: time): the batch goes in as one JSON parameter that PostgreSQL unpacks itself, instead
#: of a VALUES list of 12 parameters per row built and bound in Python. The last fact of
#: an account in the batch wins.
UPSERT_FACTS_SQL = text(
    "INSERT INTO queues.account_facts (account_id, {cols}, updated_at) "
    "SELECT DISTINCT ON (account_id) account_id, {values}, now() "
    "FROM ROWS FROM (json_to_recordset(CAST(:facts AS json)) AS ({types})) "
    "WITH ORDINALITY AS f({names}, n) "
    "ORDER BY account_id, n DESC "
    "ON CONFLICT (account_id) DO UPDATE SET {updates}, updated_at = now()".format(
        cols=", ".join(FACT_COLUMNS),
        # an event from before the fact existed says nothing of it: false
        values=", ".join("COALESCE(do_not_contact, false)" if c == "do_not_contact" else c
                         for c in FACT_COLUMNS),
        types=", ".join(f"{name} {kind}" for name, kind in FACT_TYPES.items()),
        names=", ".join(FACT_TYPES),
        updates=", ".join(f"{c} = EXCLUDED.{c}" for c in FACT_COLUMNS)))


def upsert_facts(session, accounts: list[dict]) -> None:
    """Set-based upsert of a batch of account facts (the projection is idempotent)."""
    if accounts:
        session.execute(UPSERT_FACTS_SQL, {"facts": json.dumps(accounts, default=str)})

