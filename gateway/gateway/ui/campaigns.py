"""Preventive campaigns' screens (the queues service owns them): the list of an
institution's campaigns, the form (conditions as the queues' editor writes them, channel -
email, SMS or letter -, template, whether each message carries the debtor's personal
portal link, daily hour, hold-out share) with the preview of how many accounts it would pick
today, and a campaign's page with pause/resume, "Ejecutar ahora" and its results.

The form posts whole (no JavaScript needed; ``campaigns.js`` only adds condition rows and
asks for the preview through htmx without leaving the page). The service validates and
answers each problem by field; they are shown next to it.
"""
from __future__ import annotations

import json

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import Conflict, InvalidInput

from .. import auth
from . import error_pages
from ._common import N_, alert_error_page, label_of, to_int
from .queues.conditions import CHOICE_LABELS, Catalogue, condition, value_text
from .queues.editor import readable
from ..rpc import rpc

bp = Blueprint("campaigns_ui", __name__, url_prefix="/campanas")
error_pages.register(bp, alert_error_page)

CONDITION_ROWS = 4
CHANNEL_LABELS = {"email": N_("Correo electrónico"), "sms": N_("SMS"), "letter": N_("Carta")}
STATE_LABELS = {"active": N_("Activa"), "paused": N_("En pausa")}
KIND_LABELS = {"scheduled": N_("Programada"), "manual": N_("Manual")}
CAUSE_LABELS = {"do_not_contact": N_("No contactar"), "outside_hours": N_("Fuera de horario"),
                "no_address": N_("Sin correo, teléfono o domicilio")}
NOTICES = {"created": N_("Campaña creada."), "saved": N_("Campaña guardada."),
           "paused": N_("Campaña en pausa: no correrá ni enviará lo pendiente."),
           "resumed": N_("Campaña reanudada.")}
#: the default conditions of a new campaign: current accounts due within three days
NEW_CONDITIONS = [{"field": "stage", "op": "eq", "value": "current"},
                  {"field": "days_to_next_due", "op": "between", "value": "0, 3"}]


def _helpers():
    notice = NOTICES.get(request.args.get("done"))
    return {"notice": _(notice) if notice else None,
            "channel_label": lambda c: label_of(CHANNEL_LABELS, c),
            "campaign_state_label": lambda c: label_of(STATE_LABELS, c),
            "kind_label": lambda c: label_of(KIND_LABELS, c),
            "cause_label": lambda c: label_of(CAUSE_LABELS, c),
            "choice_label": lambda c: label_of(CHOICE_LABELS, c)}


bp.context_processor(_helpers)


def _institutions(proxy) -> list[dict]:
    return proxy.portfolio.list_institutions()


def _chosen(institutions, wanted):
    wanted = to_int(wanted)
    return next((i for i in institutions if i["id"] == wanted), None) or \
        (institutions[0] if institutions else None)


def _draft_conditions(conditions: dict) -> dict:
    """A stored condition tree as the form shows it: its group ("all"/"any"), its leaves as
    rows, and nested groups (made through the API) kept as they are, unshown."""
    group = "any" if "any" in conditions else "all"
    children = conditions.get(group) or []
    return {"group": group,
            "rows": [{"field": c.get("field", ""), "op": c.get("op", "eq"),
                      "value": value_text(c.get("value"))} for c in children if "field" in c],
            "extra": [c for c in children if "field" not in c]}


def _rows_from(conditions: dict) -> list[dict]:
    return _draft_conditions(conditions)["rows"]


def _form_rows() -> list[dict]:
    fields, ops, values = (request.form.getlist(k) for k in ("cond_field", "cond_op", "cond_value"))
    return [{"field": f, "op": o, "value": v} for f, o, v in zip(fields, ops, values)]


def _draft_from_form(institution_id: int) -> dict:
    try:
        extra = json.loads(request.form.get("extra") or "[]")
    except ValueError:
        extra = []
    return {"institution_id": institution_id, "name": request.form.get("name", "").strip(),
            "rows": _form_rows(), "group": "any" if request.form.get("group") == "any" else "all",
            "extra": extra if isinstance(extra, list) else [],
            "channel": request.form.get("channel", "email"),
            "template_id": to_int(request.form.get("template_id")),
            "portal_link": request.form.get("portal_link") == "1",
            "language": request.form.get("language", "es"),
            "send_hour": to_int(request.form.get("send_hour"), request.form.get("send_hour")),
            "holdout_share": to_int(request.form.get("holdout_share"),
                                  request.form.get("holdout_share"))}


def _payload(draft: dict, catalogue: Catalogue) -> dict:
    rows = [r for r in draft["rows"] if r["field"]]
    return {"institution_id": draft["institution_id"], "name": draft["name"],
            "conditions": {draft.get("group", "all"): [condition(r, catalogue) for r in rows]
                           + list(draft.get("extra") or [])},
            "channel": draft["channel"], "template_id": draft["template_id"],
            "portal_link": bool(draft.get("portal_link")),
            "language": draft["language"], "send_hour": draft["send_hour"],
            "holdout_share": draft["holdout_share"]}


def _problems(exc: InvalidInput) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for field, messages in (exc.fields or {}).items():
        messages = messages if isinstance(messages, list) else [messages]
        out[field] = [readable(str(m)) for m in messages]
    return out


def _form_page(proxy, institution: dict, draft: dict, campaign: dict | None = None,
               problems: dict | None = None, preview: dict | None = None, status: int = 200):
    catalogue = Catalogue(proxy.queues.condition_catalogue())
    templates = proxy.messaging.list_templates(institution["id"])
    rows = list(draft["rows"])
    rows += [{"field": "", "op": "eq", "value": ""}] * max(0, CONDITION_ROWS - len(rows))
    return render_template("campaigns/form.html", institution=institution, draft=draft,
                           rows=rows, campaign=campaign, catalogue=catalogue,
                           templates=templates, problems=problems or {}, preview=preview,
                           section="campaigns"), status


@bp.get("/")
@auth.permission_required("queues.manage")
def index():
    with rpc() as proxy:
        institutions = _institutions(proxy)
        institution = _chosen(institutions, request.args.get("institucion"))
        items = proxy.queues.list_campaigns(institution["id"]) if institution else []
        templates = {t["id"]: t["name"] for t in proxy.messaging.list_templates(
            institution["id"], True)} if institution else {}
    return render_template("campaigns/index.html", institutions=institutions,
                           institution=institution, campaigns=items, template_names=templates,
                           section="campaigns")


def _save(proxy, institution: dict, campaign: dict | None):
    draft = _draft_from_form(institution["id"])
    catalogue = Catalogue(proxy.queues.condition_catalogue())
    payload = _payload(draft, catalogue)
    if request.form.get("action") == "preview":
        try:
            preview = proxy.queues.preview_campaign({
                "institution_id": institution["id"], "conditions": payload["conditions"],
                "holdout_share": payload["holdout_share"],
                "campaign_id": campaign["id"] if campaign else None})
        except InvalidInput as exc:
            return _form_page(proxy, institution, draft, campaign, _problems(exc), status=422)
        return _form_page(proxy, institution, draft, campaign, preview=preview)
    try:
        saved = proxy.queues.save_campaign(payload, campaign["id"] if campaign else None)
    except (InvalidInput, Conflict) as exc:
        return _form_page(proxy, institution, draft, campaign, _problems(exc) or
                          {"": [exc.message]}, status=422 if isinstance(exc, InvalidInput)
                          else 409)
    return redirect(url_for(".detail", campaign_id=saved["id"],
                            done="saved" if campaign else "created"))


@bp.route("/nueva", methods=["GET", "POST"])
@auth.permission_required("queues.manage")
def new():
    with rpc() as proxy:
        institutions = _institutions(proxy)
        institution = _chosen(institutions, request.values.get("institucion"))
        if institution is None:
            return redirect(url_for(".index"))
        if request.method == "POST":
            return _save(proxy, institution, None)
        draft = {"institution_id": institution["id"], "name": "", "group": "all", "extra": [],
                 "rows": [{**r} for r in NEW_CONDITIONS], "channel": "email", "template_id": None,
                 "portal_link": False, "language": "es", "send_hour": 9, "holdout_share": 10}
        return _form_page(proxy, institution, draft)


@bp.post("/vista-previa")
@auth.permission_required("queues.manage")
def preview():
    """The target count of the form as it is (htmx swaps it into the form)."""
    with rpc() as proxy:
        institution_id = to_int(request.form.get("institucion"))
        catalogue = Catalogue(proxy.queues.condition_catalogue())
        draft = _draft_from_form(institution_id)
        payload = _payload(draft, catalogue)
        try:
            result = proxy.queues.preview_campaign({
                "institution_id": institution_id, "conditions": payload["conditions"],
                "holdout_share": payload["holdout_share"],
                "campaign_id": to_int(request.form.get("campaign_id"))})
            problems = None
        except InvalidInput as exc:
            result, problems = None, _problems(exc)
    return render_template("campaigns/_preview.html", preview=result, problems=problems)


def _campaign_and_institution(proxy, campaign_id: int) -> tuple[dict, dict]:
    campaign = proxy.queues.get_campaign(campaign_id)
    institution = next(i for i in _institutions(proxy) if i["id"] == campaign["institution_id"])
    return campaign, institution


@bp.get("/<int:campaign_id>")
@auth.permission_required("queues.manage")
def detail(campaign_id: int):
    with rpc() as proxy:
        campaign, institution = _campaign_and_institution(proxy, campaign_id)
        report = proxy.queues.campaign_report(campaign_id)
        template = proxy.messaging.get_template(campaign["template_id"])
        catalogue = Catalogue(proxy.queues.condition_catalogue())
    refused = request.args.get("rechazo")
    return render_template("campaigns/detail.html", campaign=campaign, institution=institution,
                           report=report, template=template, catalogue=catalogue,
                           rows=_rows_from(campaign["conditions"]), refused=refused,
                           ran=request.args.get("tomadas"), section="campaigns")


@bp.route("/<int:campaign_id>/editar", methods=["GET", "POST"])
@auth.permission_required("queues.manage")
def edit(campaign_id: int):
    with rpc() as proxy:
        campaign, institution = _campaign_and_institution(proxy, campaign_id)
        if request.method == "POST":
            return _save(proxy, institution, campaign)
        draft = {**campaign, **_draft_conditions(campaign["conditions"])}
        return _form_page(proxy, institution, draft, campaign)


@bp.post("/<int:campaign_id>/pausar")
@auth.permission_required("queues.manage")
def pause(campaign_id: int):
    with rpc() as proxy:
        proxy.queues.set_campaign_state(campaign_id, "paused")
    return redirect(url_for(".detail", campaign_id=campaign_id, done="paused"))


@bp.post("/<int:campaign_id>/reanudar")
@auth.permission_required("queues.manage")
def resume(campaign_id: int):
    with rpc() as proxy:
        proxy.queues.set_campaign_state(campaign_id, "active")
    return redirect(url_for(".detail", campaign_id=campaign_id, done="resumed"))


@bp.post("/<int:campaign_id>/ejecutar")
@auth.permission_required("queues.manage")
def run(campaign_id: int):
    with rpc() as proxy:
        try:
            result = proxy.queues.run_campaign(campaign_id)
        except Conflict as exc:
            return redirect(url_for(".detail", campaign_id=campaign_id, rechazo=exc.message))
    return redirect(url_for(".detail", campaign_id=campaign_id, tomadas=result["targeted"]))
