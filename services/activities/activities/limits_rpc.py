"""The activities service's entrypoints for plan limits and the approval queue
(limits.py), mixed into ``ActivitiesService``."""
from __future__ import annotations

from recaudo_common.errors import InvalidInput, PermissionDenied
from recaudo_common.service import rpc
from recaudo_common.validation import load

from . import catalogue, limits, promises
from .contracts import ApprovalDecision, ApprovalQuery, LimitsWrite, PromiseCheck


def _id(value, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("Identificador inválido", {field: ["Se esperaba un número"]})
    return value


class LimitsEntrypoints:
    """Whoever works an institution's accounts reads its limits (the activity form shows
    them); administrators (activities.manage) write them; approvers decide the queue."""

    @rpc
    def get_plan_limits(self, institution_id):
        identity = self.caller.require("activities.read")
        identity.require_institution(_id(institution_id, "institution_id"))
        with self.db.session() as session:
            self._catalogue(session, identity, institution_id)
            return limits.describe(limits.limits_of(session, institution_id))

    @rpc
    def account_limits(self, account_id):
        """The limits that apply to the account (its band by stage and days past due), as
        the activity form shows them before anything is logged."""
        identity = self.caller.require("activities.read")
        account = self._account(identity, account_id)
        with self.db.session() as session:
            self._catalogue(session, identity, account["institution_id"])
            return limits.applying(limits.limits_of(session, account["institution_id"]),
                                   account)

    @rpc
    def check_promise(self, data):
        """What logging this promise, plan or settlement on the account would do - made at
        once, or waiting for an approver, and why - judged exactly as ``log_activity``
        judges it (a settlement with its lump sum and day); nothing is written."""
        identity = self.caller.require("activities.log")
        data = load(PromiseCheck(), data)
        account = self._account(identity, data["account_id"])
        with self.db.session() as session:
            self._catalogue(session, identity, account["institution_id"])
            today = catalogue.today_in(
                catalogue.settings_of(session, account["institution_id"]).time_zone)
            rules = limits.limits_of(session, account["institution_id"])
            if data["settlement"] is not None:
                asked = data["settlement"]
                terms, approver, reasons = limits.settlement(
                    rules, account, asked["discount_pct"], today, "settlement.discount_pct",
                    asked.get("pay_by"))
                return {"within": approver is None, "reasons": reasons, "approver": approver,
                        "settlement": terms}
            return limits.plan_verdict(rules, promises.plan_of(data["promise"], today), today)

    @rpc
    def save_plan_limits(self, institution_id, data):
        identity = self.caller.require("activities.manage")
        identity.require_institution(_id(institution_id, "institution_id"))
        data = load(LimitsWrite(), data)
        with self.db.session() as session:
            self._catalogue(session, identity, institution_id)
            return limits.save(session, identity, institution_id, data)

    @rpc
    def list_approvals(self, query=None):
        """The approval queue of the caller's institutions, oldest first (pending unless
        ``state`` says otherwise)."""
        identity = self.caller.identity
        if not limits.may_list(identity):
            raise PermissionDenied("Falta el permiso promises.approve",
                                   {"permission": ["promises.approve"]})
        query = load(ApprovalQuery(), query or {})
        with self.db.session() as session:
            return limits.listing(session, identity, query)

    @rpc
    def decide_approval(self, approval_id, data):
        identity = self.caller.identity
        if not limits.may_list(identity):
            raise PermissionDenied("Falta el permiso promises.approve",
                                   {"permission": ["promises.approve"]})
        approval_id = _id(approval_id, "approval_id")
        data = load(ApprovalDecision(), data)
        with self.db.session() as session:
            institution_id = limits.institution_of(session, approval_id)
            today = catalogue.today_in(catalogue.settings_of(session, institution_id).time_zone) \
                if institution_id is not None else None
            return limits.decide(session, self.db, identity, approval_id, data, today)

    @rpc
    def account_approvals(self, account_id):
        identity = self.caller.require("activities.read")
        account = self._account(identity, account_id)
        with self.db.session() as session:
            return limits.for_account(session, account["id"])
