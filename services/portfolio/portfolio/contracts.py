"""What crosses the portfolio service's boundary: its RPC inputs and outputs (marshmallow
schemas), the stages and sort orders they name, and the language of an import layout (the
fields a file column can map onto, the formats a layout may name, what makes it usable)."""
from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from recaudo_common.localtime import today_in
from recaudo_common.reporting import DateRange, group_field
from recaudo_common.validation import PageQuery, Schema, page_schema

STAGES = ("current", "delinquent", "litigation")  # al corriente / moroso / litigio
#: what an account list may be sorted by (``search.SORTS`` holds their columns)
ACCOUNT_SORTS = ("days_past_due", "balance", "overdue_amount", "name", "customer_number",
                 "account_number")

# --- import layouts ----------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """A Recaudo field a layout can map a file column onto."""

    type: str
    label: str
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None

    def as_dict(self, name: str) -> dict:
        return {"field": name, "type": self.type, "label": self.label,
                "max_length": self.max_length, "minimum": self.minimum,
                "maximum": self.maximum}


def _text(label, length):
    return Field("text", label, max_length=length)


FIELDS: dict[str, dict[str, Field]] = {
    "portfolio": {
        "customer_number": _text("Número de cliente", 40),
        "name": _text("Nombre o razón social", 200),
        "kind": Field("kind", "Tipo de persona: persona/empresa (física/moral)"),
        "tax_id": Field("upper", "RFC", max_length=20),
        "national_id": Field("upper", "CURP", max_length=20),
        "birth_date": Field("date", "Fecha de nacimiento"),
        "account_number": _text("Número de cuenta o contrato", 40),
        "product": _text("Producto", 60),
        "currency": Field("currency", "Moneda (MXN, USD)"),
        "original_amount": Field("amount", "Monto original"),
        "balance": Field("amount", "Saldo"),
        "overdue_amount": Field("amount", "Saldo vencido"),
        "days_past_due": Field("integer", "Días de atraso", minimum=0, maximum=36500),
        "stage": Field("stage", "Etapa: al corriente/moroso/litigio"),
        "status": Field("status", "Código de estatus de la institución"),
        "opened_on": Field("date", "Fecha de apertura"),
        "phone1": Field("phone", "Teléfono 1"),
        "phone2": Field("phone", "Teléfono 2"),
        "phone3": Field("phone", "Teléfono 3"),
        "email": Field("email", "Correo electrónico", max_length=254),
        "street": _text("Calle y número", 200),
        "neighborhood": _text("Colonia", 120),
        "municipality": _text("Municipio o alcaldía", 120),
        "state": _text("Estado", 60),
        "postal_code": _text("Código postal", 10),
        "instalment_count": Field("integer", "Número de cuotas", minimum=1, maximum=600),
        "instalment_amount": Field("positive_amount", "Monto de la cuota"),
        "first_due_date": Field("date", "Vencimiento de la primera cuota"),
        "instalments_paid": Field("integer", "Cuotas pagadas", minimum=0, maximum=600),
        "guarantor_name": _text("Nombre del aval", 200),
        "guarantor_phone": Field("phone", "Teléfono del aval"),
        # do-not-contact marks (sí/no; blank leaves the contact's mark as it is)
        "phone1_do_not_call": Field("flag", "Teléfono 1: no llamar (sí/no)"),
        "phone2_do_not_call": Field("flag", "Teléfono 2: no llamar (sí/no)"),
        "phone3_do_not_call": Field("flag", "Teléfono 3: no llamar (sí/no)"),
        "email_do_not_contact": Field("flag", "Correo: no contactar (sí/no)"),
        "address_do_not_contact": Field("flag", "Domicilio: no visitar ni enviar cartas (sí/no)"),
    },
    "payments": {
        "account_number": _text("Número de cuenta o contrato", 40),
        "amount": Field("positive_amount", "Monto pagado"),
        "value_date": Field("date", "Fecha valor del pago"),
        "reference": _text("Referencia del pago (única por cuenta)", 60),
    },
}
#: fields every layout of a kind maps and every row must have
MANDATORY = {
    "portfolio": ("customer_number", "name", "account_number", "balance"),
    "payments": ("account_number", "amount", "value_date", "reference"),
}
#: a do-not-contact column -> the contact it marks (mapped with it, or not at all)
FLAG_CONTACTS = {"phone1_do_not_call": "phone1", "phone2_do_not_call": "phone2",
                 "phone3_do_not_call": "phone3", "email_do_not_contact": "email",
                 "address_do_not_contact": "street"}
#: mapped together or not at all
SCHEDULE_FIELDS = ("instalment_count", "instalment_amount", "first_due_date")

#: the encodings a layout may name -> (PostgreSQL's name, Python codec for the header)
ENCODINGS = {
    "utf-8": ("UTF8", "utf-8-sig"),
    "latin-1": ("LATIN1", "latin-1"),
    "iso-8859-1": ("LATIN1", "latin-1"),
    "cp1252": ("WIN1252", "cp1252"),
    "windows-1252": ("WIN1252", "cp1252"),
}
DELIMITERS = (",", ";", "|", "\t")
DECIMAL_SEPARATORS = (".", ",")
THOUSANDS_SEPARATORS = ("", ",", ".", " ")
FILE_FORMATS = ("csv", "xlsx")
KINDS = ("portfolio", "payments")


def layout_problems(data: dict) -> dict[str, list[str]]:
    """What is wrong with a layout (field -> problems); empty when it is usable."""
    problems: dict[str, list[str]] = {}

    def add(key, message):
        problems.setdefault(key, []).append(message)

    kind = data.get("kind")
    fields = FIELDS.get(kind, {})
    columns = data.get("columns") or {}
    required = data.get("required") or []
    unknown = sorted(set(columns) - set(fields))
    if unknown:
        add("columns", f"Campos desconocidos: {', '.join(unknown)}")
    seen: dict[str, str] = {}
    for name, header in columns.items():
        if not isinstance(header, str) or not header.strip():
            add("columns", f"{name}: falta el encabezado")
            continue
        if len(header) > 80:
            add("columns", f"{name}: encabezado demasiado largo (máximo 80)")
        key = normalize_header(header)
        if key in seen:
            add("columns", f"{name} y {seen[key]} usan el mismo encabezado «{header}»")
        seen[key] = name
    missing = [f for f in MANDATORY.get(kind, ()) if f not in columns]
    if missing:
        add("columns", f"Faltan campos obligatorios: {', '.join(missing)}")
    extra = sorted(set(required) - set(columns))
    if extra:
        add("required", f"Obligatorios sin columna: {', '.join(extra)}")
    for flag, contact in FLAG_CONTACTS.items():
        if flag in columns and contact not in columns:
            add("columns", f"{flag} necesita la columna de {contact}")
    if kind == "portfolio":
        schedule = [f for f in SCHEDULE_FIELDS if f in columns]
        if schedule and len(schedule) != len(SCHEDULE_FIELDS):
            add("columns", "El plan de pagos necesita instalment_count, instalment_amount y "
                           "first_due_date juntos")
        if "instalments_paid" in columns and not schedule:
            add("columns", "instalments_paid necesita el plan de pagos")
    if data.get("decimal_separator") and \
            data.get("decimal_separator") == data.get("thousands_separator"):
        add("thousands_separator", "Debe ser distinto del separador decimal")
    return problems


def normalize_header(header: str) -> str:
    """Headers match trimmed, with inner spaces collapsed, case-insensitively."""
    return " ".join(str(header).split()).casefold()


@dataclass(frozen=True)
class DateFormat:
    """How a strftime-style date format reads in SQL: separator and part order."""

    label: str            # what a person is told: DD/MM/AAAA
    sep: str              # "" for compact formats (AAAAMMDD)
    order: tuple          # e.g. ("d", "m", "Y")
    example: str


DATE_FORMATS = {
    "%Y-%m-%d": DateFormat("AAAA-MM-DD", "-", ("Y", "m", "d"), "2024-03-31"),
    "%d/%m/%Y": DateFormat("DD/MM/AAAA", "/", ("d", "m", "Y"), "31/03/2024"),
    "%d-%m-%Y": DateFormat("DD-MM-AAAA", "-", ("d", "m", "Y"), "31-03-2024"),
    "%d.%m.%Y": DateFormat("DD.MM.AAAA", ".", ("d", "m", "Y"), "31.03.2024"),
    "%m/%d/%Y": DateFormat("MM/DD/AAAA", "/", ("m", "d", "Y"), "03/31/2024"),
    "%Y/%m/%d": DateFormat("AAAA/MM/DD", "/", ("Y", "m", "d"), "2024/03/31"),
    "%d/%m/%y": DateFormat("DD/MM/AA", "/", ("d", "m", "y"), "31/03/24"),
    "%Y%m%d": DateFormat("AAAAMMDD", "", ("Y", "m", "d"), "20240331"),
}


# --- RPC inputs and outputs --------------------------------------------------------------

Money = fields.Decimal(places=2, as_string=True)


class InstitutionOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    time_zone = fields.String()
    currency = fields.String()
    jurisdiction = fields.String()
    contact_from = fields.Time(format="%H:%M")
    contact_until = fields.Time(format="%H:%M")
    active = fields.Boolean()


class StatusOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    code = fields.String()
    name = fields.String()
    sort_order = fields.Integer()
    active = fields.Boolean()


class StatusWrite(Schema):
    institution_id = fields.Integer(required=True)
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Z0-9_]{1,30}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    sort_order = fields.Integer(load_default=0)
    active = fields.Boolean(load_default=True)


class AccountQuery(PageQuery):
    q = fields.String(load_default=None, validate=validate.Length(max=100))
    institution_id = fields.Integer(load_default=None)
    stage = fields.String(load_default=None, validate=validate.OneOf(STAGES))
    status_id = fields.Integer(load_default=None)
    dpd_min = fields.Integer(load_default=None, validate=validate.Range(min=0))
    dpd_max = fields.Integer(load_default=None, validate=validate.Range(min=0))
    balance_min = fields.Decimal(load_default=None, places=2)
    balance_max = fields.Decimal(load_default=None, places=2)
    assigned_agent_id = fields.Integer(load_default=None)
    sort = fields.String(load_default="-days_past_due", validate=validate.OneOf(
        [*ACCOUNT_SORTS, *(f"-{s}" for s in ACCOUNT_SORTS)]))


class AccountRow(Schema):
    account_id = fields.Integer()
    account_number = fields.String()
    debtor_id = fields.Integer()
    customer_number = fields.String()
    name = fields.String()
    days_past_due = fields.Integer()
    phone = fields.String(allow_none=True)
    assigned_agent_id = fields.Integer(allow_none=True)
    institution_id = fields.Integer()
    institution = fields.String()
    stage = fields.String()
    status = fields.String(allow_none=True)
    balance = Money
    overdue_amount = Money
    currency = fields.String()


class AccountPage(page_schema(AccountRow, "AccountRowPage")):
    #: false when the count stopped at search.COUNT_CAP
    total_is_exact = fields.Boolean()


class PhoneOut(Schema):
    id = fields.Integer()
    number = fields.String()
    kind = fields.String()
    priority = fields.Integer()
    do_not_call = fields.Boolean()
    valid = fields.Boolean()


class EmailOut(Schema):
    id = fields.Integer()
    address = fields.String()
    kind = fields.String()
    do_not_contact = fields.Boolean()


class AddressOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    street = fields.String()
    neighborhood = fields.String(allow_none=True)
    municipality = fields.String(allow_none=True)
    state = fields.String(allow_none=True)
    postal_code = fields.String(allow_none=True)
    country = fields.String()
    time_zone = fields.String(allow_none=True)
    do_not_contact = fields.Boolean()


class GuarantorOut(Schema):
    id = fields.Integer()
    name = fields.String()
    tax_id = fields.String(allow_none=True)
    relationship = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    address = fields.String(allow_none=True)


class InstalmentOut(Schema):
    number = fields.Integer()
    due_date = fields.Date()
    amount = Money
    paid_amount = Money


class MovementOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    amount = Money
    value_date = fields.Date()
    reference = fields.String()


class AccountOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    debtor_id = fields.Integer()
    account_number = fields.String()
    product = fields.String()
    currency = fields.String()
    original_amount = Money
    balance = Money
    overdue_amount = Money
    days_past_due = fields.Integer()
    stage = fields.String()
    status_id = fields.Integer(allow_none=True)
    assigned_agent_id = fields.Integer(allow_none=True)
    lawyer_id = fields.Integer(allow_none=True)
    opened_on = fields.Date(allow_none=True)


class AccountDetail(Schema):
    account = fields.Nested(AccountOut)
    status = fields.String(allow_none=True)
    instalments = fields.List(fields.Nested(InstalmentOut))
    movements = fields.List(fields.Nested(MovementOut))


class DebtorOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    customer_number = fields.String()
    kind = fields.String()
    name = fields.String()
    tax_id = fields.String(allow_none=True)
    national_id = fields.String(allow_none=True)
    birth_date = fields.Date(allow_none=True)
    time_zone = fields.String(allow_none=True)
    notes = fields.String()


class DoNotContactWrite(Schema):
    """Mark one of the debtor's contacts do-not-contact, or lift the mark, saying why."""

    channel = fields.String(required=True, validate=validate.OneOf(("phone", "email", "address")),
                            metadata={"description": "phone | email | address"})
    contact_id = fields.Integer(required=True, metadata={
        "description": "id del teléfono, correo o domicilio (de la vista 360°)"})
    do_not_contact = fields.Boolean(required=True, metadata={
        "description": "true: no contactar por este medio; false: quitar la marca"})
    reason = fields.String(required=True, validate=[
        validate.Length(max=500), validate.Regexp(r"\S", error="Indique el motivo")])


class DoNotContactChangeOut(Schema):
    """One change of a do-not-contact mark: who, when (UTC) and why."""

    id = fields.Integer()
    channel = fields.String()
    contact_id = fields.Integer()
    contact = fields.String()
    do_not_contact = fields.Boolean()
    reason = fields.String()
    changed_by = fields.Integer(allow_none=True)
    changed_by_name = fields.String()
    changed_at = fields.DateTime()


class DebtorView(Schema):
    """The 360° view."""

    debtor = fields.Nested(DebtorOut)
    institution = fields.Nested(InstitutionOut)
    phones = fields.List(fields.Nested(PhoneOut))
    emails = fields.List(fields.Nested(EmailOut))
    addresses = fields.List(fields.Nested(AddressOut))
    guarantors = fields.List(fields.Nested(GuarantorOut))
    accounts = fields.List(fields.Nested(AccountDetail))
    #: do-not-contact marks set and lifted, newest first
    do_not_contact_history = fields.List(fields.Nested(DoNotContactChangeOut))


class ContactView(Schema):
    """An account with what the contact policy needs (``contact_policy.verdict_for``)."""

    account = fields.Nested(AccountOut)
    debtor = fields.Nested(DebtorOut)
    institution = fields.Nested(InstitutionOut)
    phones = fields.List(fields.Nested(PhoneOut))
    emails = fields.List(fields.Nested(EmailOut))
    addresses = fields.List(fields.Nested(AddressOut))
    guarantors = fields.List(fields.Nested(GuarantorOut))


class AccountUpdate(Schema):
    """What a supervisor edits by hand on an account."""

    stage = fields.String(validate=validate.OneOf(STAGES))
    status_id = fields.Integer(allow_none=True)
    assigned_agent_id = fields.Integer(allow_none=True)
    lawyer_id = fields.Integer(allow_none=True)


class NotesUpdate(Schema):
    notes = fields.String(required=True, validate=validate.Length(max=10_000))


class AccountFactsOut(Schema):
    """Ranking facts for the queues service (the same fields as the accounts_changed event)."""

    account_id = fields.Integer()
    institution_id = fields.Integer()
    debtor_id = fields.Integer()
    stage = fields.String()
    status_id = fields.Integer(allow_none=True)
    days_past_due = fields.Integer()
    balance = Money
    overdue_amount = Money
    product = fields.String()
    state = fields.String(allow_none=True)
    time_zone = fields.String(allow_none=True)
    next_due_date = fields.Date(allow_none=True)
    do_not_contact = fields.Boolean()


# --- bulk imports (layouts and jobs) ---------------------------------------------------------


class LayoutWrite(Schema):
    """An import layout as an admin edits it; checked against the field catalogue."""

    institution_id = fields.Integer(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    file_format = fields.String(load_default="csv", validate=validate.OneOf(FILE_FORMATS))
    encoding = fields.String(load_default="utf-8", validate=validate.OneOf(ENCODINGS))
    delimiter = fields.String(load_default=",", validate=validate.OneOf(DELIMITERS))
    date_format = fields.String(load_default="%Y-%m-%d",
                                validate=validate.OneOf(DATE_FORMATS))
    decimal_separator = fields.String(load_default=".",
                                      validate=validate.OneOf(DECIMAL_SEPARATORS))
    thousands_separator = fields.String(load_default="",
                                        validate=validate.OneOf(THOUSANDS_SEPARATORS))
    #: Recaudo field -> the file's column header
    columns = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                          validate=validate.Length(min=1, max=100))
    #: Recaudo fields a row must have (the kind's mandatory ones are always added)
    required = fields.List(fields.String(), load_default=list)

    @validates_schema(skip_on_field_errors=True)
    def check_catalogue(self, data, **kwargs):
        problems = layout_problems(data)
        if problems:
            raise ValidationError(problems)


class LayoutOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    file_format = fields.String()
    encoding = fields.String()
    delimiter = fields.String()
    date_format = fields.String()
    decimal_separator = fields.String()
    thousands_separator = fields.String()
    columns = fields.Dict(keys=fields.String(), values=fields.String())
    required = fields.List(fields.String())
    created_at = fields.DateTime()


class ImportCreate(Schema):
    layout_id = fields.Integer(required=True)
    file_name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    size_bytes = fields.Integer(required=True, validate=validate.Range(min=0))


class ImportJobOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    layout_id = fields.Integer()
    kind = fields.String()
    file_name = fields.String()
    size_bytes = fields.Integer()
    state = fields.String()
    total_rows = fields.Integer()
    processed_rows = fields.Integer()
    imported_rows = fields.Integer()
    rejected_rows = fields.Integer()
    message = fields.String()
    created_by = fields.Integer()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class ImportCreated(Schema):
    job = fields.Nested(ImportJobOut)
    #: PUT the file's bytes here (no other header needed), then call start_import
    upload_url = fields.String()
    upload_expires_in = fields.Integer()


class ImportQuery(PageQuery):
    institution_id = fields.Integer(load_default=None)


ImportJobPage = page_schema(ImportJobOut, "ImportJobPage")


class ImportProblemOut(Schema):
    row_number = fields.Integer()
    column = fields.String()
    problem = fields.String()


ImportProblemPage = page_schema(ImportProblemOut, "ImportProblemPage")


# --- reports (reports.py) ------------------------------------------------------------------

class AgingReportQuery(Schema):
    #: unnamed: today in the platform's home zone (callers name their institution's day)
    as_of = fields.Date(load_default=lambda: today_in(None))
    institution_id = fields.Integer(load_default=None, allow_none=True)
    stage = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(STAGES))
    status_id = fields.Integer(load_default=None, allow_none=True)
    group_by = group_field(("institution", "stage", "status"), ["stage"])


class RollRateQuery(DateRange):
    institution_id = fields.Integer(load_default=None, allow_none=True)


class RollupRebuild(DateRange):
    pass


# --- payments: instructions, bank details, providers, the triage ------------------------------
#: the CLABE's check digit weights (Banco de México): 3, 7, 1 repeated over 17 digits
_CLABE_WEIGHTS = (3, 7, 1) * 6


def clabe_check_digit(first17: str) -> str:
    total = sum((int(d) * w) % 10 for d, w in zip(first17, _CLABE_WEIGHTS))
    return str((10 - total % 10) % 10)


def is_valid_clabe(clabe: str) -> bool:
    return (isinstance(clabe, str) and len(clabe) == 18 and clabe.isdigit()
            and clabe_check_digit(clabe[:17]) == clabe[17])




class PaymentInstructionsOut(Schema):
    account_id = fields.Integer()
    account_number = fields.String()
    institution_id = fields.Integer()
    #: 16 digits, the last two ISO 7064 MOD 97-10 check digits
    reference = fields.String()
    #: the institution's collection CLABE (SPEI), or null when not configured
    clabe = fields.String(allow_none=True)
    bank_name = fields.String()
    beneficiary = fields.String()
    #: what a bank window or an OXXO-style store asks for with the reference
    convenio = fields.String()
    #: what goes in the SPEI transfer's "concepto" (the reference)
    spei_concept = fields.String()
    amount_due = Money
    balance = Money
    currency = fields.String()


class PaymentSettingsWrite(Schema):
    clabe = fields.String(allow_none=True, load_default=None)
    bank_name = fields.String(load_default="", validate=validate.Length(max=80))
    beneficiary = fields.String(load_default="", validate=validate.Length(max=120))
    convenio = fields.String(load_default="", validate=validate.Regexp(
        r"^[0-9A-Za-z-]{0,20}$", error="Hasta 20 letras, dígitos o guiones"))

    @validates("clabe")
    def _clabe(self, value, **_):
        if value and not is_valid_clabe(value):
            raise ValidationError("CLABE inválida: 18 dígitos con su dígito verificador")


class PaymentSettingsOut(Schema):
    institution_id = fields.Integer()
    clabe = fields.String(allow_none=True)
    bank_name = fields.String()
    beneficiary = fields.String()
    convenio = fields.String()


class ProviderWrite(Schema):
    name = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9-]{1,39}$", error="2 a 40 minúsculas, dígitos o guiones"))
    institution_id = fields.Integer(required=True)
    #: shown never again; at least 32 characters
    secret = fields.String(validate=validate.Length(min=32, max=200))
    active = fields.Boolean(load_default=True)


class ProviderOut(Schema):
    id = fields.Integer()
    name = fields.String()
    institution_id = fields.Integer()
    active = fields.Boolean()
    #: whether a secret is set (the secret itself is never shown back)
    has_secret = fields.Boolean()
    created_at = fields.DateTime()


class WebhookPayment(Schema):
    """The body a payment provider posts (signed)."""

    payment_id = fields.String(required=True, validate=validate.Length(min=1, max=80))
    reference = fields.String(required=True, validate=validate.Length(min=1, max=40))
    amount = fields.Decimal(required=True, places=None, validate=validate.Range(
        min=0, min_inclusive=False, max=999_999_999_999, error="Debe ser mayor que 0"))
    currency = fields.String(load_default="MXN", validate=validate.Length(equal=3))
    paid_at = fields.AwareDateTime(required=True)

    @validates("amount")
    def _places(self, value, **_):
        if value.as_tuple().exponent < -2:
            raise ValidationError("A lo más dos decimales")


class NotificationOut(Schema):
    id = fields.Integer()
    provider = fields.String()
    institution_id = fields.Integer()
    payment_id = fields.String()
    reference = fields.String()
    amount = Money
    currency = fields.String()
    paid_at = fields.DateTime()
    received_at = fields.DateTime()
    #: credited | unmatched (in triage) | assigned (credited from triage) | dismissed
    status = fields.String()
    account_id = fields.Integer(allow_none=True)
    movement_id = fields.Integer(allow_none=True)
    note = fields.String()


class NotificationPage(Schema):
    items = fields.List(fields.Nested(NotificationOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class TriageQuery(PageQuery):
    status = fields.String(load_default="unmatched", validate=validate.OneOf(
        ["unmatched", "assigned", "dismissed", "credited"]))
    institution_id = fields.Integer()


class TriageAssign(Schema):
    account_id = fields.Integer(required=True)
    note = fields.String(load_default="", validate=validate.Length(max=300))


class TriageDismiss(Schema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=300))


# --- the debtor portal: what a debtor sees of their accounts ---------------------------------
class PortalAccount(Schema):
    account = fields.Nested(AccountOut)
    instalments = fields.List(fields.Nested(InstalmentOut))
    movements = fields.List(fields.Nested(MovementOut))


class PortalOverview(Schema):
    debtor_id = fields.Integer()
    name = fields.String()
    institution_id = fields.Integer()
    institution = fields.String()
    currency = fields.String()
    time_zone = fields.String()
    accounts = fields.List(fields.Nested(PortalAccount))
