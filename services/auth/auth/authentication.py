"""Who is calling: logins with throttling, web sessions, API tokens with
refresh rotation, API keys, and the signed identity every other service checks.

Free of nameko: each function takes a SQLAlchemy session and runs inside the
caller's transaction.
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Select, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from recaudo_common.errors import NotAuthenticated, Throttled
from recaudo_common.identity import Identity, sign

from . import audit
from .credentials import check_password, digest, new_secret
from .models import (ApiKey, ApiToken, AuditEntry, LoginFailure, Profile, Team, TeamMember,
                     User, WebSession)

@dataclass(frozen=True)
class Throttle:
    """One scope of login throttling. Failures within ``FAILURE_WINDOW`` are counted;
    from the ``free``-th on, the next attempt waits ``first_delay`` after the last
    failure, doubled for each further failure, never more than ``longest``. Attempts
    refused while waiting are not checked and not counted, so hammering does not make
    the wait longer: only real wrong passwords do."""

    scope: str
    free: int
    first_delay: timedelta
    longest: timedelta

    def delay(self, failures: int) -> timedelta:
        if failures < self.free:
            return timedelta(0)
        return min(self.longest, self.first_delay * 2 ** min(failures - self.free, 16))


#: failures older than this are forgotten
FAILURE_WINDOW = timedelta(hours=1)
#: one address guessing one account's password: it alone waits, up to 15 minutes
PER_ACCOUNT_AND_ADDRESS = Throttle("account_address", free=5, first_delay=timedelta(seconds=15),
                                   longest=timedelta(minutes=15))
#: one address spraying many accounts: that address waits, up to 15 minutes
PER_ADDRESS = Throttle("address", free=20, first_delay=timedelta(seconds=15),
                       longest=timedelta(minutes=15))
#: one account guessed from many addresses: a short wait (30 s at most) for everyone but
#: the addresses the user logged in from lately, so nobody can hold a user out
PER_ACCOUNT = Throttle("account", free=10, first_delay=timedelta(seconds=1),
                       longest=timedelta(seconds=30))
#: a successful login from an address exempts it from PER_ACCOUNT this long
KNOWN_ADDRESS_FOR = timedelta(days=30)

SESSION_IDLE = timedelta(minutes=30)
SESSION_ABSOLUTE = timedelta(hours=12)
#: last_seen_at is written at most this often (not on every request)
SESSION_TOUCH_EVERY = timedelta(seconds=60)
ACCESS_TOKEN_TTL = timedelta(minutes=15)
REFRESH_TOKEN_TTL = timedelta(days=30)
API_KEY_PREFIX = "rk_"

INVALID_CREDENTIALS = "Usuario o contraseña incorrectos"


# --- telling the gateways what to stop trusting ------------------------------------

def access_changed(session: Session, reason: str, *, user_ids=(), credentials=(),
                   everyone: bool = False) -> None:
    """Record, in this transaction, that identities held elsewhere are no longer valid:
    the users in ``user_ids``, the credentials whose digests are in ``credentials``, or
    ``everyone``. The auth service emits one ``access_changed`` event per transaction
    from what was recorded (``pending_access_change``), so every gateway process drops
    what it cached as soon as the change commits, and never for a change rolled back."""
    pending = session.info.setdefault("access_changed", {
        "credentials": set(), "user_ids": set(), "everyone": False, "reasons": []})
    pending["credentials"].update(credentials)
    pending["user_ids"].update(user_ids)
    pending["everyone"] = pending["everyone"] or everyone
    if reason not in pending["reasons"]:
        pending["reasons"].append(reason)


def pending_access_change(session: Session) -> dict | None:
    """The ``access_changed`` payload recorded in ``session`` (and forgotten), if any."""
    pending = session.info.pop("access_changed", None)
    if pending is None:
        return None
    return {"credentials": sorted(pending["credentials"]), "user_ids": sorted(pending["user_ids"]),
            "everyone": pending["everyone"], "reason": ",".join(pending["reasons"])}


def cache_until(*moments: datetime | None) -> str:
    """When a resolved identity stops being valid by itself (the earliest of
    ``moments``): the gateway never keeps it past that."""
    return min(m for m in moments if m is not None).isoformat()


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Caller:
    """Where a login or a token comes from, for throttling and the audit log."""

    address: str | None = None
    user_agent: str | None = None


# --- identity ------------------------------------------------------------------

def _supervised(user_id) -> Select:
    """The agents of the teams ``user_id`` supervises."""
    return (select(TeamMember.user_id).join(Team, Team.id == TeamMember.team_id)
            .where(Team.supervisor_id == user_id).distinct())


def _identity(user_id, username, profile, permissions, all_institutions, institutions, team,
              language) -> Identity:
    return Identity(
        user_id=user_id,
        username=username,
        profile=profile,
        permissions=frozenset(permissions),
        institutions=None if all_institutions else tuple(sorted(institutions)),
        team=tuple(sorted(team)),
        language=language,
    )


def identity_of(session: Session, user: User) -> Identity:
    return _identity(user.id, user.username, user.profile.name, user.profile.permissions,
                     user.all_institutions, user.institutions,
                     session.execute(_supervised(user.id)).scalars().all(), user.language)


def resolved(session: Session, user: User, **extra) -> dict:
    """What the gateway gets back for an authenticated request."""
    return _answer(identity_of(session, user), user.display_name, user.time_zone,
                   user.profile.single_institution, **extra)


def _answer(identity: Identity, display_name: str, time_zone: str | None, creditor: bool,
            **extra) -> dict:
    return {"identity": sign(identity),
            "user": user_summary(identity, display_name, time_zone, creditor), **extra}


def user_summary(identity: Identity, display_name: str, time_zone: str | None = None,
                 creditor: bool = False) -> dict:
    """Who is asking, as the gateway shows it; ``time_zone`` is the user's own setting
    (None: the institution's zone is theirs); ``creditor``: a profile bound to one
    institution (the creditor's staff), whose home is their portal; ``supervises``: leads
    a team (answers for its logs)."""
    return {"id": identity.user_id, "username": identity.username, "display_name": display_name,
            "profile": identity.profile, "language": identity.language, "time_zone": time_zone,
            "creditor": creditor, "supervises": bool(identity.team),
            "permissions": sorted(identity.permissions),
            "institutions": None if identity.institutions is None else list(identity.institutions)}


def _with_identity(credential, *columns):
    """SELECT ``columns`` of a credential row (a session or a token, looked up by its hash
    as ``:key``) with all its user's identity and summary need, the supervised team
    included: one statement, not the ORM's two or three, built once so SQLAlchemy compiles
    it once. Every page and every API request asks one of them."""
    key = credential.__table__.primary_key.columns.values()[0]
    return (select(*columns, User.active, User.id, User.username, User.display_name,
                   User.language, User.time_zone, User.all_institutions, User.institutions,
                   Profile.name.label("profile"), Profile.permissions,
                   Profile.single_institution,
                   func.array(_supervised(User.id).scalar_subquery()).label("team"))
            .select_from(credential).join(User, User.id == credential.user_id)
            .join(Profile, Profile.id == User.profile_id).where(key == bindparam("key")))


def _answer_row(row, **extra) -> dict:
    """``_answer`` for a row of a ``_with_identity`` statement."""
    return _answer(_identity(row.id, row.username, row.profile, row.permissions,
                             row.all_institutions, row.institutions, row.team, row.language),
                   row.display_name, row.time_zone, row.single_institution, **extra)


# --- passwords and throttling ------------------------------------------------------

def _same_address(address: str | None):
    return LoginFailure.address.is_(None) if address is None else LoginFailure.address == address


def _failures(session: Session, username: str, address: str | None) -> dict[str, tuple]:
    """``{scope: (failures, last failure)}`` within the window, for the three scopes, in
    one statement."""
    scopes = {PER_ACCOUNT_AND_ADDRESS.scope: (LoginFailure.username == username)
              & _same_address(address),
              PER_ACCOUNT.scope: LoginFailure.username == username}
    if address is not None:
        scopes[PER_ADDRESS.scope] = LoginFailure.address == address
    columns = []
    for condition in scopes.values():
        columns += [func.count().filter(condition), func.max(LoginFailure.at).filter(condition)]
    either = LoginFailure.username == username
    if address is not None:
        either = either | (LoginFailure.address == address)
    row = session.execute(select(*columns).where(either, LoginFailure.at > now() - FAILURE_WINDOW)
                          ).one()
    return {scope: (row[2 * i], row[2 * i + 1]) for i, scope in enumerate(scopes)}


def _waits(failures: dict[str, tuple], moment: datetime) -> dict[str, float]:
    """Seconds still to wait per scope (only the scopes with a wait)."""
    out = {}
    for throttle in (PER_ACCOUNT_AND_ADDRESS, PER_ADDRESS, PER_ACCOUNT):
        count, last = failures.get(throttle.scope, (0, None))
        if last is None:
            continue
        left = (last + throttle.delay(count) - moment).total_seconds()
        if left > 0:
            out[throttle.scope] = left
    return out


def _known_address(session: Session, user: User | None, address: str | None) -> bool:
    """Did this user log in from this address lately? (their own place: not throttled
    for what others do to the account)."""
    if user is None or address is None:
        return False
    return session.execute(select(AuditEntry.id).where(
        AuditEntry.target_user_id == user.id, AuditEntry.action == "login_succeeded",
        AuditEntry.address == address, AuditEntry.at > now() - KNOWN_ADDRESS_FOR).limit(1)
    ).first() is not None


def _throttled(seconds: float) -> Throttled:
    wait = max(1, math.ceil(seconds))
    message = f"Demasiados intentos fallidos. Intente de nuevo en {wait} segundos."
    return Throttled(message, {"username": [message]}, retry_after=wait)


def verify_credentials(session: Session, username: str, password: str, caller: Caller) -> User:
    """The active user with these credentials, or a typed refusal.

    Unknown users and wrong passwords get the same message after the same amount of
    work (one Argon2 verify); throttling counts per username whether or not it exists.
    Attempts on one username are serialised (a transaction lock), so parallel guesses
    cannot slip past the count.
    """
    username = (username or "").strip().lower()
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext("auth.login:" + username))))
    moment = now()
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    waits = _waits(_failures(session, username, caller.address), moment)
    if PER_ACCOUNT.scope in waits and _known_address(session, user, caller.address):
        del waits[PER_ACCOUNT.scope]
    if waits:
        raise _throttled(max(waits.values()))
    ok = check_password(user.password_hash if user else None, password or "")
    if ok and user.active and user.locked_at is None:
        user.failed_logins = 0
        user.last_login_at = moment
        # one's own typos from here are forgotten; what others tried is not
        session.execute(delete(LoginFailure).where(LoginFailure.username == username,
                                                   _same_address(caller.address)))
        return user
    if ok and user.locked_at is not None:
        raise NotAuthenticated("Cuenta bloqueada; solicite al administrador que la desbloquee")
    session.add(LoginFailure(username=username, address=caller.address, at=moment))
    audit.record(session, "login_failed", actor_name=username, address=caller.address,
                 target_user_id=user.id if user else None)
    if user is not None and ok is False:
        user.failed_logins += 1
    session.flush()
    failures = _failures(session, username, caller.address)
    waits = _waits(failures, moment)
    if waits:
        audit.record(session, "login_throttled", actor_name=username, address=caller.address,
                     target_user_id=user.id if user else None,
                     scopes={scope: {"failures": failures[scope][0],
                                     "retry_after": math.ceil(left)}
                             for scope, left in waits.items()})
    raise NotAuthenticated(INVALID_CREDENTIALS)


def login_waits(session: Session, usernames: list[str]) -> dict[str, int]:
    """``{username: seconds}`` for the accounts some address must wait to try (the
    account's own throttle or one address's on it): what an administrator's unlock
    lifts."""
    if not usernames:
        return {}
    moment = now()
    rows = session.execute(
        select(LoginFailure.username, LoginFailure.address, func.count(), func.max(LoginFailure.at))
        .where(LoginFailure.username.in_(usernames), LoginFailure.at > moment - FAILURE_WINDOW)
        .group_by(LoginFailure.username, LoginFailure.address)).all()
    totals: dict[str, list] = {}
    out: dict[str, float] = {}
    for name, _address, count, last in rows:
        waits = _waits({PER_ACCOUNT_AND_ADDRESS.scope: (count, last)}, moment)
        if waits:
            out[name] = max(out.get(name, 0), *waits.values())
        total = totals.setdefault(name, [0, last])
        total[0] += count
        total[1] = max(total[1], last)
    for name, (count, last) in totals.items():
        waits = _waits({PER_ACCOUNT.scope: (count, last)}, moment)
        if waits:
            out[name] = max(out.get(name, 0), *waits.values())
    return {name: math.ceil(left) for name, left in out.items()}


def lift_throttles(session: Session, username: str) -> int:
    """An administrator's unlock: forget the account's failures from every address
    (its own throttle and every address's on it). Answers how many were forgotten."""
    return session.execute(delete(LoginFailure).where(LoginFailure.username == username)
                           ).rowcount


# --- web sessions ----------------------------------------------------------------

def open_session(session: Session, user: User, caller: Caller) -> dict:
    """A new session id at every login (never reuse one from before login)."""
    session_id = new_secret()
    csrf = secrets.token_urlsafe(32)
    session.add(WebSession(id_hash=digest(session_id), user_id=user.id, csrf_token=csrf,
                           expires_at=now() + SESSION_ABSOLUTE, address=caller.address,
                           user_agent=(caller.user_agent or "")[:300] or None))
    audit.record(session, "login_succeeded", actor_name=user.username, target_user_id=user.id,
                 address=caller.address, via="web")
    return {"session_id": session_id, "csrf_token": csrf,
            "idle_timeout": int(SESSION_IDLE.total_seconds()),
            "absolute_timeout": int(SESSION_ABSOLUTE.total_seconds())}


#: a web session with everything its identity needs, in one statement (every page asks it)
_WEB_SESSION = _with_identity(WebSession, WebSession.revoked_at, WebSession.expires_at,
                              WebSession.last_seen_at, WebSession.csrf_token)


def resolve_session(session: Session, session_id: str) -> dict:
    key = digest(session_id or "")
    row = session.execute(_WEB_SESSION, {"key": key}).first()
    moment = now()
    if row is None or row.revoked_at is not None:
        raise NotAuthenticated("Sesión inválida")
    this_session = update(WebSession).where(WebSession.id_hash == key)
    if row.expires_at <= moment or row.last_seen_at + SESSION_IDLE <= moment:
        session.execute(this_session.values(revoked_at=moment))
        audit.record(session, "session_expired", target_user_id=row.id)
        raise NotAuthenticated("La sesión expiró; vuelva a iniciar sesión")
    if not row.active:
        raise NotAuthenticated("Sesión inválida")
    if moment - row.last_seen_at > SESSION_TOUCH_EVERY:
        session.execute(this_session.values(last_seen_at=moment))
    return _answer_row(row, csrf_token=row.csrf_token,
                       cache_until=cache_until(row.expires_at, moment + SESSION_IDLE))


def close_session(session: Session, session_id: str) -> None:
    row = session.get(WebSession, digest(session_id or ""))
    if row is not None and row.revoked_at is None:
        row.revoked_at = now()
        audit.record(session, "logout", target_user_id=row.user_id, via="web")
        access_changed(session, "logout", credentials=[row.id_hash])


# --- API tokens --------------------------------------------------------------------

def issue_tokens(session: Session, user: User, family: str | None = None) -> dict:
    family = family or secrets.token_hex(16)
    access, refresh = new_secret("at_"), new_secret("rt_")
    moment = now()
    session.add_all([
        ApiToken(token_hash=digest(access), kind="access", family=family, user_id=user.id,
                 expires_at=moment + ACCESS_TOKEN_TTL),
        ApiToken(token_hash=digest(refresh), kind="refresh", family=family, user_id=user.id,
                 expires_at=moment + REFRESH_TOKEN_TTL),
    ])
    return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
            "expires_in": int(ACCESS_TOKEN_TTL.total_seconds())}


def _revoke_family(session: Session, family: str) -> None:
    session.execute(update(ApiToken).where(ApiToken.family == family,
                                           ApiToken.revoked_at.is_(None))
                    .values(revoked_at=now()))


def refresh(session: Session, refresh_token: str, caller: Caller) -> dict:
    """Rotate: the presented refresh token is spent; presenting it again revokes the family."""
    row = session.execute(select(ApiToken).where(
        ApiToken.token_hash == digest(refresh_token or ""), ApiToken.kind == "refresh")
        .with_for_update()).scalar_one_or_none()
    if row is None or row.revoked_at is not None or row.expires_at <= now():
        raise NotAuthenticated("Token de renovación inválido")
    if row.used_at is not None:
        _revoke_family(session, row.family)
        access_changed(session, "token_reuse_detected", user_ids=[row.user_id])
        audit.record(session, "token_reuse_detected", target_user_id=row.user_id,
                     address=caller.address)
        raise NotAuthenticated("Token de renovación ya utilizado")
    user = session.get(User, row.user_id)
    if not user.active:
        raise NotAuthenticated("Token de renovación inválido")
    row.used_at = now()
    # the access token minted with the spent refresh token ends too
    session.execute(update(ApiToken).where(ApiToken.family == row.family,
                                           ApiToken.kind == "access",
                                           ApiToken.revoked_at.is_(None))
                    .values(revoked_at=now()))
    access_changed(session, "token_refreshed", user_ids=[user.id])
    audit.record(session, "token_refreshed", actor_name=user.username, target_user_id=user.id,
                 address=caller.address)
    return issue_tokens(session, user, family=row.family)


#: an access token with everything its identity needs, in one statement (every API request
#: asks it)
_ACCESS_TOKEN = _with_identity(ApiToken, ApiToken.kind, ApiToken.revoked_at, ApiToken.expires_at)


def resolve_token(session: Session, token: str) -> dict:
    """An access token or an API key -> the identity behind it."""
    token = token or ""
    if token.startswith(API_KEY_PREFIX):
        return _resolve_api_key(session, token)
    row = session.execute(_ACCESS_TOKEN, {"key": digest(token)}).first()
    if (row is None or row.kind != "access" or row.revoked_at is not None
            or row.expires_at <= now() or not row.active):
        raise NotAuthenticated("Token inválido o expirado")
    return _answer_row(row, cache_until=cache_until(row.expires_at))


def revoke_token(session: Session, token: str) -> None:
    """Logout of the API: the token's whole family (access and refresh) ends."""
    row = session.get(ApiToken, digest(token or ""))
    if row is not None:
        _revoke_family(session, row.family)
        audit.record(session, "logout", target_user_id=row.user_id, via="api")
        access_changed(session, "logout", user_ids=[row.user_id])


# --- API keys ------------------------------------------------------------------------

def create_api_key(session: Session, user: User, name: str, creator: Identity,
                   expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    prefix = secrets.token_hex(4)
    secret = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name, prefix=prefix, key_hash=digest(secret), user_id=user.id,
                 created_by=creator.user_id, expires_at=expires_at)
    session.add(key)
    session.flush()
    audit.record(session, "api_key_created", actor=creator, target_user_id=user.id,
                 key_id=key.id, prefix=prefix, name=name)
    return key, secret


def _resolve_api_key(session: Session, secret: str) -> dict:
    key = session.execute(select(ApiKey).where(ApiKey.key_hash == digest(secret))
                          ).scalar_one_or_none()
    moment = now()
    if (key is None or key.revoked_at is not None
            or (key.expires_at is not None and key.expires_at <= moment)):
        raise NotAuthenticated("Llave de API inválida o revocada")
    user = session.get(User, key.user_id)
    if not user.active:
        raise NotAuthenticated("Llave de API inválida o revocada")
    if key.last_used_at is None or moment - key.last_used_at > SESSION_TOUCH_EVERY:
        key.last_used_at = moment
    return resolved(session, user, cache_until=cache_until(key.expires_at, moment + ACCESS_TOKEN_TTL))


# --- ending everything a user holds ---------------------------------------------------

def end_everything_of(session: Session, user_id: int, keep: str | None = None) -> None:
    """Disabling a user or resetting their password ends their sessions and tokens at once
    (keys stop resolving too); changing one's own password ends all but ``keep``, the
    digest of the session or token it was changed from (the token's whole family stays)."""
    moment = now()
    sessions = update(WebSession).where(WebSession.user_id == user_id,
                                        WebSession.revoked_at.is_(None))
    tokens = update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    if keep is not None:
        sessions = sessions.where(WebSession.id_hash != keep)
        kept_family = select(ApiToken.family).where(ApiToken.token_hash == keep).scalar_subquery()
        tokens = tokens.where(ApiToken.family.is_distinct_from(kept_family))
    session.execute(sessions.values(revoked_at=moment))
    session.execute(tokens.values(revoked_at=moment))
    access_changed(session, "credentials_ended", user_ids=[user_id])
