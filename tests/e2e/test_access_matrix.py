"""Who may do what: one table of every API endpoint and every identity-checked RPC,
asserted for every kind of caller against the running stack.

Each ``Row`` is ``(name, method, path, body, rule)``: ``method`` is an HTTP verb (the
path is the route as the OpenAPI document writes it, filled by ``params``) or
``"RPC"`` (the path is ``service.method``, the body the argument list, called
directly over RabbitMQ with the caller's identity in context data, as the gateway
would). The ``rule`` computes the expected status for each column from the caller's
permissions and institution scope (``RULES``); an RPC expects the typed error of
that status (401 -> NotAuthenticated, 403 -> PermissionDenied, 404 -> NotFound, ...).

Columns (``WHO``): the demo users admin, supervisor, gestor1, abogado and cliente; a
partner system calling with an API key of an Integración user bound to institution
1; an administrator scoped to institution 1 holding only ``users.manage``; an
anonymous caller; and a forged credential (a made-up bearer token; an identity
signed with the wrong key).

A later feature adds its endpoints as rows; ``test_every_api_route_is_in_the_table``
fails until it does. Rows that change state act on throwaway users, profiles, teams
and keys created for this module (names starting ``matriz``), removed at the end.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable

import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine, text

from auth.contracts import PERMISSIONS
from auth.permissions import DEFAULT_PROFILES
from auth.seed import DEMO_USERS
from recaudo_common.config import SERVICES, settings
from recaudo_common.errors import (Conflict, InvalidInput, NotAuthenticated, NotFound,
                                   PermissionDenied, Throttled)
from recaudo_common.identity import Identity, sign

RUN = secrets.token_hex(3)            # this run's throwaway names never clash with another's
PASSWORD = "matriz-clave-segura-2024"


# --- who calls ------------------------------------------------------------------------

@dataclass(frozen=True)
class Who:
    key: str
    permissions: frozenset = frozenset()
    #: the caller's institutions; None: every institution
    institutions: tuple | None = ()
    #: "token" (POST /auth/token), "key" (an API key), "none", "forged"
    credential: str = "token"

    @property
    def authenticated(self) -> bool:
        return self.credential in ("token", "key")

    def may_reach(self, institutions: tuple | None) -> bool:
        """An object bound to ``institutions`` (None: an all-institution user)."""
        if self.institutions is None:
            return True
        return institutions is not None and set(institutions) <= set(self.institutions)


def _demo(username: str) -> Who:
    _, profile, institutions = DEMO_USERS[username]
    return Who(username, frozenset(DEFAULT_PROFILES[profile][1]), institutions)


WHO = {w.key: w for w in (
    *(_demo(u) for u in ("admin", "supervisor", "gestor1", "abogado", "cliente")),
    Who("integracion", frozenset(DEFAULT_PROFILES["Integración"][1]), (1,), "key"),
    Who("adminlocal", frozenset({"users.manage"}), (1,)),
    Who("anonymous", credential="none"),
    Who("forged", credential="forged"),
)}
GESTOR = frozenset(DEFAULT_PROFILES["Gestor"][1])
INTEGRACION = frozenset(DEFAULT_PROFILES["Integración"][1])


# --- rules: the expected status of a row for a caller ------------------------------------

class Rule:
    def __init__(self, decide: Callable[[Who], int], overrides: dict | None = None,
                 label: str = ""):
        self.decide, self.overrides, self.label = decide, dict(overrides or {}), label

    def __call__(self, who: Who) -> int:
        return self.overrides.get(who.key) or self.decide(who)

    def but(self, **overrides: int) -> "Rule":
        """The same rule with explicit answers for some columns (say why at the row)."""
        return Rule(self.decide, {**self.overrides, **overrides}, self.label)

    def __repr__(self):
        return self.label


EVERY_INSTITUTION = object()  # ``reach`` default: the target is in everybody's reach


class RULES:
    @staticmethod
    def fixed(status: int) -> Rule:
        """Everybody, even with a forged credential (paths the gateway never resolves)."""
        return Rule(lambda who: status, label=f"fixed({status})")

    @staticmethod
    def public(status: int = 200) -> Rule:
        """No credentials needed; a bad one is still refused."""
        return Rule(lambda who: 401 if who.credential == "forged" else status,
                    label=f"public({status})")

    @staticmethod
    def authenticated(status: int = 200) -> Rule:
        return Rule(lambda who: status if who.authenticated else 401,
                    label=f"authenticated({status})")

    @staticmethod
    def perm(permission: str, status: int = 200, *, reach=EVERY_INSTITUTION,
             holds=()) -> Rule:
        """``permission`` required (403); ``reach``: the institutions of the user the row
        acts on (None: an all-institution user), outside the caller's scope 404;
        ``holds``: permissions the row hands out, which the caller must hold too (403)."""
        assert permission in PERMISSIONS and set(holds) <= set(PERMISSIONS)

        def decide(who: Who) -> int:
            if not who.authenticated:
                return 401
            if permission not in who.permissions:
                return 403
            if reach is not EVERY_INSTITUTION and not who.may_reach(reach):
                return 404
            if not set(holds) <= who.permissions:
                return 403
            return status

        return Rule(decide, label=f"perm({permission})")

    @staticmethod
    def institution(institution_id: int, status: int = 200) -> Rule:
        """Out of the caller's institution scope answers exactly like missing."""
        def decide(who: Who) -> int:
            if not who.authenticated:
                return 401
            return status if who.institutions is None or institution_id in who.institutions \
                else 404

        return Rule(decide, label=f"institution({institution_id})")


# --- the table ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    name: str
    method: str                 # GET, POST, ... or "RPC"
    path: str                   # "/api/v1/users/{user_id}" or "auth.get_user"
    body: Any                   # JSON body / RPC args: a value, or fn(world, uniq)
    rule: Rule
    #: fills the path's {placeholders}: fn(world) -> dict
    params: Callable | None = None
    #: the call ends the credential it uses (logout): use a fresh one
    fresh_credentials: bool = False
    #: further assertions on an allowed answer: fn(world, who, answer)
    check: Callable | None = None
    #: a query string for the call (the path stays the route OpenAPI names): fn(world) -> str
    query: Callable | None = None
    #: a page of the web UI: the body is sent as a form, a redirect is the answer
    page: bool = False


def _user(name):
    return lambda w: {"user_id": w.ids[name]}


def _new_user_body(w, uniq):
    return {"username": f"matriz-{uniq}", "display_name": "Usuario de la matriz",
            "password": PASSWORD, "profile_id": w.profiles["Gestor"], "institutions": [1]}


def _profile_body(w, uniq):
    return {"name": f"Matriz perfil {uniq}", "permissions": ["reports.view"]}


def _team_body(w, uniq):
    return {"name": f"Matriz equipo {uniq}", "supervisor_id": w.ids["supervisor"],
            "members": [w.ids["gestor2"]]}


def _check_me(w, who, me):
    assert me["institutions"] == ([] if who.institutions is None else list(who.institutions))
    assert me["all_institutions"] is (who.institutions is None)


def _check_institutions(w, who, listed):
    ids = [i["id"] for i in listed]
    if who.institutions is None:
        assert {1, 2, 3} <= set(ids)
    else:
        assert sorted(ids) == sorted(who.institutions)   # cliente: only 1


def _check_users_in_reach(w, who, page):
    for user in page["items"]:
        assert who.may_reach(None if user["all_institutions"] else tuple(user["institutions"])), user


def _check_keys_hidden(w, who, keys):
    assert keys and all("key" not in k for k in keys)


def _check_key_shown_once(w, who, created):
    assert created["key"].startswith("rk_")


USERS_MANAGE = "users.manage"
PASSWORD_CHANGE = {"current_password": "no-es-la-actual", "new_password": "otra-clave-muy-larga"}

TABLE = [
    # --- my account --------------------------------------------------------------------
    Row("me", "GET", "/api/v1/auth/me", None, RULES.authenticated(), check=_check_me),
    Row("me.update", "PATCH", "/api/v1/auth/me", {"language": "es"}, RULES.authenticated()),
    # a wrong current password: reachable by every signed-in caller, changes nothing
    Row("me.password", "POST", "/api/v1/auth/password", PASSWORD_CHANGE,
        RULES.authenticated(422)),
    Row("logout", "POST", "/api/v1/auth/logout", None, RULES.authenticated(204),
        fresh_credentials=True),
    Row("token.bad-input", "POST", "/api/v1/auth/token", {}, RULES.public(422)),
    Row("refresh.unknown", "POST", "/api/v1/auth/refresh", {"refresh_token": "rt_no-existe"},
        RULES.public(401)),
    Row("permissions", "GET", "/api/v1/permissions", None, RULES.authenticated()),
    # --- users -----------------------------------------------------------------------------
    Row("users.list", "GET", "/api/v1/users", None, RULES.perm(USERS_MANAGE),
        check=_check_users_in_reach),
    Row("users.create", "POST", "/api/v1/users", _new_user_body,
        RULES.perm(USERS_MANAGE, 201, holds=GESTOR)),
    Row("users.get.cliente", "GET", "/api/v1/users/{user_id}", None,
        RULES.perm(USERS_MANAGE, reach=(1,)), params=_user("cliente")),
    # a scoped admin cannot read an all-institution user, nor one of institutions 1 and 2
    Row("users.get.all-institution", "GET", "/api/v1/users/{user_id}", None,
        RULES.perm(USERS_MANAGE, reach=None), params=_user("admin")),
    Row("users.get.two-institutions", "GET", "/api/v1/users/{user_id}", None,
        RULES.perm(USERS_MANAGE, reach=(1, 2)), params=_user("gestor1")),
    Row("users.update", "PATCH", "/api/v1/users/{user_id}",
        {"display_name": "Cambiado por la matriz"},
        RULES.perm(USERS_MANAGE, reach=(1,)), params=_user("throwaway")),
    Row("users.disable", "POST", "/api/v1/users/{user_id}/disable", None,
        RULES.perm(USERS_MANAGE, reach=(1,)), params=_user("throwaway")),
    Row("users.enable", "POST", "/api/v1/users/{user_id}/enable", None,
        RULES.perm(USERS_MANAGE, reach=(1,)), params=_user("disabled")),
    Row("users.unlock", "POST", "/api/v1/users/{user_id}/unlock", None,
        RULES.perm(USERS_MANAGE, reach=(1,)), params=_user("throwaway")),
    # a new password is the user's permissions: only for who holds them all
    Row("users.password", "POST", "/api/v1/users/{user_id}/password",
        {"password": "nueva-clave-de-la-matriz"},
        RULES.perm(USERS_MANAGE, reach=(1,), holds=GESTOR), params=_user("throwaway")),
    # --- profiles --------------------------------------------------------------------------
    Row("profiles.list", "GET", "/api/v1/profiles", None, RULES.perm(USERS_MANAGE)),
    Row("profiles.create", "POST", "/api/v1/profiles", _profile_body,
        RULES.perm(USERS_MANAGE, 201, holds={"reports.view"})),
    Row("profiles.update", "PUT", "/api/v1/profiles/{profile_id}",
        lambda w, uniq: w.throwaway_profile, RULES.perm(USERS_MANAGE),
        params=lambda w: {"profile_id": w.throwaway_profile_id}),
    # unchanged, yet refused to the scoped admin: all-institution users hold that profile
    Row("profiles.update.held-out-of-reach", "PUT", "/api/v1/profiles/{profile_id}",
        lambda w, uniq: w.administrador, RULES.perm(USERS_MANAGE).but(adminlocal=403),
        params=lambda w: {"profile_id": w.profiles["Administrador"]}),
    # --- teams (the supervisor is an all-institution user) ------------------------------
    Row("teams.list", "GET", "/api/v1/teams", None, RULES.authenticated()),
    Row("teams.create", "POST", "/api/v1/teams", _team_body,
        RULES.perm(USERS_MANAGE, 201, reach=None)),
    Row("teams.update", "PUT", "/api/v1/teams/{team_id}",
        lambda w, uniq: {**_team_body(w, uniq), "name": f"Matriz equipo {RUN}"},
        RULES.perm(USERS_MANAGE, reach=None), params=lambda w: {"team_id": w.team_id}),
    # --- API keys ----------------------------------------------------------------------------
    Row("api-keys.list", "GET", "/api/v1/api-keys", None, RULES.perm(USERS_MANAGE),
        check=_check_keys_hidden),
    Row("api-keys.create", "POST", "/api/v1/api-keys",
        lambda w, uniq: {"user_id": w.ids["integracion"], "name": f"matriz {uniq}"},
        RULES.perm(USERS_MANAGE, 201, reach=(1,), holds=INTEGRACION),
        check=_check_key_shown_once),
    Row("api-keys.revoke", "DELETE", "/api/v1/api-keys/{key_id}", None,
        RULES.perm(USERS_MANAGE, reach=(1,)), params=lambda w: {"key_id": w.throwaway_key_id}),
    # --- audit -------------------------------------------------------------------------------
    Row("audit", "GET", "/api/v1/audit", None, RULES.perm("audit.view")),
    # --- institutions: out of scope answers like missing ------------------------------------
    Row("institutions.list", "GET", "/api/v1/institutions", None, RULES.authenticated(),
        check=_check_institutions),
    *(Row(f"institutions.get.{i}", "GET", "/api/v1/institutions/{institution_id}", None,
          RULES.institution(i), params=lambda w, i=i: {"institution_id": i})
      for i in (1, 2, 3)),
    Row("institutions.get.missing", "GET", "/api/v1/institutions/{institution_id}", None,
        RULES.authenticated(404), params=lambda w: {"institution_id": 99999}),
    # --- system and documentation ----------------------------------------------------------
    Row("system.health", "GET", "/api/v1/system/health", None, RULES.public()),
    Row("system.ping", "GET", "/api/v1/system/ping/{service}", None, RULES.public(),
        params=lambda w: {"service": "auth"}),
    Row("openapi", "GET", "/api/v1/openapi.json", None, RULES.fixed(200)),
    Row("docs", "GET", "/api/v1/docs", None, RULES.fixed(200)),

    # --- the same rules, straight to the services over RabbitMQ ---------------------------
    Row("rpc.me", "RPC", "auth.me", [], RULES.authenticated()),
    Row("rpc.update_me", "RPC", "auth.update_me", [{"language": "es"}], RULES.authenticated()),
    Row("rpc.change_password", "RPC", "auth.change_password", [PASSWORD_CHANGE],
        RULES.authenticated(422)),
    Row("rpc.list_permissions", "RPC", "auth.list_permissions", [], RULES.authenticated()),
    Row("rpc.list_profiles", "RPC", "auth.list_profiles", [], RULES.perm(USERS_MANAGE)),
    Row("rpc.create_profile", "RPC", "auth.create_profile",
        lambda w, uniq: [_profile_body(w, uniq)],
        RULES.perm(USERS_MANAGE, holds={"reports.view"})),
    Row("rpc.update_profile", "RPC", "auth.update_profile",
        lambda w, uniq: [w.throwaway_profile_id, w.throwaway_profile], RULES.perm(USERS_MANAGE)),
    Row("rpc.list_users", "RPC", "auth.list_users", [{}], RULES.perm(USERS_MANAGE)),
    Row("rpc.get_user.all-institution", "RPC", "auth.get_user",
        lambda w, uniq: [w.ids["admin"]], RULES.perm(USERS_MANAGE, reach=None)),
    Row("rpc.create_user", "RPC", "auth.create_user",
        lambda w, uniq: [_new_user_body(w, uniq)], RULES.perm(USERS_MANAGE, holds=GESTOR)),
    Row("rpc.update_user", "RPC", "auth.update_user",
        lambda w, uniq: [w.ids["throwaway"], {"display_name": "Cambiado por RPC"}],
        RULES.perm(USERS_MANAGE, reach=(1,))),
    Row("rpc.disable_user", "RPC", "auth.disable_user", lambda w, uniq: [w.ids["throwaway"]],
        RULES.perm(USERS_MANAGE, reach=(1,))),
    Row("rpc.enable_user", "RPC", "auth.enable_user", lambda w, uniq: [w.ids["disabled"]],
        RULES.perm(USERS_MANAGE, reach=(1,))),
    Row("rpc.unlock_user", "RPC", "auth.unlock_user", lambda w, uniq: [w.ids["throwaway"]],
        RULES.perm(USERS_MANAGE, reach=(1,))),
    Row("rpc.reset_password", "RPC", "auth.reset_password",
        lambda w, uniq: [w.ids["throwaway"], {"password": "nueva-clave-de-la-matriz"}],
        RULES.perm(USERS_MANAGE, reach=(1,), holds=GESTOR)),
    Row("rpc.list_teams", "RPC", "auth.list_teams", [], RULES.authenticated()),
    Row("rpc.user_names", "RPC", "auth.user_names", [[1, 2, 3]], RULES.authenticated()),
    Row("rpc.save_team.create", "RPC", "auth.save_team", lambda w, uniq: [_team_body(w, uniq)],
        RULES.perm(USERS_MANAGE, reach=None)),
    Row("rpc.save_team.update", "RPC", "auth.save_team",
        lambda w, uniq: [{**_team_body(w, uniq), "name": f"Matriz equipo {RUN}"}, w.team_id],
        RULES.perm(USERS_MANAGE, reach=None)),
    Row("rpc.list_api_keys", "RPC", "auth.list_api_keys", [], RULES.perm(USERS_MANAGE)),
    Row("rpc.create_api_key", "RPC", "auth.create_api_key",
        lambda w, uniq: [{"user_id": w.ids["integracion"], "name": f"matriz {uniq}"}],
        RULES.perm(USERS_MANAGE, reach=(1,), holds=INTEGRACION)),
    Row("rpc.revoke_api_key", "RPC", "auth.revoke_api_key",
        lambda w, uniq: [w.throwaway_key_id], RULES.perm(USERS_MANAGE, reach=(1,))),
    Row("rpc.list_audit", "RPC", "auth.list_audit", [{}], RULES.perm("audit.view")),
    Row("rpc.list_institutions", "RPC", "portfolio.list_institutions", [],
        RULES.authenticated(), check=_check_institutions),
    *(Row(f"rpc.get_institution.{i}", "RPC", "portfolio.get_institution", [i],
          RULES.institution(i)) for i in (1, 2, 3)),
]

# --- the portfolio: accounts, debtors, notes, statuses, import layouts and imports ----------
# Rows act on demo portfolio objects looked up once in the test database (``_portfolio``);
# state-changing rows either change nothing (an update with the same values, a duplicate
# answering 409, a missing job) or create objects named "matriz…", removed at the end.

PORTFOLIO_READ = "portfolio.read"
PORTFOLIO_WRITE = "portfolio.write"
PORTFOLIO_IMPORT = "portfolio.import"
INSTITUTIONS_MANAGE = "institutions.manage"
LAYOUT_FIELDS = ("institution_id", "name", "kind", "file_format", "encoding", "delimiter",
                 "date_format", "decimal_separator", "thousands_separator", "columns",
                 "required")


def _portfolio(w) -> dict:
    """Accounts (id, debtor id) by institution and collector, and statuses, of the demo data."""
    if getattr(w, "portfolio", None) is None:
        engine = create_engine(settings().database_url)
        with engine.connect() as conn:
            def account(institution_id, agent):
                return conn.execute(text(
                    "SELECT id, debtor_id FROM portfolio.accounts WHERE institution_id = :i "
                    "AND assigned_agent_id = :a AND lawyer_id IS NULL ORDER BY id LIMIT 1"),
                    {"i": institution_id, "a": agent}).one()

            def status(institution_id):
                row = conn.execute(text(
                    "SELECT id, institution_id, code, name, sort_order, active "
                    "FROM portfolio.statuses WHERE institution_id = :i AND code = 'NUEVA'"),
                    {"i": institution_id}).one()
                return dict(row._mapping)

            w.portfolio = {
                "i1_gestor1": account(1, w.ids["gestor1"]),
                "i1_gestor2": account(1, w.ids["gestor2"]),
                "i2_gestor1": account(2, w.ids["gestor1"]),
                "status_i2": status(2),
            }
        engine.dispose()
    return w.portfolio


def _account(key):
    return lambda w: {"account_id": _portfolio(w)[key][0]}


def _debtor(key):
    return lambda w: {"debtor_id": _portfolio(w)[key][1]}


def _lift_unmarked(w, uniq):
    """Lift a do-not-call mark the i2_gestor1 debtor's phone does not have: 409 for who
    may lift marks and reach the debtor, and nothing changes."""
    engine = create_engine(settings().database_url)
    with engine.connect() as conn:
        phone = conn.execute(text("SELECT id FROM portfolio.phones WHERE debtor_id = :d "
                                  "AND NOT do_not_call ORDER BY id LIMIT 1"),
                             {"d": _portfolio(w)["i2_gestor1"][1]}).scalar_one()
    engine.dispose()
    return {"channel": "phone", "contact_id": phone, "do_not_contact": False,
            "reason": "matriz de acceso"}


def _status_body(w, uniq):
    return {k: v for k, v in _portfolio(w)["status_i2"].items() if k != "id"}


class PORTFOLIO_RULES:
    @staticmethod
    def reads(institution_id: int, assigned_to: str, status: int = 200, *,
              permission: str = PORTFOLIO_READ) -> Rule:
        """An account (or its debtor) of ``institution_id`` assigned to ``assigned_to``:
        ``permission`` (403), then institution scope, then — without portfolio.read_all —
        only the collector it is assigned to; everything out of reach answers 404."""
        def decide(who: Who) -> int:
            if not who.authenticated:
                return 401
            if permission not in who.permissions or PORTFOLIO_READ not in who.permissions:
                return 403
            if not who.may_reach((institution_id,)):
                return 404
            if "portfolio.read_all" not in who.permissions and who.key != assigned_to:
                return 404
            return status

        return Rule(decide, label=f"reads({institution_id}, {assigned_to}, {permission})")

    @staticmethod
    def in_institution(permission: str, institution_id: int, status: int = 200) -> Rule:
        """``permission`` first (403), then the institution's scope (404)."""
        return RULES.perm(permission, status, reach=(institution_id,))


def _check_accounts_in_reach(w, who, page):
    assert page["items"], "the demo portfolio has accounts for every reader"
    for item in page["items"]:
        assert who.may_reach((item["institution_id"],)), item
        if "portfolio.read_all" not in who.permissions and who.key.startswith("gestor"):
            assert item["assigned_agent_id"] == w.ids[who.key], item   # only theirs
        # (the lawyer sees the accounts whose lawyer_id is theirs; rows do not carry it)


def _check_jobs_in_reach(w, who, page):
    for job in page["items"]:
        assert who.may_reach((job["institution_id"],)), job


def _imports(w) -> dict:
    """Layouts of institutions 1 and 2 and a queued job of institution 2."""
    if getattr(w, "imports", None) is None:
        admin = w.tokens["admin"]
        layouts = {i: w.ok("GET", f"/api/v1/institutions/{i}/import-layouts", admin)
                   for i in (1, 2)}
        created = w.ok("POST", "/api/v1/imports", admin, {
            "layout_id": layouts[2][0]["id"], "file_name": f"matriz-{RUN}.csv",
            "size_bytes": 10})
        w.imports = {"layout_i1": layouts[1][0], "layout_i2": layouts[2][0],
                     "job_i2": created["job"]["id"]}
    return w.imports


def _layout_body(layout: dict, **changes) -> dict:
    return {**{k: layout[k] for k in LAYOUT_FIELDS if k in layout}, **changes}


@pytest.fixture(scope="module", autouse=True)
def _remove_portfolio_throwaways():
    """What the portfolio rows created: import jobs and layouts named "matriz…"."""
    yield
    engine = create_engine(settings().database_url)
    jobs = "SELECT id FROM portfolio.import_jobs WHERE file_name LIKE 'matriz-%'"
    with engine.begin() as conn:
        for statement in (
                f"DELETE FROM portfolio.import_problems WHERE job_id IN ({jobs})",
                "DELETE FROM portfolio.import_jobs WHERE file_name LIKE 'matriz-%'",
                "DELETE FROM portfolio.import_layouts l WHERE name LIKE 'Matriz %' AND NOT "
                "EXISTS (SELECT 1 FROM portfolio.import_jobs j WHERE j.layout_id = l.id)"):
            conn.execute(text(statement))
    engine.dispose()


TABLE.extend([
    # --- accounts ("ver cartera") and the debtor's 360° view -----------------------------
    Row("portfolio.accounts.list", "GET", "/api/v1/accounts", None,
        RULES.perm(PORTFOLIO_READ), check=_check_accounts_in_reach),
    Row("portfolio.accounts.get.i1-gestor1", "GET", "/api/v1/accounts/{account_id}", None,
        PORTFOLIO_RULES.reads(1, "gestor1"), params=_account("i1_gestor1")),
    # a collector does not see a colleague's account of their own institution
    Row("portfolio.accounts.get.i1-gestor2", "GET", "/api/v1/accounts/{account_id}", None,
        PORTFOLIO_RULES.reads(1, "gestor2"), params=_account("i1_gestor2")),
    # cross-institution: the creditor and the partner (institution 1) get 404
    Row("portfolio.accounts.get.i2", "GET", "/api/v1/accounts/{account_id}", None,
        PORTFOLIO_RULES.reads(2, "gestor1"), params=_account("i2_gestor1")),
    # an update that changes nothing; gestor1 (no portfolio.write) is refused 403
    Row("portfolio.accounts.update", "PATCH", "/api/v1/accounts/{account_id}", {},
        PORTFOLIO_RULES.reads(1, "gestor1", permission=PORTFOLIO_WRITE),
        params=_account("i1_gestor1")),
    Row("portfolio.accounts.update.i2", "PATCH", "/api/v1/accounts/{account_id}", {},
        PORTFOLIO_RULES.reads(2, "gestor1", permission=PORTFOLIO_WRITE),
        params=_account("i2_gestor1")),
    Row("portfolio.debtors.get.i1", "GET", "/api/v1/debtors/{debtor_id}", None,
        PORTFOLIO_RULES.reads(1, "gestor1"), params=_debtor("i1_gestor1")),
    # cliente GET an institution-2 debtor -> 404
    Row("portfolio.debtors.get.i2", "GET", "/api/v1/debtors/{debtor_id}", None,
        PORTFOLIO_RULES.reads(2, "gestor1"), params=_debtor("i2_gestor1")),
    Row("portfolio.debtors.get.missing", "GET", "/api/v1/debtors/{debtor_id}", None,
        RULES.perm(PORTFOLIO_READ, 404), params=lambda w: {"debtor_id": 999_999_999}),
    Row("portfolio.debtors.notes", "PUT", "/api/v1/debtors/{debtor_id}/notes", {"notes": ""},
        PORTFOLIO_RULES.reads(2, "gestor1", 204, permission=PORTFOLIO_WRITE),
        params=_debtor("i2_gestor1")),
    # lifting a mark takes portfolio.write; this phone has none (409, nothing changes)
    Row("portfolio.debtors.do-not-contact.i2", "POST", "/api/v1/debtors/{debtor_id}/do-not-contact",
        _lift_unmarked, PORTFOLIO_RULES.reads(2, "gestor1", 409, permission=PORTFOLIO_WRITE),
        params=_debtor("i2_gestor1")),
    # --- statuses ------------------------------------------------------------------------------
    *(Row(f"portfolio.statuses.list.{i}", "GET", "/api/v1/institutions/{institution_id}/statuses",
          None, RULES.institution(i), params=lambda w, i=i: {"institution_id": i})
      for i in (1, 2, 3)),
    # the code exists already: 409 for who may manage the catalogue, nothing is created
    Row("portfolio.statuses.create.duplicate", "POST", "/api/v1/statuses", _status_body,
        PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2, 409)),
    Row("portfolio.statuses.update.unchanged", "PUT", "/api/v1/statuses/{status_id}",
        _status_body, PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2),
        params=lambda w: {"status_id": _portfolio(w)["status_i2"]["id"]}),
    # --- import layouts and imports -------------------------------------------------------------
    *(Row(f"portfolio.import-layouts.list.{i}", "GET",
          "/api/v1/institutions/{institution_id}/import-layouts", None,
          PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, i),
          params=lambda w, i=i: _imports(w) and {"institution_id": i})
      for i in (1, 2)),
    Row("portfolio.import-layouts.create", "POST", "/api/v1/import-layouts",
        lambda w, uniq: _layout_body(_imports(w)["layout_i2"], name=f"Matriz {uniq}"[:80]),
        PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2, 201)),
    Row("portfolio.import-layouts.update.unchanged", "PUT", "/api/v1/import-layouts/{layout_id}",
        lambda w, uniq: _layout_body(_imports(w)["layout_i2"]),
        PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2),
        params=lambda w: {"layout_id": _imports(w)["layout_i2"]["id"]}),
    Row("portfolio.imports.list", "GET", "/api/v1/imports", None,
        RULES.perm(PORTFOLIO_IMPORT), params=lambda w: _imports(w) and {},
        check=_check_jobs_in_reach),
    # cliente POST an import for an institution-2 layout -> 403 (no portfolio.import);
    # the partner of institution 1 -> 404
    Row("portfolio.imports.create.i2", "POST", "/api/v1/imports",
        lambda w, uniq: {"layout_id": _imports(w)["layout_i2"]["id"],
                         "file_name": f"matriz-{uniq}.csv", "size_bytes": 10},
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2, 201)),
    # the multipart upload without a form: 422 at the gateway, before any service
    Row("portfolio.imports.upload.no-form", "POST", "/api/v1/imports/upload", None,
        RULES.authenticated(422)),
    Row("portfolio.imports.start.missing", "POST", "/api/v1/imports/{job_id}/start", None,
        RULES.perm(PORTFOLIO_IMPORT, 404),
        params=lambda w: _imports(w) and {"job_id": 999_999_999}),
    Row("portfolio.imports.get.i2", "GET", "/api/v1/imports/{job_id}", None,
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2),
        params=lambda w: {"job_id": _imports(w)["job_i2"]}),
    Row("portfolio.imports.problems.i2", "GET", "/api/v1/imports/{job_id}/problems", None,
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2),
        params=lambda w: {"job_id": _imports(w)["job_i2"]}),
    Row("portfolio.imports.report.i2", "GET", "/api/v1/imports/{job_id}/report.csv", None,
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2),
        params=lambda w: {"job_id": _imports(w)["job_i2"]}),
    # --- the same, straight to the portfolio service -------------------------------------------
    Row("rpc.portfolio.list_statuses.2", "RPC", "portfolio.list_statuses", [2],
        RULES.institution(2)),
    Row("rpc.portfolio.save_status.duplicate", "RPC", "portfolio.save_status",
        lambda w, uniq: [_status_body(w, uniq)],
        PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2, 409)),
    Row("rpc.portfolio.list_accounts", "RPC", "portfolio.list_accounts", [{}],
        RULES.perm(PORTFOLIO_READ)),
    Row("rpc.portfolio.get_account.i2", "RPC", "portfolio.get_account",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][0]], PORTFOLIO_RULES.reads(2, "gestor1")),
    Row("rpc.portfolio.get_contact_view.i2", "RPC", "portfolio.get_contact_view",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][0]], PORTFOLIO_RULES.reads(2, "gestor1")),
    Row("rpc.portfolio.get_debtor.i2", "RPC", "portfolio.get_debtor",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][1]], PORTFOLIO_RULES.reads(2, "gestor1")),
    Row("rpc.portfolio.debtor_scope.i2", "RPC", "portfolio.debtor_scope",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][1]], PORTFOLIO_RULES.reads(2, "gestor1")),
    Row("rpc.portfolio.update_account.i1", "RPC", "portfolio.update_account",
        lambda w, uniq: [_portfolio(w)["i1_gestor1"][0], {}],
        PORTFOLIO_RULES.reads(1, "gestor1", permission=PORTFOLIO_WRITE)),
    Row("rpc.portfolio.update_notes.i2", "RPC", "portfolio.update_notes",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][1], {"notes": ""}],
        PORTFOLIO_RULES.reads(2, "gestor1", permission=PORTFOLIO_WRITE)),
    Row("rpc.portfolio.set_do_not_contact.i2", "RPC", "portfolio.set_do_not_contact",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][1], _lift_unmarked(w, uniq)],
        PORTFOLIO_RULES.reads(2, "gestor1", 409, permission=PORTFOLIO_WRITE)),
    Row("rpc.portfolio.import_catalogue", "RPC", "portfolio.import_catalogue", [],
        RULES.perm(PORTFOLIO_IMPORT)),
    Row("rpc.portfolio.list_layouts.2", "RPC", "portfolio.list_layouts", [2],
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2)),
    Row("rpc.portfolio.get_layout.i2", "RPC", "portfolio.get_layout",
        lambda w, uniq: [_imports(w)["layout_i2"]["id"]],
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2)),
    Row("rpc.portfolio.save_layout.unchanged", "RPC", "portfolio.save_layout",
        lambda w, uniq: [_layout_body(_imports(w)["layout_i2"]), _imports(w)["layout_i2"]["id"]],
        PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2)),
    Row("rpc.portfolio.create_import.i2", "RPC", "portfolio.create_import",
        lambda w, uniq: [{"layout_id": _imports(w)["layout_i2"]["id"],
                          "file_name": f"matriz-{uniq}.csv", "size_bytes": 10}],
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2)),
    # the job's file was never uploaded: 422 for who may reach it, and nothing starts
    Row("rpc.portfolio.start_import.not-uploaded", "RPC", "portfolio.start_import",
        lambda w, uniq: [_imports(w)["job_i2"]],
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2, 422)),
    Row("rpc.portfolio.get_import.i2", "RPC", "portfolio.get_import",
        lambda w, uniq: [_imports(w)["job_i2"]],
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2)),
    Row("rpc.portfolio.list_imports", "RPC", "portfolio.list_imports", [{}],
        RULES.perm(PORTFOLIO_IMPORT), check=_check_jobs_in_reach),
    Row("rpc.portfolio.import_problems.i2", "RPC", "portfolio.import_problems",
        lambda w, uniq: [_imports(w)["job_i2"]],
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2)),
    Row("rpc.portfolio.import_report_csv.i2", "RPC", "portfolio.import_report_csv",
        lambda w, uniq: [_imports(w)["job_i2"]],
        PORTFOLIO_RULES.in_institution(PORTFOLIO_IMPORT, 2)),
    # the queues service's resync reads facts page by page: queues.manage, in scope
    Row("rpc.portfolio.account_facts_page.2", "RPC", "portfolio.account_facts_page",
        [2, 0, 10], PORTFOLIO_RULES.in_institution("queues.manage", 2)),
])


# --- the collection queues: strategies, board, moves, next account, worklist ----------------
# Only all-institution users hold queues.manage among the columns, so out of reach answers
# 403 before scope matters (the scoped supervisor is covered by test_queues_api). The rows
# act on strategies of institution 2 named "Matriz…" whose one queue takes no account, so
# applying and rebuilding move nothing; ``_queues`` also archives strategies other suites
# left active elsewhere and ends the demo collectors' leases, so "next" deterministically
# has nothing to hand anyone (204). What the rows create is removed at the end.

QUEUES_MANAGE = "queues.manage"
QUEUES_WORK = "queues.work"
NOT_AN_ACCOUNT = 999_999_999


def _queues_body(w, name: str) -> dict:
    return {"institution_id": 2, "name": name, "queues": [{
        "name": "Matriz", "team_id": w.team_id, "policy": "round_robin",
        "conditions": {"all": [{"field": "status_id", "op": "eq", "value": -1}]},
        "sort": [{"field": "account_id", "direction": "asc"}]}]}


def _queues(w) -> dict:
    """An applied strategy of institution 2 and a draft beside it (made once, as admin)."""
    if getattr(w, "queues", None) is None:
        import time

        engine = create_engine(settings().database_url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM queues.leases WHERE agent_id = ANY(:a)"),
                         {"a": [w.ids[u] for u in ("admin", "supervisor", "gestor1", "gestor2")]})
            conn.execute(text("UPDATE queues.strategies SET state = 'archived' "
                              "WHERE state = 'active' AND institution_id <> 2"))
        # the module's team (gestor2) reaches the queues service through auth's team_changed
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as conn:
                known = conn.execute(text("SELECT 1 FROM queues.team_members WHERE team_id = :t"),
                                     {"t": w.team_id}).first()
            if known:
                break
            assert time.monotonic() < deadline, "the queues service never learnt the team"
            time.sleep(0.3)
        engine.dispose()
        admin = w.tokens["admin"]
        # the rows apply and rebuild the institution's active strategy as it is, so every
        # account stays where it was: a strategy of their own taking no account would hand
        # every institution-2 account back to no collector (and the rows after these would
        # find gestor1's account out of gestor1's reach); its queues are frozen meanwhile,
        # so a pull finds nothing (and leases nothing other suites' accounts may need)
        active = _active_strategy(w, 2)
        w.queues_frozen = []
        for queue in (active or {}).get("queues", ()):
            if not queue["frozen"]:
                w.ok("POST", f"/api/v1/queues/{queue['id']}/freeze", admin, {"frozen": True})
                w.queues_frozen.append(queue["id"])
        if active is None:
            active = w.ok("POST", "/api/v1/strategies", admin,
                          _queues_body(w, f"Matriz filas {RUN}"))
            w.ok("POST", f"/api/v1/strategies/{active['id']}/apply", admin)
        draft_body = _queues_body(w, f"Matriz borrador {RUN}")
        draft = w.ok("POST", "/api/v1/strategies", admin, draft_body)
        w.queues = {"active": active["id"], "draft": draft["id"], "draft_body": draft_body,
                    "queue": active["queues"][0]["id"]}
    return w.queues


def _active_strategy(w, institution_id: int) -> dict | None:
    """The institution's active strategy with its queues, if it has one."""
    admin = w.tokens["admin"]
    listed = w.ok("GET", f"/api/v1/institutions/{institution_id}/strategies", admin)
    active = next((s for s in listed if s["state"] == "active"), None)
    return active and w.ok("GET", f"/api/v1/strategies/{active['id']}", admin)


def _strategy(key="active"):
    return lambda w: {"strategy_id": _queues(w)[key]}


@pytest.fixture(scope="module", autouse=True)
def _remove_queues_throwaways(world):
    """The queues the rows froze thawed, the strategies they made, and the projection of
    teams auth no longer has."""
    yield
    thaw = getattr(world, "queues_frozen", ())
    admin = world.login("admin") if thaw else None
    for queue_id in thaw:
        world.ok("POST", f"/api/v1/queues/{queue_id}/freeze", admin, {"frozen": False})
    engine = create_engine(settings().database_url)
    with engine.begin() as conn:
        for statement in (
                "UPDATE queues.strategies SET challenger_id = NULL WHERE challenger_id IN "
                "(SELECT id FROM queues.strategies WHERE name LIKE 'Matriz %')",
                "DELETE FROM queues.strategies WHERE name LIKE 'Matriz %'",
                "DELETE FROM queues.team_members WHERE team_id NOT IN (SELECT id FROM auth.teams)"):
            conn.execute(text(statement))
    engine.dispose()


QUEUES_IN_2 = RULES.perm(QUEUES_MANAGE, reach=(2,))

TABLE.extend([
    Row("queues.catalogue", "GET", "/api/v1/queues/catalogue", None, RULES.authenticated()),
    *(Row(f"queues.strategies.list.{i}", "GET", "/api/v1/institutions/{institution_id}/strategies",
          None, RULES.perm(QUEUES_MANAGE, reach=(i,)),
          params=lambda w, i=i: _queues(w) and {"institution_id": i})
      for i in (1, 2, 3)),
    Row("queues.strategies.create.i2", "POST", "/api/v1/strategies",
        lambda w, uniq: _queues(w) and _queues_body(w, f"Matriz {uniq}"[:80]),
        RULES.perm(QUEUES_MANAGE, 201, reach=(2,))),
    Row("queues.strategies.get.i2", "GET", "/api/v1/strategies/{strategy_id}", None, QUEUES_IN_2,
        params=_strategy()),
    # the draft saved again as it is
    Row("queues.strategies.update.i2", "PUT", "/api/v1/strategies/{strategy_id}",
        lambda w, uniq: _queues(w)["draft_body"], QUEUES_IN_2, params=_strategy("draft")),
    Row("queues.strategies.simulate.i2", "POST", "/api/v1/strategies/{strategy_id}/simulate",
        None, QUEUES_IN_2, params=_strategy()),
    # applying the active strategy again re-places nothing (nothing changed since)
    Row("queues.strategies.apply.i2", "POST", "/api/v1/strategies/{strategy_id}/apply", None,
        QUEUES_IN_2, params=_strategy()),
    Row("queues.board.i2", "GET", "/api/v1/strategies/{strategy_id}/board", None, QUEUES_IN_2,
        params=_strategy()),
    # cross-institution: cliente (institution 1, no queues.manage) 403, the all-institution
    # supervisor 200, the scoped admin (users.manage only) 403
    Row("queues.rebuild.i2", "POST", "/api/v1/institutions/{institution_id}/rebuild", None,
        QUEUES_IN_2, params=lambda w: _queues(w) and {"institution_id": 2}),
    Row("queues.resync.i2", "POST", "/api/v1/institutions/{institution_id}/resync", None,
        QUEUES_IN_2, params=lambda w: {"institution_id": 2}),
    Row("queues.freeze.i2", "POST", "/api/v1/queues/{queue_id}/freeze", {"frozen": True},
        QUEUES_IN_2, params=lambda w: {"queue_id": _queues(w)["queue"]}),
    # an account in no queue of institution 2: 422 for who may move, nothing moves
    Row("queues.move.unknown-account", "POST", "/api/v1/queues/move",
        lambda w, uniq: {"account_ids": [NOT_AN_ACCOUNT], "queue_id": _queues(w)["queue"]},
        RULES.perm(QUEUES_MANAGE, 422, reach=(2,))),
    # the module's inactive user holds no account: 0 moved
    Row("queues.reassign.nobodys", "POST", "/api/v1/queues/reassign",
        lambda w, uniq: {"from_agent_id": w.ids["disabled"], "to_agent_id": None},
        RULES.perm(QUEUES_MANAGE)),
    Row("queues.next.nothing", "POST", "/api/v1/queues/next", None, RULES.perm(QUEUES_WORK, 204),
        params=lambda w: _queues(w) and {}),
    # nobody holds it: 404 for every signed-in caller (releasing needs no permission: only
    # the holder's own lease ends)
    Row("queues.release.not-held", "POST", "/api/v1/queues/release/{account_id}", None,
        RULES.perm(QUEUES_WORK, 404), params=lambda w: {"account_id": NOT_AN_ACCOUNT}),
    Row("queues.worklist", "GET", "/api/v1/worklist", None, RULES.perm(QUEUES_WORK)),
    # --- the same, straight to the queues service ---------------------------------------------
    Row("rpc.queues.condition_catalogue", "RPC", "queues.condition_catalogue", [],
        RULES.authenticated()),
    Row("rpc.queues.list_strategies.2", "RPC", "queues.list_strategies",
        lambda w, uniq: _queues(w) and [2], QUEUES_IN_2),
    Row("rpc.queues.list_strategies.3", "RPC", "queues.list_strategies", [3],
        RULES.perm(QUEUES_MANAGE, reach=(3,))),
    Row("rpc.queues.get_strategy.i2", "RPC", "queues.get_strategy",
        lambda w, uniq: [_queues(w)["active"]], QUEUES_IN_2),
    Row("rpc.queues.save_strategy.draft", "RPC", "queues.save_strategy",
        lambda w, uniq: [_queues(w)["draft_body"], _queues(w)["draft"]], QUEUES_IN_2),
    Row("rpc.queues.simulate_strategy.i2", "RPC", "queues.simulate_strategy",
        lambda w, uniq: [_queues(w)["active"]], QUEUES_IN_2),
    Row("rpc.queues.apply_strategy.i2", "RPC", "queues.apply_strategy",
        lambda w, uniq: [_queues(w)["active"]], QUEUES_IN_2),
    Row("rpc.queues.rebuild_queues.2", "RPC", "queues.rebuild_queues",
        lambda w, uniq: _queues(w) and [2], QUEUES_IN_2),
    Row("rpc.queues.resync_facts.2", "RPC", "queues.resync_facts", [2], QUEUES_IN_2),
    Row("rpc.queues.queue_board.i2", "RPC", "queues.queue_board",
        lambda w, uniq: [_queues(w)["active"]], QUEUES_IN_2),
    Row("rpc.queues.freeze_queue.i2", "RPC", "queues.freeze_queue",
        lambda w, uniq: [_queues(w)["queue"], True], QUEUES_IN_2),
    Row("rpc.queues.move_accounts.unknown-account", "RPC", "queues.move_accounts",
        lambda w, uniq: [{"account_ids": [NOT_AN_ACCOUNT], "queue_id": _queues(w)["queue"]}],
        RULES.perm(QUEUES_MANAGE, 422, reach=(2,))),
    Row("rpc.queues.reassign_agent.nobodys", "RPC", "queues.reassign_agent",
        lambda w, uniq: [{"from_agent_id": w.ids["disabled"], "to_agent_id": None}],
        RULES.perm(QUEUES_MANAGE)),
    Row("rpc.queues.next_account.nothing", "RPC", "queues.next_account",
        lambda w, uniq: _queues(w) and [], RULES.perm(QUEUES_WORK, 204)),
    Row("rpc.queues.release_account.not-held", "RPC", "queues.release_account",
        [NOT_AN_ACCOUNT], RULES.perm(QUEUES_WORK, 404)),
    Row("rpc.queues.my_worklist", "RPC", "queues.my_worklist", [{}], RULES.perm(QUEUES_WORK)),
    Row("rpc.queues.pull_outlook", "RPC", "queues.pull_outlook", [], RULES.perm(QUEUES_WORK)),
])



# --- activities: the contact log, result codes, settings, promises, disputes, agenda ----------
# Rows act on the institution-2 account of gestor1 (``_portfolio``'s "i2_gestor1"), where
# ``_activities`` logs one note and opens a dispute, resolves it and opens another (made
# once, as admin). Rows that would log change nothing: a result code no catalogue has
# (422 once the account is in reach), a callback in the past, a correction of a missing
# entry; creating a code that exists answers 409; catalogue and settings are saved as
# they are; promises are expired "as of 2000-01-01" (nothing is due then). The open
# dispute is resolved at the end, so the account leaves the hold in the queues.

ACT_READ = "activities.read"
ACT_LOG = "activities.log"
ACT_MANAGE = "activities.manage"
DISPUTES_MANAGE = "disputes.manage"
PROMISES_APPROVE = "promises.approve"
PORTAL_SETTINGS = {"second_factor": "birth_date", "link_ttl_hours": 72}
#: the permissive limits every institution has until an administrator writes its own
DEFAULT_LIMITS = {"max_instalments": 36, "min_first_payment": "0.00", "min_first_payment_pct": "0",
                  "max_plan_days": 1095, "offer_expiry_days": 7, "discount_bands": []}
RESULT_CODE_FIELDS = ("institution_id", "code", "label", "contact_made", "needs_promise",
                      "invalidates_phone", "schedules_callback", "active", "sort_order")
SETTINGS_FIELDS = ("dispute_sla_days", "attribution_days", "time_zone")


def _activities(w) -> dict:
    """A logged note, a resolved and an open dispute on gestor1's institution-2 account,
    a result code and the settings of institution 2, and gestor2's calendar token
    (gestor2 is no column, so no row replaces it)."""
    if getattr(w, "activities", None) is None:
        from datetime import datetime, timezone

        admin = w.tokens["admin"]
        account_id = _portfolio(w)["i2_gestor1"][0]
        for stale in w.ok("GET", f"/api/v1/accounts/{account_id}/disputes", admin):
            if stale["state"] == "open":
                w.ok("POST", f"/api/v1/disputes/{stale['id']}/resolve", admin,
                     {"outcome": "cancelled", "note": "Matriz: limpieza"})
        note = w.ok("POST", "/api/v1/activities", admin, {
            "account_id": account_id, "kind": "note",
            "started_at": datetime.now(timezone.utc).isoformat(),
            "description": f"Matriz {RUN}"})
        resolved = w.ok("POST", "/api/v1/disputes", admin,
                        {"account_id": account_id, "reason": f"Matriz {RUN}"})
        w.ok("POST", f"/api/v1/disputes/{resolved['id']}/resolve", admin,
             {"outcome": "cancelled", "note": "Matriz"})
        open_ = w.ok("POST", "/api/v1/disputes", admin,
                     {"account_id": account_id, "reason": f"Matriz {RUN} abierta"})
        code = next(c for c in w.ok("GET", "/api/v1/institutions/2/result-codes", admin)
                    if c["code"] == "CT")
        settings_ = w.ok("GET", "/api/v1/institutions/2/activity-settings", admin)
        gestor2 = w.ok("POST", "/api/v1/auth/token", None, {
            "username": "gestor2", "password": w.logins["admin"][1]})["access_token"]
        feed = w.ok("POST", "/api/v1/agenda/ics-token", gestor2)["token"]
        w.activities = {
            "account": account_id, "note": note["id"], "resolved": resolved["id"],
            "open": open_["id"], "code_id": code["id"],
            "code": {k: code[k] for k in RESULT_CODE_FIELDS},
            "settings": {k: settings_[k] for k in SETTINGS_FIELDS},
            "gestor2": gestor2, "feed": feed}
    return w.activities


def _act(key):
    return lambda w: {{"note": "activity_id", "resolved": "dispute_id"}.get(key, "account_id"):
                      _activities(w)[key]}


def _now_iso() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat()


def _unknown_code_call(account):
    """A call on ``account`` with a result code no catalogue has: 422 once in reach."""
    return lambda w, uniq: {"account_id": account(w), "kind": "call", "started_at": _now_iso(),
                            "result_code": "MATRIZNOEXISTE"}


def _past_callback(w, uniq):
    return {"account_id": _activities(w)["account"], "due_at": "2020-01-02T16:00:00+00:00"}


def _a_day(w) -> str:
    from datetime import date
    today = date.today().isoformat()
    return f"date_from={today}&date_to={today}"


def _opens_a_dispute(institution_id: int, assigned_to: str, status: int) -> Rule:
    """Opening a dispute: a collector on the phone (activities.log) or who manages them
    (disputes.manage), then the account as the portfolio shows it to the caller."""
    reads = PORTFOLIO_RULES.reads(institution_id, assigned_to, status)

    def decide(who: Who) -> int:
        if who.authenticated and not ({ACT_LOG, DISPUTES_MANAGE} & who.permissions):
            return 403
        return reads(who)

    return Rule(decide, label=f"opens_a_dispute({institution_id}, {assigned_to})")


@pytest.fixture(scope="module", autouse=True)
def _resolve_the_open_dispute(world):
    """The dispute the rows found open goes back resolved (the queues release the account)."""
    yield
    if getattr(world, "activities", None) is not None:
        admin = world.login("admin")
        world.call("POST", f"/api/v1/disputes/{world.activities['open']}/resolve", admin,
                   {"outcome": "cancelled", "note": "Matriz: fin"})
        world.call("DELETE", "/api/v1/agenda/ics-token", world.activities["gestor2"])


ACT_READS_I2 = PORTFOLIO_RULES.reads(2, "gestor1", permission=ACT_READ)
MANAGE_I2 = RULES.perm(ACT_MANAGE, reach=(2,))
NOT_AN_ENTRY = 999_999_999

TABLE.extend([
    # --- the contact log ----------------------------------------------------------------------
    Row("activities.log.unknown-code.i2", "POST", "/api/v1/activities",
        _unknown_code_call(lambda w: _activities(w)["account"]),
        PORTFOLIO_RULES.reads(2, "gestor1", 422, permission=ACT_LOG)),
    # a colleague's account: gestor1 gets 404, like a missing one
    Row("activities.log.i1-gestor2", "POST", "/api/v1/activities",
        _unknown_code_call(lambda w: _portfolio(w)["i1_gestor2"][0]),
        PORTFOLIO_RULES.reads(1, "gestor2", 422, permission=ACT_LOG)),
    Row("activities.correct.missing", "POST", "/api/v1/activities/{activity_id}/corrections",
        lambda w, uniq: {"kind": "note", "started_at": _now_iso()},
        RULES.perm(ACT_LOG, 404), params=lambda w: {"activity_id": NOT_AN_ENTRY}),
    Row("activities.get.i2", "GET", "/api/v1/activities/{activity_id}", None, ACT_READS_I2,
        params=_act("note")),
    Row("activities.get.missing", "GET", "/api/v1/activities/{activity_id}", None,
        RULES.perm(ACT_READ, 404), params=lambda w: {"activity_id": NOT_AN_ENTRY}),
    Row("activities.history.i2", "GET", "/api/v1/accounts/{account_id}/activities", None,
        ACT_READS_I2, params=_act("account")),
    # a supervisor answers for their team's logs (gestor1's account: their agent's)
    Row("activities.chain.i2", "GET", "/api/v1/accounts/{account_id}/chain", None,
        MANAGE_I2.but(supervisor=200),
        params=_act("account"), check=lambda w, who, chain: chain["ok"] is True or
        pytest.fail(f"chain broken: {chain}")),
    # --- result codes and settings --------------------------------------------------------------
    *(Row(f"activities.result-codes.list.{i}", "GET",
          "/api/v1/institutions/{institution_id}/result-codes", None, RULES.institution(i),
          params=lambda w, i=i: {"institution_id": i}) for i in (1, 2)),
    Row("activities.result-codes.create.duplicate", "POST", "/api/v1/result-codes",
        lambda w, uniq: _activities(w)["code"], RULES.perm(ACT_MANAGE, 409, reach=(2,))),
    Row("activities.result-codes.update.unchanged", "PUT", "/api/v1/result-codes/{code_id}",
        lambda w, uniq: _activities(w)["code"], MANAGE_I2,
        params=lambda w: {"code_id": _activities(w)["code_id"]}),
    Row("activities.settings.get.2", "GET", "/api/v1/institutions/{institution_id}/activity-settings",
        None, RULES.institution(2), params=lambda w: {"institution_id": 2}),
    Row("activities.settings.save.unchanged", "PUT",
        "/api/v1/institutions/{institution_id}/activity-settings",
        lambda w, uniq: _activities(w)["settings"], MANAGE_I2,
        params=lambda w: {"institution_id": 2}),
    # --- promises and disputes -------------------------------------------------------------------
    Row("activities.promises.i2", "GET", "/api/v1/accounts/{account_id}/promises", None,
        ACT_READS_I2, params=_act("account")),
    Row("activities.promises.expire.long-ago", "POST", "/api/v1/promises/expire",
        {"today": "2000-01-01"}, RULES.perm(ACT_MANAGE)),
    Row("activities.disputes.open.already-open", "POST", "/api/v1/disputes",
        lambda w, uniq: {"account_id": _activities(w)["account"], "reason": f"Matriz {uniq}"},
        _opens_a_dispute(2, "gestor1", 409)),
    Row("activities.disputes.resolve.twice", "POST", "/api/v1/disputes/{dispute_id}/resolve",
        {"outcome": "cancelled", "note": "Matriz"},
        RULES.perm(DISPUTES_MANAGE, 409, reach=(2,)), params=_act("resolved")),
    Row("activities.disputes.i2", "GET", "/api/v1/accounts/{account_id}/disputes", None,
        ACT_READS_I2, params=_act("account")),
    Row("activities.disputes.overdue", "GET", "/api/v1/disputes/overdue", None,
        RULES.perm(DISPUTES_MANAGE)),
    # --- plan limits and the approval queue (collectors read the limits; approvers decide) ---
    Row("limits.get.2", "GET", "/api/v1/institutions/{institution_id}/plan-limits", None,
        RULES.perm(ACT_READ, reach=(2,)), params=lambda w: {"institution_id": 2}),
    Row("limits.save.defaults", "PUT", "/api/v1/institutions/{institution_id}/plan-limits",
        DEFAULT_LIMITS, MANAGE_I2, params=lambda w: {"institution_id": 2}),
    Row("approvals.list", "GET", "/api/v1/approvals", None, RULES.perm(PROMISES_APPROVE)),
    Row("approvals.decide.missing", "POST", "/api/v1/approvals/{approval_id}/decision",
        {"decision": "approve"}, RULES.perm(PROMISES_APPROVE, 404),
        params=lambda w: {"approval_id": NOT_AN_ENTRY}),
    Row("approvals.account.i2", "GET", "/api/v1/accounts/{account_id}/approvals", None,
        ACT_READS_I2, params=_act("account")),
    Row("rpc.limits.save.defaults", "RPC", "activities.save_plan_limits", [2, DEFAULT_LIMITS],
        MANAGE_I2),
    Row("rpc.approvals.list", "RPC", "activities.list_approvals", [{}],
        RULES.perm(PROMISES_APPROVE)),
    Row("rpc.limits.get.2", "RPC", "activities.get_plan_limits", [2],
        RULES.perm(ACT_READ, reach=(2,))),
    Row("rpc.approvals.decide.missing", "RPC", "activities.decide_approval",
        [NOT_AN_ENTRY, {"decision": "approve"}], RULES.perm(PROMISES_APPROVE, 404)),
    Row("rpc.approvals.account.i2", "RPC", "activities.account_approvals",
        lambda w, uniq: [_activities(w)["account"]], ACT_READS_I2),
    # the activity form's limits and its verdict before logging: an account's reader, a
    # collector who may log on it
    Row("rpc.limits.account.i2", "RPC", "activities.account_limits",
        lambda w, uniq: [_activities(w)["account"]], ACT_READS_I2),
    Row("rpc.limits.check_promise.i2", "RPC", "activities.check_promise",
        lambda w, uniq: [{"account_id": _activities(w)["account"], "promise": {
            "amount": "100.00", "due_date": (date.today() + timedelta(days=10)).isoformat()}}],
        PORTFOLIO_RULES.reads(2, "gestor1", permission=ACT_LOG)),
    # --- the debtor portal: a staff credential means nothing there, and the portal's RPCs
    # answer only a debtor's session (every staff identity: 403) -------------------------------
    Row("portal.session.bad-input", "POST", "/api/v1/portal/session", {}, RULES.fixed(422)),
    *(Row(f"portal.staff-token.{method}.{path}", method, path, body, RULES.fixed(401),
          params=lambda w: {"upload_id": "00000000-0000-0000-0000-000000000000",
                            "version_id": 1})
      for method, path, body in (
          ("DELETE", "/api/v1/portal/session", None), ("GET", "/api/v1/portal/me", None),
          ("POST", "/api/v1/portal/promises", {}), ("POST", "/api/v1/portal/settlements", {}),
          ("POST", "/api/v1/portal/uploads", {}),
          ("POST", "/api/v1/portal/uploads/{upload_id}/complete", None),
          ("POST", "/api/v1/portal/disputes", {}), ("PUT", "/api/v1/portal/preferences", {}),
          ("POST", "/api/v1/portal/callbacks", {}),
          ("GET", "/api/v1/portal/documents/{version_id}/download", None))),
    Row("portal.links.create.i2", "POST", "/api/v1/debtors/{debtor_id}/portal-links", {},
        PORTFOLIO_RULES.reads(2, "gestor1", 201, permission=ACT_LOG),
        params=lambda w: {"debtor_id": _portfolio(w)["i2_gestor1"][1]}),
    # by SMS: the account is checked in the agent's reach before the number (422 for who
    # reaches it, no link made)
    Row("portal.links.sms.not-a-number.i2", "POST", "/api/v1/debtors/{debtor_id}/portal-links",
        lambda w, uniq: {"channel": "sms", "phone": "abc",
                         "account_id": _portfolio(w)["i2_gestor1"][0]},
        PORTFOLIO_RULES.reads(2, "gestor1", 422, permission=ACT_LOG),
        params=lambda w: {"debtor_id": _portfolio(w)["i2_gestor1"][1]}),
    Row("portal.settings.get.2", "GET", "/api/v1/institutions/{institution_id}/portal-settings",
        None, RULES.authenticated(), params=lambda w: {"institution_id": 2}),
    Row("portal.settings.save.2", "PUT", "/api/v1/institutions/{institution_id}/portal-settings",
        PORTAL_SETTINGS, RULES.perm("institutions.manage", reach=(2,)),
        params=lambda w: {"institution_id": 2}),
    Row("rpc.portal.link.i2", "RPC", "auth.create_portal_link",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][1], {}],
        PORTFOLIO_RULES.reads(2, "gestor1", permission=ACT_LOG)),
    Row("rpc.portal.settings.save.2", "RPC", "auth.save_portal_settings", [2, PORTAL_SETTINGS],
        RULES.perm("institutions.manage", reach=(2,))),
    *(Row(f"rpc.portal.debtor-only.{name}", "RPC", name, args, RULES.authenticated(403))
      for name, args in (
          ("portfolio.check_portal_factor", [1, 1, "birth_date", "2000-01-01"]),
          ("portfolio.portal_overview", []), ("portfolio.portal_account", [1]),
          ("activities.portal_record_access", []), ("activities.portal_view", []),
          ("activities.portal_promise", [{}]), ("activities.portal_accept_offer", [{}]),
          ("activities.portal_dispute", [{}]), ("activities.portal_callback", [{}]),
          ("activities.portal_preferences", [{}]), ("documents.portal_request_upload", [{}]),
          ("documents.portal_complete_upload", ["00000000-0000-0000-0000-000000000000"]),
          ("documents.portal_documents", []), ("documents.portal_download_url", [1]),
          ("documents.portal_dispute_evidence", [1, 1]))),
    # --- the agenda and its calendar feed ---------------------------------------------------------
    Row("activities.agenda.list", "GET", "/api/v1/agenda", None, RULES.perm(ACT_READ),
        query=_a_day),
    Row("activities.agenda.schedule.past", "POST", "/api/v1/agenda", _past_callback,
        PORTFOLIO_RULES.reads(2, "gestor1", 422, permission=ACT_LOG)),
    Row("activities.agenda.delegate.missing", "POST", "/api/v1/agenda/{item_id}/delegate",
        lambda w, uniq: {"agent_id": w.ids["gestor2"]}, RULES.perm(ACT_LOG, 404),
        params=lambda w: {"item_id": NOT_AN_ENTRY}),
    Row("activities.agenda.done.missing", "POST", "/api/v1/agenda/{item_id}/done", None,
        RULES.perm(ACT_LOG, 404), params=lambda w: {"item_id": NOT_AN_ENTRY}),
    Row("activities.ics-token.create", "POST", "/api/v1/agenda/ics-token", None,
        RULES.perm(ACT_READ, 201)),
    Row("activities.ics-token.revoke", "DELETE", "/api/v1/agenda/ics-token", None,
        RULES.perm(ACT_READ, 204)),
    # the private token is the credential: no login (a bad bearer is still refused)
    Row("activities.ics-feed", "GET", "/ics/{token}.ics", None, RULES.public(200),
        params=lambda w: {"token": _activities(w)["feed"]}),
    Row("activities.ics-feed.unknown", "GET", "/ics/{token}.ics", None, RULES.public(404),
        params=lambda w: {"token": "cal_matriz-no-existe"}),
    Row("activities.productivity", "GET", "/api/v1/productivity", None, RULES.perm(ACT_READ),
        query=_a_day),
    # --- the same, straight to the activities service -----------------------------------------------
    Row("rpc.activities.log_activity.unknown-code.i2", "RPC", "activities.log_activity",
        lambda w, uniq: [_unknown_code_call(lambda w: _activities(w)["account"])(w, uniq)],
        PORTFOLIO_RULES.reads(2, "gestor1", 422, permission=ACT_LOG)),
    Row("rpc.activities.correct_activity.missing", "RPC", "activities.correct_activity",
        lambda w, uniq: [NOT_AN_ENTRY, {"kind": "note", "started_at": _now_iso()}],
        RULES.perm(ACT_LOG, 404)),
    Row("rpc.activities.get_activity.i2", "RPC", "activities.get_activity",
        lambda w, uniq: [_activities(w)["note"]], ACT_READS_I2),
    Row("rpc.activities.account_history.i2", "RPC", "activities.account_history",
        lambda w, uniq: [_activities(w)["account"], {}], ACT_READS_I2),
    Row("rpc.activities.verify_chain.i2", "RPC", "activities.verify_chain",
        lambda w, uniq: [_activities(w)["account"]], MANAGE_I2.but(supervisor=200)),
    Row("rpc.activities.list_result_codes.2", "RPC", "activities.list_result_codes", [2],
        RULES.institution(2)),
    Row("rpc.activities.save_result_code.unchanged", "RPC", "activities.save_result_code",
        lambda w, uniq: [_activities(w)["code"], _activities(w)["code_id"]], MANAGE_I2),
    Row("rpc.activities.get_settings.2", "RPC", "activities.get_settings", [2],
        RULES.institution(2)),
    Row("rpc.activities.save_settings.unchanged", "RPC", "activities.save_settings",
        lambda w, uniq: [2, _activities(w)["settings"]], MANAGE_I2),
    Row("rpc.activities.account_promises.i2", "RPC", "activities.account_promises",
        lambda w, uniq: [_activities(w)["account"]], ACT_READS_I2),
    Row("rpc.activities.expire_promises.long-ago", "RPC", "activities.expire_promises",
        ["2000-01-01"], RULES.perm(ACT_MANAGE)),
    Row("rpc.activities.open_dispute.already-open", "RPC", "activities.open_dispute",
        lambda w, uniq: [{"account_id": _activities(w)["account"], "reason": "Matriz"}],
        _opens_a_dispute(2, "gestor1", 409)),
    Row("rpc.activities.resolve_dispute.twice", "RPC", "activities.resolve_dispute",
        lambda w, uniq: [_activities(w)["resolved"], {"outcome": "cancelled", "note": "x"}],
        RULES.perm(DISPUTES_MANAGE, 409, reach=(2,))),
    Row("rpc.activities.account_disputes.i2", "RPC", "activities.account_disputes",
        lambda w, uniq: [_activities(w)["account"]], ACT_READS_I2),
    Row("rpc.activities.overdue_disputes", "RPC", "activities.overdue_disputes", [{}],
        RULES.perm(DISPUTES_MANAGE)),
    Row("rpc.activities.schedule_callback.past", "RPC", "activities.schedule_callback",
        lambda w, uniq: [_past_callback(w, uniq)],
        PORTFOLIO_RULES.reads(2, "gestor1", 422, permission=ACT_LOG)),
    Row("rpc.activities.delegate_agenda_item.missing", "RPC", "activities.delegate_agenda_item",
        lambda w, uniq: [NOT_AN_ENTRY, {"agent_id": w.ids["gestor2"]}], RULES.perm(ACT_LOG, 404)),
    Row("rpc.activities.mark_agenda_done.missing", "RPC", "activities.mark_agenda_done",
        [NOT_AN_ENTRY], RULES.perm(ACT_LOG, 404)),
    Row("rpc.activities.agenda_for", "RPC", "activities.agenda_for",
        lambda w, uniq: [dict(p.split("=") for p in _a_day(w).split("&"))],
        RULES.perm(ACT_READ)),
    Row("rpc.activities.create_ics_token", "RPC", "activities.create_ics_token", [],
        RULES.perm(ACT_READ)),
    Row("rpc.activities.revoke_ics_token", "RPC", "activities.revoke_ics_token", [],
        RULES.perm(ACT_READ)),
    Row("rpc.activities.productivity", "RPC", "activities.productivity",
        lambda w, uniq: [dict(p.split("=") for p in _a_day(w).split("&"))],
        RULES.perm(ACT_READ)),
])

# --- documents: folders, downloads and share links -------------------------------------------
# Rows act on the folder of gestor1's institution-2 debtor, where ``_documents`` uploads one
# PDF and makes two links (one revoked), once, as admin. Rows that would write change
# nothing lasting: an upload request leaves a pending upload the sweep removes, a link
# expiring in the past is refused (422) once the folder is in reach, revoking the revoked
# link again changes nothing.

DOCS_READ = "documents.read"
DOCS_UPLOAD = "documents.upload"
DOCS_SHARE = "documents.share"
MATRIX_PDF = b"%PDF-1.4\n% matriz\n%%EOF\n"


def _documents(w) -> dict:
    if getattr(w, "documents", None) is None:
        from datetime import datetime, timedelta, timezone

        admin = w.tokens["admin"]
        debtor_id = _portfolio(w)["i2_gestor1"][1]
        ticket = w.ok("POST", "/api/v1/documents/uploads", admin, {
            "debtor_id": debtor_id, "filename": f"matriz-{RUN}.pdf", "size": len(MATRIX_PDF)})
        sent = requests.post(ticket["url"], data=ticket["fields"],
                             files={"file": ("x.pdf", MATRIX_PDF)}, timeout=30)
        assert sent.status_code < 300, sent.text
        document = w.ok("POST", f"/api/v1/documents/uploads/{ticket['upload_id']}/complete", admin)
        expires = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
        link = w.ok("POST", "/api/v1/share-links", admin,
                    {"debtor_id": debtor_id, "expires_at": expires, "label": f"Matriz {RUN}"})
        revoked = w.ok("POST", "/api/v1/share-links", admin,
                       {"debtor_id": debtor_id, "expires_at": expires})
        w.ok("POST", f"/api/v1/share-links/{revoked['id']}/revoke", admin)
        w.documents = {"debtor": debtor_id, "document": document["id"],
                       "version": document["latest"]["id"], "link": link["id"],
                       "token": link["token"], "revoked": revoked["id"]}
    return w.documents


def _doc(*keys):
    names = {"debtor": "debtor_id", "document": "document_id", "version": "version_id",
             "link": "link_id", "revoked": "link_id", "token": "token"}
    return lambda w: {names[k]: _documents(w)[k] for k in keys}


def _past_link(w, uniq):
    return {"debtor_id": _documents(w)["debtor"], "expires_at": "2020-01-01T00:00:00+00:00"}


def _upload_request(w, uniq):
    return {"debtor_id": _documents(w)["debtor"], "filename": f"{uniq}.pdf", "size": 10}


DOCS_READS_I2 = PORTFOLIO_RULES.reads(2, "gestor1", permission=DOCS_READ)
NOT_AN_UPLOAD = "00000000-0000-4000-8000-000000000000"

TABLE.extend([
    Row("documents.uploads.request.i2", "POST", "/api/v1/documents/uploads", _upload_request,
        PORTFOLIO_RULES.reads(2, "gestor1", 201, permission=DOCS_UPLOAD)),
    Row("documents.uploads.complete.missing", "POST",
        "/api/v1/documents/uploads/{upload_id}/complete", None, RULES.perm(DOCS_UPLOAD, 404),
        params=lambda w: {"upload_id": NOT_AN_UPLOAD}),
    Row("documents.folder.i2", "GET", "/api/v1/debtors/{debtor_id}/documents", None,
        DOCS_READS_I2, params=_doc("debtor")),
    Row("documents.get.i2", "GET", "/api/v1/documents/{document_id}", None, DOCS_READS_I2,
        params=_doc("document")),
    Row("documents.download.i2", "GET", "/api/v1/documents/versions/{version_id}/download", None,
        DOCS_READS_I2, params=_doc("version")),
    Row("documents.share-links.create.past.i2", "POST", "/api/v1/share-links", _past_link,
        PORTFOLIO_RULES.reads(2, "gestor1", 422, permission=DOCS_SHARE)),
    Row("documents.share-links.list", "GET", "/api/v1/share-links", None, RULES.perm(DOCS_SHARE)),
    Row("documents.share-links.revoke.again.i2", "POST", "/api/v1/share-links/{link_id}/revoke",
        None, RULES.perm(DOCS_SHARE, reach=(2,)), params=_doc("revoked")),
    Row("documents.share-links.accesses.i2", "GET", "/api/v1/share-links/{link_id}/accesses",
        None, RULES.perm(DOCS_SHARE, reach=(2,)), params=_doc("link")),
    Row("documents.shared", "GET", "/api/v1/shared-documents", None, RULES.perm(DOCS_READ)),
    # the holder of a link needs no login (the token is the credential); a forged one is refused
    Row("documents.share.open", "GET", "/s/{token}", None, RULES.public(200), params=_doc("token")),
    Row("documents.share.download", "GET", "/s/{token}/v/{version_id}", None, RULES.public(200),
        params=_doc("token", "version")),
    Row("documents.share.unknown", "GET", "/s/{token}", None, RULES.public(404),
        params=lambda w: {"token": "matriz-no-existe-" + RUN}),
    # --- the same, straight to the documents service -----------------------------------------------
    Row("rpc.documents.request_upload.i2", "RPC", "documents.request_upload",
        lambda w, uniq: [_upload_request(w, uniq)],
        PORTFOLIO_RULES.reads(2, "gestor1", 200, permission=DOCS_UPLOAD)),
    Row("rpc.documents.complete_upload.missing", "RPC", "documents.complete_upload",
        [NOT_AN_UPLOAD], RULES.perm(DOCS_UPLOAD, 404)),
    Row("rpc.documents.folder.i2", "RPC", "documents.folder",
        lambda w, uniq: [_documents(w)["debtor"], {}], DOCS_READS_I2),
    Row("rpc.documents.get_document.i2", "RPC", "documents.get_document",
        lambda w, uniq: [_documents(w)["document"]], DOCS_READS_I2),
    Row("rpc.documents.download_url.i2", "RPC", "documents.download_url",
        lambda w, uniq: [_documents(w)["version"]], DOCS_READS_I2),
    Row("rpc.documents.create_share_link.past.i2", "RPC", "documents.create_share_link",
        lambda w, uniq: [_past_link(w, uniq)],
        PORTFOLIO_RULES.reads(2, "gestor1", 422, permission=DOCS_SHARE)),
    Row("rpc.documents.list_share_links", "RPC", "documents.list_share_links", [{}],
        RULES.perm(DOCS_SHARE)),
    Row("rpc.documents.shared_documents", "RPC", "documents.shared_documents", [{}],
        RULES.perm(DOCS_READ)),
    Row("rpc.documents.revoke_share_link.again.i2", "RPC", "documents.revoke_share_link",
        lambda w, uniq: [_documents(w)["revoked"]], RULES.perm(DOCS_SHARE, reach=(2,))),
    Row("rpc.documents.share_link_accesses.i2", "RPC", "documents.share_link_accesses",
        lambda w, uniq: [_documents(w)["link"], {}], RULES.perm(DOCS_SHARE, reach=(2,))),
    # the sweep of abandoned uploads spans institutions: an administrator of them all only
    Row("rpc.documents.sweep_uploads", "RPC", "documents.sweep_uploads", [],
        Rule(lambda who: 401 if not who.authenticated else
             200 if who.institutions is None and "institutions.manage" in who.permissions
             else 403, label="all-institution admin")),
])

# --- reports and dashboards: reports.view, and every report refused for another institution ------
# Each report is asked for institution 1 and for institution 2: the creditor (cliente) and the
# partner key (both bound to institution 1) get 404 for institution 2, exactly like missing.

REPORTS_VIEW = "reports.view"
REPORT_KEYS = ("productivity", "recovery", "aging", "roll-rates", "promises", "disputes",
               "champion-challenger")
REPORT_RPCS = (("activities", "report_productivity"), ("activities", "report_promises"),
               ("activities", "report_disputes"), ("portfolio", "report_roll_rates"),
               ("queues", "report_recovery"), ("queues", "report_champion_challenger"))


def _report_query(institution_id: int, key: str = "") -> Callable:
    def query(w) -> str:
        if key == "aging":
            return f"institution_id={institution_id}"
        return f"institution_id={institution_id}&{_a_day(w)}"
    return query


def _range_of(institution_id: int):
    def body(w, uniq):
        from datetime import date
        today = date.today().isoformat()
        return [{"institution_id": institution_id, "date_from": today, "date_to": today}]
    return body


TABLE.extend([
    Row("reports.catalogue", "GET", "/api/v1/reports", None, RULES.perm(REPORTS_VIEW)),
    *(Row(f"reports.{key}.i{i}", "GET", f"/api/v1/reports/{key}", None,
          RULES.perm(REPORTS_VIEW, reach=(i,)), query=_report_query(i, key))
      for key in REPORT_KEYS for i in (1, 2)),
    # an export asked for another institution is refused the same way
    Row("reports.productivity.xlsx.i2", "GET", "/api/v1/reports/productivity", None,
        RULES.perm(REPORTS_VIEW, reach=(2,)),
        query=lambda w: _report_query(2)(w) + "&format=xlsx"),
    *(Row(f"dashboards.supervisor.i{i}", "GET", "/api/v1/dashboards/supervisor", None,
          RULES.perm(REPORTS_VIEW, reach=(i,)), query=lambda w, i=i: f"institution_id={i}")
      for i in (1, 2)),
    *(Row(f"dashboards.institution.i{i}", "GET", "/api/v1/dashboards/institution", None,
          RULES.perm(REPORTS_VIEW, reach=(i,)), query=lambda w, i=i: f"institution_id={i}")
      for i in (1, 2)),
    # --- the same, straight to the services --------------------------------------------------
    *(Row(f"rpc.{service}.{method}.i{i}", "RPC", f"{service}.{method}", _range_of(i),
          RULES.perm(REPORTS_VIEW, reach=(i,)))
      for service, method in REPORT_RPCS for i in (1, 2)),
    *(Row(f"rpc.portfolio.report_aging.i{i}", "RPC", "portfolio.report_aging",
          [{"institution_id": i}], RULES.perm(REPORTS_VIEW, reach=(i,))) for i in (1, 2)),
    *(Row(f"rpc.activities.supervisor_day.i{i}", "RPC", "activities.supervisor_day",
          lambda w, uniq, i=i: [{"day": _a_day(w)[10:20], "institution_id": i}],
          RULES.perm(REPORTS_VIEW, reach=(i,))) for i in (1, 2)),
    *(Row(f"rpc.queues.report_queues.i{i}", "RPC", "queues.report_queues", [i],
          RULES.perm(REPORTS_VIEW, reach=(i,))) for i in (1, 2)),
    # every institution's accounts: only an all-institution holder of institutions.manage
    Row("rpc.portfolio.snapshot_aging", "RPC", "portfolio.snapshot_aging", [],
        RULES.perm(INSTITUTIONS_MANAGE, reach=None)),
    # one institution's snapshot, taken now: its administrators (out of scope 404)
    Row("rpc.portfolio.snapshot_aging.i2", "RPC", "portfolio.snapshot_aging", [2],
        RULES.perm(INSTITUTIONS_MANAGE, reach=(2,))),
    Row("portfolio.aging-snapshot.i2", "POST", "/api/v1/institutions/{institution_id}/aging-snapshot",
        None, RULES.perm(INSTITUTIONS_MANAGE, reach=(2,)), params=lambda w: {"institution_id": 2}),
    Row("rpc.portfolio.rebuild_aging_rollups.long-ago", "RPC", "portfolio.rebuild_aging_rollups",
        [{"date_from": "2000-01-01", "date_to": "2000-01-31"}],
        RULES.perm(INSTITUTIONS_MANAGE, reach=None)),
])

# --- messaging: mailboxes, patterns, templates, sending and the inbound triage ---------------------
# Rows act on a mailbox (pointing at a closed port: tests and syncs answer with the reason),
# a template and a pattern of institution 2, made once as admin. Sends and writes are refused
# by validation (422) or conflict (409) once allowed, so nothing is sent or changed.

MSG_SEND = "messaging.send"
MSG_MANAGE = "messaging.manage"
MAILBOX_FIELDS = ("institution_id", "name", "address", "imap_host", "imap_port", "imap_tls",
                  "imap_user", "imap_folder", "smtp_host", "smtp_port", "smtp_security")
TEMPLATE_FIELDS = ("institution_id", "name", "subject_es", "text_es", "html_es", "subject_en",
                   "text_en", "html_en", "active")


def _messaging(w) -> dict:
    if getattr(w, "messaging", None) is None:
        admin = w.tokens["admin"]
        mailbox = w.ok("POST", "/api/v1/mailboxes", admin, {
            "institution_id": 2, "name": f"Matriz {RUN}", "address": "matriz@recaudo.test",
            "imap_host": "127.0.0.1", "imap_port": 1, "imap_tls": False,
            "imap_user": "matriz", "imap_password": "matriz-clave", "smtp_host": "127.0.0.1",
            "smtp_port": 1, "smtp_security": "none"})
        template = w.ok("POST", "/api/v1/templates", admin, {
            "institution_id": 2, "name": f"Matriz {RUN}", "subject_es": "Cuenta {{ account.account_number }}",
            "text_es": "Hola {{ debtor.name }}"})
        settings_ = w.ok("GET", "/api/v1/institutions/2/messaging-settings", admin)
        w.messaging = {"mailbox": mailbox["id"], "template": template["id"],
                       "mailbox_body": {k: mailbox[k] for k in MAILBOX_FIELDS},
                       "template_body": {k: template[k] for k in TEMPLATE_FIELDS},
                       "settings": {"fax_domain": settings_["fax_domain"],
                                    "default_mailbox_id": settings_["default_mailbox_id"]}}
    return w.messaging


def _msg(key):
    names = {"mailbox": "mailbox_id", "template": "template_id"}
    return lambda w: {names[key]: _messaging(w)[key]}


def _send_or_manage(reach=EVERY_INSTITUTION) -> Rule:
    """Senders pick mailboxes and templates; administrators edit them."""
    def decide(who: Who) -> int:
        if not who.authenticated:
            return 401
        if not {MSG_SEND, MSG_MANAGE} & who.permissions:
            return 403
        if reach is not EVERY_INSTITUTION and not who.may_reach(reach):
            return 404
        return 200
    return Rule(decide, label=f"send_or_manage({reach})")


def _compose(w, **extra):
    return {"account_id": _portfolio(w)["i2_gestor1"][0], "template_id": _messaging(w)["template"],
            **extra}


MSG_MANAGE_I2 = RULES.perm(MSG_MANAGE, reach=(2,))
NOT_A_MESSAGE = 999_999_999
BAD_PATTERN = {"institution_id": 2, "name": "Matriz", "regex": "(a+)+$", "target": "account_number"}
SMS_SETTINGS_NO_PASSWORD = {"gateway_url": "http://127.0.0.1:1/cgi-bin/sendsms",
                            "username": "matriz", "sender_id": "99999"}
GOOD_PATTERN = {"institution_id": 2, "name": "Matriz", "regex": r"(\d{8})", "target": "account_number"}

TABLE.extend([
    Row("messaging.mailboxes.list", "GET", "/api/v1/mailboxes", None, _send_or_manage()),
    Row("messaging.mailboxes.create.duplicate", "POST", "/api/v1/mailboxes",
        lambda w, uniq: {**_messaging(w)["mailbox_body"], "imap_password": "x-clave"},
        RULES.perm(MSG_MANAGE, 409, reach=(2,))),
    Row("messaging.mailboxes.get.i2", "GET", "/api/v1/mailboxes/{mailbox_id}", None,
        MSG_MANAGE_I2, params=_msg("mailbox")),
    Row("messaging.mailboxes.update.unchanged", "PUT", "/api/v1/mailboxes/{mailbox_id}",
        lambda w, uniq: _messaging(w)["mailbox_body"], MSG_MANAGE_I2, params=_msg("mailbox")),
    Row("messaging.mailboxes.test.i2", "POST", "/api/v1/mailboxes/{mailbox_id}/test", None,
        MSG_MANAGE_I2, params=_msg("mailbox"),
        check=lambda w, who, answer: answer["ok"] is False or pytest.fail(str(answer))),
    Row("messaging.mailboxes.sync.i2", "POST", "/api/v1/mailboxes/{mailbox_id}/sync", None,
        MSG_MANAGE_I2, params=_msg("mailbox"),
        check=lambda w, who, answer: "error" in answer or pytest.fail(str(answer))),
    Row("messaging.mailboxes.search.i2", "GET", "/api/v1/mailboxes/{mailbox_id}/search", None,
        RULES.perm(MSG_SEND, 422, reach=(2,)), params=_msg("mailbox"),
        query=lambda w: "subject=matriz"),
    Row("messaging.settings.get.2", "GET", "/api/v1/institutions/{institution_id}/messaging-settings",
        None, MSG_MANAGE_I2, params=lambda w: {"institution_id": 2}),
    Row("messaging.settings.save.unchanged", "PUT",
        "/api/v1/institutions/{institution_id}/messaging-settings",
        lambda w, uniq: _messaging(w)["settings"], MSG_MANAGE_I2,
        params=lambda w: {"institution_id": 2}),
    Row("messaging.patterns.list.2", "GET", "/api/v1/institutions/{institution_id}/match-patterns",
        None, MSG_MANAGE_I2, params=lambda w: {"institution_id": 2}),
    Row("messaging.patterns.create.unsafe", "POST", "/api/v1/match-patterns", BAD_PATTERN,
        RULES.perm(MSG_MANAGE, 422, reach=(2,))),
    Row("messaging.patterns.update.missing", "PUT", "/api/v1/match-patterns/{pattern_id}",
        GOOD_PATTERN, RULES.perm(MSG_MANAGE, 404), params=lambda w: {"pattern_id": NOT_A_MESSAGE}),
    Row("messaging.patterns.delete.missing", "DELETE", "/api/v1/match-patterns/{pattern_id}", None,
        RULES.perm(MSG_MANAGE, 404), params=lambda w: {"pattern_id": NOT_A_MESSAGE}),
    Row("messaging.templates.list.2", "GET", "/api/v1/institutions/{institution_id}/templates",
        None, _send_or_manage((2,)), params=lambda w: {"institution_id": 2}),
    Row("messaging.templates.create.unknown-field", "POST", "/api/v1/templates",
        lambda w, uniq: {**_messaging(w)["template_body"], "name": uniq,
                         "text_es": "{{ debtor.secreto }}"},
        RULES.perm(MSG_MANAGE, 422, reach=(2,))),
    Row("messaging.templates.get.i2", "GET", "/api/v1/templates/{template_id}", None,
        _send_or_manage((2,)), params=_msg("template")),
    Row("messaging.templates.update.unchanged", "PUT", "/api/v1/templates/{template_id}",
        lambda w, uniq: _messaging(w)["template_body"], MSG_MANAGE_I2, params=_msg("template")),
    Row("messaging.preview.i2", "POST", "/api/v1/messages/preview",
        lambda w, uniq: _compose(w), PORTFOLIO_RULES.reads(2, "gestor1", permission=MSG_SEND)),
    Row("messaging.email.not-an-address", "POST", "/api/v1/messages/email",
        lambda w, uniq: _compose(w, to="no es correo"), RULES.perm(MSG_SEND, 422)),
    Row("messaging.fax.not-a-number", "POST", "/api/v1/messages/fax",
        lambda w, uniq: _compose(w, fax_number="abc"), RULES.perm(MSG_SEND, 422)),
    # SMS: institution 2 has no SMS gateway (settings 404 once in reach; a first save
    # without its password 422); a send to a number that is no number is refused unsent
    Row("messaging.sms-settings.get.2", "GET", "/api/v1/institutions/{institution_id}/sms-settings",
        None, RULES.perm(MSG_MANAGE, 404, reach=(2,)), params=lambda w: {"institution_id": 2}),
    Row("messaging.sms-settings.save.no-password", "PUT",
        "/api/v1/institutions/{institution_id}/sms-settings", SMS_SETTINGS_NO_PASSWORD,
        RULES.perm(MSG_MANAGE, 422, reach=(2,)), params=lambda w: {"institution_id": 2}),
    Row("messaging.sms.preview.i2", "POST", "/api/v1/sms/preview",
        lambda w, uniq: _compose(w), PORTFOLIO_RULES.reads(2, "gestor1", permission=MSG_SEND)),
    Row("messaging.sms.send.not-a-number", "POST", "/api/v1/sms",
        lambda w, uniq: _compose(w, phone="abc"), RULES.perm(MSG_SEND, 422)),
    Row("messaging.sms.list.i2", "GET", "/api/v1/debtors/{debtor_id}/sms", None,
        PORTFOLIO_RULES.reads(2, "gestor1", permission=MSG_SEND),
        params=lambda w: {"debtor_id": _portfolio(w)["i2_gestor1"][1]}),
    Row("messaging.outbound.list", "GET", "/api/v1/messages", None, RULES.perm(MSG_SEND)),
    Row("messaging.outbound.get.missing", "GET", "/api/v1/messages/{message_id}", None,
        RULES.perm(MSG_SEND, 404), params=lambda w: {"message_id": NOT_A_MESSAGE}),
    Row("messaging.inbound.list", "GET", "/api/v1/inbound-messages", None, RULES.perm(MSG_SEND),
        query=lambda w: "state=unmatched"),
    Row("messaging.inbound.get.missing", "GET", "/api/v1/inbound-messages/{inbound_id}", None,
        RULES.perm(MSG_SEND, 404), params=lambda w: {"inbound_id": NOT_A_MESSAGE}),
    Row("messaging.inbound.assign.missing", "POST",
        "/api/v1/inbound-messages/{inbound_id}/assign", {"account_id": 1},
        RULES.perm(MSG_SEND, 404), params=lambda w: {"inbound_id": NOT_A_MESSAGE}),
    # --- the same, straight to the messaging service (and portfolio's look-up for it) ----------
    Row("rpc.messaging.list_mailboxes", "RPC", "messaging.list_mailboxes", [], _send_or_manage()),
    Row("rpc.messaging.get_mailbox.i2", "RPC", "messaging.get_mailbox",
        lambda w, uniq: [_messaging(w)["mailbox"]], MSG_MANAGE_I2),
    Row("rpc.messaging.save_mailbox.unchanged", "RPC", "messaging.save_mailbox",
        lambda w, uniq: [_messaging(w)["mailbox_body"], _messaging(w)["mailbox"]], MSG_MANAGE_I2),
    Row("rpc.messaging.test_mailbox.i2", "RPC", "messaging.test_mailbox",
        lambda w, uniq: [_messaging(w)["mailbox"]], MSG_MANAGE_I2),
    Row("rpc.messaging.sync_mailbox.i2", "RPC", "messaging.sync_mailbox",
        lambda w, uniq: [_messaging(w)["mailbox"]], MSG_MANAGE_I2),
    Row("rpc.messaging.search_mailbox.i2", "RPC", "messaging.search_mailbox",
        lambda w, uniq: [_messaging(w)["mailbox"], {"subject": "matriz"}],
        RULES.perm(MSG_SEND, 422, reach=(2,))),
    Row("rpc.messaging.get_settings.2", "RPC", "messaging.get_settings", [2], MSG_MANAGE_I2),
    Row("rpc.messaging.save_settings.unchanged", "RPC", "messaging.save_settings",
        lambda w, uniq: [2, _messaging(w)["settings"]], MSG_MANAGE_I2),
    Row("rpc.messaging.list_patterns.2", "RPC", "messaging.list_patterns", [2], MSG_MANAGE_I2),
    Row("rpc.messaging.save_pattern.unsafe", "RPC", "messaging.save_pattern", [BAD_PATTERN],
        RULES.perm(MSG_MANAGE, 422, reach=(2,))),
    Row("rpc.messaging.delete_pattern.missing", "RPC", "messaging.delete_pattern",
        [NOT_A_MESSAGE], RULES.perm(MSG_MANAGE, 404)),
    Row("rpc.messaging.list_templates.2", "RPC", "messaging.list_templates", [2],
        _send_or_manage((2,))),
    Row("rpc.messaging.get_template.i2", "RPC", "messaging.get_template",
        lambda w, uniq: [_messaging(w)["template"]], _send_or_manage((2,))),
    Row("rpc.messaging.save_template.unchanged", "RPC", "messaging.save_template",
        lambda w, uniq: [_messaging(w)["template_body"], _messaging(w)["template"]],
        MSG_MANAGE_I2),
    Row("rpc.messaging.preview.i2", "RPC", "messaging.preview", lambda w, uniq: [_compose(w)],
        PORTFOLIO_RULES.reads(2, "gestor1", permission=MSG_SEND)),
    Row("rpc.messaging.send_email.not-an-address", "RPC", "messaging.send_email",
        lambda w, uniq: [_compose(w, to="no es correo")], RULES.perm(MSG_SEND, 422)),
    Row("rpc.messaging.send_fax.not-a-number", "RPC", "messaging.send_fax",
        lambda w, uniq: [_compose(w, fax_number="abc")], RULES.perm(MSG_SEND, 422)),
    Row("rpc.messaging.get_sms_settings.2", "RPC", "messaging.get_sms_settings", [2],
        RULES.perm(MSG_MANAGE, 404, reach=(2,))),
    Row("rpc.messaging.save_sms_settings.no-password", "RPC", "messaging.save_sms_settings",
        [2, SMS_SETTINGS_NO_PASSWORD], RULES.perm(MSG_MANAGE, 422, reach=(2,))),
    Row("rpc.messaging.preview_sms.i2", "RPC", "messaging.preview_sms",
        lambda w, uniq: [_compose(w)], PORTFOLIO_RULES.reads(2, "gestor1", permission=MSG_SEND)),
    Row("rpc.messaging.send_sms.not-a-number", "RPC", "messaging.send_sms",
        lambda w, uniq: [_compose(w, phone="abc")], RULES.perm(MSG_SEND, 422)),
    Row("rpc.messaging.send_portal_link_sms.not-a-number", "RPC",
        "messaging.send_portal_link_sms", lambda w, uniq: [{
            "account_id": _portfolio(w)["i2_gestor1"][0], "phone": "abc", "link_id": 1,
            "portal_link": "https://recaudo.example/mi-cuenta/2/pl_" + "x" * 43}],
        RULES.perm(MSG_SEND, 422)),
    Row("rpc.messaging.list_sms.i2", "RPC", "messaging.list_sms",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][1]],
        PORTFOLIO_RULES.reads(2, "gestor1", permission=MSG_SEND)),
    Row("rpc.messaging.list_outbound", "RPC", "messaging.list_outbound", [{}],
        RULES.perm(MSG_SEND)),
    Row("rpc.messaging.get_outbound.missing", "RPC", "messaging.get_outbound", [NOT_A_MESSAGE],
        RULES.perm(MSG_SEND, 404)),
    Row("rpc.messaging.list_inbound", "RPC", "messaging.list_inbound", [{}], RULES.perm(MSG_SEND)),
    Row("rpc.messaging.get_inbound.missing", "RPC", "messaging.get_inbound", [NOT_A_MESSAGE],
        RULES.perm(MSG_SEND, 404)),
    Row("rpc.messaging.assign_inbound.missing", "RPC", "messaging.assign_inbound",
        [NOT_A_MESSAGE, {"account_id": 1}], RULES.perm(MSG_SEND, 404)),
    # a scheduled report's mailing (the reports service's runner), from institution 2's
    # matrix mailbox, whose SMTP port answers nothing: once in reach, refused (409), unsent
    Row("rpc.messaging.send_report.i2", "RPC", "messaging.send_report",
        lambda w, uniq: [_messaging(w) and {
            "recipients": ["matriz@recaudo.example"], "subject": "Matriz", "body": "Matriz",
            "institution_id": 2, "attachment": {"filename": "m.csv", "content_type": "text/csv",
                                                "content_b64": "YSxi"}}],
        RULES.perm("reports.view", 409, reach=(2,))),
    Row("rpc.portfolio.match_debtors.2", "RPC", "portfolio.match_debtors",
        [2, ["matriz@recaudo.test"], ["0"], ["0"]], RULES.perm("portfolio.read_all", reach=(2,))),
])

# --- scheduled reports (the reports service): each user's own; another's answers 404 ----------
# The create rows schedule a daily aging report of institution 2 to a throwaway address
# (removed at the end); the rest act on a schedule that does not exist.

THROWAWAY_RECIPIENT = "matriz@recaudo.example"
NO_SCHEDULE = 999_999_999


def _schedule_body(institution_id=None, **changes):
    def body(w, uniq):
        out = {"report": "aging", "frequency": "daily", "recipients": [THROWAWAY_RECIPIENT],
               "filters": {"group_by": ["stage"]}, **changes}
        if institution_id is not None:
            out["institution_id"] = institution_id
        return out
    return body


@pytest.fixture(scope="module", autouse=True)
def _remove_throwaway_schedules():
    yield
    engine = create_engine(settings().database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM reports.schedules WHERE recipients @> "
                          "CAST(:r AS jsonb)"), {"r": f'["{THROWAWAY_RECIPIENT}"]'})
    engine.dispose()


_MISSING_SCHEDULE = lambda w: {"schedule_id": NO_SCHEDULE}  # noqa: E731

TABLE.extend([
    Row("report-schedules.list", "GET", "/api/v1/report-schedules", None,
        RULES.perm(REPORTS_VIEW)),
    Row("report-schedules.create.i2", "POST", "/api/v1/report-schedules", _schedule_body(2),
        RULES.perm(REPORTS_VIEW, 201, reach=(2,))),
    # weekly without its weekday: refused, nothing stored
    Row("report-schedules.create.bad", "POST", "/api/v1/report-schedules",
        _schedule_body(frequency="weekly"), RULES.perm(REPORTS_VIEW, 422)),
    Row("report-schedules.update.missing", "PUT", "/api/v1/report-schedules/{schedule_id}",
        _schedule_body(), RULES.perm(REPORTS_VIEW, 404), params=_MISSING_SCHEDULE),
    Row("report-schedules.delete.missing", "DELETE", "/api/v1/report-schedules/{schedule_id}",
        None, RULES.perm(REPORTS_VIEW, 404), params=_MISSING_SCHEDULE),
    Row("report-schedules.run.missing", "POST", "/api/v1/report-schedules/{schedule_id}/run",
        None, RULES.perm(REPORTS_VIEW, 404), params=_MISSING_SCHEDULE),
    Row("report-schedules.runs.missing", "GET", "/api/v1/report-schedules/{schedule_id}/runs",
        None, RULES.perm(REPORTS_VIEW, 404), params=_MISSING_SCHEDULE),
    Row("report-runs.file.missing", "GET", "/api/v1/report-runs/{run_id}/file", None,
        RULES.perm(REPORTS_VIEW, 404), params=lambda w: {"run_id": NO_SCHEDULE}),
    Row("rpc.reports.list_schedules", "RPC", "reports.list_schedules", [],
        RULES.perm(REPORTS_VIEW)),
    Row("rpc.reports.save_schedule.i2", "RPC", "reports.save_schedule",
        lambda w, uniq: [_schedule_body(2)(w, uniq)], RULES.perm(REPORTS_VIEW, reach=(2,))),
    Row("rpc.reports.save_schedule.bad", "RPC", "reports.save_schedule",
        lambda w, uniq: [_schedule_body(frequency="weekly")(w, uniq)],
        RULES.perm(REPORTS_VIEW, 422)),
    Row("rpc.reports.delete_schedule.missing", "RPC", "reports.delete_schedule", [NO_SCHEDULE],
        RULES.perm(REPORTS_VIEW, 404)),
    Row("rpc.reports.run_schedule.missing", "RPC", "reports.run_schedule", [NO_SCHEDULE],
        RULES.perm(REPORTS_VIEW, 404)),
    Row("rpc.reports.list_runs.missing", "RPC", "reports.list_runs", [NO_SCHEDULE],
        RULES.perm(REPORTS_VIEW, 404)),
    Row("rpc.reports.run_file.missing", "RPC", "reports.run_file", [NO_SCHEDULE],
        RULES.perm(REPORTS_VIEW, 404)),
    # a user's identity, for the platform's own services only: every caller is refused
    Row("rpc.auth.identity_for", "RPC", "auth.identity_for", lambda w, uniq: [w.ids["gestor1"]],
        RULES.authenticated(403)),
])

# --- preventive campaigns (the queues service): managed with queues.manage and messaging.send,
# read with queues.manage or reports.view, within the caller's institutions. The rows act on
# campaigns of institution 2 named "Matriz…" whose condition takes no account (a run picks
# nobody), with a template made for them; all removed at the end.

NO_CAMPAIGN = 999_999_999
NOTHING = {"all": [{"field": "status_id", "op": "eq", "value": -1}]}


def _campaign_body(w, name: str) -> dict:
    return {"institution_id": 2, "name": name, "conditions": NOTHING, "channel": "email",
            "template_id": _campaigns(w)["template"], "send_hour": 9, "holdout_share": 10}


def _campaigns(w) -> dict:
    """A template of institution 2 and two campaigns: one to run, one to pause and resume."""
    if getattr(w, "campaigns", None) is None:
        admin = w.tokens["admin"]
        template = w.ok("POST", "/api/v1/templates", admin, {
            "institution_id": 2, "name": f"Matriz plantilla {RUN}",
            "subject_es": "Recordatorio", "text_es": "Su pago vence pronto."})
        w.campaigns = {"template": template["id"]}
        for key in ("run", "pause"):
            w.campaigns[key] = w.ok("POST", "/api/v1/campaigns", admin, _campaign_body(
                w, f"Matriz campaña {key} {RUN}"))["id"]
    return w.campaigns


def _campaign(key="run"):
    return lambda w: {"campaign_id": _campaigns(w)[key]}


@pytest.fixture(scope="module", autouse=True)
def _remove_campaign_throwaways():
    yield
    engine = create_engine(settings().database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM queues.campaigns WHERE name LIKE 'Matriz %'"))
        conn.execute(text("DELETE FROM messaging.templates WHERE name LIKE 'Matriz %'"))
    engine.dispose()


def _campaign_reader(reach=EVERY_INSTITUTION, status=200) -> Rule:
    def decide(who: Who) -> int:
        if not who.authenticated:
            return 401
        if not {"reports.view", "queues.manage"} & who.permissions:
            return 403
        if reach is not EVERY_INSTITUTION and not who.may_reach(reach):
            return 404
        return status

    return Rule(decide, label="campaign reader")


CAMPAIGNS_IN_2 = RULES.perm(QUEUES_MANAGE, reach=(2,), holds={"messaging.send"})
_MISSING_CAMPAIGN = lambda w: {"campaign_id": NO_CAMPAIGN}  # noqa: E731

TABLE.extend([
    Row("campaigns.list", "GET", "/api/v1/campaigns", None, _campaign_reader()),
    Row("campaigns.preview.i2", "POST", "/api/v1/campaigns/preview",
        {"institution_id": 2, "conditions": NOTHING, "holdout_share": 10}, CAMPAIGNS_IN_2),
    Row("campaigns.create.i2", "POST", "/api/v1/campaigns",
        lambda w, uniq: _campaign_body(w, f"Matriz {uniq}"),
        RULES.perm(QUEUES_MANAGE, 201, reach=(2,), holds={"messaging.send"})),
    # a hold-out over 50 %: refused naming the field, nothing stored
    Row("campaigns.create.bad", "POST", "/api/v1/campaigns",
        lambda w, uniq: {**_campaign_body(w, f"Matriz {uniq}"), "holdout_share": 90},
        RULES.authenticated(422).but(anonymous=401, forged=401)),
    Row("campaigns.get.i2", "GET", "/api/v1/campaigns/{campaign_id}", None,
        _campaign_reader((2,)), params=_campaign()),
    Row("campaigns.get.missing", "GET", "/api/v1/campaigns/{campaign_id}", None,
        _campaign_reader(status=404), params=_MISSING_CAMPAIGN),
    Row("campaigns.update.i2", "PUT", "/api/v1/campaigns/{campaign_id}",
        lambda w, uniq: _campaign_body(w, f"Matriz campaña run {RUN}"), CAMPAIGNS_IN_2,
        params=_campaign()),
    Row("campaigns.pause.i2", "POST", "/api/v1/campaigns/{campaign_id}/pause", None,
        CAMPAIGNS_IN_2, params=_campaign("pause")),
    Row("campaigns.resume.i2", "POST", "/api/v1/campaigns/{campaign_id}/resume", None,
        CAMPAIGNS_IN_2, params=_campaign("pause")),
    Row("campaigns.run.i2", "POST", "/api/v1/campaigns/{campaign_id}/run", None,
        CAMPAIGNS_IN_2, params=_campaign()),
    Row("campaigns.report.i2", "GET", "/api/v1/campaigns/{campaign_id}/report", None,
        _campaign_reader((2,)), params=_campaign()),
    Row("rpc.queues.list_campaigns", "RPC", "queues.list_campaigns", [], _campaign_reader()),
    Row("rpc.queues.get_campaign.i2", "RPC", "queues.get_campaign",
        lambda w, uniq: [_campaigns(w)["run"]], _campaign_reader((2,))),
    Row("rpc.queues.preview_campaign.i2", "RPC", "queues.preview_campaign",
        [{"institution_id": 2, "conditions": NOTHING}], CAMPAIGNS_IN_2),
    Row("rpc.queues.save_campaign.i2", "RPC", "queues.save_campaign",
        lambda w, uniq: [_campaign_body(w, f"Matriz {uniq}")], CAMPAIGNS_IN_2),
    Row("rpc.queues.set_campaign_state.i2", "RPC", "queues.set_campaign_state",
        lambda w, uniq: [_campaigns(w)["pause"], "active"], CAMPAIGNS_IN_2),
    Row("rpc.queues.run_campaign.i2", "RPC", "queues.run_campaign",
        lambda w, uniq: [_campaigns(w)["run"]], CAMPAIGNS_IN_2),
    Row("rpc.queues.campaign_report.i2", "RPC", "queues.campaign_report",
        lambda w, uniq: [_campaigns(w)["run"]], _campaign_reader((2,))),
    # the campaigns' sender (the queues service acts as the platform): an account that does
    # not exist answers 404 to whoever may send
    Row("rpc.messaging.send_campaign_message.missing", "RPC", "messaging.send_campaign_message",
        [{"account_id": NOT_AN_ACCOUNT, "template_id": 1, "channel": "email", "campaign_id": 1,
          "idempotency_key": f"matriz-{RUN}"}], RULES.perm("messaging.send", 404)),
])

#: the typed error an RPC answers for each refusal status
RPC_ERROR = {401: NotAuthenticated, 403: PermissionDenied, 404: NotFound, 409: Conflict,
             422: InvalidInput, 429: Throttled}


# --- the world the rows act on -------------------------------------------------------------

@dataclass
class World:
    base_url: str
    http: requests.Session = field(default_factory=requests.Session)
    logins: dict = field(default_factory=dict)       # who -> (username, password)
    tokens: dict = field(default_factory=dict)       # who -> bearer credential
    identities: dict = field(default_factory=dict)   # who -> signed identity (RPC)
    ids: dict = field(default_factory=dict)          # name -> user id
    profiles: dict = field(default_factory=dict)     # profile name -> id
    throwaway_profile_id: int = 0
    throwaway_profile: dict = field(default_factory=dict)
    administrador: dict = field(default_factory=dict)
    team_id: int = 0
    throwaway_key_id: int = 0

    def call(self, method, path, token=None, body=None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, self.base_url + path, headers=headers,
                                 json=body, timeout=30)

    def submit(self, method, path, token=None, form=None) -> requests.Response:
        """A page of the web UI as a browser would ask it, bar the session cookie: the
        form as a form, the redirect as the answer (anonymous: to the login page)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, self.base_url + path, headers=headers, data=form,
                                 allow_redirects=False, timeout=30)

    def ok(self, method, path, token, body=None) -> Any:
        response = self.call(method, path, token, body)
        assert response.status_code in (200, 201), (method, path, response.text)
        return response.json()

    def login(self, who) -> str:
        username, password = self.logins[who]
        return self.ok("POST", "/api/v1/auth/token", None,
                       {"username": username, "password": password})["access_token"]


# --- writes on other agents' and other institutions' objects ------------------------------------
# Out of reach answers exactly like missing, for a write as for a read: a correction of an
# entry on gestor2's institution-1 account (logged by admin) and the triage of a message
# already on that account, next to the reads of the same objects. Whoever may read them
# gets the write's own answer (an unknown result code: 422; not the author nor a manager:
# 403; already assigned: 409), so nothing changes; whoever may not gets 404 (gestor1
# used to get 403 and 409, telling the objects exist).


def _others(w) -> dict:
    """Admin's note on gestor2's institution-1 account, and an inbound message already
    assigned to that account (a row in a throwaway institution-1 mailbox)."""
    if getattr(w, "others", None) is None:
        admin = w.tokens["admin"]
        account_id, debtor_id = _portfolio(w)["i1_gestor2"]
        note = w.ok("POST", "/api/v1/activities", admin, {
            "account_id": account_id, "kind": "note", "started_at": _now_iso(),
            "description": f"Matriz {RUN} ajena"})
        mailbox = w.ok("POST", "/api/v1/mailboxes", admin, {
            "institution_id": 1, "name": f"Matriz {RUN} ajeno", "address": "matriz1@recaudo.test",
            "imap_host": "127.0.0.1", "imap_port": 1, "imap_tls": False,
            "imap_user": "matriz", "imap_password": "matriz-clave", "smtp_host": "127.0.0.1",
            "smtp_port": 1, "smtp_security": "none"})
        engine = create_engine(settings().database_url)
        with engine.begin() as conn:
            inbound = conn.execute(text(
                "INSERT INTO messaging.inbound_messages (mailbox_id, institution_id, uidvalidity,"
                " uid, message_id, subject, state, matched_by, debtor_id, account_id) VALUES "
                "(:m, 1, 1, 1, :mid, 'Matriz', 'assigned', 'manual', :d, :a) RETURNING id"),
                {"m": mailbox["id"], "mid": f"<matriz-{RUN}@recaudo.test>", "d": debtor_id,
                 "a": account_id}).scalar_one()
        engine.dispose()
        w.others = {"note": note["id"], "account": account_id, "mailbox": mailbox["id"],
                    "inbound": inbound}
    return w.others


@pytest.fixture(scope="module", autouse=True)
def _remove_others_mailbox(world):
    yield
    if getattr(world, "others", None) is not None:
        engine = create_engine(settings().database_url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM messaging.inbound_messages WHERE mailbox_id = :m"),
                         {"m": world.others["mailbox"]})
            conn.execute(text("DELETE FROM messaging.mailboxes WHERE id = :m"),
                         {"m": world.others["mailbox"]})
        engine.dispose()


def _corrects(institution_id: int, assigned_to: str) -> Rule:
    """A correction of admin's entry on that account: read it first (else 404), then be
    its author's manager (activities.manage; else 403), then the body (422)."""
    reads = PORTFOLIO_RULES.reads(institution_id, assigned_to, 422, permission=ACT_LOG)

    def decide(who: Who) -> int:
        status = reads(who)
        if status == 422 and ACT_MANAGE not in who.permissions:
            return 403
        return status

    return Rule(decide, label=f"corrects({institution_id}, {assigned_to})")


TABLE.extend([
    Row("activities.get.others-i1", "GET", "/api/v1/activities/{activity_id}", None,
        PORTFOLIO_RULES.reads(1, "gestor2", permission=ACT_READ),
        params=lambda w: {"activity_id": _others(w)["note"]}),
    Row("activities.correct.others-i1", "POST", "/api/v1/activities/{activity_id}/corrections",
        lambda w, uniq: {"kind": "call", "started_at": _now_iso(),
                         "result_code": "MATRIZNOEXISTE"},
        _corrects(1, "gestor2"), params=lambda w: {"activity_id": _others(w)["note"]}),
    Row("messaging.inbound.get.others-i1", "GET", "/api/v1/inbound-messages/{inbound_id}", None,
        PORTFOLIO_RULES.reads(1, "gestor2", permission=MSG_SEND),
        params=lambda w: {"inbound_id": _others(w)["inbound"]}),
    Row("messaging.inbound.assign.others-i1", "POST",
        "/api/v1/inbound-messages/{inbound_id}/assign",
        lambda w, uniq: {"account_id": _others(w)["account"]},
        PORTFOLIO_RULES.reads(1, "gestor2", 409, permission=MSG_SEND),
        params=lambda w: {"inbound_id": _others(w)["inbound"]}),
    Row("rpc.activities.correct_activity.others-i1", "RPC", "activities.correct_activity",
        lambda w, uniq: [_others(w)["note"], {"kind": "call", "started_at": _now_iso(),
                                              "result_code": "MATRIZNOEXISTE"}],
        _corrects(1, "gestor2")),
    Row("rpc.messaging.assign_inbound.others-i1", "RPC", "messaging.assign_inbound",
        lambda w, uniq: [_others(w)["inbound"], {"account_id": _others(w)["account"]}],
        PORTFOLIO_RULES.reads(1, "gestor2", 409, permission=MSG_SEND)),
])


@pytest.fixture(scope="module")
def world(stack, demo_users):
    """Tokens and identities of every column, and the throwaways the rows act on
    (``demo_users``, from conftest, seeds the demo users and institutions)."""
    w = World(stack.base_url)
    for username in ("admin", "supervisor", "gestor1", "abogado", "cliente"):
        w.logins[username] = (username, demo_users)
        w.tokens[username] = w.login(username)
    admin = w.tokens["admin"]
    profiles = w.ok("GET", "/api/v1/profiles", admin)
    w.profiles = {p["name"]: p["id"] for p in profiles}
    w.administrador = next({k: p[k] for k in ("name", "description", "permissions",
                                              "single_institution")}
                           for p in profiles if p["name"] == "Administrador")
    users = w.ok("GET", "/api/v1/users?per_page=200", admin)["items"]
    w.ids = {u["username"]: u["id"] for u in users if u["username"] in DEMO_USERS}

    def create(username, profile, **extra):
        body = {"username": username, "display_name": username, "password": PASSWORD,
                "profile_id": w.profiles[profile], "institutions": [1], **extra}
        return w.ok("POST", "/api/v1/users", admin, body)["id"]

    # the partner system: an Integración user of institution 1 and its API key
    w.ids["integracion"] = create(f"matriz-socio-{RUN}", "Integración")
    w.tokens["integracion"] = w.ok("POST", "/api/v1/api-keys", admin, {
        "user_id": w.ids["integracion"], "name": f"matriz {RUN}"})["key"]
    w.throwaway_key_id = w.ok("POST", "/api/v1/api-keys", admin, {
        "user_id": w.ids["integracion"], "name": f"matriz desechable {RUN}"})["id"]
    # an administrator of institution 1 holding nothing but users.manage
    local = w.ok("POST", "/api/v1/profiles", admin, {
        "name": f"Matriz Admin Local {RUN}", "permissions": ["users.manage"]})
    w.profiles[local["name"]] = local["id"]
    w.ids["adminlocal"] = create(f"matriz-local-{RUN}", local["name"])
    w.logins["adminlocal"] = (f"matriz-local-{RUN}", PASSWORD)
    w.tokens["adminlocal"] = w.login("adminlocal")
    # what the state-changing rows act on
    w.ids["throwaway"] = create(f"matriz-desechable-{RUN}", "Gestor")
    w.ids["disabled"] = create(f"matriz-inactivo-{RUN}", "Gestor", active=False)
    w.throwaway_profile = {"name": f"Matriz desechable {RUN}", "description": "matriz",
                           "permissions": ["reports.view"], "single_institution": False}
    w.throwaway_profile_id = w.ok("POST", "/api/v1/profiles", admin, w.throwaway_profile)["id"]
    w.team_id = w.ok("POST", "/api/v1/teams", admin, {
        "name": f"Matriz equipo {RUN}", "supervisor_id": w.ids["supervisor"],
        "members": [w.ids["gestor2"]]})["id"]

    # identities for the RPC rows: real ones, from logging in and from the API key
    with ClusterRpcProxy(settings().nameko, timeout=30) as proxy:
        for who, (username, password) in w.logins.items():
            w.identities[who] = proxy.auth.login(username, password)["identity"]
        w.identities["integracion"] = proxy.auth.resolve_token(w.tokens["integracion"])["identity"]
    everything = Identity(user_id=w.ids["admin"], username="admin", profile="Administrador",
                          permissions=frozenset(PERMISSIONS), institutions=None)
    w.identities["forged"] = sign(everything, key="not-the-platform-identity-key")
    w.tokens["forged"] = "at_" + secrets.token_urlsafe(32)

    yield w
    _remove_throwaways()


def _remove_throwaways():
    """Delete what this module created (every name starts with "matriz"/"Matriz")."""
    engine = create_engine(settings().database_url)
    doomed = "SELECT id FROM auth.users WHERE username LIKE 'matriz-%'"
    teams = f"SELECT id FROM auth.teams WHERE name LIKE 'Matriz %' OR supervisor_id IN ({doomed})"
    with engine.begin() as conn:
        for statement in (
                f"DELETE FROM auth.team_members WHERE team_id IN ({teams}) "
                f"OR user_id IN ({doomed})",
                f"DELETE FROM auth.teams WHERE id IN ({teams})",
                f"DELETE FROM auth.api_keys WHERE user_id IN ({doomed}) "
                f"OR created_by IN ({doomed})",
                f"DELETE FROM auth.api_tokens WHERE user_id IN ({doomed})",
                f"DELETE FROM auth.sessions WHERE user_id IN ({doomed})",
                "DELETE FROM auth.users WHERE username LIKE 'matriz-%'",
                "DELETE FROM auth.profiles p WHERE name LIKE 'Matriz %' AND NOT EXISTS "
                "(SELECT 1 FROM auth.users u WHERE u.profile_id = p.id)"):
            conn.execute(text(statement))
    engine.dispose()


@pytest.fixture(scope="module")
def rpc_as(world):
    """who -> a started cluster proxy carrying that caller's identity (none: anonymous)."""
    started, proxies = [], {}

    def get(who: str):
        if who not in proxies:
            context = {"identity": world.identities[who]} if who in world.identities else {}
            standalone = ClusterRpcProxy(settings().nameko, context_data=context, timeout=30)
            proxies[who] = standalone.start()
            started.append(standalone)
        return proxies[who]

    yield get
    for standalone in started:
        standalone.stop()


# --- contact compliance (issue 24) -------------------------------------------------------------
# Policies are read by administrators and compliance officers (only the demo admin holds
# either) and written by a compliance officer (a jurisdiction that is none answers 422 once
# permitted: no version is written); the compliance log is theirs; a debtor's preferences
# and refusals are read and written like the debtor's accounts (gestor1's institution-2
# debtor: 404 outside the caller's reach; the empty write changes nothing but its author).

COMPLIANCE = "compliance.manage"


def _i2_debtor(w) -> dict:
    return {"debtor_id": _portfolio(w)["i2_gestor1"][1]}


TABLE.extend([
    Row("compliance.policies.list", "GET", "/api/v1/contact-policies", None,
        RULES.perm(COMPLIANCE)),
    Row("compliance.policies.write.not-a-jurisdiction", "POST",
        "/api/v1/contact-policies/{jurisdiction}",
        {"effective_from": "2099-01-01T00:00:00+00:00", "rules": [{"rule": "window"}]},
        RULES.perm(COMPLIANCE, 422), params=lambda w: {"jurisdiction": "1X"}),
    Row("compliance.log", "GET", "/api/v1/compliance-log", None, RULES.perm(COMPLIANCE)),
    Row("compliance.log.csv", "GET", "/api/v1/compliance-log.csv", None, RULES.perm(COMPLIANCE)),
    Row("compliance.debtor.i2", "GET", "/api/v1/debtors/{debtor_id}/compliance", None,
        PORTFOLIO_RULES.reads(2, "gestor1", permission=ACT_READ), params=_i2_debtor),
    Row("compliance.preferences.unchanged.i2", "PUT",
        "/api/v1/debtors/{debtor_id}/contact-preferences", {},
        PORTFOLIO_RULES.reads(2, "gestor1", permission=ACT_LOG), params=_i2_debtor),
    Row("rpc.activities.list_contact_policies", "RPC", "activities.list_contact_policies",
        [None], RULES.perm(COMPLIANCE)),
    Row("rpc.activities.save_contact_policy.not-a-jurisdiction", "RPC",
        "activities.save_contact_policy",
        ["1X", {"effective_from": "2099-01-01T00:00:00+00:00", "rules": [{"rule": "window"}]}],
        RULES.perm(COMPLIANCE, 422)),
    Row("rpc.activities.compliance_log", "RPC", "activities.compliance_log", [{}],
        RULES.perm(COMPLIANCE)),
    Row("rpc.activities.compliance_log_csv", "RPC", "activities.compliance_log_csv", [{}],
        RULES.perm(COMPLIANCE)),
    Row("rpc.activities.judge_contact.i2", "RPC", "activities.judge_contact",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][0], "letter", None],
        PORTFOLIO_RULES.reads(2, "gestor1", permission=ACT_READ)),
    # a send another service is about to make, judged (a letter to no address: allowed,
    # nothing logged)
    Row("rpc.activities.check_contact.i2", "RPC", "activities.check_contact",
        lambda w, uniq: [{"account_id": _portfolio(w)["i2_gestor1"][0], "channel": "letter"}],
        PORTFOLIO_RULES.reads(2, "gestor1", permission=ACT_READ)),
    Row("rpc.activities.debtor_compliance.i2", "RPC", "activities.debtor_compliance",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][1]],
        PORTFOLIO_RULES.reads(2, "gestor1", permission=ACT_READ)),
    Row("rpc.activities.save_debtor_preferences.unchanged.i2", "RPC",
        "activities.save_debtor_preferences",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][1], {}],
        PORTFOLIO_RULES.reads(2, "gestor1", permission=ACT_LOG)),
])



# --- payments from outside the files and partners' webhooks (issue 25) -------------------------
# Payment instructions follow the account's reach; bank details and providers are an
# administrator's (institutions.manage) within the institution; the triage list needs
# portfolio.write (supervisors, administrators), a payment already dismissed answers 409 to
# who may reach it and 404 to the rest. The providers' webhook is public (its signature is
# the credential): unsigned, 401 for everyone. Partners' subscriptions need webhooks.manage
# within the institution; a URL that is not https answers 422 once allowed.
WEBHOOKS = "webhooks.manage"
PROVIDER_SECRET = "matriz-secreto-del-proveedor-0123456789"


def _payments(w) -> dict:
    """An institution-2 provider, a payment it notified under an unknown reference,
    dismissed, and an institution-2 partner subscription (written straight to the table:
    its URL is never called)."""
    if getattr(w, "payments", None) is None:
        import json as _json
        import time as _time

        from portfolio.payment_refs import derive
        from portfolio.payment_webhooks import signature

        admin = w.tokens["admin"]
        name = f"matriz-{RUN}"
        provider = w.ok("POST", "/api/v1/payment-providers", admin, {
            "name": name, "institution_id": 2, "secret": PROVIDER_SECRET})
        body = _json.dumps({"payment_id": f"P-{RUN}", "reference": derive(2, 10 ** 12),
                            "amount": "10.00", "paid_at": "2026-12-01T12:00:00Z"})
        stamp = str(int(_time.time()))
        answer = w.http.post(f"{w.base_url}/api/v1/webhooks/payments/{name}", data=body,
                             headers={"Content-Type": "application/json",
                                      "X-Recaudo-Timestamp": stamp,
                                      "X-Recaudo-Signature": signature(PROVIDER_SECRET, stamp, body)},
                             timeout=30).json()
        assert answer["status"] == "unmatched", answer
        w.ok("POST", f"/api/v1/payment-triage/{answer['id']}/dismiss", admin,
             {"note": "Matriz: ajeno"})
        engine = create_engine(settings().database_url)
        with engine.begin() as conn:
            subscription = conn.execute(text(
                "INSERT INTO messaging.webhook_subscriptions (institution_id, owner_id, "
                "contact_email, url, events, secret_sealed) VALUES (2, 1, 'matriz@socio.test', "
                "'https://socio.example/matriz', '[\"promise_made\"]', 'x') RETURNING id")).scalar()
        engine.dispose()
        w.payments = {"provider": provider, "dismissed": answer["id"],
                      "subscription_i2": subscription}
    return w.payments


def _provider_body(w, uniq):
    return {"name": _payments(w)["provider"]["name"], "institution_id": 2}


TABLE.extend([
    Row("payments.instructions.i1", "GET", "/api/v1/accounts/{account_id}/payment-instructions",
        None, PORTFOLIO_RULES.reads(1, "gestor1"), params=_account("i1_gestor1")),
    Row("payments.instructions.i2", "GET", "/api/v1/accounts/{account_id}/payment-instructions",
        None, PORTFOLIO_RULES.reads(2, "gestor1"), params=_account("i2_gestor1")),
    Row("payments.settings.get.i2", "GET", "/api/v1/institutions/{institution_id}/payment-settings",
        None, PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2),
        params=lambda w: {"institution_id": 2}),
    Row("payments.settings.put.i2", "PUT", "/api/v1/institutions/{institution_id}/payment-settings",
        {"bank_name": "Banco de la matriz"}, PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2),
        params=lambda w: {"institution_id": 2}),
    Row("payments.providers.list", "GET", "/api/v1/payment-providers", None,
        RULES.perm(INSTITUTIONS_MANAGE)),
    Row("payments.providers.create.i2", "POST", "/api/v1/payment-providers",
        lambda w, uniq: {"name": f"m{RUN}-{uniq.rsplit('-', 1)[-1]}", "institution_id": 2,
                         "secret": PROVIDER_SECRET},
        PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2, 201)),
    Row("payments.providers.update.unchanged.i2", "PUT", "/api/v1/payment-providers/{provider_id}",
        _provider_body, PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2),
        params=lambda w: {"provider_id": _payments(w)["provider"]["id"]}),
    Row("payments.triage.list", "GET", "/api/v1/payment-triage", None,
        RULES.perm(PORTFOLIO_WRITE)),
    Row("payments.triage.assign.dismissed.i2", "POST",
        "/api/v1/payment-triage/{notification_id}/assign",
        lambda w, uniq: {"account_id": _portfolio(w)["i2_gestor1"][0]},
        PORTFOLIO_RULES.in_institution(PORTFOLIO_WRITE, 2, 409),
        params=lambda w: {"notification_id": _payments(w)["dismissed"]}),
    Row("payments.triage.dismiss.dismissed.i2", "POST",
        "/api/v1/payment-triage/{notification_id}/dismiss", {"note": "otra vez"},
        PORTFOLIO_RULES.in_institution(PORTFOLIO_WRITE, 2, 409),
        params=lambda w: {"notification_id": _payments(w)["dismissed"]}),
    Row("payments.webhook.unsigned", "POST", "/api/v1/webhooks/payments/{provider}",
        {"payment_id": "x", "reference": "1", "amount": "1.00", "paid_at": "2026-12-01T00:00:00Z"},
        RULES.public(401), params=lambda w: {"provider": _payments(w)["provider"]["name"]}),
    Row("webhooks.subscriptions.list", "GET", "/api/v1/webhook-subscriptions", None,
        RULES.perm(WEBHOOKS)),
    Row("webhooks.subscriptions.create.http.i2", "POST", "/api/v1/webhook-subscriptions",
        {"institution_id": 2, "url": "http://socio.example/hook", "events": ["promise_made"],
         "contact_email": "socio@socio.example"},
        PORTFOLIO_RULES.in_institution(WEBHOOKS, 2, 422)),
    Row("webhooks.subscriptions.update.unchanged.i2", "PATCH",
        "/api/v1/webhook-subscriptions/{subscription_id}", {},
        PORTFOLIO_RULES.in_institution(WEBHOOKS, 2),
        params=lambda w: {"subscription_id": _payments(w)["subscription_i2"]}),
    Row("webhooks.subscriptions.delete.missing", "DELETE",
        "/api/v1/webhook-subscriptions/{subscription_id}", None, RULES.perm(WEBHOOKS, 404),
        params=lambda w: {"subscription_id": 999_999_999}),
    Row("webhooks.deliveries.i2", "GET", "/api/v1/webhook-subscriptions/{subscription_id}/deliveries",
        None, PORTFOLIO_RULES.in_institution(WEBHOOKS, 2),
        params=lambda w: {"subscription_id": _payments(w)["subscription_i2"]}),
    Row("webhooks.deliveries.resend.missing", "POST",
        "/api/v1/webhook-deliveries/{delivery_id}/resend", None, RULES.perm(WEBHOOKS, 404),
        params=lambda w: {"delivery_id": 999_999_999}),
    Row("rpc.portfolio.payment_instructions.i2", "RPC", "portfolio.payment_instructions",
        lambda w, uniq: [_portfolio(w)["i2_gestor1"][0]], PORTFOLIO_RULES.reads(2, "gestor1")),
    Row("rpc.portfolio.get_payment_settings.i2", "RPC", "portfolio.get_payment_settings", [2],
        PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2)),
    Row("rpc.portfolio.save_payment_settings.i2", "RPC", "portfolio.save_payment_settings",
        [2, {"bank_name": "Banco de la matriz"}],
        PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2)),
    Row("rpc.portfolio.list_payment_providers", "RPC", "portfolio.list_payment_providers", [],
        RULES.perm(INSTITUTIONS_MANAGE)),
    Row("rpc.portfolio.save_payment_provider.unchanged.i2", "RPC",
        "portfolio.save_payment_provider",
        lambda w, uniq: [_provider_body(w, uniq), _payments(w)["provider"]["id"]],
        PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2)),
    Row("rpc.portfolio.payment_triage", "RPC", "portfolio.payment_triage", [{}],
        RULES.perm(PORTFOLIO_WRITE)),
    Row("rpc.portfolio.assign_triaged_payment.dismissed.i2", "RPC",
        "portfolio.assign_triaged_payment",
        lambda w, uniq: [_payments(w)["dismissed"], {"account_id": _portfolio(w)["i2_gestor1"][0]}],
        PORTFOLIO_RULES.in_institution(PORTFOLIO_WRITE, 2, 409)),
    Row("rpc.portfolio.dismiss_triaged_payment.dismissed.i2", "RPC",
        "portfolio.dismiss_triaged_payment",
        lambda w, uniq: [_payments(w)["dismissed"], {"note": "otra vez"}],
        PORTFOLIO_RULES.in_institution(PORTFOLIO_WRITE, 2, 409)),
    Row("rpc.messaging.list_webhook_subscriptions", "RPC", "messaging.list_webhook_subscriptions",
        [], RULES.perm(WEBHOOKS)),
    Row("rpc.messaging.create_webhook_subscription.http.i2", "RPC",
        "messaging.create_webhook_subscription",
        [{"institution_id": 2, "url": "http://socio.example/hook", "events": ["promise_made"],
          "contact_email": "socio@socio.example"}],
        PORTFOLIO_RULES.in_institution(WEBHOOKS, 2, 422)),
    Row("rpc.messaging.update_webhook_subscription.unchanged.i2", "RPC",
        "messaging.update_webhook_subscription",
        lambda w, uniq: [_payments(w)["subscription_i2"], {}],
        PORTFOLIO_RULES.in_institution(WEBHOOKS, 2)),
    Row("rpc.messaging.delete_webhook_subscription.missing", "RPC",
        "messaging.delete_webhook_subscription", [999_999_999], RULES.perm(WEBHOOKS, 404)),
    Row("rpc.messaging.webhook_deliveries.i2", "RPC", "messaging.webhook_deliveries",
        lambda w, uniq: [_payments(w)["subscription_i2"], {}],
        PORTFOLIO_RULES.in_institution(WEBHOOKS, 2)),
    Row("rpc.messaging.resend_webhook_delivery.missing", "RPC",
        "messaging.resend_webhook_delivery", [999_999_999], RULES.perm(WEBHOOKS, 404)),
])

# --- issue 25's settings as administrator screens ------------------------------------------
# The pages call the RPCs of the API rows above with the same permissions; an anonymous
# visitor is sent to the login page (302), a change that works redirects to its notice
# (302). Every route of the two blueprints has a row (test_every_settings_page_is_in_the_table).

def _page(rule: Rule) -> Rule:
    return rule.but(anonymous=302)


def _limits_form(w) -> dict:
    """Institution 2's limits as the editor posts them, unchanged."""
    limits = w.ok("GET", "/api/v1/institutions/2/plan-limits", w.tokens["admin"])
    form = {"institution_id": 2, **{k: limits[k] for k in (
        "max_instalments", "min_first_payment", "min_first_payment_pct", "max_plan_days",
        "offer_expiry_days")}}
    for i, band in enumerate(limits["discount_bands"]):
        form.update({f"bands-{i}-stage": band["stage"] or "", f"bands-{i}-dpd_from": band["dpd_from"],
                     f"bands-{i}-dpd_to": "" if band["dpd_to"] is None else band["dpd_to"]})
        for j, threshold in enumerate(band["thresholds"]):
            form.update({f"bands-{i}-t{j}-pct": threshold["up_to_pct"],
                         f"bands-{i}-t{j}-approver": threshold["approver"] or ""})
    return form


def _portal_form(w) -> dict:
    current = w.ok("GET", "/api/v1/institutions/2/portal-settings", w.tokens["admin"])
    return {"institution_id": 2, "second_factor": current["second_factor"],
            "link_ttl_hours": current["link_ttl_hours"]}


def _payments_form(w) -> dict:
    current = w.ok("GET", "/api/v1/institutions/2/payment-settings", w.tokens["admin"])
    return {"institution_id": 2, **{k: current[k] or "" for k in (
        "clabe", "bank_name", "beneficiary", "convenio")}}


def _hub(who: Who) -> int:
    if not who.authenticated:
        return 302 if who.credential == "none" else 401
    return 302 if who.permissions & {USERS_MANAGE, ACT_MANAGE, INSTITUTIONS_MANAGE, WEBHOOKS,
                                     "audit.view"} else 403


SETTINGS_PAGES = [
    Row("ui.admin.hub", "GET", "/admin/", None, Rule(_hub, label="hub"), page=True),
    Row("ui.settings.limits.i2", "GET", "/admin/limites", None,
        _page(PORTFOLIO_RULES.in_institution(ACT_READ, 2)), page=True,
        query=lambda w: "institucion=2"),
    Row("ui.settings.limits.save.unchanged.i2", "POST", "/admin/limites",
        lambda w, uniq: _limits_form(w), _page(PORTFOLIO_RULES.in_institution(ACT_MANAGE, 2, 302)),
        page=True),
    Row("ui.settings.portal.i2", "GET", "/admin/portal", None,
        _page(RULES.institution(2)), page=True, query=lambda w: "institucion=2"),
    Row("ui.settings.portal.save.unchanged.i2", "POST", "/admin/portal",
        lambda w, uniq: _portal_form(w),
        _page(PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2, 302)), page=True),
    Row("ui.settings.payments.i2", "GET", "/admin/pagos", None,
        _page(PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2)), page=True,
        query=lambda w: "institucion=2"),
    Row("ui.settings.payments.save.unchanged.i2", "POST", "/admin/pagos",
        lambda w, uniq: _payments_form(w),
        _page(PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2, 302)), page=True),
    Row("ui.settings.providers.create.bad-name.i2", "POST", "/admin/pagos/proveedores",
        {"institution_id": 2, "name": "Nombre Malo!"},
        _page(PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2, 422)), page=True),
    Row("ui.settings.providers.rotate.missing", "POST",
        "/admin/pagos/proveedores/{provider_id}/secreto", None,
        _page(RULES.perm(INSTITUTIONS_MANAGE, 404)), page=True,
        params=lambda w: {"provider_id": 999_999_999}),
    Row("ui.settings.providers.active.unchanged.i2", "POST",
        "/admin/pagos/proveedores/{provider_id}/activo", {"active": "1"},
        _page(PORTFOLIO_RULES.in_institution(INSTITUTIONS_MANAGE, 2, 302)), page=True,
        params=lambda w: {"provider_id": _payments(w)["provider"]["id"]}),
    Row("ui.webhooks.list", "GET", "/admin/webhooks", None, _page(RULES.perm(WEBHOOKS)),
        page=True),
    Row("ui.webhooks.create.http.i2", "POST", "/admin/webhooks",
        {"institution_id": 2, "url": "http://socio.example/hook", "events": "promise_made",
         "contact_email": "socio@socio.example"},
        _page(PORTFOLIO_RULES.in_institution(WEBHOOKS, 2, 422)), page=True),
    Row("ui.webhooks.active.unchanged.i2", "POST", "/admin/webhooks/{subscription_id}/estado",
        {"active": "1"}, _page(PORTFOLIO_RULES.in_institution(WEBHOOKS, 2, 302)), page=True,
        params=lambda w: {"subscription_id": _payments(w)["subscription_i2"]}),
    Row("ui.webhooks.delete.missing", "POST", "/admin/webhooks/{subscription_id}/eliminar",
        None, _page(RULES.perm(WEBHOOKS, 404)), page=True,
        params=lambda w: {"subscription_id": 999_999_999}),
    Row("ui.webhooks.deliveries.i2", "GET", "/admin/webhooks/{subscription_id}", None,
        _page(PORTFOLIO_RULES.in_institution(WEBHOOKS, 2)), page=True,
        params=lambda w: {"subscription_id": _payments(w)["subscription_i2"]}),
    Row("ui.webhooks.resend.missing", "POST", "/admin/webhooks/entregas/{delivery_id}/reenviar",
        None, _page(RULES.perm(WEBHOOKS, 404)), page=True,
        params=lambda w: {"delivery_id": 999_999_999}),
]
TABLE.extend(SETTINGS_PAGES)


# --- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.name)
def test_access(world, rpc_as, row: Row, who: str):
    caller = WHO[who]
    expected = row.rule(caller)
    uniq = f"{RUN}-{row.name.replace('.', '-').replace('_', '-')}-{who}"
    body = row.body(world, uniq) if callable(row.body) else row.body

    if row.method == "RPC":
        service, method = row.path.split(".")
        call = getattr(getattr(rpc_as(who), service), method)
        if expected < 300:
            answer = call(*body)
        else:
            with pytest.raises(RPC_ERROR[expected]):
                call(*body)
            return
    else:
        token = world.tokens.get(who)
        if row.fresh_credentials and caller.credential == "token":
            token = world.login(who)
        path = row.path.format(**row.params(world)) if row.params else row.path
        if row.query:
            path += "?" + row.query(world)
        response = (world.submit if row.page else world.call)(row.method, path, token, body)
        assert response.status_code == expected, \
            f"{row.method} {path} as {who}: {response.status_code} {response.text[:300]}"
        if expected >= 400 and "json" in response.headers.get("Content-Type", ""):
            assert set(response.json()) == {"error"}
        if row.page:   # a redirect is to the login page exactly when nobody is signed in
            if expected == 302:
                location = response.headers["Location"]
                assert ("/login" in location) == (caller.credential == "none"), location
            return
        if row.fresh_credentials and caller.credential == "token" and expected < 300:
            assert world.call("GET", "/api/v1/auth/me", token).status_code == 401
        if expected >= 300 or expected == 204 or row.check is None:
            return
        answer = response.json()
    if row.check:
        row.check(world, caller, answer)


def test_every_api_route_is_in_the_table(stack):
    spec = requests.get(stack.base_url + "/api/v1/openapi.json", timeout=30).json()
    routes = {(method.upper(), path) for path, item in spec["paths"].items()
              for method in item if method in ("get", "post", "put", "patch", "delete")}
    covered = {(row.method, row.path) for row in TABLE if row.method != "RPC"}
    missing = sorted(routes - covered, key=lambda r: (r[1], r[0]))
    assert not missing, "add rows to TABLE for these routes:\n" + "\n".join(
        f"  {method} {path}" for method, path in missing)



def test_every_settings_page_is_in_the_table():
    """Each route of the settings and partner-webhook screens (issue 25) has a row."""
    from flask import Flask

    from gateway.ui.institution_settings import bp as settings_bp
    from gateway.ui.partner_webhooks import bp as webhooks_bp

    app = Flask(__name__)
    app.register_blueprint(settings_bp)
    app.register_blueprint(webhooks_bp)
    routes = {(method, rule.rule.replace("<int:", "{").replace(">", "}"))
              for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    covered = {(row.method, row.path) for row in SETTINGS_PAGES}
    assert routes and not sorted(routes - covered), sorted(routes - covered)


def caller_reading_rpcs(service) -> set[str]:
    """The service's RPC entrypoints that read the caller, directly or through one of the
    class's own helpers (e.g. ``self._campaign_reader()``); helpers are not entrypoints."""
    import inspect
    import re

    # the class's own members and its mixins' (a service's entrypoints of one concern
    # may live in a module of their own, mixed in)
    members = {name: member for klass in reversed(service.__mro__)
               for name, member in vars(klass).items()}
    sources = {name: inspect.getsource(member) for name, member in members.items()
               if inspect.isfunction(member)}

    def reads(name: str, seen: frozenset = frozenset()) -> bool:
        source = sources[name]
        return "self.caller" in source or any(
            called in sources and called not in seen and reads(called, seen | {name})
            for called in re.findall(r"self\.(\w+)\(", source))

    return {f"{service.name}.{name}" for name, member in members.items()
            if getattr(member, "nameko_entrypoints", None) and reads(name)}


def test_every_identity_checked_rpc_is_in_the_table():
    """Each entrypoint of the auth, portfolio, activities, documents and messaging services that reads
    the caller."""

    from activities.service import ActivitiesService
    from auth.service import AuthService
    from documents.service import DocumentsService
    from messaging.service import MessagingService
    from portfolio.service import PortfolioService

    expected = set().union(*(caller_reading_rpcs(service) for service in (
        AuthService, PortfolioService, ActivitiesService, DocumentsService, MessagingService)))
    covered = {row.path for row in TABLE if row.method == "RPC"}
    missing = sorted(expected - covered)
    assert expected and not missing, "add RPC rows to TABLE for: " + ", ".join(missing)


def test_the_table_names_are_unique_and_rules_cover_every_column():
    assert len({row.name for row in TABLE}) == len(TABLE)
    for row in TABLE:
        for caller in WHO.values():
            assert row.rule(caller) in (200, 201, 204, 302, 401, 403, 404, 409, 422), \
                (row.name, caller)
            assert row.page or row.rule(caller) != 302, (row.name, caller)
    # the explicit cross-institution denials the table must keep
    assert RULES.institution(2)(WHO["cliente"]) == 404
    assert RULES.institution(3)(WHO["gestor1"]) == 404
    assert RULES.perm(USERS_MANAGE, reach=None)(WHO["adminlocal"]) == 404
    assert set(SERVICES) >= {"auth", "portfolio"}


def test_every_queues_rpc_and_its_cross_institution_answers_are_in_the_table():
    """Each entrypoint of the queues service that reads the caller has a row, and the
    institution-2 rebuild keeps its explicit answers."""

    from queues.service import QueuesService

    expected = caller_reading_rpcs(QueuesService)
    covered = {row.path for row in TABLE if row.method == "RPC"}
    missing = sorted(expected - covered)
    assert expected and not missing, "add RPC rows to TABLE for: " + ", ".join(missing)
    rebuild = next(row for row in TABLE if row.name == "queues.rebuild.i2")
    assert rebuild.path == "/api/v1/institutions/{institution_id}/rebuild"
    assert rebuild.rule(WHO["cliente"]) == 403       # no queues.manage
    assert rebuild.rule(WHO["supervisor"]) == 200    # every institution
    assert rebuild.rule(WHO["adminlocal"]) == 403    # a scoped admin
    assert rebuild.rule(WHO["gestor1"]) == 403 and rebuild.rule(WHO["anonymous"]) == 401


def test_every_reports_rpc_and_each_reports_cross_institution_answer_are_in_the_table():
    """Each entrypoint of the reports service that reads the caller has a row, and every
    report keeps a row asking for another institution (the creditor gets 404)."""

    from reports.service import ReportsService

    expected = caller_reading_rpcs(ReportsService)
    covered = {row.path for row in TABLE if row.method == "RPC"}
    assert expected and not sorted(expected - covered)
    for key in REPORT_KEYS:
        row = next(r for r in TABLE if r.name == f"reports.{key}.i2")
        assert row.rule(WHO["cliente"]) == 404 and row.rule(WHO["integracion"]) == 404
        assert row.rule(WHO["supervisor"]) == 200 and row.rule(WHO["gestor1"]) == 403
