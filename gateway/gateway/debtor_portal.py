"""The debtor portal's session and what both its pages (``ui/portal.py``) and its API
(``api/portal.py``) ask the services: a proxy carrying the debtor's principal, opening and
closing a link's session, the overview of the debtor's accounts (with how to pay each),
a dispute with its document, and an agent's personal link for the debtor."""
from __future__ import annotations

import requests
from flask import current_app, g, url_for

from recaudo_common.errors import InvalidInput, NotAuthenticated

from . import auth


def debtor_rpc():
    """A service proxy carrying this request's debtor principal."""
    return current_app.extensions["recaudo.rpc"].proxy({
        "request_id": g.get("request_id"), "identity": g.portal_identity,
        "language": g.get("portal_language", "es")})


def resolve(session_token: str | None) -> dict | None:
    """The live debtor session of ``session_token`` (its principal in ``g``), or None."""
    if not session_token:
        return None
    try:
        with auth.anonymous_rpc() as proxy:
            resolved = proxy.auth.resolve_portal_session(session_token)
    except (NotAuthenticated, InvalidInput):
        return None
    g.portal_identity = resolved["identity"]
    g.portal_token = session_token
    g.portal_language = resolved["language"]
    return resolved


def open_link(institution_id: int, token: str, answer: str, language: str) -> dict:
    """The auth service's answer to a link and its second factor (NotAuthenticated: the one
    refusal); the access goes into each of the debtor's accounts' history."""
    with auth.anonymous_rpc() as proxy:
        opened = proxy.auth.open_portal_link({"institution_id": institution_id, "token": token,
                                              "answer": answer, "language": language},
                                             auth.client_address())
    g.portal_identity = opened["identity"]
    with debtor_rpc() as proxy:
        proxy.activities.portal_record_access()
    return opened


def close(session_token: str | None) -> None:
    if session_token:
        with auth.anonymous_rpc() as proxy:
            proxy.auth.close_portal_session(session_token)


def overview() -> dict:
    """The debtor, and per account what the portfolio and the activities service know."""
    with debtor_rpc() as proxy:
        accounts = proxy.portfolio.portal_overview()
        view = proxy.activities.portal_view()
        documents = proxy.documents.portal_documents()
        # how to pay each account: its reference under the institution's CLABE or convenio
        paying = {item["account"]["id"]: proxy.portfolio.payment_instructions(
            item["account"]["id"]) for item in accounts["accounts"]}
    extra = {a["account_id"]: a for a in view["accounts"]}
    for item in accounts["accounts"]:
        item.update({k: v for k, v in extra.get(item["account"]["id"], {}).items()
                     if k != "account_id"})
        item["payment_instructions"] = paying[item["account"]["id"]]
    accounts["preferences"] = view["preferences"]
    accounts["documents"] = documents
    return accounts


def upload_evidence(proxy, account_id: int, filename: str, content: bytes,
                    content_type: str | None) -> dict:
    """A file into the debtor's folder the way a browser uploads one (the documents
    service's presigned POST, then its checks: an executable is refused)."""
    ticket = proxy.documents.portal_request_upload({
        "account_id": account_id, "filename": filename, "size": len(content),
        "category": "otro"})
    sent = requests.post(ticket["url"], data=ticket["fields"], timeout=30,
                         files={"file": (filename, content, content_type or
                                         "application/octet-stream")})
    if sent.status_code >= 300:
        raise InvalidInput("No se pudo guardar el archivo", {"file": ["Intente de nuevo"]})
    return proxy.documents.portal_complete_upload(ticket["upload_id"])


def dispute(account_id: int, reason: str, evidence: str, upload=None) -> dict:
    """A dispute with its document: the file is checked (and refused) before the dispute
    opens, so a refused upload leaves nothing behind; the dispute keeps its version."""
    with debtor_rpc() as proxy:
        document = None
        if upload is not None and upload.filename:
            document = upload_evidence(proxy, account_id, upload.filename, upload.read(),
                                       upload.mimetype)
        return proxy.activities.portal_dispute({
            "account_id": account_id, "reason": reason, "evidence": evidence,
            "document_version_id": document["latest"]["id"] if document else None})


def send_link(proxy, debtor_id: int, data: dict) -> dict:
    """A personal link for the debtor (``proxy``: the agent's), answered once: emailed
    (``channel`` email) from a template that prints ``{{ portal_link }}`` when
    ``template_id`` is given, or texted (``channel`` sms) to ``phone`` in messaging's short
    text; either judged by the contact policy and logged by messaging on ``account_id``."""
    channel = data.get("channel") or "email"
    sending = data.get("template_id") is not None if channel == "email" else True
    to = data.get("sent_to") if channel == "email" else data.get("phone")
    if sending and data.get("account_id") is None:
        raise InvalidInput("Datos inválidos", {"account_id": ["Indique la cuenta"]})
    if sending and not to:
        raise InvalidInput("Datos inválidos", {"sent_to" if channel == "email" else "phone": [
            "Indique el correo" if channel == "email" else "Indique el teléfono"]})
    # auth decides first who may (403) and whose debtor it is (404); a link made for an
    # account that is not the debtor's is never sent (hashed, it expires unused)
    made = proxy.auth.create_portal_link(debtor_id, {"channel": channel, "sent_to": to})
    if sending and data["account_id"] not in proxy.portfolio.debtor_scope(debtor_id)[
            "account_ids"]:
        raise InvalidInput("Datos inválidos", {"account_id": ["No es cuenta de este deudor"]})
    token = made.pop("token")
    made["url"] = url_for("portal.verify", institution_id=made["institution_id"], token=token,
                          _external=True)
    made["message_id"], made["sms_id"], made["channel"] = None, None, channel
    language = data.get("language") or "es"
    key = f"portal-link-{made['link_id']}"
    if channel == "sms":
        made["sms_id"] = proxy.messaging.send_portal_link_sms({
            "account_id": data["account_id"], "phone": to, "portal_link": made["url"],
            "link_id": made["link_id"], "language": language, "idempotency_key": key})["uuid"]
    elif sending:
        sent = proxy.messaging.send_email({
            "account_id": data["account_id"], "template_id": data["template_id"],
            "to": to, "language": language, "portal_link": made["url"],
            "idempotency_key": key})
        made["message_id"] = sent["id"]
    return made
