"""The documents' screens: the "Documentos" tab of the debtor's 360° view (drop files to
upload them with a progress bar, the list with its versions, downloads, previews of PDFs
and images, share links with their access log), and "Documentos compartidos", where a
creditor's users find what was shared with their institution and supervisors manage
the links.

Uploads go from the browser straight to the object store (``static/document-upload.js``
asks ``/api/v1/documents/uploads`` for a presigned POST, sends the file there, then asks
for the completion); downloads are redirects to presigned URLs of a few minutes. The
documents service enforces permissions and scope; these views shape its answers.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import InvalidInput
from recaudo_common.localtime import DEFAULT_ZONE

from .. import auth, timefmt
from . import portfolio
from ._common import N_, debtor_screens, to_int, translated
from ..boundary import safe_next
from .portfolio import DebtorTab, add_debtor_tab
from ..rpc import rpc

bp = debtor_screens(Blueprint("documents_ui", __name__))

CATEGORIES = {"contrato": N_("Contrato"), "identificacion": N_("Identificación"),
              "comprobante_pago": N_("Comprobante de pago"), "demanda": N_("Demanda"),
              "carta": N_("Carta"), "otro": N_("Otro")}
LINK_STATES = {"active": N_("Vigente"), "expired": N_("Vencida"), "revoked": N_("Revocada")}
ACCESS_OUTCOMES = {"listed": N_("Consultó"), "downloaded": N_("Descargó"),
                   "wrong_password": N_("Contraseña incorrecta"), "throttled": N_("Bloqueado"),
                   "expired": N_("Liga vencida"), "revoked": N_("Liga revocada")}
#: how long a new link lives unless the supervisor says otherwise
DEFAULT_LINK_DAYS = 7
PER_PAGE = 25
#: the zone a link's last day ends in (the platform's home market; its anonymous holders
#: read its times in the same zone, ``timefmt``'s default)
LINK_ZONE = ZoneInfo(DEFAULT_ZONE)


def file_size(size) -> str:
    size = int(size or 0)
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return ""


@bp.app_template_filter("filesize")
def _filesize_filter(size) -> str:
    return file_size(size)


@bp.app_context_processor
def _labels():
    """App-wide: the 360° view's tab (drawn by the portfolio's blueprint) and the share
    pages use them too."""
    return {"DOC_CATEGORIES": translated(CATEGORIES), "LINK_STATES": translated(LINK_STATES),
            "ACCESS_OUTCOMES": translated(ACCESS_OUTCOMES)}


# --- the "Documentos" tab ---------------------------------------------------------------------

def _tab(proxy, view) -> dict:
    debtor_id = view["debtor"]["id"]
    query = {"page": max(to_int(request.args.get("pagina"), 1) or 1, 1),
             "per_page": PER_PAGE}
    if request.args.get("categoria") in CATEGORIES:
        query["category"] = request.args["categoria"]
    folder = proxy.documents.folder(debtor_id, query)
    links = []
    if "documents.share" in g.user["permissions"]:
        links = proxy.documents.list_share_links({"debtor_id": debtor_id, "state": "all",
                                                  "per_page": 50})["items"]
    default_expiry = timefmt.institution_today() + timedelta(days=DEFAULT_LINK_DAYS)
    link_form = g.get("link_form") or {"values": {}, "errors": {}, "new_link": None}
    return {"folder": folder, "links": links, "link_errors": link_form["errors"],
            "link_values": link_form["values"], "new_link": link_form["new_link"],
            "default_expiry": default_expiry.isoformat(), "category": query.get("category")}


add_debtor_tab(DebtorTab("documentos", N_("Documentos"), "documents/tab.html",
                         permission="documents.read", load=_tab))


@bp.post("/deudores/<int:debtor_id>/documentos/ligas")
@auth.permission_required("documents.share")
def create_link(debtor_id: int):
    """Share the folder or one document. The new address is shown once, in the tab (never
    put in a redirect's URL); a refused form comes back with each problem by its field."""
    form = request.form
    data = {"debtor_id": debtor_id, "label": form.get("label", "").strip() or None,
            "password": form.get("password") or None}
    if form.get("document_id"):
        data["document_id"] = to_int(form["document_id"], -1)
    g.link_form = {"values": dict(form), "errors": {}, "new_link": None}
    try:
        day = date.fromisoformat(form.get("expires_on", ""))
    except ValueError:
        g.link_form["errors"] = {"expires_at": [_("Indique la fecha de vencimiento.")]}
        return portfolio.debtor_page(debtor_id, "documentos", status=422)
    # the link lasts to the end of the chosen day in the debtor's institution's zone
    data["expires_at"] = datetime.combine(day, time(23, 59, 59), tzinfo=LINK_ZONE).isoformat()
    try:
        with rpc() as proxy:
            link = proxy.documents.create_share_link(data)
    except InvalidInput as invalid:
        g.link_form["errors"] = invalid.fields
        return portfolio.debtor_page(debtor_id, "documentos", failure=invalid.message, status=422)
    link["url"] = url_for("share.open_link", token=link["token"], _external=True)
    g.link_form = {"values": {}, "errors": {}, "new_link": link}
    return portfolio.debtor_page(debtor_id, "documentos", status=201)


@bp.post("/documentos/ligas/<int:link_id>/revocar")
@auth.permission_required("documents.share")
def revoke_link(link_id: int):
    with rpc() as proxy:
        link = proxy.documents.revoke_share_link(link_id)
    return redirect(safe_next(request.form.get("next"), url_for(
        "portfolio_ui.debtor", debtor_id=link["debtor_id"], tab="documentos")))


@bp.get("/documentos/ligas/<int:link_id>/accesos")
@auth.permission_required("documents.share")
def link_accesses(link_id: int):
    """The link's access log: every attempt, allowed or not."""
    page_number = max(to_int(request.args.get("pagina"), 1) or 1, 1)
    with rpc() as proxy:
        log = proxy.documents.share_link_accesses(link_id, {"page": page_number, "per_page": 50})
        links = proxy.documents.list_share_links({"state": "all", "per_page": 200})["items"]
    link = next((l for l in links if l["id"] == link_id), {"id": link_id})
    return render_template("documents/accesses.html", link=link, log=log)


# --- downloads ----------------------------------------------------------------------------------

@bp.get("/documentos/versiones/<int:version_id>")
@auth.permission_required("documents.read")
def download(version_id: int):
    """To a presigned URL of a few minutes (``ver=1``: shown in the browser, when it can)."""
    with rpc() as proxy:
        answer = proxy.documents.download_url(version_id, request.args.get("ver") == "1")
    return redirect(answer["url"])


# --- "Documentos compartidos" ------------------------------------------------------------------------

@bp.get("/documentos/compartidos")
@auth.permission_required("documents.read")
def shared():
    """What has been shared with the caller's institutions (the creditor portal's view),
    and, for whoever shares, the links to revoke."""
    page_number = max(to_int(request.args.get("pagina"), 1) or 1, 1)
    with rpc() as proxy:
        shared_page = proxy.documents.shared_documents({"page": page_number, "per_page": PER_PAGE})
    return render_template("documents/shared.html", shared=shared_page)
