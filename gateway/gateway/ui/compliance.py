"""The compliance screens under Administración (issue 24): each jurisdiction's contact
policy - the version in force with its rules in plain words, the history of versions with
who wrote them, and for a compliance officer a form writing the next version with the date
it takes effect - and the compliance log of refused and overridden contacts, searched by
debtor, account, rule, channel, decision and dates, and exported as CSV.

Reading a policy is for administrators and compliance officers (``activities.manage`` or
``compliance.manage``); writing one and the log are the officer's. The activities service
enforces the same; these views collect forms and shape answers.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common import contact_policy
from recaudo_common.errors import InvalidInput

from .. import auth, timefmt
from ..rpc import rpc
from ._common import N_, translated, url_with
from .activities import DECISIONS, KINDS, RULE_LABELS, form_errors

bp = Blueprint("compliance_ui", __name__)

PER_PAGE = 50
OFFICER = "compliance.manage"
READERS = (OFFICER, "activities.manage")
#: what each rule does, for the editor (the engine's rules, in the order offered)
RULE_HELP = {
    "do_not_contact": N_("No se contacta un teléfono, correo o domicilio marcado «no contactar»."),
    "window": N_("Sólo dentro del horario, en la hora local del deudor (y el de la institución)."),
    "cease_communication": N_("Si el deudor pidió cesar la comunicación, no se le contacta."),
    "attorney": N_("Si el deudor tiene abogado, se contacta al abogado, no al deudor."),
    "inconvenient_time": N_("No en los días y horas que el deudor dijo que no le convienen."),
    "call_frequency": N_("Como mucho tantos intentos de llamada por deuda en tantos días; una "
                         "conversación cierra las llamadas esos días (salvo consentimiento)."),
    "third_party": N_("Sólo los números del deudor, sus avales y referencias."),
    "caller_id": N_("Una llamada necesita un número saliente conocido; queda registrado."),
    "written_agreement": N_("Todo acuerdo de pago se envía por escrito al deudor (correo o SMS)."),
}
RULES = tuple(RULE_HELP)
NOTICES = {"saved": N_("Nueva versión guardada.")}


@bp.context_processor
def _helpers():
    return {"RULE_LABELS": translated(RULE_LABELS), "RULE_HELP": translated(RULE_HELP),
            "DECISIONS": translated(DECISIONS), "KINDS": translated(KINDS),
            "url_with": url_with}


def _may(*permissions) -> None:
    """Any one of ``permissions`` (the view is behind login_required)."""
    if not set(permissions) & set(g.user["permissions"]):
        abort(403)


# --- policies --------------------------------------------------------------------------------

def _in_force(versions: list[dict], now: datetime) -> dict | None:
    effective = [v for v in versions if timefmt.as_moment(v["effective_from"]) <= now]
    return max(effective, key=lambda v: v["version"]) if effective else None


@bp.get("/admin/cumplimiento/politicas")
@auth.login_required
def policies():
    _may(*READERS)
    with rpc() as proxy:
        versions = proxy.activities.list_contact_policies(None)
    now = datetime.now(timezone.utc)
    by_code: dict[str, list[dict]] = {}
    for v in versions:
        by_code.setdefault(v["jurisdiction"], []).append(v)
    rows = [{"jurisdiction": code, "in_force": _in_force(vs, now),
             "latest": max(vs, key=lambda v: v["version"]), "versions": len(vs)}
            for code, vs in sorted(by_code.items(), key=lambda kv: (kv[0] == "*", kv[0]))]
    return render_template("compliance/policies.html", rows=rows, section="compliance")


def _editor_values(rules: list[dict]) -> dict:
    """The editor's fields from a version's rules: which are on, their order, parameters."""
    values = {}
    for n, rule in enumerate(rules, start=1):
        name = rule["rule"]
        values[f"{name}_on"] = True
        values[f"{name}_order"] = n
        for param in ("from", "until", "attempts", "days"):
            if rule.get(param) is not None:
                values[f"{name}_{param}"] = rule[param]
    return values


def _policy_page(jurisdiction: str, values: dict | None = None, errors: dict | None = None,
                 status: int = 200):
    with rpc() as proxy:
        versions = proxy.activities.list_contact_policies(jurisdiction)
    if not versions:
        abort(404)
    versions.sort(key=lambda v: v["version"], reverse=True)
    current = _in_force(versions, datetime.now(timezone.utc)) or versions[-1]
    if values is None:
        values = _editor_values(versions[0]["rules"])
        values["effective_from"] = timefmt.institution_today().isoformat()
    notice = NOTICES.get(request.args.get("done", ""))
    return render_template(
        "compliance/policy.html", jurisdiction=jurisdiction, versions=versions,
        current=current, values=values, errors=errors or {}, rules=RULES,
        editable=OFFICER in g.user["permissions"], notice=_(notice) if notice else None,
        section="compliance"), status


@bp.get("/admin/cumplimiento/politicas/<jurisdiction>")
@auth.login_required
def policy(jurisdiction):
    _may(*READERS)
    return _policy_page(jurisdiction.upper())


def _rules_from(form) -> list[dict]:
    """The rules ticked in the editor, in the order given, with their parameters."""
    chosen = []
    for position, name in enumerate(RULES):
        if form.get(f"{name}_on") != "1":
            continue
        rule = {"rule": name}
        for param in ("from", "until"):
            if form.get(f"{name}_{param}", "").strip():
                rule[param] = form[f"{name}_{param}"].strip()
        for param in ("attempts", "days"):
            raw = form.get(f"{name}_{param}", "").strip()
            if raw:
                rule[param] = int(raw) if raw.isdigit() else raw
        try:
            order = int(form.get(f"{name}_order", ""))
        except ValueError:
            order = 100 + position
        chosen.append((order, position, rule))
    return [rule for _order, _position, rule in sorted(chosen, key=lambda c: c[:2])]


def _effective(day: str) -> str | None:
    """Midnight of ``day`` in the reader's zone (the date the version takes effect)."""
    try:
        start = datetime.combine(date.fromisoformat(day), time.min, tzinfo=timefmt.reader_zone())
    except ValueError:
        return None
    return start.astimezone(timezone.utc).isoformat()


@bp.post("/admin/cumplimiento/politicas/<jurisdiction>")
@auth.permission_required(OFFICER)
def save_policy(jurisdiction):
    jurisdiction = jurisdiction.upper()
    form = request.form
    rules = _rules_from(form)
    values = {key: (True if value == "1" and key.endswith("_on") else value)
              for key, value in form.items() if key != "csrf_token"}
    effective = _effective(form.get("effective_from", "").strip())
    if effective is None:
        return _policy_page(jurisdiction, values,
                            {"effective_from": [_("Indique la fecha en que entra en vigor")]}, 422)
    try:
        with rpc() as proxy:
            proxy.activities.save_contact_policy(jurisdiction, {
                "effective_from": effective, "rules": rules,
                "note": form.get("note", "").strip()})
    except InvalidInput as exc:
        return _policy_page(jurisdiction, values, _rule_errors(exc.fields, rules), 422)
    return redirect(url_for(".policy", jurisdiction=jurisdiction, done="saved"))


def _rule_errors(fields: dict, rules: list[dict]) -> dict:
    """The service's problems, on the editor's fields (``rules.2.from`` -> ``window_from``)."""
    out = form_errors({k: v for k, v in (fields or {}).items() if k != "rules"})
    problems = (fields or {}).get("rules")
    if isinstance(problems, dict):
        for index, inner in problems.items():
            try:
                name = rules[int(index)]["rule"]
            except (ValueError, IndexError):
                continue
            for param, messages in (inner.items() if isinstance(inner, dict) else ()):
                out.setdefault(f"{name}_{param}", []).extend(
                    messages if isinstance(messages, list) else [str(messages)])
    elif problems:
        out["rules"] = [_("Elija al menos una regla")]
    return out


# --- the compliance log ---------------------------------------------------------------------------

def _log_query() -> tuple[dict, dict]:
    """The log's filters from the query string: (for the service, as typed)."""
    args = request.args
    shown = {name: args.get(name, "").strip() for name in
             ("deudor", "cuenta", "regla", "medio", "decision", "desde", "hasta")}
    query = {}
    for arg, name in (("deudor", "debtor_id"), ("cuenta", "account_id")):
        if shown[arg].isdigit():
            query[name] = int(shown[arg])
    if shown["regla"] in contact_policy.RULES:
        query["rule"] = shown["regla"]
    if shown["medio"] in KINDS:
        query["channel"] = shown["medio"]
    if shown["decision"] in DECISIONS:
        query["decision"] = shown["decision"]
    for arg, name, shift in (("desde", "since", 0), ("hasta", "until", 1)):
        try:
            day = date.fromisoformat(shown[arg]) + timedelta(days=shift)
        except ValueError:
            continue
        query[name] = datetime.combine(day, time.min, tzinfo=timefmt.reader_zone()) \
            .astimezone(timezone.utc).isoformat()
    return query, shown


@bp.get("/admin/cumplimiento/bitacora")
@auth.permission_required(OFFICER)
def compliance_log():
    query, shown = _log_query()
    try:
        page_no = max(1, min(int(request.args.get("pagina", "1")), 100_000))
    except ValueError:
        page_no = 1
    with rpc() as proxy:
        page = proxy.activities.compliance_log({**query, "page": page_no, "per_page": PER_PAGE})
    return render_template("compliance/log.html", page=page, shown=shown,
                           filtered=bool(query), rules=contact_policy.RULES,
                           section="compliance_log")


@bp.get("/admin/cumplimiento/bitacora.csv")
@auth.permission_required(OFFICER)
def compliance_log_csv():
    query, _shown = _log_query()
    with rpc() as proxy:
        body = proxy.activities.compliance_log_csv(query)
    stamp = datetime.now(timefmt.reader_zone()).strftime("%Y%m%d-%H%M")
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="bitacora-cumplimiento-{stamp}.csv"'})
