"""The campaign form's handling, without a broker: the form's fields to the campaign the
queues service takes, and a stored campaign back to the form (nested groups made through
the API kept as they are)."""
import json

import pytest
from werkzeug.datastructures import MultiDict

from gateway.ui import campaigns as ui
from gateway.app import create_app
from gateway.ui.queues.conditions import Catalogue

from .helpers import CATALOGUE

FIELDS = [("name", " Vence en 3 días "), ("group", "all"), ("extra", ""),
          ("cond_field", "stage"), ("cond_op", "eq"), ("cond_value", "Al corriente"),
          ("cond_field", "days_past_due"), ("cond_op", "between"), ("cond_value", "0, 3"),
          ("cond_field", ""), ("cond_op", "eq"), ("cond_value", ""),
          ("cond_field", "balance"), ("cond_op", "gt"), ("cond_value", "$1,500.00"),
          ("channel", "letter"), ("template_id", "4"), ("language", "en"),
          ("send_hour", "8"), ("holdout_share", "15")]


@pytest.fixture
def app():
    return create_app(testing=True)


def _payload(app, fields):
    with app.test_request_context("/campanas/nueva", method="POST", data=MultiDict(fields)):
        return ui._payload(ui._draft_from_form(1), Catalogue(CATALOGUE))


def test_the_form_becomes_the_campaign_the_service_takes(app):
    assert _payload(app, FIELDS) == {
        "institution_id": 1, "name": "Vence en 3 días", "channel": "letter", "template_id": 4,
        "portal_link": False, "language": "en", "send_hour": 8, "holdout_share": 15,
        "conditions": {"all": [
            {"field": "stage", "op": "eq", "value": "current"},          # label -> code
            {"field": "days_past_due", "op": "between", "value": [0, 3]},
            {"field": "balance", "op": "gt", "value": "1500.00"}]}}      # the empty row goes


def test_an_sms_campaign_with_the_portal_link(app):
    fields = [(k, "sms" if k == "channel" else v) for k, v in FIELDS] + [("portal_link", "1")]
    payload = _payload(app, fields)
    assert (payload["channel"], payload["portal_link"]) == ("sms", True)


def test_what_is_not_a_number_reaches_the_service_as_typed(app):
    fields = [(k, "muchos" if k == "holdout_share" else v) for k, v in FIELDS]
    assert _payload(app, fields)["holdout_share"] == "muchos"   # the service names the field


def test_a_stored_campaign_round_trips_through_the_form(app):
    nested = {"any": [{"field": "balance", "op": "gt", "value": "5000"},
                      {"field": "days_past_due", "op": "gt", "value": 30}]}
    stored = {"any": [{"field": "stage", "op": "eq", "value": "current"}, nested]}
    draft = ui._draft_conditions(stored)
    assert draft["group"] == "any" and draft["extra"] == [nested]
    assert draft["rows"] == [{"field": "stage", "op": "eq", "value": "current"}]
    fields = [("name", "X"), ("group", draft["group"]), ("extra", json.dumps(draft["extra"])),
              ("cond_field", "stage"), ("cond_op", "eq"), ("cond_value", "current"),
              ("channel", "email"), ("template_id", "1"), ("send_hour", "9"),
              ("holdout_share", "0")]
    assert _payload(app, fields)["conditions"] == stored
