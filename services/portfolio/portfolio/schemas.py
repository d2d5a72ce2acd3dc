"""marshmallow schemas of the portfolio service's RPC inputs and outputs."""
from marshmallow import Schema, fields


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
