"""The strategy editor's form handling, without a broker: the form's fields to the draft,
the editing steps, the strategy the queues service takes, and where the service's
problems are shown."""
import pytest
from werkzeug.datastructures import MultiDict

from gateway.ui.queues import editor as ui
from gateway.app import create_app

from .helpers import CATALOGUE


@pytest.fixture
def ctx():
    app = create_app(testing=True)
    with app.test_request_context("/filas/estrategias/nueva"):
        yield ui.Catalogue(CATALOGUE)


def two_queue_form():
    return MultiDict([
        ("name", " Temprana y tardía "), ("challenger_id", ""), ("challenger_share", "0"),
        ("q-1-name", "Resto"), ("q-1-team_id", "7"), ("q-1-policy", "manual"),
        ("q-1-group", "all"), ("q-1-s-0-field", "account_id"), ("q-1-s-0-direction", "asc"),
        ("q-0-name", "Graves"), ("q-0-team_id", "7"), ("q-0-policy", "round_robin"),
        ("q-0-group", "any"),
        ("q-0-c-0-field", "days_past_due"), ("q-0-c-0-op", "between"),
        ("q-0-c-0-value", "31, 90"),
        ("q-0-c-1-field", ""), ("q-0-c-1-op", "eq"), ("q-0-c-1-value", ""),   # an empty row
        ("q-0-c-2-field", "stage"), ("q-0-c-2-op", "in"), ("q-0-c-2-value", "Litigio, moroso"),
        ("q-0-c-3-field", "balance"), ("q-0-c-3-op", "gt"), ("q-0-c-3-value", "$10,000.50"),
        ("q-0-c-4-field", "open_promise"), ("q-0-c-4-op", "eq"), ("q-0-c-4-value", "false"),
        ("q-0-s-0-field", "balance"), ("q-0-s-0-direction", "desc"),
        ("q-0-s-1-field", ""), ("q-0-s-1-direction", "asc"),
    ])


def test_the_form_becomes_the_strategy_the_service_takes(ctx):
    draft = ui.draft_from_form(two_queue_form(), institution_id=1)
    assert [q["name"] for q in draft["queues"]] == ["Graves", "Resto"]   # by index, not order
    payload, origins = ui.payload_of(draft, ctx)
    assert payload["name"] == "Temprana y tardía" and payload["institution_id"] == 1
    graves, rest = payload["queues"]
    assert graves["conditions"] == {"any": [
        {"field": "days_past_due", "op": "between", "value": [31, 90]},
        {"field": "stage", "op": "in", "value": ["litigation", "delinquent"]},  # labels -> codes
        {"field": "balance", "op": "gt", "value": "10000.50"},
        {"field": "open_promise", "op": "eq", "value": False}]}
    assert graves["sort"] == [{"field": "balance", "direction": "desc"}]
    assert graves["team_id"] == 7 and graves["policy"] == "round_robin"
    assert rest["conditions"] == {"all": []} and rest["policy"] == "manual"
    assert origins == [[0, 2, 3, 4], []]   # the empty row is not sent
    assert payload["challenger_id"] is None and payload["challenger_share"] == 0


def test_a_stored_strategy_round_trips_through_the_editor(ctx):
    stored = {"id": 4, "name": "Actual", "institution_id": 2, "challenger_id": 9,
              "challenger_share": 20, "queues": [
                  {"id": 11, "name": "Mixta", "team_id": 3, "policy": "capacity",
                   "sort": [{"field": "days_past_due", "direction": "desc"}],
                   "conditions": {"all": [
                       {"field": "days_past_due", "op": "gt", "value": 30},
                       {"any": [{"field": "stage", "op": "eq", "value": "litigation"},
                                {"field": "balance", "op": "gt", "value": "5000"}]}]}}]}
    draft = ui.draft_from_strategy(stored)
    assert draft["queues"][0]["conditions"] == [{"field": "days_past_due", "op": "gt",
                                                  "value": "30"}]
    assert draft["queues"][0]["extra"] == [stored["queues"][0]["conditions"]["all"][1]]
    payload, _ = ui.payload_of(draft, ctx)
    assert payload["queues"][0]["conditions"] == {"all": [
        {"field": "days_past_due", "op": "gt", "value": 30},
        stored["queues"][0]["conditions"]["all"][1]]}   # the nested group is kept
    assert payload["challenger_id"] == 9 and payload["challenger_share"] == 20


def test_editing_steps_add_remove_and_move(ctx):
    draft = ui.draft_from_form(two_queue_form(), institution_id=1)
    ui.apply_action(draft, "add_queue")
    assert [q["name"] for q in draft["queues"]] == ["Graves", "Resto", "Fila 3"]
    assert draft["queues"][2]["team_id"] == 7           # the previous queue's team
    ui.apply_action(draft, "up-2")
    assert [q["name"] for q in draft["queues"]] == ["Graves", "Fila 3", "Resto"]
    ui.apply_action(draft, "down-2")                    # the last one: nothing to do
    ui.apply_action(draft, "up-0")                      # the first one: nothing to do
    ui.apply_action(draft, "remove_queue-1")
    assert [q["name"] for q in draft["queues"]] == ["Graves", "Resto"]
    ui.apply_action(draft, "remove_cond-0-1")
    assert [c["field"] for c in draft["queues"][0]["conditions"]] == \
        ["days_past_due", "stage", "balance", "open_promise"]
    ui.apply_action(draft, "add_cond-1")
    assert draft["queues"][1]["conditions"] == [{"field": "", "op": "eq", "value": ""}]
    ui.apply_action(draft, "add_sort-1")
    ui.apply_action(draft, "remove_sort-1-0")
    assert draft["queues"][1]["sort"] == [{"field": "", "direction": "desc"}]
    for nonsense in ("remove_queue-99", "up-x", "remove_cond-0", "explode", "add_cond-7"):
        ui.apply_action(draft, nonsense)                # ignored
    assert len(draft["queues"]) == 2


def test_the_services_problems_land_next_to_their_queue_and_row(ctx):
    fields = {"name": ["Shorter than minimum length 1."],
              "queues": {"0": {"conditions": ["conditions.any[1]: campo desconocido: 'x'",
                                              "conditions: se esperaba un objeto"],
                               "team_id": ["Field may not be null."]},
                         "1": {"sort": ["criterio inválido"]}},
              "queues.1.team_id": ["El equipo no existe o no tiene gestores"],
              "_schema": ["Algo general"]}
    problems = ui.Problems("Revise", fields, origins=[[0, 2], []])
    assert problems.top["name"] == ["Escriba el nombre de la estrategia."]
    first = problems.queue(0)
    assert first["rows"] == {2: ["campo desconocido: 'x'"]}   # sent row 1 is editor row 2
    assert first["conditions"] == ["conditions: se esperaba un objeto"]
    assert first["team_id"] == ["Elija el equipo que trabaja esta fila."]
    assert problems.queue(1)["team_id"] == ["El equipo no existe o no tiene gestores"]
    assert problems.queue(1)["sort"] == ["criterio inválido"]
    assert problems.queue(5) == {"rows": {}}
    assert problems.others == ["Algo general"]


def test_operators_follow_the_kind_of_field(ctx):
    assert [c for c, _ in ctx.operators_for("open_promise")] == ["eq"]
    assert "gt" not in [c for c, _ in ctx.operators_for("stage")]
    assert "between" in [c for c, _ in ctx.operators_for("days_past_due")]
    assert ctx.choice("stage", " LITIGIO ") == "litigation"
    assert ctx.choice("stage", "otra") == "otra"
