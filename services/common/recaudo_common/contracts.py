"""Event contracts: one marshmallow schema per event, imported by producer and consumer.

Every payload carries ``event_id`` (the dedupe key of idempotent handlers) and
``occurred_at``. Services publish through ``Database.emit`` (the outbox), which
dumps the payload through the schema registered here under the event's name.
"""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields


class EventSchema(Schema):
    class Meta:
        unknown = RAISE

    event_id = fields.UUID(required=True)
    occurred_at = fields.AwareDateTime(required=True)


#: (source service, event type) -> payload schema. Later issues add their events here.
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
