"""The portfolio's entrypoints for the debtor portal (portal.py), mixed into
``PortfolioService``."""
from __future__ import annotations

from recaudo_common import contracts
from recaudo_common.service import event_handler, rpc

from . import aging, portal
from .contracts import AccountOut


class PortalEntrypoints:
    @rpc
    def check_portal_factor(self, institution_id, debtor_id, kind, answer):
        """For auth opening a portal link, as the platform: True when right."""
        portal.require_platform(self.caller.identity)
        with self.db.session() as session:
            return portal.factor_matches(session, institution_id, debtor_id, kind, answer)

    @rpc
    def portal_overview(self):
        """The debtor's own accounts, for their portal session."""
        identity = self.caller.identity
        with self.db.session() as session:
            return portal.overview(session, identity)

    @rpc
    def portal_account(self, account_id):
        """One of the debtor's own accounts (others answer like missing), for the services
        a portal session asks to act on it."""
        identity = self.caller.identity
        with self.db.session() as session:
            return AccountOut().dump(portal.own_account(session, identity, account_id))

    @event_handler("activities", "settlement_kept")
    def on_settlement_kept(self, payload):
        """A settlement paid closes the account's debt (an adjustment movement)."""
        settlement = contracts.SettlementKept().load(payload)
        with self.db.session() as session:
            if not self.db.first_time(session, settlement["event_id"], "settlement_kept"):
                return
            closed = portal.close_by_settlement(session, settlement)
            if closed is not None:
                self.db.emit(session, "accounts_changed",
                             {"accounts": aging.facts(session, [closed])})
