"""marshmallow schemas of the queues service's RPC inputs and outputs."""
from marshmallow import ValidationError, fields, validate, validates, validates_schema

from recaudo_common.reporting import ReportQuery, group_field
from recaudo_common.validation import PageQuery, Schema

from . import rules


class QueueWrite(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    conditions = fields.Dict(required=True)
    sort = fields.List(fields.Dict(), required=True)
    team_id = fields.Integer(required=True)
    policy = fields.String(load_default="round_robin", validate=validate.OneOf(
        ["round_robin", "balance_weighted", "capacity", "manual"]))

    @validates("conditions")
    def _conditions(self, value, **_):
        problems = rules.validate(value)
        if problems:
            raise ValidationError([f"{path}: {'; '.join(p)}" for path, p in problems.items()])

    @validates("sort")
    def _sort(self, value, **_):
        problems = rules.validate_sort(value)
        if problems:
            raise ValidationError(problems)


class StrategyWrite(Schema):
    institution_id = fields.Integer(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    queues = fields.List(fields.Nested(QueueWrite), required=True,
                         validate=validate.Length(min=1, max=30,
                                                  error="Una estrategia lleva de 1 a 30 filas"))
    challenger_id = fields.Integer(load_default=None, allow_none=True)
    challenger_share = fields.Integer(load_default=0, validate=validate.Range(min=0, max=50))

    @validates_schema
    def _challenger(self, data, **_):
        if data.get("challenger_share") and not data.get("challenger_id"):
            raise ValidationError("Indique la estrategia retadora", "challenger_id")


class QueueOut(Schema):
    id = fields.Integer()
    position = fields.Integer()
    name = fields.String()
    conditions = fields.Dict()
    sort = fields.List(fields.Dict())
    team_id = fields.Integer()
    policy = fields.String()
    frozen = fields.Boolean()


class StrategyOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    name = fields.String()
    state = fields.String()
    challenger_id = fields.Integer(allow_none=True)
    challenger_share = fields.Integer()
    created_by = fields.Integer()
    created_at = fields.AwareDateTime()
    applied_at = fields.AwareDateTime(allow_none=True)


class MoveAccounts(Schema):
    account_ids = fields.List(fields.Integer(), required=True,
                              validate=validate.Length(min=1, max=10_000))
    queue_id = fields.Integer(required=True)


class Reassign(Schema):
    from_agent_id = fields.Integer(required=True)
    to_agent_id = fields.Integer(load_default=None, allow_none=True)


class WorklistQuery(PageQuery):
    pass


# --- reports (reports.py) ------------------------------------------------------------------

class RecoveryQuery(ReportQuery):
    group_by = group_field(("day", "institution", "queue", "arm"), ["institution", "queue"])


class ChampionQuery(ReportQuery):
    pass


# --- preventive campaigns (campaigns.py) -----------------------------------------------------------

def _conditions_problems(value):
    problems = rules.validate(value)
    if problems:
        raise ValidationError([f"{path}: {'; '.join(p)}" for path, p in problems.items()])


class CampaignPreview(Schema):
    institution_id = fields.Integer(required=True)
    conditions = fields.Dict(required=True)
    holdout_share = fields.Integer(load_default=0, validate=validate.Range(min=0, max=50))

    @validates("conditions")
    def _conditions(self, value, **_):
        _conditions_problems(value)


class CampaignPreviewOf(CampaignPreview):
    #: the campaign being edited: its own hold-out draw (a new one's is an estimate)
    campaign_id = fields.Integer(load_default=None, allow_none=True)


class CampaignWrite(CampaignPreview):
    name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    channel = fields.String(required=True, validate=validate.OneOf(("email", "letter")))
    template_id = fields.Integer(required=True)
    language = fields.String(load_default="es", validate=validate.OneOf(("es", "en")))
    send_hour = fields.Integer(load_default=9, validate=validate.Range(min=0, max=23))


class CampaignOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    name = fields.String()
    conditions = fields.Dict()
    channel = fields.String()
    template_id = fields.Integer()
    language = fields.String()
    send_hour = fields.Integer()
    holdout_share = fields.Integer()
    state = fields.String()
    created_by = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
