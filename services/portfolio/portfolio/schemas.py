"""marshmallow schemas of the portfolio service's RPC inputs and outputs."""
from marshmallow import ValidationError, fields, validate, validates_schema

from recaudo_common.localtime import today_in
from recaudo_common.reporting import DateRange, group_field
from recaudo_common.validation import PageQuery, Schema, page_schema

from . import imports as _imports
from .models import STAGES
from .search import SORTS

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
        [*SORTS, *(f"-{s}" for s in SORTS)]))


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
    kind = fields.String(required=True, validate=validate.OneOf(_imports.KINDS))
    file_format = fields.String(load_default="csv", validate=validate.OneOf(_imports.FILE_FORMATS))
    encoding = fields.String(load_default="utf-8", validate=validate.OneOf(_imports.ENCODINGS))
    delimiter = fields.String(load_default=",", validate=validate.OneOf(_imports.DELIMITERS))
    date_format = fields.String(load_default="%Y-%m-%d",
                                validate=validate.OneOf(_imports.DATE_FORMATS))
    decimal_separator = fields.String(load_default=".",
                                      validate=validate.OneOf(_imports.DECIMAL_SEPARATORS))
    thousands_separator = fields.String(load_default="",
                                        validate=validate.OneOf(_imports.THOUSANDS_SEPARATORS))
    #: Recaudo field -> the file's column header
    columns = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                          validate=validate.Length(min=1, max=100))
    #: Recaudo fields a row must have (the kind's mandatory ones are always added)
    required = fields.List(fields.String(), load_default=list)

    @validates_schema(skip_on_field_errors=True)
    def check_catalogue(self, data, **kwargs):
        problems = _imports.layout_problems(data)
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
