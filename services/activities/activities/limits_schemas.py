"""marshmallow schemas of the plan limits and the approval queue (limits.py).

A discount band's thresholds rise; above the last one a discount is refused. What needs
the institution (its today, the account's stage) is judged by the logic.
"""
from __future__ import annotations

from decimal import Decimal

from marshmallow import ValidationError, fields, validate, validates_schema

from recaudo_common.validation import PageQuery, Schema

from .models import APPROVAL_KINDS, APPROVAL_STATES, APPROVERS


def _between(low: str, high: str):
    """A decimal's range checked by a function (a ``Range`` of decimals would print its
    bounds as text in the OpenAPI document, which is no JSON Schema)."""
    def check(value):
        if not Decimal(low) <= value <= Decimal(high):
            raise ValidationError(f"Debe estar entre {low} y {high}")
    return check


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
