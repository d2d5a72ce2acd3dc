"""Email, SMS and letters in the web UI: the "Correo" tab of the debtor's 360° view (send an
email or fax from a template, with a preview, and the debtor's messages with their
delivery state), the "SMS" tab beside it (send from a template with a preview and its
segment count, and the conversation with delivery states), the triage list of unmatched inbound mail, the mailbox search (IMAP
SEARCH on the server) and, for administrators, the mailboxes, matching patterns, fax
gateway and templates.

The messaging service enforces permissions, scope and the contact policy; these views
collect forms and show its answers (a refusal comes back with the values typed and
each problem next to its field).
"""
from __future__ import annotations

import uuid

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied

from .. import auth
from . import portfolio
from ._common import NOTICES as DEBTOR_NOTICES, debtor_screens, to_int, translated
from .activities import form_errors
from ..errors import HTTP_STATUS
from ._common import N_
from .portfolio import DebtorTab, add_debtor_tab
from ..rpc import rpc

bp = debtor_screens(Blueprint("messaging_ui", __name__))

OUT_STATES = {"queued": N_("En cola"), "sent": N_("Enviado"), "failed": N_("Falló")}
SMS_STATES = {"queued": N_("En cola"), "sent": N_("Enviado"), "delivered": N_("Entregado"),
              "failed": N_("Falló"), "received": N_("Recibido")}
IN_STATES = {"matched": N_("Asociado"), "unmatched": N_("Sin asociar"),
             "assigned": N_("Asignado a mano"), "bounce": N_("Rebote"), "ignored": N_("Ignorado")}
CHANNELS = {"email": N_("Correo"), "fax": N_("Fax")}
TARGETS = {"account_number": N_("Número de cuenta"), "customer_number": N_("Número de cliente")}
SECURITY = {"none": N_("Ninguna"), "starttls": "STARTTLS", "ssl": "SSL/TLS"}
DEBTOR_NOTICES.update({"message_queued": N_("Mensaje en cola de envío.")})
NOTICES = {"assigned": N_("Correo asignado y registrado como gestión."),
           "mailbox_saved": N_("Buzón guardado."), "pattern_saved": N_("Patrón guardado."),
           "pattern_deleted": N_("Patrón eliminado."), "settings_saved": N_("Configuración guardada."),
           "template_saved": N_("Plantilla guardada."), "synced": N_("Buzón sincronizado.")}


@bp.app_context_processor
def _labels():
    return {"OUT_STATES": translated(OUT_STATES), "IN_STATES": translated(IN_STATES),
            "SMS_STATES": translated(SMS_STATES),
            "CHANNELS": translated(CHANNELS), "MATCH_TARGETS": translated(TARGETS),
            "SMTP_SECURITY": translated(SECURITY)}


# --- the 360° view's "Correo" tab ----------------------------------------------------------------

def _mail_tab(proxy, view: dict) -> dict:
    institution_id = view["debtor"]["institution_id"]
    state = g.get("mail_form") or {}
    values = state.get("values") or {"channel": "email", "language": "es",
                                     "key": uuid.uuid4().hex}
    documents = []
    if "documents.read" in g.user["permissions"]:
        try:   # the debtor's latest versions, to attach (the documents service may be away)
            folder = proxy.documents.folder(view["debtor"]["id"], {"per_page": 100})
            documents = [d["latest"] for d in folder["items"] if d.get("latest")]
        except Exception:  # noqa: BLE001 - the tab still sends without attachments
            documents = []
    return {"mail_templates": proxy.messaging.list_templates(institution_id),
            "mail_documents": documents,
            "outbound": proxy.messaging.list_outbound({"debtor_id": view["debtor"]["id"],
                                                       "per_page": 50})["items"],
            "inbound": proxy.messaging.list_inbound({"debtor_id": view["debtor"]["id"],
                                                     "per_page": 50})["items"],
            "mail_values": values, "mail_errors": state.get("errors", {}),
            "mail_preview": state.get("preview")}


add_debtor_tab(DebtorTab("correo", N_("Correo"), "messaging/tab.html",
                         permission="messaging.send", load=_mail_tab))


@bp.post("/deudores/<int:debtor_id>/correo")
@auth.permission_required("messaging.send")
def send(debtor_id: int):
    form = request.form
    values = {k: form.get(k, "").strip() for k in (
        "channel", "account_id", "template_id", "language", "to", "fax_number",
        "justification", "key")}
    values["documents"] = [d for d in (to_int(v) for v in form.getlist("document_version_ids")) if d]
    channel = values["channel"] if values["channel"] in ("email", "fax") else "email"

    def deliver(proxy, body):
        if channel == "fax":
            return proxy.messaging.send_fax({**body, "fax_number": values["fax_number"]})
        return proxy.messaging.send_email({**body, "to": values["to"],
                                           "document_version_ids": values["documents"]})

    return _send_from_tab(debtor_id, "correo", "mail_form", values, deliver,
                          preview=lambda proxy, body: proxy.messaging.preview(
                              {**body, "channel": channel}))


def _send_from_tab(debtor_id: int, tab: str, form_key: str, values: dict, deliver, preview):
    """The Correo and SMS tabs' one flow: a preview, or a send judged by the contact policy
    (one who manages messaging may override a refusal with a justification), then back to
    the tab; a refusal shows the form again with its fields marked."""
    body = {"account_id": to_int(values["account_id"]), "template_id": to_int(values["template_id"]),
            "language": values["language"] or "es"}
    errors: dict = {}
    shown = None
    try:
        with rpc() as proxy:
            if request.form.get("action") == "preview":
                shown = preview(proxy, body)
            else:
                body["idempotency_key"] = values["key"] or None
                if values["justification"]:
                    body["override"] = {"justification": values["justification"]}
                deliver(proxy, body)
                return redirect(url_for("portfolio_ui.debtor", debtor_id=debtor_id, tab=tab,
                                        done="message_queued"))
        status = 200
    except (InvalidInput, Conflict, PermissionDenied, NotFound) as exc:
        errors = form_errors(exc.fields) or {"_schema": [exc.message]}
        if "compliance" in errors and "messaging.manage" in g.user["permissions"]:
            errors["justification"] = [_("Para enviar de todos modos, escriba la justificación.")]
        status = HTTP_STATUS[type(exc)]
    setattr(g, form_key, {"values": values, "errors": errors, "preview": shown})
    return portfolio.debtor_page(debtor_id, tab, status=status,
                                  failure=_("Revise los campos marcados.") if errors else None)


# --- the 360° view's "SMS" tab -----------------------------------------------------------------

def _sms_tab(proxy, view: dict) -> dict:
    state = g.get("sms_form") or {}
    values = state.get("values") or {"language": "es", "key": uuid.uuid4().hex}
    return {"sms_templates": proxy.messaging.list_templates(view["debtor"]["institution_id"]),
            "sms_messages": proxy.messaging.list_sms(view["debtor"]["id"]),
            "sms_values": values, "sms_errors": state.get("errors", {}),
            "sms_preview": state.get("preview")}


add_debtor_tab(DebtorTab("sms", N_("SMS"), "messaging/sms_tab.html",
                         permission="messaging.send", load=_sms_tab))


@bp.post("/deudores/<int:debtor_id>/sms")
@auth.permission_required("messaging.send")
def send_sms(debtor_id: int):
    form = request.form
    values = {k: form.get(k, "").strip() for k in (
        "account_id", "template_id", "language", "phone", "justification", "key")}
    return _send_from_tab(
        debtor_id, "sms", "sms_form", values,
        lambda proxy, body: proxy.messaging.send_sms({**body, "phone": values["phone"]}),
        preview=lambda proxy, body: proxy.messaging.preview_sms(body))


# --- triage and search ----------------------------------------------------------------------------

def _triage_page(status=200, errors=None, failed_id=None):
    page = max(to_int(request.args.get("pagina"), 1), 1)
    with rpc() as proxy:
        items = proxy.messaging.list_inbound({"state": "unmatched", "page": page, "per_page": 25})
    done = request.args.get("done")
    return render_template("messaging/triage.html", page=items, errors=errors or {},
                           failed_id=failed_id,
                           notice=_(NOTICES[done]) if done in NOTICES else None), status


@bp.get("/correo")
@auth.permission_required("messaging.send")
def triage():
    return _triage_page()


@bp.post("/correo/<int:inbound_id>/asignar")
@auth.permission_required("messaging.send")
def assign(inbound_id: int):
    account_id = to_int(request.form.get("account_id"))
    try:
        with rpc() as proxy:
            proxy.messaging.assign_inbound(inbound_id, {"account_id": account_id})
    except (InvalidInput, Conflict, NotFound) as exc:
        errors = form_errors(exc.fields) or {"_schema": [exc.message]}
        if isinstance(exc, NotFound):
            errors = {"account_id": [_("Cuenta no encontrada.")]}
        return _triage_page(HTTP_STATUS[type(exc)], errors, inbound_id)
    return redirect(url_for(".triage", done="assigned"))


@bp.get("/correo/buscar")
@auth.permission_required("messaging.send")
def search():
    args = request.args
    fields = ("sender", "subject", "text", "since", "before", "header_name", "header_value")
    values = {k: args.get(k, "").strip() for k in ("mailbox_id", *fields)}
    results, errors, status = None, {}, 200
    with rpc() as proxy:
        mailboxes = proxy.messaging.list_mailboxes()
        mailbox_id = to_int(values["mailbox_id"]) or (mailboxes[0]["id"] if mailboxes else None)
        if mailbox_id and any(values[k] for k in fields):
            query = {k: values[k] for k in fields if values[k]}
            try:
                results = proxy.messaging.search_mailbox(mailbox_id, query)
            except (InvalidInput, NotFound) as exc:
                errors = form_errors(exc.fields) or {"_schema": [exc.message]}
                status = HTTP_STATUS[type(exc)]
    values["mailbox_id"] = mailbox_id
    return render_template("messaging/search.html", mailboxes=mailboxes, values=values,
                           results=results, errors=errors), status


# --- administration: mailboxes, patterns, fax gateway, templates ---------------------------------

MAILBOX_FIELDS = ("institution_id", "name", "address", "imap_host", "imap_port", "imap_user",
                  "imap_password", "imap_folder", "smtp_host", "smtp_port", "smtp_security",
                  "smtp_user", "smtp_password")


def _mailboxes_page(status=200, **extra):
    with rpc() as proxy:
        institutions = proxy.portfolio.list_institutions()
        mailboxes = proxy.messaging.list_mailboxes()
        chosen = to_int(request.values.get("institution_id")) or \
            (institutions[0]["id"] if institutions else None)
        patterns = proxy.messaging.list_patterns(chosen) if chosen else []
        settings = proxy.messaging.get_settings(chosen) if chosen else {}
    done = request.args.get("done")
    context = {"institutions": institutions, "mailboxes": mailboxes, "patterns": patterns,
               "settings": settings, "institution_id": chosen,
               "notice": _(NOTICES[done]) if done in NOTICES else None,
               "mailbox_values": {"imap_port": 993, "smtp_port": 587, "imap_folder": "INBOX",
                                  "smtp_security": "starttls", "imap_tls": True,
                                  "institution_id": chosen},
               "mailbox_errors": {}, "pattern_values": {}, "pattern_errors": {},
               "settings_errors": {}, "check": None, **extra}
    return render_template("messaging/mailboxes.html", **context), status


@bp.get("/correo/buzones")
@auth.permission_required("messaging.manage")
def mailboxes():
    edit = to_int(request.args.get("editar"))
    extra = {}
    if edit:
        with rpc() as proxy:
            extra["mailbox_values"] = proxy.messaging.get_mailbox(edit)
        extra["editing"] = edit
    return _mailboxes_page(**extra)


@bp.post("/correo/buzones")
@auth.permission_required("messaging.manage")
def save_mailbox():
    form = request.form
    data = {k: form.get(k, "").strip() for k in MAILBOX_FIELDS}
    for key in ("institution_id", "imap_port", "smtp_port"):
        data[key] = to_int(data[key], data[key] or None)
    data["imap_tls"] = form.get("imap_tls") == "on"
    data["active"] = form.get("active", "on") == "on"
    for key in ("imap_password", "smtp_password", "smtp_user"):
        data[key] = data[key] or None
    editing = to_int(form.get("mailbox_id"))
    try:
        with rpc() as proxy:
            proxy.messaging.save_mailbox(data, editing)
    except (InvalidInput, Conflict, NotFound) as exc:
        values = {**data, "imap_password": "", "smtp_password": ""}
        return _mailboxes_page(HTTP_STATUS[type(exc)], mailbox_values=values, editing=editing,
                               mailbox_errors=form_errors(exc.fields) or {"_schema": [exc.message]})
    return redirect(url_for(".mailboxes", institution_id=data["institution_id"],
                            done="mailbox_saved"))


@bp.post("/correo/buzones/<int:mailbox_id>/probar")
@auth.permission_required("messaging.manage")
def check_mailbox(mailbox_id: int):
    with rpc() as proxy:
        check = proxy.messaging.test_mailbox(mailbox_id)
    return _mailboxes_page(check={**check, "mailbox_id": mailbox_id})


@bp.post("/correo/buzones/<int:mailbox_id>/sincronizar")
@auth.permission_required("messaging.manage")
def sync_mailbox(mailbox_id: int):
    with rpc() as proxy:
        result = proxy.messaging.sync_mailbox(mailbox_id)
    if result.get("error"):
        return _mailboxes_page(422, check={"ok": False, "error": result["error"],
                                           "mailbox_id": mailbox_id})
    return redirect(url_for(".mailboxes", done="synced"))


@bp.post("/correo/patrones")
@auth.permission_required("messaging.manage")
def save_pattern():
    form = request.form
    data = {"institution_id": to_int(form.get("institution_id")), "name": form.get("name", "").strip(),
            "regex": form.get("regex", "").strip(), "target": form.get("target", "")}
    try:
        with rpc() as proxy:
            proxy.messaging.save_pattern(data)
    except (InvalidInput, Conflict) as exc:
        return _mailboxes_page(HTTP_STATUS[type(exc)], pattern_values=data,
                               pattern_errors=form_errors(exc.fields) or {"_schema": [exc.message]})
    return redirect(url_for(".mailboxes", institution_id=data["institution_id"],
                            done="pattern_saved"))


@bp.post("/correo/patrones/<int:pattern_id>/borrar")
@auth.permission_required("messaging.manage")
def delete_pattern(pattern_id: int):
    with rpc() as proxy:
        proxy.messaging.delete_pattern(pattern_id)
    return redirect(url_for(".mailboxes", institution_id=request.form.get("institution_id"),
                            done="pattern_deleted"))


@bp.post("/correo/ajustes")
@auth.permission_required("messaging.manage")
def save_settings():
    form = request.form
    institution_id = to_int(form.get("institution_id"))
    data = {"fax_domain": form.get("fax_domain", "").strip() or None,
            "default_mailbox_id": to_int(form.get("default_mailbox_id"))}
    try:
        with rpc() as proxy:
            proxy.messaging.save_settings(institution_id, data)
    except InvalidInput as exc:
        return _mailboxes_page(422, settings_errors=form_errors(exc.fields))
    return redirect(url_for(".mailboxes", institution_id=institution_id, done="settings_saved"))


TEMPLATE_FIELDS = ("institution_id", "name", "subject_es", "text_es", "html_es", "subject_en",
                   "text_en", "html_en")


def _templates_page(status=200, **extra):
    with rpc() as proxy:
        institutions = proxy.portfolio.list_institutions()
        chosen = to_int(request.values.get("institution_id")) or \
            (institutions[0]["id"] if institutions else None)
        listed = proxy.messaging.list_templates(chosen, True) if chosen else []
    done = request.args.get("done")
    context = {"institutions": institutions, "institution_id": chosen, "templates": listed,
               "values": {"institution_id": chosen}, "errors": {}, "editing": None,
               "notice": _(NOTICES[done]) if done in NOTICES else None, **extra}
    return render_template("messaging/templates.html", **context), status


@bp.get("/correo/plantillas")
@auth.permission_required("messaging.manage")
def templates():
    edit = to_int(request.args.get("editar"))
    if edit:
        with rpc() as proxy:
            values = proxy.messaging.get_template(edit)
        return _templates_page(values=values, editing=edit)
    return _templates_page()


@bp.post("/correo/plantillas")
@auth.permission_required("messaging.manage")
def save_template():
    form = request.form
    data = {k: form.get(k, "").replace("\r\n", "\n") for k in TEMPLATE_FIELDS}
    data["institution_id"] = to_int(data["institution_id"])
    data["active"] = form.get("active", "on") == "on"
    editing = to_int(form.get("template_id"))
    try:
        with rpc() as proxy:
            proxy.messaging.save_template(data, editing)
    except (InvalidInput, Conflict, NotFound) as exc:
        return _templates_page(HTTP_STATUS[type(exc)], values=data, editing=editing,
                               errors=form_errors(exc.fields) or {"_schema": [exc.message]})
    return redirect(url_for(".templates", institution_id=data["institution_id"],
                            done="template_saved"))
