"""marshmallow schemas of the activities service's RPC inputs and outputs.

Inputs reject what can be judged without the database (end before start, a
non-positive or over-precise amount, a description over 4,000 characters, a plan whose
dates do not increase); what needs the institution (its result codes, its today)
is checked by the logic, with the same field names.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from recaudo_common import contact_policy
from recaudo_common.reporting import ReportQuery, group_field
from recaudo_common.validation import Override, PageQuery, Schema

KINDS = ("call", "visit", "email", "fax", "sms", "letter", "note")
#: what the debtor did alone in the portal (no agent logs this kind)
PORTAL_KIND = "portal"
DIRECTIONS = ("outbound", "inbound")
DISPUTE_OUTCOMES = ("confirmed_debt", "corrected_balance", "cancelled")
AGENDA_KINDS = ("callback", "visit")
DESCRIPTION_MAX = 4000
MAX_AMOUNT = Decimal("999999999999.99")
MAX_INSTALMENTS = 36


def _money(**kwargs):
    return fields.Decimal(as_string=True, allow_nan=False, **kwargs)


def _check_amount(value: Decimal) -> None:
    if value <= 0:
        raise ValidationError("El monto debe ser mayor que cero")
    if value > MAX_AMOUNT:
        raise ValidationError("Monto demasiado grande")
    if value != value.quantize(Decimal("0.01")):
        raise ValidationError("A lo más dos decimales")


class InstalmentWrite(Schema):
    due_date = fields.Date(required=True)
    amount = _money(required=True, validate=_check_amount)


class PromiseWrite(Schema):
    """One amount and date, or a plan of several (then ``amount``, if given, is their sum)."""

    amount = _money(load_default=None, validate=_check_amount)
    due_date = fields.Date(load_default=None)
    instalments = fields.List(fields.Nested(InstalmentWrite), load_default=None,
                              validate=validate.Length(min=1, max=MAX_INSTALMENTS))

    @validates_schema
    def _shape(self, data, **_):
        plan = data.get("instalments")
        if plan:
            dates = [i["due_date"] for i in plan]
            if any(b <= a for a, b in zip(dates, dates[1:])):
                raise ValidationError("Las fechas del plan deben ir en orden creciente",
                                      "instalments")
            total = sum(i["amount"] for i in plan)
            if data.get("amount") is not None and data["amount"] != total:
                raise ValidationError("No coincide con la suma de las parcialidades", "amount")
            if data.get("due_date") is not None and data["due_date"] != dates[-1]:
                raise ValidationError("Debe ser la fecha de la última parcialidad", "due_date")
        else:
            problems = {}
            if data.get("amount") is None:
                problems["amount"] = ["Indique el monto prometido"]
            if data.get("due_date") is None:
                problems["due_date"] = ["Indique la fecha de pago"]
            if problems:
                raise ValidationError(problems)


class _EntryFields(Schema):
    """What an entry says about a contact (shared by logging and correcting)."""

    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    direction = fields.String(load_default="outbound", validate=validate.OneOf(DIRECTIONS))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    email = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=254))
    address = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=300))
    started_at = fields.AwareDateTime(required=True)
    ended_at = fields.AwareDateTime(load_default=None, allow_none=True)
    #: the catalogue entry, by id (what the form sends) or by code (what partners send)
    result_code_id = fields.Integer(load_default=None, allow_none=True)
    result_code = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(min=1, max=30))
    description = fields.String(load_default="", validate=validate.Length(
        max=DESCRIPTION_MAX, error=f"A lo más {DESCRIPTION_MAX} caracteres"))
    idempotency_key = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=100))

    @validates_schema
    def _coherent(self, data, **_):
        problems = {}
        if data.get("ended_at") is not None and data["ended_at"] < data["started_at"]:
            problems["ended_at"] = ["El fin no puede ser anterior al inicio"]
        if data.get("ended_at") is not None and \
                data["ended_at"] - data["started_at"] > timedelta(hours=24):
            problems["ended_at"] = ["Una gestión no dura más de 24 horas"]
        if data.get("result_code_id") is not None and data.get("result_code") is not None:
            problems["result_code"] = ["Indique el código o su id, no ambos"]
        if data["kind"] != "note" and data.get("result_code_id") is None \
                and data.get("result_code") is None:
            problems["result_code"] = ["Indique el resultado de la gestión"]
        if problems:
            raise ValidationError(problems)


def _between(low: str, high: str):
    """A decimal's range checked by a function (a ``Range`` of decimals would print its
    bounds as text in the OpenAPI document, which is no JSON Schema)."""
    def check(value):
        if not Decimal(low) <= value <= Decimal(high):
            raise ValidationError(f"Debe estar entre {low} y {high}")
    return check


class SettlementWrite(Schema):
    """A settlement offered by the agent: ``discount_pct`` off the account's balance, the
    rest paid at once by ``pay_by`` (at most the offer's expiry; by then when not given).
    The amount is the service's, from the balance; the discount is judged by the account's
    band (limits.settlement)."""

    discount_pct = fields.Decimal(as_string=True, allow_nan=False, places=2, required=True,
                                  validate=_between("0.01", "100"))
    pay_by = fields.Date(load_default=None, allow_none=True)


class ActivityWrite(_EntryFields):
    account_id = fields.Integer(required=True)
    queue_id = fields.Integer(load_default=None, allow_none=True)
    promise = fields.Nested(PromiseWrite, load_default=None, allow_none=True)
    #: instead of ``promise``: a settlement's lump sum is the promise
    settlement = fields.Nested(SettlementWrite, load_default=None, allow_none=True)
    callback_at = fields.AwareDateTime(load_default=None, allow_none=True)
    callback_note = fields.String(load_default="", validate=validate.Length(max=500))
    #: an outbound call the contact policy refuses is logged anyway only with an
    #: administrator's (activities.manage) reason, kept in the entry's details
    override = fields.Nested(Override, load_default=None, allow_none=True)
    #: the preventive campaign (queues service) a message was sent for: kept in the details
    campaign_id = fields.Integer(load_default=None, allow_none=True)
    #: the debtor portal's personal link (auth's) the message carried: the entry is the
    #: portal's in the history (``details.portal = "link_sent"``)
    portal_link_id = fields.Integer(load_default=None, allow_none=True)
    #: the number an outbound call went out from (the agent's line, the dialer's), else the
    #: institution's outbound number; kept in the details (no hidden caller id)
    caller_id = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^\+?[0-9][0-9 ()-]{4,28}[0-9]$", error="Un número de teléfono (6 a 30 caracteres)"))


class CorrectionWrite(_EntryFields):
    """A correction restates the entry (promises and callbacks are not re-made by it)."""


class InstalmentOut(Schema):
    number = fields.Integer()
    due_date = fields.Date()
    amount = _money()
    paid_amount = _money()


class PromiseOut(Schema):
    id = fields.Integer()
    activity_id = fields.Integer()
    institution_id = fields.Integer()
    account_id = fields.Integer()
    agent_id = fields.Integer()
    amount = _money()
    due_date = fields.Date()
    paid_amount = _money()
    state = fields.String()
    made_on = fields.Date()
    settled_on = fields.Date(allow_none=True)
    created_at = fields.AwareDateTime()
    instalments = fields.List(fields.Nested(InstalmentOut))


class ActivityOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    account_id = fields.Integer()
    debtor_id = fields.Integer()
    agent_id = fields.Integer()
    logged_by = fields.Integer()
    queue_id = fields.Integer(allow_none=True)
    kind = fields.String()
    direction = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    started_at = fields.AwareDateTime()
    ended_at = fields.AwareDateTime(allow_none=True)
    result_code_id = fields.Integer(allow_none=True)
    result_code = fields.String(allow_none=True)
    contact_made = fields.Boolean()
    description = fields.String()
    details = fields.Dict()
    corrects_id = fields.Integer(allow_none=True)
    recorded_at = fields.AwareDateTime()
    seq = fields.Integer()
    hash = fields.String()


class HistoryQuery(PageQuery):
    pass


class ResultCodeWrite(Schema):
    institution_id = fields.Integer(required=True)
    code = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Z0-9_]{1,30}$", error="Mayúsculas, dígitos y guion bajo; hasta 30"))
    label = fields.String(required=True, validate=validate.Length(min=1, max=120))
    contact_made = fields.Boolean(load_default=False)
    needs_promise = fields.Boolean(load_default=False)
    invalidates_phone = fields.Boolean(load_default=False)
    schedules_callback = fields.Boolean(load_default=False)
    active = fields.Boolean(load_default=True)
    sort_order = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000))


class ResultCodeOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    code = fields.String()
    label = fields.String()
    contact_made = fields.Boolean()
    needs_promise = fields.Boolean()
    invalidates_phone = fields.Boolean()
    schedules_callback = fields.Boolean()
    active = fields.Boolean()
    sort_order = fields.Integer()


class SettingsWrite(Schema):
    dispute_sla_days = fields.Integer(required=True, validate=validate.Range(min=1, max=365))
    attribution_days = fields.Integer(required=True, validate=validate.Range(min=0, max=365))
    time_zone = fields.String(load_default="America/Mexico_City",
                              validate=validate.Length(min=1, max=60))
    #: the number the institution's calls go out from (the caller id rule needs one);
    #: left out, it stays as it was
    outbound_number = fields.String(allow_none=True, validate=validate.Regexp(
        r"^\+?[0-9][0-9 ()-]{4,28}[0-9]$", error="Un número de teléfono (6 a 30 caracteres)"))

    @validates("time_zone")
    def _zone(self, value, **_):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("Zona horaria desconocida") from None


class SettingsOut(Schema):
    institution_id = fields.Integer()
    dispute_sla_days = fields.Integer()
    attribution_days = fields.Integer()
    time_zone = fields.String()
    outbound_number = fields.String(allow_none=True)


class DisputeWrite(Schema):
    account_id = fields.Integer(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200))
    evidence = fields.String(load_default="", validate=validate.Length(max=20_000))
    owner_id = fields.Integer(load_default=None, allow_none=True)


class DisputeResolve(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(DISPUTE_OUTCOMES))
    note = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    corrected_balance = _money(load_default=None, allow_none=True)

    @validates_schema
    def _balance(self, data, **_):
        balance = data.get("corrected_balance")
        if data["outcome"] == "corrected_balance":
            if balance is None:
                raise ValidationError("Indique el saldo corregido", "corrected_balance")
            if balance < 0 or balance != balance.quantize(Decimal("0.01")):
                raise ValidationError("Saldo inválido", "corrected_balance")
        elif balance is not None:
            raise ValidationError("Sólo con el resultado «saldo corregido»", "corrected_balance")


class DisputeOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    account_id = fields.Integer()
    debtor_id = fields.Integer()
    reason = fields.String()
    evidence = fields.String()
    opened_by = fields.Integer()
    owner_id = fields.Integer()
    opened_at = fields.AwareDateTime()
    due_date = fields.Date()
    state = fields.String()
    outcome = fields.String(allow_none=True)
    corrected_balance = _money(allow_none=True)
    resolution_note = fields.String()
    resolved_by = fields.Integer(allow_none=True)
    resolved_at = fields.AwareDateTime(allow_none=True)
    document_version_id = fields.Integer(allow_none=True, metadata={
        "description": "el documento enviado con la aclaración (versión en documentos)"})
    document_name = fields.String(allow_none=True)


class OverdueQuery(PageQuery):
    institution_id = fields.Integer(load_default=None, allow_none=True)


class AgendaWrite(Schema):
    account_id = fields.Integer(required=True)
    kind = fields.String(load_default="callback", validate=validate.OneOf(AGENDA_KINDS))
    due_at = fields.AwareDateTime(required=True)
    agent_id = fields.Integer(load_default=None, allow_none=True)
    team_id = fields.Integer(load_default=None, allow_none=True)
    note = fields.String(load_default="", validate=validate.Length(max=500))
    idempotency_key = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=100))

    @validates_schema
    def _owner(self, data, **_):
        if data.get("agent_id") is not None and data.get("team_id") is not None:
            raise ValidationError("Para un gestor o para un equipo, no ambos", "team_id")


class Delegate(Schema):
    agent_id = fields.Integer(load_default=None, allow_none=True)
    team_id = fields.Integer(load_default=None, allow_none=True)

    @validates_schema
    def _one(self, data, **_):
        if (data.get("agent_id") is None) == (data.get("team_id") is None):
            raise ValidationError("Indique un gestor o un equipo", "agent_id")


class AgendaQuery(Schema):
    date_from = fields.Date(required=True)
    date_to = fields.Date(required=True)
    agent_id = fields.Integer(load_default=None, allow_none=True)
    team_id = fields.Integer(load_default=None, allow_none=True)
    include_done = fields.Boolean(load_default=False)
    #: whose calendar days the range means (the viewer's)
    time_zone = fields.String(load_default="America/Mexico_City",
                              validate=validate.Length(min=1, max=60))

    @validates_schema
    def _range(self, data, **_):
        if data["date_to"] < data["date_from"]:
            raise ValidationError("El fin no puede ser anterior al inicio", "date_to")
        if (data["date_to"] - data["date_from"]).days > 62:
            raise ValidationError("A lo más 62 días", "date_to")
        if data.get("agent_id") is not None and data.get("team_id") is not None:
            raise ValidationError("Un gestor o un equipo, no ambos", "team_id")


class AgendaOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    account_id = fields.Integer()
    debtor_id = fields.Integer()
    kind = fields.String()
    due_at = fields.AwareDateTime()
    agent_id = fields.Integer(allow_none=True)
    team_id = fields.Integer(allow_none=True)
    note = fields.String()
    activity_id = fields.Integer(allow_none=True)
    created_by = fields.Integer()
    created_at = fields.AwareDateTime()
    done_at = fields.AwareDateTime(allow_none=True)
    done_by = fields.Integer(allow_none=True)


GROUPS = ("day", "agent", "institution", "queue")


class ProductivityQuery(Schema):
    date_from = fields.Date(required=True)
    date_to = fields.Date(required=True)
    agent_id = fields.Integer(load_default=None, allow_none=True)
    team_id = fields.Integer(load_default=None, allow_none=True)
    institution_id = fields.Integer(load_default=None, allow_none=True)
    queue_id = fields.Integer(load_default=None, allow_none=True)
    group_by = fields.List(fields.String(validate=validate.OneOf(GROUPS)),
                           load_default=lambda: ["agent"], validate=validate.Length(max=4))

    @validates_schema
    def _range(self, data, **_):
        if data["date_to"] < data["date_from"]:
            raise ValidationError("El fin no puede ser anterior al inicio", "date_to")
        if (data["date_to"] - data["date_from"]).days > 366:
            raise ValidationError("A lo más un año", "date_to")


# --- reports (reports.py) ------------------------------------------------------------------

REPORT_GROUPS = ("day", "agent", "team", "institution", "queue")


class ProductivityReportQuery(ReportQuery):
    group_by = group_field(REPORT_GROUPS, ["agent"])


class PromiseReportQuery(ReportQuery):
    group_by = group_field(("agent", "queue", "team", "institution"), ["agent"])


class DisputeReportQuery(ReportQuery):
    group_by = group_field(("institution", "agent"), ["institution"])


class SupervisorDayQuery(Schema):
    day = fields.Date(required=True)
    time_zone = fields.String(load_default="America/Mexico_City", validate=validate.Length(max=60))
    institution_id = fields.Integer(load_default=None, allow_none=True)
    team_id = fields.Integer(load_default=None, allow_none=True)

    @validates("time_zone")
    def _zone(self, value, **_):
        from zoneinfo import ZoneInfo
        try:
            ZoneInfo(value)
        except Exception:
            raise ValidationError("Zona horaria desconocida") from None


# --- contact compliance ------------------------------------------------------------------

class PolicyRule(Schema):
    """One rule of a policy (``contact_policy.RULES``) with its parameters."""

    rule = fields.String(required=True, validate=validate.OneOf(contact_policy.RULES))
    #: the window's bounds ("HH:MM", debtor's local time)
    from_ = fields.String(data_key="from", validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))
    until = fields.String(validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))
    #: the frequency rule's attempts within days
    attempts = fields.Integer(validate=validate.Range(min=1, max=100))
    days = fields.Integer(validate=validate.Range(min=1, max=31))


class PolicyWrite(Schema):
    """A new version of a jurisdiction's policy (the rules in the order they are judged)."""

    effective_from = fields.AwareDateTime(required=True)
    rules = fields.List(fields.Nested(PolicyRule), required=True,
                        validate=validate.Length(min=1, max=20))
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class PolicyOut(Schema):
    id = fields.Integer()
    jurisdiction = fields.String()
    version = fields.Integer()
    effective_from = fields.AwareDateTime()
    rules = fields.List(fields.Dict())
    note = fields.String()
    created_by = fields.Integer(allow_none=True)
    created_by_name = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()


class ContactCheck(Schema):
    """A contact another service is about to make (messaging's sends), to be judged."""

    account_id = fields.Integer(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(KINDS))
    to = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=300))
    override = fields.Nested(Override, load_default=None, allow_none=True)


class ComplianceQuery(PageQuery):
    institution_id = fields.Integer()
    debtor_id = fields.Integer()
    account_id = fields.Integer()
    channel = fields.String(validate=validate.OneOf(KINDS))
    rule = fields.String(validate=validate.OneOf(contact_policy.RULES))
    decision = fields.String(validate=validate.OneOf(("refused", "overridden")))
    since = fields.AwareDateTime()
    until = fields.AwareDateTime()


class ComplianceEntryOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    debtor_id = fields.Integer()
    account_id = fields.Integer(allow_none=True)
    user_id = fields.Integer()
    username = fields.String()
    channel = fields.String()
    to = fields.String(allow_none=True)
    rule = fields.String()
    policy_version = fields.String()
    decision = fields.String()
    reason = fields.String()
    justification = fields.String(allow_none=True)
    at = fields.AwareDateTime()


class ConsentWrite(Schema):
    given_at = fields.AwareDateTime(allow_none=True)
    withdrawn_at = fields.AwareDateTime(allow_none=True)
    source = fields.String(validate=validate.Length(max=200))


class AttorneyWrite(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    contact = fields.String(load_default="", validate=validate.Length(max=300))


class InconvenientSpan(Schema):
    weekdays = fields.List(fields.Integer(validate=validate.Range(min=0, max=6)),
                           allow_none=True, load_default=None)
    from_ = fields.String(data_key="from", required=True,
                          validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))
    until = fields.String(required=True, validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))


class PreferencesWrite(Schema):
    """What the debtor asked for; each field given replaces the stored one."""

    consent = fields.Dict(keys=fields.String(validate=validate.OneOf(KINDS)),
                          values=fields.Nested(ConsentWrite))
    cease_at = fields.AwareDateTime(allow_none=True)
    attorney = fields.Nested(AttorneyWrite, allow_none=True)
    inconvenient = fields.List(fields.Nested(InconvenientSpan), validate=validate.Length(max=20))
    language = fields.String(allow_none=True, validate=validate.OneOf(("es", "en")))


class PreferencesOut(Schema):
    debtor_id = fields.Integer()
    consent = fields.Dict()
    cease_at = fields.AwareDateTime(allow_none=True)
    attorney = fields.Dict(allow_none=True)
    inconvenient = fields.List(fields.Dict())
    language = fields.String(allow_none=True)
    updated_by = fields.Integer(allow_none=True)
    updated_at = fields.AwareDateTime(allow_none=True)


# --- plan limits and the approval queue (limits.py) -------------------------------------------
# A discount band's thresholds rise; above the last one a discount is refused. What needs
# the institution (its today, the account's stage) is judged by the logic.
APPROVAL_STATES = ("pending", "approved", "rejected")
APPROVAL_KINDS = ("promise", "settlement")
#: who may approve above a threshold: the level's permission (limits.APPROVER_PERMISSION)
APPROVERS = ("supervisor", "administrator")


def _pct(**kwargs):
    return fields.Decimal(as_string=True, allow_nan=False, places=2,
                          validate=_between("0", "100"), **kwargs)


class Threshold(Schema):
    """Discounts up to ``up_to_pct`` need ``approver`` (none: granted at once)."""

    up_to_pct = _pct(required=True)
    approver = fields.String(load_default=None, allow_none=True,
                             validate=validate.OneOf(APPROVERS))


class DiscountBand(Schema):
    """The discounts of accounts in ``stage`` (any: null) with ``dpd_from``..``dpd_to``
    days past due (open-ended: null)."""

    stage = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=30))
    dpd_from = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100_000))
    dpd_to = fields.Integer(load_default=None, allow_none=True,
                            validate=validate.Range(min=0, max=100_000))
    thresholds = fields.List(fields.Nested(Threshold), required=True,
                             validate=validate.Length(min=1, max=10))

    @validates_schema
    def _order(self, data, **_):
        if data.get("dpd_to") is not None and data["dpd_to"] < data["dpd_from"]:
            raise ValidationError("Debe ser mayor o igual que dpd_from", "dpd_to")
        tops = [t["up_to_pct"] for t in data["thresholds"]]
        if any(b <= a for a, b in zip(tops, tops[1:])):
            raise ValidationError("Los umbrales deben ir en orden creciente", "thresholds")


class LimitsWrite(Schema):
    max_instalments = fields.Integer(required=True, validate=validate.Range(min=1, max=120))
    min_first_payment = fields.Decimal(as_string=True, allow_nan=False, places=2,
                                       load_default=Decimal("0"),
                                       validate=_between("0", "999999999999.99"))
    min_first_payment_pct = _pct(load_default=Decimal("0"))
    max_plan_days = fields.Integer(required=True, validate=validate.Range(min=1, max=3660))
    offer_expiry_days = fields.Integer(load_default=7, validate=validate.Range(min=1, max=365))
    discount_bands = fields.List(fields.Nested(DiscountBand), load_default=list,
                                 validate=validate.Length(max=50))


class LimitsOut(Schema):
    institution_id = fields.Integer()
    max_instalments = fields.Integer()
    min_first_payment = fields.Decimal(as_string=True)
    min_first_payment_pct = fields.Decimal(as_string=True)
    max_plan_days = fields.Integer()
    offer_expiry_days = fields.Integer()
    discount_bands = fields.List(fields.Dict())
    updated_by = fields.Integer(allow_none=True)
    updated_at = fields.AwareDateTime()


class PromiseCheck(Schema):
    """A promise, plan or settlement the activity form is filling, to judge before it is
    logged (one of ``promise`` and ``settlement``)."""

    account_id = fields.Integer(required=True)
    promise = fields.Nested(PromiseWrite, load_default=None, allow_none=True)
    settlement = fields.Nested(SettlementWrite, load_default=None, allow_none=True)

    @validates_schema
    def _one(self, data, **_):
        if (data.get("promise") is None) == (data.get("settlement") is None):
            raise ValidationError("Indique una promesa o una liquidación", "promise")


class Reason(Schema):
    field = fields.String()
    message = fields.String()


class ApprovalOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    account_id = fields.Integer()
    debtor_id = fields.Integer()
    kind = fields.String(metadata={"enum": list(APPROVAL_KINDS)})
    terms = fields.Dict()
    reasons = fields.List(fields.Nested(Reason))
    approver = fields.String(metadata={"enum": list(APPROVERS)})
    state = fields.String(metadata={"enum": list(APPROVAL_STATES)})
    channel = fields.String()
    requested_by = fields.Integer()
    activity_id = fields.Integer(allow_none=True)
    promise_id = fields.Integer(allow_none=True)
    decided_by = fields.Integer(allow_none=True)
    decided_at = fields.AwareDateTime(allow_none=True)
    note = fields.String()
    created_at = fields.AwareDateTime()


class ApprovalQuery(PageQuery):
    state = fields.String(load_default="pending", validate=validate.OneOf(APPROVAL_STATES))
    institution_id = fields.Integer(load_default=None, allow_none=True)


class ApprovalDecision(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))
    note = fields.String(load_default="", validate=validate.Length(max=2000))

    @validates_schema
    def _why(self, data, **_):
        if data["decision"] == "reject" and not data["note"].strip():
            raise ValidationError("Diga por qué se rechaza", "note")


# --- what a debtor does in the portal (portal.py) ---------------------------------------------
# The same rules as an agent's input where they overlap (a promise is ``PromiseWrite``: no
# negative or over-precise amount, dates in order), checked once here at the service's boundary.
#: the channels a debtor may allow or refuse from the portal
PORTAL_CHANNELS = ("call", "sms", "email", "letter", "visit")
_HHMM = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="Formato HH:MM")


class PortalPromise(Schema):
    account_id = fields.Integer(required=True)
    promise = fields.Nested(PromiseWrite, required=True)


class PortalSettlement(Schema):
    """The offer as it stands; or, with ``discount_pct``, a settlement at that discount
    (above the offer's it waits for the approver the account's band names)."""

    account_id = fields.Integer(required=True)
    discount_pct = fields.Decimal(as_string=True, allow_nan=False, places=2, allow_none=True,
                                  load_default=None, validate=_between("0.01", "100"))


class PortalCallback(Schema):
    account_id = fields.Integer(required=True)
    callback_at = fields.AwareDateTime(required=True)
    note = fields.String(load_default="", validate=validate.Length(max=300))


class PortalDispute(Schema):
    account_id = fields.Integer(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=200))
    evidence = fields.String(load_default="", validate=validate.Length(max=4000))
    #: a version the debtor uploaded to their folder (``portal/uploads``): kept by the dispute
    document_version_id = fields.Integer(load_default=None, allow_none=True)


class PortalPreferences(Schema):
    """Channels allowed (true) or refused (false), the hours that suit them, their language,
    or no contact at all (``opt_out``)."""

    channels = fields.Dict(keys=fields.String(validate=validate.OneOf(PORTAL_CHANNELS)),
                           values=fields.Boolean(), load_default=dict)
    contact_from = fields.String(load_default=None, allow_none=True, validate=_HHMM)
    contact_until = fields.String(load_default=None, allow_none=True, validate=_HHMM)
    language = fields.String(load_default=None, allow_none=True,
                             validate=validate.OneOf(("es", "en")))
    opt_out = fields.Boolean(load_default=False)

    @validates_schema
    def _hours(self, data, **_):
        given = (data.get("contact_from"), data.get("contact_until"))
        if (given[0] is None) != (given[1] is None):
            raise ValidationError("Indique desde y hasta", "contact_until")
        if given[0] is not None and given[0] >= given[1]:
            raise ValidationError("Debe ser después de la hora de inicio", "contact_until")
