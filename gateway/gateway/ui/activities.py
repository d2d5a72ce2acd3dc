"""The contact log's screens: on the debtor's 360° view the tabs "Gestiones" (the activity
form and the history grid), "Promesas" and "Aclaraciones", and the chain check for
administrators; the agenda (day or week, mine or my team's, with the private calendar
feed); the supervisors' productivity table; and the result-code catalogue under
Administración.

The activity form takes its start time when it is rendered (a hidden field; a small
script, ``static/activity-form.js``, shows the clock running and shows the promise or
callback fields only when the chosen result asks for them — without JavaScript both
are simply visible). The end time is when the form arrives. A refused form comes back
with the values typed and each problem next to its field (422). The activities
service enforces permissions and scope; these views collect forms and shape answers.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from auth.contracts import MAX_NAMES
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied

from .. import auth, timefmt
from . import portfolio
from ._common import NOTICES as DEBTOR_NOTICES, debtor_screens, page_arg, to_int, translated
from ..boundary import safe_next
from ..errors import HTTP_STATUS
from ._common import N_
from .portfolio import DebtorTab, add_debtor_tab
from ..rpc import rpc
from ..validation import localize

bp = debtor_screens(Blueprint("activities_ui", __name__))

HISTORY_PER_PAGE = 20
KINDS = {"call": N_("Llamada"), "visit": N_("Visita"), "email": N_("Correo"),
         "fax": N_("Fax"), "sms": N_("SMS"), "letter": N_("Carta"), "note": N_("Nota")}
DIRECTIONS = {"outbound": N_("Saliente"), "inbound": N_("Entrante")}
PROMISE_STATES = {"pending": N_("Pendiente"), "kept": N_("Cumplida"),
                  "partly_kept": N_("Cumplida en parte"), "broken": N_("Incumplida")}
DISPUTE_STATES = {"open": N_("Abierta"), "resolved": N_("Resuelta")}
OUTCOMES = {"confirmed_debt": N_("Adeudo confirmado"),
            "corrected_balance": N_("Saldo corregido"), "cancelled": N_("Cancelada")}
AGENDA_KINDS = {"callback": N_("Llamar"), "visit": N_("Visita")}
GROUPS = {"agent": N_("Gestor"), "day": N_("Día"), "institution": N_("Institución"),
          "queue": N_("Fila")}
#: the activity form's fields (a problem of any other field is told above the form)
FORM_FIELDS = {"account_id", "kind", "direction", "phone", "email", "address",
               "result_code_id", "result_code", "description", "promise", "promise_amount",
               "promise_due_date", "promise_instalments", "settlement",
               "settlement_discount_pct", "settlement_pay_by", "callback_at", "callback_note",
               "started_at", "ended_at", "justification", "override", "caller_id"}
#: the rows of a plan of payments the activity form offers (a plan is filled rows only)
PLAN_ROWS = 6
APPROVERS = {"supervisor": N_("un supervisor"), "administrator": N_("un administrador")}
APPROVAL_STATES = {"pending": N_("Pendiente de aprobación"), "approved": N_("Aprobada"),
                   "rejected": N_("Rechazada")}
#: what the contact policy's refusal of an outbound call names (an admin may override it)
POLICY_FIELDS = ("phone", "started_at")

DEBTOR_NOTICES.update({
    "logged": N_("Gestión registrada."),
    "logged_approval": N_("Gestión registrada. La promesa queda fuera de los límites de la "
                          "institución y espera la aprobación de un supervisor."),
    "dispute_opened": N_("Aclaración abierta: la cuenta queda en espera en las filas."),
    "dispute_resolved": N_("Aclaración resuelta."),
})
NOTICES = {
    "done": N_("Pendiente marcado como hecho."),
    "feed_revoked": N_("La liga del calendario quedó desactivada."),
    "code_saved": N_("Código guardado."),
    "settings_saved": N_("Configuración guardada."),
}


# --- small helpers ---------------------------------------------------------------------------

def _messages(problems) -> list[str]:
    """A field's problems as flat text in the user's language."""
    if isinstance(problems, dict):
        return [m for nested in problems.values() for m in _messages(nested)]
    if isinstance(problems, (list, tuple)):
        return [m for nested in problems for m in _messages(nested)]
    return [localize(problems)]


#: what a contact-policy refusal carries beside the field to blame
REFUSAL_KEYS = ("rule", "reason", "policy_version")


def _plain_refusal(fields: dict) -> dict:
    """A contact-policy refusal (409) as the agent reads it: the blamed field says why,
    naming the rule in words and the policy version, instead of the raw keys."""
    if not all(k in fields for k in REFUSAL_KEYS):
        return fields
    rule, version = fields["rule"][0], fields["policy_version"][0]
    why = {"rule": _(RULE_LABELS[rule]) if rule in RULE_LABELS else rule, "version": version}
    return {name: [_("%(reason)s (regla «%(rule)s», política %(version)s)", reason=p, **why)
                   for p in _messages(problems)]
            for name, problems in fields.items() if name not in REFUSAL_KEYS}


def form_errors(fields: dict) -> dict[str, list[str]]:
    """The service's field -> problems, one level of nesting joined by "_"
    (``promise.amount`` is the form's ``promise_amount``); a contact-policy refusal in
    plain words (``_plain_refusal``)."""
    out: dict[str, list[str]] = {}
    for name, problems in _plain_refusal(fields or {}).items():
        if isinstance(problems, dict) and name in ("promise", "settlement"):
            for inner, nested in problems.items():
                out.setdefault(f"{name}_{inner}", []).extend(_messages(nested))
        else:
            out.setdefault(name, []).extend(_messages(problems))
    return out


def _others(errors: dict, shown: set) -> list[str]:
    return [p for name, problems in errors.items() if name not in shown for p in problems]


def agent_names(proxy, ids) -> dict[int, str]:
    """Display names of the people behind ``ids`` (those the auth service lets the caller
    name: their institutions' staff; anyone else shows as ``#id``)."""
    wanted = sorted({i for i in ids if i is not None})
    names = {}
    for start in range(0, len(wanted), MAX_NAMES):   # a year's productivity may name many
        names.update({u["id"]: u["display_name"]
                      for u in proxy.auth.user_names(wanted[start:start + MAX_NAMES])})
    return names


@bp.app_context_processor
def _helpers():
    return {"ACTIVITY_KINDS": translated(KINDS), "DIRECTIONS": translated(DIRECTIONS),
            "PROMISE_STATES": translated(PROMISE_STATES),
            "DISPUTE_STATES": translated(DISPUTE_STATES), "OUTCOMES": translated(OUTCOMES),
            "AGENDA_KINDS": translated(AGENDA_KINDS)}


# --- the 360° view's tabs ------------------------------------------------------------------------

def _chosen_account(view: dict) -> dict | None:
    """The account the tab shows: the form's, ``?cuenta=``, or the debtor's first."""
    accounts = [a["account"] for a in view["accounts"]]
    state = g.get("activity_form") or {}
    wanted = to_int((state.get("values") or {}).get("account_id")) or to_int(request.args.get("cuenta"))
    return next((a for a in accounts if a["id"] == wanted), accounts[0] if accounts else None)


def _history_tab(proxy, view: dict) -> dict:
    account = _chosen_account(view)
    if account is None:
        return {"act_account": None}
    permissions = g.user["permissions"]
    page = page_arg()
    history = proxy.activities.account_history(account["id"], {"page": page,
                                                               "per_page": HISTORY_PER_PAGE})
    context = {"act_account": account, "history": history,
               "names": agent_names(proxy, [a["agent_id"] for a in history["items"]]),
               "form": None}
    if "activities.log" in permissions:
        codes = proxy.activities.list_result_codes(account["institution_id"])
        state = g.get("activity_form") or {}
        settings = proxy.activities.get_settings(account["institution_id"])
        # the outbound number the call goes out from: the institution's, unless typed
        values = state.get("values") or {"kind": "call", "direction": "outbound",
                                         "caller_id": settings.get("outbound_number") or ""}
        context["form"] = {
            "codes": codes, "values": values, "errors": state.get("errors", {}),
            "limits": proxy.activities.account_limits(account["id"]),
            "plan_rows": PLAN_ROWS, "APPROVERS": translated(APPROVERS),
            "others": state.get("others", []),
            # the clock starts when the form is shown; a refused form keeps its start
            "started_at": values.get("started_at") or datetime.now(timezone.utc).isoformat(),
            "key": values.get("idempotency_key") or uuid.uuid4().hex}
    return context


def _promises_tab(proxy, view: dict) -> dict:
    account = _chosen_account(view)
    if account is None:
        return {"act_account": None}
    # what waits for (or was refused by) an approver: the agent is told here
    return {"act_account": account, "promises": proxy.activities.account_promises(account["id"]),
            "approvals": proxy.activities.account_approvals(account["id"]),
            "APPROVAL_STATES": translated(APPROVAL_STATES), "APPROVERS": translated(APPROVERS)}


def _disputes_tab(proxy, view: dict) -> dict:
    account = _chosen_account(view)
    if account is None:
        return {"act_account": None}
    state = g.get("dispute_form") or {}
    disputes = proxy.activities.account_disputes(account["id"])
    return {"act_account": account, "disputes": disputes,
            "names": agent_names(proxy, [d["owner_id"] for d in disputes]),
            "dispute_values": state.get("values", {}),
            "dispute_errors": state.get("errors", {}), "dispute_for": state.get("dispute_id")}


#: the rules of the contact policies, as an agent reads them
RULE_LABELS = {
    "do_not_contact": N_("No contactar"), "window": N_("Horario permitido"),
    "outside_hours": N_("Horario permitido"),
    "cease_communication": N_("Cese de comunicaciones"), "attorney": N_("Representado por abogado"),
    "inconvenient_time": N_("Horario inconveniente"), "call_frequency": N_("Frecuencia de llamadas"),
    "third_party": N_("Terceros"), "caller_id": N_("Identificador de llamada"),
    "written_agreement": N_("Acuerdos por escrito"),
}
DECISIONS = {"refused": N_("Rechazado"), "overridden": N_("Autorizado")}


def _compliance_tab(proxy, view: dict) -> dict:
    """The debtor's word about being contacted and the verdicts that refused a contact."""
    seen = proxy.activities.debtor_compliance(view["debtor"]["id"])
    return {"preferences": seen["preferences"] or {}, "compliance_log": seen["log"],
            "RULE_LABELS": translated(RULE_LABELS),
            "DECISIONS": translated(DECISIONS)}


add_debtor_tab(DebtorTab("gestiones", N_("Gestiones"), "activities/tabs/history.html",
                         permission="activities.read", load=_history_tab), after="notas")
add_debtor_tab(DebtorTab("promesas", N_("Promesas"), "activities/tabs/promises.html",
                         permission="activities.read", load=_promises_tab), after="gestiones")
add_debtor_tab(DebtorTab("aclaraciones", N_("Aclaraciones"), "activities/tabs/disputes.html",
                         permission="activities.read", load=_disputes_tab), after="promesas")
add_debtor_tab(DebtorTab("cumplimiento", N_("Cumplimiento"), "activities/tabs/compliance.html",
                         permission="activities.read", load=_compliance_tab),
               after="aclaraciones")


# --- logging from the 360° view -------------------------------------------------------------------

def _code_flags(proxy, institution_id: int, code_id) -> dict:
    code = next((c for c in proxy.activities.list_result_codes(institution_id)
                 if c["id"] == code_id), None)
    return code or {}


def _amount(text: str) -> str | None:
    """A typed amount ("$1,500.00") as the service reads it; ValueError if no number."""
    text = text.strip().replace(",", "").replace("$", "")
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None
    if not amount.is_finite():
        raise ValueError(text)
    return str(amount)


def terms_from_form(form) -> tuple[dict, dict]:
    """What the form's promise fieldset holds, as the service reads it: ``{"settlement":}``
    when a discount is typed (its lump sum is the promise, by the date given), else
    ``{"promise":}`` (``promise_from_form``), else nothing; and the problems found."""
    pct = form.get("settlement_discount_pct", "").strip().rstrip("%").strip()
    if pct:
        due = form.get("promise_due_date", "").strip()
        return {"settlement": {"discount_pct": pct.replace(",", "."), "pay_by": due or None}}, {}
    promise, errors = promise_from_form(form)
    return ({"promise": promise} if promise is not None else {}), errors


def promise_from_form(form) -> tuple[dict | None, dict]:
    """The promise the form holds - a plan when any plan row is filled, else one amount
    and date - (None when nothing is typed), and the amounts that are no number."""
    errors: dict[str, list[str]] = {}
    rows = [(form.get(f"plan_due_date_{n}", "").strip(), form.get(f"plan_amount_{n}", ""))
            for n in range(PLAN_ROWS)]
    rows = [(d, a) for d, a in rows if d or a.strip()]
    if rows:
        instalments = []
        for due, text in rows:
            try:
                instalments.append({"due_date": due or None, "amount": _amount(text)})
            except ValueError:
                errors["promise_instalments"] = [_("Escriba un importe")]
        return {"instalments": instalments}, errors
    amount_text = form.get("promise_amount", "")
    due_text = form.get("promise_due_date", "").strip()
    if not (amount_text.strip() or due_text):
        return None, errors
    promise = {"due_date": due_text or None, "amount": None}
    try:
        promise["amount"] = _amount(amount_text)
    except ValueError:
        errors["promise_amount"] = [_("Escriba un importe")]
    return promise, errors


def _activity_from_form(proxy, form, account: dict) -> tuple[dict, dict]:
    """The service's body from the form, and the problems found before asking it."""
    errors: dict[str, list[str]] = {}
    kind = form.get("kind", "")
    code_id = to_int(form.get("result_code_id"))
    data = {"account_id": account["id"], "kind": kind,
            "direction": form.get("direction") or "outbound",
            "started_at": form.get("started_at", ""),
            "ended_at": datetime.now(timezone.utc).isoformat(),
            "result_code_id": code_id,
            "description": form.get("description", "").replace("\r\n", "\n"),
            "idempotency_key": form.get("idempotency_key") or None}
    for name in ("phone", "email", "address"):
        data[name] = form.get(name) or None
    if to_int(form.get("queue_id")):
        data["queue_id"] = to_int(form.get("queue_id"))
    if form.get("justification", "").strip():
        data["override"] = {"justification": form["justification"].strip()}
    if kind == "call" and data["direction"] == "outbound" and form.get("caller_id", "").strip():
        data["caller_id"] = form["caller_id"].strip()
    flags = _code_flags(proxy, account["institution_id"], code_id) if code_id else {}
    terms, terms_errors = terms_from_form(form)
    if flags.get("needs_promise") or (not flags and terms):
        errors.update(terms_errors)
        data.update(terms or {"promise": {"amount": None, "due_date": None}})
    callback_text = form.get("callback_at", "").strip()
    if callback_text:
        try:
            # typed as the reader sees times: in their zone
            moment = datetime.fromisoformat(callback_text)
            data["callback_at"] = (moment if moment.tzinfo else moment.replace(
                tzinfo=timefmt.reader_zone())).isoformat()
        except ValueError:
            errors["callback_at"] = [_("Fecha y hora inválidas.")]
        data["callback_note"] = form.get("callback_note", "").strip()[:500]
    return data, errors


@bp.post("/deudores/<int:debtor_id>/gestiones")
@auth.permission_required("activities.log")
def log_activity(debtor_id: int):
    form = request.form
    with rpc() as proxy:
        # the short scope check, not the whole 360° view: only a failure shows the page again
        scope = proxy.portfolio.debtor_scope(debtor_id)
        account_id = to_int(form.get("account_id"))
        if account_id not in scope["account_ids"]:
            abort(404)
        account = {"id": account_id, "institution_id": scope["institution_id"]}
        data, errors = _activity_from_form(proxy, form, account)
        if not errors:
            try:
                logged = proxy.activities.log_activity(data)
            except (InvalidInput, PermissionDenied, Conflict) as exc:
                errors = form_errors(exc.fields) or {"_schema": [exc.message]}
                status = HTTP_STATUS[type(exc)]
                if isinstance(exc, Conflict) and any(f in errors for f in POLICY_FIELDS) \
                        and "activities.manage" in g.user["permissions"]:
                    errors.setdefault("justification", [
                        _("Para registrarla de todos modos, escriba la justificación.")])
            else:
                return redirect(url_for("portfolio_ui.debtor", debtor_id=debtor_id,
                                        tab="gestiones", cuenta=account["id"],
                                        done="logged_approval" if logged.get("approval")
                                        else "logged",
                                        fila=data.get("queue_id")))
        else:
            status = 422
    values = {k: form.get(k, "") for k in (
        "account_id", "kind", "direction", "phone", "email", "address", "result_code_id",
        "description", "promise_amount", "promise_due_date", "callback_at", "callback_note",
        "started_at", "idempotency_key", "queue_id", "justification", "caller_id",
        "settlement_discount_pct",
        *(f"plan_{f}_{n}" for n in range(PLAN_ROWS) for f in ("due_date", "amount")))}
    g.activity_form = {"values": values, "errors": errors,
                       "others": _others(errors, FORM_FIELDS)}
    return portfolio.debtor_page(debtor_id, "gestiones",
                                  failure=_("Revise los campos marcados."), status=status)


@bp.get("/deudores/<int:debtor_id>/gestiones/limites")
@auth.permission_required("activities.log")
def promise_verdict(debtor_id: int):
    """Whether the promise or plan the form holds is inside the institution's limits or will
    wait for an approver: the activities service's own judgement (``check_promise``, as
    logging it would judge), put by htmx under the form's promise before it is sent."""
    account_id = to_int(request.args.get("account_id"))
    terms, errors = terms_from_form(request.args)
    verdict, problems = None, []
    if account_id is None:
        abort(404)
    if terms and not errors:
        try:
            with rpc() as proxy:
                verdict = proxy.activities.check_promise({"account_id": account_id, **terms})
        except (InvalidInput, Conflict) as exc:   # not yet a whole promise: what is missing
            problems = _messages(exc.fields or {"_": [exc.message]})
    return render_template("activities/_promise_verdict.html", verdict=verdict,
                           problems=problems or [p for v in errors.values() for p in v],
                           APPROVERS=translated(APPROVERS))


# --- disputes from the 360° view ---------------------------------------------------------------------

@bp.post("/deudores/<int:debtor_id>/aclaraciones")
@auth.login_required
def open_dispute(debtor_id: int):
    form = request.form
    account_id = to_int(form.get("account_id"))
    data = {"account_id": account_id, "reason": form.get("reason", "").strip(),
            "evidence": form.get("evidence", "").replace("\r\n", "\n")}
    try:
        with rpc() as proxy:
            proxy.activities.open_dispute(data)
    except (InvalidInput, Conflict) as exc:
        g.dispute_form = {"values": data, "errors": form_errors(exc.fields)}
        return portfolio.debtor_page(debtor_id, "aclaraciones", failure=exc.message,
                                      status=HTTP_STATUS[type(exc)])
    return redirect(url_for("portfolio_ui.debtor", debtor_id=debtor_id, tab="aclaraciones",
                            cuenta=account_id, done="dispute_opened"))


@bp.post("/deudores/<int:debtor_id>/aclaraciones/<int:dispute_id>/resolver")
@auth.permission_required("disputes.manage")
def resolve_dispute(debtor_id: int, dispute_id: int):
    form = request.form
    data = {"outcome": form.get("outcome", ""), "note": form.get("note", "").strip()}
    if form.get("corrected_balance", "").strip():
        data["corrected_balance"] = form["corrected_balance"].strip().replace(",", "")
    try:
        with rpc() as proxy:
            proxy.activities.resolve_dispute(dispute_id, data)
    except (InvalidInput, Conflict) as exc:
        g.dispute_form = {"values": data, "errors": form_errors(exc.fields),
                          "dispute_id": dispute_id}
        return portfolio.debtor_page(debtor_id, "aclaraciones", failure=exc.message,
                                      status=HTTP_STATUS[type(exc)])
    return redirect(url_for("portfolio_ui.debtor", debtor_id=debtor_id, tab="aclaraciones",
                            cuenta=to_int(form.get("account_id")), done="dispute_resolved"))


# --- the chain check ---------------------------------------------------------------------------------

@bp.get("/cuentas/<int:account_id>/cadena")
@auth.permission_required("activities.read")
def verify_chain(account_id: int):
    """The account's chain checked now (htmx puts the answer beside the button): by whoever
    manages activities, or a supervisor for their team's accounts (the service decides)."""
    try:
        with rpc() as proxy:
            result = proxy.activities.verify_chain(account_id)
    except NotFound:
        result = None
    fragment = request.headers.get("HX-Request") == "true"
    return render_template("activities/_chain.html" if fragment else "activities/chain.html",
                           result=result, account_id=account_id,
                           back=request.args.get("volver"))


# --- the agenda ------------------------------------------------------------------------------------------

def _agenda_range(view: str, day: date) -> tuple[date, date]:
    if view == "semana":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    return day, day


@bp.get("/agenda")
@auth.permission_required("activities.read")
def agenda():
    args = request.args
    view = "semana" if args.get("vista") == "semana" else "dia"
    try:
        day = date.fromisoformat(args.get("fecha", ""))
    except ValueError:
        day = datetime.now(timefmt.reader_zone()).date()
    first, last = _agenda_range(view, day)
    team_id = to_int(args.get("equipo"))
    query = {"date_from": first.isoformat(), "date_to": last.isoformat(),
             "include_done": args.get("hechos") == "1",
             "time_zone": str(timefmt.reader_zone())}
    if team_id:
        query["team_id"] = team_id
    with rpc() as proxy:
        items = proxy.activities.agenda_for(query)
        teams = proxy.auth.list_teams()
        names = agent_names(proxy, [i.get("agent_id") for i in items])
    days = []
    for offset in range((last - first).days + 1):
        current = first + timedelta(days=offset)
        days.append((current, [i for i in items if timefmt.as_moment(i["due_at"]).astimezone(
            timefmt.reader_zone()).date() == current]))
    step = timedelta(days=7 if view == "semana" else 1)
    notice = NOTICES.get(args.get("done"))
    return render_template("activities/agenda.html", days=days, view=view, day=day,
                           first=first, last=last, teams=teams, team_id=team_id,
                           names=names, total=len(items),
                           prev_day=(day - step).isoformat(), next_day=(day + step).isoformat(),
                           feed_url=None, notice=_(notice) if notice else None)


@bp.post("/agenda/<int:item_id>/hecho")
@auth.permission_required("activities.log")
def agenda_done(item_id: int):
    try:
        with rpc() as proxy:
            proxy.activities.mark_agenda_done(item_id)
    except Conflict:
        pass   # done already (another tab, a colleague): the list shows it so
    back = safe_next(request.form.get("volver"), url_for(".agenda"))
    return redirect(back + ("&" if "?" in back else "?") + "done=done")


@bp.post("/agenda/calendario")
@auth.permission_required("activities.read")
def agenda_feed():
    """A new private calendar address, shown once; or the current one revoked."""
    from ..api.activities import feed_url

    with rpc() as proxy:
        if request.form.get("accion") == "revocar":
            proxy.activities.revoke_ics_token()
            return redirect(url_for(".agenda", done="feed_revoked"))
        token = proxy.activities.create_ics_token()["token"]
    return render_template("activities/feed.html", feed_url=feed_url(token))


# --- productivity --------------------------------------------------------------------------------------

@bp.get("/productividad")
@auth.permission_required("activities.read")
def productivity():
    args = request.args
    today = datetime.now(timefmt.reader_zone()).date()
    errors = {}

    def day_arg(name, default):
        raw = args.get(name, "").strip()
        if not raw:
            return default
        try:
            return date.fromisoformat(raw)
        except ValueError:
            errors[name] = [_("Fecha inválida.")]
            return default

    first = day_arg("desde", today.replace(day=1))
    last = day_arg("hasta", today)
    groups = [k for k in args.getlist("agrupar") if k in GROUPS] or ["agent"]
    team_id = to_int(args.get("equipo"))
    query = {"date_from": first.isoformat(), "date_to": last.isoformat(), "group_by": groups}
    if team_id:
        query["team_id"] = team_id
    report, status = None, 200
    with rpc() as proxy:
        if not errors:
            try:
                report = proxy.activities.productivity(query)
            except InvalidInput as exc:
                errors = {{"date_from": "desde", "date_to": "hasta"}.get(k, k): v
                          for k, v in form_errors(exc.fields).items()}
        if errors:
            status = 422
        teams = proxy.auth.list_teams()
        names = agent_names(proxy, [r.get("agent_id") for r in (report or {}).get("rows", [])])
        institutions = {i["id"]: i["code"] for i in proxy.portfolio.list_institutions()}
    return render_template("activities/productivity.html", report=report, errors=errors,
                           first=first, last=last, groups=groups, team_id=team_id,
                           teams=teams, names=names, institutions=institutions,
                           GROUPS=translated(GROUPS),
                           values=args), status


# --- the result-code catalogue and the institution's settings (Administración) ---------------------

CODE_FLAGS = ("contact_made", "needs_promise", "invalidates_phone", "schedules_callback",
              "active")
FLAG_LABELS = {"contact_made": N_("Hubo contacto"), "needs_promise": N_("Requiere promesa"),
               "invalidates_phone": N_("Invalida el teléfono"),
               "schedules_callback": N_("Programa llamada"), "active": N_("Activo")}


def _institution(proxy, wanted) -> tuple[list, dict | None]:
    institutions = proxy.portfolio.list_institutions()
    wanted = to_int(wanted)
    chosen = next((i for i in institutions if i["id"] == wanted), None) or \
        (institutions[0] if institutions else None)
    return institutions, chosen


def _codes_page(institution_wanted, *, code_values=None, code_errors=None, editing=None,
                settings_values=None, settings_errors=None, status=200):
    with rpc() as proxy:
        institutions, institution = _institution(proxy, institution_wanted)
        codes = proxy.activities.list_result_codes(institution["id"], True) if institution else []
        settings = proxy.activities.get_settings(institution["id"]) if institution else None
    if editing is not None and code_values is None:
        code_values = next((c for c in codes if c["id"] == editing), None)
        if code_values is None:
            abort(404)
    notice = NOTICES.get(request.args.get("done"))
    return render_template(
        "activities/result_codes.html", institutions=institutions, institution=institution,
        codes=codes, editing=editing,
        code_values=code_values or {"active": True, "sort_order": len(codes) * 10},
        code_errors=code_errors or {}, settings=settings_values or settings,
        settings_errors=settings_errors or {}, section="result_codes",
        FLAG_LABELS=translated(FLAG_LABELS), CODE_FLAGS=CODE_FLAGS,
        notice=_(notice) if notice else None), status


@bp.get("/admin/codigos-resultado")
@auth.permission_required("activities.manage")
def result_codes():
    return _codes_page(request.args.get("institucion"), editing=to_int(request.args.get("editar")))


@bp.post("/admin/codigos-resultado")
@auth.permission_required("activities.manage")
def save_result_code():
    form = request.form
    institution_id = to_int(form.get("institution_id"))
    code_id = to_int(form.get("code_id"))
    data = {"institution_id": institution_id, "code": form.get("code", "").strip().upper(),
            "label": form.get("label", "").strip(),
            "sort_order": to_int(form.get("sort_order"), form.get("sort_order") or 0),
            **{flag: form.get(flag) == "1" for flag in CODE_FLAGS}}
    try:
        with rpc() as proxy:
            proxy.activities.save_result_code(data, code_id)
    except (InvalidInput, Conflict) as exc:
        return _codes_page(institution_id, code_values={**data, "id": code_id},
                           code_errors=form_errors(exc.fields) or {"_schema": [exc.message]},
                           editing=code_id, status=HTTP_STATUS[type(exc)])
    return redirect(url_for(".result_codes", institucion=institution_id, done="code_saved"))


@bp.post("/admin/codigos-resultado/configuracion")
@auth.permission_required("activities.manage")
def save_settings():
    form = request.form
    institution_id = to_int(form.get("institution_id"))
    data = {"dispute_sla_days": to_int(form.get("dispute_sla_days"), form.get("dispute_sla_days")),
            "attribution_days": to_int(form.get("attribution_days"), form.get("attribution_days")),
            "time_zone": form.get("time_zone", "").strip(),
            "outbound_number": form.get("outbound_number", "").strip() or None}
    try:
        with rpc() as proxy:
            proxy.activities.save_settings(institution_id, data)
    except InvalidInput as exc:
        return _codes_page(institution_id, settings_values=data,
                           settings_errors=form_errors(exc.fields), status=422)
    return redirect(url_for(".result_codes", institucion=institution_id, done="settings_saved"))
