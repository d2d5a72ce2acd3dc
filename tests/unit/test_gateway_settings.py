"""The settings screens' pieces that need no broker: the limits editor's rows read from the
form as the service takes them, and a service's nested problems put back on those rows."""
import pytest
from werkzeug.datastructures import MultiDict

from gateway.app import create_app
from gateway.ui import institution_settings as settings
from gateway.ui._common import Failure, by_path


@pytest.fixture
def app():
    return create_app(testing=True)


def test_band_rows_in_order_blank_ones_and_empty_thresholds_dropped():
    form = MultiDict({
        "institution_id": "1", "max_instalments": "6", "max_plan_days": "abc",
        "min_first_payment": "", "offer_expiry_days": "7",
        "bands-10-stage": "litigation", "bands-10-dpd_from": "91", "bands-10-dpd_to": "",
        "bands-10-t0-pct": "40", "bands-10-t0-approver": "administrator",
        "bands-2-stage": "", "bands-2-dpd_from": "", "bands-2-dpd_to": "",   # left blank
        "bands-2-t0-pct": "", "bands-2-t0-approver": "",
        "bands-0-stage": "", "bands-0-dpd_from": "", "bands-0-dpd_to": "30",
        "bands-0-t0-pct": "10", "bands-0-t0-approver": "", "bands-0-t1-pct": " ",
        "bands-0-t2-pct": "20", "bands-0-t2-approver": "supervisor"})
    assert settings._limits_form(form) == {
        "max_instalments": 6, "max_plan_days": "abc", "offer_expiry_days": 7,
        "discount_bands": [
            {"stage": None, "dpd_from": 0, "dpd_to": 30, "thresholds": [
                {"up_to_pct": "10", "approver": None},
                {"up_to_pct": "20", "approver": "supervisor"}]},
            {"stage": "litigation", "dpd_from": 91, "dpd_to": None, "thresholds": [
                {"up_to_pct": "40", "approver": "administrator"}]}]}


def test_nested_problems_by_the_path_the_editor_names_its_fields():
    problems = {"max_instalments": ["Too big"],
                "discount_bands": {"1": {"dpd_to": ["Debe ser mayor"],
                                         "thresholds": {"0": {"up_to_pct": ["Entre 0 y 100"]}}}}}
    assert by_path(problems) == {"max_instalments": ["Too big"],
                                 "discount_bands.1.dpd_to": ["Debe ser mayor"],
                                 "discount_bands.1.thresholds.0.up_to_pct": ["Entre 0 y 100"]}
    assert by_path(["Sin datos"]) == {"_schema": ["Sin datos"]}


def test_a_failure_keeps_both_views_of_the_problems(app):
    with app.test_request_context():
        failure = Failure(422, "Revise", {"discount_bands": {"0": {"dpd_to": ["Mal"]}},
                                          "url": ["Sólo direcciones https://"]})
    assert failure.fields == {"discount_bands": ["Mal"], "url": ["Sólo direcciones https://"]}
    assert failure.paths == {"discount_bands.0.dpd_to": ["Mal"],
                             "url": ["Sólo direcciones https://"]}
    assert failure.others({"url"}) == ["discount_bands: Mal"]
