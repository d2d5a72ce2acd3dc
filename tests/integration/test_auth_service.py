"""The auth service over RabbitMQ against the real test database: logins, throttling and
lockout, sessions, tokens with refresh rotation, API keys, disabling, reach and input.

Every test that needs users starts from the seeded defaults and demo users (the auth
tables truncated first and again after, so nothing leaks into other suites); the
demo institutions 1-3 are inserted for the module and removed after if they were not
there before. Argon2 verifies cost ~0.1 s each, so tests log in sparingly: identities
are cached per test, and where a rule needs many failed attempts only the attempts
that prove something go through the real path.
"""
from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from auth import seed as auth_seed
from auth.authentication import INVALID_CREDENTIALS
from auth.service import AuthService
from portfolio.models import Institution
from portfolio.service import PortfolioService
from recaudo_common import demo
from recaudo_common.errors import (Conflict, InvalidInput, NotAuthenticated, NotFound,
                                   PermissionDenied, Throttled)
from recaudo_common.identity import sign, verify

from .helpers import scalar, sql

DEMO = demo.DEMO_PASSWORD
OTHER_PASSWORD = "caballo-bateria-grapa"
WRONG = "contraseña-equivocada"

AUTH_TABLES = ("users", "profiles", "teams", "team_members", "sessions", "api_tokens",
               "api_keys", "login_failures", "audit_log", "outbox")


def _truncate(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(f"auth.{t}" for t in AUTH_TABLES)
                          + " RESTART IDENTITY CASCADE"))


def audit_actions(engine, **where) -> list[str]:
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "true"
    return [r[0] for r in sql(engine, f"SELECT action FROM auth.audit_log WHERE {clause} "
                                      "ORDER BY id", **where)]


def user_id(engine, username: str) -> int:
    return scalar(engine, "SELECT id FROM auth.users WHERE username = :u", u=username)


def profile_id(engine, name: str) -> int:
    return scalar(engine, "SELECT id FROM auth.profiles WHERE name = :n", n=name)


# --- fixtures ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def institutions(migrated_database, engine):
    """The demo institutions 1-3 (only those rows: the demo portfolio's debtors are not
    needed here), removed after if this module added them."""
    before = {r[0] for r in sql(engine, "SELECT id FROM portfolio.institutions")}
    with engine.begin() as conn:
        conn.execute(insert(Institution).values(
            [{"id": i, "code": code, "name": name} for i, code, name in demo.INSTITUTIONS]
        ).on_conflict_do_nothing())
        conn.execute(text("SELECT setval(pg_get_serial_sequence('portfolio.institutions', 'id'),"
                          " (SELECT max(id) FROM portfolio.institutions))"))
    yield
    added = [i for i, _, _ in demo.INSTITUTIONS if i not in before]
    if added:
        sql(engine, "DELETE FROM portfolio.institutions WHERE id = ANY(:ids)", ids=added)


@pytest.fixture
def seeded(engine, institutions):
    """Default profiles and the demo users (admin, supervisor, gestor1, gestor2, abogado,
    cliente; password ``recaudo-demo``) on empty auth tables."""
    _truncate(engine)
    auth_seed.seed_defaults()
    auth_seed.seed_demo()
    yield
    _truncate(engine)


@pytest.fixture
def services(container_factory, rabbit_config):
    for cls in (AuthService, PortfolioService):
        container_factory(cls, rabbit_config).start()


@pytest.fixture
def anon(services, rpc_proxy):
    """A proxy with no identity: the entrypoints that establish one."""
    return rpc_proxy()


@pytest.fixture
def as_user(anon, rpc_proxy):
    """``as_user("admin")``: a proxy carrying the identity a real login answered."""
    cache = {}

    def make(username, password=DEMO):
        if username not in cache:
            cache[username] = rpc_proxy({"identity": anon.auth.login(username, password)["identity"]})
        return cache[username]

    return make


def new_user(admin, engine, username, profile, institutions=(1,), password=OTHER_PASSWORD,
             **extra):
    return admin.auth.create_user({
        "username": username, "display_name": username.title(), "password": password,
        "profile_id": profile_id(engine, profile), "institutions": list(institutions), **extra})


# --- login, sessions, logout ----------------------------------------------------------

def test_login_opens_a_new_session_each_time_and_logout_ends_it(seeded, anon, engine):
    first = anon.auth.login("admin", DEMO, "198.51.100.1", "pytest")
    assert first["session_id"] and first["csrf_token"]
    identity = verify(first["identity"])
    assert (identity.username, identity.profile, identity.all_institutions) == \
        ("admin", "Administrador", True)
    assert "users.manage" in identity.permissions
    assert first["user"]["username"] == "admin"

    second = anon.auth.login("admin", DEMO)
    assert second["session_id"] != first["session_id"]      # a new id at every login
    assert second["csrf_token"] != first["csrf_token"]

    resolved = anon.auth.resolve_session(first["session_id"])
    assert resolved["csrf_token"] == first["csrf_token"]
    assert verify(resolved["identity"]).user_id == identity.user_id
    # stored hashed: the id itself is nowhere in the table
    stored = [r[0] for r in sql(engine, "SELECT id_hash FROM auth.sessions")]
    assert len(stored) == 2 and first["session_id"] not in stored

    anon.auth.logout(first["session_id"])
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_session(first["session_id"])
    anon.auth.resolve_session(second["session_id"])          # only that session ended
    assert audit_actions(engine, target_user_id=identity.user_id) == \
        ["login_succeeded", "login_succeeded", "logout"]


def test_wrong_password_and_unknown_user_answer_the_same(seeded, anon, engine):
    with pytest.raises(NotAuthenticated) as wrong:
        anon.auth.login("gestor1", WRONG, "198.51.100.2")
    with pytest.raises(NotAuthenticated) as unknown:
        anon.auth.login("nadie-existe", WRONG, "198.51.100.2")
    with pytest.raises(NotAuthenticated) as tokens:
        anon.auth.issue_tokens("nadie-existe", WRONG)
    assert wrong.value.message == unknown.value.message == tokens.value.message \
        == INVALID_CREDENTIALS
    assert wrong.value.fields == unknown.value.fields == {}
    rows = sql(engine, "SELECT actor, target_user_id, host(address) FROM auth.audit_log "
                       "WHERE action = 'login_failed' ORDER BY id")
    assert rows == [("gestor1", user_id(engine, "gestor1"), "198.51.100.2"),
                    ("nadie-existe", None, "198.51.100.2"), ("nadie-existe", None, None)]


def test_bad_credentials_input_is_invalid_not_a_crash(seeded, anon):
    with pytest.raises(InvalidInput) as err:
        anon.auth.login("", 12345)
    assert set(err.value.fields) == {"username", "password"}
    for call in (anon.auth.resolve_session, anon.auth.resolve_token, anon.auth.refresh_tokens):
        for secret in ("", "x" * 201, None):
            with pytest.raises(InvalidInput):
                call(secret)


# --- throttling ----------------------------------------------------------------------------

ATTACKER, USER_HOME = "203.0.113.66", "198.51.100.10"


def add_failures(engine, count: int, username: str | None = None, address: str | None = None,
                 seconds_ago: int = 0) -> None:
    """``count`` failed logins written directly (an Argon2 verify each would cost ~0.1 s);
    a username or an address left out varies per row."""
    sql(engine, "INSERT INTO auth.login_failures (username, address, at) "
                "SELECT coalesce(:u, 'intruso' || g), "
                "       coalesce(CAST(:a AS inet), CAST('192.0.2.' || g AS inet)), "
                "       now() - make_interval(secs => :ago) FROM generate_series(1, :n) g",
        u=username, a=address, n=count, ago=seconds_ago)


def throttle_entries(engine) -> list[dict]:
    return [r[0] for r in sql(engine, "SELECT details FROM auth.audit_log "
                                      "WHERE action = 'login_throttled' ORDER BY id")]


def test_wrong_passwords_from_one_address_make_only_that_address_wait(seeded, anon, engine):
    for _ in range(5):
        with pytest.raises(NotAuthenticated):
            anon.auth.login("gestor1", WRONG, ATTACKER)
    # the fifth failure starts a wait for that address on that account, with its length
    with pytest.raises(Throttled) as err:
        anon.auth.login("gestor1", DEMO, ATTACKER)      # even the right password waits there
    assert 10 <= err.value.retry_after <= 15
    assert "username" in err.value.fields
    with pytest.raises(Throttled):                      # the API login counts the same
        anon.auth.issue_tokens("GESTOR1", DEMO, ATTACKER)
    # ... while the user, from their own address, is not held out
    assert verify(anon.auth.login("gestor1", DEMO, USER_HOME)["identity"]).username == "gestor1"
    anon.auth.issue_tokens("gestor1", DEMO, USER_HOME)
    anon.auth.login("gestor2", DEMO, ATTACKER)          # nor other accounts from there
    assert throttle_entries(engine) == [
        {"scopes": {"account_address": {"failures": 5, "retry_after": 15}}}]

    # the wait grows with each further wrong password (refused attempts do not count)
    sql(engine, "UPDATE auth.login_failures SET at = at - interval '16 seconds'")
    with pytest.raises(NotAuthenticated):
        anon.auth.login("gestor1", WRONG, ATTACKER)
    with pytest.raises(Throttled) as err:
        anon.auth.login("gestor1", DEMO, ATTACKER)
    assert 25 <= err.value.retry_after <= 30
    assert throttle_entries(engine)[-1] == \
        {"scopes": {"account_address": {"failures": 6, "retry_after": 30}}}
    # and ends: the right password works once the wait is over
    sql(engine, "UPDATE auth.login_failures SET at = at - interval '31 seconds'")
    anon.auth.login("gestor1", DEMO, ATTACKER)


def test_many_addresses_against_one_account_make_a_short_wait_not_for_its_own_address(
        seeded, anon, engine):
    anon.auth.login("gestor1", DEMO, USER_HOME)         # the user's own address, known
    add_failures(engine, 20, username="gestor1")        # twenty addresses, one guess each
    with pytest.raises(Throttled) as err:
        anon.auth.login("gestor1", DEMO, "198.51.100.99")   # a new address waits, briefly
    assert 1 <= err.value.retry_after <= 30
    with pytest.raises(Throttled):
        anon.auth.issue_tokens("gestor1", DEMO)
    anon.auth.login("gestor1", DEMO, USER_HOME)         # the known address does not wait
    anon.auth.login("gestor2", DEMO, "198.51.100.99")   # another account does not either


def test_many_accounts_from_one_address_make_that_address_wait(seeded, anon, engine):
    address = "203.0.113.7"
    # four real failures with different usernames prove the address is what is counted...
    for name in ("gestor1", "gestor2", "abogado", "nadie"):
        with pytest.raises(NotAuthenticated):
            anon.auth.login(name, WRONG, address)
    add_failures(engine, 15, address=address)           # ...the rest written directly
    anon.auth.login("admin", DEMO, address)             # 19 failures: not yet
    with pytest.raises(NotAuthenticated):
        anon.auth.login("otro-mas", WRONG, address)     # the 20th
    with pytest.raises(Throttled) as err:
        anon.auth.login("admin", DEMO, address)
    assert 10 <= err.value.retry_after <= 15
    assert "address" in throttle_entries(engine)[-1]["scopes"]
    anon.auth.login("admin", DEMO, "203.0.113.8")       # another address is fine


def test_an_administrators_unlock_lifts_every_wait_on_the_account(seeded, anon, as_user, engine):
    admin = as_user("admin")
    gestor_id = user_id(engine, "gestor1")
    for _ in range(5):
        with pytest.raises(NotAuthenticated) as err:
            anon.auth.login("gestor1", WRONG, ATTACKER)
        assert err.value.message == INVALID_CREDENTIALS
    add_failures(engine, 20, username="gestor1")
    with pytest.raises(Throttled):
        anon.auth.login("gestor1", DEMO, ATTACKER)
    shown = admin.auth.get_user(gestor_id)
    assert shown["locked"] is True and 25 <= shown["login_wait"] <= 30
    listed = {u["username"]: u for u in admin.auth.list_users({})["items"]}
    assert listed["gestor1"]["locked"] is True and listed["gestor2"]["locked"] is False

    unlocked = admin.auth.unlock_user(gestor_id)
    assert (unlocked["locked"], unlocked["login_wait"]) == (False, 0)
    assert verify(anon.auth.login("gestor1", DEMO, ATTACKER)["identity"]).username == "gestor1"
    actions = audit_actions(engine, target_user_id=gestor_id)
    assert actions.count("login_failed") == 5
    assert actions[-3:] == ["login_throttled", "account_unlocked", "login_succeeded"]
    assert sql(engine, "SELECT actor, details FROM auth.audit_log "
                       "WHERE action = 'account_unlocked'") \
        == [("admin", {"was_locked": False, "failures_forgotten": 25})]


def test_a_lock_from_before_is_lifted_by_unlock(seeded, anon, as_user, engine):
    """Accounts locked by the former rule (ten failures) stay locked until unlocked."""
    gestor_id = user_id(engine, "gestor1")
    sql(engine, "UPDATE auth.users SET locked_at = now() WHERE id = :i", i=gestor_id)
    with pytest.raises(NotAuthenticated) as err:
        anon.auth.login("gestor1", DEMO)
    assert "bloqueada" in err.value.message
    admin = as_user("admin")
    assert admin.auth.get_user(gestor_id)["locked"] is True
    admin.auth.unlock_user(gestor_id)
    anon.auth.login("gestor1", DEMO)
    assert sql(engine, "SELECT details FROM auth.audit_log WHERE action = 'account_unlocked'") \
        == [({"was_locked": True, "failures_forgotten": 0},)]


def test_a_successful_login_resets_the_consecutive_count(seeded, anon, engine):
    sql(engine, "UPDATE auth.users SET failed_logins = 9 WHERE username = 'gestor1'")
    anon.auth.login("gestor1", DEMO)
    with pytest.raises(NotAuthenticated):
        anon.auth.login("gestor1", WRONG)
    assert sql(engine, "SELECT failed_logins, locked_at FROM auth.users "
                       "WHERE username = 'gestor1'") == [(1, None)]


def test_changing_ones_own_password(seeded, anon, as_user, engine):
    me = as_user("gestor1")
    refusals = {
        "current_password": {"current_password": WRONG, "new_password": OTHER_PASSWORD},
        "new_password": {"current_password": DEMO, "new_password": "password123"},
    }
    for field_name, data in refusals.items():
        with pytest.raises(InvalidInput) as err:
            me.auth.change_password(data)
        assert field_name in err.value.fields
    with pytest.raises(InvalidInput) as err:                   # the same one again
        me.auth.change_password({"current_password": DEMO, "new_password": DEMO})
    assert "new_password" in err.value.fields

    me.auth.change_password({"current_password": DEMO, "new_password": OTHER_PASSWORD})
    with pytest.raises(NotAuthenticated):
        anon.auth.login("gestor1", DEMO)
    anon.auth.login("gestor1", OTHER_PASSWORD)
    assert "password_changed" in audit_actions(engine, target_user_id=user_id(engine, "gestor1"))


# --- session timeouts -----------------------------------------------------------------------

@pytest.mark.parametrize("expire", [
    "last_seen_at = now() - interval '31 minutes'",                        # idle
    "expires_at = now() - interval '1 second', last_seen_at = now()",      # absolute
], ids=["idle", "absolute"])
def test_expired_sessions_are_refused(seeded, anon, engine, expire):
    opened = anon.auth.login("supervisor", DEMO)
    anon.auth.resolve_session(opened["session_id"])
    sql(engine, f"UPDATE auth.sessions SET {expire}")
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_session(opened["session_id"])
    assert "session_expired" in audit_actions(engine)
    # and it stays ended, even if the clock were to say otherwise
    sql(engine, "UPDATE auth.sessions SET last_seen_at = now(), "
                "expires_at = now() + interval '1 hour'")
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_session(opened["session_id"])


# --- API tokens ---------------------------------------------------------------------------

def test_a_session_in_use_is_touched_at_most_once_a_minute(seeded, anon, engine):
    opened = anon.auth.login("gestor1", DEMO)
    seen = "SELECT now() - last_seen_at FROM auth.sessions WHERE user_id = :u"
    me = user_id(engine, "gestor1")
    sql(engine, "UPDATE auth.sessions SET last_seen_at = now() - interval '20 seconds'")
    anon.auth.resolve_session(opened["session_id"])
    assert scalar(engine, seen, u=me).total_seconds() >= 20    # not written on every request
    sql(engine, "UPDATE auth.sessions SET last_seen_at = now() - interval '5 minutes'")
    resolved = anon.auth.resolve_session(opened["session_id"])
    assert scalar(engine, seen, u=me).total_seconds() < 5      # idle time starts again
    assert resolved["csrf_token"] == opened["csrf_token"]
    assert verify(resolved["identity"]).username == "gestor1"


def test_a_token_resolves_to_the_identity_and_user_a_login_gives(seeded, anon, as_user, engine):
    """The token's one-statement resolution answers what the session's ORM path does:
    profile, permissions, institutions, the supervised team and the user's summary."""
    auth_seed.seed_live(as_user("admin"))       # the demo team, as make up makes it
    for username in ("supervisor", "gestor2"):
        by_login = anon.auth.login(username, DEMO)
        by_token = anon.auth.resolve_token(anon.auth.issue_tokens(username, DEMO)["access_token"])
        assert by_token["user"] == by_login["user"]
        token_identity, login_identity = verify(by_token["identity"]), verify(by_login["identity"])
        assert dataclasses.replace(token_identity, expires_at=0) == \
            dataclasses.replace(login_identity, expires_at=0)
    supervisor = verify(anon.auth.resolve_token(
        anon.auth.issue_tokens("supervisor", DEMO)["access_token"])["identity"])
    agents = {user_id(engine, "gestor1"), user_id(engine, "gestor2")}
    assert agents <= set(supervisor.team) and supervisor.institutions is None
    assert verify(by_token["identity"]).institutions == (1, 3) and not verify(
        by_token["identity"]).team


def test_refresh_rotates_and_reuse_revokes_the_whole_family(seeded, anon, engine):
    first = anon.auth.issue_tokens("gestor1", DEMO)
    assert first["token_type"] == "Bearer" and first["expires_in"] == 900
    assert verify(anon.auth.resolve_token(first["access_token"])["identity"]).username == "gestor1"

    second = anon.auth.refresh_tokens(first["refresh_token"])
    assert {second["access_token"], second["refresh_token"]}.isdisjoint(
        {first["access_token"], first["refresh_token"]})
    with pytest.raises(NotAuthenticated):                 # the old access token ended
        anon.auth.resolve_token(first["access_token"])
    anon.auth.resolve_token(second["access_token"])

    with pytest.raises(NotAuthenticated):                 # the spent refresh token...
        anon.auth.refresh_tokens(first["refresh_token"])
    with pytest.raises(NotAuthenticated):                 # ...revoked its whole family
        anon.auth.refresh_tokens(second["refresh_token"])
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_token(second["access_token"])
    assert "token_reuse_detected" in audit_actions(engine)
    # nothing is stored in clear
    hashes = [r[0] for r in sql(engine, "SELECT token_hash FROM auth.api_tokens")]
    assert len(hashes) == 4
    assert not {first["access_token"], first["refresh_token"]} & set(hashes)


def test_a_refresh_token_is_not_an_access_token_and_vice_versa(seeded, anon):
    pair = anon.auth.issue_tokens("gestor1", DEMO)
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_token(pair["refresh_token"])
    with pytest.raises(NotAuthenticated):
        anon.auth.refresh_tokens(pair["access_token"])
    anon.auth.revoke_token(pair["access_token"])          # API logout ends both
    with pytest.raises(NotAuthenticated):
        anon.auth.refresh_tokens(pair["refresh_token"])


# --- disabling a user ends everything at once ------------------------------------------------

def test_disable_ends_sessions_tokens_and_api_keys_and_emits_the_event(
        seeded, anon, as_user, engine):
    admin = as_user("admin")
    partner = new_user(admin, engine, "socio1", "Integración")
    opened = anon.auth.login("socio1", OTHER_PASSWORD)
    pair = anon.auth.issue_tokens("socio1", OTHER_PASSWORD)
    key = admin.auth.create_api_key({"user_id": partner["id"], "name": "ERP del banco"})
    anon.auth.resolve_session(opened["session_id"])
    anon.auth.resolve_token(pair["access_token"])
    anon.auth.resolve_token(key["key"])

    assert admin.auth.disable_user(partner["id"])["active"] is False

    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_session(opened["session_id"])
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_token(pair["access_token"])
    with pytest.raises(NotAuthenticated):
        anon.auth.refresh_tokens(pair["refresh_token"])
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_token(key["key"])
    with pytest.raises(NotAuthenticated) as err:
        anon.auth.login("socio1", OTHER_PASSWORD)
    assert err.value.message == INVALID_CREDENTIALS
    # revoked in the database, not merely refused while the flag is off
    assert scalar(engine, "SELECT count(*) FROM auth.sessions WHERE revoked_at IS NULL") == 1
    assert scalar(engine, "SELECT count(*) FROM auth.api_tokens WHERE revoked_at IS NULL") == 0

    events = sql(engine, "SELECT payload->>'user_id', payload->>'username' FROM auth.outbox "
                         "WHERE event_type = 'user_disabled'")
    assert events == [(str(partner["id"]), "socio1")]
    assert "user_disabled" in audit_actions(engine, target_user_id=partner["id"])
    deadline = time.monotonic() + 10                      # and the relay publishes it
    while scalar(engine, "SELECT count(*) FROM auth.outbox WHERE event_type = 'user_disabled' "
                         "AND published_at IS NULL") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scalar(engine, "SELECT published_at IS NOT NULL FROM auth.outbox "
                          "WHERE event_type = 'user_disabled'")

    with pytest.raises(Conflict):                         # nobody disables themselves
        admin.auth.disable_user(user_id(engine, "admin"))
    admin.auth.enable_user(partner["id"])
    anon.auth.login("socio1", OTHER_PASSWORD)


# --- telling the gateways what to stop trusting -----------------------------------------------

def _access_changes(engine) -> list[dict]:
    return [r[0] for r in sql(engine, "SELECT payload FROM auth.outbox "
                                      "WHERE event_type = 'access_changed' ORDER BY created_at")]


def test_every_change_of_access_emits_what_to_forget(seeded, anon, as_user, engine):
    """Each change the gateways' identity caches must hear of, and only those."""
    from auth.credentials import digest

    admin = as_user("admin")
    partner = new_user(admin, engine, "socio1", "Integración")
    pid = partner["id"]

    def changes_after(action):
        before = len(_access_changes(engine))
        action()
        return _access_changes(engine)[before:]

    opened = anon.auth.login("socio1", OTHER_PASSWORD)
    assert changes_after(lambda: anon.auth.resolve_session(opened["session_id"])) == []
    [logout] = changes_after(lambda: anon.auth.logout(opened["session_id"]))
    assert logout["credentials"] == [digest(opened["session_id"])] and logout["user_ids"] == []

    pair = anon.auth.issue_tokens("socio1", OTHER_PASSWORD)
    [revoked] = changes_after(lambda: anon.auth.revoke_token(pair["access_token"]))
    assert revoked["user_ids"] == [pid] and not revoked["everyone"]

    pair = anon.auth.issue_tokens("socio1", OTHER_PASSWORD)
    [rotated] = changes_after(lambda: anon.auth.refresh_tokens(pair["refresh_token"]))
    assert rotated["user_ids"] == [pid]                   # the old access token ended

    key = admin.auth.create_api_key({"user_id": pid, "name": "ERP"})
    [key_revoked] = changes_after(lambda: admin.auth.revoke_api_key(key["id"]))
    assert key_revoked["user_ids"] == [pid]

    [scope] = changes_after(lambda: admin.auth.update_user(pid, {"institutions": [2]}))
    assert scope["user_ids"] == [pid]
    [profile] = changes_after(lambda: admin.auth.update_profile(
        profile_id(engine, "Integración"), _profile_body(admin, "Integración")))
    assert profile["everyone"] is True
    [team_made] = changes_after(lambda: admin.auth.save_team(
        {"name": "Equipo Cambios", "supervisor_id": user_id(engine, "supervisor"),
         "members": [user_id(engine, "gestor1")]}))
    assert team_made["everyone"] is True
    team = admin.auth.list_teams()[0]
    [team_change] = changes_after(lambda: admin.auth.save_team(
        {"name": team["name"], "supervisor_id": team["supervisor_id"],
         "members": [m["id"] for m in team["members"]]}, team["id"]))
    assert team_change["everyone"] is True
    [reset] = changes_after(lambda: admin.auth.reset_password(pid, {"password": "otra-clave-larga-9"}))
    assert reset["user_ids"] == [pid]
    [disabled] = changes_after(lambda: admin.auth.disable_user(pid))
    assert disabled["user_ids"] == [pid]

    # nothing is announced for a change that was refused and rolled back
    assert changes_after(lambda: pytest.raises(Conflict, admin.auth.disable_user,
                                               user_id(engine, "admin"))) == []


def _profile_body(admin, name) -> dict:
    profile = next(p for p in admin.auth.list_profiles() if p["name"] == name)
    return {"name": profile["name"], "description": profile["description"],
            "permissions": profile["permissions"],
            "single_institution": profile["single_institution"]}


def test_changing_ones_password_ends_every_other_session_and_token(seeded, anon, rpc_proxy,
                                                                   engine):
    kept = anon.auth.login("gestor1", DEMO)
    other = anon.auth.login("gestor1", DEMO)
    pair = anon.auth.issue_tokens("gestor1", DEMO)
    rpc_proxy({"identity": kept["identity"]}).auth.change_password({"current_password": DEMO, "new_password": OTHER_PASSWORD},
                               keep=kept["session_id"])
    anon.auth.resolve_session(kept["session_id"])               # the one it was made from
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_session(other["session_id"])
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_token(pair["access_token"])
    gid = user_id(engine, "gestor1")
    assert any(gid in c["user_ids"] for c in _access_changes(engine))


def test_a_gateway_cache_forgets_what_the_event_names(seeded, anon, rabbit_config):
    """The gateway's cache against the real broker and auth service: an entry ends as
    soon as the event of its logout arrives."""
    from gateway.identity_cache import IdentityCache

    cache = IdentityCache(rabbit_config["AMQP_URI"], ttl=60)
    cache.lookup("session", "warm-up")                       # starts the listener
    _wait(lambda: cache.trusted, "the listener consumes")
    opened = anon.auth.login("gestor1", DEMO)
    cache.store("session", opened["session_id"], anon.auth.resolve_session(opened["session_id"]),
                cache.generation())
    assert cache.lookup("session", opened["session_id"]) is not None
    started = time.monotonic()
    anon.auth.logout(opened["session_id"])
    _wait(lambda: cache.lookup("session", opened["session_id"]) is None, "the logout event")
    assert time.monotonic() - started < 5

    cache.stop()


def test_a_gateway_cache_cut_from_its_broker_forgets_everything_until_it_is_back(
        rabbit_config, rabbit_manager):
    """On a vhost of its own, so that deleting the vhost cuts exactly its connection (and
    brings it back to a broker that lost every queue)."""
    from gateway.identity_cache import IdentityCache

    vhost = rabbit_config["vhost"] + "-cut"
    username = rabbit_config["username"]
    uri = rabbit_config["AMQP_URI"].rsplit("/", 1)[0] + "/" + vhost

    def create():
        rabbit_manager.create_vhost(vhost)
        rabbit_manager.set_vhost_permissions(vhost, username, ".*", ".*", ".*")

    create()
    cache = IdentityCache(uri, ttl=60)
    try:
        cache.lookup("session", "warm-up")
        _wait(lambda: cache.trusted, "the listener consumes")
        cache.store("session", "s1", {"identity": "i", "user": {"id": 1}}, cache.generation())
        assert cache.lookup("session", "s1") is not None
        rabbit_manager.delete_vhost(vhost)                     # the broker is gone for it
        _wait(lambda: not cache.trusted, "the listener notices the cut")
        assert cache.lookup("session", "s1") is None and len(cache) == 0
        cache.store("session", "s1", {"identity": "i", "user": {"id": 1}}, cache.generation())
        assert len(cache) == 0                                 # nor kept while cut
        create()
        _wait(lambda: cache.trusted, "the listener is back")
    finally:
        cache.stop()
        try:
            rabbit_manager.delete_vhost(vhost)
        except Exception:
            pass


def _wait(condition, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- API keys -----------------------------------------------------------------------------

def test_api_key_lifecycle_secret_shown_once_and_kept_hashed(seeded, anon, as_user, engine):
    admin = as_user("admin")
    partner = new_user(admin, engine, "socio1", "Integración")
    created = admin.auth.create_api_key({"user_id": partner["id"], "name": "ERP del banco"})
    secret = created["key"]
    assert secret.startswith("rk_") and len(secret) > 40 and created["revoked"] is False

    stored = sql(engine, "SELECT key_hash, row_to_json(k)::text FROM auth.api_keys k")
    assert len(stored) == 1 and stored[0][0] != secret and len(stored[0][0]) == 64
    assert secret not in stored[0][1]                     # in no column at all
    for table in ("audit_log", "outbox"):
        dump = sql(engine, f"SELECT coalesce(string_agg(row_to_json(t)::text, ''), '') "
                           f"FROM auth.{table} t")[0][0]
        assert secret not in dump, table

    resolved = verify(anon.auth.resolve_token(secret)["identity"])
    assert (resolved.user_id, resolved.username, resolved.profile, resolved.institutions) == \
        (partner["id"], "socio1", "Integración", (1,))

    listed = admin.auth.list_api_keys()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and secret not in repr(listed)
    assert listed[0]["prefix"] in secret and listed[0]["last_used_at"] is not None

    assert admin.auth.revoke_api_key(created["id"])["revoked"] is True
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_token(secret)
    assert audit_actions(engine, target_user_id=partner["id"])[-2:] == \
        ["api_key_created", "api_key_revoked"]
    with pytest.raises(NotFound):
        admin.auth.revoke_api_key(created["id"] + 1000)


def test_an_expired_api_key_is_refused(seeded, anon, as_user, engine):
    admin = as_user("admin")
    partner = new_user(admin, engine, "socio1", "Integración")
    key = admin.auth.create_api_key({"user_id": partner["id"], "name": "caduca",
                                     "expires_at": "2020-01-01T00:00:00+00:00"})
    with pytest.raises(NotAuthenticated):
        anon.auth.resolve_token(key["key"])


# --- reach and privilege escalation -------------------------------------------------------

@pytest.fixture
def local_admin(seeded, as_user, engine):
    """An administrator of institution 1 only, holding nothing but users.manage."""
    admin = as_user("admin")
    admin.auth.create_profile({"name": "Admin Local", "permissions": ["users.manage"]})
    new_user(admin, engine, "adminlocal", "Admin Local", institutions=(1,))
    return as_user("adminlocal", OTHER_PASSWORD)


def test_a_scoped_admin_cannot_grant_beyond_their_own_reach(local_admin, engine):
    own_profile = profile_id(engine, "Admin Local")
    users_before = scalar(engine, "SELECT count(*) FROM auth.users")

    def attempt(**changes):
        data = {"username": "nuevo1", "display_name": "Nuevo", "password": OTHER_PASSWORD,
                "profile_id": own_profile, "institutions": [1], **changes}
        return local_admin.auth.create_user(data)

    with pytest.raises(PermissionDenied) as err:
        attempt(all_institutions=True, institutions=[])
    assert "all_institutions" in err.value.fields
    for institutions in ([2], [1, 2], [3]):
        with pytest.raises(InvalidInput) as err:
            attempt(institutions=institutions)
        assert "institutions" in err.value.fields
    with pytest.raises(PermissionDenied) as err:
        attempt(profile_id=profile_id(engine, "Gestor"))
    assert "profile_id" in err.value.fields
    with pytest.raises(PermissionDenied):
        local_admin.auth.create_profile({"name": "Más", "permissions": ["users.manage",
                                                                        "audit.view"]})
    assert scalar(engine, "SELECT count(*) FROM auth.users") == users_before

    # what is within reach works
    assert attempt()["institutions"] == [1]


def test_a_scoped_admin_sees_and_touches_only_users_in_reach(local_admin, engine):
    admin_id, gestor_id, cliente_id = (user_id(engine, u) for u in ("admin", "gestor1", "cliente"))
    listed = {u["username"] for u in local_admin.auth.list_users()["items"]}
    assert listed == {"adminlocal", "cliente"}
    local_admin.auth.get_user(cliente_id)
    for target in (admin_id, gestor_id):      # all-institution staff; institutions 1 and 2
        with pytest.raises(NotFound):
            local_admin.auth.get_user(target)
        with pytest.raises(NotFound):
            local_admin.auth.disable_user(target)
        with pytest.raises(NotFound):
            local_admin.auth.reset_password(target, {"password": "otra-clave-muy-larga"})
        with pytest.raises(NotFound):
            local_admin.auth.update_user(target, {"display_name": "x"})
        with pytest.raises(NotFound):
            local_admin.auth.create_api_key({"user_id": target, "name": "robada"})
    own_id = user_id(engine, "adminlocal")
    with pytest.raises(InvalidInput):
        local_admin.auth.update_user(own_id, {"institutions": [1, 2]})
    with pytest.raises(PermissionDenied):
        local_admin.auth.update_user(own_id, {"all_institutions": True})
    with pytest.raises(PermissionDenied):
        local_admin.auth.update_user(cliente_id, {"profile_id": profile_id(engine, "Gestor"),
                                                  "institutions": [1]})


def test_a_scoped_admin_cannot_edit_profiles_held_by_users_out_of_reach(local_admin, engine):
    """Profiles are shared: editing one changes every holder, including the all-institution
    administrators (stripping users.manage from "Administrador") or gestores of other
    institutions (adding users.manage to "Gestor")."""
    for name in ("Administrador", "Gestor"):
        pid = profile_id(engine, name)
        current = scalar(engine, "SELECT permissions FROM auth.profiles WHERE id = :i", i=pid)
        changed = sorted(set(current) ^ {"users.manage"})
        with pytest.raises(PermissionDenied):
            local_admin.auth.update_profile(pid, {"name": name, "permissions": changed})
        assert scalar(engine, "SELECT permissions FROM auth.profiles WHERE id = :i",
                      i=pid) == current
    # their own profile, held only by users in reach, they may edit within what they hold
    local_admin.auth.update_profile(profile_id(engine, "Admin Local"),
                                    {"name": "Admin Local", "description": "Sucursal 1",
                                     "permissions": ["users.manage"]})


def test_a_scoped_admin_cannot_take_over_a_user_holding_more(local_admin, anon, engine):
    """Resetting the password of (or minting an API key for) a user whose profile holds
    permissions the admin lacks would hand the admin those permissions."""
    cliente_id = user_id(engine, "cliente")
    with pytest.raises(PermissionDenied):
        local_admin.auth.reset_password(cliente_id, {"password": "otra-clave-muy-larga"})
    with pytest.raises(PermissionDenied):
        local_admin.auth.create_api_key({"user_id": cliente_id, "name": "robada"})
    anon.auth.login("cliente", DEMO)                        # password unchanged
    assert scalar(engine, "SELECT count(*) FROM auth.api_keys") == 0


def test_cliente_profile_binds_exactly_one_institution(seeded, as_user, engine):
    admin = as_user("admin")
    for institutions, extra in (([1, 2], {}), ([], {}), ([], {"all_institutions": True})):
        with pytest.raises(InvalidInput) as err:
            new_user(admin, engine, "portal2", "Cliente", institutions, **extra)
        assert "institutions" in err.value.fields
    created = new_user(admin, engine, "portal2", "Cliente", [2])
    assert created["institutions"] == [2] and created["all_institutions"] is False
    with pytest.raises(InvalidInput):
        admin.auth.update_user(created["id"], {"institutions": [2, 3]})


# --- input validation -----------------------------------------------------------------------

def _written(engine) -> tuple:
    return tuple(scalar(engine, f"SELECT count(*) FROM auth.{t}")
                 for t in ("users", "audit_log", "outbox"))


def test_bad_user_input_names_each_field_and_writes_nothing(seeded, as_user, engine):
    admin = as_user("admin")
    gestor = profile_id(engine, "Gestor")
    before = _written(engine)
    valid = {"username": "nuevo1", "display_name": "Nuevo Usuario", "profile_id": gestor,
             "institutions": [1], "password": OTHER_PASSWORD}

    with pytest.raises(InvalidInput) as err:
        admin.auth.create_user({**valid, "display_name": "x" * 121, "profile_id": "abc",
                                "institutions": "1", "is_superuser": True})
    assert set(err.value.fields) == {"display_name", "profile_id", "institutions",
                                     "is_superuser"}

    cases = {
        "username": {"username": "Con Espacios"},
        "email": {"email": "no-es-correo"},
        "language": {"language": "fr"},
        "active": {"active": "quizá"},
        "all_institutions": {"all_institutions": [True]},
        "password": {"password": "password123"},                 # in the common list
    }
    for field, change in cases.items():
        with pytest.raises(InvalidInput) as err:
            admin.auth.create_user({**valid, **change})
        assert field in err.value.fields, (field, err.value.fields)
    for short_or_own in ("corta", "nuevo1"):
        with pytest.raises(InvalidInput) as err:
            admin.auth.create_user({**valid, "password": short_or_own})
        assert set(err.value.fields) == {"password"}
    with pytest.raises(InvalidInput) as err:
        admin.auth.create_user({**valid, "profile_id": 99999})
    assert "profile_id" in err.value.fields
    with pytest.raises(InvalidInput) as err:
        admin.auth.create_user(["not", "an", "object"])
    assert "_schema" in err.value.fields
    with pytest.raises(InvalidInput) as err:
        admin.auth.update_user(user_id(engine, "gestor1"), {"password": OTHER_PASSWORD})
    assert "password" in err.value.fields                        # not updatable this way
    assert _written(engine) == before

    admin.auth.create_user(valid)                                 # the valid one is written
    with pytest.raises(Conflict):
        admin.auth.create_user(valid)


# --- identity on admin RPCs ---------------------------------------------------------------

def test_admin_rpcs_refuse_missing_forged_or_expired_identities(seeded, anon, as_user,
                                                                rpc_proxy, engine):
    admin_claims = verify(anon.auth.login("admin", DEMO)["identity"])
    forged = dataclasses.replace(admin_claims)
    for context in ({}, {"identity": "garbage"},
                    {"identity": sign(forged, key="not-the-platform-key")},
                    {"identity": sign(forged, ttl=-1)}):
        with pytest.raises(NotAuthenticated):
            rpc_proxy(context).auth.list_users()
    with pytest.raises(NotAuthenticated):
        anon.auth.me()
    rpc_proxy({"identity": sign(forged)}).auth.list_users()      # the real key: accepted

    gestor = as_user("gestor1")
    with pytest.raises(PermissionDenied) as err:
        gestor.auth.list_users()
    assert err.value.fields == {"permission": ["users.manage"]}
    with pytest.raises(PermissionDenied):
        gestor.auth.list_audit()
    assert gestor.auth.me()["username"] == "gestor1"


def test_names_are_given_only_for_colleagues_of_the_callers_institutions(seeded, as_user,
                                                                          engine):
    admin, gestor, cliente = as_user("admin"), as_user("gestor1"), as_user("cliente")
    outsider = new_user(admin, engine, "gestor3", "Gestor", institutions=(3,))["id"]
    everyone = [user_id(engine, u) for u in ("admin", "supervisor", "gestor1", "gestor2",
                                             "abogado", "cliente")] + [outsider, 999_999]

    def named(proxy):
        return {row["id"]: row["display_name"] for row in proxy.auth.user_names(everyone)}

    assert set(named(admin)) == set(everyone) - {999_999}
    # institution 1 (and 2): the staff, and those sharing an institution; not the outsider
    assert set(named(gestor)) == set(everyone) - {outsider, 999_999}
    assert set(named(cliente)) == set(everyone) - {outsider, 999_999}
    assert named(cliente)[user_id(engine, "gestor1")] == "Carlos Bourges Medina"
    assert set(named(as_user("gestor3", OTHER_PASSWORD))) == set(everyone) - {
        user_id(engine, "gestor1"), user_id(engine, "cliente"), 999_999}
    for bad in ("1,2", [1, "2"], [True], list(range(501))):
        with pytest.raises(InvalidInput) as err:
            gestor.auth.user_names(bad)
        assert "user_ids" in err.value.fields


# --- institution scope in the portfolio service ---------------------------------------------

def test_institutions_out_of_scope_answer_like_missing(seeded, as_user, rpc_proxy):
    cliente, gestor, admin = as_user("cliente"), as_user("gestor1"), as_user("admin")
    assert [i["id"] for i in cliente.portfolio.list_institutions()] == [1]
    assert sorted(i["id"] for i in gestor.portfolio.list_institutions()) == [1, 2]
    assert sorted(i["id"] for i in admin.portfolio.list_institutions()) == [1, 2, 3]
    assert gestor.portfolio.get_institution(2)["code"] == "CREDIMAS"
    for proxy, institution in ((cliente, 2), (cliente, 3), (gestor, 3), (admin, 99999)):
        with pytest.raises(NotFound) as err:
            proxy.portfolio.get_institution(institution)
        assert err.value.message == "Institución no encontrada"
    with pytest.raises(NotAuthenticated):
        rpc_proxy().portfolio.list_institutions()


# --- the user's own time zone ----------------------------------------------------------

def test_a_user_sets_their_time_zone_and_every_resolution_carries_it(seeded, anon, as_user,
                                                                      engine):
    """Times are shown in the reader's zone: theirs when set (in their profile or by an
    administrator), else their institution's (null)."""
    gestor = as_user("gestor1")
    assert gestor.auth.me()["time_zone"] is None
    assert anon.auth.login("gestor1", DEMO)["user"]["time_zone"] is None
    assert gestor.auth.update_me({"time_zone": "America/Tijuana"})["time_zone"] == \
        "America/Tijuana"
    by_login = anon.auth.login("gestor1", DEMO)
    assert by_login["user"]["time_zone"] == "America/Tijuana"
    token = anon.auth.issue_tokens("gestor1", DEMO)["access_token"]
    assert anon.auth.resolve_token(token)["user"]["time_zone"] == "America/Tijuana"
    assert anon.auth.resolve_session(by_login["session_id"])["user"]["time_zone"] == \
        "America/Tijuana"
    with pytest.raises(InvalidInput) as refused:
        gestor.auth.update_me({"time_zone": "Mars/Olympus"})
    assert "time_zone" in refused.value.fields
    admin = as_user("admin")
    gestor_id = user_id(engine, "gestor1")
    assert admin.auth.update_user(gestor_id, {"time_zone": ""})["time_zone"] is None
    created = new_user(admin, engine, "tz-user", "Gestor", time_zone="Asia/Tokyo")
    assert created["time_zone"] == "Asia/Tokyo"
