"""The portfolio's entrypoints for the debtor portal (portal.py), mixed into
``PortfolioService``."""
from __future__ import annotations

from recaudo_common.service import rpc

from . import portal
from .schemas import AccountOut


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
