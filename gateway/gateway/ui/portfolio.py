"""The portfolio screens: "Cartera" (the list of accounts with search, filters and
sorting), the debtor's 360° view, and portfolio imports with their progress.

Everything works as plain pages; htmx only makes them quicker: the search box and the
filters refresh the table as one types, the 360° tabs swap without reloading the
header, and an import's progress polls a fragment every second until the job ends.
The portfolio service enforces permissions and scope; these views collect the
arguments and shape the answers.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Callable

from babel.numbers import format_currency, format_decimal
from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from recaudo_common.errors import Conflict, InvalidInput, PermissionDenied

from .. import auth, events, timefmt, uploads
from ._common import (NOTICES, N_, STAGES, debtor_screens, htmx_target, page_arg,
                      to_int)
from ..errors import HTTP_STATUS
from ..rpc import rpc
from ..validation import localize_fields

bp = debtor_screens(Blueprint("portfolio_ui", __name__))

PER_PAGE = 25
#: the sortable columns of the list (the service's sort keys)
SORTS = ("customer_number", "name", "days_past_due", "balance", "overdue_amount",
         "account_number")
DEFAULT_SORT = "-days_past_due"
#: the most institutions whose statuses fill the status filter when none is chosen
STATUS_FILTER_INSTITUTIONS = 20
IMPORTS_PER_PAGE = 15
PROBLEMS_SHOWN = 50
#: a currency shown in the format of its own country ("$3,265.00" for pesos)
CURRENCY_LOCALES = {"MXN": "es_MX", "USD": "en_US"}


# --- formatting helpers (template filters, usable by every screen) ------------------------

def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@bp.app_template_filter("money")
def money(value, currency: str = "MXN") -> str:
    """``3265`` → ``$3,265.00`` (pesos in Mexico's format, whatever the UI language)."""
    amount = _decimal(value)
    if amount is None:
        return ""
    locale = CURRENCY_LOCALES.get(currency) or str(get_locale() or "es")
    return format_currency(amount, currency, locale=locale)


@bp.app_template_filter("phone")
def phone(number) -> str:
    """Digits grouped the Mexican way: 55 1234 5678, 442 123 4567."""
    digits = "".join(ch for ch in str(number or "") if ch.isdigit())
    if len(digits) != 10:
        return str(number or "")
    if digits[:2] in ("55", "33", "81"):
        return f"{digits[:2]} {digits[2:6]} {digits[6:]}"
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


@bp.app_template_filter("number")
def number(value) -> str:
    return format_decimal(value or 0, locale=str(get_locale() or "es"))


# --- "Cartera": the list of accounts ----------------------------------------------------------

@dataclass
class Filters:
    """The list's arguments as typed in the URL (Spanish names) and as the service takes them."""

    q: str = ""
    institution_id: int | None = None
    stage: str = ""
    status_id: int | None = None
    dpd_min: int | None = None
    dpd_max: int | None = None
    balance_min: Decimal | None = None
    balance_max: Decimal | None = None
    sort: str = DEFAULT_SORT

    @classmethod
    def from_args(cls, args) -> tuple["Filters", dict]:
        """The filters, and field -> problem for what could not be read (then ignored)."""
        errors = {}

        def whole(name):
            raw = args.get(name, "").strip()
            value = to_int(raw)
            if raw and (value is None or value < 0):
                errors[name] = _("Escriba un número entero")
                return None
            return value

        def amount(name):
            raw = args.get(name, "").strip().replace(",", "").replace("$", "")
            value = _decimal(raw)
            if raw and (value is None or not value.is_finite()):
                errors[name] = _("Escriba un importe")
                return None
            return value

        sort = args.get("orden", DEFAULT_SORT)
        return cls(q=args.get("q", "").strip()[:100],
                   institution_id=to_int(args.get("institucion")),
                   stage=args.get("etapa", "") if args.get("etapa") in STAGES else "",
                   status_id=to_int(args.get("estatus")),
                   dpd_min=whole("morosidad_min"), dpd_max=whole("morosidad_max"),
                   balance_min=amount("saldo_min"), balance_max=amount("saldo_max"),
                   sort=sort if sort.lstrip("-") in SORTS else DEFAULT_SORT), errors

    def query(self, page: int) -> dict:
        query = {"page": page, "per_page": PER_PAGE, "sort": self.sort}
        for key in ("q", "institution_id", "stage", "status_id", "dpd_min", "dpd_max"):
            value = getattr(self, key)
            if value not in (None, ""):
                query[key] = value
        for key in ("balance_min", "balance_max"):
            if getattr(self, key) is not None:
                query[key] = str(getattr(self, key))
        return query

    @property
    def narrowed(self) -> bool:
        """Any filter besides the search text."""
        return any(v not in (None, "") for v in (
            self.institution_id, self.stage, self.status_id, self.dpd_min, self.dpd_max,
            self.balance_min, self.balance_max))

    @property
    def active(self) -> bool:
        return bool(self.q) or self.narrowed


def _status_choices(proxy, institutions: list[dict], institution_id) -> list[tuple[dict, list]]:
    """(institution, its statuses) for the status filter: the chosen one, or all of them."""
    chosen = [i for i in institutions if i["id"] == institution_id] or \
        institutions[:STATUS_FILTER_INSTITUTIONS]
    return [(i, proxy.portfolio.list_statuses(i["id"])) for i in chosen]


@bp.get("/cartera")
@auth.permission_required("portfolio.read")
def accounts():
    filters, errors = Filters.from_args(request.args)
    fragment = htmx_target() == "results"
    with rpc() as proxy:
        try:
            page = proxy.portfolio.list_accounts(filters.query(page_arg()))
        except InvalidInput as exc:   # what slipped past the form's own checks
            errors.update({k: " ".join(map(str, v)) if isinstance(v, list) else str(v)
                           for k, v in exc.fields.items()})
            page = {"items": [], "total": 0, "total_is_exact": True, "page": 1,
                    "per_page": PER_PAGE, "pages": 0}
        institutions = [] if fragment else proxy.portfolio.list_institutions()
        statuses = [] if fragment else _status_choices(proxy, institutions,
                                                       filters.institution_id)
    context = {"page": page, "filters": filters, "errors": errors,
               "institutions": institutions, "statuses": statuses}
    if fragment:
        return render_template("portfolio/_accounts.html", oob=True, **context)
    return render_template("portfolio/accounts.html", **context)


# --- the debtor's 360° view -----------------------------------------------------------------

@dataclass(frozen=True)
class DebtorTab:
    """One tab of the 360° view. Later features add theirs with ``add_debtor_tab``: a
    template rendered with the view's context (``view``, ``debtor``, ``summary``, plus
    whatever ``load(proxy, view)`` answers when the tab is opened)."""

    id: str
    #: marked with ``N_``; translated when shown
    label: str
    template: str
    #: who sees the tab (None: everybody who sees the debtor)
    permission: str | None = None
    #: fn(view) -> a number shown beside the label
    count: Callable[[dict], int] | None = None
    #: fn(proxy, view) -> extra context, called only when the tab is shown
    load: Callable | None = None


DEBTOR_TABS: list[DebtorTab] = [
    DebtorTab("notas", N_("Notas"), "portfolio/tabs/notes.html"),
    DebtorTab("contacto", N_("Contacto"), "portfolio/tabs/contact.html",
              count=lambda v: len(v["phones"]) + len(v["emails"])),
    DebtorTab("contrato", N_("Contrato"), "portfolio/tabs/contract.html",
              count=lambda v: len(v["accounts"])),
    DebtorTab("domicilio", N_("Domicilio"), "portfolio/tabs/addresses.html",
              count=lambda v: len(v["addresses"])),
    DebtorTab("movimientos", N_("Movimientos"), "portfolio/tabs/movements.html",
              count=lambda v: sum(len(a["movements"]) for a in v["accounts"])),
    DebtorTab("avales", N_("Avales"), "portfolio/tabs/guarantors.html",
              count=lambda v: len(v["guarantors"])),
]


def add_debtor_tab(tab: DebtorTab, after: str | None = None) -> None:
    """Register a tab of the 360° view (at the end, or right after the tab ``after``)."""
    ids = [t.id for t in DEBTOR_TABS]
    DEBTOR_TABS.insert(ids.index(after) + 1 if after in ids else len(ids), tab)


def _summary(view: dict) -> dict:
    """The header's figures over the accounts the caller sees."""
    accounts = [a["account"] for a in view["accounts"]]
    worst = max(view["accounts"], key=lambda a: a["account"]["days_past_due"], default=None)
    return {
        "days_past_due": max((a["days_past_due"] for a in accounts), default=0),
        "balance": sum((Decimal(a["balance"]) for a in accounts), Decimal(0)),
        "overdue": sum((Decimal(a["overdue_amount"]) for a in accounts), Decimal(0)),
        "currency": accounts[0]["currency"] if accounts else view["institution"]["currency"],
        "stage": worst["account"]["stage"] if worst else None,
        "status": worst["status"] if worst else None,
    }


def _movements(view: dict) -> list[dict]:
    """Every account's movements in one list, newest first."""
    rows = [{**m, "account_number": item["account"]["account_number"],
             "currency": item["account"]["currency"]}
            for item in view["accounts"] for m in item["movements"]]
    return sorted(rows, key=lambda m: (m["value_date"], m["id"]), reverse=True)


#: what the 360° view carries from tab to tab: the account being worked and the queue that
#: served it (so an activity logged in any tab counts for that queue)
WORK_ARGS = ("cuenta", "fila")


def work_args() -> dict:
    return {k: request.args[k] for k in WORK_ARGS if request.args.get(k)}


def debtor_page(debtor_id: int, tab_id: str | None = None, *, failure: str | None = None,
                 notice=None, status: int = 200, fragment: bool | None = None):
    permissions = g.user["permissions"]
    tabs = [t for t in DEBTOR_TABS if t.permission is None or t.permission in permissions]
    tab = next((t for t in tabs if t.id == tab_id), tabs[0])
    with rpc() as proxy:
        view = proxy.portfolio.get_debtor(debtor_id)
        extra = tab.load(proxy, view) if tab.load else {}
        statuses = (proxy.portfolio.list_statuses(view["debtor"]["institution_id"])
                    if tab.id == "contrato" and "portfolio.write" in permissions else [])
    context = {"view": view, "debtor": view["debtor"], "summary": _summary(view),
               "movements": _movements(view) if tab.id == "movimientos" else [],
               "today": timefmt.institution_today().isoformat(), "tabs": tabs, "tab": tab,
               "statuses": statuses, "failure": failure, "work": work_args(), **extra}
    if notice:
        context["notice"] = _(NOTICES[notice])
    if fragment if fragment is not None else htmx_target() == "debtor-tabs":
        return render_template("portfolio/_debtor_tabs.html", **context), status
    return render_template("portfolio/debtor.html", **context), status


@bp.get("/deudores/<int:debtor_id>")
@auth.permission_required("portfolio.read")
def debtor(debtor_id: int):
    return debtor_page(debtor_id, request.args.get("tab"))


@bp.post("/deudores/<int:debtor_id>/notas")
@auth.permission_required("portfolio.write")
def save_notes(debtor_id: int):
    notes = request.form.get("notes", "").replace("\r\n", "\n")
    try:
        with rpc() as proxy:
            proxy.portfolio.update_notes(debtor_id, {"notes": notes})
    except InvalidInput as exc:
        problems = exc.fields.get("notes") or [exc.message]
        return debtor_page(debtor_id, "notas", failure=" ".join(map(str, problems)),
                            status=422)
    if htmx_target():
        return debtor_page(debtor_id, "notas", notice="notes", fragment=True)
    return redirect(url_for(".debtor", debtor_id=debtor_id, tab="notas", done="notes"))


@bp.post("/deudores/<int:debtor_id>/no-contactar")
@auth.permission_required("portfolio.read")
def set_do_not_contact(debtor_id: int):
    """Mark one of the debtor's contacts do-not-contact, or lift the mark, with a reason
    (the service decides who may: marking needs activities.log or portfolio.write)."""
    form = request.form
    channel, _sep, contact_id = form.get("contact", "").partition(":")
    data = {"channel": channel, "contact_id": to_int(contact_id),
            "do_not_contact": form.get("do_not_contact") != "0",
            "reason": form.get("reason", "")}
    try:
        with rpc() as proxy:
            proxy.portfolio.set_do_not_contact(debtor_id, data)
    except (InvalidInput, PermissionDenied, Conflict) as exc:
        problems = [p for v in exc.fields.values() for p in (v if isinstance(v, list) else [v])
                    if not isinstance(exc, PermissionDenied)]
        return debtor_page(debtor_id, "contacto", failure=" ".join(map(str, problems))
                            or exc.message, status=HTTP_STATUS[type(exc)])
    if htmx_target():
        return debtor_page(debtor_id, "contacto", notice="do_not_contact", fragment=True)
    return redirect(url_for(".debtor", debtor_id=debtor_id, tab="contacto",
                            done="do_not_contact"))


@bp.post("/cuentas/<int:account_id>")
@auth.permission_required("portfolio.write")
def update_account(account_id: int):
    form = request.form
    data = {"stage": form.get("stage", ""), "status_id": to_int(form.get("status_id"))}
    try:
        with rpc() as proxy:
            account = proxy.portfolio.update_account(account_id, data)
    except (InvalidInput, PermissionDenied, Conflict) as exc:
        debtor_id = to_int(form.get("debtor_id"))
        if debtor_id is None:
            raise
        problems = [p for v in exc.fields.values() for p in (v if isinstance(v, list) else [v])]
        return debtor_page(debtor_id, "contrato", failure=" ".join(map(str, problems))
                            or exc.message, status=HTTP_STATUS[type(exc)])
    return redirect(url_for(".debtor", debtor_id=account["debtor_id"], tab="contrato",
                            done="account"))


# --- imports -----------------------------------------------------------------------------------

def _layouts_by_institution(proxy, institutions: list[dict]) -> list[tuple[dict, list]]:
    return [(i, proxy.portfolio.list_layouts(i["id"])) for i in institutions]


def _imports_page(values: dict | None = None, failure: dict | None = None, status: int = 200):
    values = values or {}
    with rpc() as proxy:
        institutions = proxy.portfolio.list_institutions()
        layouts = _layouts_by_institution(proxy, institutions)
        recent = proxy.portfolio.list_imports({"page": page_arg(),
                                               "per_page": IMPORTS_PER_PAGE})
    chosen = to_int(values.get("institution_id")) or (institutions[0]["id"] if institutions else None)
    names = {layout["id"]: layout["name"] for _, items in layouts for layout in items}
    codes = {i["id"]: i["code"] for i in institutions}
    return render_template("portfolio/imports.html", institutions=institutions,
                           layouts=layouts, chosen=chosen, values=values,
                           failure=failure, fields=(failure or {}).get("fields", {}),
                           recent=recent, layout_names=names,
                           institution_codes=codes), status


@bp.route("/importaciones", methods=["GET", "POST"])
@auth.permission_required("portfolio.import")
def imports():
    if request.method == "GET":
        return _imports_page()
    values = {"institution_id": request.form.get("institution_id", ""),
              "layout_id": request.form.get("layout_id", "")}
    layout_id = to_int(values["layout_id"])
    try:
        if layout_id is None:
            raise InvalidInput(_("Elija un layout"), {"layout_id": [_("Elija un layout")]})
        with rpc() as proxy:
            job = uploads.upload_import(proxy, layout_id, request.files.get("file"))
    except (InvalidInput, PermissionDenied, Conflict) as exc:
        fields = {k: " ".join(map(str, v)) if isinstance(v, list) else str(v)
                  for k, v in exc.fields.items()}
        return _imports_page(values, {"message": exc.message, "fields": fields},
                             HTTP_STATUS[type(exc)])
    except uploads.UploadFailed:
        return _imports_page(values, {"message": _("No se pudo guardar el archivo; intente "
                                                   "de nuevo."), "fields": {}}, 502)
    return redirect(url_for(".import_job", job_id=job["id"]))


@bp.get("/importaciones/layouts")
@auth.permission_required("portfolio.import")
def layout_options():
    """The layout select's options for one institution (htmx, when the institution changes)."""
    institution_id = to_int(request.args.get("institution_id"))
    with rpc() as proxy:
        layouts = proxy.portfolio.list_layouts(institution_id) if institution_id else []
    return render_template("portfolio/_layout_options.html", layouts=layouts)


def _job_context(proxy, job_id: int) -> dict:
    job = proxy.portfolio.get_import(job_id)
    finished = job["state"] in ("done", "failed")
    problems = (proxy.portfolio.import_problems(job_id, 1, PROBLEMS_SHOWN)
                if finished and job.get("rejected_rows") else None)
    total = job.get("total_rows") or 0
    processed = job.get("processed_rows") or 0
    return {"job": job, "finished": finished, "problems": problems,
            "percent": 100 if job["state"] == "done" else
            (int(processed * 100 / total) if total else 0)}


@bp.get("/importaciones/<int:job_id>")
@auth.permission_required("portfolio.import")
def import_job(job_id: int):
    with rpc() as proxy:
        context = _job_context(proxy, job_id)
        institution = next((i for i in proxy.portfolio.list_institutions()
                            if i["id"] == context["job"].get("institution_id")), None)
    return render_template("portfolio/import_job.html", institution=institution, **context)


@bp.get("/importaciones/<int:job_id>/progreso")
@auth.permission_required("portfolio.import")
def import_progress(job_id: int):
    """The progress panel alone; it keeps polling itself while the job is not finished."""
    with rpc() as proxy:
        context = _job_context(proxy, job_id)
    return render_template("portfolio/_import_progress.html", **context)


@bp.get("/importaciones/<int:job_id>/eventos")
@auth.permission_required("portfolio.import")
def import_events(job_id: int):
    """The job's progress as Server-Sent Events, fed by the portfolio service's
    ``import_progressed`` and ``import_finished``: first the job as it is now (the service
    checks the caller may see it), then each event about it until it ends."""
    subscription = events.Subscription("portfolio", ("import_progressed", "import_finished"),
                                       lambda payload: payload.get("job_id") == job_id)
    try:
        with rpc() as proxy:
            job = proxy.portfolio.get_import(job_id)
    except BaseException:
        subscription.close()
        raise

    def stream():
        try:
            yield events.sse("progress", job)
            if job["state"] in ("done", "failed"):
                yield events.sse("finished", job)
                return
            for item in subscription.events():
                if item is None:
                    yield ": keep-alive\n\n"
                    continue
                kind, payload = item
                yield events.sse("finished" if kind == "import_finished" else "progress",
                                 payload)
                if kind == "import_finished":
                    return
        finally:
            subscription.close()

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.get("/importaciones/<int:job_id>/reporte.csv")
@auth.permission_required("portfolio.import")
def import_report(job_id: int):
    with rpc() as proxy:
        text = proxy.portfolio.import_report_csv(job_id)
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=errores_importacion_{job_id}.csv"})


# --- the status catalogue (administration) ------------------------------------------------------

STATUS_NOTICES = {"status_saved": N_("Estatus guardado.")}


def _statuses_page(institution_wanted, *, editing=None, values=None, errors=None,
                   status: int = 200):
    """An institution's account statuses, with the form to add one or edit the chosen."""
    with rpc() as proxy:
        institutions = proxy.portfolio.list_institutions()
        wanted = to_int(institution_wanted)
        institution = next((i for i in institutions if i["id"] == wanted), None) or \
            (institutions[0] if institutions else None)
        statuses = proxy.portfolio.list_statuses(institution["id"]) if institution else []
    if editing is not None and values is None:
        values = next((s for s in statuses if s["id"] == editing), None)
        if values is None:
            abort(404)
    notice = STATUS_NOTICES.get(request.args.get("done"))
    return render_template(
        "portfolio/statuses.html", institutions=institutions, institution=institution,
        statuses=statuses, editing=editing, section="statuses",
        values=values or {"active": True, "sort_order": (len(statuses) + 1) * 10},
        errors=errors or {}, notice=_(notice) if notice else None), status


@bp.get("/admin/estatus")
@auth.permission_required("institutions.manage")
def statuses():
    return _statuses_page(request.args.get("institucion"), editing=to_int(request.args.get("editar")))


@bp.post("/admin/estatus")
@auth.permission_required("institutions.manage")
def save_status():
    form = request.form
    institution_id = to_int(form.get("institution_id"))
    status_id = to_int(form.get("status_id"))
    data = {"institution_id": institution_id, "code": form.get("code", "").strip().upper(),
            "name": form.get("name", "").strip(),
            "sort_order": to_int(form.get("sort_order"), form.get("sort_order") or 0),
            "active": form.get("active") == "1"}
    try:
        with rpc() as proxy:
            proxy.portfolio.save_status(data, status_id)
    except (InvalidInput, Conflict) as exc:
        problems = localize_fields(exc.fields or {}) or {"_schema": [exc.message]}
        return _statuses_page(institution_id, editing=status_id,
                              values={**data, "id": status_id}, errors=problems,
                              status=HTTP_STATUS[type(exc)])
    return redirect(url_for(".statuses", institucion=institution_id, done="status_saved"))
