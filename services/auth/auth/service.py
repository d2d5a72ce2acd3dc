"""Entrypoints of the auth service.

The first group establishes who is calling and so takes no identity (possession of
the password, session id or token is the authority); every other entrypoint checks
the verified identity it is called with.
"""
from __future__ import annotations

from contextlib import contextmanager

from marshmallow import fields, validate
from nameko.rpc import RpcProxy

from recaudo_common import references
from recaudo_common.db import Database
from recaudo_common.errors import InvalidInput, NotAuthenticated, NotFound, PermissionDenied, Throttled
from recaudo_common.identity import ALL_PERMISSIONS, sign
from recaudo_common.service import ServiceBase, rpc
from recaudo_common.validation import Schema, load

from . import audit, authentication, directory
from .authentication import Caller
from .credentials import check_password, digest
from .contracts import (PERMISSIONS, ApiKeyCreate, ApiKeyOut, AuditOut, AuditQuery, Credentials,
                        MyAccountUpdate, PasswordChange, PasswordReset, ProfileCreate, ProfileOut,
                        ProfileUpdate, TeamWrite, UserCreate, UserOut, UserQuery, UserUpdate)
from .models import ApiKey, Base, Profile, User
from .portal_rpc import PortalEntrypoints

#: refusals whose trace (failure counters, audit entries, revocations) must be kept
REFUSALS = (NotAuthenticated, Throttled)


class _SecretIn(Schema):
    # (marshmallow 4 ignores a validator that returns False: it must raise, as Length does)
    secret = fields.String(required=True, validate=validate.Length(min=1, max=200))


def _secret(value: str) -> str:
    return load(_SecretIn(), {"secret": value})["secret"]


def _users_out(session, users: list[User]) -> list[dict]:
    """Users as administrators see them: ``locked`` while a lock or a login wait is on
    the account (what "Desbloquear" lifts), with the seconds left in ``login_wait``."""
    waits = authentication.login_waits(session, [user.username for user in users])
    return [{**out, "locked": out["locked"] or user.username in waits,
             "login_wait": waits.get(user.username, 0)}
            for user, out in zip(users, UserOut(many=True).dump(users))]


class AuthService(PortalEntrypoints, ServiceBase):
    name = "auth"
    db = Database(Base)
    #: to check the institutions a user is given exist (the portfolio owns them)
    portfolio = RpcProxy("portfolio")

    # --- establishing identity ------------------------------------------------------

    @rpc
    def login(self, username, password, address=None, user_agent=None):
        """Web login: a new session (id, CSRF token) and the resolved identity."""
        data = load(Credentials(), {"username": username, "password": password})
        caller = Caller(address, user_agent)
        with self._session(commit_on=REFUSALS) as session:
            user = authentication.verify_credentials(session, data["username"],
                                                     data["password"], caller)
            opened = authentication.open_session(session, user, caller)
            return {**opened, **authentication.resolved(session, user)}

    @rpc
    def resolve_session(self, session_id):
        with self._session(commit_on=REFUSALS) as session:
            return authentication.resolve_session(session, _secret(session_id))

    @rpc
    def logout(self, session_id):
        with self._session() as session:
            authentication.close_session(session, _secret(session_id))

    @rpc
    def issue_tokens(self, username, password, address=None):
        """API login: an access and a refresh token."""
        data = load(Credentials(), {"username": username, "password": password})
        caller = Caller(address)
        with self._session(commit_on=REFUSALS) as session:
            user = authentication.verify_credentials(session, data["username"],
                                                     data["password"], caller)
            audit.record(session, "token_issued", actor_name=user.username,
                         target_user_id=user.id, address=address)
            audit.record(session, "login_succeeded", actor_name=user.username,
                         target_user_id=user.id, address=address, via="api")
            return authentication.issue_tokens(session, user)

    @rpc
    def refresh_tokens(self, refresh_token, address=None):
        with self._session(commit_on=REFUSALS) as session:
            return authentication.refresh(session, _secret(refresh_token), Caller(address))

    @rpc
    def resolve_token(self, token):
        with self._session() as session:
            return authentication.resolve_token(session, _secret(token))

    @rpc
    def revoke_token(self, token):
        with self._session() as session:
            authentication.revoke_token(session, _secret(token))

    @rpc
    def identity_for(self, user_id):
        """The signed identity of an active user, as it is now, for the platform's own
        services acting on that user's behalf later (a scheduled report runs with its
        owner's current permissions and institutions). Only the platform may ask."""
        caller = self.caller.identity
        if ALL_PERMISSIONS not in caller.permissions:
            raise PermissionDenied("Sólo para los servicios de la plataforma",
                                   {"permission": ["*"]})
        with self._session() as session:
            user = session.get(User, user_id) if isinstance(user_id, int) else None
            if user is None or not user.active:
                raise NotFound("Usuario no encontrado")
            return {"identity": sign(authentication.identity_of(session, user))}

    # --- my account -------------------------------------------------------------------

    @rpc
    def me(self):
        identity = self.caller.identity
        with self._session() as session:
            user = session.get(User, identity.user_id)
            if user is None:
                raise NotFound("Usuario no encontrado")
            return UserOut().dump(user)

    @rpc
    def update_me(self, data):
        identity = self.caller.identity
        data = load(MyAccountUpdate(), data)
        with self._session() as session:
            user = session.get(User, identity.user_id)
            for field, value in data.items():
                setattr(user, field, value)
            authentication.access_changed(session, "user_updated", user_ids=[user.id])
            self._user_changed(session, user)
            return UserOut().dump(user)

    @rpc
    def change_password(self, data, keep=None):
        """``keep``: the session id or token the change is made from, which stays signed in
        (every other session and token of the user ends)."""
        identity = self.caller.identity
        data = load(PasswordChange(), data)
        keep = None if keep is None else digest(_secret(keep))
        with self._session() as session:
            directory.change_own_password(session, identity, data["current_password"],
                                          data["new_password"], check_password, keep=keep)

    # --- administration -------------------------------------------------------------------

    @rpc
    def list_permissions(self):
        self.caller.identity  # any authenticated caller may read the catalogue
        return [{"code": code, "es": es, "en": en} for code, (es, en) in PERMISSIONS.items()]

    @rpc
    def list_profiles(self):
        self.caller.require("users.manage")
        with self._session() as session:
            profiles = session.query(Profile).order_by(Profile.name).all()
            return ProfileOut(many=True).dump(profiles)

    @rpc
    def create_profile(self, data):
        identity = self.caller.require("users.manage")
        data = load(ProfileCreate(), data)
        with self._session() as session:
            return ProfileOut().dump(directory.create_profile(session, identity, data))

    @rpc
    def update_profile(self, profile_id, data):
        identity = self.caller.require("users.manage")
        data = load(ProfileUpdate(), data)
        with self._session() as session:
            return ProfileOut().dump(directory.update_profile(session, identity, profile_id, data))

    @rpc
    def list_users(self, query=None):
        identity = self.caller.require("users.manage")
        query = load(UserQuery(), query or {})
        with self._session() as session:
            page = directory.list_users(session, identity, query)
            return {**page, "items": _users_out(session, page["items"])}

    @rpc
    def user_names(self, user_ids):
        """``[{id, display_name}]`` of the colleagues among ``user_ids`` (see
        ``directory.display_names``): screens name people, not ids."""
        identity = self.caller.identity
        if not isinstance(user_ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in user_ids):
            raise InvalidInput("Usuarios inválidos", {"user_ids": ["Se esperaba una lista de números"]})
        with self._session() as session:
            return directory.display_names(session, identity, user_ids)

    @rpc
    def get_user(self, user_id):
        identity = self.caller.require("users.manage")
        with self._session() as session:
            return _users_out(session, [directory.get_user(session, identity, user_id)])[0]

    @rpc
    def create_user(self, data):
        identity = self.caller.require("users.manage")
        data = load(UserCreate(), data)
        with self._session() as session:
            user = directory.create_user(session, identity, data)
            references.require_institutions(self.portfolio, data["institutions"])
            self._user_changed(session, user)
            return UserOut().dump(user)

    @rpc
    def update_user(self, user_id, data):
        identity = self.caller.require("users.manage")
        data = load(UserUpdate(), data)
        with self._session() as session:
            user = directory.update_user(session, identity, user_id, data)
            references.require_institutions(self.portfolio, data.get("institutions"))
            self._user_changed(session, user)
            return UserOut().dump(user)

    @rpc
    def disable_user(self, user_id):
        identity = self.caller.require("users.manage")
        with self._session() as session:
            user = directory.set_active(session, identity, user_id, False)
            self.db.emit(session, "user_disabled", {"user_id": user.id, "username": user.username})
            self._user_changed(session, user)
            return UserOut().dump(user)

    @rpc
    def enable_user(self, user_id):
        identity = self.caller.require("users.manage")
        with self._session() as session:
            user = directory.set_active(session, identity, user_id, True)
            self._user_changed(session, user)
            return UserOut().dump(user)

    @rpc
    def unlock_user(self, user_id):
        identity = self.caller.require("users.manage")
        with self._session() as session:
            return _users_out(session, [directory.unlock(session, identity, user_id)])[0]

    @rpc
    def reset_password(self, user_id, data):
        identity = self.caller.require("users.manage")
        data = load(PasswordReset(), data)
        with self._session() as session:
            return UserOut().dump(directory.reset_password(session, identity, user_id,
                                                           data["password"]))

    @rpc
    def list_teams(self):
        """Admins see the teams in their reach; a supervisor sees their own."""
        identity = self.caller.identity
        with self._session() as session:
            return directory.list_teams(session, identity, only_own=not identity.has("users.manage"))

    @rpc
    def save_team(self, data, team_id=None):
        identity = self.caller.require("users.manage")
        data = load(TeamWrite(), data)
        with self._session() as session:
            team = directory.save_team(session, identity, data, team_id)
            self.db.emit(session, "team_changed", {
                "team_id": team["id"], "name": team["name"],
                "supervisor_id": team["supervisor_id"],
                "members": [m["id"] for m in team["members"]]})
            return team

    @rpc
    def list_api_keys(self):
        identity = self.caller.require("users.manage")
        with self._session() as session:
            return ApiKeyOut(many=True).dump(directory.list_api_keys(session, identity))

    @rpc
    def create_api_key(self, data):
        """The secret is in this answer and nowhere else, ever."""
        identity = self.caller.require("users.manage")
        data = load(ApiKeyCreate(), data)
        with self._session() as session:
            user = directory.get_user(session, identity, data["user_id"])
            directory.require_holds(identity, user)
            key, secret = authentication.create_api_key(session, user, data["name"], identity,
                                                        data["expires_at"])
            return {**ApiKeyOut().dump(key), "key": secret}

    @rpc
    def revoke_api_key(self, key_id):
        identity = self.caller.require("users.manage")
        with self._session() as session:
            key = session.get(ApiKey, key_id, with_for_update=True)
            if key is None:
                raise NotFound("Llave no encontrada")
            directory.get_user(session, identity, key.user_id)  # out of reach == missing
            if key.revoked_at is None:
                key.revoked_at = authentication.now()
                audit.record(session, "api_key_revoked", actor=identity,
                             target_user_id=key.user_id, key_id=key.id, prefix=key.prefix)
                authentication.access_changed(session, "api_key_revoked",
                                              user_ids=[key.user_id])
            return ApiKeyOut().dump(key)

    @rpc
    def list_audit(self, query=None):
        self.caller.require("audit.view")
        query = load(AuditQuery(), query or {})
        with self._session() as session:
            page = audit.search(session, **query)
            return {**page, "items": AuditOut(many=True).dump(page["items"])}

    # --- helpers ------------------------------------------------------------------------------

    @contextmanager
    def _session(self, commit_on=()):
        """``self.db.session`` that also emits, in the same transaction, one
        ``access_changed`` event for whatever the work recorded as no longer trusted
        (``authentication.access_changed``), refusals that commit included."""
        with self.db.session(commit_on=commit_on) as session:
            try:
                yield session
            except commit_on:
                self._emit_access_change(session)
                raise
            self._emit_access_change(session)

    def _emit_access_change(self, session) -> None:
        payload = authentication.pending_access_change(session)
        if payload is not None:
            self.db.emit(session, "access_changed", payload)

    def _user_changed(self, session, user: User) -> None:
        self.db.emit(session, "user_changed", {
            "user_id": user.id, "username": user.username, "display_name": user.display_name,
            "profile": user.profile.name, "active": user.active,
            "institutions": None if user.all_institutions else list(user.institutions)})
