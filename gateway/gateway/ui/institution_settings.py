"""Each institution's settings under Administración (issue 25's APIs as screens): the limits
on plans and settlements (with the discount bands and who approves above each threshold),
the debtor portal's second factor and link lifetime, and how payments arrive (the
collection CLABE and convenio, the payment providers with their webhook secret, shown once).

Each screen calls the RPC its API calls, with the same permissions: reading the limits is
``activities.read``, writing them ``activities.manage``; the portal's setting is read by
any user and written with ``institutions.manage``; payments are ``institutions.manage``.
An institution out of the caller's reach answers 404, like one that does not exist. The
services validate; these views collect forms and shape answers.
"""
from __future__ import annotations

import re
import secrets

from flask import Blueprint, abort, g, render_template, request

from activities.contracts import APPROVERS

from .. import auth
from ..rpc import rpc
from ._common import (N_, Failure, STAGES, attempt, done, error_page, institution_in_reach,
                      notice_of, shown_once, to_int, translated)
from . import error_pages

bp = Blueprint("settings_ui", __name__, url_prefix="/admin")
error_pages.register(bp, error_page)

NOTICES = {"limits_saved": N_("Límites guardados."),
           "portal_saved": N_("Configuración del portal guardada."),
           "payments_saved": N_("Datos de cobro guardados."),
           "provider_paused": N_("Proveedor desactivado: sus avisos se rechazan."),
           "provider_resumed": N_("Proveedor activado.")}
APPROVER_LABELS = {"supervisor": N_("Un supervisor"), "administrator": N_("Un administrador")}
SECOND_FACTORS = {"birth_date": N_("Fecha de nacimiento"),
                  "account_last4": N_("Últimos 4 dígitos de la cuenta"),
                  "rfc_last4": N_("Últimos 4 caracteres del RFC")}
#: the most rows the limits editor takes (the service's own limits)
MAX_BANDS, MAX_THRESHOLDS = 50, 10


def _may(permission: str | None) -> bool:
    return permission is None or permission in g.user["permissions"]


@bp.context_processor
def _helpers():
    return {"notice": notice_of(NOTICES), "STAGES": translated(STAGES),
            "APPROVERS": {a: _label(a) for a in APPROVERS},
            "SECOND_FACTORS": translated(SECOND_FACTORS)}


def _label(approver: str) -> str:
    return translated(APPROVER_LABELS).get(approver, approver)


def _posted_institution() -> int:
    """The form's institution (the service answers 404 for one out of reach)."""
    institution_id = to_int(request.form.get("institution_id"))
    if institution_id is None:
        abort(404)
    return institution_id


def _failure_view(failure: Failure | None, shown: set) -> dict:
    """What every form of these screens shows of a refusal."""
    return {"failure": failure, "errors": failure.paths if failure else {},
            "others": failure.others(shown) if failure else []}


# --- plan and settlement limits --------------------------------------------------------------

LIMIT_FIELDS = ("max_instalments", "min_first_payment", "min_first_payment_pct",
                "max_plan_days", "offer_expiry_days")
_BAND_KEY = re.compile(r"^bands-(\d{1,2})-dpd_from$")


def _number(raw: str):
    """An integer as a number, anything else as typed (the service names what is wrong)."""
    raw = (raw or "").strip()
    return to_int(raw, raw) if raw else None


def _bands_from(form) -> list[dict]:
    """The band rows of the editor in their order; rows left blank and thresholds with no
    percentage are dropped (so each index the service names is a row shown again)."""
    rows = sorted(int(m.group(1)) for m in map(_BAND_KEY.match, form) if m)
    bands = []
    for i in rows[:MAX_BANDS + 1]:
        key = f"bands-{i}-"
        thresholds = [{"up_to_pct": form.get(f"{key}t{j}-pct", "").strip(),
                       "approver": form.get(f"{key}t{j}-approver") or None}
                      for j in range(MAX_THRESHOLDS + 1)
                      if form.get(f"{key}t{j}-pct", "").strip()]
        band = {"stage": form.get(f"{key}stage") or None,
                "dpd_from": _number(form.get(f"{key}dpd_from")),
                "dpd_to": _number(form.get(f"{key}dpd_to")), "thresholds": thresholds}
        if band["stage"] or band["dpd_from"] or band["dpd_to"] is not None or thresholds:
            bands.append({**band, "dpd_from": band["dpd_from"] or 0})
    return bands


def _limits_form(form) -> dict:
    data = {name: _number(form.get(name)) for name in LIMIT_FIELDS}
    data = {name: value for name, value in data.items() if value is not None}
    data["discount_bands"] = _bands_from(form)
    return data


def _limits_page(institution_id, values=None, failure: Failure | None = None, status=200):
    with rpc() as proxy:
        institutions, institution = institution_in_reach(proxy, institution_id)
        limits = proxy.activities.get_plan_limits(institution["id"]) if institution else {}
    values = values or limits
    return render_template(
        "settings/limits.html", institutions=institutions, institution=institution,
        limits=limits, values=values, bands=values.get("discount_bands") or [],
        editable=_may("activities.manage"), section="limits",
        **_failure_view(failure, {*LIMIT_FIELDS, "discount_bands"})), status


@bp.get("/limites")
@auth.permission_required("activities.read")
def limits():
    return _limits_page(request.args.get("institucion"))


@bp.post("/limites")
@auth.permission_required("activities.manage")
def save_limits():
    institution_id = _posted_institution()
    values = _limits_form(request.form)
    if "add_band" in request.form or "remove_band" in request.form:
        # editing the rows only: shown again, nothing saved yet
        removed = to_int(request.form.get("remove_band"))
        bands = [b for n, b in enumerate(values["discount_bands"]) if n != removed]
        if "add_band" in request.form and len(bands) < MAX_BANDS:
            bands.append({"stage": None, "dpd_from": 0, "dpd_to": None, "thresholds": []})
        return _limits_page(institution_id, {**values, "discount_bands": bands})
    with rpc() as proxy:
        _, failure = attempt(lambda: proxy.activities.save_plan_limits(institution_id, values))
    if failure is None:
        return done(".limits", "limits_saved", institucion=institution_id)
    return _limits_page(institution_id, values, failure, failure.status)


# --- the debtor portal -------------------------------------------------------------------------

PORTAL_FIELDS = {"second_factor", "link_ttl_hours"}


def _portal_page(institution_id, values=None, failure: Failure | None = None, status=200):
    with rpc() as proxy:
        institutions, institution = institution_in_reach(proxy, institution_id)
        current = proxy.auth.portal_settings(institution["id"]) if institution else {}
    return render_template(
        "settings/portal.html", institutions=institutions, institution=institution,
        values=values or current, editable=_may("institutions.manage"), section="portal",
        **_failure_view(failure, PORTAL_FIELDS)), status


@bp.get("/portal")
@auth.login_required
def portal():
    return _portal_page(request.args.get("institucion"))


@bp.post("/portal")
@auth.permission_required("institutions.manage")
def save_portal():
    institution_id = _posted_institution()
    values = {"second_factor": request.form.get("second_factor", ""),
              "link_ttl_hours": _number(request.form.get("link_ttl_hours"))}
    with rpc() as proxy:
        _, failure = attempt(lambda: proxy.auth.save_portal_settings(institution_id, values))
    if failure is None:
        return done(".portal", "portal_saved", institucion=institution_id)
    return _portal_page(institution_id, values, failure, failure.status)


# --- payments: bank details and providers ----------------------------------------------------

PAYMENT_FIELDS = {"clabe", "bank_name", "beneficiary", "convenio"}
PROVIDER_FIELDS = {"name", "secret"}


def _payments_page(institution_id, *, values=None, failure: Failure | None = None,
                   provider_values=None, provider_failure: Failure | None = None, status=200):
    with rpc() as proxy:
        institutions, institution = institution_in_reach(proxy, institution_id)
        current = proxy.portfolio.get_payment_settings(institution["id"]) if institution else {}
        providers = [p for p in proxy.portfolio.list_payment_providers()
                     if institution and p["institution_id"] == institution["id"]]
    return render_template(
        "settings/payments.html", institutions=institutions, institution=institution,
        values=values or current, providers=providers, section="payments",
        provider_values=provider_values or {"name": ""},
        provider_errors=provider_failure.paths if provider_failure else {},
        provider_failure=provider_failure,
        **_failure_view(failure, PAYMENT_FIELDS)), status


@bp.get("/pagos")
@auth.permission_required("institutions.manage")
def payments():
    return _payments_page(request.args.get("institucion"))


@bp.post("/pagos")
@auth.permission_required("institutions.manage")
def save_payments():
    institution_id = _posted_institution()
    values = {name: request.form.get(name, "").strip() for name in PAYMENT_FIELDS}
    values["clabe"] = values["clabe"] or None
    with rpc() as proxy:
        _, failure = attempt(lambda: proxy.portfolio.save_payment_settings(institution_id,
                                                                           values))
    if failure is None:
        return done(".payments", "payments_saved", institucion=institution_id)
    return _payments_page(institution_id, values=values, failure=failure, status=failure.status)


def _provider_saved(provider: dict, secret: str, rotated: bool):
    return shown_once("settings/provider_secret.html", provider=provider, secret=secret,
                      rotated=rotated, section="payments")


@bp.post("/pagos/proveedores")
@auth.permission_required("institutions.manage")
def new_provider():
    institution_id = _posted_institution()
    secret = request.form.get("secret", "").strip() or secrets.token_urlsafe(32)
    values = {"name": request.form.get("name", "").strip().lower(),
              "institution_id": institution_id, "secret": secret}
    with rpc() as proxy:
        created, failure = attempt(lambda: proxy.portfolio.save_payment_provider(values))
    if failure is None:
        return _provider_saved(created, secret, rotated=False)
    return _payments_page(institution_id, provider_values={"name": values["name"]},
                          provider_failure=failure, status=failure.status)


def _provider(proxy, provider_id: int) -> dict:
    """One provider in the caller's reach (any other: 404, like a missing one)."""
    found = next((p for p in proxy.portfolio.list_payment_providers()
                  if p["id"] == provider_id), None)
    if found is None:
        abort(404)
    return found


@bp.post("/pagos/proveedores/<int:provider_id>/secreto")
@auth.permission_required("institutions.manage")
def rotate_provider_secret(provider_id: int):
    """A new secret replaces the old at once (the provider must be given it)."""
    secret = secrets.token_urlsafe(32)
    with rpc() as proxy:
        provider = _provider(proxy, provider_id)
        saved = proxy.portfolio.save_payment_provider(
            {"name": provider["name"], "institution_id": provider["institution_id"],
             "active": provider["active"], "secret": secret}, provider_id)
    return _provider_saved(saved, secret, rotated=True)


@bp.post("/pagos/proveedores/<int:provider_id>/activo")
@auth.permission_required("institutions.manage")
def toggle_provider(provider_id: int):
    active = request.form.get("active") == "1"
    with rpc() as proxy:
        provider = _provider(proxy, provider_id)
        proxy.portfolio.save_payment_provider(
            {"name": provider["name"], "institution_id": provider["institution_id"],
             "active": active}, provider_id)
    return done(".payments", "provider_resumed" if active else "provider_paused",
                institucion=provider["institution_id"])
