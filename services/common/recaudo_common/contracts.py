"""Event contracts: one marshmallow schema per event, imported by producer and consumer.

Every payload carries ``event_id`` (the dedupe key of idempotent handlers) and
``occurred_at``. Services publish through ``Database.emit`` (the outbox), which
dumps the payload through the schema registered here under the event's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema


class EventSchema(Schema):
    class Meta:
        unknown = RAISE

    event_id = fields.UUID(required=True)
    occurred_at = fields.AwareDateTime(required=True)


#: (source service, event type) -> payload schema. Every event crossing services is registered here.
EVENTS: dict[tuple[str, str], type[EventSchema]] = {}


def event(source: str, event_type: str):
    """Class decorator registering a payload schema for ``source``'s ``event_type``."""

    def register(schema_cls: type[EventSchema]) -> type[EventSchema]:
        EVENTS[(source, event_type)] = schema_cls
        return schema_cls

    return register


def schema_for(source: str, event_type: str) -> EventSchema:
    try:
        return EVENTS[(source, event_type)]()
    except KeyError:
        raise LookupError(f"no contract for event {source}.{event_type}") from None


# --- auth -------------------------------------------------------------------------

@event("auth", "user_changed")
class UserChanged(EventSchema):
    user_id = fields.Integer(required=True)
    username = fields.String(required=True)
    display_name = fields.String(required=True)
    profile = fields.String(required=True)
    active = fields.Boolean(required=True)
    institutions = fields.List(fields.Integer(), allow_none=True, required=True)


@event("auth", "user_disabled")
class UserDisabled(EventSchema):
    user_id = fields.Integer(required=True)
    username = fields.String(required=True)


@event("auth", "team_changed")
class TeamChanged(EventSchema):
    team_id = fields.Integer(required=True)
    name = fields.String(required=True)
    supervisor_id = fields.Integer(required=True)
    members = fields.List(fields.Integer(), required=True)


@event("auth", "access_changed")
class AccessChanged(EventSchema):
    """Credentials or identities that must stop being trusted wherever they are held
    (each gateway process caches the identities it resolved). ``credentials`` are the
    SHA-256 digests of revoked session ids or tokens; ``user_ids`` the users whose
    identity changed or ended; ``everyone`` asks to forget all (a profile's permissions or
    a team changed: rare, and simpler than listing who holds them)."""

    credentials = fields.List(fields.String(), required=True)
    user_ids = fields.List(fields.Integer(), required=True)
    everyone = fields.Boolean(required=True)
    reason = fields.String(required=True)


# --- portfolio ----------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One column of ``Rows``: its kind (``int``, ``str``, ``bool``, ``decimal`` or
    ``date``; the last two travel as text), and whether it may be absent or null."""

    kind: str
    required: bool = True
    nullable: bool = False


def _column_problem(kind: str, value) -> str | None:
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "decimal":
        try:
            ok = not isinstance(value, bool) and Decimal(str(value)).is_finite()
        except InvalidOperation:
            ok = False
    else:   # date
        try:
            ok = isinstance(value, str) and bool(date.fromisoformat(value))
        except ValueError:
            ok = False
    return None if ok else f"No es un valor válido de tipo {kind}."


class Rows(fields.Field):
    """Many flat rows of one shape, checked by plain type tests rather than one nested
    schema per row: a bulk event (an import chunk of 20,000 accounts) loads in milliseconds,
    where nested marshmallow took seconds and stalled its consumer's event loop. Loaded rows
    keep their wire form (amounts and dates as text); unknown columns are refused."""

    def __init__(self, columns: dict[str, Column], **kwargs):
        super().__init__(**kwargs)
        self.columns = columns

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        out = []
        for row in value:
            item = {}
            for name in self.columns.keys() & row.keys():
                cell = row[name]
                if isinstance(cell, Decimal):
                    cell = str(cell)
                elif isinstance(cell, date):
                    cell = cell.isoformat()
                item[name] = cell
            out.append(item)
        return out

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("Debe ser una lista.")
        errors: dict[int, dict[str, list[str]]] = {}
        names = self.columns.keys()
        for index, row in enumerate(value):
            if not isinstance(row, dict):
                errors[index] = {"_schema": ["Debe ser un objeto."]}
                continue
            problems = {name: ["Campo desconocido."] for name in row.keys() - names}
            for name, column in self.columns.items():
                if name not in row:
                    if column.required:
                        problems[name] = ["Falta este dato."]
                elif row[name] is None:
                    if not column.nullable:
                        problems[name] = ["No puede ser nulo."]
                elif problem := _column_problem(column.kind, row[name]):
                    problems[name] = [problem]
            if problems:
                errors[index] = problems
                if len(errors) == 10:      # enough to see what is wrong with the batch
                    break
        if errors:
            raise ValidationError(errors)
        return value


class Ints(fields.Field):
    """A long list of integers (one column of a bulk event), checked by one plain loop: a
    rebuild announces a million collectors, and a nested schema per item took seconds
    where this takes milliseconds. ``nullable``: None items allowed."""

    def __init__(self, nullable: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.nullable = nullable

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else list(value)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("Debe ser una lista.")
        for index, item in enumerate(value):
            if type(item) is not int and not (item is None and self.nullable):
                raise ValidationError({index: ["No es un entero válido."]})
        return value


#: what the queues service ranks on, for one account
ACCOUNT_FACTS = {
    "account_id": Column("int"), "institution_id": Column("int"), "debtor_id": Column("int"),
    "stage": Column("str"), "status_id": Column("int", nullable=True),
    "days_past_due": Column("int"), "balance": Column("decimal"),
    "overdue_amount": Column("decimal"), "product": Column("str"),
    "state": Column("str", required=False, nullable=True),
    "time_zone": Column("str", required=False, nullable=True),
    "next_due_date": Column("date", required=False, nullable=True),
    #: every phone of the debtor is do-not-call (the pull passes the account by)
    "do_not_contact": Column("bool", required=False),
}


@event("portfolio", "accounts_changed")
class AccountsChanged(EventSchema):
    """A batch (one per import chunk or edit) of accounts whose facts changed."""

    accounts = Rows(ACCOUNT_FACTS, required=True)


@event("portfolio", "payment_received")
class PaymentReceived(EventSchema):
    account_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    movement_id = fields.Integer(required=True)
    amount = fields.Decimal(required=True, as_string=True)
    value_date = fields.Date(required=True)
    reference = fields.String(required=True)


@event("portfolio", "stage_changed")
class StageChanged(EventSchema):
    account_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    old_stage = fields.String(required=True)
    new_stage = fields.String(required=True)


@event("portfolio", "import_progressed")
class ImportProgressed(EventSchema):
    job_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    processed_rows = fields.Integer(required=True)
    total_rows = fields.Integer(required=True)
    imported_rows = fields.Integer(required=True)
    rejected_rows = fields.Integer(required=True)


@event("portfolio", "import_finished")
class ImportFinished(EventSchema):
    job_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    state = fields.String(required=True)
    imported_rows = fields.Integer(required=True)
    rejected_rows = fields.Integer(required=True)
    message = fields.String(required=True)


@event("portfolio", "import_requested")
class ImportRequested(EventSchema):
    """An uploaded file waits to be imported (the portfolio service consumes its own event,
    so a crash mid-import is retried from the broker, not lost)."""

    job_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)


# --- queues ---------------------------------------------------------------------------

@event("queues", "queues_rebuilt")
class QueuesRebuilt(EventSchema):
    institution_id = fields.Integer(required=True)
    strategy_id = fields.Integer(required=True)
    #: queue id (as text) -> accounts placed in it
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    unplaced = fields.Integer(required=True)


class AgentAssignment(Schema):
    account_id = fields.Integer(required=True)
    agent_id = fields.Integer(allow_none=True, required=True)


@event("queues", "assignments_changed")
class AssignmentsChanged(EventSchema):
    """A batch of accounts whose collector changed (None: back to the queue, nobody's), as
    two columns of the same length: ``account_ids[i]`` now belongs to ``agent_ids[i]``.
    A rebuild writes these payloads in PostgreSQL (``queues.placement.announce``), up to
    ``ANNOUNCE_BATCH`` pairs each. ``assignments`` (one object per pair) is the older form,
    still read from events written before the columns."""

    account_ids = Ints(load_default=None)
    agent_ids = Ints(nullable=True, load_default=None)
    assignments = fields.List(fields.Nested(AgentAssignment))

    @validates_schema
    def _one_form(self, data, **kwargs):
        columns = data.get("account_ids"), data.get("agent_ids")
        if "assignments" in data:
            if columns != (None, None):
                raise ValidationError("assignments or account_ids/agent_ids, not both")
        elif None in columns or len(columns[0]) != len(columns[1]):
            raise ValidationError({"agent_ids": ["Debe tener un agente por cuenta."]})

    def pairs(self, data) -> tuple[list, list]:
        """(account ids, agent ids) of a loaded payload, whichever form it came in."""
        if "assignments" in data:
            return ([p["account_id"] for p in data["assignments"]],
                    [p["agent_id"] for p in data["assignments"]])
        return data["account_ids"], data["agent_ids"]


@event("queues", "campaign_ran")
class CampaignRan(EventSchema):
    """A preventive campaign picked its accounts for a day (``kind``: scheduled or manual);
    the sends follow, one message each through messaging."""

    campaign_id = fields.Integer(required=True)
    run_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    day = fields.Date(required=True)
    kind = fields.String(required=True)
    targeted = fields.Integer(required=True)
    held_out = fields.Integer(required=True)


# --- activities -----------------------------------------------------------------------

@event("activities", "activity_logged")
class ActivityLogged(EventSchema):
    """An entry of the contact log (a correction too: ``corrects_id`` names the entry it
    replaces). Ends the agent's lease; the flags feed the queues' projection."""

    activity_id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    debtor_id = fields.Integer(required=True)
    agent_id = fields.Integer(required=True)
    queue_id = fields.Integer(allow_none=True, required=True)
    kind = fields.String(required=True)
    direction = fields.String(required=True)
    started_at = fields.AwareDateTime(required=True)
    result_code = fields.String(allow_none=True, required=True)
    contact_made = fields.Boolean(required=True)
    needs_promise = fields.Boolean(required=True)
    invalidates_phone = fields.Boolean(required=True)
    schedules_callback = fields.Boolean(required=True)
    #: the phone used, so a code that invalidates it can mark it
    phone = fields.String(allow_none=True, required=True)
    callback_at = fields.AwareDateTime(allow_none=True, required=True)
    corrects_id = fields.Integer(allow_none=True, required=True)
    #: the promise the entry made, if any (its ``promise_made`` says ``with_entry``)
    promise_id = fields.Integer(allow_none=True, load_default=None)


class PromiseFields(EventSchema):
    promise_id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    agent_id = fields.Integer(required=True)
    amount = fields.Decimal(required=True, as_string=True)
    due_date = fields.Date(required=True)
    paid_amount = fields.Decimal(required=True, as_string=True)


@event("activities", "promise_made")
class PromiseMade(PromiseFields):
    activity_id = fields.Integer(required=True)
    instalments = fields.Integer(required=True)
    first_due_date = fields.Date(required=True)
    #: the entry's ``activity_logged`` names this promise (``promise_id``): a consumer of
    #: both takes it there, in the entry's one transaction, and may skip this event
    with_entry = fields.Boolean(load_default=False)


class AgreementInstalment(Schema):
    number = fields.Integer(required=True)
    due_date = fields.Date(required=True)
    amount = fields.Decimal(required=True, as_string=True)


@event("activities", "agreement_made")
class AgreementMade(EventSchema):
    """A promise or plan made under a policy whose agreements go to the debtor in writing
    (``contact_policy.WRITTEN_AGREEMENT``): messaging sends it, judged like every contact."""

    promise_id = fields.Integer(required=True)
    activity_id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    debtor_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    agent_id = fields.Integer(required=True)
    amount = fields.Decimal(required=True, as_string=True)
    instalments = fields.List(fields.Nested(AgreementInstalment), required=True)
    policy_version = fields.String(required=True)
    #: the debtor's preferred language (their preferences), the agreement's language;
    #: events written before it existed read as Spanish
    language = fields.String(load_default="es", validate=validate.OneOf(("es", "en")))


@event("activities", "promise_kept")
class PromiseKept(PromiseFields):
    pass


@event("activities", "settlement_kept")
class SettlementKept(PromiseFields):
    """A settlement (a promise of the discounted lump sum, accepted in the debtor portal or
    logged by an agent; approved first when its discount asked for it) was paid: the
    portfolio closes the account's remaining debt by an adjustment."""

    value_date = fields.Date(required=True)
    discount_pct = fields.Decimal(required=True, as_string=True)


@event("activities", "promise_broken")
class PromiseBroken(PromiseFields):
    """Past due and not paid in full; ``state`` is ``broken`` (nothing paid) or
    ``partly_kept``. The account comes back to the queue with priority."""

    state = fields.String(required=True)


@event("activities", "dispute_opened")
class DisputeOpened(EventSchema):
    """The account is on hold in the queues until ``dispute_resolved``."""

    dispute_id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    owner_id = fields.Integer(required=True)
    due_date = fields.Date(required=True)


@event("activities", "dispute_resolved")
class DisputeResolved(EventSchema):
    dispute_id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    outcome = fields.String(required=True)
    corrected_balance = fields.Decimal(allow_none=True, required=True, as_string=True)


@event("activities", "callback_done")
class CallbackDone(EventSchema):
    """A callback or visit of the agenda was done: it no longer opens its account to whoever
    held it (``portfolio``'s callback holders)."""

    item_id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)


@event("activities", "callback_scheduled")
class CallbackScheduled(EventSchema):
    """A callback or visit on the agenda of one agent (``agent_id``) or a team (``team_id``)."""

    item_id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    kind = fields.String(required=True)
    due_at = fields.AwareDateTime(required=True)
    agent_id = fields.Integer(allow_none=True, required=True)
    team_id = fields.Integer(allow_none=True, required=True)


@event("activities", "contact_hold_changed")
class ContactHoldChanged(EventSchema):
    """Until when the contact policy refuses calling the account whatever the hour (cease,
    attorney, call frequency; ``contact_policy.hold_until``): the pull skips it till then."""

    account_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    hold_until = fields.AwareDateTime(allow_none=True, required=True)


# --- documents ------------------------------------------------------------------------

@event("documents", "document_added")
class DocumentAdded(EventSchema):
    """A verified upload became a version of a debtor's document (``version`` 1: a new one)."""

    document_id = fields.Integer(required=True)
    version_id = fields.Integer(required=True)
    version = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    debtor_id = fields.Integer(required=True)
    account_id = fields.Integer(allow_none=True, required=True)
    activity_id = fields.Integer(allow_none=True, required=True)
    dispute_id = fields.Integer(allow_none=True, required=True)
    category = fields.String(required=True)
    name = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)
    uploaded_by = fields.Integer(required=True)


# --- messaging ------------------------------------------------------------------------

@event("messaging", "message_sent")
class MessageSent(EventSchema):
    """The SMTP server accepted an outbound email or fax (``response``: its answer), a
    letter was rendered and filed for the post, or - for a campaign's SMS only - the
    network reported it delivered (``response``: ``delivered``)."""

    message_uuid = fields.String(required=True)
    institution_id = fields.Integer(required=True)
    debtor_id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    channel = fields.String(required=True)
    to_address = fields.String(required=True)
    activity_id = fields.Integer(allow_none=True, required=True)
    attempts = fields.Integer(required=True)
    response = fields.String(required=True)
    #: the preventive campaign (queues) the message was sent for, if any
    campaign_id = fields.Integer(allow_none=True, load_default=None)


@event("messaging", "message_failed")
class MessageFailed(EventSchema):
    """An outbound message failed for good: refused, out of retries, or bounced later."""

    message_uuid = fields.String(required=True)
    institution_id = fields.Integer(required=True)
    debtor_id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    channel = fields.String(required=True)
    reason = fields.String(required=True)
    bounced = fields.Boolean(required=True)
    campaign_id = fields.Integer(allow_none=True, load_default=None)


@event("messaging", "message_received")
class MessageReceived(EventSchema):
    """A message synced from a mailbox; ``state`` matched, unmatched (triage) or bounce."""

    inbound_id = fields.Integer(required=True)
    mailbox_id = fields.Integer(required=True)
    institution_id = fields.Integer(required=True)
    state = fields.String(required=True)
    debtor_id = fields.Integer(allow_none=True, required=True)
    account_id = fields.Integer(allow_none=True, required=True)
    from_address = fields.String(required=True)
    subject = fields.String(required=True)
