"""What crosses the queues service's boundary: its RPC inputs and outputs (marshmallow
schemas) and the language of strategy conditions and sort orders they carry."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from recaudo_common.reporting import ReportQuery, group_field
from recaudo_common.validation import PageQuery, Schema


# --- strategy conditions and sort orders (compiled to SQL by rules.py) ---------------------

@dataclass(frozen=True)
class Field:
    """A fact of an account a condition can test."""

    label: str
    kind: str            # int | money | text | bool | date_days
    choices: tuple = ()


FIELDS: dict[str, Field] = {
    "stage": Field("Etapa", "text", ("current", "delinquent", "litigation")),
    "status_id": Field("Estatus", "int"),
    "days_past_due": Field("Días de atraso", "int"),
    "balance": Field("Saldo", "money"),
    "overdue_amount": Field("Monto vencido", "money"),
    "product": Field("Producto", "text"),
    "state": Field("Estado (región)", "text"),
    "time_zone": Field("Zona horaria", "text"),
    "last_result_code": Field("Último resultado", "text"),
    "days_since_last_contact": Field("Días desde el último contacto", "int"),
    "days_to_next_due": Field("Días al próximo vencimiento", "int"),
    "open_promise": Field("Promesa vigente", "bool"),
    "broken_promise": Field("Promesa incumplida", "bool"),
    "open_dispute": Field("Aclaración abierta", "bool"),
    "do_not_contact": Field("No contactar", "bool"),
}

OPERATORS = {
    "eq": "igual a", "ne": "distinto de", "lt": "menor que", "lte": "menor o igual que",
    "gt": "mayor que", "gte": "mayor o igual que", "between": "entre", "in": "en la lista",
    "not_in": "fuera de la lista", "is_set": "tiene valor", "is_not_set": "no tiene valor",
}
_ORDERED = {"lt", "lte", "gt", "gte", "between"}
SORTABLE = ("days_past_due", "balance", "overdue_amount", "days_since_last_contact",
            "days_to_next_due", "account_id")
MAX_DEPTH = 4
MAX_LEAVES = 50


def coerce(kind: str, value):
    """The value as the field's type, or raise ValueError."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError("debe ser verdadero o falso")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError("debe ser un número entero")
        return int(value)
    if kind == "money":
        if isinstance(value, bool):
            raise ValueError("debe ser un monto")
        try:
            amount = Decimal(str(value))
            if not amount.is_finite():  # NaN and Infinity are not amounts
                raise ValueError
            return amount.quantize(Decimal("0.01"))
        except (InvalidOperation, ValueError):
            raise ValueError("debe ser un monto") from None
    if not isinstance(value, str) or not value or len(value) > 100:
        raise ValueError("debe ser un texto de 1 a 100 caracteres")
    return value


def _leaf_problems(leaf: dict) -> list[str]:
    name, op = leaf.get("field"), leaf.get("op")
    field = FIELDS.get(name) if isinstance(name, str) else None
    if field is None:
        return [f"campo desconocido: {name!r}"]
    if not isinstance(op, str) or op not in OPERATORS:
        return [f"operador desconocido: {op!r}"]
    if op in ("is_set", "is_not_set"):
        return [] if "value" not in leaf or leaf["value"] is None else ["no lleva valor"]
    if op in _ORDERED and field.kind in ("text", "bool"):
        return [f"el operador {op} no aplica a {leaf['field']}"]
    value = leaf.get("value")
    values = value if op in ("in", "not_in", "between") else [value]
    if op == "between" and (not isinstance(value, list) or len(value) != 2):
        return ["entre requiere dos valores [desde, hasta]"]
    if op in ("in", "not_in") and (not isinstance(value, list) or not 1 <= len(value) <= 100):
        return ["la lista requiere de 1 a 100 valores"]
    try:
        coerced = [coerce(field.kind, v) for v in values]
    except ValueError as exc:
        return [f"valor inválido para {leaf['field']}: {exc}"]
    if field.choices and any(v not in field.choices for v in coerced):
        return [f"valores permitidos: {', '.join(field.choices)}"]
    if op == "between" and coerced[0] > coerced[1]:
        return ["el inicio del rango es mayor que el final"]
    return []


def condition_problems(tree, path: str = "conditions", depth: int = 0,
                       counter=None) -> dict[str, list[str]]:
    """Every problem of a condition tree, keyed by its path (empty when valid)."""
    counter = counter if counter is not None else [0]
    if not isinstance(tree, dict):
        return {path: ["se esperaba un objeto"]}
    if depth > MAX_DEPTH:
        return {path: [f"más de {MAX_DEPTH} niveles de anidación"]}
    groups = [k for k in ("all", "any") if k in tree]
    if groups:
        if len(tree) != 1 or not isinstance(tree[groups[0]], list):
            return {path: ['un grupo es {"all": [...]} o {"any": [...]}']}
        problems: dict[str, list[str]] = {}
        for i, child in enumerate(tree[groups[0]]):
            problems.update(condition_problems(child, f"{path}.{groups[0]}[{i}]", depth + 1,
                                               counter))
        return problems
    counter[0] += 1
    if counter[0] > MAX_LEAVES:
        return {path: [f"más de {MAX_LEAVES} condiciones"]}
    unknown = set(tree) - {"field", "op", "value"}
    if unknown:
        return {path: [f"claves desconocidas: {', '.join(sorted(unknown))}"]}
    problems = _leaf_problems(tree)
    return {path: problems} if problems else {}


def sort_problems(sort) -> list[str]:
    if not isinstance(sort, list) or not 1 <= len(sort) <= 5:
        return ["indique de 1 a 5 criterios de orden"]
    problems = []
    for item in sort:
        if (not isinstance(item, dict) or item.get("field") not in SORTABLE
                or item.get("direction", "desc") not in ("asc", "desc")
                or set(item) - {"field", "direction"}):
            problems.append(f"criterio inválido: {item!r}; campos: {', '.join(SORTABLE)}")
    return problems




class QueueWrite(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    conditions = fields.Dict(required=True)
    sort = fields.List(fields.Dict(), required=True)
    team_id = fields.Integer(required=True)
    policy = fields.String(load_default="round_robin", validate=validate.OneOf(
        ["round_robin", "balance_weighted", "capacity", "manual"]))

    @validates("conditions")
    def _conditions(self, value, **_):
        problems = condition_problems(value)
        if problems:
            raise ValidationError([f"{path}: {'; '.join(p)}" for path, p in problems.items()])

    @validates("sort")
    def _sort(self, value, **_):
        problems = sort_problems(value)
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
    problems = condition_problems(value)
    if problems:
        raise ValidationError([f"{path}: {'; '.join(p)}" for path, p in problems.items()])


#: how a campaign's messages go (messaging's ``send_campaign_message``)
CAMPAIGN_CHANNELS = ("email", "sms", "letter")


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
    channel = fields.String(required=True, validate=validate.OneOf(CAMPAIGN_CHANNELS))
    template_id = fields.Integer(required=True)
    language = fields.String(load_default="es", validate=validate.OneOf(("es", "en")))
    send_hour = fields.Integer(load_default=9, validate=validate.Range(min=0, max=23))
    #: each message carries the debtor's personal portal link (email or SMS only)
    portal_link = fields.Boolean(load_default=False)

    @validates_schema
    def _portal_link(self, data, **_):
        if data.get("portal_link") and data.get("channel") == "letter":
            raise ValidationError("Una carta no lleva la liga del portal (correo o SMS)",
                                  "portal_link")


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
    portal_link = fields.Boolean()
    state = fields.String()
    created_by = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
