"""The collection queues' API against the running stack: a strategy is created, simulated
and applied; the supervisor's board, freezing, moves and reassignments; a collector pulls
the next account, holds it, releases it and pages through their worklist; invalid
strategies answer 422 naming the field; and who may do what (a creditor and a
collector may not manage queues, a supervisor scoped to one institution cannot reach
another).

The queues service ranks on its own projections, which the demo seed does not fill:
``prepare_queues`` loads the account facts of institution 1 from the portfolio
(``POST /institutions/1/resync``) and re-saves the demo team through the API so auth
announces it (``team_changed``) and the queues service learns its members. It also
opens institution 1's contact window to the whole day in the queues service's copy of
the rules, so "next account" does not depend on the hour the suite runs at (the window
itself is covered by the integration tests). Strategies made here are named
``E2E filas …`` and removed at the end, with the leases of the demo collectors.
"""
from __future__ import annotations

import secrets

import pytest

from recaudo_common.demo import USER_IDS

from .helpers import (COLLECTORS, INSTITUTION, PREFIX, Api, prepare_queues, queue, release_all,
                      remove_queue_leftovers, restore_contact_window, sql, token)

RUN = secrets.token_hex(3)
SCOPED_PASSWORD = "filas-supervisor-local-2024"


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(stack, demo_users):
    prepared = prepare_queues(stack.base_url, demo_users)
    clients = {}

    def api(username: str) -> Api:
        if username not in clients:
            clients[username] = Api(stack.base_url, token(stack.base_url, username, demo_users)
                                    if username != "anonymous" else None)
        return clients[username]

    state = {**prepared, "api": api, "password": demo_users, "base_url": stack.base_url}
    yield state
    remove_queue_leftovers()
    restore_contact_window(stack.base_url, demo_users)
    _remove_scoped_users()


def _remove_scoped_users():
    doomed = "SELECT id FROM auth.users WHERE username LIKE 'e2e-filas-%'"
    for statement in (f"DELETE FROM auth.team_members WHERE user_id IN ({doomed})",
                      f"DELETE FROM auth.api_tokens WHERE user_id IN ({doomed})",
                      f"DELETE FROM auth.sessions WHERE user_id IN ({doomed})",
                      "DELETE FROM auth.users WHERE username LIKE 'e2e-filas-%'",
                      "DELETE FROM auth.profiles p WHERE name LIKE 'E2E Filas %' AND NOT EXISTS "
                      "(SELECT 1 FROM auth.users u WHERE u.profile_id = p.id)"):
        sql(statement)


def three_queues(team_id: int) -> list[dict]:
    return [
        queue("Más de 90 días", {"all": [{"field": "days_past_due", "op": "gt", "value": 90}]},
              team_id, sort=[{"field": "balance", "direction": "desc"}]),
        queue("De 31 a 90 días", {"all": [{"field": "days_past_due", "op": "between",
                                           "value": [31, 90]}]},
              team_id, policy="balance_weighted"),
        queue("Resto", {"all": []}, team_id, sort=[{"field": "account_id", "direction": "asc"}]),
    ]


@pytest.fixture(scope="module")
def applied(world):
    """A three-queue strategy of institution 1, created, simulated and applied."""
    supervisor = world["api"]("supervisor")
    body = {"institution_id": INSTITUTION, "name": f"{PREFIX} {RUN} tres filas",
            "queues": three_queues(world["team_id"])}
    created = supervisor.ok("POST", "/api/v1/strategies", body, status=201)
    simulation = supervisor.ok("POST", f"/api/v1/strategies/{created['id']}/simulate")
    result = supervisor.ok("POST", f"/api/v1/strategies/{created['id']}/apply")
    return {"strategy": created, "simulation": simulation, "applied": result,
            "queue_ids": [q["id"] for q in created["queues"]]}


# --- strategies --------------------------------------------------------------------------------

def test_the_catalogue_offers_fields_operators_and_sort_criteria(world):
    catalogue = world["api"]("gestor1").ok("GET", "/api/v1/queues/catalogue")
    fields = {f["name"]: f for f in catalogue["fields"]}
    assert fields["days_past_due"]["kind"] == "int"
    assert fields["stage"]["choices"] == ["current", "delinquent", "litigation"]
    assert {"eq", "between", "in", "is_set"} <= set(catalogue["operators"])
    assert "balance" in catalogue["sortable"]


def test_a_strategy_is_created_read_updated_and_listed(world):
    supervisor = world["api"]("supervisor")
    body = {"institution_id": INSTITUTION, "name": f"{PREFIX} {RUN} borrador",
            "queues": three_queues(world["team_id"])[:2]}
    created = supervisor.ok("POST", "/api/v1/strategies", body, status=201)
    assert created["state"] == "draft" and created["institution_id"] == INSTITUTION
    assert [q["name"] for q in created["queues"]] == ["Más de 90 días", "De 31 a 90 días"]
    assert [q["position"] for q in created["queues"]] == [1, 2]
    assert created["created_at"].endswith("+00:00")      # ISO 8601, as every answer

    assert supervisor.ok("GET", f"/api/v1/strategies/{created['id']}")["name"] == body["name"]
    renamed = supervisor.ok("PUT", f"/api/v1/strategies/{created['id']}",
                            {**body, "name": f"{PREFIX} {RUN} borrador 2",
                             "queues": three_queues(world["team_id"])})
    assert renamed["name"].endswith("borrador 2") and len(renamed["queues"]) == 3

    listed = supervisor.ok("GET", f"/api/v1/institutions/{INSTITUTION}/strategies")
    assert created["id"] in {s["id"] for s in listed}
    # the same name twice in one institution: 409
    clash = supervisor.call("POST", "/api/v1/strategies", {**body, "name": renamed["name"]})
    assert clash.status_code == 409, clash.text


def test_simulate_then_apply_places_every_account_as_simulated(world, applied):
    simulation, result = applied["simulation"], applied["applied"]
    per_queue = {q["queue_id"]: q for q in simulation["queues"]}
    assert set(per_queue) == set(applied["queue_ids"])       # "Resto" takes the rest
    assert sum(q["accounts"] for q in per_queue.values()) == world["facts"]
    assert simulation["unplaced"] == 0
    for q in per_queue.values():
        assert q["accounts"] > 0 and float(q["balance"]) > 0
        assert 1 <= len(q["sample"]) <= 5
        assert [s["rank"] for s in q["sample"]] == list(range(1, len(q["sample"]) + 1))
        assert {s["agent_id"] for s in q["sample"]} <= set(COLLECTORS)
    # the moves versus today end in this strategy's queues (they start in no queue, or in
    # the queues of the strategy active before)
    assert {m["to_queue"] for m in simulation["moves"]} <= set(applied["queue_ids"])
    assert 0 < sum(m["accounts"] for m in simulation["moves"]) <= world["facts"]

    assert result["counts"] == {str(q): per_queue[q]["accounts"] for q in per_queue}
    assert result["unplaced"] == 0 and result["strategy_id"] == applied["strategy"]["id"]
    supervisor = world["api"]("supervisor")
    assert supervisor.ok("GET", f"/api/v1/strategies/{applied['strategy']['id']}")["state"] \
        == "active"
    # applying again re-places with the latest facts, same answer
    again = supervisor.ok("POST", f"/api/v1/strategies/{applied['strategy']['id']}/apply")
    assert again["counts"] == result["counts"] and again["collector_changes"] == 0


def test_the_board_shows_each_queue_of_the_active_strategy(world, applied):
    board = world["api"]("supervisor").ok(
        "GET", f"/api/v1/strategies/{applied['strategy']['id']}/board")
    assert [row["queue_id"] for row in board] == applied["queue_ids"]
    counts = applied["applied"]["counts"]
    for row in board:
        assert row["accounts"] == counts[str(row["queue_id"])]
        assert row["remaining"] == row["accounts"] - row["worked_today"]
        assert row["frozen"] is False and row["team_id"] == world["team_id"]
        assert float(row["balance"]) > 0


# --- working the queue -----------------------------------------------------------------------

def test_a_collector_pulls_the_next_account_and_holds_it_until_released(world, applied):
    release_all()
    gestor1, gestor2 = world["api"]("gestor1"), world["api"]("gestor2")
    lease = gestor1.ok("POST", "/api/v1/queues/next")
    assert lease["queue_id"] in applied["queue_ids"]
    assert lease["queue"] == "Más de 90 días" and lease["rank"] >= 1
    assert lease["lease_expires_at"].endswith("+00:00")
    agent = sql("SELECT agent_id FROM queues.assignments WHERE account_id = :a",
                a=lease["account_id"])[0][0]
    assert agent in (USER_IDS["gestor1"], None)          # theirs, or nobody's yet
    assert sql("SELECT debtor_id FROM queues.account_facts WHERE account_id = :a",
               a=lease["account_id"])[0][0] == lease["debtor_id"]

    # while they hold it, "next" answers the same account
    assert gestor1.ok("POST", "/api/v1/queues/next")["account_id"] == lease["account_id"]
    other = gestor2.ok("POST", "/api/v1/queues/next")
    assert other["account_id"] != lease["account_id"]

    # only the holder releases it, once
    assert gestor2.call("POST", f"/api/v1/queues/release/{lease['account_id']}").status_code \
        == 404
    assert gestor1.call("POST", f"/api/v1/queues/release/{lease['account_id']}").status_code \
        == 204
    again = gestor1.call("POST", f"/api/v1/queues/release/{lease['account_id']}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    assert gestor2.call("POST", f"/api/v1/queues/release/{other['account_id']}").status_code \
        == 204
    assert world["api"]("anonymous").call("POST", "/api/v1/queues/next").status_code == 401


def test_the_worklist_pages_through_the_collectors_accounts(world, applied):
    gestor1 = world["api"]("gestor1")
    first = gestor1.ok("GET", "/api/v1/worklist?per_page=5")
    mine = sql("SELECT count(*) FROM queues.assignments WHERE agent_id = :g AND queue_id = "
               "ANY(:q)", g=USER_IDS["gestor1"], q=applied["queue_ids"])[0][0]
    assert first["total"] == mine > 0
    assert len(first["items"]) == 5 and first["pages"] == -(-mine // 5)
    names = {"Más de 90 días", "De 31 a 90 días", "Resto"}
    # workable: what the facts allow now (the module's window is the whole day); the demo's
    # past may have left a dispute, a callback, a hold or a do-not-contact mark on some
    facts = dict(sql(
        "SELECT account_id, NOT open_dispute AND NOT do_not_contact"
        " AND coalesce(callback_at <= now(), true) AND coalesce(contact_hold_until <= now(), true)"
        " FROM queues.account_facts WHERE account_id = ANY(:ids)",
        ids=[i["account_id"] for i in first["items"]]))
    for item in first["items"]:
        assert item["queue"] in names and item["workable"] is facts[item["account_id"]]
        assert set(item) >= {"account_id", "debtor_id", "rank", "days_past_due", "balance",
                             "callback_at"}
    second = gestor1.ok("GET", "/api/v1/worklist?per_page=5&page=2")
    assert not {i["account_id"] for i in first["items"]} & {i["account_id"] for i in second["items"]}
    assert gestor1.call("GET", "/api/v1/worklist?per_page=500").status_code == 422


def test_a_frozen_queue_hands_out_nothing(world, applied):
    release_all()
    supervisor, gestor1 = world["api"]("supervisor"), world["api"]("gestor1")
    try:
        for queue_id in applied["queue_ids"]:
            assert supervisor.ok("POST", f"/api/v1/queues/{queue_id}/freeze",
                                 {"frozen": True}) == {"queue_id": queue_id, "frozen": True}
        assert gestor1.call("POST", "/api/v1/queues/next").status_code == 204
        board = supervisor.ok("GET", f"/api/v1/strategies/{applied['strategy']['id']}/board")
        assert all(row["frozen"] for row in board)
        # only the last queue open: that is where the next account comes from
        supervisor.ok("POST", f"/api/v1/queues/{applied['queue_ids'][2]}/freeze", {"frozen": False})
        lease = gestor1.ok("POST", "/api/v1/queues/next")
        assert lease["queue_id"] == applied["queue_ids"][2]
    finally:
        for queue_id in applied["queue_ids"]:
            supervisor.call("POST", f"/api/v1/queues/{queue_id}/freeze", {"frozen": False})
        release_all()
    missing = supervisor.call("POST", "/api/v1/queues/1/freeze", {})
    assert missing.status_code == 422 and "frozen" in missing.json()["error"]["fields"]


def test_supervisors_move_accounts_and_reassign_a_collectors_portfolio(world, applied):
    supervisor = world["api"]("supervisor")
    strategy_id = applied["strategy"]["id"]
    first, _, last = applied["queue_ids"]
    account = sql("SELECT account_id FROM queues.assignments WHERE queue_id = :q "
                  "ORDER BY rank LIMIT 1", q=first)[0][0]
    assert supervisor.ok("POST", "/api/v1/queues/move",
                         {"account_ids": [account], "queue_id": last}) == {"moved": 1}
    assert sql("SELECT queue_id FROM queues.assignments WHERE account_id = :a",
               a=account)[0][0] == last
    unknown = supervisor.call("POST", "/api/v1/queues/move",
                              {"account_ids": [999_999_999], "queue_id": last})
    assert unknown.status_code == 422 and "account_ids" in unknown.json()["error"]["fields"]

    gestor2s = sql("SELECT count(*) FROM queues.assignments WHERE agent_id = :g",
                   g=USER_IDS["gestor2"])[0][0]
    moved = supervisor.ok("POST", "/api/v1/queues/reassign",
                          {"from_agent_id": USER_IDS["gestor2"],
                           "to_agent_id": USER_IDS["gestor1"]})
    assert moved["moved"] == gestor2s > 0
    assert world["api"]("gestor2").ok("GET", "/api/v1/worklist")["total"] == 0
    # rebuilding re-places everything by the queues' policies again
    rebuilt = supervisor.ok("POST", f"/api/v1/institutions/{INSTITUTION}/rebuild")
    assert rebuilt["counts"] == applied["applied"]["counts"]
    assert rebuilt["collector_changes"] >= gestor2s
    assert world["api"]("gestor2").ok("GET", "/api/v1/worklist")["total"] == gestor2s
    board = supervisor.ok("GET", f"/api/v1/strategies/{strategy_id}/board")
    assert {str(r["queue_id"]): r["accounts"] for r in board} == applied["applied"]["counts"]


# --- invalid strategies ----------------------------------------------------------------------

def _problems(response) -> dict:
    assert response.status_code == 422, response.text
    return response.json()["error"]["fields"]


def test_invalid_strategies_answer_422_naming_the_field(world):
    supervisor = world["api"]("supervisor")
    team = world["team_id"]

    def attempt(*queues, **extra):
        return supervisor.call("POST", "/api/v1/strategies", {
            "institution_id": INSTITUTION, "name": f"{PREFIX} {RUN} inválida",
            "queues": list(queues), **extra})

    unknown_field = _problems(attempt(queue("Mala", {"all": [
        {"field": "days_past_due", "op": "gt", "value": 1},
        {"field": "saldo_secreto", "op": "eq", "value": 1}]}, team)))
    assert "campo desconocido" in " ".join(unknown_field["queues"]["0"]["conditions"])
    assert "all[1]" in " ".join(unknown_field["queues"]["0"]["conditions"])

    without_team = queue("Sin equipo", {"all": []}, team)
    del without_team["team_id"]
    assert "team_id" in _problems(attempt(queue("Bien", {"all": []}, team), without_team)
                                  )["queues"]["1"]
    # a team the queues service does not know (or without collectors)
    assert _problems(attempt(queue("Equipo fantasma", {"all": []}, 987_654)))[
        "queues.0.team_id"]
    bad_operator = _problems(attempt(queue("Texto ordenado", {"all": [
        {"field": "stage", "op": "gt", "value": "current"}]}, team)))
    assert "no aplica" in " ".join(bad_operator["queues"]["0"]["conditions"])
    assert "sort" in _problems(attempt(queue("Sin orden", {"all": []}, team, sort=[
        {"field": "nombre", "direction": "desc"}])))["queues"]["0"]
    assert "queues" in _problems(attempt())
    assert "challenger_id" in _problems(attempt(queue("Bien", {"all": []}, team),
                                                challenger_share=10))
    assert not sql("SELECT 1 FROM queues.strategies WHERE name = :n", n=f"{PREFIX} {RUN} inválida")


# --- who may not --------------------------------------------------------------------------------

def test_creditors_and_collectors_do_not_manage_queues(world, applied):
    strategy_id = applied["strategy"]["id"]
    body = {"institution_id": INSTITUTION, "name": f"{PREFIX} {RUN} ajena",
            "queues": three_queues(world["team_id"])}
    cliente, gestor1 = world["api"]("cliente"), world["api"]("gestor1")
    for method, path, payload in (
            ("GET", f"/api/v1/institutions/{INSTITUTION}/strategies", None),
            ("POST", "/api/v1/strategies", body),
            ("POST", f"/api/v1/strategies/{strategy_id}/simulate", None),
            ("POST", f"/api/v1/strategies/{strategy_id}/apply", None),
            ("GET", f"/api/v1/strategies/{strategy_id}/board", None),
            ("POST", f"/api/v1/institutions/{INSTITUTION}/rebuild", None),
            ("POST", f"/api/v1/queues/{applied['queue_ids'][0]}/freeze", {"frozen": True})):
        for who, client in (("cliente", cliente), ("gestor1", gestor1)):
            answer = client.call(method, path, payload)
            assert answer.status_code == 403, (who, method, path, answer.text)
            assert answer.json()["error"]["code"] == "permission_denied"
    # the creditor does not work queues either
    assert cliente.call("POST", "/api/v1/queues/next").status_code == 403
    assert cliente.call("GET", "/api/v1/worklist").status_code == 403
    assert world["api"]("anonymous").call(
        "GET", f"/api/v1/institutions/{INSTITUTION}/strategies").status_code == 401


def test_a_supervisor_of_one_institution_cannot_reach_another(world, applied):
    admin = world["api"]("admin")
    profile = admin.ok("POST", "/api/v1/profiles", {
        "name": f"E2E Filas supervisor local {RUN}",
        "permissions": ["queues.manage", "queues.work", "portfolio.read"]}, status=201)
    username = f"e2e-filas-local-{RUN}"
    admin.ok("POST", "/api/v1/users", {
        "username": username, "display_name": "Supervisor local", "password": SCOPED_PASSWORD,
        "profile_id": profile["id"], "institutions": [INSTITUTION]}, status=201)
    local = Api(world["base_url"], token(world["base_url"], username, SCOPED_PASSWORD))

    # its own institution: allowed
    assert applied["strategy"]["id"] in {
        s["id"] for s in local.ok("GET", f"/api/v1/institutions/{INSTITUTION}/strategies")}
    local.ok("GET", f"/api/v1/strategies/{applied['strategy']['id']}/board")
    # institution 3: answers like missing
    other = 3
    for method, path, payload in (
            ("GET", f"/api/v1/institutions/{other}/strategies", None),
            ("POST", f"/api/v1/institutions/{other}/rebuild", None),
            ("POST", f"/api/v1/institutions/{other}/resync", None),
            ("POST", "/api/v1/strategies", {"institution_id": other, "name": f"{PREFIX} {RUN} i3",
                                            "queues": three_queues(world["team_id"])})):
        answer = local.call(method, path, payload)
        assert answer.status_code == 404, (method, path, answer.text)
    # a strategy of institution 3 (made by the all-institution supervisor) is out of reach
    foreign = world["api"]("supervisor").ok("POST", "/api/v1/strategies", {
        "institution_id": other, "name": f"{PREFIX} {RUN} de la 3",
        "queues": [queue("Todo", {"all": []}, world["team_id"])]}, status=201)
    for method, path, payload in (
            ("GET", f"/api/v1/strategies/{foreign['id']}", None),
            ("PUT", f"/api/v1/strategies/{foreign['id']}",
             {"institution_id": other, "name": foreign["name"],
              "queues": [queue("Todo", {"all": []}, world["team_id"])]}),
            ("POST", f"/api/v1/strategies/{foreign['id']}/simulate", None),
            ("POST", f"/api/v1/strategies/{foreign['id']}/apply", None),
            ("GET", f"/api/v1/strategies/{foreign['id']}/board", None),
            ("POST", f"/api/v1/queues/{foreign['queues'][0]['id']}/freeze", {"frozen": True})):
        answer = local.call(method, path, payload)
        assert answer.status_code == 404, (method, path, answer.text)
    assert world["api"]("supervisor").ok("GET", f"/api/v1/strategies/{foreign['id']}")[
        "state"] == "draft"
