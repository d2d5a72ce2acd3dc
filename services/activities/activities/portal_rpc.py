"""The activities service's entrypoints for the debtor portal (portal.py), mixed into
``ActivitiesService``. Each takes only a debtor's portal session (``require_debtor``) and
acts on an account the portfolio answers as that debtor's own (another's: NotFound)."""
from __future__ import annotations

from recaudo_common.acting import ActingRpc
from recaudo_common.errors import InvalidInput, NotFound
from recaudo_common.service import rpc
from recaudo_common.validation import load

from . import compliance, portal
from .contracts import (PortalCallback, PortalDispute, PortalPreferences, PortalPromise,
                             PortalSettlement)


class PortalEntrypoints:
    acting = ActingRpc()

    def _debtor(self):
        return self.caller.identity.require_debtor()

    def _own(self, account_id) -> dict:
        return self.portfolio.portal_account(account_id)

    def _own_accounts(self) -> list[dict]:
        return [a["account"] for a in self.portfolio.portal_overview()["accounts"]]

    @rpc
    def portal_record_access(self):
        """A portal session was opened: an entry on each of the debtor's accounts."""
        self._debtor()
        accounts = self._own_accounts()
        with self.db.session() as session:
            for account in accounts:
                portal.record(session, account, "access", "Acceso al portal del deudor")
        return {"recorded": len(accounts)}

    @rpc
    def portal_view(self):
        identity = self._debtor()
        accounts = self._own_accounts()
        with self.db.session() as session:
            return portal.view(session, accounts, identity.debtor_id)

    @rpc
    def portal_promise(self, data):
        self._debtor()
        data = load(PortalPromise(), data)
        account = self._own(data["account_id"])
        with self.db.session() as session:
            return portal.promise(session, self.db, account, data["promise"])

    @rpc
    def portal_accept_offer(self, data):
        self._debtor()
        data = load(PortalSettlement(), data)
        account = self._own(data["account_id"])
        with self.db.session() as session:
            return portal.accept_offer(session, self.db, account, data["discount_pct"])

    @rpc
    def portal_dispute(self, data):
        identity = self._debtor()
        data = load(PortalDispute(), data)
        account = self._own(data["account_id"])
        with self.db.session() as session:
            return portal.dispute(session, self.db, identity, account, data, self._evidence)

    def _evidence(self, version_id: int, dispute_id: int) -> dict:
        """The documents service files the debtor's own upload with the dispute (asked as
        the debtor); one that is not theirs is refused on the field."""
        try:
            return self.documents.portal_dispute_evidence(version_id, dispute_id)
        except NotFound:
            raise InvalidInput("Documento no encontrado", {"document_version_id": [
                "No es un documento que usted haya subido"]}) from None

    @rpc
    def portal_callback(self, data):
        self._debtor()
        data = load(PortalCallback(), data)
        account = self._own(data["account_id"])
        with self.db.session() as session:
            return portal.callback(session, self.db, account, data)

    @rpc
    def portal_preferences(self, data):
        identity = self._debtor()
        data = load(PortalPreferences(), data)
        accounts = self._own_accounts()
        debtor = {"id": identity.debtor_id, "institution_id": identity.debtor_institution_id}
        views = [self.acting.system.portfolio.get_contact_view(a["id"]) for a in accounts]
        with self.db.session() as session:
            saved = portal.preferences(session, identity, debtor, accounts, data)
            for view in views:   # their word may hold or free their debts in the queues
                compliance.announce_hold(session, self.db, view)
            return saved
