"""The auth service's entrypoints for the debtor portal (portal.py), mixed into
``AuthService``. Opening a link and resolving a debtor session take no identity (the
link's token and the answer, or the session's id, are the authority); the rest check the
caller's."""
from __future__ import annotations

import re

from marshmallow import ValidationError, fields, validate, validates_schema

from recaudo_common import references
from recaudo_common.acting import ActingRpc
from recaudo_common.errors import InvalidInput, NotAuthenticated
from recaudo_common.service import rpc
from recaudo_common.validation import Schema, load

from . import portal
from .models import SECOND_FACTORS

REFUSALS = (NotAuthenticated,)


class PortalLinkCreate(Schema):
    """Where the link goes: an email address, or a phone number for an SMS (kept in the
    link's row and its audit, never the token)."""

    channel = fields.String(load_default="email", validate=validate.OneOf(("email", "sms")))
    sent_to = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=254))
    #: the platform's own sends only (a campaign): one link per key (portal.create_link)
    key = fields.String(load_default=None, allow_none=True,
                        validate=validate.Length(min=1, max=120))

    @validates_schema
    def _sent_to(self, data, **_):
        to = data.get("sent_to")
        if to is None:
            return
        if data["channel"] == "email":
            if not re.fullmatch(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+", to):
                raise ValidationError("Un correo electrónico", "sent_to")
        elif not re.fullmatch(r"\+?[0-9][0-9 ()-]{4,28}[0-9]", to):
            raise ValidationError("Un número de teléfono", "sent_to")


class PortalOpen(Schema):
    institution_id = fields.Integer(required=True)
    token = fields.String(required=True, validate=validate.Length(min=1, max=200))
    answer = fields.String(required=True, validate=validate.Length(min=1, max=60))
    language = fields.String(load_default="es", validate=validate.OneOf(("es", "en")))


class PortalSettingsWrite(Schema):
    second_factor = fields.String(required=True, validate=validate.OneOf(SECOND_FACTORS))
    link_ttl_hours = fields.Integer(load_default=72, validate=validate.Range(min=1, max=720))


def _institution(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("Institución inválida", {"institution_id": ["Se esperaba un número"]})
    return value


class PortalEntrypoints:
    acting = ActingRpc()

    @rpc
    def create_portal_link(self, debtor_id, data=None):
        """A personal link for a debtor the caller works (its token answered once)."""
        identity = self.caller.require("activities.log")
        debtor = self.portfolio.debtor_scope(debtor_id)   # the caller's reach: or NotFound
        data = load(PortalLinkCreate(), data or {})
        if data["key"] is not None and not identity.username.startswith("system:"):
            raise InvalidInput("Datos inválidos", {"key": ["Sólo para envíos de la plataforma"]})
        with self._session() as session:
            return portal.create_link(session, identity, debtor, data["channel"],
                                      data["sent_to"], data["key"])

    @rpc
    def open_portal_link(self, data, address=None):
        """The link and its second factor: a debtor session, or the one refusal."""
        data = load(PortalOpen(), data)
        with self._session(commit_on=REFUSALS) as session:
            link = portal.usable_link(session, data["institution_id"], data["token"])
            kind = portal.settings_of(session, link.institution_id)["second_factor"]
            if not self.acting.system.portfolio.check_portal_factor(
                    link.institution_id, link.debtor_id, kind, data["answer"]):
                portal.wrong_answer(session, link, address)
            return portal.open_session(session, link, address, data["language"])

    @rpc
    def resolve_portal_session(self, session_token):
        if not isinstance(session_token, str) or not session_token.startswith(
                portal.SESSION_PREFIX) or len(session_token) > 200:
            raise NotAuthenticated("Sesión inválida")
        with self._session(commit_on=REFUSALS) as session:
            return portal.resolve_session(session, session_token)

    @rpc
    def close_portal_session(self, session_token):
        if isinstance(session_token, str) and len(session_token) <= 200:
            with self._session() as session:
                portal.close_session(session, session_token)

    @rpc
    def portal_settings(self, institution_id):
        """What the portal asks after a link is opened: public (the form shows it before
        any link is checked, the same for any institution id)."""
        with self.db.session() as session:
            return portal.settings_of(session, _institution(institution_id))

    @rpc
    def save_portal_settings(self, institution_id, data):
        identity = self.caller.require("institutions.manage")
        identity.require_institution(_institution(institution_id))
        data = load(PortalSettingsWrite(), data)
        references.require_institution(self.portfolio, identity, institution_id)
        with self._session() as session:
            return portal.save_settings(session, identity, institution_id, data)
