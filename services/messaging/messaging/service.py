"""Entrypoints of the messaging service.

Debtors and accounts belong to the portfolio service and are asked there with the
caller's own identity (so scope rules apply here as there); the contact log belongs to
the activities service; files to the documents service. The sync and delivery timers
act as the platform itself (``self.acting.system``: a signed system identity), since no user is
behind them.
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid as uuidlib
from datetime import datetime, timezone

from nameko.rpc import RpcProxy
from nameko.timer import timer
from nameko.web.handlers import http
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from recaudo_common import contact_policy, contracts, references
from recaudo_common.acting import ActingRpc
from recaudo_common.config import settings
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput, NotFound
from recaudo_common.localtime import today_in
from recaudo_common.service import ServiceBase, event_handler, rpc
from recaudo_common.validation import load, page_of

from . import (attachments, compliance, contact_log, crypto, delivery, inbound, mailsearch, mailsync,
               parsing, portal_link, sms, sms_delivery, templates)
from .idle import mailbox_idle
from .partner_entrypoints import PartnerWebhooks
from .models import (Base, InboundMessage, InstitutionSettings, Mailbox, MatchPattern,
                     OutboundMessage, SmsMessage, SmsSettings, Template)
from .contracts import (Assign, InboundDetail, InboundOut, InboundQuery, MailboxOut, MailboxWrite,
                        MessagingSettingsOut, MessagingSettingsWrite, OutboundDetail, OutboundOut,
                        OutboundQuery, PatternOut, PatternWrite, PreviewRequest, SearchQuery,
                        SendCampaignMessage, SendEmail, SendFax, SendPortalLinkSms, SendReport,
                        SendSms, SmsOut,
                        SmsPreviewRequest, SmsSettingsOut, SmsSettingsWrite, TemplateOut,
                        TemplateWrite)

log = logging.getLogger(__name__)

#: why a campaign's message was not sent although the policy had nothing against it
NO_ADDRESS = "no_address"
SYNC_INTERVAL = 30
DELIVERY_INTERVAL = 2
SETTLE_INTERVAL = 10
FAX_NUMBER = re.compile(r"^\+?[0-9]{6,20}$")


class MessagingService(PartnerWebhooks, ServiceBase):
    name = "messaging"
    db = Database(Base)
    portfolio = RpcProxy("portfolio")
    activities = RpcProxy("activities")
    documents = RpcProxy("documents")
    acting = ActingRpc()

    # --- helpers ------------------------------------------------------------------------------

    def _mailbox(self, session, identity, mailbox_id) -> Mailbox:
        mailbox = session.get(Mailbox, int(mailbox_id)) if isinstance(mailbox_id, int) else None
        if mailbox is None or not identity.may_access_institution(mailbox.institution_id):
            raise NotFound("Buzón no encontrado")
        return mailbox

    def _debtor_context(self, identity, account_id):
        """The account as the caller may see it, and its contact view (debtor, institution,
        phones, emails, addresses: what templates and the contact policy use), in one call."""
        if not isinstance(account_id, int) or isinstance(account_id, bool):
            raise InvalidInput("Cuenta inválida", {"account_id": ["Se esperaba un número"]})
        view = self.portfolio.get_contact_view(account_id)
        identity.require_institution(view["account"]["institution_id"])
        return view["account"], view

    def _template(self, session, identity, template_id, institution_id) -> Template:
        template = session.get(Template, template_id)
        if template is None or not identity.may_access_institution(template.institution_id):
            raise NotFound("Plantilla no encontrada", {"template_id": ["No existe"]})
        if template.institution_id != institution_id:
            raise InvalidInput("Plantilla de otra institución",
                               {"template_id": ["La plantilla es de otra institución"]})
        if not template.active:
            raise InvalidInput("Plantilla inactiva", {"template_id": ["La plantilla está inactiva"]})
        return template

    def _render(self, template: Template, language, account, view, portal_link=None) -> dict:
        # ``{{ today }}`` is the institution's day, not the server's (UTC) one
        ctx = templates.context(view["debtor"], account, view["institution"],
                                today_in(view["institution"].get("time_zone")), portal_link)
        return templates.render(TemplateOut().dump(template), language, ctx)

    def _compliance(self, identity, view, channel: str, to: str, override) -> str | None:
        """The stored policy's verdict (activities judges and logs it: compliance.py);
        refused unless an admin overrides with a reason. Answers the recorded justification
        (None when no override was needed)."""
        return compliance.enforce(compliance.judged(self.activities, view["account"]["id"],
                                                    channel, to, override))

    def _sending_mailbox(self, session, identity, institution_id, mailbox_id) -> Mailbox:
        if mailbox_id is not None:
            mailbox = self._mailbox(session, identity, mailbox_id)
            if mailbox.institution_id != institution_id or not mailbox.active:
                raise InvalidInput("Buzón inválido", {"mailbox_id": ["No es un buzón activo de "
                                                                     "la institución"]})
            return mailbox
        settings = session.get(InstitutionSettings, institution_id)
        if settings and settings.default_mailbox_id:
            mailbox = session.get(Mailbox, settings.default_mailbox_id)
            if mailbox is not None and mailbox.active:
                return mailbox
        mailbox = session.execute(select(Mailbox).where(
            Mailbox.institution_id == institution_id, Mailbox.active).order_by(Mailbox.id)
            .limit(1)).scalar_one_or_none()
        if mailbox is None:
            raise InvalidInput("Sin buzón de salida", {"mailbox_id": [
                "La institución no tiene un buzón configurado para enviar"]})
        return mailbox

    # --- mailboxes --------------------------------------------------------------------------

    @rpc
    def list_mailboxes(self, institution_id=None):
        """Mailboxes of the caller's institutions (senders pick one; admins edit them)."""
        identity = self.caller.identity
        if not (identity.has("messaging.send") or identity.has("messaging.manage")):
            identity.require("messaging.manage")
        with self.db.session() as session:
            query = select(Mailbox).order_by(Mailbox.institution_id, Mailbox.name)
            if institution_id is not None:
                identity.require_institution(institution_id)
                query = query.where(Mailbox.institution_id == institution_id)
            elif not identity.all_institutions:
                query = query.where(Mailbox.institution_id.in_(identity.institutions or (-1,)))
            return MailboxOut(many=True).dump(session.execute(query).scalars().all())

    @rpc
    def get_mailbox(self, mailbox_id):
        identity = self.caller.require("messaging.manage")
        with self.db.session() as session:
            return MailboxOut().dump(self._mailbox(session, identity, mailbox_id))

    @rpc
    def save_mailbox(self, data, mailbox_id=None):
        """Create or edit a mailbox; passwords are encrypted, an empty one keeps the old."""
        identity = self.caller.require("messaging.manage")
        data = load(MailboxWrite(), data)
        references.require_institution(self.portfolio, identity, data["institution_id"])
        with self.db.session() as session:
            clash = session.execute(select(Mailbox.id).where(
                Mailbox.institution_id == data["institution_id"], Mailbox.name == data["name"],
                Mailbox.id != (mailbox_id or 0))).first()
            if clash:
                raise Conflict("Ya existe ese nombre", {"name": ["Ya existe en esta institución"]})
            if mailbox_id is None:
                if not data.get("imap_password"):
                    raise InvalidInput("Falta la contraseña", {"imap_password": ["Requerida"]})
                mailbox = Mailbox(imap_password="")
                session.add(mailbox)
            else:
                mailbox = self._mailbox(session, identity, mailbox_id)
                if mailbox.institution_id != data["institution_id"]:
                    raise InvalidInput("No se cambia de institución",
                                       {"institution_id": ["Un buzón no cambia de institución"]})
            server_changed = mailbox_id is not None and (
                (mailbox.imap_host, mailbox.imap_port, mailbox.imap_user, mailbox.imap_folder) !=
                (data["imap_host"], data["imap_port"], data["imap_user"], data["imap_folder"]))
            for key, value in data.items():
                if key in ("imap_password", "smtp_password"):
                    if value:
                        setattr(mailbox, key, crypto.encrypt(value))
                    continue
                setattr(mailbox, key, value)
            if server_changed:   # another folder: its UIDs mean nothing to the old position
                mailbox.uidvalidity, mailbox.last_uid = None, 0
            session.flush()
            return MailboxOut().dump(mailbox)

    @rpc
    def test_mailbox(self, mailbox_id):
        """Log in and open the folder now: ok, or the reason it cannot."""
        identity = self.caller.require("messaging.manage")
        with self.db.session() as session:
            mailbox = self._mailbox(session, identity, mailbox_id)
            session.expunge(mailbox)
        try:
            return mailsync.check(mailbox)
        except mailsync.MailError as exc:
            return {"ok": False, "error": str(exc)}

    @rpc
    def sync_mailbox(self, mailbox_id):
        """Sync one mailbox now (the timer does every mailbox every SYNC_INTERVAL s)."""
        identity = self.caller.require("messaging.manage")
        with self.db.session() as session:
            self._mailbox(session, identity, mailbox_id)
        return inbound.sync_one(self.db, self.acting, int(mailbox_id), wait_seconds=120)

    @timer(interval=SYNC_INTERVAL)
    def sync_all(self):
        """Every active mailbox, each on its own: one unreachable server or wrong password
        is recorded on its mailbox and does not hold up the others."""
        with self.db.session() as session:
            ids = session.execute(select(Mailbox.id).where(Mailbox.active).order_by(Mailbox.id)
                                  ).scalars().all()
        for mailbox_id in ids:
            inbound.sync_one(self.db, self.acting, mailbox_id)

    @mailbox_idle
    def on_new_mail(self, mailbox_id):
        """IMAP IDLE said mail arrived in this mailbox: sync it now, not at the next poll."""
        inbound.sync_one(self.db, self.acting, mailbox_id, wait_seconds=30)

    # --- settings and patterns ---------------------------------------------------------------

    @rpc
    def get_settings(self, institution_id):
        identity = self.caller.require("messaging.manage")
        identity.require_institution(institution_id)
        with self.db.session() as session:
            settings = session.get(InstitutionSettings, institution_id) or \
                InstitutionSettings(institution_id=institution_id)
            return MessagingSettingsOut().dump(settings)

    @rpc
    def save_settings(self, institution_id, data):
        identity = self.caller.require("messaging.manage")
        references.require_institution(self.portfolio, identity, institution_id)
        data = load(MessagingSettingsWrite(), data)
        with self.db.session() as session:
            if data.get("default_mailbox_id") is not None:
                mailbox = session.get(Mailbox, data["default_mailbox_id"])
                if mailbox is None or mailbox.institution_id != institution_id:
                    raise InvalidInput("Buzón inválido", {"default_mailbox_id": [
                        "No es un buzón de la institución"]})
            settings = session.get(InstitutionSettings, institution_id, with_for_update=True)
            if settings is None:
                settings = InstitutionSettings(institution_id=institution_id)
                session.add(settings)
            for key, value in data.items():
                setattr(settings, key, value.lower() if key == "fax_domain" and value else value)
            session.flush()
            return MessagingSettingsOut().dump(settings)

    @rpc
    def list_patterns(self, institution_id):
        identity = self.caller.require("messaging.manage")
        identity.require_institution(institution_id)
        with self.db.session() as session:
            rows = session.execute(select(MatchPattern).where(
                MatchPattern.institution_id == institution_id)
                .order_by(MatchPattern.sort_order, MatchPattern.id)).scalars().all()
            return PatternOut(many=True).dump(rows)

    @rpc
    def save_pattern(self, data, pattern_id=None):
        identity = self.caller.require("messaging.manage")
        data = load(PatternWrite(), data)
        references.require_institution(self.portfolio, identity, data["institution_id"])
        parsing.check_pattern(data["regex"])
        with self.db.session() as session:
            if pattern_id is None:
                pattern = MatchPattern(**data)
                session.add(pattern)
            else:
                pattern = session.get(MatchPattern, pattern_id)
                if pattern is None or not identity.may_access_institution(pattern.institution_id) \
                        or pattern.institution_id != data["institution_id"]:
                    raise NotFound("Patrón no encontrado")
                for key, value in data.items():
                    setattr(pattern, key, value)
            session.flush()
            return PatternOut().dump(pattern)

    @rpc
    def delete_pattern(self, pattern_id):
        identity = self.caller.require("messaging.manage")
        with self.db.session() as session:
            pattern = session.get(MatchPattern, pattern_id)
            if pattern is None or not identity.may_access_institution(pattern.institution_id):
                raise NotFound("Patrón no encontrado")
            session.delete(pattern)

    # --- templates ---------------------------------------------------------------------------

    @rpc
    def list_templates(self, institution_id, include_inactive=False):
        identity = self.caller.identity
        if not identity.has("messaging.send"):
            identity.require("messaging.manage")
        identity.require_institution(institution_id)
        with self.db.session() as session:
            query = select(Template).where(Template.institution_id == institution_id)
            if not include_inactive:
                query = query.where(Template.active)
            return TemplateOut(many=True).dump(
                session.execute(query.order_by(Template.name)).scalars().all())

    @rpc
    def get_template(self, template_id):
        identity = self.caller.identity
        if not identity.has("messaging.send"):
            identity.require("messaging.manage")
        with self.db.session() as session:
            template = session.get(Template, template_id)
            if template is None or not identity.may_access_institution(template.institution_id):
                raise NotFound("Plantilla no encontrada")
            return TemplateOut().dump(template)

    @rpc
    def save_template(self, data, template_id=None):
        """Create or edit a template; one that uses an unknown field is refused here."""
        identity = self.caller.require("messaging.manage")
        data = load(TemplateWrite(), data)
        references.require_institution(self.portfolio, identity, data["institution_id"])
        templates.validate_sources(data)
        with self.db.session() as session:
            clash = session.execute(select(Template.id).where(
                Template.institution_id == data["institution_id"], Template.name == data["name"],
                Template.id != (template_id or 0))).first()
            if clash:
                raise Conflict("Ya existe ese nombre", {"name": ["Ya existe en esta institución"]})
            if template_id is None:
                template = Template(**data)
                session.add(template)
            else:
                template = session.get(Template, template_id)
                if template is None or not identity.may_access_institution(template.institution_id) \
                        or template.institution_id != data["institution_id"]:
                    raise NotFound("Plantilla no encontrada")
                for key, value in data.items():
                    setattr(template, key, value)
                template.updated_at = func.now()
            session.flush()
            session.refresh(template)
            return TemplateOut().dump(template)

    @rpc
    def preview(self, data):
        """The template filled with this account's data (nothing is sent or logged), and
        whether the contact policy would allow it now."""
        identity = self.caller.require("messaging.send")
        data = load(PreviewRequest(), data)
        account, view = self._debtor_context(identity, data["account_id"])
        with self.db.session() as session:
            template = self._template(session, identity, data["template_id"],
                                      account["institution_id"])
            rendered = self._render(template, data["language"], account, view)
        emails = [e["address"] for e in view.get("emails", []) if not e["do_not_contact"]]
        faxes = [p["number"] for p in view.get("phones", []) if p.get("kind") == "fax"]
        rendered.update(emails=emails, fax_numbers=faxes, debtor_id=view["debtor"]["id"])
        return rendered

    # --- sending -------------------------------------------------------------------------------

    @rpc
    def send_email(self, data):
        """Queue an email to a debtor from a template (logged as an outbound email activity);
        the delivery timer sends it. A retry with the same idempotency key answers the first."""
        identity = self.caller.require("messaging.send")
        data = load(SendEmail(), data)
        data["to"] = parsing.clean_address(data["to"], "to")
        earlier = self._earlier(identity, data.get("idempotency_key"))
        if earlier is not None:
            return earlier
        account, view = self._debtor_context(identity, data["account_id"])
        justification = self._compliance(identity, view, "email", data["to"], data.get("override"))
        files = []
        for version_id in data["document_version_ids"]:
            try:   # the caller must be able to read it: asked with their identity
                size = attachments.size_of(self.documents, version_id)
            except NotFound:
                raise InvalidInput("Documento no encontrado", {"document_version_ids": [
                    f"No existe o no es accesible: {version_id}"]}) from None
            if size > attachments.OUTBOUND_MAX_BYTES:
                raise InvalidInput("Adjunto demasiado grande", {"document_version_ids": [
                    f"El documento {version_id} pesa {size / 1048576:.1f} MB; un correo lleva "
                    f"a lo más {attachments.OUTBOUND_MAX_BYTES // 1048576} MB"]})
            files.append({"version_id": version_id, "size": size})
        return self._queue(identity, data, account, view, "email", data["to"], None, files,
                           justification)

    @rpc
    def send_fax(self, data):
        """Queue a fax: the letter as a PDF, emailed to <number>@<the institution's fax
        gateway domain>; logged as a fax activity, the PDF kept as a document."""
        identity = self.caller.require("messaging.send")
        data = load(SendFax(), data)
        if not FAX_NUMBER.match(data["fax_number"].strip()):
            raise InvalidInput("Número de fax inválido", {"fax_number": [
                "Sólo dígitos (6 a 20), con + inicial opcional"]})
        earlier = self._earlier(identity, data.get("idempotency_key"))
        if earlier is not None:
            return earlier
        account, view = self._debtor_context(identity, data["account_id"])
        with self.db.session() as session:
            settings = session.get(InstitutionSettings, account["institution_id"])
            domain = settings.fax_domain if settings else None
        if not domain:
            raise InvalidInput("Sin pasarela de fax", {"fax_number": [
                "La institución no tiene configurado el dominio de su pasarela de fax"]})
        number = contact_policy.phone_digits(data["fax_number"])
        justification = self._compliance(identity, view, "fax", number, data.get("override"))
        return self._queue(identity, data, account, view, "fax", f"{number}@{domain}", number, [],
                           justification)

    @rpc
    def send_campaign_message(self, data):
        """One message of a preventive campaign (the queues service's runner sends them as the
        platform): to the debtor's first email, mobile number or address (by the channel) that
        is not do-not-contact, judged by the contact policy like any send. A refusal is
        answered, not raised (``{"state": "refused", "cause", "reason"}``), for the campaign
        to count by its cause; else the queued message, as ``send_email`` / ``send_sms``
        answer it. With ``portal_link`` the debtor's personal link is made (auth, as the
        platform, once per run and debtor) only once the message is allowed."""
        identity = self.caller.require("messaging.send")
        data = load(SendCampaignMessage(), data)
        channel = data["channel"]
        earlier = self._earlier_sms(identity, data["idempotency_key"]) if channel == "sms" \
            else self._earlier(identity, data["idempotency_key"])
        if earlier is not None:
            return earlier
        account, view = self._debtor_context(identity, data["account_id"])
        if channel == "sms":
            return self._campaign_sms(identity, data, account, view)
        contacts = view.get("emails" if channel == "email" else "addresses") or []
        chosen = next((c for c in contacts if not c.get("do_not_contact")),
                      contacts[0] if contacts else None)
        if chosen is None:
            return {"state": "refused", "cause": NO_ADDRESS,
                    "reason": "El deudor no tiene correo" if channel == "email"
                    else "El deudor no tiene domicilio"}
        if channel == "email":
            try:
                to = parsing.clean_address(chosen["address"], "to")
            except InvalidInput:
                return {"state": "refused", "cause": NO_ADDRESS,
                        "reason": f"Correo inválido: {chosen['address']}"}
            verdict = compliance.judged(self.activities, account["id"], "email", to)
        else:
            to = templates.postal_address(chosen)
            verdict = compliance.judged(self.activities, account["id"], "letter", chosen["id"])
        if not verdict["allowed"]:
            return {"state": "refused", "cause": verdict["cause"], "reason": verdict["reason"]}
        if data["portal_link"]:
            data = {**data, "portal_link": self._campaign_link(data, account, "email", to)[1]}
        else:
            data = {**data, "portal_link": None}
        return self._queue(identity, data, account, view, channel, to, None, [], None)

    def _campaign_sms(self, identity, data, account, view) -> dict:
        """A campaign's SMS: to the debtor's first mobile number not do-not-contact, its
        institution's gateway configured (else the campaign's send fails), judged first."""
        phones = [p for p in view.get("phones") or () if p.get("kind") != "fax"]
        chosen = next((p for p in phones if not p.get("do_not_contact")),
                      phones[0] if phones else None)
        number = contact_policy.phone_digits(chosen["number"]) if chosen else ""
        if not 6 <= len(number) <= 20:
            return {"state": "refused", "cause": NO_ADDRESS,
                    "reason": "El deudor no tiene teléfono"}
        with self.db.session() as session:
            config = session.get(SmsSettings, account["institution_id"])
            if config is None or not config.active:
                raise InvalidInput("Sin SMS", {"channel": [
                    "La institución no tiene una pasarela de SMS configurada"]})
        verdict = compliance.judged(self.activities, account["id"], "sms", number)
        if not verdict["allowed"]:
            return {"state": "refused", "cause": verdict["cause"], "reason": verdict["reason"]}
        link_id, url = self._campaign_link(data, account, "sms", number) \
            if data["portal_link"] else (None, None)
        with self.db.session() as session:
            template = self._template(session, identity, data["template_id"],
                                      account["institution_id"])
            rendered = self._render(template, data["language"], account, view, url)
            template_id, template_name = template.id, template.name
        text = portal_link.with_link(rendered["text"].strip(), url)
        if not text:
            raise InvalidInput("Mensaje vacío", {"template_id": ["La plantilla no tiene texto"]})
        return self._queue_sms(identity, account, number, text, rendered["language"], None,
                               data["idempotency_key"], f"plantilla «{template_name}», campaña "
                               f"preventiva {data['campaign_id']}", template_id=template_id,
                               portal=link_id, campaign_id=data["campaign_id"])

    def _campaign_link(self, data, account, channel: str, to: str) -> tuple[int, str]:
        """The debtor's personal link for this campaign run: made by auth as the platform,
        one per (run, debtor) whatever the retries or instances (auth answers the same link
        to the same key), its address under the site's public one."""
        made = self.acting.system.auth.create_portal_link(account["debtor_id"], {
            "channel": channel, "sent_to": to,
            "key": portal_link.campaign_key(data["campaign_id"], data["run_id"],
                                            account["debtor_id"])})
        return made["link_id"], portal_link.url(made["institution_id"], made["token"])

    @rpc
    def send_report(self, data):
        """Email a scheduled report's file to its recipients now, one copy each, from the
        institution's sending mailbox. It is about no debtor, so no activity is logged and
        no contact policy applies; the reports service keeps the run and its file, and a
        refused or failed send is answered (InvalidInput / Conflict) for it to record."""
        identity = self.caller.require("reports.view")
        data = load(SendReport(), data)
        recipients = [parsing.clean_address(r, "recipients") for r in data["recipients"]]
        attachment = data["attachment"]
        try:
            content = base64.b64decode(attachment["content_b64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("Adjunto inválido", {"attachment": ["No es base64"]}) from None
        if len(content) > attachments.OUTBOUND_MAX_BYTES:
            raise InvalidInput("Adjunto demasiado grande", {"attachment": [
                f"Un correo lleva a lo más {attachments.OUTBOUND_MAX_BYTES // 1048576} MB"]})
        with self.db.session() as session:
            mailbox = self._report_mailbox(session, identity, data["institution_id"])
            session.expunge(mailbox)
        domain = mailbox.address.rsplit("@", 1)[1]
        key = re.sub(r"[^A-Za-z0-9.-]", "-", data["idempotency_key"] or str(uuidlib.uuid4()))
        answers = []
        for to in recipients:
            msg = delivery.build_report(mailbox, to, data["subject"], data["body"],
                                        f"<{key}.{to.replace('@', '.')}@{domain}>",
                                        (attachment["filename"], attachment["content_type"],
                                         content))
            try:
                answers.append(delivery.send(mailbox, msg))
            except (delivery.Temporary, delivery.Permanent) as exc:
                raise Conflict("El servidor de correo no aceptó el reporte",
                               {"recipients": [f"{to}: {exc}"]}) from None
        log.info("report %s sent to %d recipients from mailbox %s", key, len(recipients),
                 mailbox.id)
        return {"sent": len(answers), "mailbox_id": mailbox.id, "responses": answers}

    def _report_mailbox(self, session, identity, institution_id) -> Mailbox:
        """The institution's sending mailbox; for a report across institutions, the first
        active one among the caller's."""
        if institution_id is not None:
            identity.require_institution(institution_id)
            return self._sending_mailbox(session, identity, institution_id, None)
        query = select(Mailbox).where(Mailbox.active).order_by(Mailbox.id).limit(1)
        if identity.institutions is not None:
            query = query.where(Mailbox.institution_id.in_(list(identity.institutions) or [-1]))
        mailbox = session.execute(query).scalar_one_or_none()
        if mailbox is None:
            raise InvalidInput("Sin buzón de salida", {"institution_id": [
                "Ninguna de sus instituciones tiene un buzón configurado para enviar"]})
        return mailbox

    def _earlier(self, identity, key):
        if not key:
            return None
        with self.db.session() as session:
            row = session.execute(select(OutboundMessage).where(
                OutboundMessage.created_by == identity.user_id,
                OutboundMessage.idempotency_key == key)).scalar_one_or_none()
            return OutboundOut().dump(row) if row is not None else None

    def _queue(self, identity, data, account, view, channel, to_address, fax_number, files,
               justification) -> dict:
        institution_id = account["institution_id"]
        with self.db.session() as session:
            # a letter goes by post: no mailbox sends it
            mailbox = None if channel == "letter" else self._sending_mailbox(
                session, identity, institution_id, data.get("mailbox_id"))
            template = self._template(session, identity, data["template_id"], institution_id)
            rendered = self._render(template, data["language"], account, view,
                                    data.get("portal_link"))
            if data.get("campaign_id") and data.get("portal_link"):
                rendered = portal_link.rendered_with_link(rendered, data["portal_link"])
            mailbox_id, template_id = (mailbox.id if mailbox else None), template.id
            domain = mailbox.address.rsplit("@", 1)[1] if mailbox else "carta.recaudo.invalid"
        public = str(uuidlib.uuid4())
        pdf = None
        if channel in ("fax", "letter"):
            pdf = templates.render_pdf(rendered["subject"], rendered["text"],
                                       view["institution"]["name"])
            files = [{"name": f"carta-{public[:8]}.pdf", "content_type": "application/pdf",
                      "size": len(pdf), "pending_document": True}]
        what = {"fax": "Fax enviado a", "letter": "Carta para", "email": "Correo enviado a"}
        description = f"{what[channel]} {fax_number or to_address}: {rendered['subject']}" \
                      f" (plantilla «{template.name}», {rendered['language']})"
        if data.get("campaign_id"):
            description += f"\nCampaña preventiva {data['campaign_id']}"
        if justification:
            description += f"\nFuera de política, autorizado: {justification}"
        activity = contact_log.log_activity(self.acting, self.activities, {
            "account_id": account["id"], "kind": channel, "direction": "outbound",
            "email": to_address if channel == "email" else None,
            "phone": fax_number[:40] if fax_number else None,
            "address": to_address[:300] if channel == "letter" else None,
            "started_at": datetime.now(timezone.utc).isoformat(),
            "result_code": contact_log.SENT_CODES[channel], "campaign_id": data.get("campaign_id"),
            "description": description[:3900],
            "idempotency_key": f"messaging-out-{public}"}, institution_id)
        row = OutboundMessage(
            uuid=public, message_id=f"<{public}@{domain}>", institution_id=institution_id,
            debtor_id=account["debtor_id"], account_id=account["id"], mailbox_id=mailbox_id,
            channel=channel, template_id=template_id, language=rendered["language"],
            to_address=to_address, fax_number=fax_number, subject=rendered["subject"],
            body_text=rendered["text"], body_html="" if channel == "fax" else rendered["html"],
            attachments=files, pdf=pdf, state="queued", activity_id=activity["id"],
            created_by=identity.user_id, override_justification=justification,
            idempotency_key=data.get("idempotency_key"), campaign_id=data.get("campaign_id"))
        try:
            with self.db.session() as session:
                session.add(row)
                session.flush()
                return OutboundOut().dump(row)
        except IntegrityError:
            earlier = self._earlier(identity, data.get("idempotency_key"))
            if earlier is None:
                raise
            return earlier

    @event_handler("activities", "agreement_made")
    def on_agreement_made(self, payload):
        """An agreement the policy wants in writing: sent to the debtor (compliance.py)."""
        agreement = contracts.AgreementMade().load(payload)
        compliance.send_agreement(self, agreement, agreement["event_id"])

    @timer(interval=DELIVERY_INTERVAL)
    def deliver_due(self):
        """Send what is queued and due; each message's outcome commits on its own."""
        delivery.deliver(self.db, self.acting)

    @timer(interval=SETTLE_INTERVAL)
    def settle(self):
        """What waits on other services: activities of matched messages and documents of
        their attachments and of sent faxes (apart from delivery, which never waits)."""
        inbound.log_pending(self.db, self.acting)
        delivery.store_pending_pdfs(self.db, self.acting)
        with self.db.session() as session:
            waiting = session.execute(select(InboundMessage.id, InboundMessage.activity_id).where(
                InboundMessage.raw.is_not(None), InboundMessage.activity_id.is_not(None))
                .limit(20)).all()
        for inbound_id, activity_id in waiting:
            inbound.store_attachments(self.db, inbound_id, self.acting.system.documents,
                                      activity_id)

    # --- SMS ------------------------------------------------------------------------------------

    @rpc
    def get_sms_settings(self, institution_id):
        identity = self.caller.require("messaging.manage")
        identity.require_institution(institution_id)
        with self.db.session() as session:
            row = session.get(SmsSettings, institution_id)
            if row is None:
                raise NotFound("La institución no tiene SMS configurado")
            return SmsSettingsOut().dump(row)

    @rpc
    def save_sms_settings(self, institution_id, data):
        """The institution's SMS gateway (like a mailbox: URL, credentials, sender id)."""
        identity = self.caller.require("messaging.manage")
        references.require_institution(self.portfolio, identity, institution_id)
        data = load(SmsSettingsWrite(), data)
        with self.db.session() as session:
            row = session.get(SmsSettings, institution_id, with_for_update=True)
            if row is None:
                if not data.get("password") or not data.get("inbound_token"):
                    missing = [f for f in ("password", "inbound_token") if not data.get(f)]
                    raise InvalidInput("Faltan datos", {f: ["Requerido la primera vez"]
                                                       for f in missing})
                row = SmsSettings(institution_id=institution_id)
                session.add(row)
            for key, value in data.items():
                if key in ("password", "inbound_token"):
                    if value:
                        setattr(row, key, crypto.encrypt(value))
                else:
                    setattr(row, key, value)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict("Remitente en uso", {"sender_id": [
                    "Otra institución ya envía con este remitente"]}) from None
            return SmsSettingsOut().dump(row)

    @rpc
    def preview_sms(self, data):
        """A template's text as the SMS would say it, with its encoding and segment count."""
        identity = self.caller.require("messaging.send")
        data = load(SmsPreviewRequest(), data)
        account, view = self._debtor_context(identity, data["account_id"])
        with self.db.session() as session:
            template = self._template(session, identity, data["template_id"],
                                      account["institution_id"])
            text = self._render(template, data["language"], account, view)["text"].strip()
        phones = [p["number"] for p in view.get("phones") or () if p.get("kind") != "fax"]
        return {"text": text, **sms.segments(text), "phones": phones,
                "debtor_id": view["debtor"]["id"]}

    @rpc
    def send_sms(self, data):
        """Queue an SMS from a template to one of the debtor's numbers, judged by the contact
        policy first (a withdrawn consent is do-not-contact on that number); logged as an
        outbound SMS activity. A retry with the same idempotency key answers the first."""
        identity = self.caller.require("messaging.send")
        data = load(SendSms(), data)
        key = data.get("idempotency_key")
        if key:
            earlier = self._earlier_sms(identity, key)
            if earlier is not None:
                return earlier
        number, account, view, justification = self._sms_target(identity, data)
        with self.db.session() as session:
            template = self._template(session, identity, data["template_id"],
                                      account["institution_id"])
            rendered = self._render(template, data["language"], account, view)
            template_id, template_name = template.id, template.name
        text = rendered["text"].strip()
        if not text:
            raise InvalidInput("Mensaje vacío", {"template_id": ["La plantilla no tiene texto"]})
        return self._queue_sms(identity, account, number, text, rendered["language"],
                               justification, key, f"plantilla «{template_name}»",
                               template_id=template_id)

    @rpc
    def send_portal_link_sms(self, data):
        """The debtor portal's personal link (auth made it, the gateway asks) by SMS to one
        of the debtor's numbers, in messaging's own short text (portal_link.py): judged by
        the contact policy like any SMS, logged as the portal's SMS entry, its token masked
        in all that is shown or logged."""
        identity = self.caller.require("messaging.send")
        data = load(SendPortalLinkSms(), data)
        key = data.get("idempotency_key")
        if key:
            earlier = self._earlier_sms(identity, key)
            if earlier is not None:
                return earlier
        number, account, view, justification = self._sms_target(identity, data)
        text = portal_link.text(data["language"], data["portal_link"])
        return self._queue_sms(identity, account, number, text, data["language"],
                               justification, key, "liga personal del portal",
                               portal=data["link_id"])

    def _sms_target(self, identity, data) -> tuple:
        """The number (one of the debtor's), the account and its contact view, and the
        policy's verdict on texting it now (refused: Conflict; overridden: the reason)."""
        number = contact_policy.phone_digits(data["phone"])
        if not 6 <= len(number) <= 20:
            raise InvalidInput("Número inválido", {"phone": ["De 6 a 20 dígitos"]})
        account, view = self._debtor_context(identity, data["account_id"])
        if number not in {contact_policy.phone_digits(p["number"])
                          for p in view.get("phones") or ()}:
            raise InvalidInput("Número inválido", {"phone": ["No es un teléfono del deudor"]})
        justification = self._compliance(identity, view, "sms", number, data.get("override"))
        with self.db.session() as session:
            config = session.get(SmsSettings, account["institution_id"])
            if config is None or not config.active:
                raise InvalidInput("Sin SMS", {"phone": [
                    "La institución no tiene una pasarela de SMS configurada"]})
        return number, account, view, justification

    def _queue_sms(self, identity, account, number, text, language, justification, key,
                   what, template_id=None, portal=None, campaign_id=None) -> dict:
        """The SMS queued for the delivery timer and its outbound SMS activity (a portal
        link's token masked in the activity: ``portal`` is auth's link id)."""
        institution_id = account["institution_id"]
        length = sms.segments(text)
        public = str(uuidlib.uuid4())
        head = "Liga del portal enviada por SMS" if portal else "SMS enviado"
        description = f"{head} a {number} ({what}, {language}, " \
                      f"{length['segments']} segmento(s)):\n{portal_link.mask(text)}"
        if justification:
            description += f"\nFuera de política, autorizado: {justification}"
        activity = contact_log.log_activity(self.acting, self.activities, {
            "account_id": account["id"], "kind": "sms", "direction": "outbound",
            "phone": number[:40], "started_at": datetime.now(timezone.utc).isoformat(),
            "result_code": "SMS_ENV", "description": description[:3900],
            "portal_link_id": portal, "campaign_id": campaign_id,
            "idempotency_key": f"messaging-sms-{public}"},
            institution_id)
        row = SmsMessage(
            uuid=public, institution_id=institution_id, debtor_id=account["debtor_id"],
            account_id=account["id"], direction="outbound", phone=number, body=text,
            encoding=length["encoding"], segments=length["segments"], template_id=template_id,
            language=language, state="queued", activity_id=activity["id"],
            campaign_id=campaign_id, created_by=identity.user_id,
            override_justification=justification, idempotency_key=key)
        try:
            with self.db.session() as session:
                session.add(row)
                session.flush()
                return SmsOut().dump(row)
        except IntegrityError:
            earlier = self._earlier_sms(identity, key)
            if earlier is None:
                raise
            return earlier

    def _earlier_sms(self, identity, key):
        with self.db.session() as session:
            row = session.execute(select(SmsMessage).where(
                SmsMessage.created_by == identity.user_id,
                SmsMessage.idempotency_key == key)).scalar_one_or_none()
            return SmsOut().dump(row) if row is not None else None

    @rpc
    def list_sms(self, debtor_id):
        """The debtor's SMS conversation, oldest first, with each message's delivery state."""
        self.caller.require("messaging.send")
        self.portfolio.get_debtor(debtor_id)   # in scope, or NotFound
        with self.db.session() as session:
            rows = session.execute(select(SmsMessage).where(SmsMessage.debtor_id == debtor_id)
                                   .order_by(SmsMessage.created_at, SmsMessage.id)
                                   .limit(500)).scalars().all()
            return SmsOut(many=True).dump(rows)

    @timer(interval=1)
    def deliver_sms_due(self):
        """Hand what is queued and due to the gateway, a batch at a time."""
        # sms_delivery: a batch claimed, handed over with no lock held, outcomes written
        while sms_delivery.deliver_batch(self.db, settings().sms_callback_url, log=log) \
                == sms_delivery.BATCH:
            pass

    @sms_delivery.delivery_reports("GET", "/kannel/dlr")
    def kannel_dlr(self, request):
        """Kannel's delivery report for one of our messages; states only move forward.
        Answered by its entrypoint without a worker, written in batches
        (``sms_delivery.DeliveryReports``)."""

    @http("GET", "/kannel/mo")
    def kannel_mo(self, request):
        """A message from a phone (Kannel's ``get-url``): kept for the institution whose
        sender id it was sent to (its token must match), matched to the debtors with that
        number and logged on each one's main account as an inbound SMS; an opt-out word
        marks the number do-not-contact at once, so the next send is refused."""
        args = request.args
        sender, receiver = contact_policy.phone_digits(args.get("from")), args.get("to", "")
        text, gateway_id = args.get("text", ""), args.get("id") or None
        if not sender:
            return sms_delivery.kannel_answer(400, "from expected\n")
        with self.db.session() as session:
            config = session.execute(select(SmsSettings).where(
                SmsSettings.sender_id == receiver.lstrip("+"))).scalar_one_or_none() \
                or session.execute(select(SmsSettings).where(
                    SmsSettings.sender_id == receiver)).scalar_one_or_none()
            if config is None or crypto.decrypt(config.inbound_token) != args.get("token"):
                return sms_delivery.kannel_answer(403, "unknown receiver or token\n")
            institution_id, words = config.institution_id, sms.opt_out_words(config.opt_out_words)
        found = self.acting.system.portfolio.match_debtors(institution_id, phones=[sender])
        matches = found.get("phones", {}).get(sender, [])
        length = sms.segments(text)
        opt_out = sms.is_opt_out(text, words)
        rows = []
        try:
            with self.db.session() as session:
                for match in matches or [{}]:
                    row = SmsMessage(
                        uuid=str(uuidlib.uuid4()), institution_id=institution_id,
                        debtor_id=match.get("debtor_id"), account_id=match.get("account_id"),
                        direction="inbound", phone=sender, body=text,
                        encoding=length["encoding"], segments=length["segments"],
                        state="received", gateway_id=f"{gateway_id}:{match.get('debtor_id')}"
                        if gateway_id else None)
                    session.add(row)
                    rows.append(row)
                session.flush()
                rows = [(r.id, r.uuid, r.debtor_id, r.account_id) for r in rows]
        except IntegrityError:
            return sms_delivery.kannel_answer(200, "already received\n")   # Kannel called twice
        for (row_id, public, debtor_id, account_id), match in zip(rows, matches):
            description = f"SMS recibido de {sender}:\n{text}"
            if opt_out:
                self.acting.system.portfolio.set_do_not_contact(debtor_id, {
                    "channel": "phone", "contact_id": match["phone_id"], "do_not_contact": True,
                    "reason": f"Pidió la baja por SMS («{text.strip()[:40]}»): consentimiento "
                              f"de SMS retirado"})
                description += "\nPalabra de baja: el número queda marcado como no contactar."
            activity = contact_log.log_activity(self.acting, self.acting.system.activities, {
                "account_id": account_id, "kind": "sms", "direction": "inbound",
                "phone": sender[:40], "started_at": datetime.now(timezone.utc).isoformat(),
                "result_code": "SMS_REC", "description": description[:3900],
                "idempotency_key": f"messaging-sms-in-{public}"}, institution_id)
            with self.db.session() as session:
                session.execute(update(SmsMessage).where(SmsMessage.id == row_id)
                                .values(activity_id=activity["id"]))
        log.info("sms from %s to institution %s: %d debtor(s)%s", sender, institution_id,
                 len(matches), ", opt-out" if opt_out else "")
        return sms_delivery.kannel_answer(200, "ok\n")

    # --- message lists --------------------------------------------------------------------------

    @rpc
    def list_outbound(self, query=None):
        """Sent and queued messages with their delivery state (of a debtor, or all in scope)."""
        identity = self.caller.require("messaging.send")
        query = load(OutboundQuery(), query or {})
        if query.get("debtor_id") is not None:
            self.portfolio.get_debtor(query["debtor_id"])   # in scope, or NotFound
        with self.db.session() as session:
            stmt = select(OutboundMessage)
            for key in ("debtor_id", "account_id", "institution_id", "state", "channel"):
                if query.get(key) is not None:
                    stmt = stmt.where(getattr(OutboundMessage, key) == query[key])
            if not identity.all_institutions:
                stmt = stmt.where(OutboundMessage.institution_id.in_(identity.institutions or (-1,)))
            if query.get("debtor_id") is None and not identity.has("portfolio.read_all"):
                # a collector sees the whole list only of debtors they may read: else their own
                stmt = stmt.where(OutboundMessage.created_by.in_((identity.user_id, *identity.team)))
            return self._page(session, stmt, OutboundMessage, OutboundOut, query)

    @rpc
    def get_outbound(self, message_id):
        identity = self.caller.require("messaging.send")
        with self.db.session() as session:
            row = session.get(OutboundMessage, message_id) if isinstance(message_id, int) else None
            if row is None or not identity.may_access_institution(row.institution_id):
                raise NotFound("Mensaje no encontrado")
            out = OutboundDetail().dump(row)
        self.portfolio.get_account(out["account_id"])     # the caller may see the account
        return out

    @rpc
    def list_inbound(self, query=None):
        """Synced messages; ``state=unmatched`` is the triage list."""
        identity = self.caller.require("messaging.send")
        query = load(InboundQuery(), query or {})
        if query.get("debtor_id") is not None:
            self.portfolio.get_debtor(query["debtor_id"])
        with self.db.session() as session:
            stmt = select(InboundMessage)
            for key in ("debtor_id", "institution_id", "mailbox_id", "state"):
                if query.get(key) is not None:
                    stmt = stmt.where(getattr(InboundMessage, key) == query[key])
            if not identity.all_institutions:
                stmt = stmt.where(InboundMessage.institution_id.in_(identity.institutions or (-1,)))
            if query.get("debtor_id") is None and not identity.has("portfolio.read_all"):
                # a collector works the triage list; matched mail is read on its debtor
                stmt = stmt.where(InboundMessage.state == "unmatched")
            return self._page(session, stmt, InboundMessage, InboundOut, query)

    @staticmethod
    def _page(session, stmt, model, schema, query) -> dict:
        total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
        rows = session.execute(stmt.order_by(model.id.desc())
                               .offset((query["page"] - 1) * query["per_page"])
                               .limit(query["per_page"])).scalars().all()
        return page_of(schema(many=True).dump(rows), total, query["page"], query["per_page"])

    @rpc
    def get_inbound(self, inbound_id):
        identity = self.caller.require("messaging.send")
        return self._visible_inbound(identity, inbound_id)

    def _visible_inbound(self, identity, inbound_id) -> dict:
        """The message as the caller may read it, or NotFound: within their institutions,
        and once on a debtor, only for who may read that debtor."""
        with self.db.session() as session:
            row = session.get(InboundMessage, inbound_id) if isinstance(inbound_id, int) else None
            if row is None or not identity.may_access_institution(row.institution_id):
                raise NotFound("Mensaje no encontrado")
            out = InboundDetail().dump(row)
        if out["debtor_id"] is not None and not identity.has("portfolio.read_all"):
            try:
                self.portfolio.get_debtor(out["debtor_id"])   # theirs to read, or NotFound
            except NotFound:
                raise NotFound("Mensaje no encontrado") from None
        return out

    @rpc
    def assign_inbound(self, inbound_id, data):
        """Triage: an agent puts an unmatched message on an account; it is logged as an
        inbound email activity by them, its attachments become documents."""
        identity = self.caller.require("messaging.send")
        data = load(Assign(), data)
        # one the caller cannot read answers like missing, before saying it is taken
        self._visible_inbound(identity, inbound_id)
        with self.db.session() as session:
            row = session.get(InboundMessage, inbound_id)
            if row.state != "unmatched":
                raise Conflict("El mensaje ya fue asignado", {"state": [row.state]})
            session.expunge(row)
        account = self.portfolio.get_account(data["account_id"])
        if account["institution_id"] != row.institution_id:
            raise InvalidInput("Cuenta de otra institución", {"account_id": [
                "La cuenta es de otra institución que el buzón"]})
        with self.db.session() as session:
            locked = session.get(InboundMessage, row.id, with_for_update=True)
            if locked.state != "unmatched":
                raise Conflict("El mensaje ya fue asignado", {"state": [locked.state]})
            locked.account_id, locked.debtor_id = account["id"], account["debtor_id"]
            activity = contact_log.log_activity(self.acting, self.activities,
                                                mailsync.activity_for(locked),
                                                locked.institution_id)
            locked.state, locked.matched_by, locked.assigned_by = "assigned", "manual", identity.user_id
            locked.activity_id = activity["id"]
        inbound.store_attachments(self.db, row.id, self.acting.system.documents, activity["id"])
        return self.get_inbound(row.id)

    # --- mailbox search --------------------------------------------------------------------------

    @rpc
    def search_mailbox(self, mailbox_id, query):
        """IMAP SEARCH on the server (nothing is downloaded but the matches' headers)."""
        identity = self.caller.require("messaging.send")
        query = load(SearchQuery(), query or {})
        with self.db.session() as session:
            mailbox = self._mailbox(session, identity, mailbox_id)
            session.expunge(mailbox)
        try:
            found = mailsearch.search(mailbox, query)
        except mailsync.MailError as exc:
            raise InvalidInput(str(exc), {"mailbox_id": [str(exc)]}) from None
        with self.db.session() as session:
            ids = [m["message_id"] for m in found["items"] if m["message_id"]]
            synced = dict(session.execute(select(InboundMessage.message_id, InboundMessage.id).where(
                InboundMessage.mailbox_id == mailbox.id, InboundMessage.message_id.in_(ids or [""]))
            ).all())
        for item in found["items"]:
            item["inbound_id"] = synced.get(item["message_id"])
        return found

    def extra_health(self) -> dict:
        return {}
