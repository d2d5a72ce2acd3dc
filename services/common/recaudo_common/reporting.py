"""What every report query shares, written once: the date range and its limits, the report
filters' schema, the days-past-due buckets (the catalogue of reports, with their labels and
tables, is ``report_catalogue``; their CSV, XLSX and PDF files ``report_exports``).

Each service loads its report queries through ``ReportQuery`` (or a subclass), so a
range that ends before it starts, one over ``MAX_RANGE_DAYS`` or an unknown filter is
refused with 422 naming the field, the same way whether the gateway or a partner's
script made the call.
"""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from .validation import Schema

#: the longest range a report covers (a year and a day: a leap year's full year)
MAX_RANGE_DAYS = 366

#: days-past-due buckets: (code, label, lowest day, highest day or None)
BUCKETS = (
    ("current", "Al corriente", None, 0),
    ("1_30", "1–30", 1, 30),
    ("31_60", "31–60", 31, 60),
    ("61_90", "61–90", 61, 90),
    ("91_180", "91–180", 91, 180),
    ("over_180", "Más de 180", 181, None),
)
BUCKET_CODES = tuple(b[0] for b in BUCKETS)


def bucket_sql(column: str) -> str:
    """SQL giving the bucket number (0-5, in ``BUCKETS`` order) of a days-past-due column."""
    return (f"CASE WHEN {column} <= 0 THEN 0 WHEN {column} <= 30 THEN 1 "
            f"WHEN {column} <= 60 THEN 2 WHEN {column} <= 90 THEN 3 "
            f"WHEN {column} <= 180 THEN 4 ELSE 5 END")


def _id(**kwargs):
    return fields.Integer(load_default=None, allow_none=True,
                          validate=validate.Range(min=0, max=2_147_483_647), **kwargs)


class DateRange(Schema):
    date_from = fields.Date(required=True)
    date_to = fields.Date(required=True)

    @validates_schema
    def _range(self, data, **_):
        if "date_from" not in data or "date_to" not in data:
            return
        if data["date_to"] < data["date_from"]:
            raise ValidationError("El fin no puede ser anterior al inicio", "date_to")
        if (data["date_to"] - data["date_from"]).days > MAX_RANGE_DAYS:
            raise ValidationError(f"A lo más {MAX_RANGE_DAYS} días", "date_to")


def group_field(choices: tuple, default: list) -> fields.List:
    return fields.List(fields.String(validate=validate.OneOf(choices)),
                       load_default=lambda: list(default), validate=validate.Length(max=4))


class ReportQuery(DateRange):
    """The filters a report may take; each report's schema keeps the ones it honours."""

    institution_id = _id()
    team_id = _id()
    agent_id = _id()
    queue_id = _id()
