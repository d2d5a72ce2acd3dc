"""The security module's admin screens: users, profiles, teams, API keys, audit log.

The same operations as the REST API (``api/admin.py``), as server-rendered pages.
Every change is a POST carrying the session's CSRF token; a refused form is shown
again with the values typed and each field's problems next to it (422), and a
successful one redirects (post/redirect/get) with the key of its notice in the query
string: nothing is kept in a cookie or a server-side flash. The auth service
validates and enforces reach and "no privilege escalation"; these views only
collect forms and shape the answers.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

from flask import Blueprint, abort, g, make_response, redirect, render_template, request, url_for
from flask_babel import to_utc
from flask_babel import gettext as _

from auth.contracts import ACTIONS
from .. import auth
from . import error_pages
from ._common import N_, Failure, error_page, page_arg, to_int, url_with
from ._common import attempt as _attempt
from ._common import done as _done
from ..i18n import current_language
from ..rpc import rpc

bp = Blueprint("admin_ui", __name__, url_prefix="/admin")


PER_PAGE = 25
#: choices for the selects of teams and API keys (the service's page limit)
CHOICES_LIMIT = 200
USER_SORTS = ("username", "display_name", "last_login_at", "created_at")

#: ?done=<key> after a successful POST -> the notice shown on the page it lands on
NOTICES = {
    "user_created": N_("Usuario creado."),
    "user_updated": N_("Usuario actualizado."),
    "user_disabled": N_("Usuario desactivado: sus sesiones y tokens terminaron."),
    "user_enabled": N_("Usuario activado."),
    "user_unlocked": N_("Usuario desbloqueado."),
    "password_reset": N_("Contraseña asignada: las sesiones del usuario terminaron."),
    "profile_created": N_("Perfil creado."),
    "profile_updated": N_("Perfil actualizado."),
    "team_saved": N_("Equipo guardado."),
    "key_revoked": N_("Llave revocada."),
}

#: audit action -> label (unknown actions show their code)
ACTION_LABELS = {
    "login_succeeded": N_("Inicio de sesión"),
    "login_failed": N_("Inicio de sesión fallido"),
    "login_throttled": N_("Intentos limitados"),
    "account_locked": N_("Cuenta bloqueada"),
    "account_unlocked": N_("Cuenta desbloqueada"),
    "logout": N_("Cierre de sesión"),
    "session_expired": N_("Sesión expirada"),
    "token_issued": N_("Token emitido"),
    "token_refreshed": N_("Token renovado"),
    "token_reuse_detected": N_("Reuso de token detectado"),
    "password_changed": N_("Contraseña cambiada"),
    "password_reset": N_("Contraseña asignada por un administrador"),
    "user_created": N_("Usuario creado"),
    "user_updated": N_("Usuario modificado"),
    "user_disabled": N_("Usuario desactivado"),
    "user_enabled": N_("Usuario activado"),
    "profile_created": N_("Perfil creado"),
    "permissions_changed": N_("Permisos modificados"),
    "team_changed": N_("Equipo modificado"),
    "api_key_created": N_("Llave de API creada"),
    "api_key_revoked": N_("Llave de API revocada"),
}


# --- small helpers ---------------------------------------------------------------------

def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, "").strip())
    except ValueError:
        return None


def _start_of(day: date) -> str:
    """Midnight of ``day`` in the UI's time zone, as an aware ISO timestamp."""
    return to_utc(datetime(day.year, day.month, day.day)).replace(tzinfo=timezone.utc).isoformat()


def _render(template: str, status: int = 200, **context):
    return render_template(template, **context), status


@bp.context_processor
def _helpers():
    notice = NOTICES.get(request.args.get("done"))
    return {"url_with": url_with, "action_label": action_label,
            "notice": _(notice) if notice else None}


def action_label(action: str) -> str:
    return _(ACTION_LABELS[action]) if action in ACTION_LABELS else action


# --- errors of these pages as pages (the API and the rest keep the JSON body) ---------

error_pages.register(bp, error_page)


#: the hub's first screen the user may use, in the order of the admin menu
HUB = (("users.manage", ".users"), ("activities.manage", "settings_ui.limits"),
       ("institutions.manage", "settings_ui.payments"), ("webhooks.manage", "webhooks_ui.subscriptions"),
       ("audit.view", ".audit_log"))


@bp.get("/")
@auth.login_required
def index():
    for permission, endpoint in HUB:
        if permission in g.user["permissions"]:
            return redirect(url_for(endpoint))
    abort(403)


# --- users -------------------------------------------------------------------------------

USER_FORM_FIELDS = {"username", "display_name", "email", "profile_id", "language",
                    "time_zone", "all_institutions", "institutions", "password"}


def _status_of(user: dict) -> list[tuple[str, str]]:
    """(css class, label) of each status that applies."""
    out = [("active", _("activo")) if user["active"] else ("inactive", _("inactivo"))]
    if user.get("locked"):
        out.append(("locked", _("bloqueado")))
    return out


@bp.get("/usuarios")
@auth.permission_required("users.manage")
def users():
    args = request.args
    search = args.get("q", "").strip()[:100]
    profile_id = to_int(args.get("perfil"))
    active = {"1": True, "0": False}.get(args.get("activo", ""))
    sort = args.get("orden", "username")
    if sort.removeprefix("-") not in USER_SORTS:
        sort = "username"
    query = {"page": page_arg(), "per_page": PER_PAGE, "sort": sort}
    if search:
        query["search"] = search
    if profile_id is not None:
        query["profile_id"] = profile_id
    if active is not None:
        query["active"] = active
    with rpc() as proxy:
        page = proxy.auth.list_users(query)
        profiles = proxy.auth.list_profiles()
        institutions = {i["id"]: i for i in proxy.portfolio.list_institutions()}
    for user in page["items"]:
        user["statuses"] = _status_of(user)
        user["institution_names"] = [
            (institutions[i]["code"], institutions[i]["name"]) if i in institutions
            else (f"#{i}", "") for i in user["institutions"]]
    filtered = bool(search or profile_id is not None or active is not None)
    return render_template("admin/users.html", page=page, profiles=profiles, search=search,
                           profile_id=profile_id, active=args.get("activo", ""), sort=sort,
                           filtered=filtered)


def _user_choices(proxy) -> dict:
    return {"profiles": proxy.auth.list_profiles(),
            "institutions": proxy.portfolio.list_institutions()}


def _user_form_data(form, creating: bool) -> dict:
    raw_profile = form.get("profile_id", "").strip()
    all_institutions = form.get("all_institutions") == "1"
    data = {"display_name": form.get("display_name", "").strip(),
            "email": form.get("email", "").strip() or None,
            "profile_id": to_int(raw_profile, raw_profile or None),
            "language": form.get("language", "es"),
            "time_zone": form.get("time_zone", "").strip() or None,
            "all_institutions": all_institutions,
            "institutions": [] if all_institutions else
            sorted({i for i in (to_int(v) for v in form.getlist("institutions")) if i})}
    if creating:
        data["username"] = form.get("username", "").strip().lower()
        data["password"] = form.get("password", "")
    return data


@bp.route("/usuarios/nuevo", methods=["GET", "POST"])
@auth.permission_required("users.manage")
def new_user():
    values = {"language": "es", "institutions": [], "all_institutions": False}
    failure = None
    if request.method == "POST":
        values = _user_form_data(request.form, creating=True)
        with rpc() as proxy:
            created, failure = _attempt(lambda: proxy.auth.create_user(values))
        if created:
            return _done(".users", "user_created", q=created["username"])
        values.pop("password", None)   # never echoed back into the page
    with rpc() as proxy:
        choices = _user_choices(proxy)
    return _render("admin/user_form.html", failure.status if failure else 200,
                   user=None, values=values, failure=failure,
                   errors=failure.fields if failure else {},
                   others=failure.others(USER_FORM_FIELDS) if failure else [], **choices)


def _render_user(user_id: int, *, values=None, failure: Failure | None = None,
                 password_failure: Failure | None = None, status: int = 200):
    with rpc() as proxy:
        user = proxy.auth.get_user(user_id)
        choices = _user_choices(proxy)
    user["statuses"] = _status_of(user)
    return _render("admin/user_form.html", status, user=user, values=values or user,
                   failure=failure, errors=failure.fields if failure else {},
                   others=failure.others(USER_FORM_FIELDS - {"password"}) if failure else [],
                   password_failure=password_failure,
                   password_errors=password_failure.fields.get("password", [])
                   if password_failure else [], **choices)


@bp.route("/usuarios/<int:user_id>", methods=["GET", "POST"])
@auth.permission_required("users.manage")
def edit_user(user_id: int):
    if request.method == "GET":
        return _render_user(user_id)
    values = _user_form_data(request.form, creating=False)
    with rpc() as proxy:
        _, failure = _attempt(lambda: proxy.auth.update_user(user_id, values))
    if failure is None:
        return _done(".edit_user", "user_updated", user_id=user_id)
    return _render_user(user_id, values=values, failure=failure, status=failure.status)


def _user_action(user_id: int, method: str, notice: str):
    with rpc() as proxy:
        _, failure = _attempt(lambda: getattr(proxy.auth, method)(user_id))
    if failure is None:
        return _done(".edit_user", notice, user_id=user_id)
    return _render_user(user_id, failure=failure, status=failure.status)


@bp.post("/usuarios/<int:user_id>/desactivar")
@auth.permission_required("users.manage")
def disable_user(user_id: int):
    return _user_action(user_id, "disable_user", "user_disabled")


@bp.post("/usuarios/<int:user_id>/activar")
@auth.permission_required("users.manage")
def enable_user(user_id: int):
    return _user_action(user_id, "enable_user", "user_enabled")


@bp.post("/usuarios/<int:user_id>/desbloquear")
@auth.permission_required("users.manage")
def unlock_user(user_id: int):
    return _user_action(user_id, "unlock_user", "user_unlocked")


@bp.post("/usuarios/<int:user_id>/contrasena")
@auth.permission_required("users.manage")
def reset_password(user_id: int):
    with rpc() as proxy:
        _, failure = _attempt(lambda: proxy.auth.reset_password(
            user_id, {"password": request.form.get("password", "")}))
    if failure is None:
        return _done(".edit_user", "password_reset", user_id=user_id)
    return _render_user(user_id, password_failure=failure, status=failure.status)


# --- profiles ------------------------------------------------------------------------------

PROFILE_FORM_FIELDS = {"name", "description", "permissions", "single_institution"}


#: permission code prefix -> heading of its group in the profile editor
PERMISSION_GROUPS = {
    "portfolio": N_("Cartera"), "institutions": N_("Instituciones"),
    "queues": N_("Filas de cobranza"), "activities": N_("Gestiones"),
    "disputes": N_("Aclaraciones"), "documents": N_("Documentos"),
    "messaging": N_("Correo y fax"), "reports": N_("Reportes"),
    "users": N_("Seguridad"), "audit": N_("Seguridad"),
}


def _permission_choices(proxy) -> list[dict]:
    """The catalogue with labels in the user's language, in the service's order."""
    lang = current_language()
    return [{"code": p["code"], "label": p.get(lang) or p["es"],
             "group": _(PERMISSION_GROUPS.get(p["code"].split(".")[0], N_("Otros")))}
            for p in proxy.auth.list_permissions()]


def _grouped(permissions: list[dict]) -> list[tuple[str, list[dict]]]:
    groups: dict[str, list[dict]] = {}
    for permission in permissions:
        groups.setdefault(permission["group"], []).append(permission)
    return list(groups.items())


@bp.get("/perfiles")
@auth.permission_required("users.manage")
def profiles():
    with rpc() as proxy:
        items = proxy.auth.list_profiles()
        labels = {p["code"]: p["label"] for p in _permission_choices(proxy)}
    return render_template("admin/profiles.html", profiles=items, labels=labels)


def _profile_form_data(form) -> dict:
    return {"name": form.get("name", "").strip(),
            "description": form.get("description", "").strip(),
            "permissions": sorted(set(form.getlist("permissions"))),
            "single_institution": form.get("single_institution") == "1"}


def _profile_form(profile, values, failure: Failure | None, status: int = 200):
    with rpc() as proxy:
        permissions = _permission_choices(proxy)
    return _render("admin/profile_form.html", status, profile=profile, values=values,
                   groups=_grouped(permissions), failure=failure,
                   errors=failure.fields if failure else {},
                   others=failure.others(PROFILE_FORM_FIELDS) if failure else [])


@bp.route("/perfiles/nuevo", methods=["GET", "POST"])
@auth.permission_required("users.manage")
def new_profile():
    values = {"name": "", "description": "", "permissions": [], "single_institution": False}
    failure = None
    if request.method == "POST":
        values = _profile_form_data(request.form)
        with rpc() as proxy:
            created, failure = _attempt(lambda: proxy.auth.create_profile(values))
        if created:
            return _done(".profiles", "profile_created")
    return _profile_form(None, values, failure, failure.status if failure else 200)


@bp.route("/perfiles/<int:profile_id>", methods=["GET", "POST"])
@auth.permission_required("users.manage")
def edit_profile(profile_id: int):
    with rpc() as proxy:
        profile = next((p for p in proxy.auth.list_profiles() if p["id"] == profile_id), None)
    if profile is None:
        abort(404)
    if request.method == "GET":
        return _profile_form(profile, profile, None)
    values = _profile_form_data(request.form)
    with rpc() as proxy:
        _, failure = _attempt(lambda: proxy.auth.update_profile(profile_id, values))
    if failure is None:
        return _done(".profiles", "profile_updated")
    return _profile_form(profile, values, failure, failure.status)


# --- teams ---------------------------------------------------------------------------------

TEAM_FORM_FIELDS = {"name", "supervisor_id", "members"}


def _people(proxy) -> list[dict]:
    """Users in reach, for selects and checklists (the first CHOICES_LIMIT by name)."""
    return proxy.auth.list_users({"per_page": CHOICES_LIMIT, "sort": "display_name"})["items"]


@bp.get("/equipos")
@auth.permission_required("users.manage")
def teams():
    with rpc() as proxy:
        items = proxy.auth.list_teams()
    return render_template("admin/teams.html", teams=items)


def _team_form_data(form) -> dict:
    raw = form.get("supervisor_id", "").strip()
    return {"name": form.get("name", "").strip(),
            "supervisor_id": to_int(raw, raw or None),
            "members": sorted({m for m in (to_int(v) for v in form.getlist("members")) if m})}


def _team_form(team, values, failure: Failure | None, status: int = 200):
    with rpc() as proxy:
        people = _people(proxy)
    return _render("admin/team_form.html", status, team=team, values=values, people=people,
                   failure=failure, errors=failure.fields if failure else {},
                   others=failure.others(TEAM_FORM_FIELDS) if failure else [])


@bp.route("/equipos/nuevo", methods=["GET", "POST"])
@bp.route("/equipos/<int:team_id>", methods=["GET", "POST"])
@auth.permission_required("users.manage")
def edit_team(team_id: int | None = None):
    team = None
    if team_id is not None:
        with rpc() as proxy:
            team = next((t for t in proxy.auth.list_teams() if t["id"] == team_id), None)
        if team is None:
            abort(404)
    if request.method == "GET":
        values = ({"name": team["name"], "supervisor_id": team["supervisor_id"],
                   "members": [m["id"] for m in team["members"]]} if team
                  else {"name": "", "supervisor_id": None, "members": []})
        return _team_form(team, values, None)
    values = _team_form_data(request.form)
    with rpc() as proxy:
        _, failure = _attempt(lambda: proxy.auth.save_team(values, team_id))
    if failure is None:
        return _done(".teams", "team_saved")
    return _team_form(team, values, failure, failure.status)


# --- API keys ------------------------------------------------------------------------------

KEY_FORM_FIELDS = {"user_id", "name", "expires_at"}


def _key_status(key: dict) -> tuple[str, str]:
    if key["revoked"]:
        return "inactive", _("revocada")
    expires = key.get("expires_at")
    if expires and datetime.fromisoformat(expires) <= datetime.now(timezone.utc):
        return "locked", _("vencida")
    return "active", _("activa")


@bp.get("/llaves")
@auth.permission_required("users.manage")
def api_keys():
    with rpc() as proxy:
        keys = proxy.auth.list_api_keys()
        people = {u["id"]: u for u in _people(proxy)}
    for key in keys:
        key["status"] = _key_status(key)
        key["user"] = people.get(key["user_id"])
    return render_template("admin/api_keys.html", keys=keys)


@bp.route("/llaves/nueva", methods=["GET", "POST"])
@auth.permission_required("users.manage")
def new_api_key():
    values = {"user_id": to_int(request.args.get("usuario")), "name": "", "expires": ""}
    failure = None
    if request.method == "POST":
        form = request.form
        raw_user = form.get("user_id", "").strip()
        values = {"user_id": to_int(raw_user, raw_user or None), "name": form.get("name", "").strip(),
                  "expires": form.get("expires", "").strip()}
        data = {"user_id": values["user_id"], "name": values["name"], "expires_at": None}
        if values["expires"]:
            try:
                day = date.fromisoformat(values["expires"])
                data["expires_at"] = _start_of(day + timedelta(days=1))  # valid all that day
            except ValueError:
                failure = Failure(422, _("Revise los campos marcados."),
                                  {"expires_at": [_("Fecha inválida")]})
        if failure is None:
            with rpc() as proxy:
                created, failure = _attempt(lambda: proxy.auth.create_api_key(data))
            if created:
                # The secret exists only in this answer: shown once, in this page, never
                # in a URL (so no redirect), and never stored by the browser.
                with rpc() as proxy:
                    owner = proxy.auth.get_user(created["user_id"])
                response = make_response(render_template("admin/api_key_created.html",
                                                         key=created, owner=owner))
                response.headers["Cache-Control"] = "no-store"
                return response
    with rpc() as proxy:
        people = [u for u in _people(proxy) if u["active"]]
    return _render("admin/api_key_form.html", failure.status if failure else 200,
                   values=values, people=people, failure=failure,
                   errors=failure.fields if failure else {},
                   others=failure.others(KEY_FORM_FIELDS) if failure else [])


@bp.post("/llaves/<int:key_id>/revocar")
@auth.permission_required("users.manage")
def revoke_api_key(key_id: int):
    with rpc() as proxy:
        proxy.auth.revoke_api_key(key_id)   # NotFound -> the error page
    return _done(".api_keys", "key_revoked")


# --- audit log --------------------------------------------------------------------------------

def _details(details: dict) -> list[tuple[str, str]]:
    return [(k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
            for k, v in (details or {}).items()]


@bp.get("/bitacora")
@auth.permission_required("audit.view")
def audit_log():
    args = request.args
    action = args.get("accion", "")
    username = args.get("usuario", "").strip()[:60]
    since, until = _date_arg("desde"), _date_arg("hasta")
    query = {"page": page_arg(), "per_page": PER_PAGE}
    if action in ACTIONS:
        query["action"] = action
    if username:
        query["username"] = username
    if since:
        query["since"] = _start_of(since)
    if until:
        query["until"] = _start_of(until + timedelta(days=1))   # the whole "until" day
    with rpc() as proxy:
        page = proxy.auth.list_audit(query)
        people = ({u["id"]: u["username"] for u in _people(proxy)}
                  if "users.manage" in g.user["permissions"] else {})
    for entry in page["items"]:
        entry["target"] = (people.get(entry["target_user_id"], f"#{entry['target_user_id']}")
                           if entry["target_user_id"] else "")
        entry["detail_pairs"] = _details(entry["details"])
    filtered = bool(query.keys() - {"page", "per_page"})
    return render_template("admin/audit.html", page=page, actions=ACTIONS,
                           action=action if action in ACTIONS else "", username=username,
                           since=since.isoformat() if since else "",
                           until=until.isoformat() if until else "", filtered=filtered)
